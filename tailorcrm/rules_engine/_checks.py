"""Static checks of a condition against the fields it will read.

:func:`check_condition` runs when metadata is saved. It knows the entity's fields
and, through its lookups, the related entities' fields, and reports every problem
at once, each with the JSON path of the expression at fault (``and[1].>[0]``: the
first operand of the ``>`` that is the second operand of the ``and``; empty for the
whole condition). It never evaluates anything.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import _dates
from ._compiler import (
    MAX_DEPTH,
    MAX_SIZE,
    arity_text,
    compile_condition,
    condition_size,
    unknown_operator_text,
)
from ._errors import ConditionError
from ._registry import LIST, OPERATORS, SINGLE, Operands, is_operation
from ._values import looks_numeric

#: How each field type of the platform behaves in a condition.
FIELD_KINDS: dict[str, str] = {
    **dict.fromkeys(("text", "textarea", "email", "phone", "url"), "text"),
    **dict.fromkeys(("picklist", "autonumber"), "text"),
    **dict.fromkeys(("integer", "decimal", "currency", "percent"), "number"),
    "boolean": "boolean",
    "date": "date",
    "datetime": "datetime",
    "multi_picklist": "list",
    "lookup": "record",
}

#: What ``$user`` offers to conditions.
USER_KINDS: dict[str, str] = {
    "id": "number",
    "username": "text",
    "roles": "list",
}
#: What ``$user`` also offers where the caller's teams and attributes are known
#: (sharing rules). Attributes are data, set per user, so any name of theirs is
#: accepted; ``admin`` is the platform's and never an attribute.
_USER_TEAMS = {"teams": "list"}
_ATTRIBUTE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,99}$")

_TEXT = frozenset({"text"})
_TEMPORAL = frozenset({"date", "datetime"})
_NUMERIC = frozenset({"number", "boolean"})
_TEXT_OR_LIST = frozenset({"text", "list"})

# Operand index (or -1 for every operand) -> the kinds it accepts.
_EXPECTED: dict[str, dict[int, frozenset[str]]] = {
    "date_add": {0: _TEMPORAL, 1: frozenset({"number"})},
    "date_diff": {0: _TEMPORAL, 1: _TEMPORAL},
    "lower": {0: _TEXT},
    "upper": {0: _TEXT},
    "starts_with": {0: _TEXT},
    "matches": {0: _TEXT},
    "contains": {0: _TEXT_OR_LIST},
    "length": {0: _TEXT_OR_LIST},
    "round": {0: frozenset({"number"}), 1: frozenset({"number"})},
    **dict.fromkeys(("+", "-", "*", "/", "%", "min", "max"), {-1: _NUMERIC}),
}
_ORDERINGS = frozenset({"<", "<=", ">", ">="})
_EQUALITIES = frozenset({"==", "!=", "===", "!=="})
#: The operations that compare their operands with each other.
_COMPARED = _ORDERINGS | _EQUALITIES | {"in"}
_DATA_READERS = frozenset(
    {"var", "val", "missing", "missing_some", "exists", "changed", "prior"}
)
_ITERATIONS = frozenset({"map", "filter", "reduce", "all", "some", "none"})
#: The kind of the false values of each kind: blank text or an empty list, which
#: every field but a boolean one takes as no value; a date, a datetime, a record
#: and an object are never false.
_FALSY_KINDS = {
    "text": "blank",
    "list": "blank",
    **dict.fromkeys(("date", "datetime", "record", "object"), "null"),
}
_KIND_TEXT = {
    "text": "text",
    "number": "a number",
    "boolean": "a boolean",
    "date": "a date",
    "datetime": "a datetime",
    "list": "a list",
    "record": "a related record",
    "object": "an object",
}


@dataclass(frozen=True)
class ConditionAnalysis:
    """What a static walk of a condition found.

    ``kind`` is the kind of value the whole condition gives (``text``, ``number``,
    ``boolean``, ``date``, ``datetime``, ``list``, ``record``, ``object``,
    ``null`` or ``any`` when it cannot be told); ``reads`` holds the field names
    it reads from the record, dotted for a related record's field
    (``account.industry``); ``dynamic`` is true when it also reads names computed
    at run time, which no static list can hold.
    """

    problems: list[ConditionProblem]
    kind: str
    reads: frozenset[str]
    dynamic: bool
    #: Each value the condition may give, as (kind, expression, JSON path): the
    #: whole condition, or, where it gives one of its operands (``if``,
    #: ``coalesce``, ``or``, a ``var`` with a default…), each of theirs, so that
    #: a formula whose branches differ is judged branch by branch.
    outcomes: tuple[tuple[str, Any, str], ...] = ()
    #: For each JSON path at which the condition reads a record, the name it
    #: reads: a lookup (``account``), a related record's lookup
    #: (``account.parent``), or ``""`` for the record itself; so that the entity
    #: of a record a value gives can be told.
    records: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: For each name in ``reads``, the JSON path where it is first read.
    read_at: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class ConditionProblem:
    """One problem in a condition: where (``path``), what (``code``) and why."""

    path: str
    code: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "code": self.code, "message": self.message}

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


def check_condition(
    condition: Any,
    *,
    fields: Mapping[str, str],
    relations: Mapping[str, Mapping[str, str]] | None = None,
    allow_prior: bool = False,
    user_attributes: bool = False,
    lookup_ids: bool = False,
) -> list[ConditionProblem]:
    """Every problem :func:`compile_condition` or the fields would find, in order.

    :param fields: the entity's field names and their types (``"amount":
        "currency"``).
    :param relations: for each lookup field, the related entity's field names and
        types, so that ``account.industry`` can be checked. A lookup named here
        reads as the related record, which equals no number or text: comparing it
        with one (``{"==": [{"var": "account"}, 5]}``) is ``wrong_type``, and
        ``account.id`` is its id.
    :param lookup_ids: whether a lookup reads as its id all the same, as it does
        in a roll-up's condition on the child's row.
    :param allow_prior: whether the rule runs on updates, where ``changed``,
        ``prior`` and ``$prior`` have a previous value to read.
    :param user_attributes: whether ``$user`` also holds the caller's ``teams``
        and attributes (``$user.region``), as it does in sharing rules.
    :returns: problems with codes ``unknown_operator``, ``invalid_arguments``,
        ``invalid_unit``, ``invalid_pattern``, ``unknown_field``,
        ``unknown_relation``, ``wrong_type``, ``prior_not_available``,
        ``too_deep``, ``too_large`` and ``invalid_text`` (a broken character);
        empty when the condition is fine.
    """
    return analyze_condition(
        condition,
        fields=fields,
        relations=relations,
        allow_prior=allow_prior,
        user_attributes=user_attributes,
        lookup_ids=lookup_ids,
    ).problems


def analyze_condition(
    condition: Any,
    *,
    fields: Mapping[str, str],
    relations: Mapping[str, Mapping[str, str]] | None = None,
    allow_prior: bool = False,
    user_attributes: bool = False,
    lookup_ids: bool = False,
) -> ConditionAnalysis:
    """Check ``condition`` as :func:`check_condition` does, and say what it reads.

    Rules use the answer to know which related records to load, which fields a
    formula depends on, and whether a formula can fill its field.
    """
    checker = _Checker(
        fields, relations or {}, allow_prior, user_attributes, lookup_ids=lookup_ids
    )
    try:
        size = condition_size(condition)
    except ConditionError as error:
        checker.report(error.path, error.code, error.message)
        return ConditionAnalysis(checker.problems, "any", frozenset(), False)
    if size > MAX_SIZE:
        checker.report(
            "", "too_large", f"The condition is {size} bytes; at most {MAX_SIZE}."
        )
    kind = checker.visit(condition, "", 0, in_item=False)

    if not checker.problems:
        # The walk mirrors the compiler; compiling as well guarantees that a
        # condition reported as fine also compiles.
        try:
            compile_condition(condition)
        except ConditionError as error:
            checker.report(error.path, error.code, error.message)
    return ConditionAnalysis(
        checker.problems,
        kind,
        frozenset(checker.reads),
        checker.dynamic,
        tuple(checker.outcomes(condition, kind, "")),
        checker.records,
        checker.read_at,
    )


class _Checker:
    def __init__(
        self,
        fields: Mapping[str, str],
        relations: Mapping[str, Mapping[str, str]],
        allow_prior: bool,
        user_attributes: bool = False,
        *,
        lookup_ids: bool = False,
    ) -> None:
        self.fields = fields
        self.relations = relations
        #: Whether the lookups named in ``relations`` read as their ids (a roll-up's
        #: condition) rather than as the related records.
        self.lookup_ids = lookup_ids
        self.allow_prior = allow_prior
        self.user_attributes = user_attributes
        self.problems: list[ConditionProblem] = []
        self.too_deep = False
        self.reads: set[str] = set()
        #: Where each name of ``reads`` is first read.
        self.read_at: dict[str, str] = {}
        self.dynamic = False
        #: How many item scopes (of map and the like, or try's fallbacks) enclose
        #: the node being checked: a scoped ``val`` climbs out of them.
        self.scopes = 0
        #: For each operation that gives one of its operands, by its name and its
        #: operand list (as an identity: the condition is not changed while it
        #: is checked), the kind, expression and path of each it may give.
        self.picks: dict[tuple[str, int], list[tuple[str, Any, str]]] = {}
        #: The name each node that reads a record reads, by its JSON path.
        self.records: dict[str, str] = {}

    def report(self, path: str, code: str, message: str) -> None:
        problem = ConditionProblem(path, code, message)
        if problem not in self.problems:
            self.problems.append(problem)

    # -- the walk ----------------------------------------------------------------

    def visit(self, node: Any, path: str, depth: int, *, in_item: bool) -> str:
        """Check ``node`` and return the kind of value it gives."""
        if not isinstance(node, (dict, list)):
            return _literal_kind(node)

        depth += 1
        if depth > MAX_DEPTH:
            if not self.too_deep:
                self.too_deep = True
                self.report(
                    path, "too_deep", f"Conditions nest at most {MAX_DEPTH} deep."
                )
            return "any"

        if isinstance(node, list):
            for index, item in enumerate(node):
                self.visit(item, f"{path}[{index}]", depth, in_item=in_item)
            return "list"
        if len(node) != 1:
            return "object"

        ((name, operand),) = node.items()
        return self.operation(name, operand, path, depth, in_item=in_item)

    def operation(
        self, name: str, operand: Any, path: str, depth: int, *, in_item: bool
    ) -> str:
        operator = OPERATORS.get(name)
        if operator is None:
            self.report(path, "unknown_operator", unknown_operator_text(name))
            return "any"

        prefix = f"{path}.{name}" if path else name
        if name == "preserve":
            return _literal_kind(operand) if not isinstance(operand, list) else "list"

        if isinstance(operand, list):
            raw: list[Any] | None = operand
            paths = [f"{prefix}[{index}]" for index in range(len(operand))]
        elif operator.form == LIST:
            self.report(path, "invalid_arguments", f"{name} needs a list of operands.")
            return "any"
        elif operator.form != SINGLE and is_operation(operand):
            self.visit(operand, prefix, depth, in_item=in_item)
            raw, paths = None, []
        else:
            raw, paths = [operand], [prefix]

        if raw is not None and not self.count_fits(name, len(raw), path):
            return "any"

        kinds = []
        for index, item in enumerate(raw or ()):
            inner = _reads_other_data(name, index)
            self.scopes += inner
            kinds.append(
                self.visit(item, paths[index], depth, in_item=in_item or inner)
            )
            self.scopes -= inner

        self.shape(name, raw, path)
        if raw is None:
            if name in _DATA_READERS and not in_item:
                # The names it reads are computed while it runs.
                self.dynamic = True
            return operator.result
        self.operand_types(name, raw, kinds, paths, path)
        result = (
            self.fields_used(name, raw, kinds, paths, path, in_item=in_item)
            or operator.result
        )
        if name == "date_add":
            result = self.date_added(raw, kinds, paths)
        picked = _picked(name, len(raw))
        # One operation written without a list (``{"try": {"var": "x"}}``) is
        # the one operand; as a list's, its identity is its own.
        if picked is not None and (raw is operand or is_operation(operand)):
            given = [
                (result, None, path)
                if index == -1
                else (kinds[index], raw[index], paths[index])
                for index in picked
            ]
            if name == "and":
                given = self.falsy(given[:-1]) + given[-1:]
            self.picks[(name, id(operand))] = given
        return result

    def falsy(self, given: list[tuple[str, Any, str]]) -> list[tuple[str, Any, str]]:
        """What the operands of ``and`` but the last may give: each only when it
        is false, so text or a list only blank, a date or a record never."""
        return [
            (_FALSY_KINDS.get(kind, kind), None, where)
            for inner_kind, inner, inner_path in given
            for kind, _, where in self.outcomes(inner, inner_kind, inner_path)
        ]

    def outcomes(self, node: Any, kind: str, path: str) -> list[tuple[str, Any, str]]:
        """Each value ``node`` (which gives ``kind``, at ``path``) may give: its
        own, or for an operation that gives one of its operands, each of theirs."""
        if is_operation(node):
            ((name, operand),) = node.items()
            picked = self.picks.get((name, id(operand)))
            if picked is not None:
                return [
                    found
                    for inner_kind, inner, inner_path in picked
                    for found in (
                        self.outcomes(inner, inner_kind, inner_path)
                        if inner is not None
                        else [(inner_kind, None, inner_path)]
                    )
                ]
        return [(kind, node, path)]

    def date_added(self, raw: list[Any], kinds: list[str], paths: list[str]) -> str:
        """The kind ``date_add`` gives: that of its start, a date or a datetime.

        A start that gives one of its operands (a coalesce of a date and
        ``$now``) makes each a value of its own, so that a date field is judged
        against each.
        """
        starts = [
            (_added_kind(kind, value), None, where)
            for kind, value, where in self.outcomes(raw[0], kinds[0], paths[0])
        ]
        if len(starts) > 1:
            self.picks[("date_add", id(raw))] = starts
        given = {kind for kind, _, _ in starts} - {"null"}
        if not given:
            return "date"
        return given.pop() if len(given) == 1 else "any"

    def count_fits(self, name: str, count: int, path: str) -> bool:
        operator = OPERATORS[name]
        low, high = operator.min_args, operator.max_args
        if count >= low and (high is None or count <= high):
            return True
        self.report(
            path,
            "invalid_arguments",
            f"{name} takes {arity_text(low, high)}, not {count}.",
        )
        return False

    def shape(self, name: str, raw: Sequence[Any] | None, path: str) -> None:
        """The operator's own checks of its literal operands (units, patterns…)."""
        count = len(raw) if raw is not None else 0
        fns = tuple(_placeholder for _ in range(count))
        dynamic = _placeholder if raw is None else None
        try:
            OPERATORS[name].build(Operands(name, raw, fns, dynamic, path))
        except ConditionError as error:
            self.report(error.path, error.code, error.message)

    # -- types -------------------------------------------------------------------

    def operand_types(
        self, name: str, raw: list[Any], kinds: list[str], paths: list[str], path: str
    ) -> None:
        expected = _EXPECTED.get(name, {})
        for index, kind in enumerate(kinds):
            allowed = expected.get(index, expected.get(-1))
            if allowed is None or _fits(raw[index], kind, allowed):
                continue
            self.report(
                paths[index],
                "wrong_type",
                f"{name} needs {_describe(allowed)} here, but {_subject(raw[index])} "
                f"is {_KIND_TEXT.get(kind, kind)}.",
            )

        if name in _COMPARED:
            self.related_compared(name, raw, kinds, paths)

        if name in _ORDERINGS:
            temporal = [k for k in kinds if k in _TEMPORAL]
            numeric = [k for k in kinds if k in _NUMERIC]
            if temporal and numeric:
                self.report(
                    path, "wrong_type", f"{name} compares a date with a number."
                )

    def related_compared(
        self, name: str, raw: list[Any], kinds: list[str], paths: list[str]
    ) -> None:
        """Refuse a comparison of a related record with a value: the record is
        an object, never equal to its id, so the condition could never hold."""
        for index, item in enumerate(raw):
            lookup = self.related_record(item, kinds[index])
            if lookup is None:
                continue
            others = [kind for at, kind in enumerate(kinds) if at != index]
            if name in _EQUALITIES and others and set(others) == {"null"}:
                # ``== null`` asks whether the lookup is blank, which works.
                continue
            self.report(
                paths[index],
                "wrong_type",
                f"{name} needs a value here, but {lookup!r} reads as the related "
                f"record, which equals no value; compare {lookup + '.id'!r} (its "
                "id), or test the lookup with is_blank.",
            )

    def related_record(self, item: Any, kind: str) -> str | None:
        """The lookup ``item`` reads as the related record (``{"var": "account"}``,
        ``{"val": "account"}``, ``{"var": "$prior.account"}``, ``{"prior":
        "account"}``), if it does."""
        if kind != "record" or self.lookup_ids or not is_operation(item):
            return None
        ((operator, operand),) = item.items()
        if operator == "val" and isinstance(operand, list) and len(operand) == 1:
            # ``{"val": ["account"]}`` reads the field, as ``{"val": "account"}``.
            operand = operand[0]
        elif operator == "var" and isinstance(operand, list) and operand:
            operand = operand[0]
        if operator not in ("var", "val", "prior") or not isinstance(operand, str):
            return None
        name = operand.removeprefix("$prior.") if operator == "var" else operand
        if self.fields.get(name) == "lookup" and name in self.relations:
            return operand
        return None

    # -- fields ------------------------------------------------------------------

    def fields_used(
        self,
        name: str,
        raw: list[Any],
        kinds: list[str],
        paths: list[str],
        path: str,
        *,
        in_item: bool,
    ) -> str | None:
        """Check the field names an operation reads; return the kind it gives."""
        literal = raw[0] if raw and not is_operation(raw[0]) else None
        if name == "var":
            if not raw:
                return "record" if in_item else self.read_as("record", "", path)
            if isinstance(literal, (str, int)):
                return self.path_kind(str(literal).split("."), path, in_item=in_item)
            self.dynamic = self.dynamic or not in_item
            return None
        if (
            name == "val"
            and raw
            and not any(isinstance(key, (dict, list)) for key in raw)
        ):
            keys = [str(key) for key in raw]
            return self.path_kind(keys, path, in_item=in_item)
        if name in ("missing", "missing_some") and not in_item:
            self.dynamic = self.dynamic or _holds_operation(raw)
            for key, key_path in _missing_keys(name, raw, paths):
                self.path_kind(key.split("."), key_path, in_item=False)
            return None
        if name == "exists" and not in_item:
            # The path is the operands: ["account", "industry"] is account.industry.
            if raw and all(isinstance(key, str) for key in raw):
                self.path_kind([str(key) for key in raw], path, in_item=False)
            else:
                self.dynamic = True
            return None
        climbed = _record_climb(raw, self.scopes) if name == "val" else None
        if climbed is not None:
            # ``[[2], "stage"]`` from inside one item reads the record's stage:
            # each item scope is two levels, and climbing past the top stops there.
            return self.path_kind(climbed, path, in_item=False)
        if name == "val" and (not in_item or (raw and isinstance(raw[0], list))):
            # Outside an item, or climbing out of one to an outer item, val reads
            # names the checks cannot follow.
            self.dynamic = True
        if name in ("changed", "prior"):
            return self.prior_kind(name, literal, path)
        if name in ("if", "?:") and len(kinds) > 1:
            branches = {kinds[i] for i in range(1, len(kinds), 2)}
            if len(kinds) % 2:
                branches.add(kinds[-1])
            return branches.pop() if len(branches) == 1 else "any"
        if name == "log" and kinds:
            return kinds[0]
        return None

    def prior_kind(self, name: str, field: Any, path: str) -> str:
        if not self.allow_prior:
            self.report(
                path,
                "prior_not_available",
                f"{name} reads the value before the change, which only updates have.",
            )
            return "any"
        if not isinstance(field, str):
            self.dynamic = True
            return "any"
        self.read(field, path)
        if field not in self.fields:
            self.report(path, "unknown_field", f"There is no field {field!r}.")
            return "any"
        return self.read_as(FIELD_KINDS.get(self.fields[field], "any"), field, path)

    def read(self, name: str, path: str) -> None:
        """Note that the condition reads ``name`` (a field, or a related
        record's: ``account.industry``) at ``path``."""
        self.reads.add(name)
        self.read_at.setdefault(name, path)

    def read_as(self, kind: str, name: str, path: str) -> str:
        """Note the record that ``name``, read at ``path``, gives, if it does."""
        if kind == "record":
            self.records[path] = name
        return kind

    def path_kind(self, keys: list[str], path: str, *, in_item: bool) -> str:
        if not keys or keys == [""]:
            # The whole record: every field is read.
            self.dynamic = self.dynamic or not in_item
            return "record" if in_item else self.read_as("record", "", path)
        head = keys[0]
        if head.startswith("$"):
            return self.special_kind(keys, path)
        if in_item:
            # Inside map, filter and the like, var reads the current item.
            return "any"
        dotted = ".".join(keys)
        self.read(dotted, path)
        kind = self.field_kind(keys, path, self.fields, self.relations)
        return self.read_as(kind, dotted, path)

    def special_kind(self, keys: list[str], path: str) -> str:
        head, rest = keys[0], keys[1:]
        if head == "$now" and not rest:
            return "datetime"
        if head == "$user":
            if not rest:
                return "object"
            return self.user_kind(rest, path)
        if head == "$prior":
            if not self.allow_prior:
                self.report(
                    path, "prior_not_available", "$prior only exists on updates."
                )
                return "any"
            if not rest:
                return "object"
            dotted = ".".join(rest)
            self.read(dotted, path)
            # The record before the change reads through its lookups as the
            # record does: ``$prior.account.id`` is the account it pointed at.
            kind = self.field_kind(rest, path, self.fields, self.relations)
            return self.read_as(kind, dotted, path)
        self.report(path, "unknown_field", f"There is no value named {head!r}.")
        return "any"

    def user_kind(self, rest: list[str], path: str) -> str:
        name = rest[0] if len(rest) == 1 else ""
        if name in USER_KINDS:
            return USER_KINDS[name]
        if self.user_attributes:
            if name in _USER_TEAMS:
                return _USER_TEAMS[name]
            if name != "admin" and _ATTRIBUTE_NAME.match(name):
                return "any"
            offered = ", ".join(sorted({*USER_KINDS, *_USER_TEAMS}))
            message = f"$user has {offered} and the user's attributes"
        else:
            message = f"$user has {', '.join(sorted(USER_KINDS))}"
        self.report(path, "unknown_field", f"{message}, not {'.'.join(rest)!r}.")
        return "any"

    def field_kind(
        self,
        keys: list[str],
        path: str,
        fields: Mapping[str, str],
        relations: Mapping[str, Mapping[str, str]],
    ) -> str:
        head = keys[0]
        if head not in fields:
            self.report(path, "unknown_field", f"There is no field {head!r}.")
            return "any"
        if len(keys) == 1:
            return FIELD_KINDS.get(fields[head], "any")

        dotted = ".".join(keys)
        if fields[head] == "lookup" and head not in relations:
            self.report(
                path,
                "unknown_relation",
                f"{dotted!r} reads a field of the record {head!r} points to, which "
                f"is not possible here; compare {head!r} itself (the record's id).",
            )
            return "any"
        if fields[head] != "lookup":
            self.report(
                path,
                "unknown_relation",
                f"{dotted!r} reads through {head!r}, which is not a lookup field.",
            )
            return "any"
        related = relations[head]
        if len(keys) > 2:
            self.report(
                path,
                "unknown_relation",
                f"{dotted!r} goes through two relations; conditions reach one.",
            )
            return "any"
        if keys[1] not in related:
            self.report(
                path,
                "unknown_field",
                f"The record that {head!r} points to has no field {keys[1]!r}.",
            )
            return "any"
        return FIELD_KINDS.get(related[keys[1]], "any")


