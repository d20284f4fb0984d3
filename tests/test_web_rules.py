"""Rules in the pages: field state rendered by the server, forms refused by rules,
section visibility, and the sales pack's rules on every path.

Every test runs on SQLite and on PostgreSQL, over the sales pack as
``tailorcrm init --demo`` installs it: entities, layouts and rules.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from typing import Any

import pytest
from flask import Flask

from tailorcrm.errors import InvalidMetadata, ValidationFailed
from tailorcrm.platform import Platform
from tailorcrm.platform.auth import create_token, create_user
from tailorcrm.platform.cli import load_documents
from tailorcrm.platform.importer import ImportFailed, import_csv
from tailorcrm.platform.records import SYSTEM_ACTOR
from tests.conftest import SALES_PACK
from tests.rules_support import rule
from tests.web_helpers import (
    Browser,
    Element,
    by_id,
    create,
    elements,
    fetch,
    sign_in,
    sign_in_with_roles,
    text_of,
)

LOSS_CONDITION = {"==": [{"var": "stage"}, "lost"]}


@pytest.fixture
def pack(platform: Platform) -> Platform:
    platform.store.apply(load_documents(SALES_PACK), actor="test")
    return platform


@pytest.fixture
def browser(app: Flask, pack: Platform) -> Browser:
    return sign_in(app, pack)


def page_of(browser: Browser, path: str) -> str:
    response = browser.get(path)
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


def field_box(page: str, name: str) -> Element:
    found = [e for e in elements(page) if e.get("data-field") == name]
    assert len(found) == 1, f"{len(found)} fields named {name!r}"
    return found[0]


def section_labelled(page: str, label: str) -> Element:
    """The <section> whose heading is ``label``."""
    found = elements(page)
    for index, element in enumerate(found):
        if element.tag == "h2" and element.text == label:
            sections = [e for e in found[:index] if e.tag == "section"]
            return sections[-1]
    raise AssertionError(f"no section is labelled {label!r}")


def field_messages(page: str, name: str) -> list[str]:
    """The messages listed under one field."""
    found = elements(page)
    start = next(i for i, e in enumerate(found) if e.get("id") == f"f-{name}-errors")
    messages = []
    for element in found[start + 1 :]:
        if element.tag not in ("li", "span"):
            break
        if element.tag == "span":
            # "Error: " is for screen readers; the message follows it.
            messages.append(element.raw_text.removeprefix("Error:").strip())
    return messages


def posted(**values: Any) -> dict[str, Any]:
    """A new opportunity's form, as the browser sends it."""
    form = {
        "title": "",
        "account": "",
        "account__search": "",
        "product": "",
        "product__search": "",
        "amount": "",
        "erp_code": "",
        "stage": "prospecting",
        "probability": "",
        "close_date": "",
        "next_step": "",
        "loss_reason": "",
    }
    form.update(values)
    return form


def edit_form(record: dict[str, Any], **values: Any) -> dict[str, Any]:
    """An edit form of a stored opportunity, as the browser sends it unchanged."""
    form = posted(
        title=record["title"],
        stage=record["stage"] or "",
        amount="" if record["amount"] is None else str(record["amount"]),
        probability=(
            "" if record["probability"] is None else str(record["probability"])
        ),
        close_date=record["close_date"] or "",
        next_step=record["next_step"] or "",
        loss_reason=record["loss_reason"] or "",
        _version=str(record["version"]),
    )
    form.update(values)
    return form


# -- the loss reason rule in the form -----------------------------------------------


def test_the_loss_reason_rule_refuses_the_form_beside_loss_reason_keeping_values(
    browser: Browser, pack: Platform
) -> None:
    browser.get("/app/opportunity/new")

    response = browser.post(
        "/app/opportunity/new",
        posted(title="Harbour crane", stage="lost", amount="1200.50"),
    )

    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert field_messages(page, "loss_reason") == ["Say why the opportunity was lost."]
    assert "Loss reason: Say why the opportunity was lost." in text_of(page)
    assert by_id(page, "f-title")["value"] == "Harbour crane"
    assert by_id(page, "f-amount")["value"] == "1200.50"
    stage = [e for e in elements(page) if e.tag == "option" and "selected" in e.attrs]
    assert [e["value"] for e in stage] == ["lost"]
    assert "hidden" not in field_box(page, "loss_reason").attrs
    assert by_id(page, "f-loss_reason")["aria-required"] == "true"
    with pack.engine.connect() as connection:
        found = connection.exec_driver_sql("SELECT count(*) FROM opportunity").scalar()
    assert found == 0


def test_a_form_refused_by_what_an_automation_set_names_the_automation(
    browser: Browser, pack: Platform
) -> None:
    # The automation marks crane deals lost, which the pack's rule refuses
    # without a loss reason: the problem is the record's own, beside its field,
    # and the summary says which automation made the change.
    lose_cranes = rule(
        "lose_cranes",
        "opportunity",
        "automation",
        trigger="create",
        condition={"in": ["crane", {"var": "title"}]},
        actions=[{"type": "set_field", "field": "stage", "value": "lost"}],
    )
    pack.store.apply([("", lose_cranes)], actor="test")
    browser.get("/app/opportunity/new")

    response = browser.post("/app/opportunity/new", posted(title="Harbour crane"))

    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert field_messages(page, "loss_reason") == ["Say why the opportunity was lost."]
    assert "The automation 'lose_cranes' could not save Opportunity" in text_of(page)


def test_a_problem_on_the_record_an_automation_updates_is_named_by_its_labels(
    browser: Browser, pack: Platform
) -> None:
    # The automation writes the deal's title into its account's postal code,
    # which holds 20 characters: the problem is the account's, and was shown
    # beside the deal's Account field as "account.billing_postal_code".
    post_code = rule(
        "title_as_post_code",
        "opportunity",
        "automation",
        trigger="update",
        actions=[
            {
                "type": "update_related",
                "lookup": "account",
                "values": {"billing_postal_code": {"var": "title"}},
            }
        ],
    )
    pack.store.apply([("", post_code)], actor="test")
    account = create(pack, "account", name="Quillon Mills")
    deal = create(pack, "opportunity", title="Looms", account=account["id"])
    browser.get(f"/app/opportunity/{deal['id']}/edit")

    response = browser.post(
        f"/app/opportunity/{deal['id']}/edit",
        edit_form(
            deal,
            title="Loom belts for the whole northern weaving shed",
            account=str(account["id"]),
            account__search="Quillon Mills",
        ),
    )

    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "has-error" not in field_box(page, "account").get("class", "")
    assert "Account · Billing postal code: " in text_of(page)
    assert "account.billing_postal_code" not in page


