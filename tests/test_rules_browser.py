"""The browser evaluator gives the Python engine's answer to every condition.

``tailorcrm/renderer/static/rules.js`` runs under node through
``tests/rules_node_runner.js`` on: the official JSON Logic suite, the community
suites the Python engine runs, every documented example of OPERATIONS.md, the case
table below (empty groups, nulls, blanks, dates, decimals, hostile patterns,
failures) and random conditions over random records. Each case runs lenient and
strict; all cases of a test go to one node process.

Answers are compared after one canonical form:

- numbers by the exact value of their shortest decimal text, as the conformance
  tests compare them; JSON does not tell 1 from 1.0, so an int and a float of the
  same value are the same answer, but a Decimal must come back as a decimal;
- dates and moments as ISO text, which is how both sides hand them out;
- a refused condition by its code and path, a strict failure by its error type and
  error value.

node is required when ``TAILORCRM_TEST_REQUIRE_NODE=1`` (as CI sets it); otherwise
the tests are skipped without it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tailorcrm.rules_engine as rules_engine
from tailorcrm.rules_engine import ConditionError, EvaluationError, compile_condition
from tests.conftest import ROOT, SHARED

NODE = shutil.which("node")
REQUIRE_NODE = os.environ.get("TAILORCRM_TEST_REQUIRE_NODE") == "1"
RUNNER = Path(__file__).with_name("rules_node_runner.js")
RULES_JS = ROOT / "tailorcrm" / "renderer" / "static" / "rules.js"
SUITES = SHARED / "conformance" / "jsonlogic"
OPERATIONS_MD = Path(rules_engine.__file__).with_name("OPERATIONS.md")

if NODE is None and REQUIRE_NODE:  # pragma: no cover - depends on the machine
    raise RuntimeError("TAILORCRM_TEST_REQUIRE_NODE=1 but node is not on PATH.")
pytestmark = pytest.mark.skipif(
    NODE is None,
    reason="node is not on PATH (set TAILORCRM_TEST_REQUIRE_NODE=1 to fail)",
)

UTC = dt.UTC
D = dt.date
DT = dt.datetime
NOW = "2024-05-31T12:00:00Z"


@dataclass(frozen=True)
class Case:
    """One condition and its data, run lenient or strict on both sides."""

    id: str
    condition: Any
    data: Any = None
    strict: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)

    def for_node(self) -> dict[str, Any]:
        return {
            "condition": typed(self.condition),
            "data": typed(self.data),
            "strict": self.strict,
            "typed": True,
            **{name: typed(value) for name, value in self.options.items()},
        }


def typed(value: Any) -> Any:
    """JSON for the runner, with Decimals and dates written as tagged objects."""
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, dt.datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, (list, tuple)):
        return [typed(item) for item in value]
    if isinstance(value, Mapping):
        return {key: typed(item) for key, item in value.items()}
    return value


def with_options(data: Any, options: Mapping[str, Any]) -> Any:
    """The data with $now, $prior and $user put in, as the runner does."""
    if not options:
        return data
    merged = dict(data) if isinstance(data, Mapping) else {}
    for name, value in options.items():
        merged[f"${name}"] = value
    return merged


def canonical(value: Any) -> Any:
    """A Python result in the form answers are compared in (see the module doc)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, Decimal):
        return ("decimal", value)
    if isinstance(value, float):
        return ("number", Decimal(repr(value)))
    if isinstance(value, int):
        return ("number", Decimal(value))
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [canonical(item) for item in value]
    if isinstance(value, Mapping):
        return {key: canonical(item) for key, item in value.items()}
    return ("other", repr(value))


def from_node(value: Any) -> Any:
    """A value the runner wrote, in the same canonical form."""
    if isinstance(value, dict):
        if list(value) == ["$decimal"]:
            return ("decimal", Decimal(value["$decimal"]))
        return {key: from_node(item) for key, item in value.items()}
    if isinstance(value, list):
        return [from_node(item) for item in value]
    return canonical(value)


def python_answer(case: Case) -> Any:
    data = with_options(case.data, case.options)
    try:
        result = compile_condition(case.condition, strict=case.strict)(data)
    except ConditionError as error:
        return ("condition_error", error.code, error.path)
    except EvaluationError as error:
        return ("evaluation_error", error.type, canonical(error.value))
    return ("value", canonical(result))


def node_answer(answer: dict[str, Any]) -> Any:
    if "value" in answer:
        return ("value", from_node(answer["value"]))
    error = answer["error"]
    if error["kind"] == "condition":
        return ("condition_error", error["code"], error["path"])
    if error["kind"] == "evaluation":
        return ("evaluation_error", error["type"], from_node(error["value"]))
    return ("crash", error["message"])


def run_batch(cases: list[Case], folder: Path) -> list[dict[str, Any]]:
    """Run every case through one node process; return its answers in order."""
    assert NODE is not None
    source, target = folder / "cases.json", folder / "answers.json"
    source.write_text(json.dumps([case.for_node() for case in cases]), "utf-8")
    subprocess.run(
        [NODE, str(RUNNER), str(source), str(target)],
        check=True,
        timeout=300,
        capture_output=True,
    )
    answers: list[dict[str, Any]] = json.loads(target.read_text("utf-8"))
    return answers


def both_modes(
    case_id: str, condition: Any, data: Any = None, **options: Any
) -> list[Case]:
    return [
        Case(f"{case_id}:{mode}", condition, data, mode == "strict", options)
        for mode in ("lenient", "strict")
    ]


def disagreements(cases: list[Case], answers: list[dict[str, Any]]) -> list[str]:
    found = []
    for case, answer in zip(cases, answers, strict=True):
        ours, theirs = python_answer(case), node_answer(answer)
        if ours != theirs:
            found.append(f"{case.id}: python {ours!r} != browser {theirs!r}")
    return found


# -- the suites -----------------------------------------------------------------------


def official_cases() -> list[Case]:
    entries = json.loads((SUITES / "tests.json").read_text(encoding="utf-8"))
    rows = [entry for entry in entries if not isinstance(entry, str)]
    return [
        case
        for number, (rule, data, _) in enumerate(rows, start=1)
        for case in both_modes(f"official:{number}", rule, data)
    ]


def community_cases() -> list[Case]:
    folder = SUITES / "compat-suites"
    cases = []
    for name in json.loads((folder / "index.json").read_text(encoding="utf-8")):
        entries = json.loads((folder / name).read_text(encoding="utf-8"))
        rows = [entry for entry in entries if not isinstance(entry, str)]
        for number, row in enumerate(rows, start=1):
            cases += both_modes(f"{name}:{number}", row["rule"], row.get("data"))
    return cases


