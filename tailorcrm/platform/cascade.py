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
import weakref
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa

from ..errors import Conflict, Problem, TailorError, ValidationFailed
from ..metadata import (
    DECIMAL_TYPES,
    INTEGER_LIMIT,
    SYSTEM_TYPES,
    Catalog,
    EntityDef,
    is_unique,
    precision_scale,
    to_json,
)
from ..rules_engine import (
    ConditionError,
    EntityRules,
    Expression,
    FormulaRule,
    RollupRule,
    Rule,
    compile_sql,
    reads_context,
    truthy,
)
from . import direct
from .access import readable_rules
from .automation import run_automations
from .db import is_sqlite, utcnow
from .fieldhistory import flush, records_recomputed
from .rules import (
    EMPTY_ROLLUP,
    RecordRules,
    RuleValueError,
    fit,
    fitter,
    related_fields,
)

if TYPE_CHECKING:
    from .records import RecordService

# Recomputation follows the dependency graph, which the rule checks keep free of
# circles; this bound only turns a defect into an error instead of a hang.
_MAX_ROUNDS = 100
# Records read at a time when a new formula or roll-up fills its field.
_REFILL_CHUNK = 1000
# Records so filled whose consequences are recomputed together. Recomputing after
# each chunk would write a parent once per chunk holding its children, with sums
# of some of them (noted in its history), and recompute what reads the parent as
# often; this bounds what is held in memory instead.
_REFILL_CASCADE = 20_000


