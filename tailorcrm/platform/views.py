"""Saved views: a list layout plus a filter, kept for one user or shared.

A view is user data, not revisioned metadata: saving one writes a row of
``tc_view`` in the caller's transaction and leaves the catalog alone. Its
document is checked like metadata all the same (JSON Schema, then columns, sort
and filter against the entity), and refused whole with the path of each problem.

Who sees and changes what: everyone sees the shared views and their own; only
administrators create, change or delete shared views; a user changes and deletes
only their own. A view another user keeps to themselves is not found at all. A
view keeps the owner who created it, so a shared view an administrator makes
private again belongs to its creator.

Views follow their entity's changes. A metadata change that renames fields
renames them in the stored views, and one that removes fields drops them from
columns and sort, in the same transaction. A filter that reads a removed field is
cleared rather than half-applied, and the view carries a ``notice`` saying so
until it is saved again. Reading a view drops, in the same way, anything that is
no longer live, so a page never fails on a stale view.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ..errors import Forbidden, InvalidMetadata, NotFound, Problem
from ..metadata import (
    INTEGER_LIMIT,
    VIEW,
    Catalog,
    EntityDef,
    FieldChanges,
    check_list_settings,
    is_sortable,
    labels_compared,
    same_document,
    schema_problems,
)
from ..rules_engine import (
    ConditionError,
    check_condition,
    compile_sql,
    field_names,
    join_path,
    reads_context,
    rename_fields,
)
from .auth import User
from .db import saved_views, users, utcnow
from .query import SYSTEM_SPECS, ListQuery, parse_condition, parse_list_args

#: Keys a view is read with that a client may send back but never sets.
READ_ONLY_KEYS = frozenset(
    {"id", "owner_id", "owner", "notice", "editable", "created_at", "updated_at"}
)
# Checks need some user for conditions that read $user; only its shape matters.
_ANY_USER = {"id": 0, "username": "", "roles": []}

#: What a view's filter reads as to a user whose roles or details it does not
#: fit: a condition that selects no record.
NOTHING: dict[str, list[Any]] = {"or": []}


@dataclass(frozen=True)
class ViewUpdate:
    """A stored view rewritten after its entity changed."""

    id: int
    entity: str
    body: dict[str, Any]
    notice: str | None


def list_views(
    connection: sa.Connection,
    catalog: Catalog,
    user: User,
    entity: str | None = None,
) -> list[dict[str, Any]]:
    """Return the views ``user`` sees: shared ones and their own, by label.

    :param entity: only this entity's views; every live entity's when ``None``.
    :raises NotFound: ``entity`` is not a live entity.
    """
    query = _select().where(
        sa.or_(saved_views.c.shared, saved_views.c.owner_id == user.id)
    )
    if entity is not None:
        catalog.entity(entity)
        query = query.where(saved_views.c.entity == entity)
    live = {definition.name for definition in catalog.live()}
    rows = connection.execute(query.order_by(saved_views.c.label, saved_views.c.id))
    return [_view_json(row, catalog, user) for row in rows if row.entity in live]


def get_view(
    connection: sa.Connection, catalog: Catalog, user: User, view_id: int
) -> dict[str, Any]:
    """Return one view ``user`` sees.

    :raises NotFound: no such view, another user's own view, or its entity was
        removed.
    """
    return _view_json(_visible_row(connection, catalog, user, view_id), catalog, user)


def save_view(
    connection: sa.Connection,
    catalog: Catalog,
    user: User,
    document: Any,
    *,
    view_id: int | None = None,
) -> dict[str, Any]:
    """Create a view, or replace view ``view_id``, and return it as it reads now.

    Keys in :data:`READ_ONLY_KEYS` are ignored, so a view read can be sent back
    changed. ``columns``, ``sort`` and ``page_size`` left out are taken from the
    entity's list layout; ``shared`` defaults to false and ``filter`` to none.
    Saving clears the view's notice.

    :raises InvalidMetadata: the document fails its schema or a check.
    :raises Forbidden: a user who is not an administrator shares a view or
        changes a shared one.
    :raises NotFound: ``view_id`` is not a view ``user`` sees.
    """
    if isinstance(document, dict):
        document = {k: v for k, v in document.items() if k not in READ_ONLY_KEYS}
        document.setdefault("kind", VIEW)
    existing = None
    if view_id is not None:
        existing = _visible_row(connection, catalog, user, view_id)
        if not _may_change(existing, user):
            raise Forbidden("Only administrators may change shared views.")
    sharing = isinstance(document, dict) and document.get("shared") is True
    if sharing and not user.is_admin:
        raise Forbidden("Only administrators may share views.")
    # A filter sent back as stored was judged when it was saved: a view saved
    # before a check was added (a choice's label) may still be renamed.
    kept = (
        existing is not None
        and isinstance(document, dict)
        and same_document(document.get("filter"), existing.body.get("filter"))
    )
    problems = check_view_document(
        document, catalog, user=user.condition_data(), labels=not kept
    )
    entity = document.get("entity") if isinstance(document, dict) else None
    if existing is not None and entity != existing.entity:
        message = f"This view lists {existing.entity!r}; its entity cannot change."
        problems.append(Problem("entity", "immutable", message))
    if not problems:
        problems += _label_problems(connection, user, document, existing)
    if problems:
        raise InvalidMetadata(
            "The view was refused; nothing was saved.", problems=problems
        )
    body = _complete(document, catalog)
    if existing is not None:
        body["filter"] = _unseen_filter_kept(body["filter"], existing, catalog, user)
        _unseen_columns_kept(body, existing, catalog)
    values = {
        "entity": body["entity"],
        "label": body["label"],
        "shared": body["shared"],
        "body": body,
        "notice": None,
        "updated_at": utcnow(),
    }
    if existing is None:
        created = connection.execute(
            saved_views.insert()
            .values(owner_id=user.id, created_at=values["updated_at"], **values)
            .returning(saved_views.c.id)
        ).scalar_one()
        return get_view(connection, catalog, user, int(created))
    connection.execute(
        saved_views.update().where(saved_views.c.id == existing.id).values(values)
    )
    return get_view(connection, catalog, user, int(existing.id))


def _unseen_filter_kept(
    sent: Any, existing: sa.Row[Any], catalog: Catalog, user: User
) -> Any:
    """The filter to store when ``user`` sends back a view whose filter reads
    as :data:`NOTHING` to them (it reads a field their roles hide, or details
    they lack).

    They were never shown the stored filter, so a view read and sent back
    renamed, or a list that shows it saved with another sort or another filter
    beside it, carries :data:`NOTHING` where the filter was: the stored filter
    stays in its place, rather than be lost for good. A filter sent without it
    replaces the stored one.
    """
    stored = existing.body.get("filter")
    if stored is None or stored == NOTHING:
        return sent
    live, _ = _live_filter(stored, catalog.entity(existing.entity), user)
    if live != NOTHING:
        return sent
    if sent == NOTHING:
        return stored
    if _conjunction(sent) and NOTHING in sent["and"]:
        # The stored filter's own conditions stand beside those sent, not
        # nested around them: a view narrowed again and again would otherwise
        # nest deeper with each save, past what a filter may (and, no longer
        # read as showing nothing, lose the filter kept for good).
        unseen = stored["and"] if _conjunction(stored) else [stored]
        items: list[Any] = []
        for item in sent["and"]:
            items += unseen if item == NOTHING else [_in_place(item, stored)]
        kept = items[0] if len(items) == 1 else {"and": items}
    else:
        # Held deeper (``{"or": [{"or": []}, ...]}``, ``{"!": {"or": []}}``),
        # it stands for the stored filter there too.
        kept = _in_place(sent, stored)
        if kept == sent:
            return sent
    _check_limits(kept, catalog.entity(existing.entity))
    return kept


def _in_place(condition: Any, stored: Any) -> Any:
    """``condition`` with ``stored`` wherever it holds :data:`NOTHING`."""
    if condition == NOTHING:
        return stored
    if isinstance(condition, list):
        return [_in_place(item, stored) for item in condition]
    if isinstance(condition, dict):
        return {name: _in_place(value, stored) for name, value in condition.items()}
    return condition


def _conjunction(condition: Any) -> bool:
    return (
        isinstance(condition, dict)
        and list(condition) == ["and"]
        and isinstance(condition["and"], list)
        and bool(condition["and"])
    )


def _check_limits(condition: Any, entity: EntityDef) -> None:
    """Refuse a filter kept beside one sent that together are larger or nest
    deeper than a filter may."""
    found = check_condition(
        condition, fields=_field_types(entity), user_attributes=True
    )
    problems = [
        Problem(
            "filter",
            problem.code,
            "Beside the filter this view keeps, which you cannot see, the filter "
            f"sent is too much: {problem.message}",
        )
        for problem in found
        if problem.code in ("too_large", "too_deep")
    ]
    if problems:
        raise InvalidMetadata(
            "The view was refused; nothing was saved.", problems=problems
        )


def _label_problems(
    connection: sa.Connection,
    user: User,
    document: Mapping[str, Any],
    existing: sa.Row[Any] | None,
) -> list[Problem]:
    """What keeps a view's label from naming it in the list's view picker: it
    shows nothing (spaces or invisible characters only), or another view of the
    same group has it already, ignoring case and such characters. The picker
    groups shared views apart from each user's own."""
    label = str(document["label"])
    key = _label_key(label)
    if not key:
        message = "Give the view a name with letters or digits that show."
        return [Problem("label", "blank", message)]
    shared = document.get("shared") is True
    if (
        existing is not None
        and existing.label == label
        and bool(existing.shared) == shared
    ):
        # Views named alike before names were told apart keep working.
        return []
    group = (
        saved_views.c.shared
        if shared
        else sa.and_(~saved_views.c.shared, saved_views.c.owner_id == user.id)
    )
    query = sa.select(saved_views.c.id, saved_views.c.label).where(
        saved_views.c.entity == document["entity"], group
    )
    for row in connection.execute(query):
        if (existing is None or row.id != existing.id) and _label_key(row.label) == key:
            kind = "shared view" if shared else "of your views"
            message = f"Another {kind} of this list is named {row.label!r} already."
            return [Problem("label", "duplicate_label", message)]
    return []


