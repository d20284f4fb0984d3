"""REST API v1: the field history of records and the metadata revisions.

The routes join the ``api`` blueprint when this module is imported (the app
factory does so), and share its authentication and problem documents.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import Response, jsonify, request, url_for

from ._app import platform
from .api import _admin, _session, api
from .fieldhistory import parse_page_args, record_history
from .revisionlog import get_revision, list_revisions


def _next_link(endpoint: str, cursor: str | None, **values: Any) -> str | None:
    """The address of the next page: this request's arguments and ``cursor``."""
    if cursor is None:
        return None
    params = [(k, v) for k, v in request.args.items(multi=True) if k != "cursor"]
    params.append(("cursor", cursor))
    return url_for(endpoint, _external=True, **values) + "?" + urlencode(params)


@api.get("/<entity_name>/<int:record_id>/history")
def get_record_history(entity_name: str, record_id: int) -> Response:
    """A record's history, newest first, for whoever may read the record.

    Administrators (with a token of the ``admin`` scope) also see the entries of
    removed fields and the history of a deleted record.
    """
    limit, before = parse_page_args(
        request.args.get("limit"), request.args.get("cursor")
    )
    with _session() as session:
        admin = session.user.is_admin and "admin" in session.scopes
        page = record_history(
            session.records(),
            entity_name,
            record_id,
            admin=admin,
            limit=limit,
            before=before,
        )
    link = _next_link(
        "api.get_record_history",
        page.next_cursor,
        entity_name=entity_name,
        record_id=record_id,
    )
    return jsonify({"data": [e.as_dict() for e in page.entries], "next": link})


@api.get("/meta/revisions")
def get_revisions() -> Response:
    """The metadata revisions, newest first (admins)."""
    limit, before = parse_page_args(
        request.args.get("limit"), request.args.get("cursor")
    )
    _admin("read metadata revisions")
    with platform().reading() as (connection, _):
        page = list_revisions(connection, limit=limit, before=before)
    link = _next_link("api.get_revisions", page.next_cursor)
    return jsonify({"data": page.revisions, "next": link})


@api.get("/meta/revisions/<int:revision>")
def get_one_revision(revision: int) -> Response:
    """One metadata revision with its plan and every document change (admins)."""
    _admin("read metadata revisions")
    with platform().reading() as (connection, _):
        return jsonify(get_revision(connection, revision))
