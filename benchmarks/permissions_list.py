"""(g) A seller's list page on PostgreSQL: team scope plus a sharing rule.

A seller reads the opportunities of their team and, through a sharing rule, those
of their region. Ours is ``GET /api/v1/opportunity`` with the seller's bearer
token, where the platform loads the caller, builds the caller's view of the
catalog and adds the record access to the page's SQL and to its count. The
baseline is an equally thin Flask route that runs the same two statements written
by hand, with the seller's teammates and region already known to it. Both sides
read the same table in the same database, so the comparison is of the query and
of the work around it, not of the data or of HTTP.

It needs a PostgreSQL database, named by ``TAILORCRM_BENCH_POSTGRES_URL``; without
one it reports that it was skipped.
"""

from __future__ import annotations

import cProfile
import datetime as dt
import gc
import pstats
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask import Flask, jsonify, request
from flask.testing import FlaskClient
from werkzeug.wrappers import Response

from tailorcrm.platform import Platform, create_app
from tailorcrm.platform.access import (
    create_team,
    load_caller,
    set_team,
    set_user_attributes,
    set_user_roles,
)
from tailorcrm.platform.auth import create_token, create_user
from tailorcrm.platform.db import create_engine
from tailorcrm.platform.query import parse_list_args, run_list

from . import create_record
from ._support import (
    ACCOUNT,
    OPPORTUNITY,
    POSTGRES_URL_VARIABLE,
    Result,
    drop_schema,
    fresh_schema,
    median,
    postgres_url,
    schema_url,
    sides_in_turn,
)

URL_VARIABLE = POSTGRES_URL_VARIABLE
#: The benchmark's own schema in that database, dropped and made again each run.
SCHEMA = "tailorcrm_bench_g"
TARGET_RATIO = 1.5
PAGE_SIZE = 50
SELLER = "seller0001"
PATH = "/api/v1/opportunity"
QUERY_STRING = {"limit": str(PAGE_SIZE), "sort": "-amount"}

# The sales-like Opportunity of the other benchmarks, with a region and without
# the unique ERP code, whose index would only slow the load down.
REGION_FIELD: dict[str, Any] = {
    "name": "region",
    "type": "picklist",
    "label": "Region",
}
#: The seller of benchmark (a), who also reads the opportunities of their region.
SELLER_ROLE: dict[str, Any] = {
    **create_record.SELLER_ROLE,
    "sharing": [
        {
            "name": "same_region",
            "entity": "opportunity",
            "access": "read",
            "condition": {"==": [{"var": "region"}, {"var": "$user.region"}]},
        }
    ],
}

# The same list, written by hand: the teammates are bound as an expanding IN list,
# the region as a value, and the order is the platform's (amount, blanks last,
# then id) so that both return the same rows.
COLUMNS = (
    "id, created_at, updated_at, created_by, owner_id, version, "
    "title, account, stage, amount, close_date, region"
)
MINE = "owner_id IN :mates OR region = :region"
PAGE_SQL = sa.text(
    f"SELECT {COLUMNS} FROM opportunity WHERE {MINE} "
    "ORDER BY amount DESC NULLS LAST, id LIMIT :limit"
).bindparams(sa.bindparam("mates", expanding=True))
COUNT_SQL = sa.text(f"SELECT count(*) FROM opportunity WHERE {MINE}").bindparams(
    sa.bindparam("mates", expanding=True)
)


@dataclass(frozen=True)
class Sizes:
    rows: int
    users: int
    team_size: int
    regions: int
    accounts: int
    requests: int


FULL = Sizes(
    rows=1_000_000,
    users=2_000,
    team_size=10,
    regions=100,
    accounts=2_000,
    requests=61,
)
QUICK = Sizes(
    rows=20_000, users=200, team_size=10, regions=20, accounts=100, requests=5
)


def _region(number: int) -> str:
    return f"territory_{number:03d}"


def opportunity_document(sizes: Sizes) -> dict[str, Any]:
    fields = [spec for spec in OPPORTUNITY["fields"] if spec["name"] != "erp_code"]
    options = [
        {"value": _region(number), "label": f"Territory {number}"}
        for number in range(sizes.regions)
    ]
    return {**OPPORTUNITY, "fields": [*fields, {**REGION_FIELD, "options": options}]}


