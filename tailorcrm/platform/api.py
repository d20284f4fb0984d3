"""REST API v1: records of every entity, entity and layout metadata, saved views.

Every endpoint needs ``Authorization: Bearer <token>`` with the scope the request
needs: ``read`` to read, ``write`` to change records and saved views, ``admin``
for what only administrators may do. Errors are RFC 9457 problem
documents (``application/problem+json``) with an ``errors`` list of
``{field, code, message}``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, g, jsonify, request, url_for
from werkzeug.exceptions import HTTPException

from ..errors import (
    BadRequest,
    Forbidden,
    InvalidMetadata,
    NotFound,
    PreconditionFailed,
    Problem,
    TailorError,
    TooManyRequests,
    Unauthorized,
)
from ..metadata import LAYOUT, Catalog, entity_schema, layout_schema, view_schema
from ._app import Session, platform
from .auth import User
from .db import RETRY_AFTER, held_back
from .layoutstore import stored_layouts
from .metastore import ChangeResult
from .query import parse_list_args, run_list, single
from .revisions import ANY_REVISION
from .strictjson import JSONRefused, read_json
from .views import delete_view, get_view, list_views, save_view

log = logging.getLogger(__name__)

api = Blueprint("api", __name__, url_prefix="/api/v1")
PROBLEM_TYPE = "urn:tailorcrm:problem:"
_ETAG = re.compile(r'^(W/)?"?([0-9]+)"?$')


# -- errors ----------------------------------------------------------------------


def problem_response(
    status: int,
    title: str,
    detail: str,
    *,
    code: str,
    errors: Sequence[Any] = (),
) -> Response:
    body = {
        "type": PROBLEM_TYPE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "errors": list(errors),
    }
    response = jsonify(body)
    response.status_code = status
    response.mimetype = "application/problem+json"
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="tailorcrm"'
    return response


@api.errorhandler(TailorError)
def _tailor_error(error: TailorError) -> Response:
    response = problem_response(
        error.status,
        error.title,
        error.message,
        code=error.code,
        errors=[problem.as_dict() for problem in error.problems],
    )
    if isinstance(error, TooManyRequests):
        response.headers["Retry-After"] = str(error.retry_after)
    return response


@api.errorhandler(HTTPException)
def http_problem(error: HTTPException) -> Response:
    status = error.code or 500
    code = (error.name or "error").lower().replace(" ", "_")
    response = problem_response(
        status, error.name or "Error", error.description or "", code=code
    )
    # Keep what the error says in its headers (Allow on a 405, Retry-After...).
    for name, value in error.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


@api.errorhandler(sa.exc.DataError)
def _data_error(error: sa.exc.DataError) -> Response:
    # A value got past validation but not past the database (a number out of the
    # column's range, say): the request is at fault, not the server.
    log.warning("database refused a value on %s %s", request.method, request.path)
    return problem_response(
        400,
        "Bad request",
        "A value, or a number computed from one, is out of the database's range.",
        code="bad_value",
    )


@api.errorhandler(sa.exc.OperationalError)
def _busy(error: sa.exc.OperationalError) -> Response:
    reason = held_back(error)
    if reason == "busy":
        # SQLite has one writer at a time; this write waited its whole turn in vain.
        log.warning("database busy on %s %s", request.method, request.path)
        detail = "The database is busy with another change; try again in a moment."
        response = problem_response(503, "Busy", detail, code="busy")
        response.headers["Retry-After"] = str(RETRY_AFTER[reason])
    elif reason == "retry":
        log.warning(
            "change undone after meeting another (%s) on %s %s",
            getattr(error.orig, "sqlstate", ""),
            request.method,
            request.path,
        )
        detail = (
            "This change met another one made at the same moment and was undone; "
            "nothing was saved. Try again."
        )
        response = problem_response(
            503, "Changed at the same moment", detail, code="retry"
        )
        response.headers["Retry-After"] = str(RETRY_AFTER[reason])
    else:
        return _unexpected(error)
    return response


@api.errorhandler(Exception)
def _unexpected(error: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.path)
    return problem_response(
        500, "Internal error", "Something went wrong on our side.", code="internal"
    )


# -- authentication ----------------------------------------------------------------


@api.before_request
def _refuse_nul() -> None:
    # PostgreSQL cannot compare text holding NUL; no name or field may hold it
    # anyway. Refused here, every database answers alike.
    if "\x00" in request.path:
        raise BadRequest("The address holds a NUL character; remove it.")
    for key, value in request.args.items(multi=True):
        if "\x00" in key or "\x00" in value:
            name = key.replace("\x00", "")
            raise BadRequest.parameter(name, "remove the NUL character.")


@api.before_request
def _read_token() -> None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Send an API token as 'Authorization: Bearer <token>'.")
    g.token = token.strip()


_View = Callable[..., Response]


def dry_runs(view: _View) -> _View:
    """Mark an endpoint that honours ``?dry_run=1``; any other write refuses it."""
    view.dry_runs = True  # type: ignore[attr-defined]
    return takes("dry_run")(view)


def checks_if_match(view: _View) -> _View:
    """Mark an endpoint that honours ``If-Match``; any other write refuses it."""
    view.checks_if_match = True  # type: ignore[attr-defined]
    return view


def takes(*names: str) -> Callable[[_View], _View]:
    """Mark the query parameters a write endpoint reads; it refuses any other."""

    def mark(view: _View) -> _View:
        known: frozenset[str] = getattr(view, "query_parameters", frozenset())
        view.query_parameters = known | frozenset(names)  # type: ignore[attr-defined]
        return view

    return mark


@api.before_request
def _refuse_unknown_write_parameters() -> None:
    # A parameter a write does not read is refused rather than ignored: a dry run
    # that an endpoint does not know, or a misspelt one (``?dryrun=1``), would
    # make the change it was meant only to check.
    if request.method in ("GET", "HEAD", "OPTIONS") or not request.args:
        return
    view = current_app.view_functions.get(request.endpoint or "")
    if "dry_run" in request.args and not getattr(view, "dry_runs", False):
        raise BadRequest.parameter(
            "dry_run",
            f"{request.method} {request.path} has no dry run; "
            "send it without dry_run to make the change.",
        )
    known: frozenset[str] = getattr(view, "query_parameters", frozenset())
    refuse_unknown_parameters(known, outcome=" Nothing was changed.")


def single_parameter(name: str) -> str | None:
    """The request's query parameter ``name``, given at most once (see
    :func:`.query.single`)."""
    return single({name: request.args.getlist(name)}, name)


def refuse_unknown_parameters(known: frozenset[str], *, outcome: str = "") -> None:
    """Refuse the request if it has a query parameter not in ``known``.

    :param outcome: a sentence that the detail ends with, such as what the
        refusal left unchanged.
    :raises BadRequest: naming each unknown parameter (``unknown_parameter``)
        and the parameters the endpoint takes.
    """
    unknown = [name for name in dict.fromkeys(request.args) if name not in known]
    if unknown:
        takes_text = (
            f"it takes {', '.join(sorted(known))}" if known else "it takes none"
        )
        message = (
            f"{request.method} {request.path} has no such parameter; {takes_text}."
        )
        raise BadRequest(
            f"{unknown[0]}: {message}{outcome}",
            problems=[Problem(name, "unknown_parameter", message) for name in unknown],
        )


@api.before_request
def _refuse_unchecked_if_match() -> None:
    # A write that keeps no versions cannot test If-Match; going on regardless
    # would overwrite the change the client meant to guard against.
    if (
        request.method in ("GET", "HEAD", "OPTIONS")
        or "If-Match" not in request.headers
    ):
        return
    view = current_app.view_functions.get(request.endpoint or "")
    if view is None or getattr(view, "checks_if_match", False):
        return
    message = (
        f"{request.method} {request.path} keeps no versions to compare; "
        "send it without If-Match."
    )
    raise BadRequest(
        f"If-Match: {message}", problems=[Problem("If-Match", "not_supported", message)]
    )


@contextmanager
def _session(
    *, write: bool = False, scope: str | tuple[str, ...] | None = None
) -> Iterator[Session]:
    """Authenticate the request and give its one transaction.

    :param scope: the token scope needed; ``write`` for a write transaction and
        ``read`` otherwise, unless told.
    """
    with platform().session(g.token, write=write, scope=scope) as session:
        yield session


def _admin(action: str = "change metadata") -> User:
    """The calling admin, whose token must have the ``admin`` scope."""
    with _session(scope="admin") as session:
        if not session.user.is_admin:
            raise Forbidden(f"Only administrators may {action}.")
        return session.user


def _json_body(*, exact_numbers: bool = True) -> Any:
    """Return the request's JSON body.

    Record values read numbers with a fraction as ``Decimal`` (money stays exact);
    metadata documents read them as floats, since they are stored as JSON.
    """
    if not request.is_json:
        raise BadRequest("Send the body as JSON with 'Content-Type: application/json'.")
    data = request.get_data(cache=False)
    try:
        return read_json(data, exact_numbers=exact_numbers)
    except JSONRefused as error:
        if error.too_deep:
            raise BadRequest("The body is nested too deeply.") from None
        # A number JSON cannot hold and a name given twice are named by their JSON
        # paths; text that does not parse, by its line and column, which the
        # detail gives.
        found = [
            problem
            for problem in error.problems
            if problem.code in ("not_finite", "duplicate_key")
        ]
        raise BadRequest(
            f"The body is not valid JSON: {error}", problems=found
        ) from None


def _flag(name: str) -> bool:
    """A yes-or-no query parameter such as ``?dry_run=1``; absent is no.

    A value that is neither yes nor no is refused, and so is the name alone
    (``?dry_run``): guessing "no" would apply the change that ``dry_run=on`` or
    ``?dry_run`` meant only to check. So is the name given twice with values
    that disagree.
    """
    if name not in request.args:
        return False
    answers = set()
    for text in request.args.getlist(name):
        if text.lower() in ("1", "true", "yes"):
            answers.add(True)
        elif text.lower() in ("0", "false", "no"):
            answers.add(False)
        else:
            raise BadRequest.parameter(name, "use true or false.")
    if len(answers) > 1:
        # The first would win, and ``dry_run=0&dry_run=1`` would apply the change
        # that the second asked only to check.
        raise BadRequest.parameter(name, "give it once, true or false.")
    return answers.pop()


def _bypass() -> bool:
    """``?bypass_automation=true``: save without automations (admins only).

    A value that is neither yes nor no is refused: guessing "no" would run the
    automations a data load meant to skip.
    """
    return _flag("bypass_automation")


def _expected_version(what: str = "record's version") -> int | None:
    """Read ``If-Match``; RFC 9110 compares entity tags strongly there.

    :param what: what the tag stands for, as messages name it.
    """
    header = request.headers.get("If-Match")
    if header is None or header.strip() == "*":
        return None
    tags = [tag.strip() for tag in header.split(",") if tag.strip()]
    if len(tags) != 1:
        raise _bad_if_match(f'give one tag, the {what}, e.g. If-Match: "3".')
    match = _ETAG.match(tags[0])
    if match is None:
        raise _bad_if_match(f'give the {what}, e.g. If-Match: "3".')
    if match.group(1):
        raise PreconditionFailed(
            f'If-Match needs the strong entity tag of the {what}, e.g. "3", not a '
            "weak one."
        )
    digits = match.group(2)
    if len(digits) > 18:
        # Well formed, but longer than any version or revision gets.
        raise PreconditionFailed(f'If-Match "{digits}" is no entity tag of the {what}.')
    if digits != str(int(digits)):
        # Tags compare as text: "03" is no tag this service gives.
        raise PreconditionFailed(
            f'If-Match "{digits}" is no entity tag of the {what}: tags are '
            'written without leading zeros, e.g. "3".'
        )
    return int(digits)


def _bad_if_match(message: str) -> BadRequest:
    return BadRequest(
        f"If-Match: {message}",
        problems=[Problem("If-Match", "invalid_header", message)],
    )


def _expected_revision() -> int | None:
    """Read a metadata document's ``If-Match``: its revision, or
    :data:`ANY_REVISION` for ``*`` (any stored document, never a new one)."""
    header = request.headers.get("If-Match")
    if header is not None and header.strip() == "*":
        return ANY_REVISION
    return _expected_version("document's revision")


def _with_etag(response: Response, record: dict[str, Any]) -> Response:
    response.headers["ETag"] = f'"{record["version"]}"'
    return response


# -- metadata ----------------------------------------------------------------------


@api.get("/meta/schemas/entity")
def entity_json_schema() -> Response:
    with _session():
        return jsonify(entity_schema())


@api.get("/meta/entities")
def list_entities() -> Response:
    with _session() as session:
        documents = [entity.document for entity in session.catalog.live()]
        return jsonify({"revision": session.catalog.revision, "data": documents})


def document_response(
    document: Any, *, revision: int, catalog_revision: int
) -> Response:
    """A metadata document with its ETag (the revision that stored it) and the
    catalog's current revision."""
    response = jsonify(document)
    response.headers["X-Tailorcrm-Revision"] = str(catalog_revision)
    response.headers["ETag"] = f'"{revision}"'
    return response


