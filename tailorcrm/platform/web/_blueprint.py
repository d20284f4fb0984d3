"""The blueprint every page module registers its routes on."""

from __future__ import annotations

from flask import Blueprint

from ...renderer import STATIC_DIR
from ._security import check_csrf, refuse_nul

web = Blueprint(
    "web", __name__, static_folder=str(STATIC_DIR), static_url_path="/static"
)
web.before_request(refuse_nul)
web.before_request(check_csrf)
