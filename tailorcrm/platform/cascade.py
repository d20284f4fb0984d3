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
    truthy,
)
from .automation import run_automations
from .db import is_sqlite, utcnow
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
        """Recompute, then automate; return whether any other write happened."""
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
        wrote = len(done) > len(changes)
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
        table = entity.table
        query = sa.select(table).where(table.c.id.in_(sorted(ids))).order_by(table.c.id)
        if not is_sqlite(self.connection):
            query = query.with_for_update(key_share=True)
        return {
            int(row["id"]): dict(row)
            for row in self.connection.execute(query).mappings()
        }

    def _aggregate(self, rule: RollupRule, parents: set[int]) -> dict[int, Any]:
        child = self.catalog.entity(rule.child)
        table = child.table
        lookup = table.c[rule.lookup]
        where: list[sa.ColumnElement[bool]] = [lookup.in_(sorted(parents))]
        if rule.condition is not None:
            condition = self._sql_condition(rule, child)
            if condition is None:
                return self._aggregate_in_python(rule, child, parents)
            where.append(condition)
        value, scale = self._sql_value(rule, child)
        query = sa.select(lookup, value).where(*where).group_by(lookup)
        found = {}
        for parent, result in self.connection.execute(query):
            if scale is not None and result is not None:
                result = Decimal(int(result)).scaleb(-scale)
            found[int(parent)] = result
        return found

    def _sql_condition(
        self, rule: RollupRule, child: EntityDef
    ) -> sa.ColumnElement[bool] | None:
        if rule.condition is None:
            return None
        types = {**SYSTEM_TYPES, **{n: s["type"] for n, s in child.fields.items()}}
        columns = {name: (child.table.c[name], kind) for name, kind in types.items()}
        try:
            return compile_sql(
                rule.condition.source,
                columns,
                user=self.service.user,
                now=self.service.now,
            )
        except (ConditionError, OverflowError, ValueError, RecursionError):
            # No exact SQL form (see OPERATIONS.md), or a literal out of the
            # database's range: the children are read and the condition runs in
            # Python instead.
            return None

    def _sql_value(
        self, rule: RollupRule, child: EntityDef
    ) -> tuple[sa.ColumnElement[Any], int | None]:
        """The aggregate, and the scale its integer result is in (exact SQLite sums)."""
        if rule.function == "count" or rule.of is None:
            return sa.func.count(), None
        column = child.table.c[rule.of]
        if rule.function == "min":
            return sa.func.min(column), None
        if rule.function == "max":
            return sa.func.max(column), None
        spec = child.fields.get(rule.of, {"type": "integer"})
        if spec["type"] in DECIMAL_TYPES and is_sqlite(self.connection):
            # SQLite keeps decimals as binary floats; adding them as whole units of
            # the field's scale keeps the sum exact.
            scale = int(spec.get("scale", 2))
            units = sa.func.round(column * (10**scale))
            return sa.func.sum(sa.cast(units, sa.BigInteger)), scale
        return sa.func.sum(column), None

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
        table = child.table
        query = (
            sa.select(table)
            .where(table.c[lookup].in_(sorted(parents)))
            .order_by(table.c.id)
        )
        return {
            int(row["id"]): dict(row)
            for row in self.connection.execute(query).mappings()
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
            table = child.table
            query = sa.select(table).where(table.c.id.in_(ids)).order_by(table.c.id)
            rows = {
                int(row["id"]): dict(row)
                for row in self.connection.execute(query).mappings()
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
        table = entity.table
        written = []
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
                table.update()
                .where(table.c.id == record_id)
                .values(**changes, updated_at=now, version=table.c.version + 1)
            )
            after = {**merged, "updated_at": now, "version": row["version"] + 1}
            written.append(Change(entity, "update", row, after))
        return written

    def refill(self, entity: EntityDef, rules: Sequence[Rule]) -> None:
        """Compute the fields of new formulas and roll-ups for every stored record.

        Runs when such a rule is added or changed, a chunk of records at a time;
        what the new values feed is recomputed in turn. Automations do not run.
        """
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
