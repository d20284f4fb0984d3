"""Layout at desktop and phone widths, with screenshots to look at.

The screenshots land in ``test-artifacts/screenshots/`` (ignored by git): the list,
a record page (both its tabs), an edit form and a form with problems, at 1280 x 800
and at 375 px wide.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, ViewportSize, expect

from tailorcrm.platform.auth import find_user
from tailorcrm.platform.records import RecordService
from tailorcrm.platform.views import delete_view, save_view

from .conftest import (
    DESKTOP,
    PHONE,
    USERNAME,
    LiveServer,
    OpenPage,
    screenshot,
)

PAGES = {
    "list": "/app/opportunity",
    "detail": "/app/account/1",
    # The second tab of the account's pack layout: its related lists.
    "detail-related": "/app/account/1#tab-1",
    "edit": "/app/opportunity/1/edit",
}


def horizontal_overflow(page: Page) -> int:
    """How many pixels the page is wider than the window (0: no sideways scroll)."""
    root = "document.documentElement"
    return int(page.evaluate(f"{root}.scrollWidth - {root}.clientWidth"))


@pytest.mark.parametrize(("viewport", "size"), [(DESKTOP, "1280"), (PHONE, "375")])
def test_pages_fit_the_window_without_sideways_scrolling(
    open_page: OpenPage, viewport: ViewportSize, size: str
) -> None:
    page = open_page(viewport=viewport)

    for name, path in PAGES.items():
        page.goto(path)
        screenshot(page, f"{name}-{size}")

        assert horizontal_overflow(page) == 0, f"{path} scrolls sideways at {size}"

    page.goto("/app/opportunity/new")
    page.get_by_label("Amount").fill("-5")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".error-summary")).to_be_focused()
    screenshot(page, f"form-problems-{size}")
    assert horizontal_overflow(page) == 0


def test_phone_forms_and_records_use_one_column(open_page: OpenPage) -> None:
    page = open_page(viewport=PHONE)

    page.goto("/app/opportunity/1/edit")
    title_box = page.get_by_label("Title").bounding_box()
    stage_box = page.get_by_label("Stage").bounding_box()
    page.goto("/app/account/1")
    columns = page.locator("dl.fields").first.evaluate(
        "element => getComputedStyle(element).gridTemplateColumns.split(' ').length"
    )

    assert title_box is not None and stage_box is not None
    assert stage_box["x"] == title_box["x"]
    assert stage_box["y"] > title_box["y"]
    assert columns == 1


def test_phone_tables_show_one_card_per_row_with_column_names(
    open_page: OpenPage,
) -> None:
    page = open_page(viewport=PHONE)

    page.goto("/app/opportunity")

    expect(page.locator("table.records thead")).not_to_be_in_viewport()
    cell = page.locator("table.records tbody tr").first.locator("td[data-label]").nth(1)
    label = cell.evaluate("element => getComputedStyle(element, '::before').content")
    assert label == f'"{cell.get_attribute("data-label")}"'


def test_menu_button_folds_the_entity_menu_on_a_phone(open_page: OpenPage) -> None:
    page = open_page(viewport=PHONE)
    page.goto("/")
    menu = page.get_by_role("button", name="Menu")
    nav = page.get_by_role("navigation", name="Entities")
    expect(menu).to_have_attribute("aria-expanded", "false")
    expect(nav).to_be_hidden()

    menu.click()

    expect(menu).to_have_attribute("aria-expanded", "true")
    expect(nav.get_by_role("link", name="Opportunities")).to_be_visible()
    page.keyboard.press("Escape")
    expect(nav).to_be_hidden()
    expect(menu).to_be_focused()


def test_desktop_shows_the_entity_menu_without_the_menu_button(page: Page) -> None:
    page.goto("/")

    expect(page.get_by_role("button", name="Menu")).to_be_hidden()
    nav = page.get_by_role("navigation", name="Entities")
    expect(nav.get_by_role("link", name="Opportunities")).to_be_visible()


def test_list_headers_stay_in_view_under_the_top_bar(page: Page) -> None:
    page.goto("/app/opportunity")
    header = page.locator("table.records thead th").nth(1)

    page.mouse.wheel(0, 600)
    page.wait_for_function("() => window.scrollY >= 600")

    box = header.bounding_box()
    bar = page.locator(".topbar").bounding_box()
    assert box is not None and bar is not None
    assert abs(box["y"] - (bar["y"] + bar["height"])) < 1


def test_numbers_line_up_on_the_right(page: Page) -> None:
    page.goto("/app/opportunity")

    cell = page.locator("table.records tbody td.col-currency").first
    header = page.locator("table.records thead th.col-currency")

    for element in (cell, header):
        assert element.evaluate("e => getComputedStyle(e).textAlign") == "right"


@pytest.fixture
def crowded(live_server: LiveServer) -> Iterator[dict[str, int]]:
    """A view with a 95-character name, one with every field of an account as a
    column, and an account whose notes run to 4,000 characters; all removed
    afterwards."""
    platform = live_server.platform
    with platform.transaction() as (connection, catalog):
        admin = find_user(connection, USERNAME)
        assert admin is not None
        account = catalog.entity("account")
        columns = ["name", *(n for n in account.fields if n != "name")]
        long_name = save_view(
            connection,
            catalog,
            admin,
            {"entity": "contact", "label": ("Contacts to call back " * 5)[:95]},
        )
        wide = save_view(
            connection,
            catalog,
            admin,
            {"entity": "account", "label": "Every column", "columns": columns},
        )
        notes = " ".join(f"line{number}" for number in range(800))[:4000]
        record = RecordService(connection, catalog, admin.actor()).create(
            "account", {"name": "Longwinded Holdings", "notes": notes}
        )
    yield {"long_name": long_name["id"], "wide": wide["id"], "record": record["id"]}
    with platform.transaction() as (connection, catalog):
        admin = find_user(connection, USERNAME)
        assert admin is not None
        RecordService(connection, catalog, admin.actor()).delete(
            "account", record["id"]
        )
        for view_id in (long_name["id"], wide["id"]):
            delete_view(connection, catalog, admin, view_id)


def test_a_long_view_name_fits_a_phone(
    open_page: OpenPage, crowded: dict[str, int]
) -> None:
    page = open_page(viewport=PHONE)

    page.goto(f"/app/contact?view={crowded['long_name']}")
    screenshot(page, "list-long-view-name-375")

    assert horizontal_overflow(page) == 0


@pytest.mark.parametrize(("viewport", "size"), [(DESKTOP, "1280"), (PHONE, "375")])
def test_a_wide_view_scrolls_in_its_frame_and_long_text_is_clamped(
    open_page: OpenPage, crowded: dict[str, int], viewport: ViewportSize, size: str
) -> None:
    page = open_page(viewport=viewport)

    page.goto(
        f"/app/account?view={crowded['wide']}&sort=name&name__eq=Longwinded+Holdings"
    )
    screenshot(page, f"list-wide-view-{size}")
    row = page.locator("table.records tbody tr").first.bounding_box()
    frame = page.locator(".table-wrap").evaluate(
        "e => [e.scrollWidth, e.clientWidth, getComputedStyle(e).overflowX]"
    )

    assert horizontal_overflow(page) == 0
    assert row is not None and row["height"] < (200 if size == "1280" else 1200)
    if size == "1280":
        assert frame[0] > frame[1] and frame[2] == "auto"


def test_a_list_that_fits_keeps_its_headers_under_the_top_bar(page: Page) -> None:
    page.goto("/app/opportunity")

    expect(page.locator(".table-wrap")).to_have_class(re.compile(r"\bis-fitting\b"))
