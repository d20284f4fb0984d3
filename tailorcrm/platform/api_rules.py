"""REST API v1: rule documents, next to the entity documents.

The routes join the ``api`` blueprint when this module is imported (the app
factory does so), and share its authentication and problem documents.
"""

from __future__ import annotations

from flask import Response, jsonify

from ..errors import NotFound
from ..metadata import RULE, rule_schema
from ._app import platform
from .access import readable_rules
from .api import (
    _session,
    api,
    checks_if_match,
    delete_named_kind,
    document_response,
    dry_runs,
    history_response,
    put_named_kind,
    refuse_unknown_parameters,
    single_parameter,
)


@api.get("/meta/schemas/rule")
def rule_json_schema() -> Response:
    refuse_unknown_parameters(frozenset())
    with _session():
        return jsonify(rule_schema())


@api.get("/meta/rules")
def list_rules() -> Response:
    """Every rule document, or those of ``?entity=``."""
    # A misspelt or repeated ``entity`` would otherwise list every rule, or
    # those of one entity only, as if that were what was asked for.
    refuse_unknown_parameters(frozenset({"entity"}))
    entity = single_parameter("entity")
    with _session() as session:
        if entity is not None:
            session.catalog.entity(entity)
        shown = readable_rules(session.catalog)
        documents = [
            stored.document
            for stored in session.catalog.rules.documents_of(entity)
            if shown is None or stored.name in shown
        ]
        return jsonify({"revision": session.catalog.revision, "data": documents})


@api.get("/meta/rules/<name>")
def get_rule(name: str) -> Response:
    refuse_unknown_parameters(frozenset())
    with _session() as session:
        stored = session.catalog.rules.documents.get(name)
        shown = readable_rules(session.catalog)
        if stored is None or (shown is not None and name not in shown):
            raise NotFound(f"There is no rule named {name!r}.")
        return document_response(
            stored.document,
            revision=stored.revision,
            catalog_revision=session.catalog.revision,
        )


@api.get("/meta/rules/<name>/history")
def rule_history(name: str) -> Response:
    refuse_unknown_parameters(frozenset())
    return history_response(
        name, kind=RULE, missing=f"There is no rule named {name!r}."
    )


@api.put("/meta/rules/<name>")
@dry_runs
@checks_if_match
def put_rule(name: str) -> Response:
    """Create or change a rule (admins); ``?dry_run=1`` checks it and saves nothing."""
    return put_named_kind(
        name, RULE, lambda catalog: catalog.rules.documents, action="change metadata"
    )


@api.delete("/meta/rules/<name>")
@dry_runs
@checks_if_match
def delete_rule(name: str) -> Response:
    return delete_named_kind(
        name, platform().store.remove_rule, action="change metadata"
    )
