"""The issue's scenario, end to end, as a person does it in the browser."""

from __future__ import annotations

import re
from decimal import Decimal

from playwright.sync_api import Locator, Page, expect

from .conftest import ACCOUNT_NAME, PASSWORD, USERNAME, LiveServer, OpenPage

TITLE = "Wrenfield warehouse roll-out"


def sign_in(page: Page) -> None:
    page.goto("/login")
    page.get_by_label("User name").fill(USERNAME)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Welcome, {USERNAME}")


def choose_account(page: Page, name: str) -> None:
    """Type the account's name, and pick it from the type-ahead list if it has one.

    Without the lookup script the server finds the account by its exact name.
    """
    page.get_by_role("combobox", name="Account").fill(name)
    if page.locator('script[src$="/lookup.js"]').count():
        page.get_by_role("option", name=name).click()


def show_tab_holding(page: Page, element: Locator) -> None:
    """Open the tab whose panel holds ``element``, if the page has tabs."""
    panel = element.evaluate("e => e.closest('[role=tabpanel]')?.id || ''")
    if panel:
        page.locator(f'[role=tab][aria-controls="{panel}"]').click()


def test_opportunity_from_sign_in_to_delete(
    open_page: OpenPage, live_server: LiveServer
) -> None:
    page = open_page(signed_in=False)
    sign_in(page)

    # A new opportunity without a title and with a negative amount.
    page.get_by_role("navigation", name="Entities").get_by_role(
        "link", name="Opportunities"
    ).click()
    page.get_by_role("link", name="New Opportunity").click()
    choose_account(page, ACCOUNT_NAME)
    page.get_by_label("Amount").fill("-1250.50")
    page.get_by_label("Next step").fill("Send the draft contract")
    page.get_by_role("button", name="Save").click()

    summary = page.locator(".error-summary")
    expect(summary).to_be_visible()
    expect(summary).to_contain_text("2 problems")
    title_errors = page.locator('[data-field="title"] .field-errors')
    amount_errors = page.locator('[data-field="amount"] .field-errors')
    expect(title_errors).to_contain_text("This field is required.")
    expect(amount_errors).to_contain_text("Enter a value of at least 0.")
    expect(page.get_by_label("Title")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Amount")).to_have_value("-1250.50")
    expect(page.get_by_label("Next step")).to_have_value("Send the draft contract")
    expect(page.get_by_role("combobox", name="Account")).to_have_value(ACCOUNT_NAME)
    assert live_server.find("opportunity", next_step="Send the draft contract") == []

    # Fixed and saved.
    page.get_by_label("Title").fill(TITLE)
    page.get_by_label("Amount").fill("18500")
    page.get_by_role("button", name="Save").click()

    expect(page.get_by_role("heading", level=1)).to_have_text(TITLE)
    expect(page.locator(".flash-success")).to_contain_text("was saved")
    amount = page.locator(".field-currency").filter(has_text=re.compile(r"^\s*Amount"))
    expect(amount.locator("dd")).to_have_text("$18,500.00")
    [saved] = live_server.find("opportunity", title=TITLE)
    assert saved["amount"] == Decimal("18500.00")
    assert saved["next_step"] == "Send the draft contract"

    # Found by quick search.
    page.get_by_role("link", name="Opportunities", exact=True).first.click()
    page.get_by_role("searchbox").fill("wrenfield warehouse")
    page.get_by_role("button", name="Search").click()
    rows = page.locator("table.records tbody tr")
    expect(rows).to_have_count(1)
    rows.get_by_role("link", name=TITLE).click()

    # Its account lists it among the account's opportunities.
    expect(page.get_by_role("heading", level=1)).to_have_text(TITLE)
    page.locator(".field-lookup").get_by_role("link", name=ACCOUNT_NAME).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(ACCOUNT_NAME)
    related = page.get_by_role("table", name="Opportunities", include_hidden=True)
    show_tab_holding(page, related)
    expect(related.get_by_role("link", name=TITLE)).to_be_visible()

    # The stage changes on the edit page.
    related.get_by_role("link", name=TITLE).click()
    page.get_by_role("link", name="Edit").click()
    page.get_by_label("Stage").select_option(label="Negotiation")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".flash-success")).to_contain_text("was saved")
    expect(page.locator(".field-picklist .badge")).to_have_text("Negotiation")
    assert live_server.find("opportunity", title=TITLE)[0]["stage"] == "negotiation"

    # Deleted after a confirmation page.
    page.get_by_role("link", name="Delete").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(TITLE)
    page.get_by_role("button", name=re.compile(f"^Delete .*{TITLE}")).click()
    expect(page).to_have_url(re.compile(r"/app/opportunity(\?.*)?$"))
    expect(page.locator(".flash-success")).to_contain_text("was deleted")
    assert live_server.find("opportunity", title=TITLE) == []
