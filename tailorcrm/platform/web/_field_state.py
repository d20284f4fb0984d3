"""Field state for the pages: the record service's rules, applied to what a page shows.

Forms and record pages show each field as the record service will judge it
(RULES.md, field state): hidden while its ``visible_if`` or its section's is false,
required while its ``required_if`` is true, read-only while its ``readonly_if`` is
true for the record as stored. The decision is :class:`~..rules.RecordRules`' own,
so a page never disagrees with the save that follows it.

What a form holds is text; it is converted as the record service converts it, and
a value that does not convert (``abc`` in a number field) reads as null here, as
the save will refuse it anyway.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Collection, Mapping
from typing import Any

import sqlalchemy as sa

from ...metadata import (
    SYSTEM_COLUMNS,
    TEXT_TYPES,
    EntityDef,
    FieldValueError,
    SectionConditions,
    SectionKey,
    convert,
    max_length,
)
from ...renderer import (
    NO_FORM_RULES,
    FormRules,
    FormValue,
    as_sent,
    as_shown,
    browser_context,
    browser_value,
    form_values,
    read_form,
)
from .._app import Session
from ..query import SYSTEM_SPECS, names_of
from ..records import unreadable_ids
from ..rules import FormState, RecordRules


def _runner(session: Session, entity: EntityDef) -> RecordRules:
    """The record service's rules for ``entity``, over every field as a save
    judges them; the sections are those of the caller's form."""
    full = session.full_catalog
    runner = RecordRules(
        session.connection,
        full,
        full.entity(entity.name),
        user=session.user.condition_data(),
        now=dt.datetime.now(dt.UTC),
    )
    runner.sections = _sections(session, entity)
    return runner


def _sections(session: Session, entity: EntityDef) -> SectionConditions:
    """The conditions a save judges sections by, placed in the caller's form.

    A save reads the sections of the whole layout. The caller's layout leaves out
    a section whose fields their roles all hide, which moves the places of the
    sections after it, and a condition that reads a hidden field, which hides its
    section all the same: each section of the caller's form takes the condition
    that the whole layout gives the fields it holds.
    """
    own = session.catalog.section_conditions(entity.name)
    if session.catalog.full is None:
        return own
    whole = session.full_catalog.section_conditions(entity.name)
    conditions = {}
    placed = {}
    for number, tab in enumerate(session.catalog.layout(entity.name)["form"]["tabs"]):
        for index, section in enumerate(tab["sections"]):
            key = (number, index)
            names = [item["field"] for item in section["items"] if "field" in item]
            found = next((whole.placed[n] for n in names if n in whole.placed), None)
            if found is not None:
                conditions[key] = whole.conditions[found]
            elif key in own.conditions:
                # Related lists alone: no field to find it by.
                conditions[key] = own.conditions[key]
            else:
                continue
            placed.update(dict.fromkeys(names, key))
    return SectionConditions(conditions, placed)


def _fixed_sections(
    session: Session, entity: EntityDef, withheld: Collection[str]
) -> frozenset[SectionKey]:
    """The sections of the caller's form whose condition reads what the caller
    cannot see (their layout does not carry it), or a field of a related record
    they cannot read (the lookups ``withheld``): the server's state stands."""
    own = session.catalog.section_conditions(entity.name).conditions
    return frozenset(
        key
        for key, expression in _sections(session, entity).conditions.items()
        if key not in own or _through(expression.reads, withheld)
    )


def _unseen(session: Session, entity: EntityDef) -> frozenset[str]:
    """The fields of ``entity`` that the caller's roles hide."""
    full = session.full_catalog.entity(entity.name)
    if full is entity:
        return frozenset()
    return frozenset(full.fields) - frozenset(entity.fields)


def _with_unseen(
    session: Session, entity: EntityDef, values: dict[str, Any], record_id: Any
) -> None:
    """Add the stored values of the fields the caller cannot see (a save judges
    the rules with them), or on a new record their defaults."""
    unseen = _unseen(session, entity)
    if not unseen:
        return
    full = session.full_catalog.entity(entity.name)
    if record_id is None:
        values.update(converted(full, {n: v for n, v in full.defaults if n in unseen}))
        return
    table = full.table
    row = (
        session.connection.execute(
            sa.select(*(table.c[name] for name in sorted(unseen))).where(
                table.c.id == record_id
            )
        )
        .mappings()
        .first()
    )
    if row is not None:
        values.update(row)