def test_a_problem_a_rule_puts_on_a_column_every_record_has_is_named_by_its_label(
    browser: Browser, pack: Platform
) -> None:
    # A validation may name the owner, which no form places: its problem is
    # listed for the record as "Owner: ...", not as "owner_id: ...".
    own_deals = rule(
        "no_owner_title",
        "opportunity",
        "validation",
        field="owner_id",
        condition={"==": [{"var": "title"}, "Unowned"]},
        message="Give the deal to someone.",
    )
    pack.store.apply([("", own_deals)], actor="test")
    browser.get("/app/opportunity/new")

    response = browser.post("/app/opportunity/new", posted(title="Unowned"))

    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Owner: Give the deal to someone." in text_of(page)
    assert "owner_id" not in text_of(page)


def test_a_form_with_the_loss_reason_saves_and_the_record_page_shows_it(
    browser: Browser, pack: Platform
) -> None:
    browser.get("/app/opportunity/new")

    response = browser.post(
        "/app/opportunity/new",
        posted(title="Harbour crane", stage="lost", loss_reason="Chose a rival"),
    )

    assert response.status_code == 303
    page = page_of(browser, response.headers["Location"])
    assert "Loss reason" in text_of(page)
    assert "Chose a rival" in text_of(page)


# -- field state rendered by the server ---------------------------------------------


def test_loss_reason_is_hidden_on_a_new_form_and_shown_required_once_lost(
    browser: Browser, pack: Platform
) -> None:
    lost = create(pack, "opportunity", title="Quay", stage="lost", loss_reason="Late")

    fresh = page_of(browser, "/app/opportunity/new")
    editing = page_of(browser, f"/app/opportunity/{lost['id']}/edit")

    hidden_box = field_box(fresh, "loss_reason")
    assert "hidden" in hidden_box.attrs
    assert json.loads(hidden_box["data-visible-if"]) == LOSS_CONDITION
    assert json.loads(hidden_box["data-required-if"]) == LOSS_CONDITION
    assert "hidden" in section_labelled(fresh, "Why we lost").attrs
    assert by_id(fresh, "f-loss_reason").get("aria-required") is None
    marks = [e for e in elements(fresh) if "data-required-mark" in e.attrs]
    assert all("hidden" in mark.attrs for mark in marks)
    shown_box = field_box(editing, "loss_reason")
    assert "hidden" not in shown_box.attrs
    assert "hidden" not in section_labelled(editing, "Why we lost").attrs
    assert by_id(editing, "f-loss_reason")["aria-required"] == "true"
    assert "Loss reason * (required)" in text_of(editing)


def test_the_state_after_an_error_follows_the_posted_values(
    browser: Browser, pack: Platform
) -> None:
    lost = create(pack, "opportunity", title="Quay", stage="lost", loss_reason="Late")
    browser.get(f"/app/opportunity/{lost['id']}/edit")

    response = browser.post(
        f"/app/opportunity/{lost['id']}/edit",
        edit_form(lost, title="", stage="won"),
    )

    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "hidden" in field_box(page, "loss_reason").attrs
    assert "hidden" not in field_box(page, "title").attrs


def test_a_hidden_field_is_sent_and_keeps_its_value(
    browser: Browser, pack: Platform
) -> None:
    lost = create(pack, "opportunity", title="Quay", stage="lost", loss_reason="Late")
    browser.get(f"/app/opportunity/{lost['id']}/edit")

    response = browser.post(
        f"/app/opportunity/{lost['id']}/edit", edit_form(lost, stage="negotiation")
    )

    assert response.status_code == 303
    saved = fetch(pack, "opportunity", lost["id"])
    assert (saved["stage"], saved["loss_reason"]) == ("negotiation", "Late")
    page = page_of(browser, f"/app/opportunity/{lost['id']}/edit")
    box = field_box(page, "loss_reason")
    assert "hidden" in box.attrs
    assert by_id(page, "f-loss_reason").raw_text.strip() == "Late"


def test_the_record_page_leaves_out_fields_whose_visible_if_is_false(
    browser: Browser, pack: Platform
) -> None:
    won = create(pack, "opportunity", title="Jetty", stage="won", amount=100)
    lost = create(pack, "opportunity", title="Quay", stage="lost", loss_reason="Late")

    won_page = page_of(browser, f"/app/opportunity/{won['id']}")
    lost_page = page_of(browser, f"/app/opportunity/{lost['id']}")

    assert "Loss reason" not in text_of(won_page)
    assert "Why we lost" not in text_of(won_page)
    assert "Loss reason Late" in text_of(lost_page)


def test_computed_fields_are_shown_read_only_and_never_sent(
    browser: Browser, pack: Platform
) -> None:
    deal = create(
        pack, "opportunity", title="Jetty", amount=200, probability=25, stage="proposal"
    )

    fresh = page_of(browser, "/app/opportunity/new")
    editing = page_of(browser, f"/app/opportunity/{deal['id']}/edit")
    response = browser.post(
        f"/app/opportunity/{deal['id']}/edit",
        edit_form(deal, probability="50", weighted_amount="1"),
    )

    assert "f-weighted_amount" not in fresh
    shown = by_id(editing, "f-weighted_amount")
    assert (shown["value"], "readonly" in shown.attrs) == ("$50.00", True)
    assert shown.get("name") is None
    assert response.status_code == 303
    assert fetch(pack, "opportunity", deal["id"])["weighted_amount"] == 100


def test_a_new_form_shows_what_a_default_rule_fills_in(browser: Browser) -> None:
    in_30_days = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=30)

    page = page_of(browser, "/app/opportunity/new")

    assert by_id(page, "f-close_date")["value"] == in_30_days.isoformat()


def test_conditions_reach_the_page_as_json_that_no_text_in_them_breaks(
    browser: Browser, pack: Platform
) -> None:
    tricky = {"==": [{"var": "next_step"}, "it's <script>&\"'"]}
    shown_if = rule(
        "erp_code_tricky",
        "opportunity",
        "field_state",
        field="erp_code",
        visible_if=tricky,
    )
    pack.store.apply([("", shown_if)], actor="test")

    page = page_of(browser, "/app/opportunity/new")

    assert json.loads(field_box(page, "erp_code")["data-visible-if"]) == tricky
    assert "<script>&" not in page
    form = next(e for e in elements(page) if "data-record-form" in e.attrs)
    context = json.loads(form["data-field-state"])
    assert context["user"] == {
        "id": 1,
        "username": "dana.vega",
        "roles": ["admin"],
        "teams": [],
    }
    assert context["record"]["id"] is None


# -- read-only fields ---------------------------------------------------------------


