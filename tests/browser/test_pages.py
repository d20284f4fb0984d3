"""Every page loads its own assets cleanly, and works with scripts off too.

The ``open_page`` fixture fails a test whose pages log a script error, a console
error, a Content-Security-Policy violation or a failed asset.
"""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Browser, Page, Route, expect

from .conftest import PHONE, LiveServer, OpenPage, Watch

SIGNED_IN_PAGES = [
    "/",
    "/app/account",
    "/app/opportunity?q=a&sort=-amount",
    "/app/product",
    "/app/activity",
    "/app/contact",
    "/app/sales_lead",
    "/app/account/1",
    "/app/opportunity/1",
    "/app/product/1",
    "/app/opportunity/new",
    "/app/opportunity/1/edit",
    "/app/contact/1/edit",
    "/app/opportunity/1/delete",
    "/app/account/1/delete",
    "/app/opportunity/import",
    "/app/no_such_entity",
    "/app/opportunity/999999",
]


def test_every_page_loads_with_the_shared_look_and_no_console_errors(
    page: Page,
) -> None:
    found = {}

    for path in SIGNED_IN_PAGES:
        page.goto(path)
        found[path] = page.evaluate(
            """() => ({
                main: Boolean(document.querySelector("main#main")),
                background: getComputedStyle(document.body).backgroundColor,
                scripted: document.documentElement.classList.contains("js"),
                styled: document.querySelectorAll("[style]").length,
            })"""
        )

    expected = {
        "main": True,
        "background": "rgb(244, 246, 249)",
        "scripted": True,
        "styled": 0,
    }
    assert {path: got for path, got in found.items() if got != expected} == {}


def test_sign_in_page_is_clean_and_explains_a_refusal(open_page: OpenPage) -> None:
    page = open_page(signed_in=False)

    page.goto("/app/opportunity")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.get_by_label("User name").fill("admin")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()

    alert = page.get_by_role("alert")
    expect(alert).to_be_visible()
    expect(alert).to_be_focused()
    expect(page.get_by_label("User name")).to_have_value("admin")


def test_bulk_bar_counts_the_chosen_rows(page: Page) -> None:
    page.goto("/app/product")
    count = page.locator("[data-bulk-count]")
    actions = page.locator("[data-bulk-bar] button")
    rows = page.locator("table.records tbody input[type=checkbox]")
    select_all = page.locator("[data-select-all]")
    expect(count).to_have_text("No rows selected")
    for index in range(actions.count()):
        expect(actions.nth(index)).to_be_disabled()

    rows.nth(0).check()
    expect(count).to_have_text("1 row selected")
    expect(actions.first).to_be_enabled()
    rows.nth(2).click(modifiers=["Shift"])
    expect(count).to_have_text("3 rows selected")
    assert select_all.evaluate("box => box.indeterminate")
    select_all.check()
    expect(count).to_have_text(f"{rows.count()} rows selected")
    select_all.uncheck()

    expect(count).to_have_text("No rows selected")
    expect(actions.first).to_be_disabled()


def test_pages_work_with_scripts_off(open_page: OpenPage) -> None:
    page = open_page(viewport=PHONE, scripts=False)

    page.goto("/")
    nav = page.get_by_role("navigation", name="Entities")
    expect(nav.get_by_role("link", name="Products")).to_be_visible()
    expect(page.get_by_role("button", name="Menu")).to_be_hidden()
    nav.get_by_role("link", name="Products").click()
    expect(page.locator("[data-bulk-bar] button").first).to_be_enabled()
    page.get_by_role("link", name="New Product").click()
    expect(page.get_by_label("Product code")).to_be_visible()
    page.get_by_label("Product name").fill("Offline product")
    page.get_by_label("Product code").fill("OFF-1")
    page.get_by_role("button", name="Save").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Offline product")


# Finds visible text with a contrast under 4.5:1 against what is behind it.
LOW_CONTRAST_TEXT = (Path(__file__).parent / "low_contrast.js").read_text()


def test_text_contrast_is_at_least_4_5_to_1(open_page: OpenPage) -> None:
    page = open_page()
    found: dict[str, list[str]] = {}

    for path in [
        "/",
        "/app/opportunity",
        "/app/account/1",
        "/app/opportunity/1/delete",
    ]:
        page.goto(path)
        found[path] = page.evaluate(LOW_CONTRAST_TEXT)
    page.goto("/app/opportunity/new")
    page.get_by_label("Amount").fill("-5")
    # The refused form is a new page, which its scripts settle as it opens:
    # read it once it is quiet, not while the page is still changing (a run
    # read it mid-way and lost its context).
    with page.expect_navigation():
        page.get_by_role("button", name="Save").click()
    page.wait_for_load_state("networkidle")
    found["form with problems"] = page.evaluate(LOW_CONTRAST_TEXT)
    page.goto("/app/product")
    page.locator("tbody input[type=checkbox]").first.check()
    found["list with a selected row"] = page.evaluate(LOW_CONTRAST_TEXT)
    signed_out = open_page(signed_in=False)
    signed_out.goto("/login")
    found["/login"] = signed_out.evaluate(LOW_CONTRAST_TEXT)

    assert {path: texts for path, texts in found.items() if texts} == {}


def test_the_page_watch_reports_csp_violations_and_script_errors(
    browser: Browser, live_server: LiveServer
) -> None:
    context = browser.new_context(base_url=live_server.url)
    page = context.new_page()
    watch = Watch()
    watch.attach(page)
    policy = page.request.get("/login").headers["content-security-policy"]
    page.route(
        "**/planted",
        lambda route: route.fulfill(
            content_type="text/html",
            headers={"Content-Security-Policy": policy},
            body='<p style="color: red">x</p><script>alert(1)</script>',
        ),
    )

    page.goto("/planted")
    page.evaluate("setTimeout(() => { throw new Error('planted'); })")
    page.wait_for_timeout(100)
    context.close()

    kinds = sorted({problem.split(" ")[0] for problem in watch.problems})
    assert kinds == ["CSP", "script:"]


def test_the_import_mapping_form_is_sent_once_whatever_the_clicks(
    page: Page,
) -> None:
    page.goto("/app/product/import")
    page.get_by_label("CSV file").set_input_files(
        files=[
            {
                "name": "products.csv",
                "mimeType": "text/csv",
                "buffer": b"Product name,Product code\nSprocket,SP-1\n",
            }
        ]
    )
    page.get_by_role("button", name="Upload and match columns").click()
    check = page.get_by_role("button", name="Check without importing")
    expect(check).to_be_visible()
    # The guard is list.js's, a deferred script: on a slow page the button shows
    # before it runs, and a form sent before it is an ordinary form.
    page.wait_for_load_state("domcontentloaded")
    held: list[Route] = []

    def hold(route: Route) -> None:
        held.append(route)

    page.route(re.compile(r"/import/[^/]+$"), hold)

    # The first request is held back, as a slow answer would be; a second click
    # meanwhile must send nothing.
    check.evaluate(
        "button => { button.click(); setTimeout(() => button.click(), 200); }"
    )
    page.wait_for_timeout(600)
    sent = [route.request.method for route in held]
    for route in held:
        route.continue_()
    page.unroute(re.compile(r"/import/[^/]+$"), hold)
    expect(page.get_by_text("The check found no problems")).to_be_visible()
    page.get_by_role("button", name="Discard the file").click()

    assert sent == ["POST"]
    expect(page.get_by_text("The uploaded file was discarded.")).to_be_visible()