def _as_seen(session: Session, entity: EntityDef, state: FormState) -> FormState:
    """The form state without the fields the caller cannot see."""
    unseen = _unseen(session, entity)
    if not unseen:
        return state
    return dataclasses.replace(
        state,
        fields={n: f for n, f in state.fields.items() if n not in unseen},
        record={n: v for n, v in state.record.items() if n not in unseen},
        unsectioned={n: f for n, f in state.unsectioned.items() if n not in unseen},
    )


def has_field_state(session: Session, entity: EntityDef) -> bool:
    """Whether anything can hide, require or lock a field of ``entity``."""
    rules = session.catalog.rules.for_entity(entity.name)
    # The whole layout's sections: one may read a field the caller cannot see.
    sections = session.full_catalog.section_conditions(entity.name)
    return bool(rules.field_states or sections.placed)


def converted(entity: EntityDef, data: Mapping[str, Any]) -> dict[str, Any]:
    """Values as the record service stores them; one that does not convert is null."""
    values: dict[str, Any] = {}
    for name, value in data.items():
        spec = entity.fields.get(name)
        if spec is None or spec["type"] == "autonumber":
            values[name] = value
            continue
        try:
            values[name] = convert(spec, value)
        except (FieldValueError, TypeError, ValueError, ArithmeticError):
            values[name] = None
    return values


def stored_values(entity: EntityDef, record: Mapping[str, Any]) -> dict[str, Any]:
    """A stored record (API form) with its values typed as the database holds them.

    A value saved before its field's limits changed (a lower ``max`` or
    ``max_length``, a choice no longer offered) stays what it is: the record
    service reads it so from the database and judges the rules on it.
    """
    values = {
        name: _as_stored(spec, record.get(name)) for name, spec in entity.fields.items()
    }
    for name in SYSTEM_COLUMNS:
        value = record.get(name)
        if name in ("created_at", "updated_at") and isinstance(value, str):
            value = dt.datetime.fromisoformat(value.removesuffix("Z"))
        values[name] = value
    return values


def _as_stored(spec: Mapping[str, Any], value: Any) -> Any:
    """One stored value (API form) typed as the database holds it, whatever limits
    its field has now: none but the column's own (type, digits) are checked."""
    kind = spec["type"]
    if kind == "autonumber":
        return value
    loose = {key: item for key, item in spec.items() if key not in ("min", "max")}
    if kind in TEXT_TYPES and isinstance(value, str):
        loose["max_length"] = max(len(value), max_length(loose) or 0)
    if kind in ("picklist", "multi_picklist"):
        chosen = value if isinstance(value, list) else [value]
        stored = [{"value": item} for item in chosen if isinstance(item, str)]
        loose["options"] = [*spec.get("options", ()), *stored]
    try:
        return convert(loose, value)
    except (FieldValueError, TypeError, ValueError, ArithmeticError):
        return None


def unchanged_fields(
    session: Session,
    entity: EntityDef,
    values: Mapping[str, FormValue],
    record: Mapping[str, Any],
    *,
    locked: Collection[str] | None = None,
) -> set[str]:
    """Fields whose posted value is what the form showed for the stored record.

    They are not sent: saving a form must not rewrite what the person did not
    touch (a value with spaces around it, a choice that is no longer offered,
    a line break that the form's input of one line drops, see :func:`as_sent`),
    and the form's field state reads them as stored, as the save does.
    A checkbox is the exception: it has two states, and a blank boolean shows
    unticked, which the form and its field state read as false. So a blank
    boolean is saved as the box shows it (false unless ticked), and the save
    judges the record the form showed; only a box that ``readonly_if`` locks
    keeps its blank (:func:`locked_fields`).

    :param locked: the fields ``readonly_if`` locks on the stored record, when
        the caller has worked them out already.
    """
    shown = form_values(entity, record)
    blank_booleans = {
        name
        for name, spec in entity.fields.items()
        if spec["type"] == "boolean" and record.get(name) is None
    }
    if blank_booleans:
        if locked is None:
            locked = locked_fields(session, entity, record)
        blank_booleans -= set(locked)
    return {
        name
        for name, value in values.items()
        if name not in blank_booleans
        and _as_shown_before(entity.fields.get(name), value, shown.get(name, ""))
    }


def _as_shown_before(
    spec: Mapping[str, Any] | None, value: FormValue, before: FormValue
) -> bool:
    """Whether a posted form's ``value`` of a field is what the form showed
    (``before``), as the form would send either (see :func:`as_sent`); the
    choices of a multi-picklist in any order."""
    if spec is not None:
        value = as_sent(spec, as_shown(spec, value))
        before = as_sent(spec, before)
    if isinstance(value, list) and isinstance(before, list):
        return sorted(value) == sorted(before)
    return value == before


