"""The lookup type-ahead: typing part of a name offers records to pick."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, Route, expect

from .conftest import ACCOUNT_NAME, LiveServer


def test_typing_part_of_a_name_picks_the_account(
    page: Page, live_server: LiveServer
) -> None:
    page.goto("/app/opportunity/new")
    if not page.locator('script[src$="/lookup.js"]').count():
        pytest.skip("the form pages do not load lookup.js yet")
    page.get_by_label("Title").fill("Picked from the list")
    field = page.get_by_role("combobox", name="Account")

    field.press_sequentially(ACCOUNT_NAME[:5].lower(), delay=30)
    option = page.get_by_role("option", name=ACCOUNT_NAME)
    expect(option).to_be_visible()
    expect(field).to_have_attribute("aria-expanded", "true")
    option.click()
    expect(field).to_have_value(ACCOUNT_NAME)
    page.get_by_role("button", name="Save").click()

    expect(page).to_have_url(re.compile(r"/app/opportunity/\d+$"))
    [account] = live_server.find("account", name=ACCOUNT_NAME)
    [saved] = live_server.find("opportunity", title="Picked from the list")
    assert saved["account"] == account["id"]


def test_text_typed_before_the_script_ran_is_searched_for(page: Page) -> None:
    # lookup.js is held back until the name is typed, as on a slow connection.
    held: list[Route] = []

    def hold(route: Route) -> None:
        held.append(route)

    page.route("**/static/lookup.js*", hold)
    page.goto("/app/opportunity/new", wait_until="commit")
    field = page.get_by_role("combobox", name="Account")
    field.fill(ACCOUNT_NAME[:5].lower())
    for _ in range(100):
        if held:
            break
        page.wait_for_timeout(50)
    assert held, "the page did not ask for lookup.js"

    held[0].continue_()

    option = page.get_by_role("option", name=ACCOUNT_NAME)
    expect(option).to_be_visible()
    option.click()
    expect(field).to_have_value(ACCOUNT_NAME)
