"""REST API v1: role documents, users and teams, and what the caller may do.

Role documents are metadata, like entities and rules; users and teams are data
that administrators change. Both count from the next request on.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Response, jsonify

from ..errors import BadRequest, NotFound, Problem
from ..metadata import OPERATIONS, ROLE, Catalog, EntityAccess, role_schema
from ._app import platform
from .access import (
    create_team,
    delete_team,
    list_teams,
    list_users,
    set_team,
    set_user_attributes,
    set_user_roles,
    team_info,
    user_id_of,
    user_info,
)
from .api import (
    _admin,
    _json_body,
    _session,
    api,
    checks_if_match,
    delete_named_kind,
    document_response,
    dry_runs,
    history_response,
    put_named_kind,
)
from .auth import create_user, deactivate_user, generate_password

# -- role documents -----------------------------------------------------------------


@api.get("/meta/schemas/role")
def role_json_schema() -> Response:
    with _session():
        return jsonify(role_schema())


@api.get("/meta/roles")
def list_roles() -> Response:
    """Every role document (admins)."""
    _admin("read roles")
    with platform().reading() as (_, catalog):
        documents = [catalog.roles[name].document for name in sorted(catalog.roles)]
        return jsonify({"revision": catalog.revision, "data": documents})


@api.get("/meta/roles/<name>")
def get_role(name: str) -> Response:
    _admin("read roles")
    with platform().reading() as (_, catalog):
        stored = catalog.roles.get(name)
        if stored is None:
            raise NotFound(f"There is no role named {name!r}.")
        return document_response(
            stored.document, revision=stored.revision, catalog_revision=catalog.revision
        )


@api.get("/meta/roles/<name>/history")
def role_history(name: str) -> Response:
    return history_response(
        name, kind=ROLE, missing=f"There is no role named {name!r}."
    )


@api.put("/meta/roles/<name>")
@dry_runs
@checks_if_match
def put_role(name: str) -> Response:
    """Create or change a role (admins); ``?dry_run=1`` checks it and saves nothing."""
    return put_named_kind(
        name, ROLE, lambda catalog: catalog.roles, action="change roles"
    )


@api.delete("/meta/roles/<name>")
@dry_runs
@checks_if_match
def delete_role(name: str) -> Response:
    return delete_named_kind(name, platform().store.remove_role, action="change roles")


# -- the caller ---------------------------------------------------------------------


@api.get("/me")
def who_am_i() -> Response:
    """The caller, their roles and teams, and what they may do to each entity."""
    with _session() as session:
        permissions = session.catalog.permissions
        entities: dict[str, Any] = {}
        for entity in session.catalog.live():
            access = entity.access
            entities[entity.name] = {
                "operations": {
                    operation: "all" if access is None else access.scope(operation)
                    for operation in OPERATIONS
                },
                "fields": {} if access is None else _live_levels(access),
                "shared": 0 if access is None else len(access.sharing),
            }
        caller = permissions.caller if permissions is not None else None
        return jsonify(
            {
                "id": session.user.id,
                "username": session.user.username,
                "admin": session.user.is_admin,
                "roles": list(caller.roles) if caller else [],
                "teams": list(caller.teams) if caller else [],
                "entities": entities,
            }
        )


def _live_levels(access: EntityAccess) -> dict[str, str]:
    """The field levels of the entity's live fields (a removed field keeps its
    levels in the roles until it is purged)."""
    full = access.full
    return {
        name: level
        for name, level in access.levels.items()
        if full is None or name in full.fields
    }


# -- users --------------------------------------------------------------------------


@api.get("/users")
def get_users() -> Response:
    _admin("manage users")
    with platform().reading() as (connection, _):
        return jsonify({"data": list_users(connection)})


@api.get("/users/<username>")
def get_user(username: str) -> Response:
    _admin("manage users")
    with platform().reading() as (connection, _):
        return jsonify(user_info(connection, username))


@api.post("/users")
def post_user() -> Response:
    """Create a user: ``{"username", "password", "roles", "attributes"}`` (admins).

    Without a password one is generated and returned, once, in the answer.
    """
    _admin("manage users")
    body = _user_body(creating=True)
    password = body.get("password") or generate_password()
    with platform().transaction() as (connection, catalog):
        create_user(connection, body["username"], password)
        _apply_user(connection, catalog, body["username"], body)
        found = user_info(connection, body["username"])
    if "password" not in body:
        found["password"] = password
    response = jsonify(found)
    response.status_code = 201
    return response


@api.patch("/users/<username>")
def patch_user(username: str) -> Response:
    """Change a user's ``roles`` (held directly), ``attributes`` or ``active``
    (``false`` ends their sessions and stops their tokens) (admins)."""
    _admin("manage users")
    body = _user_body(creating=False)
    with platform().transaction() as (connection, catalog):
        _apply_user(connection, catalog, username, body)
        return jsonify(user_info(connection, username))


def _user_body(*, creating: bool) -> dict[str, Any]:
    body = _json_body(exact_numbers=False)
    allowed = {"roles", "attributes"} | (
        {"username", "password"} if creating else {"active"}
    )
    _check_keys(body, allowed)
    if creating and not isinstance(body.get("username"), str):
        raise _refused("username", "give the user's name.")
    if "password" in body and not isinstance(body["password"], str):
        raise _refused("password", "send text.")
    roles = body.get("roles")
    if roles is not None and (
        not isinstance(roles, list) or not all(isinstance(r, str) for r in roles)
    ):
        raise _refused("roles", "send a list of role names.")
    if "attributes" in body and not isinstance(body["attributes"], dict):
        raise _refused("attributes", "send a JSON object.")
    if "active" in body and body["active"] is not False:
        raise _refused("active", "only false is accepted (deactivating a user).")
    return body


def _check_keys(body: Any, allowed: set[str]) -> None:
    """Refuse a body that is not an object, or one with keys the request does
    not read, naming each of them (a misspelt ``role`` for ``roles``, say)."""
    takes = ", ".join(sorted(allowed))
    if not isinstance(body, dict):
        raise BadRequest(f"Send a JSON object with {takes}.")
    unknown = [key for key in body if key not in allowed]
    if unknown:
        message = f"not read here; send {takes}."
        raise BadRequest(
            f"{unknown[0]}: {message}",
            problems=[Problem(key, "unknown_field", message) for key in unknown],
        )


def _refused(key: str, message: str) -> BadRequest:
    """A refusal of one key of the body, named in ``detail`` and ``errors``."""
    return BadRequest.parameter(key, message, code="invalid_value")


def _apply_user(
    connection: sa.Connection, catalog: Catalog, username: str, body: dict[str, Any]
) -> None:
    if body.get("roles") is not None:
        set_user_roles(connection, catalog, username, body["roles"])
    if body.get("attributes") is not None:
        set_user_attributes(connection, username, body["attributes"])
    if body.get("active") is False:
        deactivate_user(connection, user_id_of(connection, username))


# -- teams --------------------------------------------------------------------------


@api.get("/teams")
def get_teams() -> Response:
    _admin("manage teams")
    with platform().reading() as (connection, _):
        return jsonify({"data": list_teams(connection)})


@api.get("/teams/<name>")
def get_team(name: str) -> Response:
    _admin("manage teams")
    with platform().reading() as (connection, _):
        return jsonify(team_info(connection, name))


@api.post("/teams")
def post_team() -> Response:
    """Create a team: ``{"name", "label", "members": [...], "roles": [...]}``."""
    _admin("manage teams")
    body = _team_body(creating=True)
    with platform().transaction() as (connection, catalog):
        create_team(connection, body["name"], body.get("label"))
        found = set_team(
            connection,
            catalog,
            body["name"],
            members=body.get("members"),
            roles=body.get("roles"),
        )
    response = jsonify(found)
    response.status_code = 201
    return response


@api.patch("/teams/<name>")
def patch_team(name: str) -> Response:
    """Replace a team's ``label``, ``members`` or ``roles`` (each when given)."""
    _admin("manage teams")
    body = _team_body(creating=False)
    with platform().transaction() as (connection, catalog):
        found = set_team(
            connection,
            catalog,
            name,
            members=body.get("members"),
            roles=body.get("roles"),
            label=body.get("label"),
        )
    return jsonify(found)


@api.delete("/teams/<name>")
def remove_team(name: str) -> Response:
    _admin("manage teams")
    with platform().transaction() as (connection, _):
        delete_team(connection, name)
    return Response(status=204)


def _team_body(*, creating: bool) -> dict[str, Any]:
    body = _json_body(exact_numbers=False)
    allowed = {"label", "members", "roles"} | ({"name"} if creating else set())
    _check_keys(body, allowed)
    if creating and not isinstance(body.get("name"), str):
        raise _refused("name", "give the team's name.")
    if "label" in body and (
        not isinstance(body["label"], str) or not 0 < len(body["label"]) <= 200
    ):
        raise _refused("label", "send text of 1 to 200 characters.")
    for key in ("members", "roles"):
        if key in body and (
            not isinstance(body[key], list)
            or not all(isinstance(item, str) for item in body[key])
        ):
            raise _refused(key, "send a list of names.")
    return body