def join_path(prefix: str, path: str) -> str:
    """The JSON path ``path``, found inside the value at ``prefix``:
    ``condition.and[1]``, and ``condition[0]`` for an item of a list."""
    if not path:
        return prefix
    if not prefix:
        return path
    return f"{prefix}{path}" if path.startswith("[") else f"{prefix}.{path}"


def written_values(expression: Any, path: str = "") -> list[tuple[Any, str]]:
    """The values written in ``expression`` that it may give as they are, each
    with its JSON path: the expression itself when it is no operation, or those
    of each operand it may give (``if``, ``coalesce``, a ``var``'s default…).

    A formula's or an action's value that is written so is known when the rule
    is saved, so the field it fills can judge it then.
    """
    if not is_operation(expression):
        return [(expression, path)]
    ((name, operand),) = expression.items()
    prefix = f"{path}.{name}" if path else name
    if name == "preserve":
        return [(operand, prefix)]
    if isinstance(operand, list):
        raw, paths = operand, [f"{prefix}[{index}]" for index in range(len(operand))]
    else:
        raw, paths = [operand], [prefix]
    picked = _picked(name, len(raw)) or []
    if name == "and":
        # Only the last operand is given as it is written: and gives an earlier
        # one when it is false, which written text or a list is only when blank.
        picked = picked[-1:]
    return [
        found
        for index in picked
        if index >= 0
        for found in written_values(raw[index], paths[index])
    ]