def _label_key(label: str) -> str:
    """A label as views are told apart: without characters that do not show
    (spaces, format characters such as a zero-width space), case folded."""
    shown = "".join(
        char
        for char in label
        if not char.isspace() and unicodedata.category(char) not in ("Cf", "Cc")
    )
    return shown.casefold()


def delete_view(
    connection: sa.Connection, catalog: Catalog, user: User, view_id: int
) -> None:
    """Delete a view.

    :raises NotFound: it is not a view ``user`` sees.
    :raises Forbidden: it is shared and ``user`` is not an administrator.
    """
    row = _visible_row(connection, catalog, user, view_id)
    if not _may_change(row, user):
        raise Forbidden("Only administrators may delete shared views.")
    connection.execute(saved_views.delete().where(saved_views.c.id == view_id))


def view_query(catalog: Catalog, view: Mapping[str, Any], *, user: User) -> ListQuery:
    """Return the list query that shows ``view`` (as read) to ``user``.

    Run it with :func:`.query.run_list`; its ``limit`` is the view's page size.
    """
    entity = catalog.entity(view["entity"])
    data = user.condition_data()
    args = {"limit": [str(view["page_size"])]}
    if view["sort"]:
        args["sort"] = [",".join(view["sort"])]
    query = parse_list_args(entity, args, user=data)
    if view["filter"] is not None:
        query.condition = parse_condition(entity, json.dumps(view["filter"]), user=data)
    return query