# -- the database ------------------------------------------------------------------


@dataclass
class Setup:
    app: Flask
    platform: Platform
    token: str
    mates: list[int]
    region: str
    server: str
    load_seconds: float
    indexes: list[str] = field(default_factory=list)


def _users(platform: Platform, sizes: Sizes) -> str:
    """Create the seller (the first user) with a token and the other owners."""
    with platform.transaction() as (connection, catalog):
        seller = create_user(connection, SELLER, "bench-password-1")
        token = create_token(connection, seller, scopes=["read"])
        connection.exec_driver_sql(
            "INSERT INTO tc_user (username, is_admin, active, created_at) "
            "SELECT 'seller' || lpad(n::text, 4, '0'), false, true, now() "
            "FROM generate_series(2, %(users)s) AS n",
            {"users": sizes.users},
        )
        ids = connection.exec_driver_sql(
            "SELECT min(id), max(id), count(*) FROM tc_user"
        ).one()
        if tuple(ids) != (1, sizes.users, sizes.users):
            raise RuntimeError(f"The users should have ids 1 to {sizes.users}.")
        for team in range(sizes.users // sizes.team_size):
            name = f"team_{team:03d}"
            first = team * sizes.team_size + 1
            create_team(connection, name)
            members = [f"seller{n:04d}" for n in range(first, first + sizes.team_size)]
            set_team(connection, catalog, name, members=members)
        set_user_roles(connection, catalog, SELLER, ["seller"])
        set_user_attributes(connection, SELLER, {"region": _region(7)})
    return token


def _fill(platform: Platform, sizes: Sizes) -> None:
    """Insert the accounts and opportunities in the database, then index and analyse.

    Rows follow each other as if entered over time by everyone at once: the owner
    of opportunity ``n`` is ``n * 7919 % users + 1`` (7919 is prime to the number
    of users, so owners take turns in a scattered order) and its region comes
    from a hash of ``n``, independent of the owner. A team's or a region's
    records are thus spread over the whole table, one or two per page, as in a
    table that has been in use, not stored together as a bulk load by owner or
    region would leave them.
    """
    with platform.engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO account (created_at, updated_at, version, name) "
            "SELECT now(), now(), 1, 'Account ' || lpad(n::text, 5, '0') "
            "FROM generate_series(1, %(accounts)s) AS n",
            {"accounts": sizes.accounts},
        )
        connection.exec_driver_sql(
            "INSERT INTO opportunity (created_at, updated_at, created_by, owner_id, "
            "version, title, account, stage, amount, close_date, region) "
            "SELECT timestamp '2026-01-02 03:04:05', timestamp '2026-01-02 03:04:05', "
            "n::bigint * 7919 %% %(users)s + 1, n::bigint * 7919 %% %(users)s + 1, "
            "1, 'Deal ' || n, "
            "n %% %(accounts)s + 1, "
            "(ARRAY['qualify', 'propose', 'won', 'lost'])[n %% 4 + 1], "
            "(n::bigint * 7919 %% 1000003) / 100.0, "
            "date '2026-01-01' + n %% 730, "
            "'territory_' || lpad(((hashint4(n)::bigint + 2147483648) "
            "%% %(regions)s)::text, 3, '0') "
            "FROM generate_series(1, %(rows)s) AS n",
            {
                "users": sizes.users,
                "accounts": sizes.accounts,
                "regions": sizes.regions,
                "rows": sizes.rows,
            },
        )
        # What an administrator adds for the sharing rule; entity documents
        # cannot declare an index on a plain field yet.
        connection.exec_driver_sql(
            "CREATE INDEX ix_opportunity_region ON opportunity (region)"
        )
    # A table in use is vacuumed and analysed by autovacuum; do it now.
    with platform.engine.connect() as connection:
        connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        connection.exec_driver_sql("VACUUM ANALYZE account")
        connection.exec_driver_sql("VACUUM ANALYZE opportunity")


