"""(a) Creating one record per request: our REST API against a hand-written endpoint.

Both sides are Flask apps driven through their test clients with the same JSON bodies.
Ours authenticates the bearer token, checks every field against the entity, checks
the lookup and the unique value against stored records and answers with the whole
record. The baseline parses the JSON, turns the date text into a date (SQLite needs
one) and inserts the row into an equivalent hand-made table, checking nothing else.
"""

from __future__ import annotations

import cProfile
import datetime as dt
import gc
import json
import pstats
import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from flask import Flask, jsonify, request
from flask.testing import FlaskClient
from werkzeug.wrappers import Response

from tailorcrm.platform.access import set_user_roles
from tailorcrm.platform.auth import create_token, create_user
from tailorcrm.platform.records import SYSTEM_ACTOR

from ._support import (
    FIELD_NAMES,
    STAGES,
    Result,
    create_baseline,
    median,
    open_platform,
    sides_in_turn,
    temporary_database,
)

PATH = "/api/v1/opportunity"
TARGET_RATIO = 2.0
# The baseline stores its rows as made by this user, as ours does for the token's.
USER_ID = 1


@dataclass(frozen=True)
class Sizes:
    rounds: int
    requests: int
    warmup: int


FULL = Sizes(rounds=20, requests=200, warmup=100)
QUICK = Sizes(rounds=2, requests=10, warmup=5)

_Post = Callable[[bytes], None]


def bodies(count: int, *, prefix: str, account_id: int) -> list[bytes]:
    """Return ``count`` distinct JSON bodies of a new opportunity, the same each run."""
    start = dt.date(2026, 1, 5)
    return [
        json.dumps(
            {
                "title": f"Fleet renewal {prefix}{number}",
                "account": account_id,
                "stage": STAGES[number % len(STAGES)],
                "amount": round(1000 + number * 37.25, 2),
                "close_date": (start + dt.timedelta(days=number % 300)).isoformat(),
                "erp_code": f"{prefix}-{number:07d}",
            }
        ).encode()
        for number in range(count)
    ]


def _poster(client: FlaskClient, headers: dict[str, str]) -> _Post:
    def post(body: bytes) -> None:
        response = client.post(
            PATH, data=body, headers=headers, content_type="application/json"
        )
        if response.status_code != 201:
            raise RuntimeError(
                f"POST {PATH} answered {response.status_code}: {response.text[:500]}"
            )

    return post


SELLER_ROLE = {
    "kind": "role",
    "name": "seller",
    "label": "Seller",
    "entities": {
        "opportunity": {"create": "all", "read": "team", "edit": "own"},
        "account": {"read": "all"},
    },
}


def our_app(url: str) -> tuple[Flask, _Post]:
    """Set up the platform with one user, one token and one account to refer to."""
    app, platform = open_platform(url)
    with platform.engine.begin() as connection:
        user = create_user(connection, "bench", "bench-password-1")
        token = create_token(connection, user)
    if user.id != USER_ID:
        raise RuntimeError(f"The first user should have id {USER_ID}.")
    # A seller, not an administrator: each request reads the user's roles and
    # checks record and field access as it would in use.
    platform.store.apply([("", SELLER_ROLE)], actor="bench")
    with platform.transaction() as (connection, catalog):
        set_user_roles(connection, catalog, "bench", ["seller"])
    with platform.records(SYSTEM_ACTOR) as service:
        account = service.create("account", {"name": "Tidewater Supply"})
    if account["id"] != 1:
        raise RuntimeError("The first account should have id 1.")
    headers = {"Authorization": f"Bearer {token}"}
    return app, _poster(app.test_client(), headers)


