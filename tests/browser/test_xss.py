"""Markup in metadata and in records is shown as text, never run, in a real browser.

A corpus of script-bearing strings goes everywhere a page shows text that someone
else typed: an entity's labels and description, field labels and help texts,
picklist option labels, layout tabs, sections and related lists, rule messages, a
record's values, the name of the account a lookup points to, a search, a filter,
saved view names and the columns of an imported file. Every payload that ran would
call ``__xss(n)``, which reports ``n`` to the test; a dialog would be seen too. The
pages are also read back: each payload must be there as text (escaped, not
dropped), and no element may carry an event-handler attribute, an inline script,
a frame or a link to ``javascript:`` or ``data:``.

The scenario uses an entity of its own, ``xss_probe``, removed afterwards with its
records, so the other browser tests see the server as they expect it.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
import sqlalchemy as sa
from playwright.sync_api import Dialog, FilePayload, Locator, Page, Route, expect

from tailorcrm.platform import Platform
from tailorcrm.platform.auth import find_user
from tailorcrm.platform.records import RecordService
from tailorcrm.platform.views import save_view

from .conftest import USERNAME, LiveServer, OpenPage

#: Script-bearing strings; each one that ran would call ``__xss`` with its index.
CORPUS = [
    "<script>__xss(0)</script>",
    '<SCRIPT type="text/javascript" defer>__xss(1)</SCRIPT>',
    "<scr<script>ipt>__xss(2)</scr</script>ipt>",
    "<img src=x onerror=__xss(3)>",
    "<svg/onload=__xss(4)>",
    '"><img src=x onerror=__xss(5)>',
    "' onmouseover='__xss(6)' tabindex='0",
    "` onfocus=__xss(7) autofocus data-x=`",
    "javascript:__xss(8)",
    " JaVaScRiPt&#58;__xss(9)",
    "java\tscript:__xss(10)",
    "</textarea><script>__xss(11)</script>",
    "</title><script>__xss(12)</script>",
    '</script><script>__xss(13)</script>"}]},{"x":"',
    "{{ __xss(14) }} ${__xss(14)} {{7*7}} ${7*7}",
    "data:text/html,<script>__xss(15)</script>",
    '<a href="javascript:__xss(16)">probe link</a>',
    "<details open ontoggle=__xss(17)>",
    '<iframe srcdoc="<script>parent.__xss(18)</script>"></iframe>',
]
#: What a URL field must refuse: schemes that run or carry a document.
REFUSED_URLS = [CORPUS[8], CORPUS[9], CORPUS[10], CORPUS[15]]
#: A URL field takes these: they are http(s), whatever their path holds.
LINKED_URL = 'https://probe.example/"><svg/onload=__xss(4)>'
LINKED_EMAIL = "'\"><svg/onload=__xss(4)>@probe.example"
#: The title that the probe's validation rule refuses, with CORPUS[11] as message.
REFUSED_TITLE = "refuse this probe"

ENTITY = "xss_probe"
OPTIONS = {
    "calm": CORPUS[2],
    "eager": CORPUS[17],
    "wary": CORPUS[13],
    "bold": CORPUS[14],
}
PROBE_ENTITY = {
    "name": ENTITY,
    "label": CORPUS[12],
    "label_plural": CORPUS[0],
    "description": CORPUS[16],
    "display_field": "title",
    "fields": [
        {"name": "title", "type": "text", "label": CORPUS[5], "help_text": CORPUS[6]},
        {
            "name": "notes",
            "type": "textarea",
            "label": CORPUS[11],
            "help_text": CORPUS[3],
        },
        {"name": "website", "type": "url", "label": CORPUS[7], "help_text": CORPUS[15]},
        {"name": "email", "type": "email", "label": CORPUS[4], "help_text": CORPUS[8]},
        {
            "name": "mood",
            "type": "picklist",
            "label": CORPUS[1],
            "options": [{"value": v, "label": text} for v, text in OPTIONS.items()],
        },
        {
            "name": "account",
            "type": "lookup",
            "target": "account",
            "on_delete": "set_null",
            "label": CORPUS[18],
            "help_text": CORPUS[9],
        },
        {
            "name": "parent",
            "type": "lookup",
            "target": ENTITY,
            "on_delete": "set_null",
            "label": CORPUS[10],
        },
    ],
}
PROBE_LAYOUT = {
    "kind": "layout",
    "entity": ENTITY,
    "form": {
        "tabs": [
            {
                "label": CORPUS[1],
                "sections": [
                    {
                        "label": CORPUS[14],
                        "columns": 2,
                        "items": [
                            {"field": "title"},
                            {"field": "mood"},
                            {"field": "account"},
                            {"field": "parent"},
                        ],
                    },
                    {
                        "label": CORPUS[6],
                        "columns": 1,
                        "collapsible": True,
                        # Always true; the payload is only there to be carried.
                        "visible_if": {"!=": [{"var": "title"}, CORPUS[13]]},
                        "items": [
                            {"field": "notes"},
                            {"field": "website"},
                            {"field": "email"},
                        ],
                    },
                ],
            },
            {
                "label": CORPUS[17],
                "sections": [
                    {
                        "label": CORPUS[0],
                        "items": [
                            {
                                "related": {"entity": ENTITY, "field": "parent"},
                                "label": CORPUS[3],
                                "columns": ["title", "notes", "mood"],
                            }
                        ],
                    }
                ],
            },
        ]
    },
    "list": {"columns": ["title", "notes", "mood", "account", "website", "email"]},
}
PROBE_RULES: list[dict[str, Any]] = [
    {
        "kind": "rule",
        "name": "xss_probe_notes_state",
        "entity": ENTITY,
        "type": "field_state",
        "label": CORPUS[5],
        "description": CORPUS[16],
        "field": "notes",
        "visible_if": {"!=": [{"var": "title"}, CORPUS[13]]},
        "required_if": {"==": [{"var": "title"}, CORPUS[0]]},
    },
    {
        "kind": "rule",
        "name": "xss_probe_refused_title",
        "entity": ENTITY,
        "type": "validation",
        "label": CORPUS[2],
        "field": "title",
        "condition": {"==": [{"var": "title"}, REFUSED_TITLE]},
        "message": CORPUS[11],
    },
]
#: The account the probes point to: its display name is a payload.
ACCOUNT = CORPUS[5]

# Finds what an escaping mistake leaves in a page, whether or not it ran: event
# handler attributes, inline or foreign scripts, frames, and links, forms or
# sources that lead to javascript: or data:.
DOM_PROBLEMS = """() => {
    const found = [];
    const bad = (value) => {
        const text = (value || "").replace(/[\\u0000-\\u0020]+/g, "").toLowerCase();
        return /^(javascript|data|vbscript):/.test(text);
    };
    for (const element of document.querySelectorAll("*")) {
        const tag = element.tagName.toLowerCase();
        for (const attribute of element.attributes) {
            const name = attribute.name.toLowerCase();
            if (name.startsWith("on") || name === "srcdoc") {
                found.push(`${tag}[${name}]`);
            }
            if (["href", "src", "action", "formaction", "xlink:href"].includes(name)
                && bad(attribute.value)) {
                found.push(`${tag}[${name}=${attribute.value}]`);
            }
        }
        if (["iframe", "frame", "object", "embed", "img", "svg"].includes(tag)) {
            found.push(tag);
        }
        if (tag === "script" && !(element.src || "").startsWith(
                location.origin + "/static/")) {
            found.push(`script ${element.src || element.textContent}`);
        }
        if (tag === "a" && element.href
                && ["javascript:", "data:"].includes(element.protocol)) {
            found.push(`a.protocol ${element.protocol}`);
        }
    }
    return found;
}"""

# Reports a Content-Security-Policy refusal to the test, whatever its source.
REPORT_CSP = """document.addEventListener("securitypolicyviolation", (event) => {
    window.__csp(`${event.violatedDirective} ${event.blockedURI} ${event.sample}`);
});"""


@dataclass(frozen=True)
class Probe:
    """The records the scenario made: the probes by title, and the account."""

    ids: dict[str, int]
    account_id: int
    view_id: int


def install_probe(platform: Platform) -> Probe:
    """Store the probe entity, its layout and rules, four records, an account
    and a shared view, each carrying payloads where people see text."""
    platform.store.apply(
        [("", PROBE_ENTITY), ("", PROBE_LAYOUT), *(("", r) for r in PROBE_RULES)],
        actor="test",
    )
    with platform.transaction() as (connection, catalog):
        admin = find_user(connection, USERNAME)
        service = RecordService(connection, catalog, admin.actor())
        account = service.create("account", {"name": ACCOUNT})
        first = service.create(
            ENTITY,
            {
                "title": CORPUS[12],
                "notes": f"{CORPUS[11]}\n{CORPUS[13]}",
                "website": LINKED_URL,
                "email": LINKED_EMAIL,
                "mood": "wary",
                "account": account["id"],
            },
        )
        others = [
            service.create(ENTITY, {"title": title, **values, "parent": first["id"]})
            for title, values in [
                (CORPUS[6], {"notes": CORPUS[14], "mood": "eager"}),
                (CORPUS[7], {"notes": CORPUS[16], "mood": "calm"}),
                (CORPUS[16], {"notes": CORPUS[18], "mood": "bold"}),
            ]
        ]
        view = save_view(
            connection,
            catalog,
            admin,
            {
                "entity": ENTITY,
                "label": CORPUS[2],
                "shared": True,
                "filter": {"and": [{"!=": [{"var": "title"}, CORPUS[13]]}]},
            },
        )
    ids = {record["title"]: int(record["id"]) for record in [first, *others]}
    return Probe(ids, int(account["id"]), int(view["id"]))


def remove_probe(platform: Platform, probe: Probe) -> None:
    """Delete the probe records and the account, then hide the entity."""
    with platform.transaction() as (connection, catalog):
        admin = find_user(connection, USERNAME)
        service = RecordService(connection, catalog, admin.actor())
        table = catalog.entity(ENTITY).table
        for record_id in connection.scalars(sa.select(table.c.id)).all():
            service.delete(ENTITY, record_id)
        service.delete("account", probe.account_id)
    for rule in PROBE_RULES:
        platform.store.remove_rule(rule["name"], actor="test")
    platform.store.remove_entity(ENTITY, actor="test")


@pytest.fixture(scope="module")
def probe(live_server: LiveServer) -> Iterator[Probe]:
    found = install_probe(live_server.platform)
    yield found
    remove_probe(live_server.platform, found)


@dataclass
class Trap:
    """A page whose payloads tell the test when they run.

    Each step ends with :meth:`check`, which files under the step's name what it
    left behind; a test ends with ``assert trap.problems == {}``.
    """

    page: Page
    ran: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    elsewhere: list[str] = field(default_factory=list)
    problems: dict[str, list[str]] = field(default_factory=dict)

    def dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def stay_home(self, route: Route) -> None:
        # Nothing leaves the test server: a payload that made the page fetch from
        # another host is noted, and the request never goes out.
        self.elsewhere.append(route.request.url)
        route.abort()

    def check(self, where: str) -> None:
        """File what the page reported since the last check, and the markup an
        escaping mistake leaves behind, under ``where``."""
        # A round trip, so that every report the page sent so far has arrived.
        self.page.evaluate("() => 0")
        found = [
            *(f"ran: __xss{args}" for args in self.ran),
            *(f"dialog {text}" for text in self.dialogs),
            *(f"CSP refused {text}" for text in self.refused),
            *(f"request to {url}" for url in self.elsewhere),
            *self.page.evaluate(DOM_PROBLEMS),
        ]
        for reports in (self.ran, self.dialogs, self.refused, self.elsewhere):
            reports.clear()
        if found:
            self.problems.setdefault(where, []).extend(found)


@pytest.fixture
def trap(open_page: OpenPage, probe: Probe) -> Trap:
    page = open_page()
    found = Trap(page)
    page.expose_function("__xss", lambda *args: found.ran.append(repr(args)))
    page.expose_function("__csp", lambda text: found.refused.append(text))
    page.add_init_script(REPORT_CSP)
    page.on("dialog", found.dialog)
    page.route(lambda url: urlsplit(url).hostname != "127.0.0.1", found.stay_home)
    return found


def shows(page: Page, *texts: str) -> None:
    """Each text is on the page where people read it, as text."""
    main = page.locator("main")
    for text in texts:
        expect(main).to_contain_text(text, use_inner_text=True)


def hover_all(links: Locator) -> None:
    """Hover every visible element of ``links``, as a pointer passing by would."""
    for link in links.all():
        if link.is_visible():
            link.hover()


def probe_href(probe: Probe, title: str, suffix: str = "") -> str:
    return f"/app/{ENTITY}/{probe.ids[title]}{suffix}"


def test_home_and_the_list_show_labels_values_search_and_filters_as_text(
    trap: Trap, probe: Probe
) -> None:
    page = trap.page

    page.goto("/")
    nav = page.get_by_role("navigation", name="Entities")
    shows(page, CORPUS[0], CORPUS[16])
    trap.check("home")
    nav.get_by_role("link", name=CORPUS[0], exact=True).hover()
    nav.get_by_role("link", name=CORPUS[0], exact=True).click()
    expect(page).to_have_url(re.compile(rf"/app/{ENTITY}$"))
    expect(page).to_have_title(f"{CORPUS[0]} · Tailor CRM")
    expect(page.get_by_role("heading", level=1)).to_have_text(CORPUS[0])
    expect(page.locator("table.records thead th")).to_contain_text(
        [CORPUS[5], CORPUS[11], CORPUS[1], CORPUS[18], CORPUS[7], CORPUS[4]]
    )
    for title in probe.ids:
        expect(page.get_by_role("link", name=title, exact=True)).to_be_visible()
    shows(page, *OPTIONS.values(), ACCOUNT, LINKED_URL, LINKED_EMAIL, CORPUS[11])
    hover_all(page.locator("table.records a"))
    trap.check("list")

    page.get_by_role("link", name=ACCOUNT, exact=True).first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text(ACCOUNT)
    trap.check("the account a probe looks up to")
    page.go_back()
    page.get_by_role("searchbox").fill(CORPUS[6])
    page.get_by_role("searchbox").press("Enter")
    expect(page).to_have_url(re.compile(r"[?&]q="))
    expect(page.get_by_role("searchbox")).to_have_value(CORPUS[6])
    expect(page.locator("a.row-link")).to_have_text([CORPUS[6]])
    trap.check("list with a search")

    page.goto(f"/app/{ENTITY}?notes__contains={quote(CORPUS[14])}")
    expect(page.locator("li.chip")).to_have_text(
        f"{CORPUS[11]} contains “{CORPUS[14]}” ×"
    )
    expect(page.locator("a.row-link")).to_have_text([CORPUS[6]])
    hover_all(page.locator("li.chip a"))
    trap.check("list with a filter in its address")

    page.goto(f"/app/{ENTITY}")
    page.locator("details.filter-builder > summary").click()
    page.locator("#add_field").select_option("mood")
    expect(page.locator("#add_value option")).to_have_text(list(OPTIONS.values()))
    page.locator("#add_field").select_option("account")
    page.locator("#add_value").press_sequentially(ACCOUNT[:5], delay=30)
    expect(page.locator("#add_value-options option")).to_have_count(1)
    expect(page.locator("#add_value-options option")).to_have_attribute(
        "value", ACCOUNT
    )
    trap.check("filter builder, picklist and lookup values")
    page.locator("#add_field").select_option("title")
    page.locator("#add_op").select_option("contains")
    page.locator("#add_value").fill(CORPUS[6])
    page.locator(".filter-submit button").click()
    expect(page.locator("li.chip")).to_contain_text(CORPUS[6])
    expect(page.locator("a.row-link")).to_have_text([CORPUS[6]])
    trap.check("list with a filter from the builder")

    assert trap.problems == {}


def test_saved_view_names_show_as_text_wherever_a_view_is_picked_or_kept(
    trap: Trap, probe: Probe
) -> None:
    page = trap.page

    page.goto(f"/app/{ENTITY}?view={probe.view_id}")
    expect(page.get_by_role("heading", level=1)).to_have_text(
        f"{CORPUS[0]} · {CORPUS[2]}"
    )
    expect(page.locator("#view-select option:checked")).to_have_text(CORPUS[2])
    expect(page.locator("li.chip")).to_contain_text(CORPUS[13])
    trap.check("list shown through a saved view")
    page.get_by_role("link", name="Rename or delete view").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"View “{CORPUS[2]}”")
    expect(page.locator("#view-label")).to_have_value(CORPUS[2])
    shows(page, CORPUS[5], CORPUS[11], CORPUS[4])
    trap.check("the page of a saved view")

    page.goto(f"/app/{ENTITY}")
    page.locator("details.save-view > summary").click()
    page.locator("#view-label").fill(CORPUS[3])
    page.get_by_role("button", name="Save view").click()
    expect(page.locator(".flash-success")).to_have_text(
        f"The view “{CORPUS[3]}” was saved."
    )
    expect(page.locator("#view-select option:checked")).to_have_text(CORPUS[3])
    page.locator("#view-select").select_option(label=CORPUS[2])
    page.get_by_role("button", name="Show", exact=True).click()
    expect(page.locator("#view-select option:checked")).to_have_text(CORPUS[2])

    trap.check("a view saved from the list, then another picked")
    assert trap.problems == {}


def test_detail_and_delete_pages_show_the_payloads_as_text(
    trap: Trap, probe: Probe
) -> None:
    page = trap.page
    first, child = CORPUS[12], CORPUS[16]

    page.goto(probe_href(probe, first))
    expect(page).to_have_title(f"{first} · Tailor CRM")
    expect(page.get_by_role("heading", level=1)).to_have_text(first)
    expect(page.get_by_role("tab")).to_have_text([CORPUS[1], CORPUS[17]])
    shows(page, CORPUS[14], CORPUS[6], CORPUS[5], CORPUS[1], CORPUS[13], ACCOUNT)
    shows(page, CORPUS[11], CORPUS[7], CORPUS[4], LINKED_URL, LINKED_EMAIL)
    expect(page.get_by_role("link", name=LINKED_URL)).to_have_attribute(
        "href", LINKED_URL
    )
    expect(page.get_by_role("link", name=LINKED_EMAIL)).to_have_attribute(
        "href", f"mailto:{LINKED_EMAIL}"
    )
    hover_all(page.locator("main a"))
    trap.check("detail page")
    page.get_by_role("tab", name=CORPUS[17], exact=True).click()
    related = page.locator(".related")
    expect(related.get_by_role("heading", level=3)).to_contain_text(CORPUS[3])
    expect(page.get_by_role("heading", level=2, name=CORPUS[0])).to_be_visible()
    for title in (CORPUS[6], CORPUS[7], child):
        expect(related.get_by_role("link", name=title, exact=True)).to_be_visible()
    shows(page, CORPUS[14], CORPUS[16], CORPUS[18], CORPUS[17], CORPUS[2])
    hover_all(related.locator("a"))
    trap.check("related list")
    related.get_by_role("link", name=child, exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(child)
    trap.check("detail page of a related record")

    page.goto(probe_href(probe, first, "/delete"))
    expect(page.get_by_role("heading", level=1)).to_have_text(
        f"Delete {CORPUS[12].lower()} “{first}”?"
    )
    expect(page.locator("ul.dependents")).to_contain_text(f"3 {CORPUS[0]}")
    expect(page.locator("ul.dependents")).to_contain_text(f"(through {CORPUS[10]})")
    hover_all(page.locator("main a"))
    trap.check("delete confirmation")
    page.goto(f"/app/account/{probe.account_id}/delete")
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"“{ACCOUNT}”")
    expect(page.locator("ul.dependents")).to_contain_text(f"(through {CORPUS[18]})")
    trap.check("delete confirmation of the account")
    page.goto("/")
    recent = page.get_by_role("region", name="Recently viewed")
    for title in (first, child):
        expect(recent.get_by_role("link", name=title, exact=True)).to_be_visible()

    trap.check("home with recently viewed probes")
    assert trap.problems == {}


def test_the_edit_form_holds_payloads_as_values_and_the_rules_compare_them(
    trap: Trap, probe: Probe
) -> None:
    page = trap.page
    notes = page.locator('[data-field="notes"]')

    page.goto(probe_href(probe, CORPUS[12], "/edit"))
    expect(page).to_have_title(f"{CORPUS[12]} · Tailor CRM")
    expect(page.locator("label[for=f-title]")).to_have_text(CORPUS[5])
    expect(page.locator("label[for=f-notes]")).to_contain_text(CORPUS[11])
    for field_name, help_text in [
        ("title", CORPUS[6]),
        ("notes", CORPUS[3]),
        ("website", CORPUS[15]),
        ("email", CORPUS[8]),
        ("account", CORPUS[9]),
    ]:
        expect(page.locator(f"#f-{field_name}-help")).to_have_text(help_text)
    expect(page.locator("#f-mood option")).to_have_text(["—", *OPTIONS.values()])
    expect(page.locator("#f-mood option:checked")).to_have_text(CORPUS[13])
    expect(page.locator("#f-title")).to_have_value(CORPUS[12])
    expect(page.locator("#f-notes")).to_have_value(f"{CORPUS[11]}\n{CORPUS[13]}")
    expect(page.locator("#f-website")).to_have_value(LINKED_URL)
    expect(page.locator("#f-email")).to_have_value(LINKED_EMAIL)
    expect(page.locator("#f-account")).to_have_value(ACCOUNT)
    shows(page, CORPUS[14], CORPUS[6])
    trap.check("edit form")
    for control in page.locator("form.record-form :is(input, select, textarea)").all():
        if control.is_visible():
            control.focus()
    for value in OPTIONS:
        page.locator("#f-mood").select_option(value)
    trap.check("edit form, each field focused and each option chosen")

    # The field state rule hides the notes for one payload and requires them for
    # another: the strings reached rules.js intact.
    page.locator("#f-title").fill(CORPUS[13])
    expect(notes).to_be_hidden()
    page.locator("#f-title").fill(CORPUS[0])
    expect(notes).to_be_visible()
    expect(notes.locator("[data-required-mark]")).to_be_visible()
    trap.check("edit form, field state driven by payload titles")

    account = page.locator("#f-account")
    account.fill("")
    account.press_sequentially(ACCOUNT[:5], delay=30)
    option = page.locator("#f-account-options").get_by_role("option", name=ACCOUNT)
    option.hover()
    option.click()
    expect(account).to_have_value(ACCOUNT)
    parent = page.locator("#f-parent")
    parent.press_sequentially(CORPUS[3], delay=10)
    expect(parent).to_have_attribute("aria-expanded", "false")
    parent.fill("")
    parent.press_sequentially("<", delay=30)
    options = page.locator("#f-parent-options").get_by_role("option")
    expect(options).to_contain_text([CORPUS[12], CORPUS[16]])
    hover_all(options)
    options.filter(has_text=CORPUS[16]).click()
    expect(parent).to_have_value(CORPUS[16])
    trap.check("edit form, lookup type-ahead")

    page.locator("#f-title").fill(REFUSED_TITLE)
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Save").click()
    assert answer.value.status == 422
    summary = page.locator(".error-summary")
    expect(summary).to_contain_text(f"{CORPUS[5]}: {CORPUS[11]}")
    expect(page.locator("#f-title-errors")).to_have_text(f"Error: {CORPUS[11]}")
    hover_all(summary.locator("a"))
    summary.locator("a").first.click()
    expect(page.locator("#f-title")).to_be_focused()

    trap.check("edit form refused by a rule whose message is a payload")
    assert trap.problems == {}


def test_the_new_form_refuses_script_urls_and_saves_payloads_as_text(
    trap: Trap, probe: Probe, live_server: LiveServer
) -> None:
    page = trap.page
    title, notes = CORPUS[18], f"{CORPUS[17]} {CORPUS[1]}"
    website = page.locator("#f-website")

    page.goto(f"/app/{ENTITY}/new")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"New {CORPUS[12]}")
    shows(page, CORPUS[5], CORPUS[6], CORPUS[11], CORPUS[3], CORPUS[15], CORPUS[8])
    trap.check("new form")
    page.locator("#f-title").fill(title)
    page.locator("#f-notes").fill(notes)
    page.locator("#f-mood").select_option("calm")
    for refused in REFUSED_URLS:
        website.fill(refused)
        with page.expect_response(lambda r: r.request.method == "POST") as answer:
            page.get_by_role("button", name="Save").click()
        assert answer.value.status == 422
        # The save reads an address without the spaces around what was typed;
        # the refused form shows what was typed, to be mended.
        sent = refused.strip()
        expect(page.locator("#f-website-errors")).to_have_text(
            f"Error: {sent!r} is not an http or https address."
        )
        expect(website).to_have_value(refused)
        expect(page.locator("#f-title")).to_have_value(title)
        trap.check(f"new form refusing {refused!r}")
    assert live_server.find(ENTITY, title=title) == []

    website.fill(LINKED_URL)
    page.locator("#f-email").fill(LINKED_EMAIL)
    page.locator("#f-account").press_sequentially(ACCOUNT[:5], delay=30)
    page.locator("#f-account-options").get_by_role("option", name=ACCOUNT).click()
    page.get_by_role("button", name="Save").click()

    expect(page).to_have_url(re.compile(rf"/app/{ENTITY}/\d+$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(title)
    shows(page, notes, CORPUS[2], ACCOUNT, LINKED_URL, LINKED_EMAIL)
    expect(page.get_by_role("link", name=LINKED_URL)).to_have_attribute(
        "href", LINKED_URL
    )
    [saved] = live_server.find(ENTITY, title=title)
    assert (saved["notes"], saved["website"], saved["email"], saved["mood"]) == (
        notes,
        LINKED_URL,
        LINKED_EMAIL,
        "calm",
    )
    assert saved["account"] == probe.account_id
    trap.check("detail page of the new probe")
    assert trap.problems == {}


def probe_csv() -> bytes:
    """A file whose header and cells are payloads, with a script URL to refuse."""
    rows = [
        ["title", CORPUS[3], "website", "notes"],
        [CORPUS[16], CORPUS[0], CORPUS[8], CORPUS[11]],
        [CORPUS[6], CORPUS[13], "https://probe.example/", CORPUS[18]],
    ]
    text = io.StringIO()
    csv.writer(text).writerows(rows)
    return text.getvalue().encode("utf-8")


def test_the_import_page_shows_columns_cells_and_problems_as_text(
    trap: Trap, probe: Probe
) -> None:
    page = trap.page
    filename = "<svg onload=__xss(4)> 'probe'.csv"

    page.goto(f"/app/{ENTITY}/import")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Import {CORPUS[0]}")
    trap.check("import page")
    upload: FilePayload = {
        "name": filename,
        "mimeType": "text/csv",
        "buffer": probe_csv(),
    }
    page.get_by_label("CSV file").set_input_files(files=[upload])
    page.get_by_role("button", name="Upload and match columns").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        f"Import {CORPUS[0]} · {filename}"
    )
    expect(page.locator("table.mapping tbody th")).to_have_text(
        ["title", CORPUS[3], "website", "notes"]
    )
    shows(page, CORPUS[16], CORPUS[0], CORPUS[8], CORPUS[11], CORPUS[6], CORPUS[13])
    expect(page.locator("select[name=map_0] option:checked")).to_have_text(CORPUS[5])
    expect(page.locator("select[name=map_0] option")).to_contain_text(
        [CORPUS[5], CORPUS[11], CORPUS[18], CORPUS[1], CORPUS[4], CORPUS[7]]
    )
    trap.check("import, columns matched")
    page.get_by_role("button", name="Check without importing").click()
    problems = page.locator("table.import-errors tbody tr")
    expect(problems).to_have_count(1)
    expect(problems).to_contain_text(CORPUS[7])
    expect(problems).to_contain_text(f"{CORPUS[8]!r} is not an http or https address.")
    trap.check("import, checked")
    page.get_by_role("button", name="Discard the file").click()

    expect(page.get_by_text("The uploaded file was discarded.")).to_be_visible()
    trap.check("import, file discarded")
    assert trap.problems == {}