def prepare(url: str, sizes: Sizes) -> Setup:
    """Build the schema, the entities, the users and teams, and the rows."""
    fresh_schema(url, SCHEMA)
    app = create_app({"database_url": schema_url(url, SCHEMA), "secret_key": "bench"})
    app.config["TESTING"] = True
    platform: Platform = app.extensions["tailorcrm"]
    documents = [ACCOUNT, opportunity_document(sizes), SELLER_ROLE]
    platform.store.apply([("", document) for document in documents], actor="bench")
    token = _users(platform, sizes)
    start = time.perf_counter()
    _fill(platform, sizes)
    load_seconds = time.perf_counter() - start
    with platform.reading() as (connection, _):
        caller = load_caller(connection, 1, SELLER, False)
        server = connection.exec_driver_sql("SHOW server_version").scalar_one()
        indexes = connection.exec_driver_sql(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'opportunity' "
            "AND schemaname = current_schema() "
            "ORDER BY indexname"
        ).scalars()
        setup = Setup(
            app,
            platform,
            token,
            sorted(caller.teammates),
            _region(7),
            str(server),
            load_seconds,
            list(indexes),
        )
    return setup


# -- the two sides ---------------------------------------------------------------


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def baseline_app(engine: sa.Engine, mates: list[int], region: str) -> Flask:
    """The hand-written endpoint: the page and its count, then the JSON."""
    app = Flask("baseline")
    app.config["TESTING"] = True
    bound = {"mates": mates, "region": region}

    @app.get(PATH)
    def page() -> Response:
        with engine.connect() as connection, connection.begin():
            rows = connection.execute(PAGE_SQL, {**bound, "limit": PAGE_SIZE + 1})
            records = [
                {key: _json_value(value) for key, value in row.items()}
                for row in rows.mappings()
            ]
            count = None
            if _wants_count():
                count = connection.execute(COUNT_SQL, bound).scalar_one()
        body: dict[str, Any] = {"data": records[:PAGE_SIZE], "next": None}
        if len(records) > PAGE_SIZE:
            last = records[PAGE_SIZE - 1]
            body["next"] = (
                f"{PATH}?limit={PAGE_SIZE}&after={last['amount']}:{last['id']}"
            )
        if count is not None:
            body["count"] = count
        return jsonify(body)

    return app


def _wants_count() -> bool:
    return request.args.get("count") == "true"


Get = Callable[[bool], tuple[list[int], int | None]]


def _getter(client: FlaskClient, headers: Mapping[str, str]) -> Get:
    def get(count: bool) -> tuple[list[int], int | None]:
        query = {**QUERY_STRING, **({"count": "true"} if count else {})}
        response = client.get(PATH, query_string=query, headers=dict(headers))
        if response.status_code != 200:
            raise RuntimeError(f"The list failed ({response.status_code}).")
        body = response.get_json()
        return [record["id"] for record in body["data"]], body.get("count")

    return get


def query_level(setup: Setup, engine: sa.Engine) -> dict[str, Get]:
    """Both sides without HTTP: ``run_list`` with the seller's view, and the SQL."""
    platform = setup.platform
    with platform.reading() as (connection, catalog):
        caller = load_caller(connection, 1, SELLER, False)
    view = platform.views.get(catalog, caller)
    entity = view.entity("opportunity")
    user = caller.condition_data()
    bound = {"mates": setup.mates, "region": setup.region}

    def ours(count: bool) -> tuple[list[int], int | None]:
        args = {key: [value] for key, value in QUERY_STRING.items()}
        if count:
            args["count"] = ["true"]
        with platform.engine.connect() as connection, connection.begin():
            query = parse_list_args(entity, args, user=user)
            page = run_list(connection, entity, query)
        return [record["id"] for record in page.records], page.total

    def baseline(count: bool) -> tuple[list[int], int | None]:
        with engine.connect() as connection, connection.begin():
            rows = connection.execute(PAGE_SQL, {**bound, "limit": PAGE_SIZE + 1})
            ids = [row.id for row in rows][:PAGE_SIZE]
            total = connection.execute(COUNT_SQL, bound).scalar_one() if count else None
        return ids, total

    return {"ours": ours, "baseline": baseline}


# -- measuring --------------------------------------------------------------------


