"""The command line for roles, users and teams, and the demo's people."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tailorcrm.platform import create_app
from tailorcrm.platform.auth import create_token, find_user
from tailorcrm.platform.cli import main
from tests.conftest import Api


@pytest.fixture
def run(database_url: str) -> CliRunner:
    return CliRunner(env={"TAILORCRM_DATABASE_URL": database_url})


def _api_of(database_url: str, username: str) -> Api:
    app = create_app({"database_url": database_url})
    platform = app.extensions["tailorcrm"]
    with platform.engine.begin() as connection:
        token = create_token(connection, find_user(connection, username))
    return Api(app.test_client(), token)


def test_the_demo_has_people_with_the_packs_roles(
    run: CliRunner, database_url: str
) -> None:
    result = run.invoke(main, ["init", "--demo"])

    assert result.exit_code == 0, result.output
    assert "riley.north (sales_rep)" in result.output
    assert "Installed sales pack roles: auditor, sales_manager, sales_rep" in (
        result.output
    )
    riley = _api_of(database_url, "riley.north")
    manager = _api_of(database_url, "morgan.lee")
    everything = manager.get("/opportunity?count=1&limit=1").json["count"]
    visible = riley.get("/opportunity?count=1&limit=1").json["count"]
    assert everything == 120
    assert 0 < visible < everything  # riley sees the north team's deals only
    assert "erp_code" not in riley.get("/opportunity?limit=1").json["data"][0]


def test_users_and_teams_are_managed_from_the_command_line(
    run: CliRunner, database_url: str, tmp_path: Path
) -> None:
    run.invoke(main, ["init", "--demo"])

    created = run.invoke(
        main,
        ["user", "create", "cleo.marsh", "--role", "auditor", "--password", "x" * 12],
    )
    unknown = run.invoke(main, ["user", "roles", "cleo.marsh", "no_such_role"])
    attributes = run.invoke(main, ["user", "attributes", "cleo.marsh", "country=Spain"])
    team = run.invoke(
        main, ["team", "create", "audit", "--member", "cleo.marsh", "--role", "auditor"]
    )
    shown = run.invoke(main, ["user", "show", "cleo.marsh"])
    exported = run.invoke(main, ["meta", "export", str(tmp_path)])

    assert created.exit_code == 0, created.output
    assert unknown.exit_code == 1
    assert "no_such_role" in unknown.output
    assert attributes.exit_code == 0, attributes.output
    assert team.exit_code == 0, team.output
    info = json.loads(shown.output)
    assert info["roles"] == ["auditor"]
    assert info["teams"] == ["audit"]
    assert info["attributes"] == {"country": "Spain"}
    assert exported.exit_code == 0, exported.output
    role = json.loads((tmp_path / "roles" / "sales_rep.json").read_text())
    assert role["kind"] == "role"
    assert run.invoke(main, ["team", "delete", "audit"]).exit_code == 0
    assert "audit" not in run.invoke(main, ["team", "list"]).output


def test_attributes_are_text_or_with_a_colon_numbers_and_true_false(
    run: CliRunner,
) -> None:
    run.invoke(main, ["init"])
    run.invoke(main, ["user", "create", "cleo.marsh", "--password", "x" * 12])

    typed = run.invoke(
        main,
        [
            "user",
            "attributes",
            "cleo.marsh",
            "zone=0042",
            "score:=5",
            "ratio:=0.75",
            "vip:=true",
            "motto=a=b",
        ],
    )
    shown = json.loads(run.invoke(main, ["user", "show", "cleo.marsh"]).output)
    refused = [
        run.invoke(main, ["user", "attributes", "cleo.marsh", pair])
        for pair in ("zone:=north", "zone:=[1]", "zone:=null", "zone:=NaN")
    ]

    assert typed.exit_code == 0, typed.output
    # The answer echoes them as they were typed, JSON-style, not as Python
    # writes them (True, single quotes).
    assert typed.output.strip() == (
        'cleo.marsh: {"zone": "0042", "score": 5, "ratio": 0.75, "vip": true, '
        '"motto": "a=b"}'
    )
    assert shown["attributes"] == {
        "zone": "0042",
        "score": 5,
        "ratio": 0.75,
        "vip": True,
        "motto": "a=b",
    }
    for result in refused:
        assert result.exit_code == 2
        assert "after := write a number or true/false" in result.output
    after = json.loads(run.invoke(main, ["user", "show", "cleo.marsh"]).output)
    assert after["attributes"] == shown["attributes"]


def test_an_attribute_given_twice_is_refused_and_nothing_changes(
    run: CliRunner,
) -> None:
    """The last of two values was kept and the first dropped without a word."""
    run.invoke(main, ["init"])
    run.invoke(main, ["user", "create", "cleo.marsh", "--password", "x" * 12])
    run.invoke(main, ["user", "attributes", "cleo.marsh", "region=east"])

    twice = run.invoke(
        main, ["user", "attributes", "cleo.marsh", "region=north", "region:=5"]
    )
    shown = json.loads(run.invoke(main, ["user", "show", "cleo.marsh"]).output)

    assert twice.exit_code == 2
    assert "'region:=5': region is given twice; give each attribute once." in (
        twice.output
    )
    assert shown["attributes"] == {"region": "east"}


def test_team_set_refuses_members_and_no_members_together(run: CliRunner) -> None:
    """Both at once used to drop every member silently, the --member ignored."""
    run.invoke(main, ["init"])
    run.invoke(main, ["user", "create", "cleo.marsh", "--password", "x" * 12])
    run.invoke(main, ["user", "create", "otto.brook", "--password", "x" * 12])
    run.invoke(main, ["team", "create", "harbour", "--member", "cleo.marsh"])

    members = run.invoke(
        main, ["team", "set", "harbour", "--member", "otto.brook", "--no-members"]
    )
    roles = run.invoke(
        main, ["team", "set", "harbour", "--role", "auditor", "--no-roles"]
    )
    listed = run.invoke(main, ["team", "list"])

    assert members.exit_code == 2
    assert "--member and --no-members" in members.output
    assert roles.exit_code == 2
    assert "--role and --no-roles" in roles.output
    assert "harbour: cleo.marsh" in listed.output