def history_response(name: str, *, kind: str, missing: str) -> Response:
    """Every revision of one metadata document (admins), newest first."""
    _admin("read metadata history")
    history = platform().store.history(name, kind=kind)
    if not history:
        raise NotFound(missing)
    return jsonify({"data": history})


def named_document(document: Any, name: str, *, key: str = "name") -> Any:
    """Fill in a document's name from its address, or refuse one sent elsewhere."""
    if isinstance(document, dict):
        document.setdefault(key, name)
        if document[key] != name:
            raise _refused_key(
                key,
                f"The document is named {document[key]!r} but was sent to {name!r}.",
            )
    return document


def _refused_key(key: str, message: str) -> BadRequest:
    """The refusal of a document whose ``key`` does not fit the address it was
    sent to, named as the field of its problem, where a client looks for it."""
    return BadRequest(message, problems=[Problem(key, "wrong_address", message)])


def put_named_kind(
    name: str,
    kind: str,
    stored_in: Callable[[Catalog], Mapping[str, Any]],
    *,
    action: str,
) -> Response:
    """Create or change a named document of ``kind`` (rules, roles): admins only.

    ``?dry_run=1`` checks it and saves nothing; ``If-Match`` names the revision
    the caller read. ``stored_in`` finds the stored documents of the kind (each
    with ``document`` and ``revision``) in a catalog.
    """
    user = _admin(action)
    document = _json_body(exact_numbers=False)
    if isinstance(document, dict):
        document.setdefault("kind", kind)
    named_document(document, name)
    if not isinstance(document, dict) or document.get("kind") != kind:
        raise _refused_key(
            "kind", f'A {kind} document is a JSON object with "kind": "{kind}".'
        )
    with platform().reading() as (_, catalog):
        existed = name in stored_in(catalog)
    expected = _expected_revision()
    result = platform().store.apply(
        [("", document)],
        actor=user.username,
        dry_run=_flag("dry_run"),
        **{f"expected_{kind}s": {name: expected} if expected is not None else None},
    )
    with platform().reading() as (_, catalog):
        stored = stored_in(catalog).get(name)
    return applied_response(result, stored, existed=existed)