class Statements:
    """Counts the statements an engine runs and keeps those that read a table."""

    def __init__(self, engine: sa.Engine, table: str) -> None:
        self.count = 0
        self.kept: list[tuple[str, Any]] = []
        self._needle = f"FROM {table}"
        self._engine = engine
        sa.event.listen(engine, "before_cursor_execute", self._seen)

    def stop(self) -> list[tuple[str, Any]]:
        """Stop listening; return the statements kept."""
        sa.event.remove(self._engine, "before_cursor_execute", self._seen)
        return self.kept

    def _seen(
        self, _conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any
    ) -> None:
        self.count += 1
        if self._needle in statement:
            self.kept.append((statement, parameters))


@dataclass
class Timings:
    seconds: dict[str, list[float]] = field(
        default_factory=lambda: {"ours": [], "baseline": []}
    )

    def ratio(self) -> float:
        return median(self.seconds["ours"]) / median(self.seconds["baseline"])

    def milliseconds(self, side: str) -> float:
        return median(self.seconds[side]) * 1000


def _interleaved(sides: Mapping[str, Get], *, count: bool, requests: int) -> Timings:
    timings = Timings()
    for side in sides:
        sides[side](count)  # warm the caches
    for order in sides_in_turn(requests):
        for side in order:
            gc.collect()
            start = time.perf_counter()
            sides[side](count)
            timings.seconds[side].append(time.perf_counter() - start)
    return timings


def _same_answers(sides: Mapping[str, Get]) -> tuple[list[int], int | None]:
    """Both sides' page and count; stop when they differ."""
    ours, baseline = sides["ours"](True), sides["baseline"](True)
    if ours != baseline:
        raise RuntimeError(
            f"The two sides answer differently: ours {ours[0][:5]}... "
            f"({ours[1]}), baseline {baseline[0][:5]}... ({baseline[1]})."
        )
    if len(ours[0]) != PAGE_SIZE:
        raise RuntimeError(f"The page should hold {PAGE_SIZE} records.")
    return ours


def _statements_per_request(get: Get, counter: Statements) -> int:
    before = counter.count
    get(True)
    return counter.count - before


def _explain(engine: sa.Engine, statements: list[tuple[str, Any]]) -> list[str]:
    """EXPLAIN (ANALYZE, BUFFERS) of each statement, with its own parameters."""
    plans = []
    with engine.connect() as connection:
        for statement, parameters in statements:
            rows = connection.exec_driver_sql(
                "EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters
            ).scalars()
            text = "\n".join(["    ```", *(f"    {row}" for row in rows), "    ```"])
            plans.append(f"{_oneline(statement, parameters)}\n\n{text}")
    return plans


def _oneline(statement: str, parameters: Any) -> str:
    shown = " ".join(statement.split())
    return f"`{shown}` with `{parameters}`"


def _uses_indexes(plans: list[str], indexes: list[str]) -> bool:
    owner = next((name for name in indexes if "owner" in name), "?")
    return all(
        "ix_opportunity_region" in plan
        and owner in plan
        and "Seq Scan on opportunity" not in plan
        for plan in plans
    )


def skipped(sizes: Sizes) -> Result:
    return Result(
        benchmark=f"(g) seller's list page on PostgreSQL, {sizes.rows:,} records",
        measured="skipped",
        reference="—",
        comparison=f"set {URL_VARIABLE} to a PostgreSQL database to run it",
        target=f"≤ {TARGET_RATIO:g}×, with indexes",
        met=True,
        details=[f"{URL_VARIABLE} is not set, so (g) did not run"],
        skipped=True,
    )


def measure(*, quick: bool = False) -> Result:
    """Serve the page from both sides in turn; compare medians; explain both."""
    sizes = QUICK if quick else FULL
    url = postgres_url()
    if url is None:
        return skipped(sizes)
    setup = prepare(url, sizes)
    engine = create_engine(schema_url(url, SCHEMA))
    try:
        return _measure(setup, engine, sizes)
    finally:
        engine.dispose()
        setup.platform.engine.dispose()
        drop_schema(url, SCHEMA)