def prefill_defaults(
    session: Session,
    entity: EntityDef,
    values: dict[str, FormValue],
    given: Collection[str],
) -> dict[str, FormValue]:
    """Show a new record's form with what default rules would fill in.

    :param values: the form's values (changed in place).
    :param given: fields whose value the address or the entity document gave.
    :return: each field a default rule filled in, with what the form shows.
    """
    rules = session.catalog.rules.for_entity(entity.name)
    if not rules.defaults:
        return {}
    typed = converted(entity, read_form(entity, values))
    _with_unseen(session, entity, typed, None)
    runner = _runner(session, entity)
    _withhold(session, runner, typed, None)
    runner.prefill(typed, frozenset(given))
    filled = {
        rule.field: typed.get(rule.field)
        for rule in rules.defaults
        if rule.field in entity.fields
    }
    shown = form_values(entity, {n: v for n, v in filled.items() if n not in given})
    defaulted = {name: shown[name] for name in filled if name not in given}
    values.update(defaulted)
    return defaulted


def untouched_defaults(
    session: Session,
    entity: EntityDef,
    values: Mapping[str, FormValue],
    shown: Mapping[str, Any],
) -> set[str]:
    """The fields of a posted new form that still hold what default rules
    filled in when it was shown.

    Nobody chose those values: the save leaves them to the default rules, which
    then read the record as it is saved (an account picked since the form was
    shown, say), not as the form was first shown.

    :param shown: each field a default rule filled in, with the value shown.
    """
    rules = session.catalog.rules.for_entity(entity.name)
    return {
        rule.field
        for rule in rules.defaults
        if rule.field in entity.fields
        # A lookup's box shows the name of the record it holds, which the form
        # cannot follow: the record shown is the one saved.
        and entity.fields[rule.field]["type"] != "lookup"
        and rule.field in values
        and isinstance(shown.get(rule.field), (str, list))
        and _as_shown_before(
            entity.fields[rule.field], values[rule.field], shown[rule.field]
        )
    }


def _withhold(
    session: Session,
    runner: RecordRules,
    typed: Mapping[str, Any],
    stored: Mapping[str, Any] | None,
) -> None:
    """Judge the lookups a form gives (those of a new record, those an edit
    changes) that point at a record the caller cannot read as a save does: as
    pointing at no record (see :meth:`RecordRules.withhold`)."""
    if session.catalog.full is None:
        return
    if stored is not None:
        typed = {k: v for k, v in typed.items() if stored.get(k) != v}
    runner.withhold(
        [typed], functools.partial(unreadable_ids, session.connection, session.catalog)
    )


def fixed_fields(session: Session, entity: EntityDef) -> frozenset[str]:
    """Fields a form shows but never sends: those a formula or roll-up computes,
    and those the caller's roles make read-only."""
    computed = session.catalog.rules.for_entity(entity.name).computed
    access = entity.access
    locked = (
        [name for name, level in access.levels.items() if level == "read_only"]
        if access is not None
        else []
    )
    return frozenset([*computed, *locked])


def form_rules(
    session: Session,
    entity: EntityDef,
    values: Mapping[str, FormValue],
    *,
    record: Mapping[str, Any] | None,
    placed: Collection[str],
    addressed: Collection[str] = (),
) -> FormRules:
    """Field state of a form showing ``values``, and its context for the browser.

    :param record: the stored record (API form) when editing.
    :param placed: the fields the form sends; the others keep their stored (or,
        on a new record, their default) values.
    :param addressed: on a new record, the fields its address gives values
        for; those the form does not place are saved with these values.
    """
    computed = fixed_fields(session, entity)
    if not has_field_state(session, entity):
        return FormRules(computed=computed) if computed else NO_FORM_RULES
    runner = _runner(session, entity)
    stored = stored_values(entity, record) if record is not None else None
    if stored is not None:
        _with_unseen(session, entity, stored, stored.get("id"))
    typed: dict[str, Any] = dict(stored) if stored is not None else {}
    locked = runner.locked(stored) if stored is not None else frozenset()
    if stored is None:
        typed.update(converted(entity, dict(entity.defaults)))
        _with_unseen(session, entity, typed, None)
    # A locked field is saved as stored (see ``locked_fields``), so it reads so;
    # so does one the form shows as stored, which the save does not send.
    sent = [name for name in placed if name not in locked]
    before: dict[str, Any] = {}
    if record is not None and stored is not None:
        same = unchanged_fields(session, entity, values, record, locked=locked)
        sent = [name for name in sent if name not in same]
        before = _shown_before(entity, values, record, stored, sent)
    typed.update(converted(entity, read_form(entity, values, editable=sent)))
    unplaced: dict[str, Any] = {}
    if stored is None:
        # What a new record's address gives a field the form does not place (a
        # related list's New button links to ?account=12) is saved with it
        # (see _given_unplaced in _records.py), so the rules read it; a blank
        # gives nothing, and a default still applies.
        others = [
            name
            for name in addressed
            if name in entity.fields and name not in placed and name not in computed
        ]
        unplaced = {
            name: value
            for name, value in converted(
                entity, read_form(entity, values, editable=others)
            ).items()
            if value is not None
        }
        typed.update(unplaced)
    _withhold(session, runner, typed, stored)
    if stored is None:
        given = set(placed) | set(unplaced) | {n for n, _ in runner.entity.defaults}
        runner.prefill(typed, frozenset(given))
    state = _as_seen(session, entity, runner.form_state(typed, stored=stored))
    rules = _rules_of(session, entity, state, computed)
    if before and rules.context is not None:
        rules = dataclasses.replace(rules, context={**rules.context, "stored": before})
    return rules


