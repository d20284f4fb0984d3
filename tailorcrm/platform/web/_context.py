"""What every page needs: the signed-in user's session, addresses, rendering."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from flask import Response, current_app, get_flashed_messages, request, url_for
from flask_login import current_user

from ...errors import TailorError, Unauthorized
from ...metadata import Catalog, ascii_digits
from ...renderer import Renderer, pick_locale
from .._app import Session, platform
from ._security import csrf_token


class WebLinks:
    """Addresses of the generated pages, for page models and templates."""

    def home(self) -> str:
        return url_for("web.home")

    def logout(self) -> str:
        return url_for("web.logout")

    def static(self, path: str) -> str:
        return url_for("web.static", filename=path)

    def list(self, entity: str) -> str:
        return url_for("web.list_page", entity_name=entity)

    def record(self, entity: str, record_id: int) -> str:
        return url_for("web.detail_page", entity_name=entity, record_id=record_id)

    def new(self, entity: str, prefill: Mapping[str, Any] | None = None) -> str:
        address = url_for("web.new_page", entity_name=entity)
        return f"{address}?{urlencode(prefill)}" if prefill else address

    def edit(self, entity: str, record_id: int) -> str:
        return url_for("web.edit_page", entity_name=entity, record_id=record_id)

    def delete(self, entity: str, record_id: int) -> str:
        return url_for("web.delete_page", entity_name=entity, record_id=record_id)

    def bulk(self, entity: str) -> str:
        return url_for("web.bulk_action", entity_name=entity)

    def export(self, entity: str, params: Mapping[str, Any] | None = None) -> str:
        address = url_for("web.export_csv", entity_name=entity)
        return f"{address}?{urlencode(params, doseq=True)}" if params else address

    def lookup(self, entity: str) -> str:
        return url_for("web.lookup_search", entity_name=entity)

    def related(self, entity: str) -> str:
        return url_for("web.related_record", entity_name=entity)

    def import_page(self, entity: str) -> str:
        return url_for("web.import_page", entity_name=entity)

    def history(self, entity: str, record_id: int, cursor: str | None = None) -> str:
        address = url_for("web.history_page", entity_name=entity, record_id=record_id)
        return f"{address}?{urlencode({'cursor': cursor})}" if cursor else address

    def revisions(self) -> str:
        return url_for("web.revisions_page")

    def revision(self, revision: int) -> str:
        return url_for("web.revision_page", revision=revision)


LINKS = WebLinks()


@dataclass(frozen=True)
class NavItem:
    name: str
    label: str
    href: str
    description: str
    current: bool


def nav_items(catalog: Catalog, current: str | None = None) -> list[NavItem]:
    """The entities shown in the menu, in label order."""
    entities = sorted(catalog.live(), key=lambda entity: entity.label.lower())
    return [
        NavItem(
            name=entity.name,
            label=str(entity.document.get("label_plural") or entity.label),
            href=LINKS.list(entity.name),
            description=str(entity.document.get("description", "")),
            current=entity.name == current,
        )
        for entity in entities
    ]


def locale() -> str:
    return pick_locale([value for value, _ in request.accept_languages])


def renderer() -> Renderer:
    found: Renderer = current_app.extensions["tailorcrm.renderer"]
    return found


@contextmanager
def web_session(*, write: bool = False) -> Iterator[Session]:
    """The signed-in user's transaction, user and catalog.

    :raises Unauthorized: nobody is signed in, the session ended or expired, or
        the account was deactivated.
    """
    if not current_user.is_authenticated:
        raise Unauthorized("Sign in to continue.")
    with platform().user_session(current_user.get_id(), write=write) as found:
        yield found


def render(
    template: str,
    *,
    title: str,
    session: Session | None = None,
    current: str | None = None,
    status: int = 200,
    **context: Any,
) -> Response:
    """Render a page with the layout every page shares."""
    html = renderer().render(
        template,
        page_title=title,
        links=LINKS,
        user=session.user if session else None,
        nav=nav_items(session.catalog, current) if session else [],
        csrf_token=csrf_token(),
        messages=get_flashed_messages(with_categories=True),
        lang=locale().split("_")[0],
        **context,
    )
    return Response(html, status=status, mimetype="text/html")


def reasons(error: TailorError) -> str:
    """An error's message with the message of each of its problems, for a notice
    on a page (a roll-up that refuses a delete says which rule and why)."""
    said = [error.message]
    for problem in error.problems:
        if problem.message not in said:
            said.append(problem.message)
    return " ".join(said)


def whole_number(text: str | None, default: int) -> int:
    """A form's or an address's whole number (a page's start, a version), or
    ``default`` for anything else: blank, signed, not ASCII digits, or too long."""
    if text and ascii_digits(text) and len(text) < 12:
        return int(text)
    return default