def _picked(name: str, count: int) -> list[int] | None:
    """Which of its ``count`` operands an operation may give as its value (-1 for
    the value it reads itself), or None when it computes a value of its own."""
    if name in ("if", "?:"):
        if count < 2:
            return list(range(count)) or None
        return [*range(1, count, 2), *([count - 1] if count % 2 else [])]
    if name in ("coalesce", "??", "or", "and", "try", "log"):
        # log hands its operand through.
        return list(range(count)) or None
    if name == "var" and count > 1:
        # The field read, or the default when it is blank.
        return [-1, *range(1, count)]
    return None


def _added_kind(kind: str, start: Any) -> str:
    """The kind ``date_add`` gives from a start of ``kind``: ISO text written in
    the rule gives the date or datetime it stands for, other text nothing."""
    if not isinstance(start, str):
        return kind
    moment = _dates.parse(start)
    if moment is None:
        return "null"
    return "datetime" if isinstance(moment, dt.datetime) else "date"


def _missing_keys(name: str, raw: list[Any], paths: list[str]) -> list[tuple[str, str]]:
    """The literal field names of ``missing`` or ``missing_some``, with their paths."""
    if name == "missing_some":
        keys = raw[1] if isinstance(raw[1], list) else [raw[1]]
        key_paths = [f"{paths[1]}[{index}]" for index in range(len(keys))]
    elif raw and isinstance(raw[0], list):
        keys = raw[0]
        key_paths = [f"{paths[0]}[{index}]" for index in range(len(keys))]
    else:
        keys, key_paths = raw, paths
    return [
        (key, key_path)
        for key, key_path in zip(keys, key_paths, strict=True)
        if isinstance(key, str)
    ]


