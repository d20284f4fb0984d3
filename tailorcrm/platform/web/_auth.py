"""Signing in and out, and how errors reach people on web pages."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import redirect, request, session, url_for
from flask_login import UserMixin, current_user, login_required, login_user, logout_user
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from ...errors import NotFound, TailorError, Unauthorized
from .._app import platform
from ..auth import check_password
from ._blueprint import web
from ._context import render, web_session


class WebUser(UserMixin):
    """The signed-in user as flask-login keeps it: only the id.

    Each request loads the user again with the catalog revision
    (:func:`web_session`), so a deactivated account is refused at once.
    """

    def __init__(self, user_id: int) -> None:
        self.id = user_id


def load_web_user(user_id: str) -> WebUser | None:
    return WebUser(int(user_id)) if user_id.isdigit() else None


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
        with platform().engine.begin() as connection:
            user = check_password(connection, username, password)
    except Unauthorized as error:
        return render(
            "login.html",
            title="Sign in",
            status=401,
            action=url_for("web.login"),
            next=next_page,
            username=username,
            error=error.message,
        )
    # A new session at sign-in: nothing set before it (a planted CSRF token, say)
    # carries over.
    session.clear()
    login_user(WebUser(user.id))
    return redirect(_safe_next(next_page))


@web.post("/logout")
@login_required
def logout() -> Response:
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
