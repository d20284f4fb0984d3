"""Browser tests: Playwright drives Debian's Chromium against a live server.

The server runs in a thread of the test process, on 127.0.0.1 and a free port, over
a fresh SQLite database holding the sales pack (entities, layouts, rules), its demo
records, an account with a name no demo record shares, and an admin user. Chromium
is the system package (``apt-get install -y chromium``), never a browser Playwright
downloads. Without it the tests skip, unless ``TAILORCRM_TEST_REQUIRE_BROWSER=1`` (as
CI sets it), which turns a missing browser into a failure.

Every page a test opens is watched: a script error, a console error, a
Content-Security-Policy violation or a failed asset fails the test.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Response,
    StorageState,
    ViewportSize,
    sync_playwright,
)
from werkzeug.serving import make_server

from tailorcrm.platform import Platform, create_app
from tailorcrm.platform.auth import create_user
from tailorcrm.platform.demo import populate
from tailorcrm.platform.records import RecordService

ROOT = Path(__file__).resolve().parents[2]
SALES_PACK = ROOT / "sample_schemas" / "sales"
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
REQUIRE_BROWSER = os.environ.get("TAILORCRM_TEST_REQUIRE_BROWSER") == "1"

USERNAME = "admin"
PASSWORD = "browser-test-password-1"
#: An account with a name that no demo record starts with.
ACCOUNT_NAME = "Wrenfield Trading"
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 375, "height": 812}
#: How long a step may wait for the page: short, so a broken page fails fast.
STEP_TIMEOUT_MS = 10_000

# The product pages get two tabs instead of the pack's one, with the product code
# on the second: a form whose only problem is on a tab that is not the first.
PRODUCT_LAYOUT = {
    "kind": "layout",
    "entity": "product",
    "form": {
        "tabs": [
            {
                "label": "Overview",
                "sections": [
                    {
                        "label": "Product",
                        "columns": 2,
                        "items": [
                            {"field": "name"},
                            {"field": "family"},
                            {"field": "list_price"},
                        ],
                    }
                ],
            },
            {
                "label": "Catalog",
                "sections": [
                    {
                        "label": "Catalog",
                        "columns": 2,
                        "items": [{"field": "product_code"}, {"field": "active"}],
                    }
                ],
            },
        ]
    },
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.browser)


@dataclass(frozen=True)
class LiveServer:
    """The running application: its address and its platform, to check records."""

    url: str
    platform: Platform

    def find(self, entity: str, **values: Any) -> list[dict[str, Any]]:
        """Return the stored rows of ``entity`` whose columns equal ``values``."""
        with self.platform.engine.connect() as connection:
            table = sa.Table(entity, sa.MetaData(), autoload_with=connection)
            where = [table.c[name] == value for name, value in values.items()]
            rows = connection.execute(sa.select(table).where(*where)).mappings()
            return [dict(row) for row in rows]


def _pack_documents() -> list[tuple[str, Any]]:
    """The sales pack's entities, layouts and rules, as ``tailorcrm init --demo``
    has them."""
    paths = [
        *sorted(SALES_PACK.glob("*.json")),
        *sorted(SALES_PACK.glob("layouts/*.json")),
        *sorted(SALES_PACK.glob("rules/*.json")),
    ]
    return [
        (path.name, json.loads(path.read_text(encoding="utf-8")))
        for path in paths
        if path.name != "pack.json"
    ]


def _prepare(platform: Platform) -> None:
    platform.store.apply(_pack_documents(), actor="test")
    platform.store.apply([("", PRODUCT_LAYOUT)], actor="test")
    with platform.engine.begin() as connection:
        admin = create_user(connection, USERNAME, PASSWORD, is_admin=True)
    with platform.transaction() as (connection, catalog):
        service = RecordService(connection, catalog, admin.actor())

        def create(entity: str, rows: list[dict[str, Any]]) -> list[int]:
            ids, _ = service.create_many(entity, rows)
            return [int(i) for i in ids if i is not None]

        populate(create)
        create("account", [{"name": ACCOUNT_NAME}])


@pytest.fixture(scope="package")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    database = tmp_path_factory.mktemp("browser") / "crm.db"
    app = create_app({"database_url": f"sqlite:///{database}", "secret_key": "test"})
    platform: Platform = app.extensions["tailorcrm"]
    _prepare(platform)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield LiveServer(f"http://127.0.0.1:{server.server_port}", platform)
    server.shutdown()
    thread.join(timeout=10)
    platform.engine.dispose()


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        reason = (
            f"{CHROMIUM} is missing; install Debian's chromium package "
            "(make browser-deps)"
        )
        if REQUIRE_BROWSER:
            pytest.fail(f"{reason}. TAILORCRM_TEST_REQUIRE_BROWSER=1 requires it.")
        pytest.skip(reason)
    with sync_playwright() as playwright:
        found = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS
        )
        yield found
        found.close()


@dataclass
class Watch:
    """What went wrong in one page: script errors, console errors, CSP refusals."""

    problems: list[str] = field(default_factory=list)

    def attach(self, page: Page) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"script: {error}"))
        page.on("response", self._response)

    def _console(self, message: ConsoleMessage) -> None:
        text = message.text
        where = message.location.get("url", "")
        if "Content Security Policy" in text or "Content-Security-Policy" in text:
            self.problems.append(f"CSP on {where}: {text}")
        elif message.type == "error" and not text.startswith("Failed to load resource"):
            self.problems.append(f"console on {where}: {text}")

    def _response(self, response: Response) -> None:
        # Pages answer 401 or 422 on purpose (a refused sign-in, a form with
        # problems); a style sheet, script or image must never fail.
        if response.status >= 400 and not response.request.is_navigation_request():
            self.problems.append(f"{response.status} for {response.url}")


OpenPage = Callable[..., Page]


@pytest.fixture(scope="package")
def signed_in_state(browser: Browser, live_server: LiveServer) -> StorageState:
    """Cookies of a signed-in admin, shared by the tests that do not sign in."""
    context = browser.new_context(base_url=live_server.url)
    page = context.new_page()
    page.goto("/login")
    page.fill("#username", USERNAME)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    state = context.storage_state()
    context.close()
    return state


@pytest.fixture
def open_page(
    browser: Browser, live_server: LiveServer, signed_in_state: StorageState
) -> Iterator[OpenPage]:
    """Open a watched page: ``open_page(viewport=PHONE, signed_in=False)``.

    After the test, every page opened must have stayed free of script errors,
    console errors, CSP violations and failed assets.
    """
    contexts: list[BrowserContext] = []
    watches: list[Watch] = []

    def open_(
        *,
        viewport: ViewportSize = DESKTOP,
        signed_in: bool = True,
        scripts: bool = True,
    ) -> Page:
        context = browser.new_context(
            base_url=live_server.url,
            viewport=viewport,
            storage_state=signed_in_state if signed_in else None,
            java_script_enabled=scripts,
            locale="en-US",
        )
        context.set_default_timeout(STEP_TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        watch = Watch()
        watch.attach(page)
        watches.append(watch)
        return page

    yield open_
    for context in contexts:
        context.close()
    problems = [problem for watch in watches for problem in watch.problems]
    assert problems == [], "the pages reported problems"


@pytest.fixture
def page(open_page: OpenPage) -> Page:
    """A signed-in desktop page (1280 x 800)."""
    return open_page()


def screenshot(page: Page, name: str) -> None:
    """Save a full-page screenshot under ``test-artifacts/screenshots/``."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    # From the top, so the sticky top bar is drawn where it belongs.
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