def applied_response(result: ChangeResult, stored: Any, *, existed: bool) -> Response:
    """The answer to a PUT of a metadata document: the plan, and the document as
    stored (with its revision as ETag); 201 when it was created."""
    body = result.as_dict()
    if stored is not None and result.applied:
        body["document"] = stored.document
    response = jsonify(body)
    if stored is not None:
        response.headers["ETag"] = f'"{stored.revision}"'
    response.status_code = 201 if result.applied and not existed else 200
    return response


def delete_named_kind(
    name: str, remove: Callable[..., ChangeResult], *, action: str
) -> Response:
    """Delete a named document (admins) through the store's ``remove``;
    ``?dry_run=1`` answers the plan and deletes nothing."""
    user = _admin(action)
    expected = _expected_revision()
    result = remove(
        name,
        actor=user.username,
        expected={name: expected} if expected is not None else None,
        dry_run=_flag("dry_run"),
    )
    return jsonify(result.as_dict())


@api.get("/meta/entities/<name>")
def get_entity(name: str) -> Response:
    with _session() as session:
        entity = session.catalog.entity(name)
        return document_response(
            entity.document,
            revision=entity.revision,
            catalog_revision=session.catalog.revision,
        )


@api.get("/meta/entities/<name>/history")
def entity_history(name: str) -> Response:
    return history_response(
        name, kind="entity", missing=f"There is no entity named {name!r}."
    )


