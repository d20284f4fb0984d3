"""(e) Evaluating conditions: our compiled rules against the panzi-json-logic package.

Side by side in one run, on two workloads: (1) the official JSON Logic suite
(jsonlogic.com's tests.json, read from ``../shared``), every case that both engines
accept; (2) twenty validation-like rules (stage, amount, dates, text, ``is_blank``,
``in``, nested ``and``/``or``) over one realistic opportunity record. Both sides
run the same JSON on the same data; panzi-json-logic gets ``is_blank`` as a custom
operation, the one CRM operation the rules use. Ours compiles each condition once
(``compile_condition``) and calls the result; panzi-json-logic interprets the JSON
on each call, which is its only way.

Time is the CPU time of this process (``time.process_time``), so that other jobs
on a shared machine do not tilt the comparison; rounds alternate which side goes
first, and the figures are medians over the rounds.
"""

from __future__ import annotations

import cProfile
import gc
import json
import pstats
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tailorcrm.rules_engine import compile_condition, truthy

from ._support import Result, median, sides_in_turn

TARGET_RATIO = 3.0
SUITE = (
    Path(__file__).resolve().parents[1].parent
    / "shared"
    / "conformance"
    / "jsonlogic"
    / "tests.json"
)


@dataclass(frozen=True)
class Sizes:
    rounds: int
    #: Passes over the workload per round and side.
    suite_passes: int
    rule_passes: int


FULL = Sizes(rounds=21, suite_passes=40, rule_passes=600)
QUICK = Sizes(rounds=3, suite_passes=2, rule_passes=20)


def _var(name: str) -> dict[str, Any]:
    return {"var": name}


#: Twenty checks of the kind an Opportunity's validation rules make.
RULES: list[Any] = [
    {"and": [{"==": [_var("stage"), "lost"]}, {"is_blank": _var("loss_reason")}]},
    {
        "and": [
            {"in": [_var("stage"), ["propose", "negotiate"]]},
            {"<": [_var("amount"), 1000]},
        ]
    },
    {">": [_var("discount"), 20]},
    {
        "and": [
            {">": [_var("discount"), 10]},
            {"!": {"in": ["manager", _var("$user.roles")]}},
        ]
    },
    {"<": [_var("close_date"), _var("created")]},
    {"and": [{"==": [_var("stage"), "won"]}, {"<": [_var("probability"), 100]}]},
    {"or": [{"<": [_var("probability"), 0]}, {">": [_var("probability"), 100]}]},
    {
        "and": [
            {"==": [_var("account.country"), "DE"]},
            {"is_blank": _var("account.industry")},
        ]
    },
    {"!": {"<=": ["2025-01-01", _var("close_date"), "2026-12-31"]}},
    {"in": ["test", _var("title")]},
    {
        "and": [
            {">": [_var("amount"), 100_000]},
            {"<": [_var("account.employees"), 50]},
        ]
    },
    {"if": [{"==": [_var("stage"), "won"]}, {"is_blank": _var("next_step")}, False]},
    {
        "and": [
            {"!=": [_var("owner_id"), _var("$user.id")]},
            {"in": [_var("stage"), ["won", "lost"]]},
        ]
    },
    {">": [{"*": [_var("amount"), {"/": [_var("probability"), 100]}]}, 1_000_000]},
    {
        "and": [
            {"!": {"is_blank": _var("competitor")}},
            {"==": [_var("stage"), "qualify"]},
        ]
    },
    {"==": [{"substr": [_var("account.country"), 0, 2]}, "US"]},
    {"some": [_var("tags"), {"==": [_var(""), "churn-risk"]}]},
    {
        "or": [
            {
                "and": [
                    {"==": [_var("stage"), "negotiate"]},
                    {"<": [_var("probability"), 40]},
                ]
            },
            {
                "and": [
                    {"==": [_var("stage"), "propose"]},
                    {"<": [_var("probability"), 10]},
                ]
            },
        ]
    },
    {"missing": ["title", "stage", "close_date"]},
    {
        "and": [
            {">=": [_var("amount"), 0]},
            {
                "<=": [
                    {
                        "-": [
                            _var("amount"),
                            {"*": [_var("amount"), {"/": [_var("discount"), 100]}]},
                        ]
                    },
                    0,
                ]
            },
        ]
    },
]

#: The record as a form or the API hands it over (money as a JSON number, since
#: panzi-json-logic cannot multiply a Decimal by a float).
RECORD: dict[str, Any] = {
    "title": "Acme renewal 2025",
    "stage": "propose",
    "amount": 125_000.0,
    "probability": 60,
    "close_date": "2025-06-30",
    "created": "2025-01-15",
    "discount": 12.5,
    "loss_reason": None,
    "competitor": "",
    "account": {"industry": "Retail", "country": "DE", "employees": 1200},
    "owner_id": 7,
    "next_step": "Send proposal",
    "tags": ["renewal", "key"],
    "$user": {"id": 7, "roles": ["sales"]},
}


@dataclass(frozen=True)
class Workload:
    """The same conditions and data, ready for each side."""

    name: str
    ours: list[tuple[Callable[[Any], Any], Any]]
    theirs: list[tuple[Any, Any]]
    passes: int


def _panzi() -> tuple[Callable[..., Any], dict[str, Any]]:
    try:
        from json_logic import jsonLogic
        from json_logic.builtins import BUILTINS
    except ImportError:
        raise RuntimeError(
            "Benchmark (e) compares with panzi-json-logic: install the dev extras "
            "(pip install -e '.[dev]')."
        ) from None

    def is_blank(data: Any, value: Any = None, *rest: Any) -> bool:
        return value is None or value == "" or value == []

    return jsonLogic, {**BUILTINS, "is_blank": is_blank}


