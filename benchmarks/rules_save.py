"""(f) A save with 20 rules against the same save with none.

Platforms on SQLite files of their own, with the same Account and Opportunity
entities (those of the other benchmarks, plus the fields the rules read and fill;
see :mod:`._sales_rules`). One gets the 20 rule documents, one gets none, and a
third gets the 18 of them that read only the record being saved: without the
roll-up onto the account and the formula that reads the account's name, which need
queries of their own. The third shows how much of the difference those two cost.
Before anything is timed, the run checks that the rules do run: a saved record has
its defaults and formula values, the account its roll-up, bad records are refused,
and the automation sets its field.

Each save goes through the record service in a transaction of its own, the way the
API's requests do: ``with platform.records(actor) as service: service.create(...)``,
then the same with ``service.update(...)``. Every save is timed on its own, commit
included, on the CPU time of this process (other jobs on a shared machine do not
tilt it) and on the wall clock; rounds alternate which side goes first, and the
figures are medians of single saves.

The comparison runs on SQLite, and again on PostgreSQL (the production database)
when ``TAILORCRM_BENCH_POSTGRES_URL`` names one: there each side gets a schema of
its own, saves go through the record service only, and the target is judged on
the wall clock too, since the database server's work runs in a process of its own
and the CPU time of this one does not count it.
"""

from __future__ import annotations

import cProfile
import functools
import gc
import json
import pstats
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import sqlalchemy as sa
from flask.testing import FlaskClient

from tailorcrm.errors import ValidationFailed
from tailorcrm.platform import Platform
from tailorcrm.platform.access import set_user_roles
from tailorcrm.platform.auth import create_token, create_user
from tailorcrm.platform.records import Actor

from ._sales_rules import (
    ACCOUNTS,
    AUTOMATION_EVERY,
    DEFAULTS,
    FIELD_STATES,
    FORMULAS,
    HANDOVER,
    LOCAL_RULES,
    OPEN_STAGES,
    RULED_ACCOUNT,
    RULED_OPPORTUNITY,
    RULES,
    VALIDATIONS,
    account_name,
    create_body,
    update_body,
)
from ._support import (
    POSTGRES_URL_VARIABLE,
    Result,
    median,
    open_platform,
    postgres_url,
    sides_in_turn,
    temporary_database,
    temporary_schema,
)

TARGET_RATIO = 1.3
KINDS = ("create", "update")
#: The rule documents of each side.
SIDES: dict[str, list[dict[str, Any]]] = {
    "rules": RULES,
    "none": [],
    "local": LOCAL_RULES,
}
SIDE_NAMES = tuple(SIDES)
#: The two ways a save is made: a call of the record service, and a request to
#: the API (the service call with the request's work around it).
VIAS = ("service", "api")
#: Each save is timed on two clocks; the figures compared are CPU time.
CLOCKS = ("cpu", "wall")


@dataclass(frozen=True)
class Sizes:
    rounds: int
    #: Saves of each kind per round and side.
    saves: int
    warmup: int
    #: Stored opportunities that the updates change, in turn.
    pool: int


FULL = Sizes(rounds=24, saves=100, warmup=100, pool=400)
QUICK = Sizes(rounds=2, saves=10, warmup=5, pool=20)


@dataclass
class Side:
    """One platform, ready for saves: who saves, and the records updates change.

    Saves go through the record service, or as requests to the API with the same
    user's bearer token (``api_create`` and ``api_update``, with bodies already
    written as JSON, so that encoding them is not timed).
    """

    platform: Platform
    actor: Actor
    pool: list[int]
    client: FlaskClient
    headers: dict[str, str]

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.platform.records(self.actor) as service:
            return service.create("opportunity", body)

    def update(self, record_id: int, body: dict[str, Any]) -> dict[str, Any]:
        with self.platform.records(self.actor) as service:
            return service.update("opportunity", record_id, body)

    def api_create(self, body: bytes) -> None:
        self._sent("POST", "/api/v1/opportunity", body, 201)

    def api_update(self, record_id: int, body: bytes) -> None:
        self._sent("PATCH", f"/api/v1/opportunity/{record_id}", body, 200)

    def _sent(self, method: str, path: str, body: bytes, status: int) -> None:
        response = self.client.open(
            path,
            method=method,
            data=body,
            headers=self.headers,
            content_type="application/json",
        )
        if response.status_code != status:
            raise RuntimeError(
                f"{method} {path} answered {response.status_code}: "
                f"{response.text[:500]}"
            )

    def get(self, entity: str, record_id: int) -> dict[str, Any]:
        with self.platform.records(self.actor) as service:
            return service.get(entity, record_id)