@api.put("/meta/entities/<name>")
@dry_runs
@checks_if_match
def put_entity(name: str) -> Response:
    user = _admin()
    document = named_document(_json_body(exact_numbers=False), name)
    if isinstance(document, dict) and "kind" in document:
        # A layout, rule or role sent here would be applied as one, past the
        # If-Match and the answer of its own endpoint.
        raise _refused_key(
            "kind",
            'An entity document has no "kind"; send layouts, rules and roles to '
            "their own endpoints under /api/v1/meta/.",
        )
    with platform().reading() as (_, catalog):
        existed = name in catalog.entities and not catalog.entities[name].removed
    expected = _expected_revision()
    result = platform().store.apply(
        [("", document)],
        actor=user.username,
        dry_run=_flag("dry_run"),
        expected={name: expected} if expected is not None else None,
    )
    body = result.as_dict()
    revision = None
    with platform().reading() as (_, catalog):
        entity = catalog.entities.get(name)
        if entity is not None and not entity.removed:
            revision = entity.revision
            if result.applied:
                body["document"] = entity.document
    response = jsonify(body)
    if revision is not None:
        response.headers["ETag"] = f'"{revision}"'

    response.status_code = 201 if result.applied and not existed else 200
    return response


@api.delete("/meta/entities/<name>")
@dry_runs
@checks_if_match
def delete_entity(name: str) -> Response:
    """Hide an entity (admins); ``?dry_run=1`` answers the plan, with the layouts
    it would rewrite, and hides nothing."""
    user = _admin()
    expected = _expected_revision()
    result = platform().store.remove_entity(
        name,
        actor=user.username,
        expected={name: expected} if expected is not None else None,
        dry_run=_flag("dry_run"),
    )
    return jsonify(result.as_dict())