def test_a_read_only_field_is_rendered_so_and_a_tampered_post_is_refused(
    browser: Browser, pack: Platform
) -> None:
    locked = rule(
        "won_is_final",
        "opportunity",
        "field_state",
        field="amount",
        readonly_if={"==": [{"var": "stage"}, "won"]},
    )
    stage_locked = rule(
        "lost_is_final",
        "opportunity",
        "field_state",
        field="stage",
        readonly_if=LOSS_CONDITION,
    )
    pack.store.apply([("", locked), ("", stage_locked)], actor="test")
    won = create(pack, "opportunity", title="Jetty", stage="won", amount=100)
    lost = create(pack, "opportunity", title="Quay", stage="lost", loss_reason="Late")

    won_page = page_of(browser, f"/app/opportunity/{won['id']}/edit")
    lost_page = page_of(browser, f"/app/opportunity/{lost['id']}/edit")
    kept = browser.post(
        f"/app/opportunity/{won['id']}/edit", edit_form(won, next_step="Invoice")
    )
    won = fetch(pack, "opportunity", won["id"])
    tampered = browser.post(
        f"/app/opportunity/{won['id']}/edit", edit_form(won, amount="999")
    )

    assert "readonly" in by_id(won_page, "f-amount").attrs
    select = by_id(lost_page, "f-stage")
    assert ("disabled" in select.attrs, select.get("name")) == (True, None)
    sent = [
        e for e in elements(lost_page) if e.tag == "input" and e.get("name") == "stage"
    ]
    assert [(e["type"], e["value"]) for e in sent] == [("hidden", "lost")]
    assert kept.status_code == 303
    page = tampered.get_data(as_text=True)
    assert tampered.status_code == 422
    assert field_messages(page, "amount") == ["Amount cannot be changed now."]
    assert fetch(pack, "opportunity", won["id"])["amount"] == 100


def _opportunity_changed(pack: Platform, field: str, **changes: Any) -> None:
    """Change one field of the opportunity entity, keeping the records stored."""
    with pack.reading() as (_, catalog):
        document = json.loads(json.dumps(catalog.entity("opportunity").document))
    for spec in document["fields"]:
        if spec["name"] == field:
            spec.update(changes)
    pack.store.apply([("", document)], actor="test")


def test_a_value_stored_before_its_field_s_max_was_lowered_decides_as_on_save(
    browser: Browser, pack: Platform
) -> None:
    """The save reads the stored 5,000 although the field now takes at most 2,000:
    the form and the record page judge the field state on it too."""
    big = {">": [{"var": "amount"}, 1000]}
    pack.store.apply(
        [
            (
                "",
                rule(
                    "big_is_final",
                    "opportunity",
                    "field_state",
                    field="next_step",
                    readonly_if=big,
                ),
            ),
            (
                "",
                rule(
                    "big_has_code",
                    "opportunity",
                    "field_state",
                    field="erp_code",
                    visible_if=big,
                ),
            ),
        ],
        actor="test",
    )
    deal = create(
        pack,
        "opportunity",
        title="Jetty",
        amount=5000,
        next_step="Ship",
        erp_code="J-7",
    )
    _opportunity_changed(pack, "amount", max=2000)

    form = page_of(browser, f"/app/opportunity/{deal['id']}/edit")
    record = page_of(browser, f"/app/opportunity/{deal['id']}")
    changed = browser.post(
        f"/app/opportunity/{deal['id']}/edit",
        edit_form(fetch(pack, "opportunity", deal["id"]), next_step="Hold"),
    )

    assert "readonly" in by_id(form, "f-next_step").attrs
    assert "hidden" not in field_box(form, "erp_code").attrs
    assert "ERP order number J-7" in text_of(record)
    assert changed.status_code == 422
    page = changed.get_data(as_text=True)
    assert field_messages(page, "next_step") == ["Next step cannot be changed now."]
    assert "readonly" in by_id(page, "f-next_step").attrs


def test_a_choice_no_longer_offered_decides_the_field_state_as_on_save(
    browser: Browser, pack: Platform
) -> None:
    """A deal stored as lost keeps its stage when "lost" is no longer offered: its
    loss reason stays shown, as the save judges it."""
    lost = create(pack, "opportunity", title="Quay", stage="lost", loss_reason="Late")
    with pack.reading() as (_, catalog):
        options = catalog.entity("opportunity").fields["stage"]["options"]
    kept = [option for option in options if option["value"] != "lost"]
    _opportunity_changed(pack, "stage", options=kept)

    record = page_of(browser, f"/app/opportunity/{lost['id']}")
    form = page_of(browser, f"/app/opportunity/{lost['id']}/edit")

    assert "Loss reason Late" in text_of(record)
    assert "hidden" not in field_box(form, "loss_reason").attrs


# -- a field a rule can require, left off the layout -------------------------------


@pytest.fixture
def rival_rule(pack: Platform) -> Platform:
    """Opportunities get a Rival that the pack's layout does not place, shown and
    required once a deal is lost."""
    with pack.reading() as (_, catalog):
        document = dict(catalog.entity("opportunity").document)
    document["fields"] = [
        *document["fields"],
        {"name": "rival", "type": "text", "label": "Rival"},
    ]
    state = rule(
        "rival_when_lost",
        "opportunity",
        "field_state",
        field="rival",
        visible_if=LOSS_CONDITION,
        required_if=LOSS_CONDITION,
    )
    pack.store.apply([("", document), ("", state)], actor="test")
    return pack


def test_a_field_a_rule_requires_is_in_other_fields_with_its_live_state(
    browser: Browser, rival_rule: Platform
) -> None:
    deal = create(rival_rule, "opportunity", title="Quay", stage="negotiation")
    editing = page_of(browser, f"/app/opportunity/{deal['id']}/edit")

    refused = browser.post(
        f"/app/opportunity/{deal['id']}/edit",
        edit_form(deal, stage="lost", loss_reason="Late", rival=""),
    )
    saved = browser.post(
        f"/app/opportunity/{deal['id']}/edit",
        edit_form(deal, stage="lost", loss_reason="Late", rival="Harbour & Co"),
    )

    assert json.loads(field_box(editing, "rival")["data-required-if"]) == (
        LOSS_CONDITION
    )
    assert "hidden" in field_box(editing, "rival").attrs
    assert "hidden" in section_labelled(editing, "Other fields").attrs
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422
    assert field_messages(page, "rival") == ["Rival is required here."]
    assert "hidden" not in section_labelled(page, "Other fields").attrs
    assert by_id(page, "f-rival")["aria-required"] == "true"
    assert saved.status_code == 303
    assert fetch(rival_rule, "opportunity", deal["id"])["rival"] == "Harbour & Co"