class Change:
    """One record written by a save: the row before (not on create) and after.

    ``followed`` marks a record the save changed in turn (a roll-up's parent, a
    recomputed formula, a lookup a delete cleared), not the one its caller saved.
    """

    __slots__ = ("entity", "trigger", "before", "after", "followed")

    def __init__(
        self,
        entity: EntityDef,
        trigger: str,
        before: Mapping[str, Any] | None,
        after: Mapping[str, Any] | None,
        *,
        followed: bool = False,
    ) -> None:
        self.entity = entity
        self.trigger = trigger
        self.before = before
        self.after = after
        self.followed = followed

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
        #: The rows that roll-up increments wrote and returned, each with the
        #: change it made, by entity and id; this transaction keeps them locked.
        self._incremented: dict[tuple[str, int], tuple[Change, dict[str, Any]]] = {}

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
        unsettled = self._unsettled(changes)
        if not unsettled and not any(self.needed(c.entity) for c in changes):
            return False
        done: list[Change] = []
        pending = list(changes)
        for _ in range(_MAX_ROUNDS):
            if not pending and unsettled:
                pending, unsettled = self._settle(unsettled, done), []
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
            # What automations save is noted after what led to it.
            flush(self.service)
            wrote = run_automations(self.service, _once_each(done)) or wrote
        return wrote

    # -- formulas through lookups the save set --------------------------------------

    def _through(self, entity: EntityDef) -> Mapping[str, frozenset[str]]:
        """For each lookup of ``entity`` that its formulas read through, the
        related record's fields they read; once per catalog."""

        def build() -> dict[str, frozenset[str]]:
            reads: dict[str, set[str]] = defaultdict(set)
            for rule in self.catalog.rules.for_entity(entity.name).formulas:
                for name in rule.expression.reads:
                    lookup, _, field = name.partition(".")
                    if field and lookup in entity.fields:
                        reads[lookup].add(field.partition(".")[0])
            return {lookup: frozenset(fields) for lookup, fields in reads.items()}

        return self.catalog.derived(("formulas_through", entity.name), build)

    def _unsettled(self, changes: Sequence[Change]) -> list[tuple[Change, set[str]]]:
        """The saved records that now point, through a lookup their formulas read,
        at a record they did not point at before, each with those lookups.

        On PostgreSQL such a record read the related one under the key-share lock
        of its foreign key, which does not wait for what the platform itself
        writes there (a roll-up's increment, an automation's update, a recomputed
        formula). A save of the related record that commits meanwhile recomputes
        only the records that already point at it: the new one, not yet
        committed, would keep a value computed from what it replaced. SQLite lets
        one writer in at a time.
        """
        if is_sqlite(self.connection):
            return []
        found = []
        for change in changes:
            if change.after is None:
                continue
            through = self._through(change.entity)
            if not through:
                continue
            before = change.before or {}
            lookups = {
                lookup
                for lookup in through
                if change.after.get(lookup) is not None
                and before.get(lookup) != change.after.get(lookup)
            }
            if lookups:
                found.append((change, lookups))
        return found

    def _settle(
        self, unsettled: Sequence[tuple[Change, set[str]]], done: Sequence[Change]
    ) -> list[Change]:
        """Read again the records that ``unsettled`` records now point at, under a
        share lock kept until the save commits, and recompute the formulas that
        read them where they changed since they were read.

        The lock waits for a save of the related record that is under way, and
        keeps any other from changing it until this save commits; a save that
        comes after then finds the records pointing at it. It is taken last, once
        this save's own roll-up increments hold their row locks, so two saves of
        children of one record do not each wait for the other's.
        """
        # A roll-up's increment returns only some fields of the record it adds
        # to; where the record is also one of ``unsettled``, its row is the one
        # saved with each later change's fields laid over it.
        latest: dict[tuple[str, int], dict[str, Any]] = {}
        for change in done:
            if change.after is not None:
                key = (change.entity.name, change.record_id)
                latest[key] = {**latest.get(key, {}), **change.after}
        # A record that a roll-up's increment wrote last is locked already, more
        # strongly than by a share lock, and the increment returned its row as
        # committed with this save's change: it is not read again.
        last = {(change.entity.name, change.record_id): change for change in done}
        held = {
            key: row
            for key, (change, row) in self._incremented.items()
            if last.get(key) is change
        }
        per_entity: dict[str, list[tuple[Change, set[str]]]] = defaultdict(list)
        for change, lookups in unsettled:
            per_entity[change.entity.name].append((change, lookups))
        written = []
        for name in sorted(per_entity):
            entity = per_entity[name][0][0].entity
            through = self._through(entity)
            rows: dict[int, Mapping[str, Any]] = {}
            pointing: dict[int, set[str]] = defaultdict(set)
            for change, lookups in per_entity[name]:
                rows[change.record_id] = (
                    latest.get((name, change.record_id), change.after) or {}
                )
                pointing[change.record_id] |= lookups
            rules = self._rules(entity)
            rules.load_shared(rows.values(), set().union(*pointing.values()), held=held)
            # Only what changed since the save's rules read it is computed again.
            dirty: dict[int, set[str]] = {}
            for record_id, row in rows.items():
                marks = {
                    f"{lookup}.{field}"
                    for lookup in pointing[record_id]
                    for field in through[lookup]
                    if self._moved_since_read(entity, lookup, field, row, rules)
                }
                if marks:
                    dirty[record_id] = marks
            if dirty:
                rows = {record_id: rows[record_id] for record_id in dirty}
                written += self.system_update(entity, rows, {}, dirty, rules=rules)
        return written

    def _moved_since_read(
        self,
        entity: EntityDef,
        lookup: str,
        field: str,
        row: Mapping[str, Any],
        rules: RecordRules,
    ) -> bool:
        """Whether ``field`` of the record that ``row`` points at through
        ``lookup``, as ``rules`` have it now, may differ from what the save's
        own rules read of it (see :attr:`.RecordService.related_read`)."""
        target = self.catalog.entities.get(entity.fields[lookup]["target"])
        value = row.get(lookup)
        if target is None or not isinstance(value, int):
            return True
        if target.fields.get(field, {}).get("type") == "lookup":
            # Formulas read on through it, into records not compared here.
            return True
        read = self.service.related_read.get((target.name, value))
        now = rules.related(lookup, value)
        if read is None or now is None or field not in read or field not in now:
            return True
        return bool(read[field] != now[field])

    # -- roll-ups ------------------------------------------------------------------

    def _rollups(self, changes: Sequence[Change]) -> list[Change]:
        recomputed: dict[str, dict[RollupRule, set[int]]] = {}
        deltas: dict[str, dict[int, dict[RollupRule, Any]]] = {}
        for change in changes:
            for rule, increments in self._rollups_over(change.entity.name):
                if increments is None:
                    parents = recomputed.setdefault(rule.entity, {})
                    parents[rule] = parents.get(rule, set()) | _parents(rule, change)
                    continue
                for parent, amount in increments.shares(change):
                    if not amount:
                        continue
                    per_rule = deltas.setdefault(rule.entity, {}).setdefault(parent, {})
                    per_rule[rule] = per_rule.get(rule, 0) + amount
        if not recomputed and not deltas:
            return []
        written = []
        for name in sorted({*recomputed, *deltas}):
            entity = self.catalog.entities.get(name)
            if entity is None or entity.removed:
                continue
            moved = {
                parent: {rule: amount for rule, amount in per_rule.items() if amount}
                for parent, per_rule in deltas.get(name, {}).items()
            }
            moved = {parent: per_rule for parent, per_rule in moved.items() if per_rule}
            rules = {
                rule: parents
                for rule, parents in recomputed.get(name, {}).items()
                if parents
            }
            if not rules and self._blind_increments(entity, moved):
                written += self._add(entity, moved)
            else:
                written += self._recompute(entity, rules, moved)
        return written

    def _rollups_over(
        self, child: str
    ) -> tuple[tuple[RollupRule, _Increments | None], ...]:
        """The roll-ups over the records of ``child``, each with how it is kept
        by increments (None when it is recomputed), once per catalog."""
        return self.catalog.derived(
            ("rollups_over", child),
            lambda: tuple(
                (rule, self._increments(rule))
                for rule in self.catalog.rules.for_entity(child).rollups
            ),
        )

    def _increments(self, rule: RollupRule) -> _Increments | None:
        """How ``rule`` is kept by adding each change's increment; None when it is
        recomputed instead (see :func:`_incremental`).

        A rule is compiled once per catalog, so its answer holds as long as it.
        """
        found = _INCREMENTS.get(rule, _UNKNOWN)
        if found is _UNKNOWN:
            parent = self.catalog.entities.get(rule.entity)
            child = self.catalog.entities.get(rule.child)
            of = child.fields.get(rule.of or "") if child is not None else None
            kept = (
                parent is not None
                and child is not None
                and _incremental(rule, parent.fields.get(rule.field), of)
            )
            found = _Increments.of_rule(rule, of) if kept else None
            _INCREMENTS[rule] = found
        return cast("_Increments | None", found)

    def _blind_increments(
        self, entity: EntityDef, moved: Mapping[int, Mapping[RollupRule, Any]]
    ) -> bool:
        """Whether increments may be added without reading the parents first.

        The parents' rows before the change are then pieced together from the rows
        after it; that is exact for their fields and version, but not for
        ``updated_at``. So automations on update (which read ``$prior``),
        formulas that read the roll-ups (computed from the row before writing it)
        and roll-ups over the parents that read ``updated_at`` need the rows read
        first. So does a unique field: a total that another record already has
        is refused naming the value it would be, which a blind statement does
        not know.
        """
        fields = frozenset(
            rule.field for per_rule in moved.values() for rule in per_rule
        )
        return self.catalog.derived(
            ("blind_increments", entity.name, fields),
            lambda: (
                not any(is_unique(entity.fields[name]) for name in fields)
                and _blind(self.catalog.rules.for_entity(entity.name), fields)
            ),
        )

    def _add(
        self, entity: EntityDef, moved: Mapping[int, Mapping[RollupRule, Any]]
    ) -> list[Change]:
        """Add each parent's increments with one statement, and return the changes.

        The statement reads no child and no parent: it adds to the stored value
        under the row lock that the update itself takes, so concurrent saves of
        children add up on PostgreSQL too.
        """
        sqlite = is_sqlite(self.connection)
        written = []
        noted: list[tuple[dict[str, Any], dict[str, Any]]] = []
        now = utcnow()
        for parent in sorted(moved) if len(moved) > 1 else moved:
            per_rule = moved[parent]
            statement, scales, fits = _increment(
                self.catalog, entity, frozenset(per_rule), sqlite=sqlite
            )
            parameters: dict[str, Any] = {_RECORD_ID: parent, "updated_at": now}
            for rule, amount in per_rule.items():
                scale = scales[rule.field]
                bound = (
                    int(amount * 10**scale) if sqlite and scale is not None else amount
                )
                if isinstance(bound, int) and abs(bound) > INTEGER_LIMIT:
                    # The increments of one batch alone outgrow a 64-bit number.
                    error = _beyond(entity.fields[rule.field])
                    raise self._rollups_failed(entity, [(rule, parent, error)])
                parameters[_DELTA + rule.field] = bound
            rows = self._run_increment(entity, parent, per_rule, statement, parameters)
            if not rows:
                continue
            after = {**rows[0], "updated_at": now}
            before = {**after, "version": after["version"] - 1, "updated_at": None}
            failures = []
            for rule, amount in per_rule.items():
                try:
                    fits[rule.field](after[rule.field])
                except RuleValueError as error:
                    failures.append((rule, parent, error))
                before[rule.field] = after[rule.field] - amount
            if failures:
                raise self._rollups_failed(entity, failures)
            change = Change(entity, "update", before, after, followed=True)
            written.append(change)
            self._incremented[(entity.name, parent)] = (change, rows[0])
            noted.append((before, {rule.field: after[rule.field] for rule in per_rule}))
        records_recomputed(self.service, entity, noted, via=self.via)
        return written

    def _run_increment(
        self,
        entity: EntityDef,
        parent: int,
        per_rule: Mapping[RollupRule, Any],
        statement: sa.Update,
        parameters: Mapping[str, Any],
    ) -> list[dict[str, Any]]:
        """Run one parent's increment statement; name the roll-ups whose totals
        their fields cannot hold when PostgreSQL refuses the statement.

        PostgreSQL's error does not say which column overflowed, so when several
        roll-ups move at once the statement runs under a savepoint, and the stored
        totals are read to find the one that does not fit.
        """
        several = len(per_rule) > 1 and not is_sqlite(self.connection)
        savepoint = self.connection.begin_nested() if several else None
        try:
            rows = direct.run(self.connection, statement, parameters)
        except sa.exc.DataError:
            failures = []
            if savepoint is not None:
                savepoint.rollback()
                failures = self._overflowing(entity, parent, per_rule)
            if not failures:
                culprit = next(iter(per_rule))
                failures = [(culprit, parent, _beyond(entity.fields[culprit.field]))]
            aborted = savepoint is None and not is_sqlite(self.connection)
            raise self._rollups_failed(entity, failures, aborted=aborted) from None
        if savepoint is not None:
            savepoint.commit()
        return rows

    def _overflowing(
        self, entity: EntityDef, parent: int, per_rule: Mapping[RollupRule, Any]
    ) -> list[tuple[RollupRule, int, RuleValueError]]:
        """The roll-ups whose new totals do not fit their fields, by the stored
        ones, each with what its field says of the total."""
        rows = self._lock(entity, [parent])
        failures = []
        for rule, amount in per_rule.items():
            stored = rows.get(parent, {}).get(rule.field)
            try:
                fit(entity.fields[rule.field], (stored or 0) + amount)
            except RuleValueError as error:
                failures.append((rule, parent, error))
        return failures

    def _recompute(
        self,
        entity: EntityDef,
        rules: Mapping[RollupRule, set[int]],
        moved: Mapping[int, Mapping[RollupRule, Any]],
    ) -> list[Change]:
        """Lock and read the parents, aggregate the roll-ups kept by recomputation,
        add the increments of the others to the values read, and write."""
        ids = set(moved).union(*rules.values())
        if not ids:
            return []
        rows = self._lock(entity, ids)
        values: dict[int, dict[str, Any]] = defaultdict(dict)
        # Every roll-up whose total does not fit is named, once, with the first
        # parent it does not fit.
        failures: dict[RollupRule, tuple[int, RuleValueError]] = {}

        def keep(parent: int, rule: RollupRule, value: Any) -> None:
            try:
                values[parent][rule.field] = fit(entity.fields[rule.field], value)
            except RuleValueError as error:
                failures.setdefault(rule, (parent, error))

        for rule, parents in rules.items():
            found = self._aggregate(rule, parents)
            for parent in parents & rows.keys():
                keep(parent, rule, found.get(parent, EMPTY_ROLLUP[rule.function]))
        for parent, per_rule in moved.items():
            if parent not in rows:
                continue
            for rule, amount in per_rule.items():
                keep(parent, rule, (rows[parent][rule.field] or 0) + amount)
        if failures:
            raise self._rollups_failed(
                entity,
                [(rule, parent, error) for rule, (parent, error) in failures.items()],
            )
        return self.system_update(entity, rows, values, {})

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
        of = child.fields.get(rule.of or "")
        shape = _Shape(
            tuple((name, spec["type"]) for name, spec in child.fields.items()),
            max(_scale(of) or 0, 0) if of is not None else 0,
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
        try:
            results = self.connection.execute(statement, parameters).all()
        except sa.exc.OperationalError as error:
            if not shape.sqlite or _SQLITE_OVERFLOW not in str(error.orig):
                raise
            # SQLite's sum() refuses a total beyond 64 bits (and leaves the
            # transaction as it was); added up here, the field refuses the total
            # in its own words.
            return self._aggregate_in_python(rule, child, parents)
        for parent, result in results:
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
            dependents = self.catalog.rules.for_entity(change.entity.name).dependents
            if not dependents:
                continue
            changed = change.changed()
            for dependent in dependents:
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
        """The records whose ``lookup`` points at one of ``parents``, locked.

        Their formulas are recomputed from these rows and written over them, so
        on PostgreSQL the rows are locked as they are read: a save of one of them
        that is not yet committed is waited for, and its values are read, rather
        than overwritten with a formula of the values it replaced.
        """
        parents = set(parents)
        lock = not is_sqlite(self.connection)
        query = _children_of(child.table, lookup, lock=lock, single=len(parents) == 1)
        parameters = {"parents": _bound(parents)}
        return {
            int(row["id"]): dict(row)
            for row in self.connection.execute(query, parameters).mappings()
        }

    def clearing(
        self, entity: EntityDef, record_id: int
    ) -> list[tuple[EntityDef, str, dict[int, dict[str, Any]]]]:
        """The records whose ``set_null`` lookups a delete of ``record_id`` is about
        to clear, as they are stored, where a rule follows that lookup: to be
        followed by :meth:`after_clearing` once they are cleared."""
        found = []
        for child, spec in self.catalog.referrers(entity.name):
            lookup = spec["name"]
            if spec.get("on_delete") != "set_null" or not _follows(
                self.catalog.rules.for_entity(child.name), lookup
            ):
                continue
            rows = self._children(child, lookup, [record_id])
            if rows:
                found.append((child, lookup, rows))
        return found

    def after_clearing(
        self, cleared: Sequence[tuple[EntityDef, str, dict[int, dict[str, Any]]]]
    ) -> list[Change]:
        """The changes of records whose lookups a delete cleared, with their
        formulas that read those lookups recomputed: one change a record, from the
        row before the delete to the row after it, however many of its lookups
        were cleared."""
        before: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
        lookups: dict[str, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
        entities: dict[str, EntityDef] = {}
        for child, lookup, rows in cleared:
            entities[child.name] = child
            for record_id, row in rows.items():
                before[child.name].setdefault(record_id, row)
                lookups[child.name][record_id].add(lookup)
        written = []
        for name, child in entities.items():
            ids = sorted(before[name])
            query = _rows(child.table, lock=False, single=len(ids) == 1)
            parameters = {"ids": _bound(ids)}
            rows = {
                int(row["id"]): dict(row)
                for row in self.connection.execute(query, parameters).mappings()
            }
            recomputed = {
                change.record_id: change.after
                for change in self.system_update(
                    child, rows, {}, lookups[name], counted=True
                )
            }
            for record_id, row in rows.items():
                after = recomputed.get(record_id, row)
                written.append(
                    Change(
                        child, "update", before[name][record_id], after, followed=True
                    )
                )
        return written

    # -- writing computed values -----------------------------------------------------

    def system_update(
        self,
        entity: EntityDef,
        rows: Mapping[int, Mapping[str, Any]],
        values: Mapping[int, Mapping[str, Any]],
        dirty: Mapping[int, set[str]],
        *,
        counted: bool = False,
        rules: RecordRules | None = None,
    ) -> list[Change]:
        """Write computed ``values`` and recompute the formulas they feed.

        :param dirty: per record, inputs that changed besides ``values`` (a related
            record's fields, as ``lookup.field``).
        :param counted: the save has already moved the version of ``rows`` (a
            delete that cleared their lookups), so writing them again is part of
            that one change and leaves the version as it is.
        :param rules: the entity's rules with related records already loaded
            (those missing are loaded here).
        """
        if rules is None:
            rules = self._rules(entity)
        rules.load_related(rows.values())
        statement = _system_update(entity.table, bump=not counted)
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
                    # Named as a roll-up's problem is: the entity's field, and
                    # the record in the message.
                    whom = f"{entity.label} {record_id}"
                    formulas = {
                        formula.field: formula.name for formula in rules.rules.formulas
                    }
                    failures = [
                        _Failure(
                            Problem(
                                f"{entity.name}.{problem.field}",
                                problem.code,
                                f"{whom}: {problem.message}",
                            ),
                            record_id,
                            formulas.get(problem.field or ""),
                        )
                        for problem in error.problems
                    ]
                    raise self._refused(
                        ValidationFailed,
                        f"A formula of {whom} could not be recomputed: {error}",
                        entity,
                        failures,
                    ) from None
            changes = {
                name: merged[name]
                for name in entity.fields
                if merged.get(name) != row.get(name)
            }
            if not changes:
                continue
            now = utcnow()
            try:
                self.connection.execute(
                    statement, {**changes, "updated_at": now, _RECORD_ID: record_id}
                )
            except sa.exc.IntegrityError:
                # PostgreSQL has given up the transaction at its error.
                aborted = not is_sqlite(self.connection)
                raise self._clash(entity, record_id, changes, aborted) from None
            version = row["version"] if counted else row["version"] + 1
            after = {**merged, "updated_at": now, "version": version}
            written.append(Change(entity, "update", row, after, followed=True))
            noted.append((row, changes))
        records_recomputed(self.service, entity, noted, via=self.via)
        return written

    def refill(self, entity: EntityDef, rules: Sequence[Rule]) -> None:
        """Compute the fields of new formulas and roll-ups for every stored record.

        Runs when such a rule is added or changed, a chunk of records at a time;
        what the new values feed is recomputed once they are all written (or
        ``_REFILL_CASCADE`` of them, on larger tables). Automations do not run.
        The field history notes these values as written by the system.
        """
        self.via = "system"
        rollups = [rule for rule in rules if isinstance(rule, RollupRule)]
        # Only the new formulas and those that read them are computed again: the
        # others keep their values, also those of $now and $user, which are
        # computed on create only.
        formulas = {rule.field for rule in rules if isinstance(rule, FormulaRule)}
        table = entity.table
        last = 0
        written: list[Change] = []
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
                break
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
                        raise self._rollups_failed(
                            entity, [(rule, record_id, error)]
                        ) from None
            dirty = {record_id: set(formulas) for record_id in rows}
            written += self.system_update(entity, rows, values, dirty)
            if len(written) >= _REFILL_CASCADE:
                self.run(written)
                written = []
        self.run(written)

    # -- refusals ------------------------------------------------------------------

    def _rollups_failed(
        self,
        entity: EntityDef,
        failures: Sequence[tuple[RollupRule, int, RuleValueError]],
        *,
        aborted: bool = False,
    ) -> TailorError:
        """Every roll-up of ``entity`` whose total does not fit, at once, each
        with the parent record it does not fit, named in its message."""
        return self._refused(
            ValidationFailed,
            f"{entity.label} could not be updated.",
            entity,
            [
                _rollup_failure(entity, rule, record_id, error)
                for rule, record_id, error in failures
            ],
            aborted=aborted,
        )

    def _clash(
        self,
        entity: EntityDef,
        record_id: int,
        changes: Mapping[str, Any],
        aborted: bool,
    ) -> TailorError:
        """The refusal of computed ``changes`` of a record that the database found
        to clash with another record's unique value (a formula of a unique
        field)."""
        computed = self.catalog.rules.for_entity(entity.name).computed
        failures = [
            _Failure(
                Problem(
                    f"{entity.name}.{name}",
                    "unique",
                    f"{entity.fields[name]['label']} of {entity.label} {record_id} "
                    f"would be {to_json(entity.fields[name], changes[name])!r}, which "
                    "another record already has.",
                ),
                record_id,
                computed[name].name if name in computed else None,
            )
            for name in changes
            if is_unique(entity.fields.get(name, {}))
        ]
        return self._refused(
            Conflict,
            f"{entity.label} {record_id} could not be recomputed: a computed value "
            "clashes with another record's.",
            entity,
            failures,
            aborted=aborted,
            records=[record_id],
        )

    def _refused(
        self,
        refusal: type[ValidationFailed | Conflict],
        detail: str,
        entity: EntityDef,
        failures: Sequence[_Failure],
        *,
        aborted: bool = False,
        records: Iterable[int] = (),
    ) -> TailorError:
        """A ``refusal`` saying ``detail``, with the problems of ``failures``, as
        the person whose save this is may be told them.

        A recomputation refused on a record they may not read is one they learn
        of only as a rule on a record they cannot see, with the problem's code:
        neither the record, nor its field, its value or the rule. The same on a
        record they may read when the rule is one they are not shown, or the
        field one their roles hide. What they may read is looked up only here,
        once a save is refused; ``aborted`` when the transaction can run no
        more statements.
        """
        view = self.service.shown_to
        seen = view.entities.get(entity.name)
        ids = {*records, *(failure.record_id for failure in failures)}
        if seen is None or seen.removed:
            readable: set[int] = set()
        else:
            readable = self.service.readable(entity, ids, aborted=aborted)
        shown = readable_rules(view)
        told: list[Problem] = []
        withheld: dict[str, None] = {}
        for failure in failures:
            field = failure.problem.field
            name = field.split(".", 1)[-1] if field is not None else None
            if failure.record_id not in readable:
                message = _UNSEEN_RECORD
            elif (
                shown is not None
                and failure.rule is not None
                and failure.rule not in shown
            ) or (seen is not None and name is not None and name not in seen.fields):
                message = _UNSEEN_RULE
            else:
                told.append(failure.problem)
                continue
            withheld[message] = None
            unseen = Problem(None, failure.problem.code, message)
            if unseen not in told:
                told.append(unseen)
        if not ids <= readable:
            withheld[_UNSEEN_RECORD] = None
        if withheld:
            detail = _UNSEEN_RECORD if _UNSEEN_RECORD in withheld else _UNSEEN_RULE
        return refusal(detail, problems=told or None)


# Statements are built once per table (and roll-up rule) of a catalog and run with
# bound parameters: building and compiling a statement costs more than running it.

#: The parameter of the record's id in a system update; no field name starts
#: with an underscore, so it never meets a column's.
_RECORD_ID = "_record_id"


def _once_each(changes: Sequence[Change]) -> list[Change]:
    """One change per record, in the order each was first written.

    A save may write a record more than once: the record its caller saved, whose
    formula reads a roll-up that the save then moves on its parent, is written
    again when that formula is recomputed. Its automations run once, for the
    change as a whole: from the record as stored before the save (nothing, on a
    create, which stays a create) to the record as the save left it.
    """
    merged: dict[tuple[str, int], Change] = {}
    for change in changes:
        key = (change.entity.name, change.record_id)
        first = merged.get(key)
        if first is None or change.after is None:
            merged[key] = change
            continue
        if first.after is None:
            # A deleted record is written no more.
            continue
        merged[key] = Change(
            first.entity,
            first.trigger,
            first.before,
            {**first.after, **change.after},
            followed=first.followed,
        )
    return list(merged.values())


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
def _children_of(
    table: sa.Table, lookup: str, *, lock: bool, single: bool
) -> sa.Select[Any]:
    """The rows whose ``lookup`` holds one of the ids bound as ``parents``, in id
    order."""
    query = (
        sa.select(table)
        .where(_among(table.c[lookup], "parents", single=single))
        .order_by(table.c.id)
    )
    return query.with_for_update(key_share=True) if lock else query


@functools.lru_cache(maxsize=2048)
def _system_update(table: sa.Table, *, bump: bool = True) -> sa.Update:
    """Set the columns given as parameters of one record, and bump its version
    unless ``bump`` is false."""
    statement = table.update().where(table.c.id == sa.bindparam(_RECORD_ID))
    return statement.values(version=table.c.version + 1) if bump else statement


def _increment(
    catalog: Catalog, entity: EntityDef, rules: frozenset[RollupRule], *, sqlite: bool
) -> tuple[sa.Update, dict[str, int | None], dict[str, Callable[[Any], Any]]]:
    """The statement that adds the increments of ``rules`` to one parent record,
    the scale of each field it adds to (None for whole numbers), and how a total
    is fitted to each field (see :func:`.fitter`): built once per catalog."""
    return catalog.derived(
        ("rollup_increment", entity.name, rules, sqlite),
        lambda: (
            *_build_increment(catalog, entity, rules, sqlite=sqlite),
            {rule.field: fitter(entity.fields[rule.field]) for rule in rules},
        ),
    )


def _build_increment(
    catalog: Catalog, entity: EntityDef, rules: frozenset[RollupRule], *, sqlite: bool
) -> tuple[sa.Update, dict[str, int | None]]:
    """Add the increments bound as ``_delta_<field>`` to the fields of one record,
    bump its version, set its ``updated_at`` (bound), and return the row after:
    its id, version, the fields added to and what roll-ups over this entity read
    (the change is followed like any other), on PostgreSQL what the children's
    rules read of it (see :meth:`Cascade._settle`), and every field of a record
    that a ``readonly_if`` judges.

    SQLite keeps decimals as binary floats, so there the addition is made in whole
    units of the scale (the increment is bound in them too) and divided back: the
    stored float is then the one nearest the exact sum, as when a sum is written.
    """
    table = entity.table
    scales = {rule.field: _scale(entity.fields[rule.field]) for rule in rules}
    over = catalog.rules.for_entity(entity.name).rollups
    returned = {
        "id",
        "version",
        *scales,
        *(name for rule in over for name in rule.reads),
    }
    if any(
        state.readonly_if is not None
        for state in catalog.rules.for_entity(entity.name).field_states.values()
    ):
        # The row before the change is pieced together from this one, and an
        # automation's change of the record later in the save judges
        # readonly_if on it: every field as it was, not as an earlier action
        # of the save left it (see RecordService.update).
        returned |= set(table.c.keys())
    if not sqlite:
        # What the children's rules read of the record, so that a child saved
        # now need not read it again once it is locked (see Cascade._settle).
        for rule in rules:
            child = catalog.entities.get(rule.child)
            if child is not None:
                returned |= related_fields(catalog, child, entity.name)
    values: dict[str, Any] = {
        "version": table.c.version + 1,
        "updated_at": sa.bindparam("updated_at", type_=table.c.updated_at.type),
    }
    for name, scale in sorted(scales.items()):
        column = table.c[name]
        stored = sa.func.coalesce(column, 0)
        if sqlite and scale is not None:
            units = sa.cast(sa.func.round(stored * 10**scale), sa.BigInteger)
            added = units + sa.bindparam(_DELTA + name, type_=sa.BigInteger)
            values[name] = sa.cast(added, sa.Float) / sa.literal(float(10**scale))
        else:
            values[name] = stored + sa.bindparam(_DELTA + name, type_=column.type)
    statement = (
        table.update()
        .where(table.c.id == sa.bindparam(_RECORD_ID))
        .values(values)
        .returning(*(table.c[name] for name in sorted(returned) if name in table.c))
    )
    return statement, scales


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

    ``None`` when its condition has no SQL form, or one that may answer otherwise
    than Python (case changes on PostgreSQL, whole-number arithmetic): it then
    runs in Python.
    """
    lookup = table.c[rule.lookup]
    where: list[sa.ColumnElement[bool]] = [
        _among(lookup, "parents", single=shape.single)
    ]
    if rule.condition is not None:
        source = rule.condition.source
        if not shape.sqlite and _uses(source, _CASE_CHANGES):
            # PostgreSQL's lower() and upper() follow its locale, not Python's
            # special cases ('ß' upper-cased is 'SS'): the children counted here
            # would not be those each increment counted, nor those the rules
            # engine judges (OPERATIONS.md, "In SQL").
            return None
        if _uses(source, _WHOLE_NUMBER_ARITHMETIC):
            # Whole numbers that leave 64 bits stop the query in SQL, where
            # Python, and so each increment, computes them exactly: a child
            # with such a value could not be saved, nor the rule.
            return None
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


#: Operators whose SQL form follows the database's case rules.
_CASE_CHANGES = frozenset({"lower", "upper"})
#: Operators whose SQL form stops the query when a whole number leaves 64 bits.
_WHOLE_NUMBER_ARITHMETIC = frozenset({"+", "-", "*"})


def _uses(condition: Any, operators: frozenset[str]) -> bool:
    """Whether ``condition`` uses one of ``operators`` anywhere."""
    if isinstance(condition, list):
        return any(_uses(item, operators) for item in condition)
    if not isinstance(condition, dict):
        return False
    return any(
        name in operators or _uses(operand, operators)
        for name, operand in condition.items()
    )


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
        total = sa.func.sum(sa.cast(units, sa.BigInteger))
        return sa.func.coalesce(total, 0), shape.scale
    # Blank values add nothing: children that all have none sum to 0, as no
    # children do (and as increments keep it).
    return sa.func.coalesce(sa.func.sum(column), 0), None


#: How each roll-up rule is kept by increments, or None when it is recomputed
#: (see :meth:`Cascade._increments`).
_INCREMENTS: weakref.WeakKeyDictionary[RollupRule, _Increments | None] = (
    weakref.WeakKeyDictionary()
)
_UNKNOWN = object()
#: What SQLite's sum() says of a total beyond 64 bits.
_SQLITE_OVERFLOW = "integer overflow"
#: The prefix of the parameter that holds a roll-up's increment; no field name
#: starts with an underscore.
_DELTA = "_delta_"


def _follows(rules: EntityRules, lookup: str) -> bool:
    """Whether a rule follows the lookup field ``lookup`` of an entity with
    ``rules``: a formula of its own reads it (or through it), a roll-up over the
    entity reads it, a formula elsewhere reads it through a lookup, or an
    automation runs when its records are updated."""
    return (
        any(
            name.split(".", 1)[0] == lookup
            for formula in rules.formulas
            for name in formula.expression.reads
        )
        or any(lookup in rollup.reads for rollup in rules.rollups)
        or any(lookup in dependent.reads for dependent in rules.dependents)
        or any("update" in automation.triggers for automation in rules.automations)
    )


def _blind(rules: EntityRules, fields: frozenset[str]) -> bool:
    """See :meth:`Cascade._blind_increments`: whether the roll-ups into ``fields``
    of an entity with ``rules`` may be added to without reading its rows."""
    return not (
        any("update" in automation.triggers for automation in rules.automations)
        or any(fields & formula.expression.reads for formula in rules.formulas)
        or any("updated_at" in rollup.reads for rollup in rules.rollups)
    )


def _incremental(
    rule: RollupRule,
    parent: Mapping[str, Any] | None,
    child: Mapping[str, Any] | None,
) -> bool:
    """Whether the roll-up may be kept by adding each change's increment.

    Sums and counts only: a minimum or maximum cannot give back a value that
    leaves. Not when the condition reads ``$user`` or the clock, whose value
    differs from save to save; and not when the parent's field keeps fewer
    decimals than the child's, where rounding each increment would drift from
    rounding the sum.
    """
    if rule.function not in ("count", "sum") or _reads_context(rule):
        return False
    if parent is None or _scale(parent) == -1:
        return False
    if rule.function == "count" or rule.of is None:
        return True
    if child is None or _scale(child) == -1:
        return False
    child_scale = _scale(child) or 0
    return (_scale(parent) or 0) >= child_scale and (
        child_scale == 0 or parent["type"] in DECIMAL_TYPES
    )


def _scale(spec: Mapping[str, Any]) -> int | None:
    """The decimals a number field keeps; None for whole numbers, -1 for the
    types that are not numbers."""
    if spec["type"] == "integer":
        return None
    if spec["type"] in DECIMAL_TYPES:
        return precision_scale(spec if type(spec) is dict else dict(spec))[1]
    return -1


@dataclass(frozen=True, eq=False)
class _Increments:
    """How one roll-up kept by increments reads the change of a child.

    It holds the parts of the rule it needs, not the rule: it is kept by the rule
    (see :data:`_INCREMENTS`), which it must not keep alive in turn.
    """

    lookup: str
    of: str | None
    condition: Expression | None
    #: The child's fields whose change can move the roll-up.
    reads: tuple[str, ...]
    #: Whether each child counts as one (a count, or a sum of nothing).
    counts: bool
    #: The decimals of the field summed (None for whole numbers), and one unit of
    #: the last of them.
    scale: int | None
    unit: Decimal | None

    @classmethod
    def of_rule(cls, rule: RollupRule, summed: Mapping[str, Any] | None) -> _Increments:
        scale = _scale(summed) if summed is not None else None
        return cls(
            lookup=rule.lookup,
            of=rule.of,
            condition=rule.condition,
            reads=tuple(sorted(rule.reads)),
            counts=rule.function == "count" or rule.of is None,
            scale=scale,
            unit=Decimal(1).scaleb(-scale) if scale is not None else None,
        )

    def shares(self, change: Change) -> list[tuple[int, Any]]:
        """How much one change of a child moves each parent's sum or count: its
        old share taken away, its new share added (both are none where the child
        did not count). An update that changed nothing the roll-up reads moves
        nothing."""
        before, after = change.before, change.after
        if (
            before is not None
            and after is not None
            and all(before.get(name) == after.get(name) for name in self.reads)
        ):
            return []
        found = []
        for row, sign in ((before, -1), (after, 1)):
            share = self._share(row)
            if share is not None:
                found.append((share[0], sign * share[1]))
        return found

    def _share(self, row: Mapping[str, Any] | None) -> tuple[int, Any] | None:
        if row is None or row.get(self.lookup) is None:
            return None
        if self.condition is not None and not truthy(self.condition(row)):
            return None
        parent = int(row[self.lookup])
        if self.counts:
            return parent, 1
        value = row.get(self.of or "")
        if value is None:
            # A blank adds nothing, as in the aggregate.
            return parent, 0
        if self.unit is None:
            return parent, int(value)
        # The value as the database keeps it: rounded to the field's scale.
        number = value if isinstance(value, Decimal) else Decimal(str(value))
        return parent, number.quantize(self.unit, rounding=ROUND_HALF_UP)


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


@dataclass(frozen=True)
class _Failure:
    """One rule's problem on one record a recomputation could not write."""

    problem: Problem
    record_id: int
    #: The rule that computed the value; None when none is known.
    rule: str | None


def _rollup_failure(
    entity: EntityDef, rule: RollupRule, record_id: int, error: RuleValueError
) -> _Failure:
    """The problem of one parent whose total does not fit, named as a formula's
    is (``Account 1: ...``): a move changes two parents, an import many."""
    message = (
        f"{entity.label} {record_id}: The roll-up rule {rule.name!r} gave a value "
        f"that does not fit: {error}"
    )
    problem = Problem(f"{entity.name}.{rule.field}", "rule_value", message)
    return _Failure(problem, record_id, rule.name)


#: What a caller is told of a recomputation refused on a record they may not read.
_UNSEEN_RECORD = (
    "A rule on a record you cannot see refused this change; ask an administrator."
)
#: What a caller is told of one refused by a rule they are not shown (see
#: :func:`.access.readable_rules`), or on a field their roles hide.
_UNSEEN_RULE = "A rule you cannot see refused this change; ask an administrator."


def _beyond(spec: Mapping[str, Any]) -> RuleValueError:
    """What the field says of a total it cannot hold, whichever its sign, when the
    database refused the total without saying which."""
    too_far = INTEGER_LIMIT + 1 if spec["type"] == "integer" else Decimal("1E+40")
    try:
        fit(spec, too_far)
    except RuleValueError as error:
        return error
    return RuleValueError("The total does not fit the field.")
