"""Values a number or date input holds but the browser cannot read: the form
says so and is not sent, since the browser would send them as blank and the save
would clear the stored value; and a value the browser writes its own way, which
the save must not take for a change."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from playwright.sync_api import Page, expect

from tailorcrm.platform.records import SYSTEM_ACTOR

from .conftest import LiveServer, OpenPage

TITLE = "Wrenfield barge charter"


def test_a_number_or_date_the_browser_cannot_read_is_not_saved_as_blank(
    page: Page, live_server: LiveServer
) -> None:
    with live_server.platform.records(SYSTEM_ACTOR) as service:
        record = service.create(
            "opportunity",
            {"title": TITLE, "amount": "2500", "close_date": "2031-05-06"},
        )
    edit = f"/app/opportunity/{record['id']}/edit"
    page.goto(edit)
    amount = page.get_by_label("Amount", exact=True)
    close_date = page.get_by_label("Close date")

    # "2500e" and 31 February: each input shows what was typed, and reads as
    # nothing (a browser sends such a value as blank text).
    amount.click()
    page.keyboard.press("End")
    page.keyboard.type("e")
    close_date.click()
    page.keyboard.type("02312031")
    assert amount.input_value() == "" and close_date.input_value() == ""
    page.get_by_role("button", name="Save").click()

    summary = page.locator(".error-summary")
    expect(summary).to_be_focused()
    expect(summary.get_by_role("link")).to_have_text(
        ["Amount: Enter a number.", "Close date: Enter a whole date that exists."]
    )
    expect(amount).to_have_attribute("aria-invalid", "true")
    expect(page.locator('[data-field="close_date"] .field-errors')).to_have_text(
        "Error: Enter a whole date that exists."
    )
    expect(page).to_have_url(f"{live_server.url}{edit}")
    [stored] = live_server.find("opportunity", id=record["id"])
    assert stored["amount"] == Decimal("2500")
    assert stored["close_date"] == dt.date(2031, 5, 6)

    # Fixed, the form saves, and the marks of the refused try are gone.
    amount.fill("2600")
    close_date.fill("2031-06-07")
    page.get_by_role("button", name="Save").click()

    expect(page.get_by_role("heading", level=1)).to_have_text(TITLE)
    [stored] = live_server.find("opportunity", id=record["id"])
    assert stored["amount"] == Decimal("2600")
    assert stored["close_date"] == dt.date(2031, 6, 7)


def test_without_scripts_the_browser_keeps_such_a_form_from_being_sent(
    open_page: OpenPage, live_server: LiveServer
) -> None:
    with live_server.platform.records(SYSTEM_ACTOR) as service:
        record = service.create("opportunity", {"title": TITLE, "amount": "2500"})
    page = open_page(scripts=False)
    edit = f"/app/opportunity/{record['id']}/edit"
    page.goto(edit)
    amount = page.get_by_label("Amount", exact=True)

    amount.click()
    page.keyboard.press("End")
    page.keyboard.type("e")
    page.get_by_role("button", name="Save").click()

    assert amount.evaluate("input => input.validity.badInput")
    expect(page).to_have_url(f"{live_server.url}{edit}")
    [stored] = live_server.find("opportunity", id=record["id"])
    assert stored["amount"] == Decimal("2500")
    assert stored["version"] == 1


def test_without_scripts_a_form_saves_text_the_server_takes_as_it_stands(
    open_page: OpenPage, live_server: LiveServer
) -> None:
    """The browser's own checks stay without scripts only to keep a number or
    date it cannot read from being sent as blank: an email address or web
    address that the save accepts ('zoë@…', which the browser's email check
    refuses) must not keep the form from being sent."""
    with live_server.platform.records(SYSTEM_ACTOR) as service:
        record = service.create(
            "contact", {"full_name": "Zoë Quillfeather", "email": "zoë@example.org"}
        )
    page = open_page(scripts=False)
    edit = f"/app/contact/{record['id']}/edit"
    page.goto(edit)

    page.locator("input[name=phone]").fill("+47 555 0101")
    page.get_by_role("button", name="Save").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Zoë Quillfeather")
    [stored] = live_server.find("contact", id=record["id"])
    assert (stored["phone"], stored["email"]) == ("+47 555 0101", "zoë@example.org")


def test_a_date_and_time_left_alone_keeps_its_decimals_of_a_second(
    page: Page, live_server: LiveServer
) -> None:
    # The input is given 09:41:00 and, on the minute, sends 09:41: the save took
    # that for a change and stored the whole second over the API's 09:41:00.5.
    with live_server.platform.records(SYSTEM_ACTOR) as service:
        record = service.create(
            "activity",
            {
                "subject": "Inspect the Quillmoor sluice",
                "kind": "call",
                "due_at": "2031-04-17T09:41:00.5Z",
            },
        )
    page.goto(f"/app/activity/{record['id']}/edit")
    page.get_by_label("Subject").fill("Inspect the Quillmoor sluice gate")
    page.get_by_role("button", name="Save").click()

    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Inspect the Quillmoor sluice gate"
    )
    [stored] = live_server.find("activity", id=record["id"])
    assert stored["due_at"] == dt.datetime(2031, 4, 17, 9, 41, 0, 500000)