def check_view_document(
    document: Any,
    catalog: Catalog,
    *,
    user: Mapping[str, Any] | None = None,
    labels: bool = True,
) -> list[Problem]:
    """Return every problem of a view document, each with its JSON path.

    :param user: what ``$user`` reads for the person who saves it (see
        :func:`filter_problems`).
    :param labels: whether a choice's label compared with a picklist in the
        filter is a problem (``choice_label``): not for the filter of a view
        sent back as stored.
    """
    problems = schema_problems(VIEW, document)
    if not isinstance(document, dict):
        return problems
    name = document.get("entity")
    entity = catalog.entities.get(name) if isinstance(name, str) else None
    if entity is None or entity.removed:
        if isinstance(name, str):
            message = f"There is no entity named {name!r}."
            problems.append(Problem("entity", "unknown_entity", message))
        return problems
    problems += check_list_settings(document, entity)
    condition = document.get("filter")
    if condition is not None and not any(
        problem.field == "filter" for problem in problems
    ):
        found = filter_problems(condition, entity, user=user)
        if any(problem.code == "invalid_text" for problem in found):
            problems = _text_outside(document, problems)
        if not found and labels:
            # As in a rule: such a view would show nothing (a stored one that
            # does is shown as it is).
            found = [
                Problem(
                    _filter_path(problem.field or ""), problem.code, problem.message
                )
                for problem in labels_compared(condition, entity, catalog.entities)
            ]
        problems += found
    return problems


def _text_outside(document: dict[str, Any], problems: list[Problem]) -> list[Problem]:
    """``problems`` without the document-wide one about broken text when only
    the filter holds it: the filter's own problem says so as list filters do."""
    rest = schema_problems(VIEW, {**document, "filter": None})
    if any(problem.code == "invalid_text" for problem in rest):
        return problems
    return [problem for problem in problems if problem.code != "invalid_text"]