# -- layouts -----------------------------------------------------------------------


@api.get("/meta/schemas/layout")
def layout_json_schema() -> Response:
    with _session():
        return jsonify(layout_schema())


@api.get("/meta/layouts/<name>")
def get_layout(name: str) -> Response:
    """The stored layout, or the generated one when none is stored.

    ``X-Tailorcrm-Layout-Generated`` says which; the ETag is the revision that
    stored the layout, ``"0"`` for a generated one. ``?effective=1`` answers with
    the layout pages show: the stored one completed from the generated one, as
    everyone but administrators always gets it (without the fields their roles
    hide).
    """
    with _session() as session:
        catalog = session.catalog
        catalog.entity(name)
        stored = stored_layouts(session.connection).get(name)
        # Others than administrators get the layout as their pages show it,
        # without the fields their roles hide.
        if stored is not None and session.user.is_admin and not _flag("effective"):
            document = stored.document
        else:
            document = catalog.layout(name)
    response = jsonify(document)
    response.headers["X-Tailorcrm-Layout-Generated"] = (
        "false" if stored is not None else "true"
    )
    response.headers["X-Tailorcrm-Revision"] = str(catalog.revision)
    response.headers["ETag"] = f'"{stored.revision if stored else 0}"'
    return response


@api.get("/meta/layouts/<name>/history")
def layout_history(name: str) -> Response:
    return history_response(
        name, kind=LAYOUT, missing=f"No layout was ever stored for {name!r}."
    )


