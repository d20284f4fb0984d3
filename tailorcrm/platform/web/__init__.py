"""The generated web pages: sign-in, home, lists, record pages, forms and import.

Routes fetch records through the query builder and save them through the record
service (the same paths as the API); the renderer turns metadata and records into
HTML. Every state-changing request carries a CSRF token; every page is sent with a
Content-Security-Policy that allows no inline script.
"""

from __future__ import annotations

from flask import Flask
from flask_login import LoginManager

from ...renderer import Renderer

# Routes register themselves on ``web`` when their modules are imported.
from . import _auth, _import, _listing, _lists, _lookup, _records, _views  # noqa: F401
from ._auth import error_page
from ._blueprint import web
from ._security import add_security_headers, configure_cookies


def init_web(app: Flask, *, production: bool = False) -> None:
    """Attach the web pages, sign-in and the security headers to ``app``."""
    configure_cookies(app, production=production)
    login = LoginManager()
    login.login_view = "web.login"
    login.login_message = ""
    login.user_loader(_auth.load_web_user)
    login.init_app(app)
    app.extensions["tailorcrm.renderer"] = Renderer()
    app.register_blueprint(web)
    app.after_request(add_security_headers)


__all__ = ["error_page", "init_web", "web"]
