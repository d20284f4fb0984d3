"""`tailorcrm serve` answers real HTTP requests on the loopback interface."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask

from tailorcrm.platform.cli import main


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def fetch(url: str, token: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_serve_answers_the_api(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    init = CliRunner().invoke(main, ["init"], env={"TAILORCRM_DATABASE_URL": url})
    token = init.output.split("API token: ")[1].split()[0]
    port = free_port()
    env = {**os.environ, "TAILORCRM_DATABASE_URL": url}
    command = [
        sys.executable,
        "-m",
        "tailorcrm.platform.cli",
        "serve",
        "--port",
        str(port),
    ]
    server = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        for _ in range(100):
            try:
                status, body = fetch(f"{base}/meta/entities", token)
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        else:
            raise AssertionError("the server did not start")

        anonymous = fetch(f"{base}/meta/entities")
    finally:
        server.terminate()
        server.wait(timeout=10)

    assert status == 200
    assert body == {"revision": 0, "data": []}
    assert anonymous[0] == 401


def test_serve_with_a_bad_setting_says_what_is_wrong_without_a_traceback(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    runner = CliRunner()

    production = runner.invoke(
        main,
        ["serve", "--port", str(free_port())],
        env={"TAILORCRM_DATABASE_URL": url, "TAILORCRM_ENV": "production"},
    )
    limit = runner.invoke(
        main,
        ["serve", "--port", str(free_port())],
        env={"TAILORCRM_DATABASE_URL": url, "TAILORCRM_LOGIN_WINDOW_MINUTES": "ten"},
    )

    assert production.exit_code == 1
    assert production.exception is None or isinstance(production.exception, SystemExit)
    assert "Error: TAILORCRM_SECRET_KEY must be set" in production.output
    assert limit.exit_code == 1
    assert "Error: TAILORCRM_LOGIN_WINDOW_MINUTES must be a whole number" in (
        limit.output
    )


@pytest.mark.parametrize("port", ["99999", "0", "-1"])
def test_serve_refuses_a_port_outside_1_to_65535(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, port: str
) -> None:
    """99999 and 0 served on a port the system chose while the command said it
    served on the one given; -1 ended in a traceback."""
    started = []
    monkeypatch.setattr(Flask, "run", lambda app, **options: started.append(options))
    url = f"sqlite:///{tmp_path / 'crm.db'}"

    result = CliRunner().invoke(
        main, ["serve", "--port", port], env={"TAILORCRM_DATABASE_URL": url}
    )

    assert result.exit_code == 2
    assert "Serving" not in result.output
    assert f"{port} is not in the range 1<=x<=65535" in result.output
    assert started == []


def test_other_commands_with_a_bad_setting_say_what_is_wrong(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'crm.db'}"

    result = CliRunner().invoke(
        main,
        ["token", "list"],
        env={"TAILORCRM_DATABASE_URL": url, "TAILORCRM_SESSION_IDLE_MINUTES": "0"},
    )

    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert "Error: TAILORCRM_SESSION_IDLE_MINUTES must be a whole number" in (
        result.output
    )


def test_a_database_url_that_cannot_be_read_is_named_without_a_traceback(
    tmp_path: Path,
) -> None:
    runner = CliRunner()

    unreadable = runner.invoke(
        main, ["token", "list"], env={"TAILORCRM_DATABASE_URL": "crm.db"}
    )
    other = runner.invoke(
        main,
        ["token", "list"],
        env={"TAILORCRM_DATABASE_URL": "mysql://kim:s3cret-word@127.0.0.1/crm"},
    )

    assert unreadable.exit_code == 1
    assert isinstance(unreadable.exception, SystemExit)
    assert "Error: TAILORCRM_DATABASE_URL" in unreadable.output
    assert "sqlite:///" in unreadable.output
    assert other.exit_code == 1
    assert isinstance(other.exception, SystemExit)
    assert "Error: TAILORCRM_DATABASE_URL" in other.output
    assert "mysql" in other.output
    # The password in a URL is never echoed.
    assert "s3cret-word" not in other.output


def test_a_database_that_cannot_be_opened_is_named_without_a_traceback(
    tmp_path: Path,
) -> None:
    # A folder where the database file should be: SQLite cannot open it.
    (tmp_path / "crm.db").mkdir()
    env = {"TAILORCRM_DATABASE_URL": f"sqlite:///{tmp_path / 'crm.db'}"}
    runner = CliRunner()

    listed = runner.invoke(main, ["token", "list"], env=env)
    served = runner.invoke(main, ["serve", "--port", str(free_port())], env=env)

    for result in (listed, served):
        assert result.exit_code == 1
        assert isinstance(result.exception, SystemExit)
        assert "Error: Cannot open the database" in result.output
        assert "unable to open database file" in result.output
        assert "Traceback" not in result.output
