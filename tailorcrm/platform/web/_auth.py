"""Signing in and out, and how errors reach people on web pages."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import redirect, request, session, url_for
from flask_login import UserMixin, current_user, login_required, login_user, logout_user
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from ...errors import (
    BadRequest,
    NotFound,
    TailorError,
    TooManyRequests,
    Unauthorized,
)
from .._app import platform
from ..db import RETRY_AFTER, held_back
from ..sessions import Client
from ._blueprint import web
from ._context import render, web_session

log = logging.getLogger(__name__)

#: Longer than any session id the server hands out (43 characters).
_MAX_SESSION_ID = 100


class WebUser(UserMixin):
    """The signed-in browser as flask-login keeps it: only its session id.

    flask-login calls it the user id; it is the random id of a server-side
    session (:mod:`tailorcrm.platform.sessions`). Each request checks the session
    and loads the user with the catalog revision (:func:`web_session`), so an
    ended session or a deactivated account is refused at once.
    """

    def __init__(self, session_token: str) -> None:
        self.id = session_token


def load_web_user(session_token: str) -> WebUser | None:
    if not session_token or len(session_token) > _MAX_SESSION_ID:
        return None
    return WebUser(session_token)


def _client() -> Client:
    return Client(request.remote_addr, request.user_agent.string)


def _safe_next(target: str | None) -> str:
    """Follow ``next`` only to a path on this site (no open redirect)."""
    if not target:
        return url_for("web.home")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or "\\" in target:
        return url_for("web.home")
    if target.startswith("//"):
        return url_for("web.home")
    return target


@web.route("/login", methods=["GET", "POST"])
def login() -> Any:
    next_page = request.values.get("next", "")
    if request.method == "GET":
        if current_user.is_authenticated:
            return redirect(_safe_next(next_page))
        return render(
            "login.html",
            title="Sign in",
            action=url_for("web.login"),
            next=next_page,
            username="",
            error="",
        )
    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    try:
        signed_in = platform().sign_in(username, password, _client())
    except (Unauthorized, TooManyRequests) as error:
        response = render(
            "login.html",
            title="Sign in",
            status=error.status,
            action=url_for("web.login"),
            next=next_page,
            username=username,
            error=error.message,
        )
        if isinstance(error, TooManyRequests):
            response.headers["Retry-After"] = str(error.retry_after)
        return response
    # A new session at sign-in, with a new id: the one this browser had before
    # ends, and nothing set before it (a planted CSRF token, say) carries over.
    if current_user.is_authenticated:
        platform().sign_out(current_user.get_id(), _client())
    session.clear()
    login_user(WebUser(signed_in.session_token))
    return redirect(_safe_next(next_page))


@web.post("/logout")
@login_required
def logout() -> Response:
    # The session ends on the server, so a copy of the cookie dies with it.
    platform().sign_out(current_user.get_id(), _client())
    logout_user()
    session.clear()
    return redirect(url_for("web.login"))


@web.errorhandler(TailorError)
def _tailor_error(error: TailorError) -> Response:
    if isinstance(error, Unauthorized):
        logout_user()
        return redirect(url_for("web.login", next=request.full_path.rstrip("?")))
    titles = {403: "Not allowed", 404: "Not found", 409: "Conflict"}
    title = titles.get(error.status, "Something is not right")
    message = error.message
    if isinstance(error, NotFound):
        message = "This page does not exist, or the record was deleted."
    try:
        with web_session() as found:
            return render(
                "error.html",
                title=title,
                session=found,
                status=error.status,
                message=message,
            )
    except TailorError:
        return render("error.html", title=title, status=error.status, message=message)


@web.errorhandler(sa.exc.DataError)
def _data_error(error: sa.exc.DataError) -> Response:
    # A value got past validation but not past the database (a list filter whose
    # arithmetic leaves the database's range, say): the request is at fault, as
    # the API answers it too.
    log.warning("database refused a value on %s %s", request.method, request.path)
    return _tailor_error(
        BadRequest(
            "A value, or a number computed from one, is out of the database's "
            "range. Change the filter or the value and try again."
        )
    )


#: What a page says when the database held back its change, by reason.
_HELD_BACK = {
    "busy": "The database is busy with another change; nothing was saved. Go "
    "back and try again in a moment.",
    "retry": "This change met another one made at the same moment and was "
    "undone; nothing was saved. Go back and try again.",
}


@web.errorhandler(sa.exc.OperationalError)
def _held_back(error: sa.exc.OperationalError) -> Response:
    # As the API answers it (503, Retry-After); any other database error stays a
    # server error.
    reason = held_back(error)
    if reason is None:
        raise error
    log.warning("change held back (%s) on %s %s", reason, request.method, request.path)
    # No session is opened for the page: on SQLite it would wait for the same
    # writer again.
    response = render(
        "error.html", title="Try again", status=503, message=_HELD_BACK[reason]
    )
    response.headers["Retry-After"] = str(RETRY_AFTER[reason])
    return response


@web.errorhandler(HTTPException)
def error_page(error: HTTPException) -> Response:
    """Answer an HTTP error (unknown page, expired form) with a page, not a dump."""
    status = error.code or 500
    if status == 400 and error.description == "csrf":
        message = (
            "The form expired or was sent from another site. Go back, reload the "
            "page and try again."
        )
        return render("error.html", title="Form expired", status=400, message=message)
    if status == 400 and error.description == "nul":
        message = (
            "What was sent holds a NUL character, which no field can take. Remove "
            "it and try again."
        )
        return render("error.html", title="Not accepted", status=400, message=message)
    response = render(
        "error.html", title=error.name, status=status, message=error.description or ""
    )
    # Keep what the error says in its headers (Allow on a 405, Retry-After...).
    for name, value in error.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response
