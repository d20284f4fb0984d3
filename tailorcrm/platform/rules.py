"""Rules on the write path, before a record is saved: defaults, formulas, validation
rules and field state (DESIGN.md principle 6; RULES.md in the rules engine).

The record service hands each batch of records here once their values are read.
Conditions see a record as a mapping of its field names to stored values, plus
``$user``, ``$now`` and, on updates, ``$prior``; a lookup field reads as the related
record (``account.industry``; ``account.id`` is its id), or null when there is none.
Related records are loaded once per batch, with one query per lookup, and only the
fields that rules read.

Field state is decided here once for every path: the record service enforces it,
and forms show it (:meth:`RecordRules.form_state`). A field is visible unless its
field_state rule's ``visible_if`` or its layout section's ``visible_if`` is false;
``required_if`` applies to visible fields only.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Literal

import sqlalchemy as sa

from ..errors import Problem, ValidationFailed
from ..metadata import (
    DECIMAL_TYPES,
    SYSTEM_COLUMNS,
    Catalog,
    EntityDef,
    FieldValueError,
    SectionConditions,
    SectionKey,
    convert,
    date_text_as_moment,
    is_unique,
    precision_scale,
    rounded_to_scale,
)
from ..rules_engine import (
    DefaultRule,
    EntityRules,
    Expression,
    FieldState,
    FieldStateRule,
    FormulaRule,
    Rule,
    expressions_of,
    is_blank,
    truthy,
)
from . import direct
from .db import is_sqlite

#: What a roll-up gives over no records.
EMPTY_ROLLUP = {"count": 0, "sum": 0, "min": None, "max": None}
#: How related records are read: unlocked, locked for an update that keeps their
#: id, or with the key-share lock of a foreign key (PostgreSQL).
_Lock = Literal["no_key_update", "key_share", "share"] | None
#: System values a record is given when it is stored, which formulas may read.
_GIVEN_WHEN_STORED = frozenset({"created_at", "created_by", "owner_id"})
#: What a record of each entity reads as before it has system values.
_NO_SYSTEM_VALUES = dict.fromkeys(sorted(SYSTEM_COLUMNS))


def user_data(user_id: int | None, username: str, is_admin: bool) -> dict[str, Any]:
    """What ``$user`` reads (roles arrive with permissions)."""
    return {"id": user_id, "username": username, "roles": ["admin"] if is_admin else []}


class RuleValueError(ValueError):
    """A rule computed a value its field cannot hold."""

    def __init__(self, message: str, *, problems: Sequence[Problem] = ()) -> None:
        super().__init__(message)
        #: Each formula's problem, by field, when formulas were recomputed.
        self.problems = list(problems)


def fit(spec: Mapping[str, Any], value: Any) -> Any:
    """Turn a value computed by a rule into one the field stores.

    Numbers are rounded to the field's scale (half away from zero), a date fills a
    datetime field at midnight UTC, a related record fills a lookup with its id.

    :raises RuleValueError: the value does not fit the field, with the reason.
    """
    value = coerce(spec, value)
    try:
        return convert(spec if type(spec) is dict else dict(spec), value)
    except FieldValueError as error:
        raise RuleValueError(error.message) from None
    except (TypeError, ValueError, ArithmeticError):
        raise RuleValueError("The value has the wrong type.") from None


def fitter(spec: Mapping[str, Any]) -> Callable[[Any], Any]:
    """:func:`fit` for one field, worked out once: a decimal field without limits
    of its own takes a finite number by rounding it to its scale, the usual case of
    a formula or a total, and anything else as :func:`fit` does."""
    if (
        spec["type"] not in DECIMAL_TYPES
        or spec.get("min") is not None
        or spec.get("max") is not None
    ):
        return functools.partial(fit, spec)
    precision, scale = precision_scale(spec if type(spec) is dict else dict(spec))
    unit = Decimal(1).scaleb(-scale)
    digits = precision - scale

    def fit_decimal(value: Any) -> Any:
        kind = type(value)
        if kind is Decimal or kind is int:
            try:
                number = Decimal(value).quantize(unit, rounding=ROUND_HALF_UP)
            except InvalidOperation:
                return fit(spec, value)
            if number.is_finite() and (not number or number.adjusted() < digits):
                return number
        return fit(spec, value)

    return fit_decimal


def coerce(spec: Mapping[str, Any], value: Any) -> Any:
    """The JSON-like value that :func:`~tailorcrm.metadata.convert` takes for it."""
    kind = spec["type"]
    if value is None or (is_blank(value) and kind != "boolean"):
        return None
    if kind == "lookup" and isinstance(value, Mapping):
        return value.get("id")
    if kind in DECIMAL_TYPES or kind == "integer":
        return rounded_to_scale(spec, value)
    if kind == "datetime" and type(value) is dt.date:
        return dt.datetime.combine(value, dt.time(), dt.UTC)
    if kind == "datetime" and type(value) is str:
        return date_text_as_moment(spec, value)
    return value


@dataclass(frozen=True)
class FormState:
    """What the rules make of a record that a form shows."""

    #: The record as it would be saved: the values given, with formulas computed.
    values: dict[str, Any]
    #: The same record as conditions read it: system columns, and each lookup as
    #: its related record (its id and the fields read); no ``$user`` or ``$now``.
    record: dict[str, Any]
    #: Each live field's state.
    fields: dict[str, FieldState]
    #: Whether each layout section that has a ``visible_if`` is shown.
    sections: dict[SectionKey, bool]
    #: The state of each field with a field_state rule, were its section shown:
    #: what its own conditions decide, for a form that judges its section's
    #: condition again and not the field's.
    unsectioned: dict[str, FieldState] = field(default_factory=dict)


@dataclass(frozen=True)
class _Plan:
    """What the rules of one entity need on every save, worked out once per
    catalog (:meth:`~tailorcrm.metadata.Catalog.derived`)."""

    entity: EntityDef
    rules: EntityRules
    sections: SectionConditions
    #: Each lookup field and the entity it points at.
    lookups: Mapping[str, str]
    #: For each lookup, the related record's fields that rules and section
    #: conditions read.
    related_reads: Mapping[str, frozenset[str]]
    #: For each related entity, every field loaded of its records.
    loaded: Mapping[str, frozenset[str]]
    #: The names a record reads as: the system columns, then the fields.
    names: tuple[str, ...]
    #: The lookup fields among them.
    lookup_names: tuple[str, ...]
    #: The names that the rules and section conditions can read, which is all a
    #: save needs of a record as conditions read it (see :func:`_names_read`),
    #: and the lookup fields among them.
    read_names: tuple[str, ...]
    read_lookup_names: tuple[str, ...]
    #: Required fields filled by rules (see :meth:`RecordRules.relaxed`).
    relaxed: tuple[str, ...]
    #: The lookups read through by what runs on every save: validation and
    #: field-state rules, and section conditions.
    checked_through: frozenset[str]
    #: For each field-state rule's field, its label and its section's condition.
    field_states: tuple[tuple[str, str, Any, FieldStateRule], ...]
    #: Values given when a record is stored (its autonumbers, created_at,
    #: created_by and a default owner) that formulas read: those formulas are
    #: computed again then (see :meth:`RecordRules.when_stored`).
    stored_reads: frozenset[str]
    #: Unique formula fields fed by :attr:`stored_reads`, directly or through
    #: other formulas: their values, and so their uniqueness, are known only once
    #: a record is stored.
    unique_when_stored: frozenset[str]
    #: How each default and formula rule's value is fitted to its field.
    fits: Mapping[DefaultRule | FormulaRule, Callable[[Any], Any]]
    #: The related records an update loads, by the fields it writes (see
    #: :meth:`RecordRules._follow_only`), as updates come.
    follows: dict[frozenset[str], dict[str, frozenset[str]]] = field(
        default_factory=dict, compare=False, repr=False
    )
    #: What a caller that evaluates only some rules reads (see :func:`_narrowed`),
    #: by what it named, as callers come.
    narrowings: dict[Any, _Narrowed] = field(
        default_factory=dict, compare=False, repr=False
    )

    @functools.cached_property
    def everything(self) -> _Narrowed:
        """What a caller of every rule reads."""
        return _Narrowed(self.loaded, self.read_names, self.read_lookup_names)


@dataclass(frozen=True)
class _Narrowed:
    """What the rules a runner evaluates read: of related records, each
    entity's fields loaded; of the record itself, the names it is read with for
    conditions, and the lookups among them."""

    loaded: Mapping[str, frozenset[str]]
    read_names: tuple[str, ...]
    read_lookup_names: tuple[str, ...]


def _narrowed(
    plan: _Plan,
    related_reads: Mapping[str, frozenset[str]] | None,
    reads: frozenset[str] | None,
) -> _Narrowed:
    """What a caller reads that evaluates only some rules, named by the related
    fields and the record's fields they read (``None``: what all the rules read),
    worked out once per plan for the first few such callers."""
    key = (
        None if related_reads is None else frozenset(related_reads.items()),
        reads,
    )
    found = plan.narrowings.get(key)
    if found is None:
        found = _Narrowed(
            (
                plan.loaded
                if related_reads is None
                else _loaded(plan.lookups, related_reads)
            ),
            *(
                (plan.read_names, plan.read_lookup_names)
                if reads is None
                else (
                    tuple(name for name in plan.names if name in reads),
                    tuple(name for name in plan.lookup_names if name in reads),
                )
            ),
        )
        if len(plan.narrowings) < _FOLLOWS_KEPT:
            plan.narrowings[key] = found
    return found


def _plan(catalog: Catalog, entity: EntityDef) -> _Plan:
    plan = catalog.derived(
        ("record_rules", entity.name), lambda: _build_plan(catalog, entity)
    )
    # A view of the catalog may hold another definition of the entity.
    return plan if plan.entity is entity else _build_plan(catalog, entity)


def related_fields(catalog: Catalog, entity: EntityDef, target: str) -> frozenset[str]:
    """The fields of ``target``'s records that the rules of ``entity`` load when
    its records point at them (what :class:`RecordRules` reads of them)."""
    return _plan(catalog, entity).loaded.get(target, frozenset())


def _build_plan(catalog: Catalog, entity: EntityDef) -> _Plan:
    rules = catalog.rules.for_entity(entity.name)
    sections = catalog.section_conditions(entity.name)
    lookups = {spec["name"]: spec["target"] for spec in entity.lookups()}
    related_reads = _related_reads(rules, sections.reads)
    filled = {rule.field for rule in rules.defaults} | set(rules.computed)
    filled_by: tuple[DefaultRule | FormulaRule, ...] = (
        *rules.defaults,
        *rules.formulas,
    )
    through = set(rules.checked_through)
    through |= {name.split(".", 1)[0] for name in sections.reads if "." in name}
    names = (*_NO_SYSTEM_VALUES, *entity.fields)
    lookup_names = tuple(name for name in entity.fields if name in lookups)
    read = _names_read(rules, sections)
    stored_reads = frozenset(
        name
        for formula in rules.formulas
        for name in formula.expression.reads
        if name in _GIVEN_WHEN_STORED
        or entity.fields.get(name, {}).get("type") == "autonumber"
    )
    return _Plan(
        entity=entity,
        rules=rules,
        sections=sections,
        lookups=lookups,
        related_reads=related_reads,
        loaded=_loaded(lookups, related_reads),
        names=names,
        lookup_names=lookup_names,
        read_names=names if read is None else tuple(n for n in names if n in read),
        read_lookup_names=(
            lookup_names
            if read is None
            else tuple(n for n in lookup_names if n in read)
        ),
        relaxed=tuple(
            name
            for name in sorted(filled)
            if entity.fields.get(name, {}).get("required")
        ),
        checked_through=frozenset(through),
        field_states=tuple(
            (name, entity.fields[name]["label"], sections.of_field(name), rule)
            for name, rule in rules.field_states.items()
        ),
        stored_reads=stored_reads,
        unique_when_stored=frozenset(
            name
            for name in _fed_by(rules, stored_reads)
            if is_unique(entity.fields.get(name, {}))
        ),
        fits={
            rule: fitter(entity.fields[rule.field])
            for rule in filled_by
            if rule.field in entity.fields
        },
    )


def _fed_by(rules: EntityRules, inputs: frozenset[str]) -> set[str]:
    """The formula fields whose values follow from ``inputs``, directly or
    through other formulas."""
    fed: set[str] = set()
    if not inputs:
        return fed
    reached = set(inputs)
    grown = True
    while grown:
        grown = False
        for formula in rules.formulas:
            if formula.field in fed:
                continue
            expression = formula.expression
            if expression.dynamic or reached.intersection(expression.reads):
                fed.add(formula.field)
                reached.add(formula.field)
                grown = True
    return fed


def _names_read(
    rules: EntityRules, sections: SectionConditions
) -> frozenset[str] | None:
    """The fields and system columns that an entity's rules and section
    conditions can read of a record: the ones they name, and the fields of
    field-state rules (whose blankness is checked). None when one of them reads
    names computed while it runs, or the record before the change as a whole;
    records are then read with every name.
    """
    expressions = [
        expression
        for rule in (
            *rules.validations,
            *rules.defaults,
            *rules.formulas,
            *rules.field_states.values(),
            *rules.automations,
        )
        for expression in expressions_of(rule)
    ]
    expressions += sections.conditions.values()
    return names_read(expressions, also=rules.field_states)


def names_read(
    expressions: Iterable[Expression], *, also: Iterable[str] = ()
) -> frozenset[str] | None:
    """The names of a record that ``expressions`` can read (and ``also``), or None
    when one of them reads names computed while it runs, or the record before the
    change as a whole."""
    found = set(also)
    for expression in expressions:
        if expression.dynamic or _reads_unnamed(expression.source):
            return None
        found |= {name.split(".", 1)[0] for name in expression.reads}
    return frozenset(found)


def _reads_unnamed(node: Any) -> bool:
    """Whether a condition reads names in ways a record read with only the names
    it reads could answer differently: ``$prior`` as a name of its own (the whole
    record before the change), or ``val`` and ``exists``, which look records up by
    paths and scopes."""
    if isinstance(node, dict):
        if _UNNAMED_READERS.intersection(node):
            return True
        return any(_reads_unnamed(item) for item in node.values())
    if isinstance(node, list):
        return any(_reads_unnamed(item) for item in node)
    return node == _PRIOR


_PRIOR = "$prior"
_UNNAMED_READERS = frozenset({"val", "exists"})


def _id_only(value: Any) -> dict[str, Any] | None:
    """A lookup to a record no longer stored, as the record before a change
    reads it: by its id (see :meth:`RecordRules.record`)."""
    return {"id": value} if isinstance(value, int) else None


def _loaded(
    lookups: Mapping[str, str], related_reads: Mapping[str, frozenset[str]]
) -> dict[str, frozenset[str]]:
    # Two lookups may point at one entity: its records are loaded once, with
    # every field that either is read for.
    fields: dict[str, set[str]] = {}
    for lookup, reads in related_reads.items():
        if lookup in lookups:
            fields.setdefault(lookups[lookup], set()).update(reads)
    return {target: frozenset(reads) for target, reads in fields.items()}


class RecordRules:
    """The rules of one entity, applied to records of one batch before they are saved.

    One instance serves one batch: it keeps the related records it loaded.

    :param related_reads: for each lookup, the related record's fields to load; by
        default those that the entity's rules and section conditions read. A
        caller that evaluates only some of the rules may narrow it to what they
        read; a lookup left out reads as ``{"id": ...}``.
    """

    def __init__(
        self,
        connection: sa.Connection,
        catalog: Catalog,
        entity: EntityDef,
        *,
        user: Mapping[str, Any],
        now: dt.datetime,
        related_reads: Mapping[str, frozenset[str]] | None = None,
        reads: frozenset[str] | None = None,
    ) -> None:
        self.connection = connection
        self.catalog = catalog
        self.entity = entity
        self._plan = plan = _plan(catalog, entity)
        self.rules: EntityRules = plan.rules
        self.sections = plan.sections
        self.user = user
        self.now = now
        self._lookups = plan.lookups
        narrowed = (
            plan.everything
            if related_reads is None and reads is None
            else _narrowed(plan, related_reads, reads)
        )
        #: For each lookup, the related record's fields that rules and section
        #: conditions read.
        self.related_reads: Mapping[str, frozenset[str]] = (
            plan.related_reads if related_reads is None else dict(related_reads)
        )
        self._fields = narrowed.loaded
        self._related: dict[tuple[str, int], dict[str, Any] | None] = {}
        #: The names a record is read with for conditions (see :meth:`record`).
        self._read_names = narrowed.read_names
        self._read_lookup_names = narrowed.read_lookup_names

    # -- what conditions read ----------------------------------------------------

    def load_related(
        self, records: Iterable[Mapping[str, Any]], *, setting: Collection[str] = ()
    ) -> None:
        """Load, in one query per lookup, the related records the rules read.

        :param setting: the lookups that the save sets. On PostgreSQL the records
            they point at are read under the key-share lock that the foreign key
            takes on them anyway: a save of one of them that is not yet committed
            recomputes only the records that already point at it, so it is
            waited for and read, and what rules compute from it is not stale.
        """
        records = list(records)
        held: dict[str, set[int]] = {}
        if setting and not is_sqlite(self.connection):
            held = self._pointed_at(records, known=False, lookups=setting)
        for target, ids in self._pointed_at(records, known=False).items():
            locked = held.get(target, set())
            if ids - locked:
                self._fetch(target, ids - locked)
            if locked:
                self._fetch(target, locked, lock="key_share")

    def _pointed_at(
        self,
        records: Iterable[Mapping[str, Any]],
        *,
        known: bool,
        lookups: Collection[str] | None = None,
    ) -> dict[str, set[int]]:
        """The ids of related records that ``records`` point at through the
        lookups the rules read (those of them in ``lookups``, when given), by the
        entity they belong to; those already loaded too, or not (``known``)."""
        records = list(records)
        wanted: dict[str, set[int]] = {}
        for lookup in self.related_reads:
            if lookups is not None and lookup not in lookups:
                continue
            target = self._lookups.get(lookup)
            if target is None:
                continue
            for record in records:
                value = record.get(lookup)
                if (
                    isinstance(value, int)
                    and not isinstance(value, bool)
                    and (known or (target, value) not in self._related)
                ):
                    wanted.setdefault(target, set()).add(value)
        return wanted

    def load_shared(
        self,
        records: Iterable[Mapping[str, Any]],
        lookups: Collection[str],
        *,
        held: Mapping[tuple[str, int], Mapping[str, Any]] | None = None,
    ) -> None:
        """Load again the related records that ``records`` point at through
        ``lookups``, under PostgreSQL's share lock: a save of one of them under
        way is waited for and read, and none can change until this transaction
        ends (see :meth:`.Cascade._settle`).

        :param held: rows, by entity and id, that this transaction has just
            written and returned, and keeps locked until it ends (a roll-up's
            increment): such a row is taken as read where it holds every field
            the rules read, and is not read again.
        """
        held = held or {}
        for target, ids in self._pointed_at(
            records, known=True, lookups=lookups
        ).items():
            entity = self.catalog.entities.get(target)
            fields = self._columns(entity) if entity is not None else ()
            fetched = set()
            for record_id in ids:
                row = held.get((target, record_id))
                if row is not None and all(name in row for name in fields):
                    self._related[(target, record_id)] = {
                        name: row[name] for name in ("id", *fields)
                    }
                    continue
                self._related.pop((target, record_id), None)
                fetched.add(record_id)
            if fetched:
                self._fetch(target, fetched, lock="share")

    def lock_related(self, lookup: str, value: Any) -> None:
        """Load the related record ``value`` of ``lookup`` with its row locked on
        PostgreSQL, so that another save of it that is not yet committed is
        waited for and read, not overwritten with what it replaced. SQLite has
        one writer at a time. A later :meth:`load_related` reads it from here.

        The lock is ``FOR NO KEY UPDATE``: the record's other children being
        saved hold the key-share lock of their foreign key on it, and ``FOR
        UPDATE`` would wait for theirs while they wait for this one.
        """
        target = self._lookups.get(lookup)
        if target is None or isinstance(value, bool) or not isinstance(value, int):
            return
        if not is_sqlite(self.connection):
            self._fetch(target, {value}, lock="no_key_update")
        else:
            self._fetch(target, {value})

    def _fetch(self, target: str, ids: set[int], *, lock: _Lock = None) -> None:
        entity = self.catalog.entities.get(target)
        if entity is None:
            return
        table = entity.table
        fields = self._columns(entity)
        rows: Iterable[Mapping[Any, Any]]
        if len(ids) == 1:
            # One record, the usual save: straight on the driver (see .direct).
            query = rows_by_id(table, fields, single=True, lock=lock)
            rows = direct.run(self.connection, query, {"ids": min(ids)})
        else:
            query = rows_by_id(table, fields, single=False, lock=lock)
            rows = self.connection.execute(query, {"ids": sorted(ids)}).mappings()
        for row in rows:
            self._related[(target, int(row["id"]))] = dict(row)
        for missing in ids:
            self._related.setdefault((target, int(missing)), None)

    @property
    def related_rows(self) -> Mapping[tuple[str, int], Mapping[str, Any] | None]:
        """The related records loaded so far, by entity and id, as the rules read
        them (``None``: not stored, or withheld from the caller)."""
        return self._related

    def _columns(self, target: EntityDef) -> tuple[str, ...]:
        """The columns of ``target`` that the rules read of its records, besides
        the id."""
        table = target.table
        return tuple(
            name
            for name in sorted(self._fields.get(target.name, ()))
            if name in table.c and name != "id"
        )

    def withhold(
        self,
        records: Iterable[Mapping[str, Any]],
        unreadable: Callable[[str, set[int]], Collection[int]],
    ) -> None:
        """Read the related records that ``records`` point at and that the caller
        may not read as records that are not stored.

        ``unreadable`` gives, of some ids of an entity, those the caller may not
        read. A reference given to such a record is refused as one to no record,
        so the rules judge it as one too: what they made of the record (a
        validation's message, a default's value, a field's state) would tell the
        caller of a record they cannot see. Call it before the rules load the
        related records, with the records' lookups the caller gives.
        """
        for target, ids in self._pointed_at(records, known=True).items():
            for record_id in unreadable(target, ids):
                self._related[(target, int(record_id))] = None

    def stored(self, target: str, record_id: Any) -> bool | None:
        """Whether the record ``record_id`` of ``target`` was found when related
        records were loaded; ``None`` when it was not loaded."""
        if not isinstance(record_id, int) or (target, record_id) not in self._related:
            return None
        return self._related[(target, record_id)] is not None

    def related(self, lookup: str, value: Any) -> dict[str, Any] | None:
        """The related record as conditions read it: its id and the fields read."""
        if not isinstance(value, int):
            return None
        target = self._lookups[lookup]
        key = (target, value)
        if lookup not in self.related_reads:
            return {"id": value}
        if key not in self._related:
            self._fetch(target, {value})
        return self._related.get(key)

    def data(
        self,
        values: Mapping[str, Any],
        *,
        prior: Mapping[str, Any] | None = None,
        whole: bool = False,
    ) -> dict[str, Any]:
        """The record as conditions read it.

        :param whole: with every field; by default only those that the rules and
            section conditions can read (all a save needs).
        """
        record = self.record(values, whole=whole)
        record["$user"] = self.user
        record["$now"] = self.now
        if prior is not None:
            record["$prior"] = self.record(prior, whole=whole, gone=_id_only)
        return record

    def record(
        self,
        values: Mapping[str, Any],
        *,
        whole: bool = False,
        gone: Callable[[Any], Any] | None = None,
    ) -> dict[str, Any]:
        """The record as conditions read it (without ``$user`` and the like).

        :param gone: what a lookup to a record that is not stored (any more)
            reads as; null by default. The record before a change pointed at a
            record that existed then, which a delete may just have removed: it
            reads as that record's id (``{"id": …}``), so that ``changed`` sees
            the lookup change.
        """
        plan = self._plan
        get = values.get
        if whole:
            names, lookup_names = plan.names, plan.lookup_names
        else:
            names, lookup_names = self._read_names, self._read_lookup_names
        record = {name: get(name) for name in names}
        for name in lookup_names:
            value = record[name]
            if value is not None:
                related = self.related(name, value)
                if related is None and gone is not None:
                    related = gone(value)
                record[name] = related
        return record

    def _set(
        self, values: dict[str, Any], data: dict[str, Any], name: str, value: Any
    ) -> None:
        values[name] = value
        data[name] = self.related(name, value) if name in self._lookups else value

    # -- before a create -----------------------------------------------------------

    def prepare_new(
        self,
        batch: Sequence[dict[str, Any]],
        given: Sequence[frozenset[str]],
        problems: Sequence[list[Problem]],
        *,
        unread: Sequence[Collection[str]] = (),
    ) -> None:
        """Defaults, formulas and validation of new records, in that order.

        ``batch`` holds each record's values as read (changed in place: defaults
        and formulas are added); ``given`` the fields each caller wrote. A field
        whose value could not be read is not there for the rules: those that
        read it, or read what a rule computes from it, are left out (they would
        judge a value that is not there), and the others run, so that the caller
        hears of every problem at once. A record with a problem that is not a
        field's is left alone. ``unread`` names, per record, more fields that
        could not be read and were left out of ``batch``.
        """
        blinds = [unread_fields(found) for found in problems]
        for blind, left_out in zip(blinds, unread, strict=False):
            if blind is not None:
                blind.update(left_out)
        readable = [index for index, blind in enumerate(blinds) if blind is not None]
        self.load_related(
            (batch[index] for index in readable), setting=self._lookups.keys()
        )
        for index in readable:
            values = batch[index]
            blind = blinds[index] or set()
            found = self.start_rollups(values)
            data = self.data(values)
            found += self.defaults(values, data, given[index], blind=blind)
            found += self.formulas(values, data, dirty=None, blind=blind)
            refused = {p.field for p in found} | blind
            found += self.required(values, refused=refused)
            found += self.validate(data, prior=None, written=given[index], blind=blind)
            problems[index].extend(found)

    def start_rollups(self, values: dict[str, Any]) -> list[Problem]:
        """Give a new record's roll-ups their values over no children, which it
        has none of yet (``count`` and ``sum`` 0, ``min`` and ``max`` null).

        A start its field cannot hold (0 below the field's ``min``) leaves the
        field blank and is returned as a ``rule_value`` problem, as a formula's
        value would be: a create is refused with it, a form shows no value.
        """
        problems = []
        for rollup in self.rules.rollup_fields:
            spec = self.entity.fields[rollup.field]
            try:
                values[rollup.field] = fit(spec, EMPTY_ROLLUP[rollup.function])
            except RuleValueError as error:
                values[rollup.field] = None
                message = (
                    f"The roll-up rule {rollup.name!r} gave a value that does not "
                    f"fit: {error}"
                )
                problems.append(Problem(rollup.field, "rule_value", message))
        return problems

    def defaults(
        self,
        values: dict[str, Any],
        data: dict[str, Any],
        given: frozenset[str],
        *,
        blind: set[str] | None = None,
    ) -> list[Problem]:
        problems = []
        for rule in self.rules.defaults:
            if rule.field in given:
                continue
            if blind and _reads_any(rule.expression.reads, blind):
                blind.add(rule.field)
                continue
            try:
                value = self._fit(rule, rule.expression(data))
            except RuleValueError as error:
                problems.append(_value_problem(rule, rule.field, error))
                continue
            self._set(values, data, rule.field, value)
        return problems

    def _fit(self, rule: DefaultRule | FormulaRule, value: Any) -> Any:
        fits = self._plan.fits.get(rule)
        if fits is None:
            return fit(self.entity.fields[rule.field], value)
        return fits(value)

    def formulas(
        self,
        values: dict[str, Any],
        data: dict[str, Any],
        *,
        dirty: set[str] | None,
        blind: set[str] | None = None,
    ) -> list[Problem]:
        """Compute the formulas whose inputs are ``dirty`` (all of them for None).

        ``dirty`` names fields that changed, and ``lookup.field`` for a related
        record's field; a formula's own change makes the formulas reading it dirty
        in turn. Changes are written into ``values`` and ``data``.

        :param blind: fields whose value could not be read; a formula that reads
            one is not computed, and its field joins them.
        """
        problems = []
        for rule in self.rules.formulas:
            # Before ``dirty``: a formula not computed again for this change
            # would still have been, but for the value that could not be read.
            if blind and _reads_any(rule.expression.reads, blind):
                blind.add(rule.field)
                continue
            if dirty is not None and not _reads_dirty(rule, dirty):
                continue
            try:
                value = self._fit(rule, rule.expression(data))
            except RuleValueError as error:
                problems.append(_value_problem(rule, rule.field, error))
                continue
            if dirty is not None and values.get(rule.field) != value:
                dirty.add(rule.field)
            self._set(values, data, rule.field, value)
        return problems

    def required(
        self,
        values: Mapping[str, Any],
        *,
        refused: set[str | None],
        only: Collection[str] | None = None,
    ) -> list[Problem]:
        """Required fields that a default rule or a formula was to fill.

        A field whose rule gave a value that does not fit (in ``refused``) is
        blank for that reason alone: its ``rule_value`` problem says so, and
        "required" would ask the caller for a value they may not write.

        :param only: judge these fields alone (those an update recomputed).
        """
        problems = []
        for name in self.relaxed():
            if only is not None and name not in only:
                continue
            if name not in refused and is_blank(values.get(name)):
                problems.append(Problem(name, "required", "This field is required."))
        return problems

    def relaxed(self) -> tuple[str, ...]:
        """Required fields filled by rules, which callers need not give."""
        return self._plan.relaxed

    def validate(
        self,
        data: Mapping[str, Any],
        *,
        prior: Mapping[str, Any] | None,
        written: Iterable[str],
        blind: Collection[str] = (),
    ) -> list[Problem]:
        """Validation rules, then what field state requires and forbids.

        :param prior: on an update, the record as stored (``readonly_if`` is
            judged on it); ``None`` on a create, where nothing is read-only yet.
        :param written: the fields the caller changed.
        :param blind: fields whose value could not be read: conditions that read
            one are not judged, nor is such a field required.
        """
        problems = []
        for validation in self.rules.validations:
            if blind and _reads_any(validation.condition.reads, blind):
                continue
            found = validation.condition(data)
            if found is True or (
                found is not False and found is not None and truthy(found)
            ):
                problems.append(Problem(validation.field, "rule", validation.message))
        # A field a validation rule already refused gets no second problem for
        # being blank: "Say why the deal was lost" says it better.
        refused = {problem.field for problem in problems}
        if not isinstance(written, (set, frozenset)):
            written = set(written)
        # What :func:`_state` decides, asking only what can make a problem
        # (conditions read and change nothing, so the order they run in is free).
        for name, label, section, rule in self._plan.field_states:
            if (
                rule.required_if is not None
                and name not in refused
                and not (blind and _judges_blind(name, section, rule, blind))
                and is_blank(data.get(name))
                and truthy(rule.required_if(data))
                and _shown(section, data)
                and _shown(rule.visible_if, data)
                # A field that readonly_if locks on the stored record cannot be
                # filled by this change, so it is not asked for: a record left
                # blank there by rules added later stays open to other changes.
                and not (
                    prior is not None
                    and rule.readonly_if is not None
                    and truthy(rule.readonly_if(prior))
                )
            ):
                message = f"{label} is required here."
                problems.append(Problem(name, "required", message))
            # Read-only protects a stored value: it is judged on the record as
            # stored, and only for a field the caller changes.
            if (
                prior is not None
                and rule.readonly_if is not None
                and name in written
                and truthy(rule.readonly_if(prior))
            ):
                message = f"{label} cannot be changed now."
                problems.append(Problem(name, "read_only", message))
        return problems

    def field_state(
        self, name: str, data: Mapping[str, Any], *, prior: Mapping[str, Any] | None
    ) -> FieldState:
        """Decide whether field ``name`` is visible, required and read-only.

        :param data: the record as it will be saved, as conditions read it.
        :param prior: the record as stored, as conditions read it; ``None`` on a
            create, where nothing is read-only yet.
        """
        section = self.sections.of_field(name)
        rule = self.rules.field_states.get(name)
        if rule is None:
            return FieldState(visible=_shown(section, data))
        return _state(rule, section, data, prior=prior)

    # -- for forms -----------------------------------------------------------------

    def prefill(self, values: dict[str, Any], given: frozenset[str]) -> None:
        """Fill a new record's fields from default rules, as a create would.

        A form shows the values before they are saved, so that the person sees
        (and may change) them; fields in ``given`` are left alone.
        """
        self.load_related([values])
        self.start_rollups(values)
        data = self.data(values)
        self.defaults(values, data, given)

    def locked(self, stored: Mapping[str, Any]) -> frozenset[str]:
        """The fields whose ``readonly_if`` is true for the record as stored.

        A form shows them as they are stored and cannot change them, so they
        read as stored while it is filled in, and are saved as they are.
        """
        rules = [
            rule
            for rule in self.rules.field_states.values()
            if rule.readonly_if is not None
        ]
        if not rules:
            return frozenset()
        self.load_related([stored])
        prior = self.data(stored, whole=True)
        return frozenset(
            rule.field
            for rule in rules
            if rule.readonly_if is not None and truthy(rule.readonly_if(prior))
        )

    def form_state(
        self, values: Mapping[str, Any], *, stored: Mapping[str, Any] | None
    ) -> FormState:
        """What a form shows of the rules for a record.

        :param values: the record as the form holds it (stored values, or what
            was posted, converted as the record service converts them).
        :param stored: the record as stored, for an edit; ``None`` for a new one.
        """
        record = dict(values)
        if stored is None:
            # Judged as the create will judge it: roll-ups at their start.
            self.start_rollups(record)
        self.load_related([record, *([stored] if stored is not None else [])])
        data = self.data(record, whole=True)
        # A formula that cannot be computed shows no value; the save says why.
        # An edit recomputes, as its save does, only the formulas whose inputs
        # the form changed: one of $user or $now alone keeps its stored value.
        dirty = (
            None
            if stored is None
            else {
                name
                for name in self.entity.fields
                if record.get(name) != stored.get(name)
            }
        )
        self.formulas(record, data, dirty=dirty)
        prior = self.data(stored, whole=True) if stored is not None else None
        fields = {
            name: self.field_state(name, data, prior=prior)
            for name in self.entity.fields
        }
        sections = {
            key: _shown(expression, data)
            for key, expression in self.sections.conditions.items()
        }
        unsectioned = {
            name: _state(rule, None, data, prior=prior)
            for name, rule in self.rules.field_states.items()
            if name in self.entity.fields
        }
        seen = {name: value for name, value in data.items() if name[:1] != "$"}
        return FormState(record, seen, fields, sections, unsectioned)

    # -- before an update ----------------------------------------------------------

    def prepare_change(
        self,
        current: Mapping[str, Any],
        values: dict[str, Any],
        *,
        save_began: tuple[Mapping[str, Any] | None] | None = None,
        blind: Collection[str] = (),
    ) -> list[Problem]:
        """Formulas and validation of a change; formula results join ``values``.

        :param blind: fields of the change whose value could not be read: the
            rules that read one, or what a formula computes from it, are left
            out (see :meth:`prepare_new`).

        :param save_began: for a change that belongs to a save of the record
            already under way (an automation's action), the record as
            stored before that save, ``None`` inside it when the save creates
            it: ``readonly_if`` is judged on it rather than on ``current``.
        """
        current = dict(current)
        merged = {**current, **values}
        written = {name for name, value in values.items() if current.get(name) != value}
        self._follow_only(written)
        # The records the change points at first, so that only they are locked.
        self.load_related([merged], setting=written)
        self.load_related([current])
        data = self.data(merged, prior=current)
        dirty = set(written)
        unread = set(blind)
        problems = self.formulas(merged, data, dirty=dirty, blind=unread)
        for rule in self.rules.formulas:
            values[rule.field] = merged[rule.field]
        # A required field that a formula this change recomputed left blank is
        # refused, as on a create.
        problems += self.required(
            merged, refused={p.field for p in problems} | unread, only=dirty - written
        )
        # The stored record as conditions read it, without reading it twice.
        prior: dict[str, Any] | None = {
            **data["$prior"],
            "$user": self.user,
            "$now": self.now,
        }
        if save_began is not None:
            (began,) = save_began
            prior = None
            if began is not None:
                self.load_related([began])
                record = self.record(began, gone=_id_only)
                prior = {**record, "$user": self.user, "$now": self.now}
        problems += self.validate(data, prior=prior, written=written, blind=unread)
        return problems

    def _follow_only(self, written: set[str]) -> None:
        """Load on an update only the related records whose fields rules will read.

        Validation, field-state and section conditions run on every save; a
        formula runs when one of its inputs changed (see :meth:`formulas`), so
        the formulas that may run are found from the fields written. A lookup
        that nothing which may run reads through reads as ``{"id": ...}``; one
        that changed is always loaded, so that a reference to no record reads as
        null, as on a create.
        """
        plan = self._plan
        if self.related_reads is not plan.related_reads:
            self.related_reads = self._followed(written)
            return
        key = frozenset(written)
        found = plan.follows.get(key)
        if found is None:
            found = self._followed(written)
            if len(plan.follows) >= _FOLLOWS_KEPT:
                plan.follows.clear()
            plan.follows[key] = found
        self.related_reads = found

    def _followed(self, written: set[str]) -> dict[str, frozenset[str]]:
        through = set(self._plan.checked_through)
        dirty = set(written)
        for rule in self.rules.formulas:
            if _reads_dirty(rule, dirty):
                dirty.add(rule.field)
                through |= {
                    n.split(".", 1)[0] for n in rule.expression.reads if "." in n
                }
        return {
            lookup: fields
            for lookup, fields in self.related_reads.items()
            if lookup in written or lookup in through
        }

    # -- when stored -----------------------------------------------------------------

    @property
    def computed_when_stored(self) -> bool:
        """Whether formulas are computed again when new records are stored (see
        :meth:`when_stored`)."""
        return bool(self._plan.stored_reads)

    @property
    def unique_when_stored(self) -> frozenset[str]:
        """Unique formula fields whose values are known once a record is stored,
        and whose uniqueness is judged then (see :meth:`when_stored`)."""
        return self._plan.unique_when_stored

    def when_stored(self, rows: Sequence[dict[str, Any]]) -> None:
        """Compute again, in place, the formulas of new ``rows`` that read values
        given as they are stored (autonumbers, created_at, created_by, a default
        owner), once those values are in the rows.

        :raises ValidationFailed: a formula's value does not fit its field, with
            the field and the rule, as when the record was checked.
        """
        given = self._plan.stored_reads
        if not given:
            return
        self.load_related(rows)
        for row in rows:
            values, problems = self._computed(row, given)
            if problems:
                raise ValidationFailed(
                    f"{self.entity.label} could not be saved.", problems=problems
                )
            row.update(values)

    # -- recomputing ---------------------------------------------------------------

    def recompute(self, row: Mapping[str, Any], dirty: set[str]) -> dict[str, Any]:
        """The formula values of a stored record after ``dirty`` inputs changed.

        :raises RuleValueError: a formula's value does not fit its field.
        """
        values, problems = self._computed(row, dirty)
        if problems:
            raise RuleValueError(problems[0].message, problems=problems)
        return {name: value for name, value in values.items() if value != row.get(name)}

    def _computed(
        self, row: Mapping[str, Any], dirty: Iterable[str]
    ) -> tuple[dict[str, Any], list[Problem]]:
        """Every formula field of ``row`` once the formulas fed by ``dirty`` inputs
        are computed, and their problems."""
        merged = dict(row)
        marks = set(dirty)
        problems = self.formulas(merged, self.data(merged), dirty=marks)
        # A required field that a recomputed formula left blank is refused, as
        # on a save of the record itself.
        problems += self.required(
            merged, refused={p.field for p in problems}, only=marks - set(dirty)
        )
        values = {rule.field: merged[rule.field] for rule in self.rules.formulas}
        return values, problems


def _state(
    rule: FieldStateRule,
    section: Any,
    data: Mapping[str, Any],
    *,
    prior: Mapping[str, Any] | None,
) -> FieldState:
    visible = _shown(section, data) and _shown(rule.visible_if, data)
    required = (
        visible and rule.required_if is not None and truthy(rule.required_if(data))
    )
    readonly = (
        prior is not None
        and rule.readonly_if is not None
        and truthy(rule.readonly_if(prior))
    )
    # A field nobody may change now is not asked of anyone (see validate).
    return FieldState(
        visible=visible, required=required and not readonly, readonly=readonly
    )


def _shown(visible_if: Any, data: Mapping[str, Any]) -> bool:
    """A field is shown unless its ``visible_if`` is false; null shows it."""
    if visible_if is None:
        return True
    shown = visible_if(data)
    return shown is None or truthy(shown)


def _related_reads(
    rules: EntityRules, section_reads: Iterable[str]
) -> dict[str, frozenset[str]]:
    reads = {lookup: set(fields) for lookup, fields in rules.related_reads.items()}
    for name in section_reads:
        head, _, rest = name.partition(".")
        if rest:
            reads.setdefault(head, set()).add(rest)
    return {lookup: frozenset(fields) for lookup, fields in reads.items()}


# Building a statement costs more than running it, and a save may load related
# records several times: the statements are built once per table of a catalog.
# One id is compared with ``=``: SQLAlchemy renders an IN list again on every run.
@functools.lru_cache(maxsize=2048)
def rows_by_id(
    table: sa.Table, fields: tuple[str, ...], *, single: bool, lock: _Lock = None
) -> sa.Select[Any]:
    """The id and ``fields`` of the records whose ids are bound as ``ids``: one
    id (``single``), or a list of them; their rows locked (``lock``) for an
    update that keeps their id, or with the key-share lock a foreign key takes.
    """
    columns = [table.c[name] for name in fields]
    if single:
        where = table.c.id == sa.bindparam("ids")
    else:
        where = table.c.id.in_(sa.bindparam("ids", expanding=True))
    query = sa.select(table.c.id, *columns).where(where)
    if lock == "no_key_update":
        return query.with_for_update(key_share=True)
    if lock == "key_share":
        return query.with_for_update(read=True, key_share=True)
    if lock == "share":
        return query.with_for_update(read=True)
    return query


def unread_fields(problems: Iterable[Problem]) -> set[str] | None:
    """The fields whose values ``problems`` (of reading a record) found could not
    be read; ``None`` when one concerns the whole record."""
    fields = set()
    for problem in problems:
        if problem.field is None:
            return None
        fields.add(problem.field.split(".", 1)[0].split("[", 1)[0])
    return fields


def _reads_any(reads: Iterable[str], blind: Collection[str]) -> bool:
    """Whether any of ``reads`` (``stage``, ``account.industry``) is, or goes
    through, a field in ``blind``."""
    return any(name.split(".", 1)[0] in blind for name in reads)


def _judges_blind(
    name: str, section: Any, rule: FieldStateRule, blind: Collection[str]
) -> bool:
    """Whether ``required_if`` of field ``name`` would judge a value that could
    not be read: the field's own, or one its conditions read."""
    if name in blind:
        return True
    conditions = (rule.required_if, rule.visible_if, section)
    return any(c is not None and _reads_any(c.reads, blind) for c in conditions)


def _reads_dirty(rule: FormulaRule, dirty: set[str]) -> bool:
    # A formula's own field marks it as new or changed (see ``Cascade.refill``):
    # callers never write a computed field, so nothing else puts it there.
    return rule.field in dirty or not rule.inputs.isdisjoint(dirty)


#: How many sets of written fields each entity's plan keeps the loads of.
_FOLLOWS_KEPT = 256


def _value_problem(rule: Rule, field: str, error: RuleValueError) -> Problem:
    message = (
        f"The {rule.type} rule {rule.name!r} gave a value that does not fit: {error}"
    )
    return Problem(field, "rule_value", message)