EVERYTHING = {"create": "all", "read": "all", "edit": "all", "delete": "all"}
SELLER = {
    "kind": "role",
    "name": "seller",
    "label": "Seller",
    "entities": {"opportunity": EVERYTHING, "account": EVERYTHING},
}


def open_side(url: str, rules: list[dict[str, Any]], *, pool: int) -> Side:
    """A platform with the entities and ``rules``, a user, the accounts and
    ``pool`` stored opportunities for the updates."""
    app, platform = open_platform(url)
    documents = [("", RULED_ACCOUNT), ("", RULED_OPPORTUNITY)]
    platform.store.apply(documents + [("", rule) for rule in rules], actor="bench")
    with platform.engine.begin() as connection:
        user = create_user(connection, "bench", "bench-password-1")
        token = create_token(connection, user)
    # A seller with every right on both entities: the API checks the access a
    # user's roles give, as in use; the record service is called with full rights.
    platform.store.apply([("", SELLER)], actor="bench")
    with platform.transaction() as (connection, catalog):
        set_user_roles(connection, catalog, "bench", [SELLER["name"]])
    headers = {"Authorization": f"Bearer {token}"}
    side = Side(platform, user.actor(), [], app.test_client(), headers)
    with platform.records(side.actor) as service:
        ids, _ = service.create_many(
            "account", [{"name": account_name(n)} for n in range(1, ACCOUNTS + 1)]
        )
    if ids != list(range(1, ACCOUNTS + 1)):
        raise RuntimeError(f"The accounts should have ids 1 to {ACCOUNTS}.")
    # Open opportunities only: updates change their amount, which a won one locks.
    for number in range(pool):
        side.pool.append(side.create(create_body(number * 4, prefix="S"))["id"])
    return side


# -- checking that the rules run --------------------------------------------------


def check_rules_run(sides: dict[str, Side]) -> None:
    """Stop unless each side has its rules in force and they do what they say.

    :raises RuntimeError: a rule did not do what it says, so the comparison would
        not measure the rules' work.
    """
    for name, side in sides.items():
        expected = Counter(rule["type"] for rule in SIDES[name])
        found = _rule_counts(side.platform)
        _require(found == expected, f"the rules in force on {name!r}: {found}")

    ruled, plain, local = sides["rules"], sides["none"], sides["local"]
    body = create_body(1, prefix="CHECK")
    saved = ruled.create(body)
    weighted = _cents(body["amount"] * body["probability"] / 100)
    _require(Decimal(str(saved["weighted_amount"])) == weighted, "the formula")
    _require(
        saved["account_name"] == account_name(body["account"]),
        "the formula through a lookup",
    )
    _require(
        (saved["priority"], saved["forecast"], saved["source"])
        == ("high" if body["amount"] > 50_000 else "normal", "pipeline", "sales"),
        "the defaults",
    )
    account = ruled.get("account", body["account"])
    _require(
        Decimal(str(account["open_pipeline"]))
        == _open_pipeline(ruled, body["account"]),
        "the roll-up",
    )
    changed = ruled.update(saved["id"], {"probability": 50})
    _require(
        Decimal(str(changed["weighted_amount"])) == _cents(body["amount"] / 2),
        "the formula after an update",
    )
    handed = ruled.create(create_body(2, prefix="CHECK"))
    _require(handed["next_step"] == HANDOVER, "the automation")

    for side in (ruled, local):
        _require_refusals(side)
    _require(plain.create(body)["weighted_amount"] is None, "the side without rules")
    in_local = local.create(body)
    _require(
        Decimal(str(in_local["weighted_amount"])) == weighted
        and in_local["account_name"] is None,
        "the formulas of the side with 18 rules",
    )


