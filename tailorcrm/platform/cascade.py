"""After a save: roll-ups, formulas that read the record through lookups, automation.

They run in this order, in the save's transaction (RULES.md in the rules engine):

1. roll-ups over the saved records are recomputed on their parent records;
2. formulas of other records that read a changed field through a lookup
   (``account.industry``) are recomputed; both steps repeat for the records they
   change, until nothing changes (the rule checks refuse formulas and roll-ups that
   depend on themselves, so this ends);
3. automations run for every record the save changed, in the order of their
   ``order``, then name (see :mod:`.automation`).

Recomputations bump the version of the records they change (their stored values
changed), but run no validation rules: a change to an account cannot be refused
because of a formula on one of its opportunities.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ..errors import Problem, ValidationFailed
from ..metadata import DECIMAL_TYPES, SYSTEM_TYPES, EntityDef
from ..rules_engine import (
    ConditionError,
    FormulaRule,
    RollupRule,
    Rule,
    compile_sql,
    reads_context,
    truthy,
)
from .automation import run_automations
from .db import is_sqlite, utcnow
from .fieldhistory import records_recomputed
from .rules import (
    EMPTY_ROLLUP,
    EVERYTHING,
    RecordRules,
    RuleValueError,
    fit,
)

if TYPE_CHECKING:
    from .records import RecordService

# Recomputation follows the dependency graph, which the rule checks keep free of
# circles; this bound only turns a defect into an error instead of a hang.
_MAX_ROUNDS = 100
# Records read at a time when a new formula or roll-up fills its field.
_REFILL_CHUNK = 1000


@dataclass(frozen=True)
class Change:
    """One record written by a save: the row before (not on create) and after."""

    entity: EntityDef
    trigger: str
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None

    @property
    def record(self) -> Mapping[str, Any]:
        found = self.after if self.after is not None else self.before
        if found is None:
            raise ValueError("a change needs a row before or after it")
        return found

    @property
    def record_id(self) -> int:
        return int(self.record["id"])

    def changed(self) -> set[str]:
        """The fields (and owner) whose value differs; all of them on create/delete."""
        names = [*self.entity.fields, "owner_id"]
        if self.before is None or self.after is None:
            return set(names)
        return {n for n in names if self.before.get(n) != self.after.get(n)}


class Cascade:
    """What follows the saves of one record service call."""

    def __init__(self, service: RecordService) -> None:
        self.service = service
        self.connection = service.connection
        self.catalog = service.catalog
        #: The path recomputed values come by in the field history.
        self.via = "rule"

    def _rules(self, entity: EntityDef) -> RecordRules:
        return RecordRules(
            self.connection,
            self.catalog,
            entity,
            user=self.service.user,
            now=self.service.now,
        )

    def needed(self, entity: EntityDef) -> bool:
        return self.catalog.rules.for_entity(entity.name).after_save

    def run(self, changes: Sequence[Change]) -> bool:
        """Recompute, then automate.

        :returns: whether the records of ``changes`` may have been written again
            (by a recomputation, or by whatever an automation saved), so that what
            the caller holds of them may be out of date.
        """
        if not any(self.needed(change.entity) for change in changes):
            return False
        done: list[Change] = []
        pending = list(changes)
        for _ in range(_MAX_ROUNDS):
            if not pending:
                break
            done += pending
            pending = self._rollups(pending) + self._dependents(pending)
        else:
            raise ValidationFailed("Formulas and roll-ups kept changing each other.")
        saved = {(change.entity.name, change.record_id) for change in changes}
        wrote = any(
            (change.entity.name, change.record_id) in saved
            for change in done[len(changes) :]
        )
        if not self.service.bypass_automation:
            wrote = run_automations(self.service, done) or wrote
        return wrote

    # -- roll-ups ------------------------------------------------------------------

    def _rollups(self, changes: Sequence[Change]) -> list[Change]:
        wanted: dict[str, dict[RollupRule, set[int]]] = defaultdict(
            lambda: defaultdict(set)
        )
        for change in changes:
            for rule in self.catalog.rules.for_entity(change.entity.name).rollups:
                wanted[rule.entity][rule] |= _parents(rule, change)
        written = []
        for name, rules in wanted.items():
            entity = self.catalog.entities.get(name)
            ids = set().union(*rules.values())
            if entity is None or entity.removed or not ids:
                continue
            rows = self._lock(entity, ids)
            values: dict[int, dict[str, Any]] = defaultdict(dict)
            for rule, parents in rules.items():
                found = self._aggregate(rule, parents)
                spec = entity.fields[rule.field]
                for parent in parents & rows.keys():
                    value = found.get(parent, EMPTY_ROLLUP[rule.function])
                    try:
                        values[parent][rule.field] = fit(spec, value)
                    except RuleValueError as error:
                        raise _rule_failed(
                            rule.name, entity, rule.field, error
                        ) from None
            written += self.system_update(entity, rows, values, {})
        return written

    def _lock(self, entity: EntityDef, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
        """The parents' rows, locked so that concurrent saves add up one by one.

        ``FOR NO KEY UPDATE``, not ``FOR UPDATE``: each saved child already holds
        the key-share lock that PostgreSQL takes on the parent for the foreign key,
        and ``FOR UPDATE`` would wait for the other children's, a deadlock.
        """
        ids = set(ids)
        lock = not is_sqlite(self.connection)
        query = _rows(entity.table, lock=lock, single=len(ids) == 1)
        return {
            int(row["id"]): dict(row)
            for row in self.connection.execute(query, {"ids": _bound(ids)}).mappings()
        }

    def _aggregate(self, rule: RollupRule, parents: set[int]) -> dict[int, Any]:
        child = self.catalog.entity(rule.child)
        shape = _Shape(
            tuple((name, spec["type"]) for name, spec in child.fields.items()),
            int(child.fields.get(rule.of or "", {}).get("scale", 2)),
            is_sqlite(self.connection),
            len(parents) == 1,
        )
        if _reads_context(rule):
            user, now = self.service.user, self.service.now
            query = _aggregate_query(rule, child.table, shape, user, now)
        else:
            query = _kept_aggregate_query(rule, child.table, shape)
        if query is None:
            return self._aggregate_in_python(rule, child, parents)
        statement, scale = query
        found = {}
        parameters = {"parents": _bound(parents)}
        for parent, result in self.connection.execute(statement, parameters):
            if scale is not None and result is not None:
                result = Decimal(int(result)).scaleb(-scale)
            found[int(parent)] = result
        return found

    def _aggregate_in_python(
        self, rule: RollupRule, child: EntityDef, parents: set[int]
    ) -> dict[int, Any]:
        table = child.table
        names = sorted({rule.lookup, *(rule.condition.reads if rule.condition else ())})
        if rule.of:
            names = sorted({*names, rule.of})
        query = sa.select(*(table.c[n] for n in names)).where(
            table.c[rule.lookup].in_(sorted(parents))
        )
        groups: dict[int, list[Any]] = defaultdict(list)
        for row in self.connection.execute(query).mappings():
            data = {**dict(row), "$user": self.service.user, "$now": self.service.now}
            if rule.condition is not None and not truthy(rule.condition(data)):
                continue
            groups[int(row[rule.lookup])].append(row[rule.of] if rule.of else 1)
        return {
            parent: _combine(rule.function, items) for parent, items in groups.items()
        }

    # -- formulas through lookups ----------------------------------------------------

    def _dependents(self, changes: Sequence[Change]) -> list[Change]:
        wanted: dict[tuple[str, str], dict[int, set[str]]] = defaultdict(
            lambda: defaultdict(set)
        )
        for change in changes:
            if change.trigger != "update":
                continue
            changed = change.changed()
            for dependent in self.catalog.rules.for_entity(
                change.entity.name
            ).dependents:
                fields = dependent.reads & changed
                if fields:
                    key = (dependent.child, dependent.lookup)
                    wanted[key][change.record_id] |= fields
        written = []
        for (name, lookup), parents in wanted.items():
            child = self.catalog.entities.get(name)
            if child is None or child.removed:
                continue
            rows = self._children(child, lookup, parents)
            dirty = {
                record_id: {f"{lookup}.{field}" for field in parents[row[lookup]]}
                for record_id, row in rows.items()
            }
            written += self.system_update(child, rows, {}, dirty)
        return written

    def _children(
        self, child: EntityDef, lookup: str, parents: Iterable[int]
    ) -> dict[int, dict[str, Any]]:
        parents = set(parents)
        query = _children_of(child.table, lookup, single=len(parents) == 1)
        parameters = {"parents": _bound(parents)}
        return {
            int(row["id"]): dict(row)
            for row in self.connection.execute(query, parameters).mappings()
        }

    def cleared(
        self, entity: EntityDef, record_id: int
    ) -> list[tuple[EntityDef, str, list[int]]]:
        """Records whose formulas read ``entity`` through a lookup that its delete
        clears (``set_null``): to be recomputed by :meth:`after_clearing`."""
        found = []
        for dependent in self.catalog.rules.for_entity(entity.name).dependents:
            child = self.catalog.entities.get(dependent.child)
            if child is None or child.removed:
                continue
            spec = child.fields.get(dependent.lookup, {})
            if spec.get("on_delete") != "set_null":
                continue
            ids = sorted(self._children(child, dependent.lookup, [record_id]))
            if ids:
                found.append((child, dependent.lookup, ids))
        return found

    def after_clearing(
        self, cleared: Sequence[tuple[EntityDef, str, list[int]]]
    ) -> list[Change]:
        written = []
        for child, lookup, ids in cleared:
            query = _rows(child.table, lock=False, single=len(ids) == 1)
            parameters = {"ids": _bound(ids)}
            rows = {
                int(row["id"]): dict(row)
                for row in self.connection.execute(query, parameters).mappings()
            }
            dirty = {record_id: {lookup} for record_id in rows}
            written += self.system_update(child, rows, {}, dirty)
        return written

    # -- writing computed values -----------------------------------------------------

    def system_update(
        self,
        entity: EntityDef,
        rows: Mapping[int, Mapping[str, Any]],
        values: Mapping[int, Mapping[str, Any]],
        dirty: Mapping[int, set[str]],
    ) -> list[Change]:
        """Write computed ``values`` and recompute the formulas they feed.

        :param dirty: per record, inputs that changed besides ``values`` (a related
            record's fields, as ``lookup.field``).
        """
        rules = self._rules(entity)
        rules.load_related(rows.values())
        statement = _system_update(entity.table)
        written = []
        noted = []
        for record_id, row in rows.items():
            merged = {**row, **values.get(record_id, {})}
            marks = set(dirty.get(record_id, ())) | {
                name
                for name in values.get(record_id, {})
                if row.get(name) != merged[name]
            }
            if rules.rules.formulas and marks:
                try:
                    merged.update(rules.recompute(merged, marks))
                except RuleValueError as error:
                    raise ValidationFailed(
                        f"A formula of {entity.label} {record_id} could not be "
                        f"recomputed: {error}"
                    ) from None
            changes = {
                name: merged[name]
                for name in entity.fields
                if merged.get(name) != row.get(name)
            }
            if not changes:
                continue
            now = utcnow()
            self.connection.execute(
                statement, {**changes, "updated_at": now, _RECORD_ID: record_id}
            )
            after = {**merged, "updated_at": now, "version": row["version"] + 1}
            written.append(Change(entity, "update", row, after))
            noted.append((row, changes))
        records_recomputed(self.service, entity, noted, via=self.via)
        return written

    def refill(self, entity: EntityDef, rules: Sequence[Rule]) -> None:
        """Compute the fields of new formulas and roll-ups for every stored record.

        Runs when such a rule is added or changed, a chunk of records at a time;
        what the new values feed is recomputed in turn. Automations do not run.
        The field history notes these values as written by the system.
        """
        self.via = "system"
        rollups = [rule for rule in rules if isinstance(rule, RollupRule)]
        formulas = any(isinstance(rule, FormulaRule) for rule in rules)
        table = entity.table
        last = 0
        while True:
            query = (
                sa.select(table)
                .where(table.c.id > last)
                .order_by(table.c.id)
                .limit(_REFILL_CHUNK)
            )
            rows = {
                int(row["id"]): dict(row)
                for row in self.connection.execute(query).mappings()
            }
            if not rows:
                return
            last = max(rows)
            values: dict[int, dict[str, Any]] = defaultdict(dict)
            for rule in rollups:
                found = self._aggregate(rule, set(rows))
                spec = entity.fields[rule.field]
                for record_id in rows:
                    value = found.get(record_id, EMPTY_ROLLUP[rule.function])
                    try:
                        values[record_id][rule.field] = fit(spec, value)
                    except RuleValueError as error:
                        raise _rule_failed(
                            rule.name, entity, rule.field, error
                        ) from None
            dirty = {record_id: {EVERYTHING} for record_id in rows} if formulas else {}
            self.run(self.system_update(entity, rows, values, dirty))


# Statements are built once per table (and roll-up rule) of a catalog and run with
# bound parameters: building and compiling a statement costs more than running it.

#: The parameter of the record's id in a system update; no field name starts
#: with an underscore, so it never meets a column's.
_RECORD_ID = "_record_id"


def _among(column: sa.ColumnElement[Any], name: str, *, single: bool) -> Any:
    """``column`` holds one of the ids bound as ``name`` (see :func:`_bound`).

    One id is compared with ``=``: SQLAlchemy renders an IN list again on every
    run, which costs more than the query itself.
    """
    if single:
        return column == sa.bindparam(name)
    return column.in_(sa.bindparam(name, expanding=True))


def _bound(ids: Iterable[int]) -> int | list[int]:
    """The value to bind for :func:`_among`: the id itself when there is one."""
    ordered = sorted(ids)
    return ordered[0] if len(ordered) == 1 else ordered


@functools.lru_cache(maxsize=2048)
def _rows(table: sa.Table, *, lock: bool, single: bool) -> sa.Select[Any]:
    """The rows whose ids are bound as ``ids``, in id order."""
    query = (
        sa.select(table)
        .where(_among(table.c.id, "ids", single=single))
        .order_by(table.c.id)
    )
    return query.with_for_update(key_share=True) if lock else query


@functools.lru_cache(maxsize=2048)
def _children_of(table: sa.Table, lookup: str, *, single: bool) -> sa.Select[Any]:
    """The rows whose ``lookup`` holds one of the ids bound as ``parents``."""
    return (
        sa.select(table)
        .where(_among(table.c[lookup], "parents", single=single))
        .order_by(table.c.id)
    )


@functools.lru_cache(maxsize=2048)
def _system_update(table: sa.Table) -> sa.Update:
    """Set the columns given as parameters and bump the version of one record."""
    return (
        table.update()
        .where(table.c.id == sa.bindparam(_RECORD_ID))
        .values(version=table.c.version + 1)
    )


@functools.lru_cache(maxsize=1024)
def _reads_context(rule: RollupRule) -> bool:
    return rule.condition is not None and reads_context(rule.condition.source)


@dataclass(frozen=True)
class _Shape:
    """What a roll-up's statement depends on besides its rule and the child table."""

    #: The child's fields and their types.
    types: tuple[tuple[str, str], ...]
    #: The scale of the field summed, when it is a decimal.
    scale: int
    sqlite: bool
    #: Whether one parent is recomputed (see :func:`_among`).
    single: bool


_AggregateQuery = tuple[sa.Select[Any, Any], int | None]


@functools.lru_cache(maxsize=1024)
def _kept_aggregate_query(
    rule: RollupRule, table: sa.Table, shape: _Shape
) -> _AggregateQuery | None:
    """:func:`_aggregate_query` of a roll-up whose condition reads no ``$user`` and
    no clock, which therefore translates the same for every save."""
    return _aggregate_query(rule, table, shape, None, None)


def _aggregate_query(
    rule: RollupRule,
    table: sa.Table,
    shape: _Shape,
    user: Mapping[str, Any] | None,
    now: dt.datetime | None,
) -> _AggregateQuery | None:
    """The roll-up's aggregate per parent, the parents' ids bound as ``parents``,
    and the scale its integer result is in (exact SQLite sums).

    ``None`` when its condition has no SQL form: it then runs in Python.
    """
    lookup = table.c[rule.lookup]
    where: list[sa.ColumnElement[bool]] = [
        _among(lookup, "parents", single=shape.single)
    ]
    if rule.condition is not None:
        kinds = {**SYSTEM_TYPES, **dict(shape.types)}
        columns = {name: (table.c[name], kind) for name, kind in kinds.items()}
        try:
            condition = compile_sql(rule.condition.source, columns, user=user, now=now)
        except (ConditionError, OverflowError, ValueError, RecursionError):
            # No exact SQL form (see OPERATIONS.md), or a literal out of the
            # database's range: the children are read and the condition runs in
            # Python instead.
            return None
        where.append(condition)
    value, scale = _sql_value(rule, table, shape)
    return sa.select(lookup, value).where(*where).group_by(lookup), scale


def _sql_value(
    rule: RollupRule, table: sa.Table, shape: _Shape
) -> tuple[sa.ColumnElement[Any], int | None]:
    if rule.function == "count" or rule.of is None:
        return sa.func.count(), None
    column = table.c[rule.of]
    if rule.function == "min":
        return sa.func.min(column), None
    if rule.function == "max":
        return sa.func.max(column), None
    if dict(shape.types).get(rule.of, "integer") in DECIMAL_TYPES and shape.sqlite:
        # SQLite keeps decimals as binary floats; adding them as whole units of
        # the field's scale keeps the sum exact.
        units = sa.func.round(column * (10**shape.scale))
        return sa.func.sum(sa.cast(units, sa.BigInteger)), shape.scale
    return sa.func.sum(column), None


def _parents(rule: RollupRule, change: Change) -> set[int]:
    """The parent records whose roll-up a change of one child can move."""
    before = change.before or {}
    after = change.after or {}
    old, new = before.get(rule.lookup), after.get(rule.lookup)
    if change.trigger == "update" and old == new:
        moved = any(before.get(name) != after.get(name) for name in rule.reads)
        found = {new} if moved else set()
    else:
        found = {old, new}
    return {int(parent) for parent in found if parent is not None}


def _combine(function: str, items: list[Any]) -> Any:
    present = [item for item in items if item is not None]
    if function == "count":
        return len(items)
    if function == "sum":
        return sum(present, Decimal(0)) if present else 0
    if not present:
        return None
    return min(present) if function == "min" else max(present)


def _rule_failed(
    name: str, entity: EntityDef, field: str, error: RuleValueError
) -> ValidationFailed:
    message = f"The roll-up rule {name!r} gave a value that does not fit: {error}"
    return ValidationFailed(
        f"{entity.label} could not be updated.",
        problems=[Problem(f"{entity.name}.{field}", "rule_value", message)],
    )