@api.put("/meta/layouts/<name>")
@dry_runs
@checks_if_match
def put_layout(name: str) -> Response:
    user = _admin()
    document = _json_body(exact_numbers=False)
    if not isinstance(document, dict):
        raise InvalidMetadata(
            "The layout document was refused; nothing was changed.",
            problems=[Problem("$", "schema", "A layout document is a JSON object.")],
        )
    document.setdefault("kind", LAYOUT)
    if document["kind"] != LAYOUT:
        raise _refused_key(
            "kind", 'A layout document is a JSON object with "kind": "layout".'
        )
    document.setdefault("entity", name)
    if document["entity"] != name:
        raise _refused_key(
            "entity",
            f"The layout is for {document['entity']!r} but was sent to {name!r}.",
        )
    with platform().reading() as (connection, _):
        existed = name in stored_layouts(connection)
    expected = _expected_revision()
    result = platform().store.apply(
        [("", document)],
        actor=user.username,
        dry_run=_flag("dry_run"),
        expected_layouts={name: expected} if expected is not None else None,
    )
    with platform().reading() as (connection, _):
        stored = stored_layouts(connection).get(name)
    return applied_response(result, stored, existed=existed)


@api.delete("/meta/layouts/<name>")
@dry_runs
@checks_if_match
def delete_layout(name: str) -> Response:
    user = _admin()
    expected = _expected_revision()
    result = platform().store.remove_layout(
        name, actor=user.username, expected=expected, dry_run=_flag("dry_run")
    )
    return jsonify(result.as_dict())


# -- saved views -------------------------------------------------------------------


@api.get("/meta/schemas/view")
def view_json_schema() -> Response:
    with _session():
        return jsonify(view_schema())


@api.get("/meta/views")
def list_saved_views() -> Response:
    """The views the caller sees, or those of ``?entity=``."""
    # As on the rule reads: a misspelt or repeated ``entity`` would otherwise
    # list every view, or those of one entity only, as if that were asked for.
    refuse_unknown_parameters(frozenset({"entity"}))
    # A blank ``entity`` names no entity (404), rather than every view.
    entity = single_parameter("entity")
    with _session() as session:
        data = list_views(session.connection, session.catalog, session.user, entity)
    return jsonify({"data": data})


@api.post("/meta/views")
@takes("entity")
def create_saved_view() -> Response:
    document = _json_body(exact_numbers=False)
    entity = single_parameter("entity")
    if entity and isinstance(document, dict):
        named = document.setdefault("entity", entity)
        if named != entity:
            raise _refused_key(
                "entity",
                f"The view is for {named!r} but was sent with ?entity={entity!r}.",
            )
    with _session(write=True) as session:
        view = save_view(session.connection, session.catalog, session.user, document)
    response = jsonify(view)
    response.status_code = 201
    response.headers["Location"] = url_for("api.get_saved_view", view_id=view["id"])
    return response


@api.get("/meta/views/<int:view_id>")
def get_saved_view(view_id: int) -> Response:
    with _session() as session:
        view = get_view(session.connection, session.catalog, session.user, view_id)
    return jsonify(view)


@api.put("/meta/views/<int:view_id>")
def put_saved_view(view_id: int) -> Response:
    document = _json_body(exact_numbers=False)
    with _session(write=True) as session:
        view = save_view(
            session.connection,
            session.catalog,
            session.user,
            document,
            view_id=view_id,
        )
    return jsonify(view)