def filter_problems(
    condition: Any, entity: EntityDef, *, user: Mapping[str, Any] | None = None
) -> list[Problem]:
    """Return what keeps ``condition`` from filtering a list of ``entity``.

    It runs the rules engine's static checks, then makes sure the condition has
    an SQL form, since a view's filter always runs in the database.

    :param user: what ``$user`` reads: the SQL form of a comparison with a
        user's attribute depends on its value (a date written as text orders a
        date field, a missing one orders nothing). Without it, a user with only
        an id, a username and no roles.
    """
    types = _field_types(entity)
    found = check_condition(condition, fields=types, user_attributes=True)
    if found:
        return [
            Problem(_filter_path(problem.path), problem.code, problem.message)
            for problem in found
        ]
    columns = {name: (entity.table.c[name], kind) for name, kind in types.items()}
    try:
        compile_sql(condition, columns, user=_ANY_USER if user is None else user)
    except ConditionError as error:
        return [Problem(_filter_path(error.path), error.code, error.message)]
    except (OverflowError, ValueError, RecursionError):
        message = "A value in the condition is out of range."
        return [Problem("filter", "out_of_range", message)]
    return []


# -- rewrites after entity changes -------------------------------------------------


def plan_view_rewrites(
    connection: sa.Connection, before: Catalog, changes: FieldChanges
) -> list[ViewUpdate]:
    """Return the stored views that ``changes`` rewrite, as they will be stored.

    :param before: the catalog before the change; it names the removed fields.
    """
    if not changes:
        return []
    rows = connection.execute(
        sa.select(saved_views)
        .where(saved_views.c.entity.in_(list(changes)))
        .order_by(saved_views.c.id)
    )
    updates = []
    for row in rows:
        body, notice = _rewrite(
            dict(row.body), changes[row.entity], before.entities[row.entity]
        )
        if body != row.body:
            updates.append(
                ViewUpdate(int(row.id), row.entity, body, notice or row.notice)
            )
    return updates


def write_view_rewrites(connection: sa.Connection, updates: list[ViewUpdate]) -> None:
    """Store the views :func:`plan_view_rewrites` returned."""
    now = utcnow()
    for update in updates:
        connection.execute(
            saved_views.update()
            .where(saved_views.c.id == update.id)
            .values(body=update.body, notice=update.notice, updated_at=now)
        )


def drop_views(connection: sa.Connection, entity: str) -> int:
    """Delete every view of ``entity`` (its table is gone); return how many."""
    result = connection.execute(
        saved_views.delete().where(saved_views.c.entity == entity)
    )
    return int(result.rowcount or 0)


def _rewrite(
    body: dict[str, Any], changes: Mapping[str, str | None], entity: EntityDef
) -> tuple[dict[str, Any], str | None]:
    for key in ("columns", "sort"):
        if key not in body:
            continue
        kept = []
        for item in body[key]:
            name = item.removeprefix("-")
            new = changes.get(name, name)
            if new is not None:
                kept.append(f"-{new}" if item.startswith("-") else new)
        body[key] = kept
        if not kept:
            # Left out, the entity's list layout fills it in when the view is read.
            del body[key]
    condition = body.get("filter")
    if condition is None:
        return body, None
    removed = sorted(
        name for name in field_names(condition) if changes.get(name, name) is None
    )
    if removed:
        body["filter"] = None
        labels = [entity.fields[name]["label"] for name in removed]
        return body, _cleared_notice(labels)
    renames = {old: new for old, new in changes.items() if new is not None}
    body["filter"] = rename_fields(condition, renames)
    return body, None


def _cleared_notice(labels: list[str]) -> str:
    quoted = [f'"{label}"' for label in labels]
    if len(quoted) == 1:
        return f"The filter was cleared because the field {quoted[0]} was removed."
    names = ", ".join(quoted[:-1]) + f" and {quoted[-1]}"
    return f"The filter was cleared because the fields {names} were removed."


# -- reading -----------------------------------------------------------------------


def _select() -> sa.Select[Any]:
    return sa.select(saved_views, users.c.username.label("owner")).join(
        users, users.c.id == saved_views.c.owner_id
    )


def _visible_row(
    connection: sa.Connection, catalog: Catalog, user: User, view_id: int
) -> sa.Row[Any]:
    # An id past the database's range names no view (and cannot be bound).
    in_range = 0 < view_id <= INTEGER_LIMIT
    statement = _select().where(saved_views.c.id == view_id)
    row = connection.execute(statement).first() if in_range else None
    entity = catalog.entities.get(row.entity) if row is not None else None
    if row is None or entity is None or entity.removed or not _visible(row, user):
        raise NotFound(f"There is no view with id {view_id}.")
    return row


def _visible(row: sa.Row[Any], user: User) -> bool:
    return bool(row.shared) or row.owner_id == user.id