def _require_refusals(side: Side) -> None:
    for bad, code in (
        ({"stage": "lost"}, "rule"),
        ({"stage": "propose"}, "required"),
        ({"probability": 120}, "rule"),
    ):
        try:
            side.create({**create_body(3, prefix="BAD"), **bad})
        except ValidationFailed as error:
            codes = {problem.code for problem in error.problems}
            _require(code in codes, f"the refusal of {bad}: {codes}")
        else:
            _require(False, f"the refusal of {bad}")


def _rule_counts(platform: Platform) -> Counter[str]:
    with platform.reading() as (_, catalog):
        opportunity = catalog.rules.for_entity("opportunity")
        account = catalog.rules.for_entity("account")
    found = Counter(
        {
            "validation": len(opportunity.validations),
            "field_state": len(opportunity.field_states),
            "default": len(opportunity.defaults),
            "formula": len(opportunity.formulas),
            "rollup": len(account.rollup_fields),
            "automation": len(opportunity.automations),
        }
    )
    return +found


def _cents(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _open_pipeline(side: Side, account: int) -> Decimal:
    with side.platform.reading() as (connection, catalog):
        table = catalog.entity("opportunity").table
        amounts = connection.execute(
            sa.select(table.c.amount).where(
                table.c.account == account, table.c.stage.in_(OPEN_STAGES)
            )
        ).scalars()
        return sum((Decimal(str(amount)) for amount in amounts), Decimal(0))


def _require(condition: bool, what: str) -> None:
    if not condition:
        raise RuntimeError(
            "Benchmark (f) checks that the rules run before timing them; "
            f"{what} is not as expected."
        )


# -- timing ---------------------------------------------------------------------

_Save = Callable[[], object]


def _work(
    side: Side, kind: str, round_number: int, count: int, *, via: str = "service"
) -> list[_Save]:
    """The saves of one round: the same bodies on every side, through the record
    service or (``via="api"``) as requests."""
    api = via == "api"
    # Creates of either path carry unique ERP codes of their own.
    prefix = "A" if api else "R"
    if kind == "create":
        create = side.api_create if api else side.create
        return [
            functools.partial(
                create,
                _body(create_body(number, prefix=f"{prefix}{round_number}"), api),
            )
            for number in range(count)
        ]
    update = side.api_update if api else side.update
    return [
        functools.partial(
            update,
            side.pool[(round_number * count + number) % len(side.pool)],
            # Other values than the service's saves of the round, so that each
            # request changes the record it saves.
            _body(
                update_body(number, round_number=round_number + (1000 if api else 0)),
                api,
            ),
        )
        for number in range(count)
    ]


def _body(body: dict[str, Any], api: bool) -> Any:
    # The API takes decimals as text, as a browser or an integration sends them.
    return json.dumps(body, default=str).encode() if api else body


def _timed(saves: list[_Save]) -> dict[str, list[float]]:
    """Run each save; return the microseconds each took, on each clock."""
    gc.collect()
    taken: dict[str, list[float]] = {clock: [] for clock in CLOCKS}
    for save in saves:
        wall, cpu = time.perf_counter_ns(), time.process_time_ns()
        save()
        taken["cpu"].append((time.process_time_ns() - cpu) / 1000)
        taken["wall"].append((time.perf_counter_ns() - wall) / 1000)
    return taken


def _order(rounds: int) -> Iterator[tuple[str, ...]]:
    """The sides of each round: the two with rules swap places every round, the
    one without sits between them."""
    for first, second in sides_in_turn(rounds, ("rules", "local")):
        yield first, "none", second


#: The databases compared: SQLite files always, PostgreSQL schemas when the
#: benchmarks' PostgreSQL database is set.
DATABASES = ("sqlite", "postgresql")
DATABASE_NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


def _database(database: str, name: str) -> AbstractContextManager[str]:
    """A new, empty database for one side: a SQLite file, or a schema of its own in
    the PostgreSQL database (dropped afterwards)."""
    if database == "sqlite":
        return temporary_database(name)
    url = postgres_url()
    if url is None:
        raise RuntimeError(f"{POSTGRES_URL_VARIABLE} is not set.")
    return temporary_schema(url, f"tailorcrm_bench_f_{name}")


@contextmanager
def _sides(
    sizes: Sizes,
    names: tuple[str, ...] = SIDE_NAMES,
    *,
    database: str = "sqlite",
    vias: tuple[str, ...] = VIAS,
) -> Iterator[dict[str, Side]]:
    with ExitStack() as stack:
        urls = {name: stack.enter_context(_database(database, name)) for name in names}
        sides = {
            name: open_side(urls[name], SIDES[name], pool=sizes.pool) for name in names
        }
        try:
            if len(sides) == len(SIDES):
                check_rules_run(sides)
            for side in sides.values():
                for kind in KINDS:
                    for via in vias:
                        for save in _work(side, kind, -1, sizes.warmup, via=via):
                            save()
            yield sides
        finally:
            for side in sides.values():
                side.platform.engine.dispose()


def queries_per_save(side: Side, kind: str) -> int:
    """How many SQL statements one save runs, besides beginning and committing."""
    count = 0

    def counted(*arguments: Any) -> None:
        nonlocal count
        statement = str(arguments[2])
        count += not statement.startswith("BEGIN")

    engine = side.platform.engine
    (save,) = _work(side, kind, 10_000, 1)
    sa.event.listen(engine, "before_cursor_execute", counted)
    try:
        save()
    finally:
        sa.event.remove(engine, "before_cursor_execute", counted)
    return count


_Key = tuple[str, str, str, str]


@dataclass
class Comparison:
    """The timings of one database: single saves and round medians by (clock,
    path, kind, side), and the statements of one save by (kind, side)."""

    database: str
    per_save: dict[_Key, list[float]]
    per_round: dict[_Key, list[float]]
    queries: dict[tuple[str, str], int]

    @functools.cached_property
    def figures(self) -> dict[_Key, float]:
        return {key: median(values) for key, values in self.per_save.items()}

    def ratio(
        self, kind: str, name: str, clock: str = "cpu", via: str = "service"
    ) -> float:
        figures = self.figures
        return figures[(clock, via, kind, name)] / figures[(clock, via, kind, "none")]

    def pair(self, name: str, via: str = "service", clock: str = "cpu") -> str:
        figures = self.figures
        return (
            f"{figures[(clock, via, 'create', name)]:,.0f} / "
            f"{figures[(clock, via, 'update', name)]:,.0f} µs"
        )

    def ratios(self, name: str = "rules", clock: str = "cpu") -> str:
        return " / ".join(f"{self.ratio(kind, name, clock):.2f}×" for kind in KINDS)

    def paired(self, kind: str) -> list[float]:
        """The ratio of each round's medians, on the CPU clock."""
        return [
            ours / plain
            for ours, plain in zip(
                self.per_round[("cpu", "service", kind, "rules")],
                self.per_round[("cpu", "service", kind, "none")],
                strict=True,
            )
        ]


def compare(
    sizes: Sizes, *, database: str = "sqlite", vias: tuple[str, ...] = VIAS
) -> Comparison:
    """Time creates and updates on every side and path of one database, sides
    alternating within each round."""
    per_save: dict[_Key, list[float]] = {}
    per_round: dict[_Key, list[float]] = {}
    with _sides(sizes, database=database, vias=vias) as sides:
        for number, order in enumerate(_order(sizes.rounds)):
            for kind in KINDS:
                for via in vias:
                    for name in order:
                        work = _work(sides[name], kind, number, sizes.saves, via=via)
                        for clock, values in _timed(work).items():
                            key = (clock, via, kind, name)
                            per_save.setdefault(key, []).extend(values)
                            per_round.setdefault(key, []).append(median(values))
        queries = {
            (kind, name): queries_per_save(side, kind)
            for kind in KINDS
            for name, side in sides.items()
        }
    return Comparison(database, per_save, per_round, queries)


def _met(comparison: Comparison, clocks: tuple[str, ...]) -> bool:
    return all(
        comparison.ratio(kind, "rules", clock) <= TARGET_RATIO
        for kind in KINDS
        for clock in clocks
    )


def measure(*, quick: bool = False) -> Result:
    """Time creates and updates on every side and both paths, alternating; compare
    the medians. The target is judged on the record service, the save alone: on
    SQLite on the CPU time of this process, and, when the benchmarks' PostgreSQL
    database is set, on PostgreSQL on both clocks (the wall clock counts the
    database server's work, which runs in a process of its own)."""
    sizes = QUICK if quick else FULL
    found = compare(sizes)
    url = postgres_url()
    server = compare(sizes, database="postgresql", vias=("service",)) if url else None

    details = [
        f"{sizes.rounds} rounds × {sizes.saves} creates and {sizes.saves} updates "
        f"per side and path, {sizes.warmup} warm-up saves of each, alternating which "
        "side goes first; each save in its own transaction through the record "
        "service, and again as API requests; medians of single saves, CPU time of "
        "this process",
        f"the rules: {len(VALIDATIONS)} validations, {len(FIELD_STATES)} field "
        f"states, {len(DEFAULTS)} defaults, {len(FORMULAS)} formulas (one reads "
        "account.name), 1 roll-up onto the account, 1 automation (it sets a field "
        f"on 1 create in {AUTOMATION_EVERY})",
        *_database_details(found),
    ]
    if server is not None:
        details.append(
            "PostgreSQL, each side in a schema of its own, the same rounds through "
            "the record service only:"
        )
        details += _database_details(server)
    else:
        details.append(
            f"PostgreSQL: {POSTGRES_URL_VARIABLE} is not set, so only SQLite ran"
        )
    measured = f"SQLite: {found.pair('rules')}"
    reference = f"SQLite: {found.pair('none')} (no rules)"
    comparison = f"SQLite: {found.ratios()} the time"
    target = f"≤ {TARGET_RATIO:g}× on both"
    if server is not None:
        measured += f"; PostgreSQL: {server.pair('rules', clock='wall')} (wall clock)"
        reference += f"; PostgreSQL: {server.pair('none', clock='wall')}"
        comparison += (
            f"; PostgreSQL: {server.ratios(clock='wall')} (wall clock), "
            f"{server.ratios()} (CPU time)"
        )
        target += ", on each database and clock measured"
    return Result(
        benchmark="(f) a save with 20 rules vs none",
        measured=measured + " per create / update",
        reference=reference,
        comparison=comparison,
        target=target,
        met=_met(found, ("cpu",)) and (server is None or _met(server, ("cpu", "wall"))),
        details=details,
    )


def _database_details(found: Comparison) -> list[str]:
    """The lines of one database: round ratios, the wall clock, statements, and
    the other sides and path where they ran."""
    name = DATABASE_NAMES[found.database]
    lines = []
    for kind in KINDS:
        paired = found.paired(kind)
        figures = found.figures
        lines.append(
            f"{name}, {kind}: per-round ratios median {median(paired):.2f}×, range "
            f"{min(paired):.2f}–{max(paired):.2f}×; wall clock "
            f"{figures[('wall', 'service', kind, 'rules')]:,.0f} vs "
            f"{figures[('wall', 'service', kind, 'none')]:,.0f} µs "
            f"({found.ratio(kind, 'rules', 'wall'):.2f}×); queries per save "
            f"{found.queries[(kind, 'rules')]} vs {found.queries[(kind, 'none')]}"
        )
    lines.append(
        f"{name}, the {len(LOCAL_RULES)} rules without the roll-up and the formula "
        f"through the lookup (they read only the record saved): "
        f"{found.pair('local')} CPU time, {found.ratios('local')} the time without "
        "rules, "
        f"queries per save {found.queries[('create', 'local')]} / "
        f"{found.queries[('update', 'local')]}"
    )
    if ("cpu", "api", "create", "rules") in found.figures:
        lines.append(
            f"{name}, through the API (POST and PATCH with a bearer token, the "
            f"request's work around the same save): {found.pair('rules', 'api')} vs "
            f"{found.pair('none', 'api')} without rules, "
            f"{found.ratio('create', 'rules', via='api'):.2f}× / "
            f"{found.ratio('update', 'rules', via='api'):.2f}× the time; the "
            f"{len(LOCAL_RULES)} rules: "
            f"{found.ratio('create', 'local', via='api'):.2f}× / "
            f"{found.ratio('update', 'local', via='api'):.2f}×"
        )
    return lines


def profile(*, quick: bool = False) -> pstats.Stats:
    """Profile the saves of the side with the 20 rules, creates and updates."""
    sizes = QUICK if quick else FULL
    profiler = cProfile.Profile()
    with _sides(sizes, ("rules",)) as sides:
        for number in range(sizes.rounds):
            for kind in KINDS:
                saves = _work(sides["rules"], kind, number, sizes.saves)
                profiler.enable()
                for save in saves:
                    save()
                profiler.disable()
    return pstats.Stats(profiler)
