"""Pages follow the caller's roles: buttons, read-only fields, hidden fields, owner."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask

from tailorcrm.platform import Platform
from tailorcrm.platform.access import create_team, set_team, set_user_roles
from tailorcrm.platform.auth import create_user, find_user
from tests.conftest import SALES_PACK, load_pack

from .web_helpers import (
    PASSWORD,
    Browser,
    by_id,
    create,
    elements,
    fetch,
    text_of,
    token_of,
)


def _roles() -> list[tuple[str, Any]]:
    return [
        (path.name, json.loads(path.read_text()))
        for path in sorted((SALES_PACK / "roles").glob("*.json"))
    ]


def _signed_in(app: Flask, platform: Platform, name: str, role: str) -> Browser:
    with platform.transaction() as (connection, catalog):
        create_user(connection, name, PASSWORD)
        set_user_roles(connection, catalog, name, [role])
    client = app.test_client()
    token = token_of(client.get("/login").get_data(as_text=True))
    client.post(
        "/login", data={"username": name, "password": PASSWORD, "csrf_token": token}
    )
    return Browser(client, platform)


class Office:
    """Two reps in one team, an auditor, and an opportunity owned by each rep."""

    def __init__(self, app: Flask, platform: Platform) -> None:
        platform.store.apply([*load_pack(), *_roles()], actor="test")
        self.rep = _signed_in(app, platform, "mina.field", "sales_rep")
        self.mate = _signed_in(app, platform, "theo.field", "sales_rep")
        self.auditor = _signed_in(app, platform, "iris.books", "auditor")
        with platform.transaction() as (connection, catalog):
            create_team(connection, "north")
            set_team(connection, catalog, "north", members=["mina.field", "theo.field"])
            mine = find_user(connection, "mina.field").id
            theirs = find_user(connection, "theo.field").id
        self.mine = create(
            platform,
            "opportunity",
            title="Harbour cranes",
            owner_id=mine,
            erp_code="ERP-SECRET-1",
            probability=40,
        )["id"]
        self.theirs = create(
            platform, "opportunity", title="Dock lights", owner_id=theirs
        )["id"]


@pytest.fixture
def office(app: Flask, platform: Platform) -> Office:
    return Office(app, platform)


def _page(browser: Browser, path: str) -> str:
    response = browser.get(path)
    assert response.status_code == 200, path
    return response.get_data(as_text=True)


def _links(page: str) -> set[str]:
    return {e.text.strip() for e in elements(page) if e.tag in ("a", "button")}


def test_the_list_offers_only_what_the_role_allows(office: Office) -> None:
    rep = _links(_page(office.rep, "/app/opportunity"))
    auditor = _links(_page(office.auditor, "/app/opportunity"))

    assert "New Opportunity" in rep
    assert "Export CSV" in rep
    assert "Import CSV" not in rep  # sales_rep has no import on opportunities
    assert "New Opportunity" not in auditor
    assert "Delete selected…" not in auditor
    assert "Export CSV" in auditor


def test_edit_and_delete_show_on_the_callers_own_record_only(office: Office) -> None:
    own = _page(office.rep, f"/app/opportunity/{office.mine}")
    teammates = _page(office.rep, f"/app/opportunity/{office.theirs}")

    assert {"Edit", "Delete…"} <= _links(own)
    assert not {"Edit", "Delete…"} & _links(teammates)
    assert "Owned by mina.field" in own
    assert "Owned by theo.field" in teammates
    assert office.rep.get(f"/app/opportunity/{office.theirs}/edit").status_code == 403
    assert office.rep.get(f"/app/opportunity/{office.theirs}/delete").status_code == 403
    assert office.auditor.get("/app/opportunity/new").status_code == 403


def test_hidden_fields_are_absent_and_read_only_ones_are_not_sent(
    office: Office,
) -> None:
    detail = _page(office.rep, f"/app/opportunity/{office.mine}")
    form = _page(office.rep, f"/app/opportunity/{office.mine}/edit")
    named = {e.get("name") for e in elements(form) if e.tag in ("input", "select")}

    assert "ERP-SECRET-1" not in detail
    assert "ERP-SECRET-1" not in form
    assert "erp_code" not in named
    assert "probability" not in named
    assert "title" in named
    assert "40" in detail  # the read-only probability is shown


def test_a_role_without_import_gets_403_from_the_import_page(office: Office) -> None:
    assert office.rep.get("/app/opportunity/import").status_code == 403
    assert office.auditor.get("/app/contact/export.csv").status_code == 403


def test_a_read_only_field_reads_on_the_form_as_on_the_record_page(
    app: Flask, platform: Platform
) -> None:
    # A role that may change leads but not their status, what they are
    # interested in, nor whether they were converted.
    role = {
        "kind": "role",
        "name": "lead_keeper",
        "label": "Lead keeper",
        "entities": {
            "sales_lead": {
                "read": "all",
                "edit": "all",
                "fields": dict.fromkeys(
                    ["status", "interests", "converted"], "read_only"
                ),
            }
        },
    }
    platform.store.apply([*load_pack(), ("lead_keeper.json", role)], actor="test")
    keeper = _signed_in(app, platform, "ada.keep", "lead_keeper")
    lead = create(
        platform,
        "sales_lead",
        full_name="Ines Marlow",
        company="Marlow Mills",
        status="working",
        interests=["training", "hardware"],
        converted=True,
    )

    form = _page(keeper, f"/app/sales_lead/{lead['id']}/edit")

    names = ("status", "interests", "converted")
    shown = {name: by_id(form, f"f-{name}") for name in names}
    assert {name: e["value"] for name, e in shown.items()} == {
        "status": "Working",
        "interests": "Training, Hardware",
        "converted": "Yes",
    }
    assert all("readonly" in e.attrs for e in shown.values())


def _nameless(
    app: Flask,
    platform: Platform,
    rights: dict[str, str],
    *,
    deals: dict[str, str] | None = None,
) -> tuple[Browser, int, int]:
    """Sign in a user whose role has ``rights`` on accounts but cannot see their
    names, and ``deals`` on opportunities (reads them by default); return them,
    an account and a deal of it."""
    role = {
        "kind": "role",
        "name": "nameless",
        "label": "Nameless",
        "entities": {
            "account": {**rights, "fields": {"name": "hidden"}},
            "opportunity": deals or {"read": "all"},
        },
    }
    platform.store.apply([*load_pack(), ("nameless.json", role)], actor="test")
    user = _signed_in(app, platform, "oli.nameless", "nameless")
    account = create(platform, "account", name="Quillon Barges")["id"]
    deal = create(platform, "opportunity", title="Barge refit", account=account)["id"]
    return user, account, deal


def test_a_record_whose_display_field_is_hidden_goes_by_its_label_and_id(
    app: Flask, platform: Platform
) -> None:
    # Pages named such a record by its bare id ("3"), where its own page says
    # "Account #3".
    reader, account, deal = _nameless(app, platform, {"read": "all"})

    record = _page(reader, f"/app/account/{account}")
    history = _page(reader, f"/app/account/{account}/history")
    deal_page = _page(reader, f"/app/opportunity/{deal}")

    assert f"Account #{account}" in record
    assert f"History of Account #{account}" in history
    link = next(
        e for e in elements(deal_page) if e.get("href") == f"/app/account/{account}"
    )
    assert link.text.strip() == f"Account #{account}"
    assert "Quillon Barges" not in record + history + deal_page


def test_the_type_ahead_names_a_record_whose_display_field_is_hidden_by_label(
    app: Flask, platform: Platform
) -> None:
    # It offered the bare id ("3"), where the record's own page and the lookup
    # on a form name it "Account #3".
    reader, account, _ = _nameless(app, platform, {"read": "all"})
    more = [create(platform, "account", name=f"Barge {n}")["id"] for n in range(10)]

    offered = reader.get("/app/account/lookup?q=")

    # In the order of their ids, not of the ids' text (#1, #10, #2).
    assert offered.json == [
        {"id": record_id, "name": f"Account #{record_id}"}
        for record_id in [account, *more][:10]
    ]


def test_a_record_whose_display_field_is_hidden_is_found_by_the_name_shown(
    app: Flask, platform: Platform
) -> None:
    # Pages name such a record "Account #3", but a lookup's box took only the
    # bare id ("3") typed back: the name shown was "No Account is named".
    rights = {"read": "all", "create": "all"}
    author, account, _ = _nameless(app, platform, {"read": "all"}, deals=rights)

    response = author.post(
        "/app/opportunity/new",
        {
            "title": "Hull survey",
            "account": "",
            "account__search": f"account #{account}",
        },
    )

    assert response.status_code == 303, text_of(response.get_data(as_text=True))
    saved = fetch(platform, "opportunity", int(response.location.rsplit("/", 1)[1]))
    assert saved["account"] == account


def test_a_refused_delete_names_a_record_whose_display_field_is_hidden_once(
    app: Flask, platform: Platform
) -> None:
    # The refusal quoted the name it was given after the entity's label:
    # "Account “Account #3”".
    remover, account, _ = _nameless(app, platform, {"read": "all", "delete": "all"})

    remover.post(
        "/app/account/bulk",
        {"action": "delete_confirmed", "ids": [str(account)], "state": ""},
    )
    listed = text_of(_page(remover, "/app/account"))

    assert (
        f"Nothing was deleted: other records refer to Account #{account}, which "
        "keeps it from being deleted."
    ) in listed


def _user_id(platform: Platform, name: str) -> int:
    with platform.engine.connect() as connection:
        found = find_user(connection, name)
    assert found is not None
    return found.id


def test_a_lookup_to_a_record_the_caller_cannot_read_is_not_a_link(
    office: Office,
) -> None:
    # An account of nobody in the rep's team, named on the rep's own deal: the
    # pages name it by its id only, and send the rep to no page that answers 404.
    hidden = create(office.rep.platform, "account", name="Quillon Barges")["id"]
    deal = create(
        office.rep.platform,
        "opportunity",
        title="Barge refit",
        owner_id=_user_id(office.rep.platform, "mina.field"),
        account=hidden,
    )["id"]
    assert office.rep.get(f"/app/account/{hidden}").status_code == 404

    deal_page = f"/app/opportunity/{deal}"
    for path in ("/app/opportunity", deal_page, f"{deal_page}/history"):
        page = _page(office.rep, path)
        hrefs = {e.get("href") for e in elements(page) if e.tag == "a"}
        assert f"/app/account/{hidden}" not in hrefs, path
        assert "Quillon Barges" not in page
    assert f"#{hidden}" in _page(office.rep, deal_page)


def test_a_read_only_number_reads_on_the_form_as_on_the_record_page(
    office: Office,
) -> None:
    # The rep may change their account but not its revenue: the form shows it
    # as the record page does, money and all.
    account = create(
        office.rep.platform,
        "account",
        name="Brindlecott Mills",
        annual_revenue="45140000",
        owner_id=_user_id(office.rep.platform, "mina.field"),
    )["id"]
    detail = _page(office.rep, f"/app/account/{account}")
    form = _page(office.rep, f"/app/account/{account}/edit")

    assert "$45,140,000.00" in detail
    assert by_id(form, "f-annual_revenue")["value"] == "$45,140,000.00"
    assert "readonly" in by_id(form, "f-annual_revenue").attrs


def test_rows_have_no_tick_boxes_when_nothing_can_be_done_with_them(
    office: Office,
) -> None:
    # The rep may neither export nor delete accounts: ticking rows would lead
    # nowhere, so the list offers no tick boxes and no bar to act on them.
    create(office.rep.platform, "account", name="Brindlecott Mills")
    create(
        office.rep.platform,
        "account",
        name="Ostry Lanes",
        owner_id=_user_id(office.rep.platform, "mina.field"),
    )
    accounts = _page(office.rep, "/app/account")
    deals = _page(office.rep, "/app/opportunity")

    assert "Ostry Lanes" in accounts
    assert not [
        e
        for e in elements(accounts)
        if e.get("type") == "checkbox"
        and (e.get("name") == "ids" or "data-select-all" in e.attrs)
    ]
    assert "Tick rows to act on them" not in accounts
    assert [e for e in elements(deals) if e.get("name") == "ids"]
    assert "Tick rows to act on them" in deals


def test_the_list_tells_how_many_listed_rows_an_export_leaves_out(
    office: Office,
) -> None:
    # The rep reads the team's opportunities but exports only their own: the
    # list says so beside its export, rather than let the file be short.
    listed = _page(office.rep, "/app/opportunity")
    exported = office.rep.get("/app/opportunity/export.csv").get_data(as_text=True)
    manager = _signed_in(
        office.rep.client.application, office.rep.platform, "nell.hart", "auditor"
    )

    assert "Dock lights" in listed
    assert "Dock lights" not in exported
    assert (
        "Export CSV leaves out 1 of the 2 opportunities listed: you may export "
        "only the ones you own." in listed
    )
    assert "leaves out" not in _page(manager, "/app/opportunity")


def test_selected_rows_that_may_not_be_exported_are_named_not_dropped(
    office: Office,
) -> None:
    office.rep.get("/app/opportunity")
    response = office.rep.post(
        "/app/opportunity/bulk",
        {"action": "export", "ids": [office.mine, office.theirs], "state": ""},
    )
    response.close()  # a file would hold its transaction open until read
    only_mine = office.rep.post(
        "/app/opportunity/bulk",
        {"action": "export", "ids": [office.mine], "state": ""},
    )

    assert response.status_code == 303
    page = _page(office.rep, response.headers["Location"])
    assert (
        "Nothing was exported: 1 of the 2 selected opportunities is one you may "
        "not export (you may export only the ones you own). Untick it and export "
        "again." in page
    )
    assert only_mine.status_code == 200
    assert "Harbour cranes" in only_mine.get_data(as_text=True)