def _holds_operation(raw: list[Any]) -> bool:
    """Whether an operand, or an item of a list operand, is computed."""
    items = [
        item
        for operand in raw
        for item in (operand if isinstance(operand, list) else [operand])
    ]
    return any(isinstance(item, dict) for item in items)


def _record_climb(raw: list[Any] | None, scopes: int) -> list[str] | None:
    """The keys a scoped ``val`` (``[[levels], "key", ...]``) reads on the record,
    when its levels climb out of all ``scopes`` item scopes; otherwise None."""
    if not raw or len(raw) < 2 or not isinstance(raw[0], list) or len(raw[0]) != 1:
        return None
    levels = raw[0][0]
    keys = raw[1:]
    if (
        isinstance(levels, bool)
        or not isinstance(levels, int)
        or not all(isinstance(key, str) for key in keys)
    ):
        return None
    return [str(key) for key in keys] if abs(levels) >= 2 * scopes else None


def _reads_other_data(name: str, index: int) -> bool:
    """Whether operand ``index`` runs on other data than the record.

    The expression of ``map``, ``filter``, ``reduce``, ``all``, ``some`` and
    ``none`` runs on each item, and the fallbacks of ``try`` on the error.
    """
    if name == "try":
        return index > 0
    return name in _ITERATIONS and index == 1


def _placeholder(data: Any, scope: Any) -> Any:
    return None


def _literal_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "list"
    return "object"


def _fits(raw: Any, kind: str, allowed: frozenset[str]) -> bool:
    if kind in ("any", "null") or kind in allowed:
        return True
    if isinstance(raw, str):
        # Text written into the condition may be a date or a number in disguise.
        parsed = _dates.parse(raw)
        if parsed is not None and allowed & _TEMPORAL:
            return True
        return bool(allowed & {"number"}) and looks_numeric(raw)
    return False


def _describe(allowed: frozenset[str]) -> str:
    if allowed == _TEMPORAL:
        return "a date or datetime"
    if allowed == _NUMERIC:
        return "a number"
    return " or ".join(_KIND_TEXT[kind] for kind in sorted(allowed))


def _subject(raw: Any) -> str:
    if is_operation(raw) and "var" in raw and isinstance(raw["var"], str):
        return f"field {raw['var']!r}"
    if isinstance(raw, (dict, list)):
        return "this operand"
    return f"{raw!r}"