@api.delete("/meta/views/<int:view_id>")
def delete_saved_view(view_id: int) -> Response:
    with _session(write=True) as session:
        delete_view(session.connection, session.catalog, session.user, view_id)
    return Response(status=204)


# -- records -----------------------------------------------------------------------


@api.get("/<entity_name>")
def list_records(entity_name: str) -> Response:
    with _session() as session:
        entity = session.catalog.entity(entity_name)
        args = {key: request.args.getlist(key) for key in request.args}
        query = parse_list_args(
            entity,
            args,
            user=session.user.condition_data(),
            entities=session.catalog.entities,
        )
        page = run_list(session.connection, entity, query)
    body: dict[str, Any] = {"data": page.records, "next": None}
    if page.next_cursor:
        params = [(k, v) for k, v in request.args.items(multi=True) if k != "cursor"]
        params.append(("cursor", page.next_cursor))
        body["next"] = (
            url_for("api.list_records", entity_name=entity_name, _external=True)
            + "?"
            + urlencode(params)
        )
    if page.total is not None:
        body["count"] = page.total
    return jsonify(body)


@api.post("/<entity_name>")
@dry_runs
@takes("bypass_automation")
def create_record(entity_name: str) -> Response:
    data = _json_body()
    dry_run = _flag("dry_run")
    with _record_write(dry_run) as session:
        records = session.records(bypass_automation=_bypass())
        record = records.create(entity_name, data)
    if dry_run:
        return _not_applied(record)
    response = jsonify(record)
    response.status_code = 201
    response.headers["Location"] = url_for(
        "api.get_record", entity_name=entity_name, record_id=record["id"]
    )
    return _with_etag(response, record)


@api.get("/<entity_name>/<int:record_id>")
def get_record(entity_name: str, record_id: int) -> Response:
    """One record; ``fields=title,amount`` answers those and its id, as a list
    does (its ETag is the record's all the same)."""
    selection = request.args.getlist("fields")
    with _session() as session:
        entity = session.catalog.entity(entity_name)
        fields = parse_list_args(entity, {"fields": selection}).fields
        record = session.records().get(entity_name, record_id)
    shown = record
    if fields is not None:
        shown = {name: record[name] for name in ("id", *fields) if name in record}
    return _with_etag(jsonify(shown), record)


@api.patch("/<entity_name>/<int:record_id>")
@dry_runs
@checks_if_match
@takes("bypass_automation")
def update_record(entity_name: str, record_id: int) -> Response:
    data = _json_body()
    expected = _expected_version()
    dry_run = _flag("dry_run")
    with _record_write(dry_run) as session:
        record = session.records(bypass_automation=_bypass()).update(
            entity_name, record_id, data, expected_version=expected
        )
    if dry_run:
        return _not_applied(record)
    return _with_etag(jsonify(record), record)


@api.delete("/<entity_name>/<int:record_id>")
@dry_runs
@checks_if_match
@takes("bypass_automation")
def delete_record(entity_name: str, record_id: int) -> Response:
    expected = _expected_version()
    dry_run = _flag("dry_run")
    with _record_write(dry_run) as session:
        session.records(bypass_automation=_bypass()).delete(
            entity_name, record_id, expected_version=expected
        )
    if dry_run:
        return _not_applied(None)
    return Response(status=204)


class _DryRunDone(Exception):
    """Ends a dry run's transaction, so that everything the save did is undone."""


@contextmanager
def _record_write(dry_run: bool) -> Iterator[Session]:
    """A write request's transaction; with ``dry_run`` it runs the whole save
    (every rule, roll-up and automation, with their checks) and is then rolled
    back, so that nothing is kept."""
    try:
        with _session(write=True) as session:
            yield session
            if dry_run:
                raise _DryRunDone
    except _DryRunDone:
        pass


def _not_applied(record: dict[str, Any] | None) -> Response:
    """The answer of a record dry run: 200, the record as the save would have
    left it (a new one's ``id`` is not kept), and ``applied: false``."""
    return jsonify({"applied": False, "record": record})
