"""Keyboard use: skip link, reaching the first field, Enter to save, error focus."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect


def focused_id(page: Page) -> str:
    return str(page.evaluate("document.activeElement && document.activeElement.id"))


def test_keyboard_user_skips_to_the_form_and_saves_with_enter(page: Page) -> None:
    page.goto("/app/opportunity/new")

    page.keyboard.press("Tab")
    expect(page.locator(".skip-link")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
    presses = 0
    while focused_id(page) != "f-title" and presses < 5:
        page.keyboard.press("Tab")
        presses += 1
    expect(page.get_by_label("Title")).to_be_focused()
    page.keyboard.type("Typed without a mouse")
    page.keyboard.press("Enter")

    expect(page).to_have_url(re.compile(r"/app/opportunity/\d+$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Typed without a mouse")


def test_focus_ring_shows_on_keyboard_focus(page: Page) -> None:
    page.goto("/")

    page.keyboard.press("Tab")
    page.keyboard.press("Tab")

    style = page.evaluate(
        "getComputedStyle(document.activeElement).outlineStyle + ' ' +"
        " getComputedStyle(document.activeElement).outlineWidth"
    )
    assert style in ("solid 3px", "auto 3px"), style


def test_error_summary_takes_focus_and_its_links_lead_to_the_fields(
    page: Page,
) -> None:
    page.goto("/app/opportunity/new")
    page.get_by_label("Amount").fill("-5")

    page.get_by_role("button", name="Save").click()

    summary = page.locator(".error-summary")
    expect(summary).to_be_focused()
    expect(summary).to_have_attribute("role", "alert")
    summary.get_by_role("link", name=re.compile("^Amount")).click()
    expect(page.get_by_label("Amount")).to_be_focused()


def test_a_link_to_a_field_on_a_hidden_tab_shows_that_tab(page: Page) -> None:
    page.goto("/app/product/new")
    page.get_by_label("Product name").fill("Tab test product")

    page.get_by_role("button", name="Save").click()

    # The only problem is on the second tab, so that tab opens with the page.
    catalog_tab = page.get_by_role("tab", name=re.compile("^Catalog"))
    expect(catalog_tab).to_have_attribute("aria-selected", "true")
    page.get_by_role("tab", name=re.compile("^Overview")).click()
    expect(page.get_by_label("Product code")).to_be_hidden()
    page.locator(".error-summary").get_by_role("link").first.click()
    expect(catalog_tab).to_have_attribute("aria-selected", "true")
    expect(page.get_by_label("Product code")).to_be_focused()


def test_tabs_follow_the_arrow_keys(page: Page) -> None:
    page.goto("/app/product/1")
    overview = page.get_by_role("tab", name=re.compile("^Overview"))
    catalog = page.get_by_role("tab", name=re.compile("^Catalog"))
    overview_panel = page.get_by_role("tabpanel", name="Overview", include_hidden=True)
    catalog_panel = page.get_by_role("tabpanel", name="Catalog", include_hidden=True)
    expect(overview).to_have_attribute("aria-selected", "true")
    expect(catalog).to_have_attribute("tabindex", "-1")

    overview.focus()
    page.keyboard.press("ArrowRight")

    expect(catalog).to_be_focused()
    expect(catalog).to_have_attribute("aria-selected", "true")
    expect(catalog).to_have_attribute("tabindex", "0")
    expect(catalog_panel).to_be_visible()
    expect(overview_panel).to_be_hidden()
    page.keyboard.press("ArrowRight")
    expect(overview).to_be_focused()
    page.keyboard.press("End")
    expect(catalog).to_be_focused()
    page.keyboard.press("Home")
    expect(overview).to_be_focused()
    expect(catalog_panel).to_be_hidden()