def _shown_before(
    entity: EntityDef,
    values: Mapping[str, FormValue],
    record: Mapping[str, Any],
    stored: Mapping[str, Any],
    sent: Collection[str],
) -> dict[str, Any]:
    """The fields of a form redrawn after a refused save that hold other than
    what the form first showed for the stored record: each with that text and
    the stored value.

    Typed back, such a field is saved as stored (see :func:`unchanged_fields`),
    a date and time with its fraction of a second, and ``field_state.js``
    reads it so. A checkbox and a lookup read the same either way.
    """
    shown = form_values(entity, record)
    before = {}
    for name in sent:
        spec = entity.fields.get(name)
        if spec is None or spec["type"] in ("boolean", "lookup") or name not in values:
            continue
        if not _as_shown_before(spec, values[name], shown[name]):
            before[name] = {"shown": shown[name], "value": browser_value(stored[name])}
    return before


def locked_fields(
    session: Session, entity: EntityDef, record: Mapping[str, Any]
) -> frozenset[str]:
    """The fields of a stored record that its ``readonly_if`` rules lock.

    Their form shows them as stored and cannot change them, so an edit keeps
    their stored value: a checkbox shown unticked for a blank boolean leaves it
    blank, where the record service would refuse false as a change.
    """
    if not session.catalog.rules.for_entity(entity.name).field_states:
        return frozenset()
    stored = stored_values(entity, record)
    _with_unseen(session, entity, stored, stored.get("id"))
    return _runner(session, entity).locked(stored) & frozenset(entity.fields)


def _rules_of(
    session: Session, entity: EntityDef, state: FormState, computed: frozenset[str]
) -> FormRules:
    conditions = {
        name: found
        for name, found in session.catalog.rules.form_states(entity.name).items()
        if name in entity.fields
    }
    withheld = _withheld(session, entity, state.record)
    fixed_sections = _fixed_sections(session, entity, withheld)
    placed = _sections(session, entity).placed
    return FormRules(
        states=state.fields,
        # What a field's own conditions decide is told only where its section's
        # state may change in the browser: within a section the server fixed,
        # the person could never see it apart from the section's.
        unsectioned={
            name: found
            for name, found in state.unsectioned.items()
            if placed.get(name) not in fixed_sections
        },
        sections=state.sections,
        conditions=conditions,
        computed=computed,
        context=browser_context(
            _visible(session, entity, state.record, withheld),
            session.user.condition_data(),
        ),
        fixed=_fixed(session, entity, conditions, withheld),
        fixed_sections=fixed_sections,
    )


def _through(reads: Collection[str], lookups: Collection[str]) -> bool:
    """Whether any of ``reads`` is a field of a related record behind ``lookups``."""
    return any("." in read and read.split(".", 1)[0] in lookups for read in reads)


def _fixed(
    session: Session,
    entity: EntityDef,
    conditions: Mapping[str, Any],
    withheld: Collection[str],
) -> frozenset[str]:
    """The fields whose live conditions read a field the caller cannot see, on
    the record or through a lookup, or a field of a related record the caller
    cannot read (the lookups ``withheld``): the browser could not judge them, and
    would learn the hidden value from their state."""
    if session.catalog.full is None:
        return frozenset()
    rules = session.full_catalog.rules.for_entity(entity.name).field_states
    fixed = set()
    for name in conditions:
        rule = rules.get(name)
        if rule is None:
            continue
        reads: set[str] = set()
        for expression in (rule.visible_if, rule.required_if):
            if expression is not None:
                reads |= expression.reads
        if _through(reads, withheld) or not all(
            _readable(session, entity, read) for read in reads
        ):
            fixed.add(name)
    return frozenset(fixed)


