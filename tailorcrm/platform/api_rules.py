"""REST API v1: rule documents, next to the entity documents.

The routes join the ``api`` blueprint when this module is imported (the app
factory does so), and share its authentication and problem documents.
"""

from __future__ import annotations

from flask import Response, jsonify, request

from ..errors import BadRequest, NotFound
from ..metadata import RULE, rule_schema
from ._app import platform
from .api import (
    _admin,
    _expected_version,
    _flag,
    _json_body,
    _session,
    api,
    document_response,
    history_response,
    named_document,
)


@api.get("/meta/schemas/rule")
def rule_json_schema() -> Response:
    with _session():
        return jsonify(rule_schema())


@api.get("/meta/rules")
def list_rules() -> Response:
    """Every rule document, or those of ``?entity=``."""
    entity = request.args.get("entity")
    with _session() as session:
        if entity is not None:
            session.catalog.entity(entity)
        documents = [
            stored.document for stored in session.catalog.rules.documents_of(entity)
        ]
        return jsonify({"revision": session.catalog.revision, "data": documents})


@api.get("/meta/rules/<name>")
def get_rule(name: str) -> Response:
    with _session() as session:
        stored = session.catalog.rules.documents.get(name)
        if stored is None:
            raise NotFound(f"There is no rule named {name!r}.")
        return document_response(
            stored.document,
            revision=stored.revision,
            catalog_revision=session.catalog.revision,
        )


@api.get("/meta/rules/<name>/history")
def rule_history(name: str) -> Response:
    return history_response(
        name, kind=RULE, missing=f"There is no rule named {name!r}."
    )


@api.put("/meta/rules/<name>")
def put_rule(name: str) -> Response:
    """Create or change a rule (admins); ``?dry_run=1`` checks it and saves nothing."""
    user = _admin()
    document = _json_body(exact_numbers=False)
    if isinstance(document, dict):
        document.setdefault("kind", RULE)
    named_document(document, name)
    if not isinstance(document, dict) or document.get("kind") != RULE:
        raise BadRequest('A rule document is a JSON object with "kind": "rule".')
    with platform().reading() as (_, catalog):
        existed = name in catalog.rules.documents
    expected = _expected_version()
    result = platform().store.apply(
        [("", document)],
        actor=user.username,
        dry_run=_flag("dry_run"),
        expected_rules={name: expected} if expected is not None else None,
    )
    body = result.as_dict()
    with platform().reading() as (_, catalog):
        stored = catalog.rules.documents.get(name)
    response = jsonify(body)
    if stored is not None:
        if result.applied:
            body["document"] = stored.document
            response = jsonify(body)
        response.headers["ETag"] = f'"{stored.revision}"'
    response.status_code = 201 if result.applied and not existed else 200
    return response


@api.delete("/meta/rules/<name>")
def delete_rule(name: str) -> Response:
    user = _admin()
    expected = _expected_version()
    result = platform().store.remove_rule(
        name,
        actor=user.username,
        expected={name: expected} if expected is not None else None,
    )
    return jsonify(result.as_dict())