def _measure(setup: Setup, engine: sa.Engine, sizes: Sizes) -> Result:
    ours_seen = Statements(setup.platform.engine, "opportunity")
    baseline_seen = Statements(engine, "opportunity")
    api = {
        "ours": _getter(
            setup.app.test_client(), {"Authorization": f"Bearer {setup.token}"}
        ),
        "baseline": _getter(
            baseline_app(engine, setup.mates, setup.region).test_client(), {}
        ),
    }
    direct = query_level(setup, engine)
    ids, total = _same_answers(api)
    _same_answers(direct)
    statements = {
        side: _statements_per_request(api[side], seen)
        for side, seen in (("ours", ours_seen), ("baseline", baseline_seen))
    }
    runs = {
        "api": _interleaved(api, count=True, requests=sizes.requests),
        "api, no count": _interleaved(api, count=False, requests=sizes.requests),
        "query": _interleaved(direct, count=True, requests=sizes.requests),
        "query, no count": _interleaved(direct, count=False, requests=sizes.requests),
    }
    ours_seen.kept.clear()
    baseline_seen.kept.clear()
    api["ours"](True)
    api["baseline"](True)
    kept = {"ours": ours_seen.stop(), "baseline": baseline_seen.stop()}
    plans = {side: _explain(engine, statements) for side, statements in kept.items()}
    main = runs["api"]
    indexed = _uses_indexes([*plans["ours"], *plans["baseline"]], setup.indexes)
    return Result(
        benchmark=f"(g) seller's list page on PostgreSQL, {sizes.rows:,} records",
        measured=f"{main.milliseconds('ours'):,.1f} ms",
        reference=f"{main.milliseconds('baseline'):,.1f} ms (hand-written SQL)",
        comparison=(
            f"{main.ratio():.2f}× the baseline's time; plans use the owner and "
            f"region indexes: {'yes' if indexed else 'no'}"
        ),
        target=f"≤ {TARGET_RATIO:g}×, with indexes",
        met=main.ratio() <= TARGET_RATIO and indexed,
        details=_details(setup, sizes, runs, statements, ids, total)
        + [f"EXPLAIN (ANALYZE, BUFFERS), ours: {plan}" for plan in plans["ours"]]
        + [
            f"EXPLAIN (ANALYZE, BUFFERS), baseline: {plan}"
            for plan in plans["baseline"]
        ],
    )


def _details(
    setup: Setup,
    sizes: Sizes,
    runs: Mapping[str, Timings],
    statements: Mapping[str, int],
    ids: list[int],
    total: int | None,
) -> list[str]:
    teams = sizes.users // sizes.team_size
    lines = [
        f"PostgreSQL {setup.server}; {sizes.rows:,} opportunities of "
        f"{sizes.users:,} owners in {teams} teams of {sizes.team_size} and "
        f"{sizes.regions} regions, loaded with INSERT … SELECT and VACUUM ANALYZE "
        f"in {setup.load_seconds:.1f} s",
        f"the seller sees {total:,} records: their team's "
        f"({sizes.team_size} owners) and their region's; both sides return the "
        f"same {len(ids)} ids (first {ids[:3]}) and the same count",
        f"indexes on opportunity: {', '.join(setup.indexes)}",
        f"{sizes.requests} requests per side and variant, alternating which goes "
        "first; wall-clock medians",
        f"statements per request with the count: ours {statements['ours']}, "
        f"baseline {statements['baseline']}",
    ]
    for name, timings in runs.items():
        lines.append(
            f"{name}: ours {timings.milliseconds('ours'):,.2f} ms, baseline "
            f"{timings.milliseconds('baseline'):,.2f} ms, "
            f"{timings.ratio():.2f}×"
        )
    return lines


def profile(*, quick: bool = False) -> pstats.Stats | None:
    """Profile our API requests (with the count); ``None`` without a database."""
    sizes = QUICK if quick else FULL
    url = postgres_url()
    if url is None:
        return None
    setup = prepare(url, sizes)
    profiler = cProfile.Profile()
    try:
        get = _getter(
            setup.app.test_client(), {"Authorization": f"Bearer {setup.token}"}
        )
        get(True)
        for _ in range(sizes.requests):
            profiler.enable()
            get(True)
            profiler.disable()
    finally:
        setup.platform.engine.dispose()
        drop_schema(url, SCHEMA)
    return pstats.Stats(profiler)