def test_a_new_form_judges_a_lookup_its_address_gives_outside_the_layout(
    browser: Browser, pack: Platform
) -> None:
    # A related list's New button links to ?account=12; the layout leaves the
    # account out, and the save keeps it all the same. Next step is required
    # while the deal has no account: neither the form nor the save asks for it.
    layout = json.loads(
        (SALES_PACK / "layouts" / "opportunity.json").read_text(encoding="utf-8")
    )
    for tab in layout["form"]["tabs"]:
        for section in tab["sections"]:
            section["items"] = [
                i for i in section["items"] if i != {"field": "account"}
            ]
    without_account = rule(
        "next_step_without_account",
        "opportunity",
        "field_state",
        field="next_step",
        required_if={"is_blank": {"var": "account"}},
    )
    pack.store.apply([("", layout), ("", without_account)], actor="test")
    harbour = create(pack, "account", name="Harbour Lights")
    address = f"/app/opportunity/new?account={harbour['id']}"

    sent = {
        name: value
        for name, value in posted().items()
        if not name.startswith("account")
    }

    shown = page_of(browser, address)
    refused = browser.post(address, sent)
    saved = browser.post(address, {**sent, "title": "Pier"})

    for page in (shown, refused.get_data(as_text=True)):
        tags = elements(page)
        box = next(i for i, e in enumerate(tags) if e.get("data-field") == "next_step")
        mark = next(e for e in tags[box:] if "data-required-mark" in e.attrs)
        form = next(e for e in tags if "data-field-state" in e.attrs)
        assert "hidden" in mark.attrs
        assert "aria-required" not in by_id(page, "f-next_step").attrs
        state = json.loads(form["data-field-state"])
        assert state["record"]["account"]["id"] == harbour["id"]
    assert refused.status_code == 422
    assert saved.status_code == 303


# -- section visibility -------------------------------------------------------------

BIG_DEAL = {">": [{"var": "amount"}, 10000]}


def big_deal_layout() -> dict[str, Any]:
    """The pack's opportunity layout, with next step in a section for big deals."""
    layout: dict[str, Any] = json.loads(
        (SALES_PACK / "layouts" / "opportunity.json").read_text(encoding="utf-8")
    )
    pipeline = layout["form"]["tabs"][0]["sections"][1]
    pipeline["items"] = [i for i in pipeline["items"] if i["field"] != "next_step"]
    layout["form"]["tabs"][0]["sections"].insert(
        2,
        {
            "label": "Big deal",
            "columns": 1,
            "visible_if": BIG_DEAL,
            "items": [{"field": "next_step"}],
        },
    )
    return layout


@pytest.fixture
def big_deals(pack: Platform) -> Platform:
    """Next step sits in a section shown for big deals, and is required there."""
    needed = rule(
        "next_step_needed",
        "opportunity",
        "field_state",
        field="next_step",
        required_if={"!=": [{"var": "stage"}, "won"]},
    )
    pack.store.apply([("", big_deal_layout()), ("", needed)], actor="test")
    return pack


def test_a_section_visible_if_hides_its_fields_on_forms_and_record_pages(
    browser: Browser, big_deals: Platform
) -> None:
    big = create(big_deals, "opportunity", title="Dock", amount=50000, next_step="Go")
    small = create(big_deals, "opportunity", title="Buoy", amount=50)

    fresh = page_of(browser, "/app/opportunity/new")
    big_form = page_of(browser, f"/app/opportunity/{big['id']}/edit")
    small_page = page_of(browser, f"/app/opportunity/{small['id']}")

    section = section_labelled(fresh, "Big deal")
    assert "hidden" in section.attrs
    assert json.loads(section["data-visible-if"]) == BIG_DEAL
    assert "hidden" in field_box(fresh, "next_step").attrs
    assert "hidden" not in section_labelled(big_form, "Big deal").attrs
    assert by_id(big_form, "f-next_step")["aria-required"] == "true"
    assert "Big deal" not in text_of(small_page)
    assert "Next step" not in text_of(small_page)


def test_the_record_service_applies_required_if_only_in_a_shown_section(
    big_deals: Platform, browser: Browser
) -> None:
    small = create(big_deals, "opportunity", title="Buoy", amount=50)
    with pytest.raises(ValidationFailed) as excinfo:
        create(big_deals, "opportunity", title="Dock", amount=50000)
    browser.get("/app/opportunity/new")
    refused = browser.post("/app/opportunity/new", posted(title="Dock", amount="50000"))
    with pytest.raises(ImportFailed) as imported:
        import_csv(
            big_deals,
            "opportunity",
            io.BytesIO(b"title,amount\nPier,20000\nRaft,20\n"),
            actor=SYSTEM_ACTOR,
        )

    assert small["next_step"] is None
    assert [(p.field, p.code) for p in excinfo.value.problems] == [
        ("next_step", "required")
    ]
    assert refused.status_code == 422
    page = refused.get_data(as_text=True)
    assert field_messages(page, "next_step") == ["Next step is required here."]
    assert "hidden" not in section_labelled(page, "Big deal").attrs
    assert [(e.row, e.field, e.code) for e in imported.value.report.errors] == [
        (2, "next_step", "required")
    ]


def loss_tab_layout() -> dict[str, Any]:
    """The pack's opportunity layout, with "Why we lost" on a tab of its own."""
    layout: dict[str, Any] = json.loads(
        (SALES_PACK / "layouts" / "opportunity.json").read_text(encoding="utf-8")
    )
    sections = layout["form"]["tabs"][0]["sections"]
    loss = next(s for s in sections if s["label"] == "Why we lost")
    sections.remove(loss)
    layout["form"]["tabs"].append({"label": "Loss", "sections": [loss]})
    return layout


def test_a_tab_with_nothing_visible_is_not_offered_unless_it_holds_a_problem(
    browser: Browser, pack: Platform
) -> None:
    pack.store.apply([("", loss_tab_layout())], actor="test")
    open_deal = create(pack, "opportunity", title="Quay", stage="negotiation")
    lost = create(pack, "opportunity", title="Pier", stage="lost", loss_reason="Late")

    fresh = page_of(browser, "/app/opportunity/new")
    editing = page_of(browser, f"/app/opportunity/{open_deal['id']}/edit")
    editing_lost = page_of(browser, f"/app/opportunity/{lost['id']}/edit")
    browser.get(f"/app/opportunity/{open_deal['id']}/edit")
    refused = browser.post(
        f"/app/opportunity/{open_deal['id']}/edit",
        edit_form(open_deal, loss_reason="x" * 2001),
    )

    for page in (fresh, editing):
        # Kept in the page, hidden, for the form's script to offer again.
        assert "hidden" in by_id(page, "tab-1-tab").attrs
        assert "hidden" in by_id(page, "tab-1").attrs
        assert "hidden" not in by_id(page, "tab-0-tab").attrs
        assert by_id(page, "tab-0-tab")["aria-selected"] == "true"
        assert by_id(page, "tab-1-tab")["aria-selected"] == "false"
    assert "hidden" not in by_id(editing_lost, "tab-1-tab").attrs
    assert "hidden" not in by_id(editing_lost, "tab-1").attrs
    # A hidden field with a problem shows, and so does its tab.
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422
    assert "hidden" not in field_box(page, "loss_reason").attrs
    assert "hidden" not in by_id(page, "tab-1-tab").attrs
    assert by_id(page, "tab-1-tab")["aria-selected"] == "true"
    assert "Loss (1 problem)" in text_of(page)


