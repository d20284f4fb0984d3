"""Protections every web page gets: CSRF tokens, security headers, cookie flags."""

from __future__ import annotations

import hmac
import secrets

from flask import Flask, Response, abort, request, session

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# No inline scripts or styles anywhere: every script and stylesheet is a file the
# app serves itself, so an injected <script> or style attribute does nothing.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


def csrf_token() -> str:
    """Return this session's CSRF token, creating it on first use."""
    token = session.get(CSRF_FIELD)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[CSRF_FIELD] = token
    return token


def check_csrf() -> None:
    """Refuse a state-changing request whose token is missing or wrong (400)."""
    if request.method in _SAFE_METHODS:
        return
    expected = session.get(CSRF_FIELD)
    sent = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER, "")
    if not isinstance(expected, str) or not hmac.compare_digest(expected, sent):
        abort(400, description="csrf")


def refuse_nul() -> None:
    """Refuse a request whose parameters hold the NUL character (400).

    No field may hold it, and PostgreSQL cannot even compare text with it, so a
    search or a filter with one would fail deep inside a query; it is refused at
    the door instead, the same way on every database.
    """
    values = [*request.args.items(multi=True)]
    if request.method not in _SAFE_METHODS:
        values += [*request.form.items(multi=True)]
    if any("\x00" in key or "\x00" in value for key, value in values):
        abort(400, description="nul")


def add_security_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if response.mimetype == "text/html":
        headers.setdefault("Cache-Control", "no-store")
    if request.is_secure:
        # Browsers heed it only over HTTPS (RFC 6797), so it is only sent there.
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response


def configure_cookies(app: Flask, *, production: bool) -> None:
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=production,
        SESSION_COOKIE_NAME="tailorcrm_session",
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_SECURE=production,
    )