def _readable(session: Session, entity: EntityDef, name: str) -> bool:
    """Whether the caller sees what ``name`` (``stage``, ``account.industry``)
    reads; system columns and ``$`` names are seen."""
    head, _, rest = name.partition(".")
    if head.startswith("$") or head in SYSTEM_COLUMNS:
        return True
    full = session.full_catalog.entity(entity.name)
    if head not in entity.fields:
        return head not in full.fields
    spec = entity.fields[head]
    if not rest or spec["type"] != "lookup":
        return True
    target = session.catalog.entities.get(spec["target"])
    if target is None or target.removed:
        return False
    return _readable(session, target, rest)


def _withheld(
    session: Session, entity: EntityDef, record: Mapping[str, Any]
) -> frozenset[str]:
    """The lookups of ``record`` that point at a record the caller cannot read."""
    if entity.access is None:
        return frozenset()
    found = set()
    for name, value in record.items():
        spec = entity.fields.get(name)
        if spec is None or spec["type"] != "lookup" or not isinstance(value, dict):
            continue
        target = session.catalog.entities.get(spec["target"])
        record_id = value.get("id")
        readable = (
            target is not None
            and not target.removed
            and isinstance(record_id, int)
            and record_id in names_of(session.connection, target, [record_id])
        )
        if not readable:
            found.add(name)
    return frozenset(found)


def _visible(
    session: Session,
    entity: EntityDef,
    record: Mapping[str, Any],
    withheld: Collection[str],
) -> dict[str, Any]:
    """The record as the page may carry it: a related record the caller cannot
    read (behind the lookups ``withheld``) is its id alone, and fields their roles
    hide are left out of the others.
    """
    if entity.access is None:
        return dict(record)
    shown = dict(record)
    for name, value in record.items():
        spec = entity.fields.get(name)
        if spec is None or spec["type"] != "lookup" or not isinstance(value, dict):
            continue
        target = session.catalog.entities.get(spec["target"])
        if name in withheld or target is None:
            shown[name] = {"id": value.get("id")}
            continue
        shown[name] = {
            key: item
            for key, item in value.items()
            if key == "id" or key in target.fields or key in SYSTEM_SPECS
        }
    return shown


def live_reads(session: Session, entity: EntityDef) -> frozenset[str]:
    """What the conditions a form evaluates live read: the ``visible_if`` and
    ``required_if`` of its fields and the ``visible_if`` of its sections."""
    full = session.full_catalog
    reads: set[str] = set(full.section_conditions(entity.name).reads)
    for name, rule in full.rules.for_entity(entity.name).field_states.items():
        if name not in entity.fields:
            continue
        for expression in (rule.visible_if, rule.required_if):
            if expression is not None:
                reads |= expression.reads
    return frozenset(reads)


def related_as_read(
    session: Session, entity: EntityDef, lookup: str, record_id: int
) -> dict[str, Any] | None:
    """The record that lookup ``lookup`` of a form points at, chosen since the
    form was shown, as the form's live conditions read it (see
    ``static/field_state.js``): what the form would have carried had it been
    shown pointing at it.

    :returns: ``None`` when ``lookup`` is not a lookup of the caller's form; the
        id alone when no live condition reads a field of the record, the caller
        cannot read it, or there is no such record (which of these is not told).
    """
    spec = entity.fields.get(lookup)
    if spec is None or spec["type"] != "lookup":
        return None
    known = {"id": record_id}
    if not _through(live_reads(session, entity), [lookup]) or _withheld(
        session, entity, {lookup: known}
    ):
        return known
    record: dict[str, Any] = {lookup: record_id}
    runner = _runner(session, entity)
    runner.load_related([record])
    related = runner.record(record, whole=True).get(lookup)
    if not isinstance(related, dict):
        return known
    return _visible(session, entity, {lookup: related}, ())[lookup]


def record_state(
    session: Session, entity: EntityDef, record: Mapping[str, Any]
) -> tuple[frozenset[str], dict[tuple[int, int], bool]]:
    """For a record page: the fields that are hidden, and each section's state."""
    if not has_field_state(session, entity):
        return frozenset(), {}
    stored = stored_values(entity, record)
    _with_unseen(session, entity, stored, stored.get("id"))
    state = _as_seen(
        session, entity, _runner(session, entity).form_state(stored, stored=stored)
    )
    hidden = frozenset(
        name for name, found in state.fields.items() if not found.visible
    )
    return hidden, state.sections