def baseline_app(url: str) -> tuple[Flask, _Post]:
    """A Flask app that stores an opportunity the way a hand-written endpoint would."""
    engine, tables = create_baseline(url)
    table = tables.opportunities
    with engine.begin() as connection:
        now = _utcnow()
        connection.execute(tables.users.insert().values(id=USER_ID, username="bench"))
        connection.execute(
            tables.accounts.insert().values(
                id=1, name="Tidewater Supply", created_at=now, updated_at=now
            )
        )
    app = Flask("baseline")
    app.config["TESTING"] = True
    app.extensions["engine"] = engine

    @app.post(PATH)
    def create() -> tuple[Response, int]:
        data = request.get_json()
        if not isinstance(data, dict):
            return jsonify({"error": "Send a JSON object."}), 400
        row = {name: data.get(name) for name in FIELD_NAMES}
        if row["close_date"] is not None:
            row["close_date"] = dt.date.fromisoformat(row["close_date"])
        now = _utcnow()
        row.update(
            created_at=now,
            updated_at=now,
            created_by=USER_ID,
            owner_id=USER_ID,
            version=1,
        )
        with engine.begin() as connection:
            statement = table.insert().values(row).returning(table.c.id)
            new_id = connection.execute(statement).scalar_one()
        return jsonify({"id": new_id, **data}), 201

    return app, _poster(app.test_client(), {})


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)


def _timed(post: _Post, round_bodies: list[bytes]) -> list[float]:
    """Send each body; return the microseconds each request took."""
    gc.collect()
    taken = []
    for body in round_bodies:
        start = time.perf_counter_ns()
        post(body)
        taken.append((time.perf_counter_ns() - start) / 1000)
    return taken


def measure(*, quick: bool = False) -> Result:
    """Run the rounds, alternating which side goes first, and compare medians."""
    sizes = QUICK if quick else FULL
    per_request: dict[str, list[float]] = {"ours": [], "baseline": []}
    per_round: dict[str, list[float]] = {"ours": [], "baseline": []}
    with (
        temporary_database("api") as our_url,
        temporary_database("plain") as plain_url,
    ):
        apps = {"ours": our_app(our_url), "baseline": baseline_app(plain_url)}
        try:
            for _, post in apps.values():
                for body in bodies(sizes.warmup, prefix="W", account_id=1):
                    post(body)
            for number, order in enumerate(sides_in_turn(sizes.rounds)):
                round_bodies = bodies(sizes.requests, prefix=f"R{number}", account_id=1)
                for side in order:
                    taken = _timed(apps[side][1], round_bodies)
                    per_request[side] += taken
                    per_round[side].append(median(taken))
        finally:
            _dispose(apps["ours"][0], apps["baseline"][0])
    ours, baseline = median(per_request["ours"]), median(per_request["baseline"])
    ratio = ours / baseline
    paired = [
        o / b for o, b in zip(per_round["ours"], per_round["baseline"], strict=True)
    ]
    return Result(
        benchmark="(a) create a record through the API",
        measured=f"{ours:,.0f} µs/request",
        reference=f"{baseline:,.0f} µs/request",
        comparison=f"{ratio:.2f}× the baseline's time",
        target=f"≤ {TARGET_RATIO:g}×",
        met=ratio <= TARGET_RATIO,
        details=[
            f"{sizes.rounds} rounds × {sizes.requests} requests per side, "
            f"{sizes.warmup} warm-up requests each; medians of single requests",
            f"per-round ratios: median {median(paired):.2f}×, "
            f"range {min(paired):.2f}–{max(paired):.2f}×",
        ],
    )


def _dispose(*apps: Flask) -> None:
    for app in apps:
        platform = app.extensions.get("tailorcrm")
        engine: sa.Engine = platform.engine if platform else app.extensions["engine"]
        engine.dispose()


def profile(*, quick: bool = False) -> pstats.Stats:
    """Profile our side alone over as many requests as one full side gets."""
    sizes = QUICK if quick else FULL
    with temporary_database("api") as url:
        app, post = our_app(url)
        try:
            for body in bodies(sizes.warmup, prefix="W", account_id=1):
                post(body)
            work = bodies(sizes.rounds * sizes.requests, prefix="P", account_id=1)
            profiler = cProfile.Profile()
            profiler.enable()
            for body in work:
                post(body)
            profiler.disable()
        finally:
            _dispose(app)
    return pstats.Stats(profiler)
