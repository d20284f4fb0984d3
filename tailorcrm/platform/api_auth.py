"""REST API v1: the caller's API tokens, and the sign-in audit for admins.

The routes join the ``api`` blueprint when this module is imported (the app
factory does so). ``auth`` is a reserved entity name, so ``/api/v1/auth/...``
never clashes with an entity's records; ``/api/v1/audit/logins`` cannot either,
since a record's address ends in its number.
"""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Response, jsonify, request, url_for

from ..errors import BadRequest, Forbidden
from ..metadata import ascii_digits
from ._app import Session, platform, require_scope
from .access import user_id_of
from .api import _session, api, refuse_unknown_parameters, single_parameter
from .auth import list_tokens, revoke_token
from .logins import list_events

DEFAULT_EVENTS_PAGE = 50


@api.get("/auth/tokens")
def list_api_tokens() -> Response:
    """The caller's API tokens (``?user=NAME``: another user's, for admins).

    Tokens themselves are never shown, only what describes them; ``current``
    marks the token of the request.
    """
    # A misspelt or repeated ``user`` would otherwise list the caller's tokens,
    # or the first user's, as if that were what was asked for.
    refuse_unknown_parameters(frozenset({"user"}))
    name = single_parameter("user")
    # Other users' tokens are an administrator's business, for the admin scope
    # alone as the other admin reads; one's own need the read scope.
    with _session(scope=("read", "admin")) as session:
        user_id = session.user.id
        if name is not None and name != session.user.username:
            _need_admin(session, "read other users' tokens")
            # A deactivated user's tokens are listed too, as inactive.
            user_id = user_id_of(session.connection, name)
        else:
            require_scope(session.scopes, "read")
        tokens = list_tokens(session.connection, user_id=user_id)
    now = platform().clock()
    data = [
        {**token.as_dict(now), "current": token.id == session.token_id}
        for token in tokens
    ]
    return jsonify({"data": data})


@api.delete("/auth/tokens/<int:token_id>")
def revoke_api_token(token_id: int) -> Response:
    """Revoke one of the caller's tokens (admins: anyone's); it stops at once."""
    with _session(write=True, scope=("write", "admin")) as session:
        found = list_tokens(session.connection, token_id=token_id)
        if found and found[0].user_id != session.user.id and session.user.is_admin:
            _need_admin(session, "revoke other users' tokens")
        else:
            require_scope(session.scopes, "write")
        revoke_token(
            session.connection, token_id, by=session.user, now=platform().clock()
        )
    return Response(status=204)


@api.get("/audit/logins")
def login_audit() -> Response:
    """Sign-in events, newest first (admins): ``?user=``, ``?limit=``, ``?cursor=``."""
    # A misspelt or repeated parameter would otherwise answer everyone's events,
    # or the first user's, as if that were what was asked for.
    refuse_unknown_parameters(frozenset({"user", "limit", "cursor"}))
    given = _number("limit")
    limit = DEFAULT_EVENTS_PAGE if given is None else given
    cursor = _number("cursor")
    username = single_parameter("user") or None
    with _session(scope="admin") as session:
        _need_admin(session, "read the sign-in audit")
        events = list_events(
            session.connection, username=username, limit=limit, before=cursor
        )
    body: dict[str, object] = {"data": events, "next": None}
    if len(events) == limit:
        params = [(k, v) for k, v in request.args.items(multi=True) if k != "cursor"]
        params.append(("cursor", str(events[-1]["id"])))
        body["next"] = (
            url_for("api.login_audit", _external=True) + "?" + urlencode(params)
        )
    return jsonify(body)


def _need_admin(session: Session, action: str) -> None:
    if not session.user.is_admin:
        raise Forbidden(f"Only administrators may {action}.")
    if "admin" not in session.scopes:
        raise Forbidden(f"To {action}, use an API token with the 'admin' scope.")


def _number(name: str) -> int | None:
    text = single_parameter(name)
    if text is None or text == "":
        return None
    if not ascii_digits(text) or len(text) > 18:
        raise BadRequest.parameter(name, f"give a whole number, not {text!r}.")
    return int(text)