def documented_cases() -> list[Case]:
    cases = []
    for line in OPERATIONS_MD.read_text(encoding="utf-8").splitlines():
        if not line.startswith("| `"):
            continue
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) != 3:
            continue
        condition, data = (cell.replace("\\|", "|").strip("`") for cell in cells[:2])
        cases += both_modes(
            f"OPERATIONS.md:{condition[:60]}", json.loads(condition), json.loads(data)
        )
    return cases


@pytest.fixture(scope="module")
def suites_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The official, community and documented cases, through one node process."""
    if not SUITES.is_dir():
        pytest.skip(f"the JSON Logic conformance suites are not at {SUITES}")
    groups = {
        "official": official_cases(),
        "community": community_cases(),
        "documented": documented_cases(),
    }
    every = [case for cases in groups.values() for case in cases]
    answers = run_batch(every, tmp_path_factory.mktemp("suites"))
    result: dict[str, Any] = {}
    start = 0
    for name, cases in groups.items():
        result[name] = (cases, answers[start : start + len(cases)])
        start += len(cases)
    return result


def test_official_suite_gives_the_same_answers(suites_run: dict[str, Any]) -> None:
    cases, answers = suites_run["official"]

    assert len(cases) == 2 * 277
    assert disagreements(cases, answers) == []


def test_community_suites_give_the_same_answers(suites_run: dict[str, Any]) -> None:
    """Deliberate differences from the suites included: the browser follows Python."""
    cases, answers = suites_run["community"]

    assert len(cases) == 2 * 1138
    assert disagreements(cases, answers) == []


def test_documented_examples_give_the_same_answers(suites_run: dict[str, Any]) -> None:
    cases, answers = suites_run["documented"]

    assert len(cases) > 2 * 80
    assert disagreements(cases, answers) == []


# -- the case table -------------------------------------------------------------------


def _random_text(alphabet: str, size: int) -> str:
    chooser = random.Random(size)
    return "".join(chooser.choice(alphabet) for _ in range(size))


V = {"var": "v"}
HOSTILE = [
    (r"(a+)+$", "a" * 30_000 + "b"),
    (r"(x+x+)+y", "x" * 30_000),
    (r"^(\w+\s?)*$", "word " * 6_000 + "!"),
    (r"(a|aa)*c", "a" * 30_000),
    (r"[ab]*a[ab]{999}$", _random_text("ab", 31_000)),
    (r"[ab]*a(?:[ab]|c){16}$", _random_text("ab", 32_000)),
    # The last text answered and the first refused as too costly, on both sides.
    (r".{0,999}x", "y" * 998),
    (r".{0,999}x", "y" * 999),
    (r".{0,255}x", "".join(chr(0x4E00 + offset) for offset in range(30_000))),
]
REFUSED_PATTERNS = [
    r"(a)\1", r"(?<n>a)\k<n>", r"(?=a)", r"(?!a)", r"(?<=a)b", r"(?<!a)b", r"(?i)abc",
    r"a**", r"+a", r"(a", r"a)", r"[a", "a\\", r"[z-a]", r"a{3,2}", r"a{1001}",
    r"(a{100}){100}", r"\p{L}", r"\01", "a" * 501, r"(?<>a)", r"\é", r"x{2}{3}",
]  # fmt: skip
ACCEPTED_PATTERNS = [
    (r"^\d{5}$", ["10115", "1011", "١٢٣٤٥", 10115, Decimal("10115.00"), None, True]),
    (r"^[A-Z]-\d+$", ["A-12", "a-12"]),
    (r"^line.break$", ["line\nbreak", "line break", "line\u2028break"]),
    (r"tab\s", ["tab\there", "tab\u00a0x", "tab\ufeffx", "tabx"]),
    (r"\bcat\b", ["the cat sat", "concatenate", "cat", "écat"]),
    (r"\Bcat\B", ["concatenate", "cat"]),
    (r"colou?r", ["color", "colour", "colouur"]),
    (r"^(a|aa)+$", ["aaa", "aab"]),
    (r"^$", ["", "x"]),
    (r"(?:EU|US)-(?<number>\d+)", ["US-12", "UK-12"]),
    (r"a{,2}", ["a{2}", "a{,2}"]),
    (r"{2}", ["{2}", "aa"]),
    (r"\$\d+\.\d{2}", ["price: $10.99", "10.99"]),
    (r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$", ["ann@example.com", "ann@example", "a b@c.de"]),
    (r"^.{3}$", ["x😀y", "😀😀😀", "ab"]),
    (r"[😀-😂]", ["a😁b", "abc"]),
    (r"^\u00e9\x41[\b]?", ["éA", "eA"]),
    (r"[]a]", ["]", "b"]),
    (r"[^]a]", ["]", "b"]),
    (r"a+?b*?", ["aab", "b"]),
    (r"^2024-05-31", [D(2024, 5, 31), DT(2024, 5, 31, 9, 0), "2024-05-31"]),
    (r"x", ["x" * 32_000, "y" * 32_001]),
    # A repeat count is written in the digits 0 to 9; others are literal text.
    (r"^a{١}$", ["a", "a{١}"]),
]
DATES_COMPARED = [
    (D(2024, 5, 31), "==", "2024-05-31"),
    (D(2024, 5, 31), "!=", "2024-05-31"),
    (D(2024, 5, 31), "<", "2024-06-01"),
    (D(2024, 5, 31), ">", D(2024, 5, 30)),
    (D(2024, 5, 31), "==", DT(2024, 5, 31, 0, 0)),
    (D(2024, 5, 31), "<", DT(2024, 5, 31, 0, 1)),
    (DT(2024, 5, 31, 12, 0), "==", DT(2024, 5, 31, 12, 0, tzinfo=UTC)),
    (DT(2024, 5, 31, 12, 0), "==", "2024-05-31T14:00:00+02:00"),
    ("2024-05-31T12:00:00Z", "==", "2024-05-31T14:00:00+02:00"),
    ("2024-05-31T12:00:00Z", "<", "2024-05-31T13:00:00+02:00"),
    ("2024-05-31T12:00:00.5Z", ">", "2024-05-31T12:00:00.25Z"),
    (DT(2024, 5, 31, 9, 0), "<=", "2024-05-31T09:00"),
    (D(2024, 5, 31), "===", "2024-05-31"),
    (D(2024, 5, 31), "===", D(2024, 5, 31)),
    (D(2024, 5, 31), "===", DT(2024, 5, 31)),
    (D(2024, 5, 31), "==", None),
    (D(2024, 5, 31), "<", "tomorrow"),
    (D(2024, 5, 31), "<", 20240601),
    (D(2024, 5, 31), ">", None),
    (D(2024, 5, 31), "==", True),
    ("2024-05-31", "<", "someday"),
    ("2024-02-30", "<", "2024-03-01"),
    ("2024-05-31 10:00", "==", "2024-05-31T10:00:00Z"),
    ("2024-05-31T24:00", "<", "2024-06-01"),
    ("2024-05-31T10:00+23:59", "<", "2024-05-31T10:00-23:59"),
    ("2024-05-31T10:00+24:00", "<", "2024-06-01"),
    (D(2024, 5, 31), "<", "2024-05-31T10:00+00:60"),
    (DT(2024, 5, 31, 9, 0), "==", "2024-05-31T10:00:00+00:60"),
    (DT(2024, 5, 31, 12, 0), "==", "2024-05-31T14:00:00+0200"),
    ("2024-05-31T12:00:00Z", "==", "2024-05-31T14:00+02"),
    ("2024-05-31T12:00:00Z", "<", "2024-05-31T13:00:00+0200"),
    ("2024-05-31T09:30-0530", "==", "2024-05-31T15:00:00Z"),
    ("2024-05-31T10:00-0000", "==", "2024-05-31T10:00:00Z"),
    (D(2024, 5, 31), "<", "2024-05-31T10:00+0060"),
    ("2024-05-31T10:00+2400", "<", "2024-06-01"),
    ("2024-05-31T10:00+02:", "<", "2024-06-01"),
    ("2024-05-31T10:00+020", "<", "2024-06-01"),
]  # fmt: skip
DATE_ADDS = [
    (D(2024, 2, 28), 1, "days"), (D(2024, 3, 1), -1, "days"),
    (D(2024, 1, 31), 1, "months"), (D(2023, 1, 31), 1, "months"),
    (D(2024, 1, 31), 13, "months"), (D(2024, 5, 15), -17, "months"),
    (D(2024, 2, 29), 4, "years"), (D(2024, 2, 29), -1, "years"),
    (DT(2024, 1, 31, 9, 30, tzinfo=UTC), 1, "months"),
    (DT(2024, 3, 30, 23, 0), 1, "days"),
    (DT(2024, 3, 30, 23, 0, 0, 250_000), 1, "days"),
    ("2024-05-31T10:00:00+02:00", 1, "days"), ("2024-05-31", Decimal("3"), "days"),
    ("2024-05-31", 2.0, "days"), ("2024-05-31", "2", "days"),
    ("2024-05-31", 0, "years"), ("2024-05-31", None, "days"),
    ("2024-05-31", True, "days"), ("2024-05-31", "two", "days"),
    ("2024-05-31", Decimal("1.5"), "days"), ("2024-05-31", 10**12, "days"),
    ("2024-05-31", 10**9, "years"), ("0001-01-01", -1, "days"),
    ("9999-12-31", 1, "days"), ("9999-12-31T23:00:00-05:00", 0, "days"),
    ("2024-05-31", 1, "weeks"), ("2024-05-31", 1, None), ("2024-02-30", 1, "days"),
    ("2024-5-31", 1, "days"), ("20240531", 1, "days"), ("2024-05-31T25:00", 1, "days"),
    ("2024-05-31T10:00+00:60", 0, "days"), ("2024-05-31T10:00+0060", 0, "days"),
    ("2024-05-31T10:00:00+0200", 1, "days"), ("2024-05-31T23:30-05", 1, "days"),
    ("2024-05-31T10:00:00.5-0000", 0, "days"),
    (None, 1, "days"), ("", 1, "days"), (20240531, 1, "days"),
    (["2024-05-31"], 1, "days"), ({"date": "2024-05-31"}, 1, "days"),
    ("2024-05-31", 9_999_999, "days"), ("2024-05-31", -200_000, "months"),
]  # fmt: skip
DATE_DIFFS = [
    (D(2024, 5, 1), D(2024, 5, 31), "days"), (D(2024, 5, 31), D(2024, 5, 1), "days"),
    (D(2024, 2, 28), "2024-03-01", "days"),
    (DT(2024, 5, 31, 23, 59), DT(2024, 6, 1, 0, 1), "days"),
    (DT(2024, 5, 31, 0, 1), DT(2024, 5, 31, 23, 59), "days"),
    (D(2024, 5, 31), DT(2024, 6, 2, 8, 0, tzinfo=UTC), "days"),
    ("2024-05-31T23:00:00-05:00", "2024-06-01T01:00:00Z", "days"),
    ("2024-05-31T23:00:00-0500", "2024-06-01T01:00:00+01", "days"),
    (D(2024, 1, 31), D(2024, 2, 29), "months"),
    (D(2024, 1, 31), D(2024, 2, 28), "months"),
    (D(2024, 1, 15), D(2024, 1, 14), "months"),
    (D(2024, 1, 15), D(2023, 12, 15), "months"),
    (D(2024, 1, 15), D(2023, 12, 16), "months"),
    (D(2020, 5, 31), D(2024, 5, 30), "months"),
    (D(2020, 5, 31), D(2024, 5, 31), "years"), (D(2024, 5, 31), D(2020, 6, 1), "years"),
    (D(2024, 5, 31), D(2024, 5, 31), "months"), ("0001-01-01", "9999-12-31", "years"),
    ("2024-05-01", "2024-05-31", None), ("2024-05-01", "2024-05-31", "hours"),
    ("2024-05-01", None, "days"), (None, "2024-05-31", "days"),
    ("soon", "2024-05-31", "days"), (1714521600, "2024-05-31", "days"),
]  # fmt: skip
TEXT_OPERATIONS = [
    ({"lower": V}, ["ÄBC Straße", "", None, 12, ["a"], D(2024, 5, 31), "ΑΣ"]),
    ({"upper": V}, ["straße", "ﬁx", Decimal("1.5")]),
    ({"length": V}, ["Straße", "", [], None, ["a", None], 123, Decimal("1.5"),
                    {"a": 1}, "x😀y", D(2024, 5, 31)]),
    ({"contains": [V, "cme"]}, ["Acme", None, 123, ["cme"], {"cme": 1}]),
    ({"contains": [V, 1]}, [[1, 2], [True, "1"], [Decimal("1.0")], "a1"]),
    ({"contains": [V, None]}, ["Acme", [None]]),
    ({"starts_with": [V, "Ac"]}, ["Acme", "acme", None, 123]),
    ({"starts_with": ["49 30", V]}, [49, "", None, ["4"], {"a": 1}, Decimal("49.0")]),
    ({"substr": [V, 1, 2]}, ["h😀llo", "hello", 12345, None, Decimal("1.50")]),
    ({"substr": ["hello", V]}, [-2, -20, 20, 1.9, "2", Decimal("-1.5"), None, "x"]),
    ({"substr": ["hello", 1, V]}, [-1, -10, 0, 10, None, 2.5]),
    ({"cat": [V, "|"]}, [1e21, 1e-7, 0.000001, 2.0, -0.0, Decimal("1.23E+3"),
                         Decimal("-0.00"), Decimal("1E-7"), [1, [2, None]], {"a": 1},
                         D(2024, 5, 31), DT(2024, 5, 31, 9, 0, tzinfo=UTC), None,
                         True, 123456789.125]),
    ({"<": [V, "b"]}, ["a", "B", "\uffff", "\U0001f600", "", "ab"]),
    ({"<": ["\uffff", V]}, ["\U0001f600", "\ufffe"]),
]  # fmt: skip
BLANK_VALUES = [
    None, "", [], " ", 0, 0.0, Decimal("0"), False, {}, [None], D(2024, 5, 31),
]  # fmt: skip
CHANGES = [
    ("proposal", "won"), ("won", "won"), (None, "won"), ("won", None), (None, None),
    (None, ""), ([], None), (D(2024, 5, 31), "2024-05-31"),
    (D(2024, 5, 31), D(2024, 6, 1)),
    (DT(2024, 5, 31, 12, 0), "2024-05-31T14:00:00+02:00"),
    (DT(2024, 5, 31, 12, 0), "2024-05-31T14:00:00+0200"),
    (Decimal("10.00"), 10), (Decimal("0.10"), 0.1), (Decimal("10.00"), 10.01),
    (1, True), (0, False), (["a", "b"], ["a", "b"]), (["a", "b"], ["b", "a"]),
    ("1", 1), ({"a": 1}, {"a": 1.0}), ("2024-05-31", "2024-05-31T00:00:00Z"),
]  # fmt: skip
ROUNDS = [
    (2.5, 0), (3.5, 0), (-2.5, 0), (2.675, 2), (1.005, 2), (0.125, 2),
    (Decimal("2.675"), 2), (Decimal("-0.005"), 2), (Decimal("19.999"), 2),
    (1234, -2), (1250, -2), (7, 2), (Decimal("1234.5"), -1), ("2.5", 0), (True, 0),
    (None, 2), ("abc", 2), ([1.5], 0), (2.5, None), (2.5, 0.5), (2.5, 21),
    (Decimal("1E+30"), 20), (1e20, 10), (1e20, 8), (Decimal("99.995"), 2),
    (123.456, -20), (-0.004, 2), (D(2024, 5, 31), 0),
]  # fmt: skip
DECIMAL_DATA = {
    "price": Decimal("19.98"),
    "whole": Decimal("20.00"),
    "zero": Decimal("0.00"),
    "third": Decimal("1") / Decimal("3"),
    "long": Decimal("1.00000000000000000000000000001"),
    "big": Decimal("1E+40"),
    # 29 digits that end in a 5: the context rounds them half to even.
    "tie_even": Decimal("1.0000000000000000000000000025"),
    "tie_odd": Decimal("1.0000000000000000000000000035"),
    # A remainder past the last digit kept decides the rounding of these two.
    "half": Decimal("1.0000000000000000000000000005"),
    "tiny": Decimal("-1E-50"),
    "sticky": Decimal("2.0000000000000000000000000010001"),
}
DECIMAL_CONDITIONS = [
    {"+": [{"var": "price"}, 0.01]}, {"+": [{"var": "price"}, 1]},
    {"-": [{"var": "price"}, "0.98"]}, {"*": [{"var": "price"}, 2]},
    {"*": [{"var": "price"}, 0.5]}, {"/": [{"var": "price"}, 2]},
    {"%": [{"var": "price"}, 5]}, {"-": [{"var": "price"}]},
    {"max": [{"var": "price"}, 20.5, 3]}, {"min": [{"var": "price"}, 20.5, 30]},
    {"==": [{"var": "price"}, 19.98]}, {"===": [{"var": "price"}, 19.98]},
    {"==": [{"var": "price"}, "19.980"]}, {">": [{"var": "price"}, 19.97]},
    {"<": [{"var": "price"}, 19.98]}, {"<=": [{"var": "price"}, 19.98]},
    {"in": [19.98, [{"var": "price"}]]}, {"cat": ["€", {"var": "price"}]},
    {"cat": [{"var": "whole"}]}, {"if": [{"var": "zero"}, "yes", "no"]},
    {"!!": {"var": "price"}}, {"/": [{"var": "price"}, {"var": "zero"}]},
    {"%": [{"var": "price"}, {"var": "zero"}]}, {"/": [1, {"var": "price"}]},
    {"/": [{"var": "price"}, 7]}, {"/": [{"var": "price"}, 0.3]},
    {"*": [{"var": "third"}, 3]}, {"+": [{"var": "third"}, {"var": "third"}]},
    {"-": [{"var": "long"}]}, {"+": [{"var": "long"}, 0]},
    {"*": [{"var": "long"}, {"var": "long"}]}, {"+": [{"var": "big"}, 1]},
    {"+": [{"var": "big"}, 1e-30]}, {"-": [1, {"var": "big"}]},
    {"%": [{"var": "big"}, 3]}, {"%": [{"var": "big"}, {"var": "price"}]},
    {"%": [{"var": "price"}, {"var": "big"}]}, {"%": [-7.5, {"var": "whole"}]},
    {"%": [{"var": "long"}, 1]}, {"/": [{"var": "big"}, {"var": "third"}]},
    {"/": [{"var": "zero"}, {"var": "price"}]}, {"*": [{"var": "price"}, 0.1, 0.2]},
    {"+": [0.1, 0.2, {"var": "zero"}]}, {"round": [{"var": "third"}, 3]},
    {"substr": ["abcdef", {"var": "whole"}]}, {"var": {"var": "zero"}},
    {"date_add": ["2024-05-31", {"var": "whole"}, "days"]},
    {"max": [{"var": "whole"}, 20]}, {"min": [20, {"var": "whole"}]},
    {"===": [{"var": "whole"}, 20]}, {"!==": [{"var": "zero"}, False]},
    {"missing_some": [{"var": "zero"}, ["a"]]}, {"changed": "price"},
    {"+": [{"var": "tie_even"}, 0]}, {"+": [{"var": "tie_odd"}, 0]},
    {"-": [{"var": "tie_even"}]}, {"*": [{"var": "tie_odd"}, 1]},
    {"-": [{"var": "half"}, {"var": "tiny"}]},
    {"+": [{"var": "half"}, {"var": "tiny"}]},
    {"/": [{"var": "sticky"}, 2]}, {"/": [{"var": "half"}, 1]},
]  # fmt: skip
FAILURES = [
    {"/": [1, 0]}, {"/": [0, 0.0]}, {"%": [1, 0]}, {"*": [1e308, 10]},
    {"+": ["1e999", 1]}, {"+": ["9" * 500, 1]}, {"-": [[1], 1]},
    {"+": [{"var": "date"}, 1]}, {"<": [{"var": "date"}, 1]}, {"==": [[1], [1]]},
    {"all": [{"var": "nothing"}, True]}, {"throw": "Stop"},
    {"throw": {"type": "TooLarge", "limit": 5}},
    {"throw": {"var": "date"}},
    {">": [{"var": "account.revenue"}, "lots"]},
    {"or": [{">": [{"/": [1, {"var": "n"}]}, 1]}, True]},
    {"try": [{"/": [1, 0]}, {"var": "type"}]},
    {"try": [{"throw": {"preserve": {"type": "X", "n": 1}}}, {"var": "n"}]},
    {"try": [{"throw": "A"}, {"throw": "B"}]},
    {"coalesce": [{"/": [1, 0]}, {"throw": "x"}, 5]},
    {"+": {"var": "pair"}}, {"contains": {"var": "pair"}},
    {"contains": {"var": "three"}}, {"missing_some": {"var": "three"}},
    {"val": [["x"], "a"]}, {"val": [[1], "index"]},
    {"<": [5, 1, {"/": [1, 0]}]}, {"+": [" 12 ", "\u2003 3\u2003"]},
    {"+": ["\ufeff1", 1]}, {"+": ["1_000", 1]}, {"+": ["0x1A", 1]},
    {"+": [".5", "5.", "-.5e1", "+2"]},
]  # fmt: skip
REFUSED = [
    {"unknown": [1]}, {"method": ["a", "toUpperCase"]}, {"and": 5}, {"%": [1]},
    {"map": [None, {"var": ""}]}, {"filter": [[1], None]}, {"all": [None, True]},
    {"date_add": [{"var": "d"}, 1, "weeks"]}, {"date_diff": ["a", "b", ["days"]]},
    {"date_add": [{"var": "d"}, 1, {}]}, {"matches": ["a", 5]},
    {"matches": ["a", ["x"]]}, {"today": [1]}, {"now": "x"}, {"lower": []},
    {"var": ["a", 1, 2]}, {"log": [1, 2]}, {"<": [1]}, {"-": []}, {"throw": []},
    {"if": {"var": "x"}}, {"and": [{"or": [{"x": 1}]}]},
    {"+": {"nope": 1}}, {"var": {"nope": 1}}, {"cat": ["x" * 11_000]},
    {"cat": ["é" * 5_200]}, {"preserve": [1, {"bad": 1}]},
]  # fmt: skip
VARS = [
    ("account.industry", {"account": {"industry": "Retail"}}),
    ("account.industry", {"account": None}),
    ("account.industry", {"account": 17}),
    ("account.industry", {"account": "Acme"}), ("account.industry", {}),
    ("account.owner.name", {"account": {"owner": {"name": "Ann"}}}),
    ("tags.1", {"tags": ["a", "b"]}), ("tags.2", {"tags": ["a", "b"]}),
    ("tags.-1", {"tags": ["a", "b"]}), ("tags.01", {"tags": ["a", "b"]}),
    ("$user.roles", {"$user": {"roles": ["sales"]}}), ("$user.id", {}),
    ("stage", None), ("stage", "text"), ("stage", [1, 2]),
    ("constructor", {}), ("__proto__", {}), ("toString", {"a": 1}),
    ("", {"a": 1}), ("a.", {"a": {"": 5}}), (1.5, {"1": {"5": "x"}}),
    (True, {"true": 1}), (None, 7),
]  # fmt: skip
OTHER = [
    ({"and": []}, {}), ({"or": []}, {}), ({"!": {"and": []}}, {}),
    ({"!!": {"or": []}}, {}), ({"if": [{"and": []}, "yes", "no"]}, {}),
    ({"and": [{"var": "a"}]}, {"a": None}), ({"or": [{"var": "a"}, {"var": "b"}]},
                                            {"a": None, "b": 0}),
    ({"and": [True, {"var": "a"}, False]}, {"a": ""}),
    ({"==": [{"var": "amount"}, 0]}, {"amount": None}),
    ({"!=": [{"var": "amount"}, 0]}, {"amount": None}),
    ({"==": [{"var": "amount"}, None]}, {}),
    ({"===": [{"var": "amount"}, None]}, {"amount": None}),
    ({"<": [{"var": "amount"}, 1]}, {"amount": None}),
    ({">": [{"var": "amount"}, 0]}, {"amount": None}),
    ({">=": [{"var": "amount"}, 0]}, {}),
    ({"<": [{"var": "close_date"}, {"today": []}]}, {"close_date": None}),
    ({"==": [{"var": "name"}, ""]}, {"name": None}),
    ({"in": [{"var": "stage"}, ["won", "lost"]]}, {"stage": None}),
    ({"in": [{"var": "stage"}, "won lost"]}, {"stage": None}),
    ({"+": [{"var": "a"}, 1]}, {"a": None}), ({"*": [{"var": "a"}, 2]}, {}),
    ({"missing": ["name", "tags"]}, {"name": "", "tags": []}),
    ({"missing": {"merge": ["a", ["b"]]}}, {"a": 0}),
    ({"missing_some": [1, ["email", "phone"]]}, {"email": None, "phone": "+49 30 1"}),
    ({"missing_some": ["1", "email"]}, {"email": ""}),
    ({"var": ["discount", 0]}, {"discount": None}),
    ({"var": ["", "fallback"]}, None), ({"var": [{"cat": ["a", ".b"]}, 9]}, {"a": {}}),
    ({"val": [True]}, {"True": 5}), ({"val": None}, {"a": 1}),
    ({"val": ["a", 0]}, {"a": [7]}), ({"val": [1]}, {"1": "x"}),
    ({"exists": [1.5]}, {"1.5": 1}), ({"exists": ["a", "b"]}, {"a": {"b": None}}),
    ({"exists": []}, {}), ({"exists": [None]}, {"None": 1}),
    ({"var": [["a"]]}, {"['a']": 3}), ({"var": [["it's"]]}, {'["it\'s"]': 3}),
    ({"today": []}, {"$now": D(2024, 2, 29)}),
    ({"now": []}, {"$now": "2024-05-31"}),
    ({"now": []}, {"$now": "2024-05-31T14:30:00"}),
    ({"now": []}, {"$now": DT(2024, 5, 31, 14, 30, 0, 123_456, tzinfo=UTC)}),
    ({"today": []}, {"$now": "2024-05-31T23:30:00-02:00"}),
    ({"map": [[1, 2], {"today": []}]}, {"$now": NOW}),
    ({"map": [[1, 2], {"date_add": [{"now": []}, {"var": ""}, "days"]}]},
     {"$now": NOW}),
    ({"some": [{"var": "team"}, {"==": [{"var": "id"}, {"var": "$user.id"}]}]},
     {"team": [{"id": 3}, {"id": 7}], "$user": {"id": 7}}),
    ({"filter": [{"var": "lines"}, {"==": [{"var": "owner"}, {"var": "$user.id"}]}]},
     {"$user": {"id": 7}, "lines": [{"owner": 7}, {"owner": 8}]}),
    ({"map": [{"var": "lines"}, {"cat": [{"prior": "stage"}, {"changed": "stage"}]}]},
     {"lines": [1, 2], "stage": "won", "$prior": {"stage": "proposal"}}),
    ({"changed": {"var": "which"}},
     {"which": "stage", "stage": "won", "$prior": {"stage": "proposal"}}),
    ({"changed": "stage"}, {"stage": "won", "$prior": "proposal"}),
    ({"changed": "stage"}, {"stage": "won", "$prior": {}}),
    ({"prior": "account.name"}, {"$prior": {"account": {"name": "A"}}}),
    ({"changed": 5}, {"$prior": {"5": 1}}),
    ({"reduce": [{"var": "n"}, {"+": [{"var": "current"}, {"var": "accumulator"}]},
                 0]}, {"n": [1, 2.5, Decimal("0.5")]}),
    ({"map": [{"var": "n"}, {"val": [[1], "index"]}]}, {"n": ["a", "b"]}),
    ({"map": [{"var": "n"}, {"map": [[1], {"val": [[4], "x"]}]}]},
     {"n": [1], "x": "top"}),
    ({"merge": [{"var": "a"}, [1, [2]], None]}, {"a": [D(2024, 5, 31)]}),
    # exists names an entry as val reads it: 1.0 is the key "1", 1e-7 is "1e-7".
    ({"exists": 1.0}, {"1": "a"}), ({"exists": 1e-7}, {"1e-7": "a"}),
    ({"exists": ["a", 1e21]}, {"a": {"1e+21": 0}}), ({"exists": 1.5}, {"1.5": 0}),
    ({"if": [True]}, {}), ({"if": []}, {}), ({"if": [False, 1]}, {}),
    ({"?:": [0, 1, "", 2, 3]}, {}),
    ({"!": [[]]}, {}), ({"!": []}, {}), ({"!!": [[0]]}, {}), ({"!!": []}, {}),
    ({"??": [None, "", 1]}, {}), ({"??": []}, {}),
    ({"log": {"var": "a"}}, {"a": [1]}), ({"log": []}, {}),
    ({"preserve": {"var": "a"}}, {"a": 1}),
    ({"if": [{"var": "x"}, [1, 2], {"preserve": {"a": [1]}}]}, {"x": True}),
    ({"max": []}, {}), ({"min": ["3", 1.5, True]}, {}), ({"max": [2, 2.0]}, {}),
    ({"+": []}, {}), ({"*": []}, {}), ({"+": "3"}, {}), ({"-": [5]}, {}),
    ({"/": [4]}, {}), ({"/": [1, 3]}, {}), ({"+": [0.1, 0.2]}, {}),
    ({"%": [-7, 2]}, {}), ({"%": [7.5, -2]}, {}), ({"%": [-0.0, 2]}, {}),
    ({"*": [123456789, 1000]}, {}), ({"/": [1e308, 1e-10]}, {}),
    # A whole float past 2**53 is written as JavaScript writes it: its shortest
    # digits, then zeros, not the binary value's every digit.
    ({"cat": ["Ref-", {"*": [{"var": "n"}, 1e17]}]}, {"n": 1.1}),
    ({"cat": [7.700872811859345e20]}, {}), ({"cat": [-9007199254740994.0]}, {}),
    # A Decimal result past JavaScript's largest number is no number either.
    ({"*": [{"var": "d"}, 1e308]}, {"d": Decimal("2.5")}),
    ({"/": [{"var": "d"}, 5e-324]}, {"d": Decimal("0.10")}),
    ({"+": [{"var": "d"}, {"var": "d"}]}, {"d": Decimal("1E+308")}),
    ({"-": [{"var": "d"}, 1.7976931348623157e308]}, {"d": Decimal("-1E+300")}),
    ({"-": [{"var": "d"}, 1.7976931348623157e308]}, {"d": Decimal("1E+300")}),
    ({"/": [{"var": "d"}, 5e-324]}, {"d": Decimal("0.000")}),
    ({"==": [1, "1.0"]}, {}), ({"==": [True, "1"]}, {}), ({"==": ["", 0]}, {}),
    ({"==": [" ", 0]}, {}), ({"==": ["abc", 1]}, {}), ({"==": [{}, {}]}, {}),
    ({"===": [{"a": [1]}, {"a": [1.0]}]}, {}),
    ({"===": [{"var": "a"}, {"var": "b"}]}, {"a": {"x": 1, "y": 2},
                                             "b": {"y": 2, "x": 1}}),
    ({"===": [{"var": "a"}, {"var": "b"}]}, {"a": {"x": 1}, "b": {"y": 1}}),
    ({"<": [1, 2, 3]}, {}), ({"<": [1, 3, 2]}, {}), ({"<=": [1, 1, "1"]}, {}),
    ({"<": [True, 2]}, {}), ({"<": [[1], 2]}, {}), ({"<": ["a", 1]}, {}),
    ({"in": ["a", None]}, {}), ({"in": [None, [None]]}, {}), ({"in": ["a"]}, {}),
    ({"in": [1.0, ["1", 1]]}, {}),
    ({"all": [[], True]}, {}), ({"some": [[], True]}, {}), ({"none": [[], True]}, {}),
    ({"none": [{"var": "x"}, True]}, {"x": "abc"}),
    ({"all": [[1, 2], None]}, {}),
    ({"map": [{"var": "x"}, 1]}, {"x": "abc"}),
    ({"filter": [{"var": "x"}, {"var": ""}]}, {"x": [0, 1, "", [], "a", {}]}),
]  # fmt: skip


def table_cases() -> list[Case]:
    now = {"now": NOW}
    cases: list[Case] = []

    def add(case_id: str, condition: Any, data: Any = None, **options: Any) -> None:
        cases.extend(
            both_modes(f"{len(cases) // 2}:{case_id}", condition, data, **options)
        )

    for condition, data in OTHER:
        add(json.dumps(typed(condition))[:50], condition, data, **now)
    for path, data in VARS:
        add(f"var {path!r}", {"var": path}, data)
        add(f"var {path!r} with default", {"var": [path, "default"]}, data)
    for left, operator, right in DATES_COMPARED:
        add(f"{left} {operator} {right}", {operator: [{"var": "l"}, {"var": "r"}]},
            {"l": left, "r": right})  # fmt: skip
    for start, amount, unit in DATE_ADDS:
        condition = {"date_add": [{"var": "s"}, {"var": "a"}, {"var": "u"}]}
        add(f"date_add {start} {amount} {unit}", condition,
            {"s": start, "a": amount, "u": unit})  # fmt: skip
    for start, end, unit in DATE_DIFFS:
        condition = {"date_diff": [{"var": "s"}, {"var": "e"}, {"var": "u"}]}
        add(f"date_diff {start} {end} {unit}", condition,
            {"s": start, "e": end, "u": unit})  # fmt: skip
    for condition, values in TEXT_OPERATIONS:
        for value in values:
            add(f"{list(condition)[0]} {value!r:.30}", condition, {"v": value})
    for pattern, texts in ACCEPTED_PATTERNS:
        for text in texts:
            add(
                f"matches {pattern} {text!r:.20}",
                {"matches": [V, pattern]},
                {"v": text},
            )
            add(f"matches data {pattern}", {"matches": [V, {"var": "p"}]},
                {"v": text, "p": pattern})  # fmt: skip
    for pattern in REFUSED_PATTERNS:
        add(f"refused {pattern:.30}", {"matches": ["abc", pattern]})
        add(f"refused from data {pattern:.30}", {"matches": ["abc", V]}, {"v": pattern})
    for value in BLANK_VALUES:
        add(f"is_blank {value!r}", {"is_blank": V}, {"v": value})
        add(f"coalesce {value!r}", {"coalesce": [V, "next"]}, {"v": value})
    for before, after in CHANGES:
        data = {"f": after, "$prior": {"f": before}}
        add(f"changed {before!r} {after!r}", {"changed": "f"}, data)
        add(f"prior {before!r}", {"prior": "f"}, data)
    for value, digits in ROUNDS:
        add(f"round {value!r} {digits!r}", {"round": [{"var": "v"}, {"var": "d"}]},
            {"v": value, "d": digits})  # fmt: skip
    for condition in DECIMAL_CONDITIONS:
        add(f"decimal {json.dumps(condition)[:50]}", condition, DECIMAL_DATA,
            prior={"price": 19.98})  # fmt: skip
    failure_data = {
        "date": D(2024, 5, 31), "account": {"revenue": 10}, "n": 0,
        "pair": [1, 2], "three": [1, 2, 3],
    }  # fmt: skip
    for condition in FAILURES:
        add(f"fails {json.dumps(condition)[:50]}", condition, failure_data)
    for condition in REFUSED:
        add(f"refused {json.dumps(condition)[:50]}", condition, {})
    deep: Any = 1
    for _ in range(32):
        deep = [deep]
    add("too deep", {"cat": deep})
    add("deep enough", {"cat": deep[0]})
    for pattern, text in HOSTILE:
        add(f"hostile {pattern}", {"matches": [V, pattern]}, {"v": text})
    return cases


TABLE = table_cases()


@pytest.fixture(scope="module")
def table_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    answers = run_batch(TABLE, tmp_path_factory.mktemp("table"))
    return {case.id: answer for case, answer in zip(TABLE, answers, strict=True)}


@pytest.mark.parametrize("case", TABLE, ids=[case.id for case in TABLE])
def test_crm_case_gives_the_same_answer(case: Case, table_run: dict[str, Any]) -> None:
    answer = table_run[case.id]

    assert node_answer(answer) == python_answer(case)


# An offset written +0200 or +02 (ISO 8601's basic and hour-only forms, and what
# Python's %z writes) is read as the API and an import read it; +0060 and +2400 are no
# offset, as +00:60 and +24:00 are not.
OFFSET_SPELLINGS = [
    ("2024-05-31T14:00:00+0200", "2024-05-31T14:00:00+02:00"),
    ("2024-05-31T14:00:00+02", "2024-05-31T14:00:00+02:00"),
    ("2024-05-31 09:30-0530", "2024-05-31T09:30:00-05:30"),
    ("2024-05-31T09:30:00.25-05", "2024-05-31T09:30:00.250000-05:00"),
    ("2024-05-31T10:00-0000", "2024-05-31T10:00:00+00:00"),
    ("2024-05-31T10:00+2359", "2024-05-31T10:00:00+23:59"),
    ("2024-05-31T10:00+0060", None),
    ("2024-05-31T10:00+2400", None),
    ("2024-05-31T10:00+02:", None),
    ("2024-05-31T10:00+020", None),
    ("2024-05-31T10:00+2", None),
]


def test_an_offset_without_a_colon_is_the_same_moment_on_both_sides(
    tmp_path: Path,
) -> None:
    cases = [
        Case(f"offset {text}", {"date_add": [text, 0, "days"]})
        for text, _ in OFFSET_SPELLINGS
    ]
    expected = [("value", moment) for _, moment in OFFSET_SPELLINGS]

    answers = run_batch(cases, tmp_path)

    assert [python_answer(case) for case in cases] == expected
    assert [node_answer(answer) for answer in answers] == expected


# -- the evaluator as a browser script ------------------------------------------------


def test_the_evaluator_defines_one_global_in_a_page() -> None:
    assert NODE is not None
    script = (
        "const vm = require('vm');"
        "const fs = require('fs');"
        "const page = {};"
        "vm.createContext(page);"
        "vm.runInContext(fs.readFileSync(process.argv[1], 'utf8'), page);"
        "const names = Object.keys(page);"
        "const rule = page.TailorRules.compile({'==': [{'var': 'stage'}, 'won']});"
        "console.log(JSON.stringify([names, rule({stage: 'won'})]));"
    )

    result = subprocess.run(
        [NODE, "-e", script, str(RULES_JS)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert json.loads(result.stdout) == [["TailorRules"], True]


# -- random conditions over random records --------------------------------------------


class NodeSession:
    """One node process answering cases line by line."""

    def __init__(self) -> None:
        assert NODE is not None
        self.process = subprocess.Popen(
            [NODE, str(RUNNER), "--lines"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )

    def ask(self, case: Case) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(case.for_node()) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("The node runner stopped.")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)


@pytest.fixture
def node_session() -> Iterator[NodeSession]:
    session = NodeSession()
    yield session
    session.close()


# Integers stay small and conditions shallow, so that no result passes 2**53, where
# JavaScript numbers stop being exact (a documented difference).
SMALL_INTS = st.integers(-50, 50)
FLOATS = st.sampled_from([0.5, -2.25, 0.1, 0.2, 1e-7, 2.675, 1e21, 123.456, -0.0])
DECIMALS = st.decimals(
    min_value=-10_000, max_value=10_000, places=2, allow_nan=False, allow_infinity=False
)
TEXTS = st.sampled_from(
    ["", " ", "a", "Ab", "won", "lost", "10115", "1.5", "0", " 7 ", "abc", "1e3",
     "2024-05-31", "2024-02-29T10:00:00+02:00", "2024-05-31T23:30", "someday",
     "Straße", "x😀y", "A-12", "days", "months"]
)  # fmt: skip
DATES = st.dates(dt.date(2000, 1, 1), dt.date(2030, 12, 31))
DATETIMES = st.datetimes(
    dt.datetime(2000, 1, 1),
    dt.datetime(2030, 12, 31),
    timezones=st.none() | st.just(UTC) | st.just(dt.timezone(dt.timedelta(hours=-5))),
)
SCALARS = (
    st.none() | st.booleans() | SMALL_INTS | FLOATS | DECIMALS | TEXTS | DATES
    | DATETIMES | DATES.map(dt.date.isoformat)
)  # fmt: skip
VALUES = SCALARS | st.lists(SCALARS, max_size=3)
FIELDS = ["a", "b", "stage", "amount", "close_date", "tags"]
RECORDS = st.fixed_dictionaries(
    {
        "a": VALUES,
        "b": VALUES,
        "stage": st.none() | TEXTS,
        "amount": st.none() | DECIMALS | SMALL_INTS | FLOATS,
        "close_date": st.none() | DATES | DATETIMES | DATES.map(dt.date.isoformat),
        "tags": st.none() | st.lists(TEXTS | SMALL_INTS | DECIMALS, max_size=4),
        "account": st.none() | st.fixed_dictionaries({"industry": TEXTS | st.none()}),
    }
)
PATTERNS = st.sampled_from(
    [r"^\d{5}$", r"a", r"^(a|b)+$", r"\bwon\b", r".{2,}", r"(a+)+$", r"[😀]", r"^$",
     r"^\s*$", r"\d", r"(x", r"(?=a)", "[^a-z]"]
)  # fmt: skip
LEAF_VARS = st.sampled_from(
    [{"var": name} for name in FIELDS]
    + [{"var": "account.industry"}, {"var": "$user.id"}, {"var": "tags.0"},
       {"var": ["amount", 0]}, {"var": "missing_field"}, {"var": ""}]
)  # fmt: skip
LITERALS = st.none() | st.booleans() | SMALL_INTS | FLOATS | TEXTS
BINARY = [
    "==", "!=", "===", "!==", "<", "<=", ">", ">=", "+", "-", "*", "/", "%", "min",
    "max", "in", "cat", "contains", "starts_with", "coalesce", "??", "and", "or",
    "if", "merge", "substr",
]  # fmt: skip
UNARY = ["!", "!!", "lower", "upper", "length", "is_blank", "log", "-", "var"]
ITERATIONS = ["map", "filter", "some", "all", "none"]
UNITS = st.sampled_from(["days", "months", "years"])


def conditions() -> st.SearchStrategy[Any]:
    leaves = LEAF_VARS | LITERALS | st.just({"today": []}) | st.just({"now": []})

    def extend(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        def op(name: str, *parts: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
            return st.tuples(*parts).map(lambda args: {name: list(args)})

        def named(names: list[str], operand: Any) -> st.SearchStrategy[Any]:
            return st.tuples(st.sampled_from(names), operand).map(
                lambda pair: {pair[0]: pair[1]}
            )

        # Families of even weight, so that no kind of operation crowds out the rest.
        return st.one_of(
            named(BINARY, st.lists(inner, min_size=2, max_size=3)),
            named(["and", "or", "+", "cat"], st.lists(inner, max_size=3)),
            named(UNARY, inner),
            st.one_of([op(name, LEAF_VARS, inner) for name in ITERATIONS])
            | op("reduce", LEAF_VARS, inner, inner),
            st.one_of(
                op("date_add", inner, inner, UNITS),
                op("date_diff", inner, inner, UNITS),
                op("round", inner, st.integers(-3, 3)),
                op("matches", inner, PATTERNS),
                op("missing", st.sampled_from(FIELDS), st.sampled_from(FIELDS)),
                st.sampled_from(FIELDS).map(lambda name: {"changed": name}),
                st.sampled_from(FIELDS).map(lambda name: {"prior": name}),
            ),
        )

    return st.recursive(leaves, extend, max_leaves=6)


@settings(
    derandomize=True,
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(condition=conditions(), record=RECORDS, prior=RECORDS)
def test_random_conditions_over_random_records_agree(
    node_session: NodeSession, condition: Any, record: dict[str, Any], prior: Any
) -> None:
    options = {"now": NOW, "prior": prior, "user": {"id": 7, "roles": ["sales"]}}
    for strict in (False, True):
        case = Case("random", condition, record, strict, options)

        answer = node_session.ask(case)

        assert node_answer(answer) == python_answer(case)
