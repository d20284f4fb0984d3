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
from contextlib import contextmanager
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
    Result,
    median,
    open_platform,
    sides_in_turn,
    temporary_database,
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


@contextmanager
def _sides(
    sizes: Sizes, names: tuple[str, ...] = SIDE_NAMES
) -> Iterator[dict[str, Side]]:
    with (
        temporary_database("rules") as ruled_url,
        temporary_database("none") as plain_url,
        temporary_database("local") as local_url,
    ):
        urls = {"rules": ruled_url, "none": plain_url, "local": local_url}
        sides = {
            name: open_side(urls[name], SIDES[name], pool=sizes.pool) for name in names
        }
        try:
            if len(sides) == len(SIDES):
                check_rules_run(sides)
            for side in sides.values():
                for kind in KINDS:
                    for via in VIAS:
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


def measure(*, quick: bool = False) -> Result:
    """Time creates and updates on every side and both paths, alternating; compare
    the medians. The target is judged on the record service, the save alone."""
    sizes = QUICK if quick else FULL
    per_save: dict[_Key, list[float]] = {}
    per_round: dict[_Key, list[float]] = {}
    with _sides(sizes) as sides:
        for number, order in enumerate(_order(sizes.rounds)):
            for kind in KINDS:
                for via in VIAS:
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

    figures = {key: median(values) for key, values in per_save.items()}

    def ratio(kind: str, name: str, clock: str = "cpu", via: str = "service") -> float:
        return figures[(clock, via, kind, name)] / figures[(clock, via, kind, "none")]

    def pair(name: str, via: str = "service") -> str:
        return (
            f"{figures[('cpu', via, 'create', name)]:,.0f} / "
            f"{figures[('cpu', via, 'update', name)]:,.0f} µs"
        )

    ratios = {kind: ratio(kind, "rules") for kind in KINDS}
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
    ]
    for kind in KINDS:
        paired = [
            ours / plain
            for ours, plain in zip(
                per_round[("cpu", "service", kind, "rules")],
                per_round[("cpu", "service", kind, "none")],
                strict=True,
            )
        ]
        details.append(
            f"{kind}: per-round ratios median {median(paired):.2f}×, range "
            f"{min(paired):.2f}–{max(paired):.2f}×; wall clock "
            f"{figures[('wall', 'service', kind, 'rules')]:,.0f} vs "
            f"{figures[('wall', 'service', kind, 'none')]:,.0f} µs "
            f"({ratio(kind, 'rules', 'wall'):.2f}×); queries per save "
            f"{queries[(kind, 'rules')]} vs {queries[(kind, 'none')]}"
        )
    details.append(
        f"the {len(LOCAL_RULES)} rules without the roll-up and the formula through "
        f"the lookup (they read only the record saved): {pair('local')}, "
        f"{ratio('create', 'local'):.2f}× / {ratio('update', 'local'):.2f}× the "
        f"time without rules, queries per save {queries[('create', 'local')]} / "
        f"{queries[('update', 'local')]}"
    )
    details.append(
        "through the API (POST and PATCH with a bearer token, the request's work "
        f"around the same save): {pair('rules', 'api')} vs {pair('none', 'api')} "
        f"without rules, {ratio('create', 'rules', via='api'):.2f}× / "
        f"{ratio('update', 'rules', via='api'):.2f}× the time; the 18 rules: "
        f"{ratio('create', 'local', via='api'):.2f}× / "
        f"{ratio('update', 'local', via='api'):.2f}×"
    )
    return Result(
        benchmark="(f) a save with 20 rules vs none",
        measured=f"{pair('rules')} per create / update",
        reference=f"{pair('none')} (no rules)",
        comparison=f"{ratios['create']:.2f}× / {ratios['update']:.2f}× the time",
        target=f"≤ {TARGET_RATIO:g}× on both",
        met=max(ratios.values()) <= TARGET_RATIO,
        details=details,
    )


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