def _workloads(sizes: Sizes) -> tuple[list[Workload], Callable[..., Any], Any]:
    apply, operations = _panzi()
    if not SUITE.is_file():
        raise RuntimeError(
            f"Benchmark (e) needs the official JSON Logic suite at {SUITE}."
        )

    entries = json.loads(SUITE.read_text(encoding="utf-8"))
    accepted = []
    for rule, data, _ in (entry for entry in entries if not isinstance(entry, str)):
        try:
            apply(rule, data, operations)
        except Exception:  # noqa: BLE001 - a case it refuses is left out
            continue
        accepted.append((rule, data))

    ours_rules = [compile_condition(rule) for rule in RULES]
    ours_answers = [truthy(rule(RECORD)) for rule in ours_rules]
    their_answers = [truthy(apply(rule, RECORD, operations)) for rule in RULES]
    if ours_answers != their_answers:
        raise RuntimeError(
            "The two engines disagree on the 20 rules, so timing them would compare "
            f"different work: {ours_answers} != {their_answers}."
        )

    suite = Workload(
        "suite",
        [(compile_condition(rule), data) for rule, data in accepted],
        accepted,
        sizes.suite_passes,
    )
    reading = [(rule, data) for rule, data in accepted if _reads_data(rule)]
    suite_reading = Workload(
        "reading",
        [(compile_condition(rule), data) for rule, data in reading],
        reading,
        sizes.suite_passes,
    )
    rules = Workload(
        "rules",
        [(rule, RECORD) for rule in ours_rules],
        [(rule, RECORD) for rule in RULES],
        sizes.rule_passes,
    )
    return [suite, rules, suite_reading], apply, operations


_READERS = {"var", "missing", "missing_some"}


def _reads_data(node: Any) -> bool:
    """Whether a condition reads its data (and so cannot be folded when compiled)."""
    if isinstance(node, list):
        return any(_reads_data(item) for item in node)
    if not isinstance(node, dict) or len(node) != 1:
        return False
    ((name, operand),) = node.items()
    return name in _READERS or _reads_data(operand)


def _run_ours(workload: Workload) -> float:
    pairs = workload.ours
    started = time.process_time()
    for _ in range(workload.passes):
        for rule, data in pairs:
            rule(data)
    return time.process_time() - started


def _run_theirs(
    workload: Workload, apply: Callable[..., Any], operations: Any
) -> float:
    pairs = workload.theirs
    started = time.process_time()
    for _ in range(workload.passes):
        for rule, data in pairs:
            apply(rule, data, operations)
    return time.process_time() - started


def measure(*, quick: bool = False) -> Result:
    """Time both engines on both workloads, alternating; compare the medians."""
    sizes = QUICK if quick else FULL
    workloads, apply, operations = _workloads(sizes)
    rates: dict[tuple[str, str], list[float]] = {}
    for workload in workloads:
        _run_ours(workload)  # warm both sides (caches, first-call costs)
        _run_theirs(workload, apply, operations)
        count = workload.passes * len(workload.ours)
        for order in sides_in_turn(sizes.rounds, ("ours", "theirs")):
            for side in order:
                gc.collect()
                if side == "ours":
                    elapsed = _run_ours(workload)
                else:
                    elapsed = _run_theirs(workload, apply, operations)
                rates.setdefault((workload.name, side), []).append(
                    count / max(elapsed, 1e-9)
                )

    figures = {key: median(values) for key, values in rates.items()}
    ratios = {
        name: figures[(name, "ours")] / figures[(name, "theirs")]
        for name in ("suite", "rules")
    }
    suite, rules, reading = workloads
    reading_ratio = figures[("reading", "ours")] / figures[("reading", "theirs")]
    return Result(
        benchmark="(e) rule evaluation: official suite, 20 rules on an opportunity",
        measured=(
            f"{figures[('suite', 'ours')]:,.0f} / {figures[('rules', 'ours')]:,.0f} "
            "evaluations/s"
        ),
        reference=(
            f"{figures[('suite', 'theirs')]:,.0f} / "
            f"{figures[('rules', 'theirs')]:,.0f} evaluations/s (panzi-json-logic)"
        ),
        comparison=f"{ratios['suite']:.1f}× / {ratios['rules']:.1f}× faster",
        target=f"≥ {TARGET_RATIO:g}× on both",
        met=min(ratios.values()) >= TARGET_RATIO,
        details=[
            f"suite: the {len(suite.ours)} cases of tests.json that both engines "
            f"accept, {suite.passes} passes per round; conditions that read no "
            "data are evaluated once when compiled (constant folding); the "
            f"{len(reading.ours)} cases that read data alone: "
            f"{figures[('reading', 'ours')]:,.0f} vs "
            f"{figures[('reading', 'theirs')]:,.0f} evaluations/s, "
            f"{reading_ratio:.1f}× faster",
            f"rules: {len(RULES)} validation-like rules on one opportunity record, "
            f"{rules.passes} passes per round; both engines give the same answers",
            f"{sizes.rounds} rounds per workload, alternating which side goes first; "
            "CPU time of this process; medians",
        ],
    )


def profile(*, quick: bool = False) -> pstats.Stats:
    """Profile our side on both workloads."""
    sizes = QUICK if quick else FULL
    workloads, _, _ = _workloads(sizes)
    profiler = cProfile.Profile()
    for workload in workloads:
        _run_ours(workload)
        for _ in range(sizes.rounds):
            profiler.enable()
            _run_ours(workload)
            profiler.disable()
    return pstats.Stats(profiler)