def test_a_form_left_with_one_tab_to_offer_shows_no_tab_bar(
    browser: Browser, pack: Platform
) -> None:
    pack.store.apply([("", loss_tab_layout())], actor="test")
    lost = create(pack, "opportunity", title="Pier", stage="lost", loss_reason="Late")

    fresh = page_of(browser, "/app/opportunity/new")
    editing_lost = page_of(browser, f"/app/opportunity/{lost['id']}/edit")

    # Kept in the page, hidden, for the form's script to show again.
    (bar,) = [e for e in elements(fresh) if "data-tabs" in e.attrs]
    assert "hidden" in bar.attrs
    assert "hidden" not in by_id(fresh, "tab-0").attrs
    (bar,) = [e for e in elements(editing_lost) if "data-tabs" in e.attrs]
    assert "hidden" not in bar.attrs


def test_a_section_condition_is_checked_against_the_entity_with_its_path(
    pack: Platform,
) -> None:
    layout = big_deal_layout()
    layout["form"]["tabs"][0]["sections"][2]["visible_if"] = {
        "and": [{">": [{"var": "amont"}, 1]}, {"changed": "stage"}]
    }

    with pytest.raises(InvalidMetadata) as excinfo:
        pack.store.apply([("layouts/opportunity.json", layout)], actor="test")

    where = "layouts/opportunity.json: form.tabs[0].sections[2].visible_if"
    assert [(p.field, p.code) for p in excinfo.value.problems] == [
        (f"{where}.and[0].>[0]", "unknown_field"),
        (f"{where}.and[1]", "prior_not_available"),
    ]


