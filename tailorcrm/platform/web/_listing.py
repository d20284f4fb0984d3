"""The list page of an entity: sort, search, filters, saved views, pages.

Everything a list shows is in its address, so a list can be bookmarked, shared and
reloaded, and every control works as a plain link or GET form without scripts.
Records are read through the query builder; a page costs the same number of SQL
statements whatever its number of rows (the lookups' names come in one statement
per target entity).

A page is placed by keyset cursors: ``cursor`` for the rows after a row,
``before`` for the rows before one, ``last`` for the end of the list, and
``start``, the position of the first row, only to number the rows shown.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple
from urllib.parse import urlencode

import sqlalchemy as sa
from babel import numbers as babel_numbers
from flask import flash, redirect, request, url_for
from flask_login import login_required
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from ...errors import BadRequest, NotFound
from ...metadata import EntityDef, ascii_digits
from ...renderer import (
    Chip,
    ColumnChoice,
    FilterBuilder,
    FilterField,
    ListPage,
    ViewBar,
    ViewChoice,
    filter_fields,
    filter_label,
    list_table,
)
from .._app import Session
from ..exporting import export_limit, left_out_of_export
from ..query import (
    SEARCH_TYPES,
    ListQuery,
    Page,
    display_names,
    names_of,
    parse_list_args,
    read_choice,
    records_named,
    run_list,
    run_list_before,
    search_condition,
    sort_applies,
)
from ..views import NOTHING, filter_problems, get_view, list_views
from ._blueprint import web
from ._context import LINKS, locale, render, web_session, whole_number
from ._filters import (
    PAGE_PARAMS,
    Pairs,
    builder_param,
    check_nesting,
    check_single,
    condition_of,
    field_filters,
    filters_of,
    param_label,
    parse_custom,
    spec_of,
    split_param,
    split_search,
)

#: Parameters that only place a page within a list.
POSITION_PARAMS = frozenset({"cursor", "before", "last", "start"})
_BUILDER = frozenset({"add_field", "add_op", "add_value", "add_text", "add_id"})
#: The longest condition a chip shows before it is cut.
_CHIP_TEXT = 80


def list_args(
    entity: EntityDef,
    layout: Mapping[str, Any],
    params: MultiDict[str, str] | None = None,
    *,
    page_size: int | None = None,
    sort: Sequence[str] | None = None,
) -> dict[str, list[str]]:
    """The query-builder parameters of a list page: its filters, sort and cursor.

    :param params: the page's parameters (default: the request's).
    :param page_size: rows per page (default: the layout's).
    :param sort: the sort when the page names none (default: the layout's).
    """
    params = request.args if params is None else params
    args = {
        key: params.getlist(key)
        for key in params
        if key not in PAGE_PARAMS and key not in ("limit", "count", "fields")
    }
    default = layout["list"].get("sort") if sort is None else sort
    args.setdefault("sort", [",".join(default or [])])
    if not args["sort"][0]:
        del args["sort"]
    args["limit"] = [str(page_size or layout["list"].get("page_size", 25))]
    args["count"] = ["true"]
    return args


def build_query(
    session: Session,
    entity: EntityDef,
    args: dict[str, list[str]],
    search: str | None = None,
) -> ListQuery:
    """Parse a list's parameters and add its quick search (default: ``q``).

    :raises BadRequest: a parameter is wrong, named as the API would name it.
    """
    for text in args.get("filter", ()):
        check_nesting(text)
    query = parse_list_args(entity, args, user=session.user.condition_data())
    text = request.args.get("q", "") if search is None else search
    found = search_condition(entity, text)
    if found is not None:
        query.condition = (
            found if query.condition is None else sa.and_(query.condition, found)
        )
    return query


def list_href(entity: str, pairs: Sequence[tuple[str, str]]) -> str:
    query = urlencode(list(pairs))
    return LINKS.list(entity) + (f"?{query}" if query else "")


def state_of(params: MultiDict[str, str]) -> Pairs:
    """A list's parameters without its position or a half-filled filter builder."""
    return [
        (key, value)
        for key, value in params.items(multi=True)
        if key not in POSITION_PARAMS and key not in _BUILDER
    ]


def view_pairs(entity: EntityDef, view: Mapping[str, Any]) -> Pairs:
    """The parameters of a list that shows ``view`` as saved.

    They are the view, its sort, its filters (one parameter each, else the whole
    condition as ``filter``) and its search (``q``).
    """
    pairs = [("view", str(view["id"])), ("sort", ",".join(view["sort"]))]
    condition = view["filter"]
    search = ""
    if isinstance(condition, dict) and list(condition) == ["and"]:
        search, rest = split_search(entity, condition["and"])
        if search:
            condition = {"and": rest} if rest else None
    found = [("q", search)] if search else []
    filters = filters_of(entity, condition)
    if filters is None:
        text = json.dumps(condition, separators=(",", ":"), ensure_ascii=False)
        return [*pairs, ("filter", text), *found]
    return pairs + filters + found


#: The filters whose value names a choice, read as the filter reads it.
_CHOICE_FILTERS = frozenset(
    {("picklist", "eq"), ("picklist", "ne"), ("picklist", "in")}
    | {("multi_picklist", "contains")}
)


def _as_labelled(entity: EntityDef, refused: BadRequest) -> str:
    """Why a list's address cannot be applied, its filters named by their
    fields' labels (``Amount: 'abc' is not a number.``) as the filter builder
    names them, not by the address's parameters (``amount__gte``)."""
    told = []
    for problem in refused.problems:
        # The owner is a field like the others.
        label = param_label(entity, problem.field or "")
        told.append(f"{label}: {problem.message}" if label else str(problem))
    return " ".join(told) if told else refused.message


@web.get("/app/<entity_name>")
@login_required
def list_page(entity_name: str) -> Response:
    params = request.args
    with web_session() as session:
        entity = session.catalog.entity(entity_name)
        if "add_field" in params:
            return _add_filter(session, entity, params)
        try:
            view = active_view(session, entity, params)
        except NotFound as error:
            flash(error.message, "error")
            return redirect(LINKS.list(entity_name), code=303)
        if set(params) == {"view"} and not params["view"]:
            return redirect(LINKS.list(entity_name), code=303)
        if view is not None and set(params) == {"view"}:
            # Opening a view spells out its sort and filters in the address, so
            # each shows as a chip and can be changed like any other.
            return redirect(list_href(entity_name, view_pairs(entity, view)), code=303)
        return render_list(session, entity, params, view=view)


def active_view(
    session: Session, entity: EntityDef, params: MultiDict[str, str]
) -> Mapping[str, Any] | None:
    """The saved view of ``entity`` that a list's parameters name, if any.

    :raises NotFound: it is not a view of this entity that this user sees (any
        more); the message says so and that the list shows all records.
    """
    raw = params.get("view", "")
    if not raw:
        return None
    missing = NotFound(
        f"That view does not exist for {plural(entity)}; the list shows all records."
    )
    if not ascii_digits(raw) or len(raw) > 18:
        raise missing
    try:
        view = get_view(session.connection, session.catalog, session.user, int(raw))
    except NotFound:
        raise missing from None
    if view["entity"] != entity.name:
        raise missing
    return view


def render_list(
    session: Session,
    entity: EntityDef,
    params: MultiDict[str, str],
    *,
    view: Mapping[str, Any] | None,
    builder: Mapping[str, Any] | None = None,
    save: Mapping[str, Any] | None = None,
    status: int = 200,
) -> Response:
    """Render a list page for ``params``.

    :param builder: the filter builder's field, operator, value and error, to show
        it again after a problem.
    :param save: the errors and values of a refused "Save as view".
    """
    layout = session.catalog.layout(entity.name)
    listing = view if view is not None else layout["list"]
    columns = list(listing["columns"])
    args = list_args(
        entity,
        layout,
        params,
        page_size=int(listing["page_size"]),
        sort=listing["sort"],
    )
    error = ""
    export_note = ""
    try:
        query = build_query(session, entity, args, params.get("q", ""))
        page = _run(session, entity, query, params)
        if entity.allows("export"):
            export_note = _export_note(session, entity, query, int(page.total or 0))
    except BadRequest as problem:
        error = _as_labelled(entity, problem)
        page = Page([], None, 0)
    names = display_names(
        session.connection, session.catalog, entity, page.records, columns
    )
    state = state_of(params)
    # A sort that cannot be applied (bookmarked before its field was removed,
    # say) is left out of the addresses that offer a way out, or each of them
    # would be refused again.
    kept = [
        (key, value)
        for key, value in state
        if key != "sort" or sort_applies(entity, value)
    ]
    sort = [key for key in (args.get("sort") or [""])[0].split(",") if key]
    total = int(page.total or 0)
    start = _start(params, page, total)
    pages = _pager(entity, params, page, start=start, size=int(args["limit"][0]))
    model = ListPage(
        entity=entity.name,
        entity_label=entity.label,
        label_plural=plural(entity),
        table=list_table(
            entity, columns, page.records, names, LINKS, sort=sort, locale=locale()
        ),
        total=total,
        total_text=str(babel_numbers.format_decimal(total, locale=locale())),
        first=start if page.records else 0,
        last=start + len(page.records) - 1,
        search=params.get("q", ""),
        searchable=any(spec["type"] in SEARCH_TYPES for spec in entity.fields.values()),
        sort_hrefs={
            name: list_href(entity.name, _with(state, "sort", _toggled(sort, name)))
            for name in columns
        },
        first_href=pages.first,
        previous_href=pages.previous,
        next_href=pages.next,
        last_href=pages.last,
        new_href=LINKS.new(entity.name) if entity.allows("create") else "",
        export_href=(
            LINKS.export(entity.name, _export_params(state))
            if entity.allows("export")
            else ""
        ),
        import_href=LINKS.import_page(entity.name) if entity.allows("import") else "",
        export_note=export_note,
        can_delete=entity.allows("delete"),
        active_filters=_chips(session, entity, kept),
        clear_href=_clear_href(entity, kept),
        filter_builder=_builder(session, entity, state, builder or {}),
        views=_view_bar(session, entity, state, view, listing, save or {}),
        state=urlencode(state),
        error=error,
        retry_href=(
            list_href(entity.name, kept) if _order_problem(error, params) else None
        ),
        notice=_notice(kept, view),
        notice_saved=view is None or view["filter"] != NOTHING,
    )
    return render(
        "list.html",
        title=model.label_plural,
        session=session,
        current=entity.name,
        page=model,
        status=400 if error and status == 200 else status,
    )


def _export_note(
    session: Session, entity: EntityDef, query: ListQuery, total: int
) -> str:
    """What an export of the list leaves out of the ``total`` rows it shows, and
    why, when it leaves out any."""
    left_out = left_out_of_export(session.connection, entity, query, total)
    if not left_out:
        return ""
    noun = (entity.label if total == 1 else plural(entity)).lower()
    return (
        f"Export CSV leaves out {left_out} of the {total} {noun} listed: "
        f"{export_limit(entity)}."
    )


def _order_problem(error: str, params: MultiDict[str, str]) -> bool:
    """Whether the list's problem is its sort or its place, not a filter.

    The query builder's refusals name their parameter first (``sort: ...``).
    """
    name = error.partition(":")[0]
    return bool(error) and name in params and name in ("sort", *POSITION_PARAMS)


def plural(entity: EntityDef) -> str:
    return str(entity.document.get("label_plural") or entity.label)


# -- pages -------------------------------------------------------------------------


def _run(
    session: Session, entity: EntityDef, query: ListQuery, params: MultiDict[str, str]
) -> Page:
    """Read the page the position parameters name (``cursor`` is in ``query``)."""
    if "last" in params:
        return run_list_before(session.connection, entity, query, None)
    before = params.get("before")
    if before is not None:
        return run_list_before(session.connection, entity, query, before)
    return run_list(session.connection, entity, query)


def _start(params: MultiDict[str, str], page: Page, total: int) -> int:
    """The position of the page's first row, to number the rows shown.

    The address carries it (``start``) from page to page; the last page and
    the first one are placed by the total and by having no row before them.
    """
    if "last" in params:
        return max(total - len(page.records), 0) + 1
    if "before" in params and page.previous_cursor is None:
        return 1
    return whole_number(params.get("start"), 1)


class _Pages(NamedTuple):
    """The addresses of the pages around a page (``None``: there is none)."""

    first: str | None = None
    previous: str | None = None
    next: str | None = None
    last: str | None = None


def _pager(
    entity: EntityDef,
    params: MultiDict[str, str],
    page: Page,
    *,
    start: int,
    size: int,
) -> _Pages:
    state = state_of(params)
    following = {}
    if page.next_cursor:
        count = len(page.records)
        after = [("cursor", page.next_cursor), ("start", str(start + count))]
        following = {
            "next": list_href(entity.name, [*state, *after]),
            "last": list_href(entity.name, [*state, ("last", "1")]),
        }
    first = list_href(entity.name, state)
    if page.previous_cursor is None:
        # A page past the end (its rows were deleted since) still leads back.
        lost = not page.records and any(key in POSITION_PARAMS for key in params)
        return _Pages(first if lost else None, **following)
    if start - size <= 1:
        # The page before is the first one: go there rather than show the few
        # rows before this page (after "Last page", say) on a page of their own.
        return _Pages(first, first, **following)
    before = [("before", page.previous_cursor), ("start", str(start - size))]
    return _Pages(first, list_href(entity.name, [*state, *before]), **following)


def _with(pairs: Pairs, key: str, value: str) -> Pairs:
    return [(k, v) for k, v in pairs if k != key] + [(key, value)]


def _toggled(sort: list[str], name: str) -> str:
    return f"-{name}" if sort[:1] == [name] else name


def _export_params(state: Pairs) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for key, value in state:
        if key != "view":
            found.setdefault(key, []).append(value)
    return found


def _clear_href(entity: EntityDef, state: Pairs) -> str | None:
    kept = [(k, v) for k, v in state if k in ("view", "sort")]
    return list_href(entity.name, kept) if len(kept) != len(state) else None


# -- chips -------------------------------------------------------------------------


def _chips(session: Session, entity: EntityDef, state: Pairs) -> list[Chip]:
    names = _chip_names(session, entity, state)
    chips = []
    for index, (key, value) in enumerate(state):
        without = state[:index] + state[index + 1 :]
        href = list_href(entity.name, without)
        if key == "q":
            if value.strip():
                chips.append(Chip(f"Search: “{value.strip()}”", href))
            continue
        if key == "filter":
            if _reads_nothing(value):
                # What a view's filter that the caller's roles or details do
                # not fit reads as (its notice says why): words, not JSON.
                chips.append(Chip("Condition: matches no records", href))
                continue
            shown = value if len(value) <= _CHIP_TEXT else value[:_CHIP_TEXT] + "…"
            chips.append(Chip(f"Condition: {shown}", href))
            continue
        if key in PAGE_PARAMS or key in ("sort", "limit", "count", "fields"):
            continue
        name, op = split_param(key)
        spec = spec_of(entity, name)
        if spec is None:
            chips.append(Chip(f"{key} = {value}", href))
            continue
        if (spec["type"], op) in _CHOICE_FILTERS:
            # The choice the filter selects, as a view saved from it names it:
            # tier=A may be the choice whose value is "a" and label "B". Only
            # "in" lists choices; one choice may hold a comma (kit=Hardware,Software).
            parts = value.split(",") if op == "in" else [value]
            value = ",".join(read_choice(spec, part) for part in parts)
        lookup_names = names.get(spec.get("target", ""), {})
        text = filter_label(spec, op, value, lookup_names=lookup_names, locale=locale())
        chips.append(Chip(text, href))
    return chips


def _chip_names(
    session: Session, entity: EntityDef, state: Pairs
) -> dict[str, dict[int, str]]:
    """Names of the records that lookup filters name, one statement per target."""
    wanted: dict[str, set[int]] = {}
    for key, value in field_filters(MultiDict(state)):
        name, _ = split_param(key)
        spec = entity.fields.get(name)
        if spec is None or spec["type"] != "lookup":
            continue
        # An id has at most 19 digits; past 4,300, int would refuse to read it.
        ids = {
            int(part)
            for part in value.split(",")
            if ascii_digits(part.strip()) and len(part.strip()) < 20
        }
        wanted.setdefault(spec["target"], set()).update(i for i in ids if i < 2**63)
    found: dict[str, dict[int, str]] = {}
    for target_name, ids in wanted.items():
        target = session.catalog.entities.get(target_name)
        if target is not None and not target.removed and ids:
            found[target_name] = names_of(session.connection, target, ids)
    return found


# -- the filter builder ------------------------------------------------------------


def _fields(session: Session, entity: EntityDef) -> list[FilterField]:
    def target_label(name: str) -> str:
        target = session.catalog.entities.get(name)
        return target.label if target is not None else name

    return filter_fields(entity, lookup_href=LINKS.lookup, target_label=target_label)


def _builder(
    session: Session, entity: EntityDef, state: Pairs, sent: Mapping[str, Any]
) -> FilterBuilder:
    fields: list[FilterField] = sent.get("fields") or _fields(session, entity)
    chosen = next((f for f in fields if f.name == sent.get("field")), None)
    return FilterBuilder(
        action=LINKS.list(entity.name),
        fields=fields,
        hidden=state,
        field=chosen,
        op=str(sent.get("op", "")),
        value=str(sent.get("value", "")),
        error=str(sent.get("error", "")),
        error_at=str(sent.get("error_at", "")),
    )


def _add_filter(
    session: Session, entity: EntityDef, params: MultiDict[str, str]
) -> Response:
    """Add the filter the builder sent, then show the list with it (303).

    Without scripts the builder may arrive with only a field chosen: the page
    comes back with that field's operators and value input.
    """
    state = state_of(params)
    fields = _fields(session, entity)
    name = params.get("add_field", "")
    code = params.get("add_op", "")
    values = params.getlist("add_value")
    sent: dict[str, Any] = {"fields": fields, "field": name, "op": code}
    sent["value"] = ",".join(values)
    chosen = next((f for f in fields if f.name == name), None)
    if chosen is not None and chosen.input == "lookup":
        # A lookup's box sends the name typed as add_text: a refused filter
        # shows it again to be mended.
        sent["value"] = params.get("add_text") or sent["value"]
    try:
        if chosen is None:
            raise BadRequest("Choose a field to filter by.")
        if not code:
            return _again(session, entity, state, sent, status=200)
        if chosen.type == "lookup" and code in ("eq", "ne"):
            values = [str(_lookup_id(session, entity, chosen, params))]
        param, raw = builder_param(entity, name, code, values)
    except BadRequest as error:
        sent["error"] = error.message
        sent["error_at"] = _error_at(chosen, code)
        return _again(session, entity, state, sent, status=422)
    return redirect(list_href(entity.name, [*state, (param, raw)]), code=303)


def _error_at(chosen: FilterField | None, code: str) -> str:
    """The builder's control a refusal is about: the field when none was
    chosen, the condition when the field offers no such one, else the value."""
    if chosen is None:
        return "field"
    if code not in {op for op, _ in chosen.operators}:
        return "op"
    return "value"


def _again(
    session: Session,
    entity: EntityDef,
    state: Pairs,
    sent: dict[str, Any],
    *,
    status: int,
) -> Response:
    params = MultiDict(state)
    try:
        view = active_view(session, entity, params)
    except NotFound:
        view = None
    return render_list(session, entity, params, view=view, builder=sent, status=status)


def _lookup_id(
    session: Session,
    entity: EntityDef,
    chosen: FilterField,
    params: MultiDict[str, str],
) -> int:
    """The record a lookup filter names: the one picked, else the name typed.

    :raises BadRequest: no record, or several, go by the name typed.
    """
    picked = params.get("add_id", "").strip()
    if ascii_digits(picked) and len(picked) < 19:
        return int(picked)
    typed = (params.get("add_text") or params.get("add_value") or "").strip()
    if not typed:
        # No article: "a Account" and "a Opportunity" read badly, and which of
        # "a" and "an" fits a label depends on how it sounds.
        raise BadRequest(
            f"Enter the name of the {chosen.target_label} record to filter by."
        )
    # An entity the caller may not read is not in their catalog: none of its
    # records goes by a name they can see.
    target = session.catalog.entities.get(entity.fields[chosen.name]["target"])
    found: list[int] = []
    if target is not None and not target.removed:
        found = records_named(session.connection, target, typed)
        number = typed.removeprefix("#")
        if not found and ascii_digits(number) and len(number) < 19:
            # No record goes by that name: the text may be a record's number.
            found = list(names_of(session.connection, target, [int(number)]))
    if len(found) == 1:
        return int(found[0])
    if found:
        raise BadRequest(
            f"More than one {chosen.target_label} is named “{typed}”; choose one "
            "from the list."
        )
    raise BadRequest(
        f"No {chosen.target_label} is named “{typed}”; check the spelling, or "
        "choose one from the list."
    )


# -- saved views -------------------------------------------------------------------


def _view_bar(
    session: Session,
    entity: EntityDef,
    state: Pairs,
    view: Mapping[str, Any] | None,
    listing: Mapping[str, Any],
    save: Mapping[str, Any],
) -> ViewBar:
    views = list_views(session.connection, session.catalog, session.user, entity.name)
    selected = int(view["id"]) if view is not None else None
    choices = [
        ViewChoice(
            id=int(item["id"]),
            label=str(item["label"]),
            shared=bool(item["shared"]),
            owner=str(item["owner"]),
            selected=item["id"] == selected,
        )
        for item in views
    ]
    editable = view is not None and bool(view["editable"])
    shown = list(save.get("columns") or listing["columns"])
    return ViewBar(
        choices=choices,
        current=view,
        changed=view is not None and _changed(entity, state, view),
        may_share=session.user.is_admin,
        manage_href=(
            url_for("web.view_page", entity_name=entity.name, view_id=selected)
            if editable
            else None
        ),
        update_action=(
            url_for("web.update_view", entity_name=entity.name, view_id=selected)
            if editable
            else None
        ),
        save_action=url_for("web.save_view_route", entity_name=entity.name),
        columns=column_choices(entity, shown),
        page_size=_page_size(save.get("page_size"), int(listing["page_size"])),
        errors=list(save.get("errors") or []),
        label=str(save.get("label", "")),
        shared=bool(save.get("shared", False)),
        condition=_condition_text(session, entity, state),
    )


def _page_size(sent: Any, default: int) -> int:
    """The page size a refused form sent, to choose it again; else ``default``."""
    return sent if isinstance(sent, int) and not isinstance(sent, bool) else default


def _condition_text(session: Session, entity: EntityDef, state: Pairs) -> str:
    """The condition "Save as view" would keep; empty when the views service
    would refuse it, as the list's own error then says why."""
    params = MultiDict(state)
    try:
        check_single(params)
        custom = parse_custom(params.get("filter"))
        search = params.get("q", "")
        condition = condition_of(entity, field_filters(params), custom, search)
    except BadRequest:
        return ""
    data = session.user.condition_data()
    if condition is None or filter_problems(condition, entity, user=data):
        return ""
    return json.dumps(condition, ensure_ascii=False)


def column_choices(entity: EntityDef, shown: Sequence[str]) -> list[ColumnChoice]:
    """Every field as a column to tick: those shown first, in their order."""
    order = [name for name in shown if name in entity.fields]
    order += [name for name in entity.fields if name not in order]
    return [
        ColumnChoice(
            name=name,
            label=str(entity.fields[name].get("label", name)),
            checked=name in shown,
        )
        for name in order
    ]


def _changed(entity: EntityDef, state: Pairs, view: Mapping[str, Any]) -> bool:
    def comparable(pairs: Pairs) -> list[tuple[str, str]]:
        found = []
        for key, value in pairs:
            if key == "q":
                # The search is saved as its words, in lower case.
                value = " ".join(value.lower().split())
                if not value:
                    continue
            if key != "view":
                found.append((key, value))
        return sorted(found)

    return comparable(state) != comparable(view_pairs(entity, view))


def _notice(state: Pairs, view: Mapping[str, Any] | None) -> str:
    """The notice of the view in use, while it holds for the list shown.

    A view whose filter the caller's roles or details do not fit reads as
    ``{"or": []}`` to them, which the list carries as its ``filter``, and its
    notice says that it shows them nothing. Once they remove that chip, the
    list shows records under the view's name, and the notice would contradict
    it.
    """
    if view is None:
        return ""
    notice = str(view.get("notice") or "")
    if view["filter"] == NOTHING and not any(
        key == "filter" and _reads_nothing(value) for key, value in state
    ):
        return ""
    return notice


def _reads_nothing(text: str) -> bool:
    try:
        return bool(json.loads(text) == NOTHING)
    except (ValueError, RecursionError):
        return False
