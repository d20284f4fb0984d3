"""Entities and helpers shared by the rule tests (invented names throughout)."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from tailorcrm.platform import Platform
from tailorcrm.platform.importer import ImportReport, import_csv
from tailorcrm.platform.records import SYSTEM_ACTOR, RecordService
from tests.conftest import Api


def _picklist(name: str, label: str, *values: str, **extra: Any) -> dict[str, Any]:
    options = [{"value": value, "label": value.title()} for value in values]
    return {
        "name": name,
        "type": "picklist",
        "label": label,
        "options": options,
        **extra,
    }


ACCOUNT = {
    "name": "account",
    "label": "Account",
    "display_field": "name",
    "fields": [
        {"name": "name", "type": "text", "label": "Name", "required": True},
        _picklist("industry", "Industry", "retail", "energy", "finance"),
        {"name": "won_total", "type": "currency", "label": "Won total"},
        {"name": "won_count", "type": "integer", "label": "Won deals"},
        {"name": "last_close", "type": "date", "label": "Last close"},
        _picklist("tier", "Tier", "standard", "gold"),
        {"name": "notes", "type": "textarea", "label": "Notes"},
        {
            "name": "parent",
            "type": "lookup",
            "target": "account",
            "label": "Parent",
            "on_delete": "set_null",
        },
    ],
}

OPPORTUNITY = {
    "name": "opportunity",
    "label": "Opportunity",
    "display_field": "title",
    "fields": [
        {"name": "title", "type": "text", "label": "Title", "required": True},
        {"name": "account", "type": "lookup", "target": "account", "label": "Account"},
        _picklist(
            "stage",
            "Stage",
            "prospecting",
            "negotiation",
            "won",
            "lost",
            default="prospecting",
        ),
        {"name": "amount", "type": "currency", "label": "Amount"},
        {"name": "quantity", "type": "integer", "label": "Quantity"},
        {"name": "unit_price", "type": "currency", "label": "Unit price"},
        {"name": "total", "type": "currency", "label": "Total"},
        {"name": "loss_reason", "type": "textarea", "label": "Loss reason"},
        {"name": "industry", "type": "text", "label": "Account industry"},
        {"name": "close_date", "type": "date", "label": "Close date"},
        {"name": "next_step", "type": "text", "label": "Next step"},
        {"name": "touches", "type": "integer", "label": "Touches"},
        {"name": "erp_code", "type": "text", "label": "ERP code", "external_id": True},
    ],
}

TASK = {
    "name": "task",
    "label": "Task",
    "display_field": "subject",
    "fields": [
        {"name": "subject", "type": "text", "label": "Subject", "required": True},
        {
            "name": "opportunity",
            "type": "lookup",
            "target": "opportunity",
            "label": "Opportunity",
            "on_delete": "set_null",
        },
        {"name": "done", "type": "boolean", "label": "Done"},
        {"name": "about", "type": "text", "label": "About"},
    ],
}

LOSS_REASON_REQUIRED = {
    "kind": "rule",
    "name": "loss_reason_required",
    "entity": "opportunity",
    "type": "validation",
    "label": "Loss reason is required when the stage is lost",
    "condition": {
        "and": [
            {"==": [{"var": "stage"}, "lost"]},
            {"is_blank": {"var": "loss_reason"}},
        ]
    },
    "message": "Say why the opportunity was lost.",
    "field": "loss_reason",
}

WON_TOTAL = {
    "kind": "rule",
    "name": "won_total",
    "entity": "account",
    "type": "rollup",
    "label": "Total of won opportunities",
    "field": "won_total",
    "relation": {"entity": "opportunity", "lookup": "account"},
    "function": "sum",
    "of": "amount",
    "condition": {"==": [{"var": "stage"}, "won"]},
}

OPPORTUNITY_INDUSTRY = {
    "kind": "rule",
    "name": "opportunity_industry",
    "entity": "opportunity",
    "type": "formula",
    "label": "Industry of the account",
    "field": "industry",
    "expression": {"var": "account.industry"},
}


def rule(name: str, entity: str, kind: str, **parts: Any) -> dict[str, Any]:
    """A rule document with a label made up from its name."""
    return {
        "kind": "rule",
        "name": name,
        "entity": entity,
        "type": kind,
        "label": name.replace("_", " ").capitalize(),
        **parts,
    }


def creates_on_create(
    name: str, entity: str, target: str, values: dict[str, Any], **parts: Any
) -> dict[str, Any]:
    """An automation that creates a ``target`` record with ``values`` whenever a
    record of ``entity`` is created."""
    action = {"type": "create_record", "entity": target, "values": values}
    return rule(name, entity, "automation", trigger="create", actions=[action], **parts)


def with_unique(document: dict[str, Any], field: str) -> dict[str, Any]:
    """A copy of entity ``document`` whose ``field`` is unique."""
    fields = [
        {**spec, "unique": True} if spec["name"] == field else spec
        for spec in document["fields"]
    ]
    return {**document, "fields": fields}


def create(api: Api, entity: str, **values: Any) -> dict[str, Any]:
    """Create a record through the API; it must be accepted."""
    response = api.post(f"/{entity}", json=values)
    assert response.status_code == 201, response.json
    record: dict[str, Any] = response.json
    return record


def define(api: Api, *documents: dict[str, Any]) -> None:
    """Create or change entity and rule documents; each must be accepted."""
    for document in documents:
        if document.get("kind") == "rule":
            response = api.put(f"/meta/rules/{document['name']}", json=document)
        else:
            response = api.put(f"/meta/entities/{document['name']}", json=document)
        assert response.status_code in (200, 201), response.json


def problems(response: Any) -> list[tuple[str | None, str]]:
    """The ``(field, code)`` pairs of a problem document."""
    return [(error["field"], error["code"]) for error in response.json["errors"]]


def load_csv(
    platform: Platform, entity: str, text: str, **options: Any
) -> ImportReport:
    """Import CSV ``text`` into ``entity`` (as the system, unless told otherwise)."""
    options.setdefault("actor", SYSTEM_ACTOR)
    return import_csv(platform, entity, io.BytesIO(text.encode()), **options)


def waiting_for_a_lock(platform: Platform) -> bool:
    """Whether a transaction of the test's database waits for a row lock."""
    query = sa.text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    for _ in range(200):
        with platform.engine.connect() as connection:
            if connection.execute(query).scalar():
                return True
        time.sleep(0.05)
    return False


def saved_behind(
    platform: Platform,
    first: Callable[[RecordService], object],
    second: Callable[[RecordService], object],
) -> list[BaseException]:
    """Make the save ``first`` and, before it commits, the save ``second`` in
    another thread, which must wait for a row lock that ``first`` holds; then
    commit ``first`` and let ``second`` finish.

    Returns what ``second`` raised (nothing when it saved).
    :raises AssertionError: ``second`` did not wait for a lock.
    """
    failed: list[BaseException] = []

    def run_second() -> None:
        try:
            with platform.records(SYSTEM_ACTOR) as records:
                second(records)
        except BaseException as error:  # noqa: BLE001 - reported by the test
            failed.append(error)

    with platform.records(SYSTEM_ACTOR) as records:
        first(records)
        other = threading.Thread(target=run_second)
        other.start()
        waited = waiting_for_a_lock(platform)
    other.join()
    assert waited, "the second save did not wait for the first"
    return failed