def _may_change(row: sa.Row[Any], user: User) -> bool:
    if row.shared:
        return user.is_admin
    return bool(row.owner_id == user.id)


def _view_json(row: sa.Row[Any], catalog: Catalog, user: User) -> dict[str, Any]:
    entity = catalog.entity(row.entity)
    listing = catalog.layout(entity.name)["list"]
    body = row.body
    columns, sort = _seen_columns_and_sort(body, catalog)
    condition, notice = _live_filter(body.get("filter"), entity, user)
    return {
        "id": int(row.id),
        "kind": VIEW,
        "entity": entity.name,
        "label": body["label"],
        "shared": bool(row.shared),
        "columns": columns,
        "sort": sort,
        "page_size": body.get("page_size", listing["page_size"]),
        "filter": condition,
        "notice": row.notice or notice,
        "owner_id": int(row.owner_id),
        "owner": row.owner,
        "editable": _may_change(row, user),
        "created_at": row.created_at.isoformat() + "Z",
        "updated_at": row.updated_at.isoformat() + "Z",
    }


def _seen_columns_and_sort(
    body: Mapping[str, Any], catalog: Catalog
) -> tuple[list[str], list[str]]:
    """A stored view's columns and sort as they read to the person whose
    ``catalog`` this is: without fields removed or their roles hide."""
    entity = catalog.entity(body["entity"])
    listing = catalog.layout(entity.name)["list"]
    columns = [name for name in body.get("columns", ()) if name in entity.fields]
    stored_sort = body.get("sort")
    sort = [key for key in stored_sort or () if is_sortable(entity, key)]
    if stored_sort is None or (stored_sort and not sort):
        # Unsorted by choice stays so; a sort emptied by removals is not a choice.
        sort = listing["sort"]
    return columns or listing["columns"], sort


def _unseen_columns_kept(
    body: dict[str, Any], existing: sa.Row[Any], catalog: Catalog
) -> None:
    """Keep the stored columns and sort of a view sent back with them as they
    read (see :func:`_seen_columns_and_sort`): what they leave out (a field the
    owner's roles came to hide) stays for when it shows again, as the filter
    does (see :func:`_unseen_filter_kept`). Columns or a sort sent otherwise
    replace the stored ones."""
    stored = existing.body
    seen = _seen_columns_and_sort(stored, catalog)
    for key, read in zip(("columns", "sort"), seen, strict=True):
        if key in stored and body[key] == read:
            body[key] = stored[key]


def _live_filter(
    condition: Any, entity: EntityDef, user: User
) -> tuple[Any, str | None]:
    if condition is None:
        return None, None
    types = _field_types(entity)
    gone = sorted(name for name in field_names(condition) if name not in types)
    access = entity.access
    if access is not None and any(access.level(name) == "hidden" for name in gone):
        # The filter reads a field the caller's roles hide: it is not theirs to
        # see, nor to see without, so the view shows them nothing.
        return {"or": []}, (
            "This view filters on fields you cannot see, so it shows no records "
            "for you."
        )
    if gone:
        labels = [_removed_label(entity, name) for name in gone]
        return None, _cleared_notice(labels)
    if not filter_problems(condition, entity, user=user.condition_data()):
        return condition, None
    static = check_condition(condition, fields=types, user_attributes=True)
    if not static and reads_context(condition):
        # It fits the fields, and not this user's details (an attribute they do
        # not have, or of another type): as a sharing rule opens nothing to
        # them, the view shows them nothing rather than every record.
        return {"or": []}, (
            "This view filters on details of yours that are missing or do not "
            "fit, so it shows no records for you."
        )
    message = "The filter was cleared because it no longer fits the fields."
    return None, message


def _removed_label(entity: EntityDef, name: str) -> str:
    spec = entity.hidden_fields.get(name)
    return str(spec["label"]) if spec is not None else name


def _complete(document: dict[str, Any], catalog: Catalog) -> dict[str, Any]:
    listing = catalog.layout(document["entity"])["list"]
    return {
        "kind": VIEW,
        "entity": document["entity"],
        "label": document["label"],
        "shared": document.get("shared", False),
        "columns": document.get("columns", listing["columns"]),
        "sort": document.get("sort", listing["sort"]),
        "page_size": document.get("page_size", listing["page_size"]),
        "filter": document.get("filter"),
    }


def _field_types(entity: EntityDef) -> dict[str, str]:
    types = {name: spec["type"] for name, spec in entity.fields.items()}
    types.update({name: spec["type"] for name, spec in SYSTEM_SPECS.items()})
    return types


def _filter_path(path: str) -> str:
    return join_path("filter", path)
