"""Home, list, record, form and delete pages of every entity.

Reads go through the query builder and the record service's ``get``; writes go
through the record service, the same path as the API, so a form shows exactly the
problems the API would answer with.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Collection, Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa
from flask import flash, redirect, request
from flask_login import login_required
from sqlalchemy.dialects import postgresql, sqlite
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from ...errors import (
    Conflict,
    Forbidden,
    NotFound,
    PreconditionFailed,
    TailorError,
    ValidationFailed,
)
from ...metadata import Catalog, EntityDef
from ...renderer import (
    FormValue,
    RelatedRows,
    as_shown,
    browser_value,
    form_page,
    form_values,
    format_value,
    one_line,
    problem_label,
    read_form,
    title_of,
)
from ...renderer import detail_page as build_detail
from .._app import Session
from ..automation import AutomationFailed
from ..db import recent_records, users
from ..query import (
    access_where,
    display_names,
    names_of,
    parse_list_args,
    records_named,
    run_list,
)
from ._blueprint import web
from ._context import LINKS, locale, reasons, render, web_session, whole_number
from ._field_state import (
    fixed_fields,
    form_rules,
    locked_fields,
    prefill_defaults,
    record_state,
    related_as_read,
    unchanged_fields,
    untouched_defaults,
)
from ._history import history_section
from ._lookup import HTML_SAFE

RECENT_LIMIT = 10
RELATED_ROWS = 5


# -- home --------------------------------------------------------------------------


@web.get("/")
@login_required
def home() -> Response:
    with web_session() as session:
        recent = _recent(session)
        return render("home.html", title="Home", session=session, recent=recent)


def _recent(session: Session) -> list[dict[str, Any]]:
    rows = session.connection.execute(
        sa.select(recent_records.c.entity, recent_records.c.record_id)
        .where(recent_records.c.user_id == session.user.id)
        .order_by(recent_records.c.viewed_at.desc())
        .limit(RECENT_LIMIT * 2)
    ).all()
    by_entity: dict[str, list[int]] = {}
    for entity_name, record_id in rows:
        by_entity.setdefault(entity_name, []).append(int(record_id))
    titles: dict[tuple[str, int], tuple[str, str]] = {}
    for entity_name, ids in by_entity.items():
        entity = session.catalog.entities.get(entity_name)
        if entity is None or entity.removed:
            continue
        for record_id, name in names_of(session.connection, entity, ids).items():
            titles[(entity_name, record_id)] = (name, entity.label)
    found = []
    for entity_name, record_id in rows:
        key = (entity_name, int(record_id))
        if key in titles:
            name, label = titles[key]
            href = LINKS.record(entity_name, int(record_id))
            found.append({"title": name, "entity_label": label, "href": href})
    return found[:RECENT_LIMIT]


def _remember(session_user_id: int, entity: str, record_id: int) -> None:
    """Note a record as recently viewed (a small write of its own)."""
    from .._app import platform

    table_ = recent_records
    # To the microsecond, so that two records opened within a second keep their
    # order.
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with platform().engine.begin() as connection:
        # One statement: two pages of the same record opened at once would both
        # find no row to update, and the second insert would clash with the first.
        insert = (
            postgresql.insert(table_)
            if connection.dialect.name == "postgresql"
            else sqlite.insert(table_)
        )
        connection.execute(
            insert.values(
                user_id=session_user_id,
                entity=entity,
                record_id=record_id,
                viewed_at=now,
            ).on_conflict_do_update(
                index_elements=list(table_.primary_key), set_={"viewed_at": now}
            )
        )
        old = (
            sa.select(table_.c.viewed_at)
            .where(table_.c.user_id == session_user_id)
            .order_by(table_.c.viewed_at.desc())
            .offset(RECENT_LIMIT * 3)
            .limit(1)
            .scalar_subquery()
        )
        connection.execute(
            table_.delete().where(
                table_.c.user_id == session_user_id, table_.c.viewed_at < old
            )
        )


# -- helpers -----------------------------------------------------------------------


def _plural(entity: EntityDef) -> str:
    return str(entity.document.get("label_plural") or entity.label)


# -- record pages ------------------------------------------------------------------


def _related_rows(
    session: Session, entity: EntityDef, layout: Mapping[str, Any], record_id: int
) -> tuple[dict[str, RelatedRows], dict[str, EntityDef], list[Mapping[str, Any]]]:
    """The first rows and the total of each related list the layout shows."""
    rows: dict[str, RelatedRows] = {}
    entities: dict[str, EntityDef] = {}
    fetched: list[Mapping[str, Any]] = []
    items = [
        item
        for tab in layout["form"]["tabs"]
        for section in tab["sections"]
        for item in section["items"]
        if "related" in item
    ]
    for item in items:
        child_name = item["related"]["entity"]
        lookup = item["related"]["field"]
        child = session.catalog.entities.get(child_name)
        if child is None or child.removed or lookup not in child.fields:
            continue
        args = {
            lookup: [str(record_id)],
            "limit": [str(RELATED_ROWS)],
            "count": ["true"],
        }
        sort = session.catalog.layout(child_name)["list"].get("sort")
        if sort:
            args["sort"] = [",".join(sort)]
        page = run_list(session.connection, child, parse_list_args(child, args))
        rows[f"{child_name}.{lookup}"] = RelatedRows(page.records, int(page.total or 0))
        entities[child_name] = child
        columns = item.get("columns") or []
        fetched.append({"entity": child, "records": page.records, "columns": columns})
    return rows, entities, fetched


@web.get("/app/<entity_name>/<int:record_id>")
@login_required
def detail_page(entity_name: str, record_id: int) -> Response:
    with web_session() as session:
        entity = session.catalog.entity(entity_name)
        layout = session.catalog.layout(entity_name)
        record = session.records().get(entity_name, record_id)
        names = display_names(session.connection, session.catalog, entity, [record])
        related, related_entities, fetched = _related_rows(
            session, entity, layout, record_id
        )
        for item in fetched:
            for target, found in display_names(
                session.connection,
                session.catalog,
                item["entity"],
                item["records"],
                item["columns"],
            ).items():
                names.setdefault(target, {}).update(found)
        hidden, shown = record_state(session, entity, record)
        model = build_detail(
            entity,
            layout,
            record,
            names,
            related,
            related_entities,
            LINKS,
            locale=locale(),
            hidden=hidden,
            shown=shown,
        )
        service = session.records()
        model = dataclasses.replace(
            model,
            can_edit=service.allows(entity_name, record_id, "edit"),
            can_delete=service.allows(entity_name, record_id, "delete"),
            owner=_username(session, record.get("owner_id")),
        )
        response = render(
            "detail.html",
            title=model.title,
            session=session,
            current=entity.name,
            page=model,
            entity_plural=_plural(entity),
            history=history_section(session, entity, record),
        )
        user_id = session.user.id
    _remember(user_id, entity_name, record_id)
    return response


# -- forms -------------------------------------------------------------------------

SEARCH_SUFFIX = "__search"
CONFLICT_MESSAGE = (
    "Someone else saved this record while you were editing it. Your values are "
    "kept below, and each field where the saved value differs from yours says "
    "what it is now. Save again to keep your values, or cancel to keep theirs."
)


def _shown_fields(entity: EntityDef) -> dict[str, str] | None:
    """The fields the posted form showed: current name -> the name it had then.

    The form lists them by id (``_fields``), so a field renamed while the form was
    open is still found, and one added meanwhile is left alone. ``None`` when the
    form does not say (every placed field counts, under its current name).
    """
    listed = request.form.get("_fields")
    if listed is None:
        return None
    by_id = {spec.get("id"): name for name, spec in entity.fields.items()}
    shown: dict[str, str] = {}
    for pair in listed.split():
        field_id, _, posted_name = pair.partition(":")
        name = by_id.get(field_id)
        if name is not None and posted_name:
            shown[name] = posted_name
    return shown


def _posted(
    entity: EntityDef, shown: Mapping[str, str] | None = None
) -> tuple[dict[str, FormValue], dict[str, str]]:
    """What the form sent: each field's value, and the text typed in each lookup.

    :param shown: the name each field was posted under (see :func:`_shown_fields`).
    """
    form: MultiDict[str, str] = request.form
    values: dict[str, FormValue] = {}
    typed: dict[str, str] = {}
    for name, spec in entity.fields.items():
        posted = shown.get(name, name) if shown is not None else name
        if spec["type"] == "multi_picklist":
            values[name] = [item for item in form.getlist(posted) if item]
            continue
        # A checkbox posts a hidden "" first and "on" after it when ticked.
        found = form.getlist(posted)
        values[name] = found[-1] if found else ""
        if spec["type"] == "lookup" and posted + SEARCH_SUFFIX in form:
            typed[name] = form.get(posted + SEARCH_SUFFIX, "")
    return values, typed


def _posted_version() -> int | None:
    return whole_number(request.form.get("_version"), 0) or None


def _posted_defaults() -> dict[str, Any]:
    """What default rules filled in when the new form was shown (``_defaulted``):
    field name -> the value shown."""
    try:
        shown = json.loads(request.form.get("_defaulted") or "{}")
    except ValueError:
        return {}
    return shown if isinstance(shown, dict) else {}


def _update(
    session: Session,
    entity: EntityDef,
    record: Mapping[str, Any],
    data: Mapping[str, Any],
) -> dict[str, Any]:
    """Save an edit form's change to ``record``, as stored when the form was sent.

    The save expects the version the form was opened at, unless only values
    that the form never sends moved since: a roll-up or formula recomputed when
    a related record was saved gives the record a new version, but nobody
    changed what the person edits, so the save expects the version stored now
    (see :func:`_sent_digest`). While children are saved, that version may move
    again before the save locks the record: it is then read again, locked.

    :raises PreconditionFailed: someone changed what the form sends.
    """
    service = session.records()

    def attempt(expected: int | None) -> dict[str, Any]:
        with session.connection.begin_nested():
            return service.update(
                entity.name, record["id"], data, expected_version=expected
            )

    expected = _expected_version(session, entity, record)
    try:
        return attempt(expected)
    except PreconditionFailed:
        stored = service.get(entity.name, record["id"], lock=True)
        moved = _expected_version(session, entity, stored)
        if moved == expected:
            raise
    return attempt(moved)


def _expected_version(
    session: Session, entity: EntityDef, record: Mapping[str, Any]
) -> int | None:
    """The version stored in ``record`` when nothing the form sends changed since
    it was opened; else the version it was opened at."""
    posted = _posted_version()
    if posted is None or posted == record.get("version"):
        return posted
    if request.form.get("_sent") != _sent_digest(session, entity, record):
        return posted
    return int(record["version"])


def _sent_digest(session: Session, entity: EntityDef, record: Mapping[str, Any]) -> str:
    """A digest of the values of ``record`` that its edit form may send."""
    fixed = fixed_fields(session, entity)
    values = {
        name: value
        for name, value in record.items()
        if name in entity.fields and name not in fixed
    }
    text = json.dumps(values, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _username(session: Session, user_id: Any) -> str:
    if user_id is None:
        return ""
    found = session.connection.execute(
        sa.select(users.c.username).where(users.c.id == user_id)
    ).scalar()
    return str(found or "")


def _placed(session: Session, entity: EntityDef) -> list[str]:
    """Fields the form sends: only those are written when it is saved.

    Autonumbers and fields that a formula or roll-up computes are shown, never
    sent. A field that field state hides or locks is sent like any other: hiding
    a field keeps its value, and the record service refuses a change of a field
    that is read-only.
    """
    layout = session.catalog.layout(entity.name)
    computed = fixed_fields(session, entity)
    return [
        item["field"]
        for tab in layout["form"]["tabs"]
        for section in tab["sections"]
        for item in section["items"]
        if "field" in item
        and item["field"] in entity.fields
        and entity.fields[item["field"]]["type"] != "autonumber"
        and item["field"] not in computed
    ]


def _errors_of(
    error: TailorError, entity: EntityDef, entities: Mapping[str, EntityDef]
) -> dict[str, list[str]]:
    """The problems of a refused save by the field of the form they belong to;
    the record's own, and those of other records a rule or an automation saves
    (``activity.subject``, named by labels), under ``record``.

    :param entities: the entities the person sees, by name.
    """
    errors: dict[str, list[str]] = {}
    for problem in error.problems:
        field = problem.field or ""
        name = field.split(".")[0].split("[")[0]
        label = problem_label(entity, entities, field)
        other = "." in field and label != field
        key = name if name in entity.fields and not other else "record"
        message = problem.message
        if key == "record" and field and field != "record":
            message = f"{label}: {message}"
        errors.setdefault(key, []).append(message)
    if not errors:
        errors["record"] = [error.message]
    elif isinstance(error, AutomationFailed) and error.automation is not None:
        # The problems are those of any save of the record; the summary says
        # which automation made the change they refuse.
        errors.setdefault("record", []).insert(0, error.message)
    return errors


def _resolve_typed_lookups(
    session: Session,
    entity: EntityDef,
    values: dict[str, FormValue],
    typed: Mapping[str, str],
    data: dict[str, Any],
) -> dict[str, list[str]]:
    """Decide which record each lookup means from the text in its box.

    The text box is what the person sees, so it decides: blank clears the lookup;
    the name of the record picked from the list (whose id lookup.js sets) keeps
    it; any other text must be the exact display name of one record. That is
    also how the form works without scripts. A lookup posted without a text box
    (by a script) keeps its id.
    """
    errors: dict[str, list[str]] = {}
    for name, text in typed.items():
        spec = entity.fields[name]
        target = session.catalog.entities.get(spec["target"])
        if name not in data or target is None:
            continue
        text = text.strip()
        chosen = data[name]
        if not text:
            data[name] = None
            values[name] = ""
            continue
        if isinstance(chosen, int):
            # A record the person may not read is shown as "#id" (see
            # ``_lookup_text``); kept as it is, it passes; the record service
            # refuses it if it is new. The text box drops the line breaks of
            # a name that holds some.
            shown = names_of(session.connection, target, [chosen]).get(chosen)
            if one_line(shown or f"#{chosen}").strip().lower() == text.lower():
                continue
        found = records_named(session.connection, target, text)
        if len(found) == 1:
            data[name] = found[0]
            values[name] = str(found[0])
            continue
        # The text goes on to the record service, which refuses it, so the record
        # is not saved without the lookup the person meant to set.
        data[name] = text
        values[name] = ""
        if found:
            message = (
                f"More than one {target.label} is named “{text}”; choose one "
                "from the list."
            )
        else:
            message = (
                f"No {target.label} is named “{text}”; check the spelling, or "
                "choose one from the list."
            )
        errors[name] = [message]
    return errors


def _render_form(
    session: Session,
    entity: EntityDef,
    values: Mapping[str, FormValue],
    errors: Mapping[str, list[str]],
    *,
    record: Mapping[str, Any] | None,
    action: str,
    typed: Mapping[str, str] | None = None,
    defaulted: Mapping[str, FormValue] | None = None,
    status: int = 200,
) -> Response:
    """Render a create or edit form.

    :param defaulted: on a new form, the fields default rules filled in, with
        the values shown; the form carries them, so that its save leaves the
        ones nobody changed to the default rules (see :func:`_save`).
    """
    layout = session.catalog.layout(entity.name)
    ids = {
        name: int(value)
        for name, value in values.items()
        if entity.fields[name]["type"] == "lookup"
        and isinstance(value, str)
        and value.isascii()
        and value.isdigit()
        and len(value) < 19
    }
    names = display_names(session.connection, session.catalog, entity, [ids])
    rules = form_rules(
        session,
        entity,
        values,
        record=record,
        placed=_placed(session, entity),
        addressed=list(request.args) if record is None else (),
    )
    model = form_page(
        entity,
        layout,
        values,
        errors,
        names,
        LINKS,
        lambda target: _entity_label(session.catalog, target),
        record=record,
        typed=typed,
        locale=locale(),
        rules=rules,
    )
    return render(
        "form.html",
        title=model.title,
        session=session,
        current=entity.name,
        page=model,
        action=action,
        status=status,
        entity_plural=_plural(entity),
        sent=_sent_digest(session, entity, record) if record is not None else "",
        defaulted=json.dumps(defaulted, ensure_ascii=False) if defaulted else "",
        defaults_action=_defaults_action(entity) if defaulted else "",
        related_url=LINKS.related(entity.name),
    )


def _defaults_action(entity: EntityDef) -> str:
    """Where a new form asks for its defaults again (see :func:`new_defaults`),
    with the address the form was opened at, which may give fields values."""
    query = request.query_string.decode()
    return LINKS.new(entity.name) + "/defaults" + (f"?{query}" if query else "")


def _entity_label(catalog: Catalog, name: str) -> str:
    entity = catalog.entities.get(name)
    return entity.label if entity is not None else name


def _differences(
    session: Session,
    entity: EntityDef,
    stored: Mapping[str, Any],
    sent: Mapping[str, Any],
    *,
    locked: Collection[str] = (),
) -> dict[str, list[str]]:
    """For an edit that lost a race: each field whose saved value differs from the
    value sent, with a note saying what is saved now.

    :param locked: the fields that ``readonly_if`` locks on the saved record; the
        note says that they cannot be changed now.
    """
    notes: dict[str, list[str]] = {}
    names = display_names(session.connection, session.catalog, entity, [stored])
    for name, value in sent.items():
        spec = entity.fields[name]
        if _same(spec, stored.get(name), value):
            continue
        lookup_names = names.get(spec.get("target", ""), {})
        now = format_value(
            spec, stored.get(name), locale=locale(), lookup_names=lookup_names
        ).text
        saved = f"“{now}”" if now else "blank"
        if name in locked:
            notes[name] = [f"Saved meanwhile as {saved}, and it cannot be changed now."]
        else:
            notes[name] = [f"Saved meanwhile as {saved}; saving again replaces it."]
    return notes


def _same(spec: Mapping[str, Any], stored: Any, sent: Any) -> bool:
    if spec["type"] == "boolean":
        # A blank checkbox shows unticked and is sent as false (see
        # unchanged_fields).
        return bool(stored) == bool(sent)
    if stored in (None, "", []) or sent in (None, "", []):
        return stored in (None, "", []) and sent in (None, "", [])
    if spec["type"] in ("integer", "decimal", "currency", "percent"):
        try:
            return Decimal(str(stored)) == Decimal(str(sent))
        except (ArithmeticError, ValueError):
            return False
    if spec["type"] == "datetime":
        sent = as_shown(spec, str(sent).replace(" ", "T"))
        return str(stored).removesuffix("Z")[:19] == str(sent)[:19]
    if spec["type"] == "multi_picklist":
        return sorted(stored) == sorted(sent)
    return bool(stored == sent)


def _save(
    session: Session,
    entity: EntityDef,
    record: Mapping[str, Any] | None,
    action: str,
) -> Response:
    shown = _shown_fields(entity)
    values, typed = _posted(entity, shown)
    editable = [
        name for name in _placed(session, entity) if shown is None or name in shown
    ]
    data = read_form(entity, values, editable=editable)
    typed_errors = _resolve_typed_lookups(session, entity, values, typed, data)
    untouched: set[str] = set()
    if record is not None:
        # What the form shows and does not send (formulas, roll-ups, numbers,
        # fields the person may only read) comes back as stored, not blank.
        stored = form_values(entity, record)
        values.update({n: v for n, v in stored.items() if n not in editable})
        for name in unchanged_fields(session, entity, values, record) - set(
            typed_errors
        ):
            data.pop(name, None)
    else:
        data.update(_given_unplaced(session, entity, values))
        # A default nobody changed is filled in by its rule from the record as
        # saved: the form showed it before the fields it reads were filled in.
        untouched = untouched_defaults(session, entity, values, _posted_defaults())
        for name in untouched:
            data.pop(name, None)
    service = session.records()
    try:
        # A savepoint: a refused save leaves the transaction usable for the page
        # that shows the problems.
        with session.connection.begin_nested():
            if record is None:
                saved = service.create(entity.name, data)
            else:
                saved = _update(session, entity, record, data)
    except PreconditionFailed:
        if record is None:
            raise
        # The form comes back with the version saved now, so saving it again
        # is a deliberate choice to replace the other change.
        current = service.get(entity.name, record["id"])
        locked = locked_fields(session, entity, current)
        errors = _differences(session, entity, current, data, locked=locked)
        # A field that readonly_if locks now keeps what is saved: the form shows
        # that, as it shows a locked field, so that saving again can succeed.
        as_stored = form_values(entity, current)
        values = {
            n: as_stored[n] if n in locked or n not in editable else v
            for n, v in values.items()
        }
        typed = {n: text for n, text in typed.items() if n not in locked}
        for name, messages in typed_errors.items():
            errors[name] = [*messages, *errors.get(name, [])]
        errors["record"] = [CONFLICT_MESSAGE]
        return _render_form(
            session,
            entity,
            values,
            errors,
            record=current,
            action=action,
            typed=typed,
            status=409,
        )
    except (ValidationFailed, Conflict) as error:
        errors = _errors_of(error, entity, session.catalog.entities)
        errors.update(typed_errors)
        # The defaults nobody changed are shown as the save worked them out.
        defaulted = (
            prefill_defaults(session, entity, values, set(entity.fields) - untouched)
            if untouched
            else None
        )
        return _render_form(
            session,
            entity,
            values,
            errors,
            record=record,
            action=action,
            typed=typed,
            defaulted=defaulted,
            status=422,
        )
    flash(f"{entity.label} “{title_of(entity, saved)}” was saved.", "success")
    return redirect(LINKS.record(entity.name, int(saved["id"])), code=303)


def _prefilled(
    session: Session, entity: EntityDef
) -> tuple[dict[str, FormValue], dict[str, FormValue]]:
    """A new record's form: defaults, then values from the address, then what
    default rules fill in (returned apart as well, see :func:`_render_form`).

    A related list's New button links to ``?account=12``, so the new record
    starts out pointing at the record the list belongs to. A default rule's value
    is shown like a default of the entity document: the person sees it, and may
    change or clear it.
    """
    defaults = {
        name: value for name, value in entity.defaults if not isinstance(value, dict)
    }
    values = form_values(entity, defaults)
    given = set(defaults)
    for name, spec in entity.fields.items():
        if name not in request.args or spec["type"] == "autonumber":
            continue
        given.add(name)
        if spec["type"] == "multi_picklist":
            values[name] = [v for v in request.args.getlist(name) if v]
        else:
            values[name] = request.args.get(name, "")
    defaulted = prefill_defaults(session, entity, values, given)
    return values, defaulted


def _given_unplaced(
    session: Session, entity: EntityDef, values: dict[str, FormValue]
) -> dict[str, Any]:
    """What a new record's address gives the fields its form does not place.

    A related list's New button links to ``?account=12``; when the layout leaves
    the lookup out, the form cannot send it, and the record would be saved
    without the link to the record the list belongs to. A blank value gives
    nothing, so a default still applies. ``values`` takes them too, so that a
    refused save shows the form as it was.
    """
    placed = {*_placed(session, entity), *fixed_fields(session, entity)}
    given: dict[str, FormValue] = {
        name: (
            request.args.getlist(name)
            if spec["type"] == "multi_picklist"
            else request.args.get(name, "")
        )
        for name, spec in entity.fields.items()
        if name in request.args and name not in placed and spec["type"] != "autonumber"
    }
    values.update(given)
    return {
        name: value
        # Only the fields the address gives: read over every field, a checkbox
        # it does not name would read as unticked and undo the one ticked.
        for name, value in read_form(entity, given, editable=list(given)).items()
        if value is not None
    }


@web.route("/app/<entity_name>/new", methods=["GET", "POST"])
@login_required
def new_page(entity_name: str) -> Response:
    # The form goes back to its address, so that what the address gives reaches
    # the fields the layout leaves out (see _given_unplaced).
    query = request.query_string.decode()
    action = LINKS.new(entity_name) + (f"?{query}" if query else "")
    if request.method == "POST":
        with web_session(write=True) as session:
            entity = session.catalog.entity(entity_name)
            return _save(session, entity, None, action)
    with web_session() as session:
        entity = session.catalog.entity(entity_name)
        if not entity.allows("create"):
            raise Forbidden(f"You may not create {entity.label} records.")
        values, defaulted = _prefilled(session, entity)
        return _render_form(
            session,
            entity,
            values,
            {},
            record=None,
            action=action,
            defaulted=defaulted,
        )


@web.post("/app/<entity_name>/new/defaults")
@login_required
def new_defaults(entity_name: str) -> Response:
    """Answer what the default rules nobody changed on a posted new form fill in
    now, as ``{"field": "value as the form shows it"}``.

    ``forms.js`` asks after each change and shows the answer, so that a default
    that reads another field (``account.industry``) follows it until the person
    changes the default. The form's save works them out again in any case.
    """
    with web_session() as session:
        entity = session.catalog.entity(entity_name)
        if not entity.allows("create"):
            raise Forbidden(f"You may not create {entity.label} records.")
        values, _ = _posted(entity, _shown_fields(entity))
        _given_unplaced(session, entity, values)
        untouched = untouched_defaults(session, entity, values, _posted_defaults())
        filled = (
            prefill_defaults(session, entity, values, set(entity.fields) - untouched)
            if untouched
            else {}
        )
    body = json.dumps(filled, ensure_ascii=False).translate(HTML_SAFE)
    response = Response(body, mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response


@web.get("/app/<entity_name>/related")
@login_required
def related_record(entity_name: str) -> Response:
    """Answer the record a form's lookup ``field`` now points at (``id``), as the
    form's field state conditions read it, with its values tagged as the form's
    own context tags them.

    ``field_state.js`` asks when a condition reads a field of a record chosen in
    the lookup since the form was shown, so that, say, choosing a retail account
    shows the fields retail deals need before the save. A record the caller
    cannot read, or one there is not, is answered by its id alone, as is one no
    such condition reads a field of: the form then leaves it to the save. 404
    when ``field`` is not a lookup of the form or ``id`` no record id; 403 for
    a caller who may neither create nor edit records of the entity.
    """
    text = request.args.get("id", "")
    with web_session() as session:
        entity = session.catalog.entity(entity_name)
        if not (entity.allows("create") or entity.allows("edit")):
            raise Forbidden(f"You may not fill in {entity.label} forms.")
        found = (
            related_as_read(session, entity, request.args.get("field", ""), int(text))
            if text.isascii() and text.isdigit() and len(text) < 19
            else None
        )
    if found is None:
        raise NotFound("No such lookup or record id for this form.")
    body = json.dumps(browser_value(found), ensure_ascii=False).translate(HTML_SAFE)
    response = Response(body, mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response


@web.route("/app/<entity_name>/<int:record_id>/edit", methods=["GET", "POST"])
@login_required
def edit_page(entity_name: str, record_id: int) -> Response:
    action = LINKS.edit(entity_name, record_id)
    write = request.method == "POST"
    with web_session(write=write) as session:
        entity = session.catalog.entity(entity_name)
        record = session.records().get(entity_name, record_id)
        session.records().check(entity_name, record_id, "edit")
        if write:
            return _save(session, entity, record, action)
        values = form_values(entity, record)
        return _render_form(session, entity, values, {}, record=record, action=action)


# -- deleting ----------------------------------------------------------------------


def _dependents(
    session: Session, entity: EntityDef, record_id: int
) -> list[dict[str, Any]]:
    """What refers to a record, and what deleting it would do to each of them.

    It follows the record service's rules: a ``set_null`` lookup is cleared; a
    ``restrict`` lookup, or one of a removed field or entity (whose data is kept
    but cannot be seen), blocks the deletion.
    """
    found = []
    for other in session.catalog.entities.values():
        specs = [*other.fields.values(), *other.hidden_fields.values()]
        for spec in specs:
            if spec["type"] != "lookup" or spec["target"] != entity.name:
                continue
            column = other.table.c[spec["name"]]
            where = column == record_id
            if other.name == entity.name:
                # A record that refers to itself does not hold itself back.
                where = sa.and_(where, other.table.c.id != record_id)
            # Only what the caller may read is counted (see ``access_where``).
            count = session.connection.execute(
                sa.select(sa.func.count())
                .select_from(other.table)
                .where(where, *access_where(other))
            ).scalar_one()
            if count:
                found.append(_dependent(other, spec, record_id, int(count)))
    return found


def _dependent(
    other: EntityDef, spec: Mapping[str, Any], record_id: int, count: int
) -> dict[str, Any]:
    visible = spec["name"] in other.fields and not other.removed
    label = spec["label"]
    if not visible:
        return {
            "count": count,
            "label": other.label if count == 1 else _plural(other),
            "through": f"the removed field {label}",
            "blocks": True,
            "effect": "blocks the deletion; an administrator must restore or purge "
            "that field first.",
            "href": None,
        }
    blocks = spec.get("on_delete", "restrict") == "restrict"
    them = "it" if count == 1 else "them"
    each = "" if count == 1 else " on each"
    effect = (
        f"blocks the deletion; delete {them} or change {label}{each} first."
        if blocks
        else f"{label} will be cleared{each}."
    )
    return {
        "count": count,
        "label": other.label if count == 1 else _plural(other),
        "through": label,
        "blocks": blocks,
        "effect": effect,
        "href": LINKS.list(other.name) + "?" + urlencode({spec["name"]: record_id}),
    }


@web.route("/app/<entity_name>/<int:record_id>/delete", methods=["GET", "POST"])
@login_required
def delete_page(entity_name: str, record_id: int) -> Response:
    write = request.method == "POST"
    with web_session(write=write) as session:
        entity = session.catalog.entity(entity_name)
        record = session.records().get(entity_name, record_id)
        session.records().check(entity_name, record_id, "delete")
        title = title_of(entity, record)
        if write:
            try:
                with session.connection.begin_nested():
                    session.records().delete(
                        entity_name, record_id, expected_version=_posted_version()
                    )
            except (Conflict, PreconditionFailed, ValidationFailed) as error:
                flash(reasons(error), "error")
                return redirect(LINKS.delete(entity_name, record_id), code=303)
            flash(f"{entity.label} “{title}” was deleted.", "success")
            return redirect(LINKS.list(entity_name), code=303)
        dependents = _dependents(session, entity, record_id)
        # Records the caller may not read are not counted, but they hold the
        # delete back all the same (the refusal says so too).
        unseen = session.records().held_back_unseen(entity_name, record_id)
        blocked = any(item["blocks"] for item in dependents)
        how = (
            "Open each list marked as blocking, then delete those records or point "
            f"them at another {entity.label.lower()}; then come back here."
            if blocked
            else ""
        )
        if unseen:
            how += (
                " Records you cannot see refer to it as well; ask an administrator "
                "about them."
                if blocked
                else "Ask an administrator to go on."
            )
        return render(
            "delete.html",
            title=f"Delete {title}",
            session=session,
            current=entity.name,
            record_title=title,
            entity_label=entity.label,
            dependents=dependents,
            unseen=unseen,
            blocked=blocked or unseen,
            how_to_proceed=how,
            version=record["version"],
            action=LINKS.delete(entity_name, record_id),
            cancel_href=LINKS.record(entity_name, record_id),
        )