def _erp_code_renamed_under(
    pack: Platform, visible_if: Any
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Give the big-deal section ``visible_if``, then rename ``erp_code`` to
    ``order_number``; return the entity document and its fields as renamed."""
    layout = big_deal_layout()
    layout["form"]["tabs"][0]["sections"][2]["visible_if"] = visible_if
    pack.store.apply([("", layout)], actor="test")
    with pack.reading() as (_, catalog):
        document = dict(catalog.entity("opportunity").document)
    fields = [dict(spec) for spec in document["fields"]]
    for spec in fields:
        if spec["name"] == "erp_code":
            spec["name"] = "order_number"
    pack.store.apply([("", {**document, "fields": fields})], actor="test")
    return document, fields


def test_a_section_condition_follows_renamed_fields_and_goes_with_removed_ones(
    pack: Platform,
) -> None:
    document, fields = _erp_code_renamed_under(
        pack, {"!": {"is_blank": {"var": "erp_code"}}}
    )
    with pack.reading() as (_, catalog):
        renamed = catalog.layouts["opportunity"]["form"]["tabs"][0]["sections"][2]

    remaining = [spec for spec in fields if spec["name"] != "order_number"]
    pack.store.apply([("", {**document, "fields": remaining})], actor="test")
    with pack.reading() as (_, catalog):
        dropped = catalog.layouts["opportunity"]["form"]["tabs"][0]["sections"][2]
        conditions = catalog.section_conditions("opportunity").conditions

    assert renamed["visible_if"] == {"!": {"is_blank": {"var": "order_number"}}}
    assert "visible_if" not in dropped
    assert conditions == {}


def test_a_section_condition_follows_a_renamed_field_that_exists_reads(
    pack: Platform,
) -> None:
    _erp_code_renamed_under(
        pack, {"and": [{"exists": "erp_code"}, {"exists": ["erp_code"]}]}
    )

    with pack.reading() as (_, catalog):
        renamed = catalog.layouts["opportunity"]["form"]["tabs"][0]["sections"][2]
        conditions = catalog.section_conditions("opportunity").conditions

    assert renamed["visible_if"] == {
        "and": [{"exists": "order_number"}, {"exists": ["order_number"]}]
    }
    assert list(conditions) == [(0, 2)]


# -- empty groups and nulls ---------------------------------------------------------


def test_an_empty_and_hides_and_a_null_condition_shows(
    browser: Browser, pack: Platform
) -> None:
    never = rule(
        "next_step_never",
        "opportunity",
        "field_state",
        field="next_step",
        visible_if={"and": []},
    )
    overdue = rule(
        "erp_code_when_overdue",
        "opportunity",
        "field_state",
        field="erp_code",
        visible_if={"<": [{"var": "close_date"}, {"today": []}]},
    )
    pack.store.apply([("", never), ("", overdue)], actor="test")
    undated = create(pack, "opportunity", title="Float", close_date=None)

    page = page_of(browser, f"/app/opportunity/{undated['id']}/edit")

    assert "hidden" in field_box(page, "next_step").attrs
    # A date compared with null fails: the condition gives null, which shows.
    assert "hidden" not in field_box(page, "erp_code").attrs


# -- the pack's rule on every other path --------------------------------------------


def test_the_pack_rule_refuses_api_import_and_automation_saves_alike(
    pack: Platform, app: Flask
) -> None:
    give_up = rule(
        "give_up",
        "opportunity",
        "automation",
        trigger="update",
        condition={"==": [{"var": "next_step"}, "give up"]},
        actions=[{"type": "set_field", "field": "stage", "value": "lost"}],
    )
    pack.store.apply([("", give_up)], actor="test")
    with pack.engine.begin() as connection:
        admin = create_user(connection, "admin", "admin-password-1", is_admin=True)
        token = create_token(connection, admin)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    kept = create(pack, "opportunity", title="Anchor")

    api = client.post(
        "/api/v1/opportunity", json={"title": "Pier", "stage": "lost"}, headers=headers
    )
    automated = client.patch(
        f"/api/v1/opportunity/{kept['id']}",
        json={"next_step": "give up"},
        headers=headers,
    )
    with pytest.raises(ImportFailed) as excinfo:
        import_csv(
            pack,
            "opportunity",
            io.BytesIO(b"title,stage\nKeel,lost\n"),
            actor=SYSTEM_ACTOR,
        )

    expected = [
        {
            "field": "loss_reason",
            "code": "rule",
            "message": "Say why the opportunity was lost.",
        }
    ]
    assert (api.status_code, api.json["errors"]) == (422, expected)
    assert (automated.status_code, automated.json["errors"]) == (422, expected)
    assert [(e.field, e.code, e.message) for e in excinfo.value.report.errors] == [
        ("loss_reason", "rule", "Say why the opportunity was lost.")
    ]


# -- a delete that a roll-up refuses -------------------------------------------------

LEDGER = {
    "name": "ledger",
    "label": "Ledger",
    "display_field": "name",
    "fields": [
        {"name": "name", "type": "text", "label": "Name", "required": True},
        {
            "name": "balance",
            "type": "decimal",
            "label": "Balance",
            "precision": 6,
            "scale": 2,
        },
    ],
}
ENTRY = {
    "name": "entry",
    "label": "Entry",
    "display_field": "memo",
    "fields": [
        {"name": "memo", "type": "text", "label": "Memo", "required": True},
        {"name": "ledger", "type": "lookup", "target": "ledger", "label": "Ledger"},
        {"name": "amount", "type": "decimal", "label": "Amount", "scale": 2},
    ],
}
BALANCE = rule(
    "balance",
    "ledger",
    "rollup",
    field="balance",
    relation={"entity": "entry", "lookup": "ledger"},
    function="sum",
    of="amount",
)


@pytest.fixture
def ledger(platform: Platform) -> dict[str, int]:
    platform.store.apply([("", LEDGER), ("", ENTRY), ("", BALANCE)], actor="test")
    book = create(platform, "ledger", name="Harbour book")
    ids = {"book": book["id"]}
    for memo, amount in (("Opening", 6000), ("Refund", -6000), ("Sale", 6000)):
        ids[memo] = create(
            platform, "entry", memo=memo, ledger=book["id"], amount=amount
        )["id"]
    return ids


def test_a_delete_a_roll_up_refuses_says_which_rule_and_why(
    app: Flask, platform: Platform, ledger: dict[str, int]
) -> None:
    browser = sign_in(app, platform)
    refund = ledger["Refund"]

    sent = [
        (f"/app/entry/{refund}/delete", {}),
        (
            "/app/entry/bulk",
            {"action": "delete_confirmed", "ids": [str(refund)], "state": ""},
        ),
    ]
    for path, form in sent:
        response = browser.post(path, form)
        assert response.status_code == 303
        said = text_of(page_of(browser, response.headers["Location"]))
        assert "Nothing was deleted" in said or "could not be updated" in said
        assert "The roll-up rule 'balance' gave a value that does not fit" in said
    assert fetch(platform, "entry", refund)["memo"] == "Refund"
    assert fetch(platform, "ledger", ledger["book"])["balance"] == 6000


def test_a_bulk_delete_refused_by_a_unique_roll_up_says_so_not_that_it_is_referred_to(
    app: Flask, platform: Platform
) -> None:
    # Deleting an entry brings its ledger's count down to a count another
    # ledger has. The list's delete said that other records referred to the
    # entry, which nothing did; the record's own delete page told it right.
    ledger = {
        **LEDGER,
        "fields": [
            *LEDGER["fields"],
            {"name": "entries", "type": "integer", "label": "Entries", "unique": True},
        ],
    }
    entries = rule("entries", "ledger", "rollup", field="entries",
                   relation={"entity": "entry", "lookup": "ledger"},
                   function="count")  # fmt: skip
    platform.store.apply([("", ledger), ("", ENTRY), ("", entries)], actor="test")
    # A new ledger starts at 0 entries: the next is made once the last has left 0.
    books, made = [], []
    for name, count in (("Pier", 3), ("Dune", 2)):
        books.append(create(platform, "ledger", name=name)["id"])
        for n in range(count):
            made.append(
                create(platform, "entry", memo=f"{name} {n}", ledger=books[-1])["id"]
            )
    browser = sign_in(app, platform)

    response = browser.post(
        "/app/entry/bulk",
        {"action": "delete_confirmed", "ids": [str(made[0])], "state": ""},
    )
    assert response.status_code == 303
    said = text_of(page_of(browser, response.headers["Location"]))
    assert "Nothing was deleted" in said
    assert "refer to" not in said
    assert "which another record already has" in said
    assert fetch(platform, "ledger", books[0])["entries"] == 3


def test_an_administrator_by_role_is_one_to_the_rules_of_a_save_and_of_its_form(
    app: Flask, platform: Platform
) -> None:
    # $user.roles carries "admin" for every administrator: a role that says
    # "admin": true makes one as much as the account's flag does. The form
    # marked Notes required for such a user, and the save did not require it.
    from tests.rules_support import ACCOUNT

    is_admin = {"in": ["admin", {"var": "$user.roles"}]}
    platform.store.apply(
        [
            ("", ACCOUNT),
            ("", {"kind": "role", "name": "operator", "label": "Op", "admin": True}),
            ("", rule("notes_for_admins", "account", "field_state",
                      field="notes", required_if=is_admin)),
            ("", rule("gold_by_admins", "account", "validation",
                      condition={"and": [{"==": [{"var": "tier"}, "gold"]},
                                         {"!": is_admin}]},
                      message="Only administrators make gold accounts.",
                      field="tier")),
        ],
        actor="test",
    )  # fmt: skip
    browser = sign_in_with_roles(app, platform, "oren.pike", ["operator"])

    form = page_of(browser, "/app/account/new")
    sent = {"name": "Gold Yard", "tier": "gold", "notes": "", "parent": ""}
    refused = browser.post("/app/account/new", sent)

    assert field_box(form, "notes").get("data-required-if")
    notes = [e for e in elements(form) if e.get("name") == "notes"]
    assert notes[0].get("aria-required") == "true"
    assert refused.status_code == 422
    said = refused.get_data(as_text=True)
    assert field_messages(said, "notes") == ["Notes is required here."]
    assert "Only administrators make gold accounts." not in said


def test_a_new_form_judges_field_state_on_roll_ups_at_their_start_as_the_save(
    app: Flask, platform: Platform
) -> None:
    # A new account has no deals: its count is 0 and its total 0 when it is
    # saved. The form read both as blank, so it showed Notes optional and hid
    # Tier, where the save required Notes and judged Tier shown.
    from tests.rules_support import ACCOUNT, OPPORTUNITY, WON_TOTAL

    platform.store.apply(
        [
            ("", ACCOUNT),
            ("", OPPORTUNITY),
            ("", WON_TOTAL),
            ("", rule("won_count", "account", "rollup", field="won_count",
                      relation={"entity": "opportunity", "lookup": "account"},
                      function="count")),
            ("", rule("notes_while_new", "account", "field_state", field="notes",
                      required_if={"==": [{"var": "won_count"}, 0]})),
            ("", rule("tier_while_new", "account", "field_state", field="tier",
                      visible_if={"==": [{"var": "won_total"}, 0]})),
            ("", rule("start_note", "account", "default", field="industry",
                      expression={"if": [{"==": [{"var": "won_count"}, 0]},
                                         "retail", "energy"]})),
        ],
        actor="test",
    )  # fmt: skip
    browser = sign_in(app, platform)

    form = page_of(browser, "/app/account/new")
    refused = browser.post(
        "/app/account/new",
        {"name": "Quay", "industry": "retail", "tier": "", "notes": "", "parent": ""},
    )

    found = elements(form)
    notes = next(i for i, e in enumerate(found) if e.get("data-field") == "notes")
    marker = next(e for e in found[notes:] if "data-required-mark" in e.attrs)
    assert "hidden" not in marker.attrs
    assert "hidden" not in field_box(form, "tier").attrs
    industry = [e for e in elements(form) if e.get("value") == "retail"]
    assert "selected" in industry[0].attrs
    assert refused.status_code == 422
    said = refused.get_data(as_text=True)
    assert field_messages(said, "notes") == ["Notes is required here."]


def test_an_edit_form_keeps_formulas_whose_inputs_it_has_not_changed(
    app: Flask, platform: Platform
) -> None:
    # A formula that reads only $user is computed on create, and a save that
    # changes nothing it reads keeps it. The edit form computed it again for
    # the person editing, so it judged another value than the save would.
    from tests.rules_support import ACCOUNT, OPPORTUNITY

    platform.store.apply(
        [
            ("", ACCOUNT),
            ("", OPPORTUNITY),
            ("", rule("opened_by", "opportunity", "formula", field="next_step",
                      expression={"var": "$user.username"})),
            ("", rule("reason_for_opener", "opportunity", "field_state",
                      field="loss_reason",
                      required_if={"==": [{"var": "next_step"},
                                          {"var": "$user.username"}]})),
        ],
        actor="test",
    )  # fmt: skip
    deal = create(platform, "opportunity", title="Pier cranes", loss_reason="Late")
    browser = sign_in(app, platform)

    form = page_of(browser, f"/app/opportunity/{deal['id']}/edit")
    saved = browser.post(
        f"/app/opportunity/{deal['id']}/edit",
        {"title": "Pier cranes", "loss_reason": "", "stage": "prospecting"},
    )

    found = elements(form)
    reason = next(
        i for i, e in enumerate(found) if e.get("data-field") == "loss_reason"
    )
    marker = next(e for e in found[reason:] if "data-required-mark" in e.attrs)
    assert "hidden" in marker.attrs
    state = next(e for e in found if "data-field-state" in e.attrs)
    assert json.loads(state["data-field-state"])["record"]["next_step"] == "system"
    assert saved.status_code == 303
    assert fetch(platform, "opportunity", deal["id"])["loss_reason"] is None


@pytest.fixture
def industry_step(pack: Platform) -> Platform:
    pack.store.apply(
        [("", rule("step_by_industry", "opportunity", "default", field="next_step",
                   expression={"cat": ["Call the ", {"var": "account.industry"},
                                       " desk"]}))],
        actor="test",
    )  # fmt: skip
    return pack


def test_a_default_nobody_changed_follows_the_lookup_picked_after_it_was_shown(
    industry_step: Platform, app: Flask
) -> None:
    # The new form showed the default worked out with no account ("Call the
    # desk"); picking an account afterwards left that text in the form, and the
    # save kept it as given instead of reading the account's industry.
    account = create(industry_step, "account", name="Quillon Mills", industry="retail")
    browser = sign_in(app, industry_step)
    form = page_of(browser, "/app/opportunity/new")
    shown = by_id(form, "f-next_step")["value"]
    defaulted = next(e for e in elements(form) if e.get("name") == "_defaulted")

    saved = browser.post(
        "/app/opportunity/new",
        posted(title="Loom spares", account=str(account["id"]),
               account__search="Quillon Mills", next_step=shown,
               _defaulted=defaulted["value"]),
    )  # fmt: skip
    edited = browser.post(
        "/app/opportunity/new",
        posted(title="Loom belts", account=str(account["id"]),
               account__search="Quillon Mills", next_step="Visit",
               _defaulted=defaulted["value"]),
    )  # fmt: skip
    refused = browser.post(
        "/app/opportunity/new",
        posted(account=str(account["id"]),
               account__search="Quillon Mills", next_step=shown,
               _defaulted=defaulted["value"]),
    )  # fmt: skip

    assert shown == "Call the  desk"
    assert saved.status_code == 303, saved.status_code
    first = int(saved.headers["Location"].rsplit("/", 1)[1])
    assert fetch(industry_step, "opportunity", first)["next_step"] == (
        "Call the retail desk"
    )
    second = int(edited.headers["Location"].rsplit("/", 1)[1])
    assert fetch(industry_step, "opportunity", second)["next_step"] == "Visit"
    assert refused.status_code == 422
    again = refused.get_data(as_text=True)
    assert by_id(again, "f-next_step")["value"] == "Call the retail desk"
    assert json.loads(
        next(e for e in elements(again) if e.get("name") == "_defaulted")["value"]
    ) == {"next_step": "Call the retail desk"}


def test_a_lookup_s_default_is_saved_as_the_form_shows_it(
    pack: Platform, app: Flask
) -> None:
    # A lookup's box shows a record's name, which does not follow the fields
    # its default reads; the save worked the default out again and stored
    # another record than the one the form showed.
    harbour = create(pack, "account", name="Harbour Mill")
    quay = create(pack, "account", name="Quay Works")
    pack.store.apply(
        [("", rule("account_by_stage", "opportunity", "default", field="account",
                   expression={"if": [{"==": [{"var": "stage"}, "won"]},
                                      quay["id"], harbour["id"]]}))],
        actor="test",
    )  # fmt: skip
    browser = sign_in(app, pack)
    form = page_of(browser, "/app/opportunity/new")
    defaulted = next(e for e in elements(form) if e.get("name") == "_defaulted")

    saved = browser.post(
        "/app/opportunity/new",
        posted(title="Loom spares", stage="won", account=str(harbour["id"]),
               account__search="Harbour Mill", _defaulted=defaulted["value"]),
    )  # fmt: skip

    assert json.loads(defaulted["value"])["account"] == str(harbour["id"])
    assert saved.status_code == 303, saved.status_code
    created = int(saved.headers["Location"].rsplit("/", 1)[1])
    assert fetch(pack, "opportunity", created)["account"] == harbour["id"]


def test_a_value_that_cannot_be_read_leaves_the_other_rules_to_judge_the_form(
    browser: Browser, pack: Platform
) -> None:
    # A number typed with letters hid "Say why the opportunity was lost." until
    # it was fixed; the rules that do not read it judge it at once. A rule that
    # reads the amount is left out: it would judge an amount that is not there.
    pack.store.apply(
        [("", rule("amount_given", "opportunity", "validation", field="amount",
                   condition={"is_blank": {"var": "amount"}},
                   message="Give an amount."))],
        actor="test",
    )  # fmt: skip
    browser.get("/app/opportunity/new")

    response = browser.post(
        "/app/opportunity/new",
        posted(title="Harbour crane", stage="lost", amount="12OO"),
    )

    deal = create(pack, "opportunity", title="Quay scales", amount="50")
    browser.get(f"/app/opportunity/{deal['id']}/edit")
    edited = browser.post(
        f"/app/opportunity/{deal['id']}/edit",
        edit_form(deal, stage="lost", amount="5O"),
    )

    for answer, typed in ((response, "12OO"), (edited, "5O")):
        page = answer.get_data(as_text=True)
        assert answer.status_code == 422
        assert field_messages(page, "amount") == [f"'{typed}' is not a number."]
        assert field_messages(page, "loss_reason") == [
            "Say why the opportunity was lost."
        ]


def test_a_refused_edit_shows_formulas_and_roll_ups_as_stored_not_blank(
    browser: Browser, pack: Platform
) -> None:
    # The form sends neither, so a refused save rendered them from what was
    # posted: blank, as if the record had no weighted amount or won total.
    account = create(pack, "account", name="Ostler Freight")
    deal = create(pack, "opportunity", title="Jetty", amount=200, probability=25,
                  stage="won", account=account["id"])  # fmt: skip
    browser.get(f"/app/opportunity/{deal['id']}/edit")

    refused_deal = browser.post(
        f"/app/opportunity/{deal['id']}/edit", edit_form(deal, stage="lost")
    )
    refused_account = browser.post(
        f"/app/account/{account['id']}/edit", {"name": "", "_version": "2"}
    )

    assert (refused_deal.status_code, refused_account.status_code) == (422, 422)
    deal_page = refused_deal.get_data(as_text=True)
    account_page = refused_account.get_data(as_text=True)
    assert by_id(deal_page, "f-weighted_amount")["value"] == "$200.00"
    assert by_id(account_page, "f-won_total")["value"] == "$200.00"
    assert by_id(account_page, "f-account_number")["value"] != ""


def test_a_date_and_time_default_nobody_changed_follows_the_fields_it_reads(
    pack: Platform, app: Flask
) -> None:
    # The new form showed a default rule's date and time as '2031-04-18
    # 10:00:00', which no browser sends back (it sends '2031-04-18T10:00'), so
    # the save took the untouched default as chosen and kept the time worked
    # out before the kind was picked.
    pack.store.apply(
        [("", rule("due_by_kind", "activity", "default", field="due_at",
                   expression={"if": [{"==": [{"var": "kind"}, "call"]},
                                      "2031-04-17T09:00:00",
                                      "2031-04-18T10:00:00"]}))],
        actor="test",
    )  # fmt: skip
    browser = sign_in(app, pack)
    form = page_of(browser, "/app/activity/new")
    defaulted = next(e for e in elements(form) if e.get("name") == "_defaulted")
    sent = {
        "subject": "Ring the quarry",
        "kind": "call",
        "due_at": "2031-04-18T10:00",
        "done": "",
        "notes": "",
        "_defaulted": defaulted["value"],
    }

    followed = browser.post("/app/activity/new/defaults", sent)
    saved = browser.post("/app/activity/new", sent)

    assert by_id(form, "f-due_at")["value"] == "2031-04-18T10:00:00"
    assert followed.get_json() == {"due_at": "2031-04-17T09:00:00"}
    assert saved.status_code == 303, saved.status_code
    activity = int(saved.headers["Location"].rsplit("/", 1)[1])
    assert fetch(pack, "activity", activity)["due_at"] == "2031-04-17T09:00:00Z"


# -- a record chosen in a lookup since the form was shown --------------------------

RETAIL_ACCOUNT = {"==": [{"var": "account.industry"}, "retail"]}


@pytest.fixture
def retail_orders(pack: Platform) -> Platform:
    """The ERP code shows on deals with a retail account; next step is required
    on those whose account earns more than a million."""
    rich = {">": [{"var": "account.annual_revenue"}, 1000000]}
    pack.store.apply(
        [
            ("", rule("erp_for_retail", "opportunity", "field_state",
                      field="erp_code", visible_if=RETAIL_ACCOUNT)),
            ("", rule("step_for_rich_groups", "opportunity", "field_state",
                      field="next_step", required_if=rich)),
        ],
        actor="test",
    )  # fmt: skip
    return pack


def test_a_form_asks_for_an_account_chosen_since_as_its_conditions_read_it(
    retail_orders: Platform, app: Flask
) -> None:
    shop = create(retail_orders, "account", name="Brackley Shops",
                  industry="retail", annual_revenue="2500000.50")  # fmt: skip
    deal = create(retail_orders, "opportunity", title="Till rolls")
    browser = sign_in(app, retail_orders)
    forms = [
        page_of(browser, path)
        for path in ("/app/opportunity/new", f"/app/opportunity/{deal['id']}/edit")
    ]
    carriers = [
        next(
            e
            for e in elements(form)
            if e.tag == "form" and "data-field-state" in e.attrs
        )
        for form in forms
    ]

    answer = browser.get(f"/app/opportunity/related?field=account&id={shop['id']}")

    assert [c["data-related-url"] for c in carriers] == ["/app/opportunity/related"] * 2
    assert answer.status_code == 200, answer.status_code
    assert answer.headers["Cache-Control"] == "no-store"
    # What the page would carry had it come pointing at the account: the
    # fields its conditions read, typed as the page types them.
    found = answer.get_json()
    assert (found["id"], found["industry"]) == (shop["id"], "retail")
    assert found["annual_revenue"] == {"$decimal": "2500000.50"}


@pytest.mark.parametrize(
    "query",
    [
        "field=owner_id&id=1",  # a system column, not a lookup of the entity
        "field=stage&id=1",  # not a lookup
        "field=nothing&id=1",
        "field=account&id=abc",
        "field=account&id=-1",
        "field=account&id=" + "9" * 30,
        "field=account",
    ],
)
def test_a_form_is_answered_404_for_what_its_conditions_cannot_read(
    retail_orders: Platform, app: Flask, query: str
) -> None:
    browser = sign_in(app, retail_orders)

    answer = browser.get(f"/app/opportunity/related?{query}")

    assert answer.status_code == 404, answer.status_code


def test_a_lookup_no_live_condition_reads_through_is_answered_by_its_id(
    pack: Platform, app: Flask
) -> None:
    # The pack's rules read no field of the account in a visible_if or
    # required_if: the form is told nothing more of it, nor whether there is
    # such an account.
    account = create(pack, "account", name="Brackley Shops", industry="retail")
    browser = sign_in(app, pack)

    found = browser.get(f"/app/opportunity/related?field=account&id={account['id']}")
    none = browser.get("/app/opportunity/related?field=account&id=999999")

    assert (found.status_code, found.get_json()) == (200, {"id": account["id"]})
    assert (none.status_code, none.get_json()) == (200, {"id": 999999})
