"""Record pages, related lists, deleting, lookup search and its index, escaping."""

from __future__ import annotations

import datetime as dt
import json
import random
import string
import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from tailorcrm.platform import Platform, create_app
from tailorcrm.platform.db import is_sqlite, recent_records, users
from tailorcrm.platform.query import lookup_matches, lookup_query
from tailorcrm.platform.search_index import (
    ASCII_LOWERING,
    create_index,
    prefix_ranges,
)
from tailorcrm.renderer import format_value
from tests.conftest import LONG_NAME, LONG_NAMED, Api, load_pack
from tests.web_helpers import (
    Browser,
    by_id,
    create,
    elements,
    fetch,
    sign_in,
    text_of,
)

NBSP = "\xa0"
# Tags that end a field's value on a record page.
_AFTER_FIELD = frozenset({"dt", "div", "section", "h2", "h3", "p", "dl"})


@pytest.fixture
def browser(app: Flask, sales: Platform) -> Browser:
    return sign_in(app, sales)


def page_of(browser: Browser, path: str, **kwargs: Any) -> str:
    response = browser.get(path, **kwargs)
    assert response.status_code == 200, path
    return response.get_data(as_text=True)


def links(page: str) -> dict[str, str]:
    """Each link's text and address (the last one wins for a repeated text)."""
    return {e.text: e["href"] for e in elements(page) if e.tag == "a" and e.text}


def field_text(page: str, label: str) -> str:
    """The shown value of the field labelled ``label`` on a record page."""
    found = elements(page)
    for index, element in enumerate(found):
        if element.tag == "dt" and element.text == label:
            following = found[index + 1 :]
            end = next(i for i, e in enumerate(following) if e.tag in _AFTER_FIELD)
            return " ".join(e.text for e in following[:end] if e.text)
    raise AssertionError(f"no field labelled {label!r}")


# -- record pages ----------------------------------------------------------------


def test_a_record_page_shows_values_as_people_read_them(
    browser: Browser, sales: Platform
) -> None:
    acme = create(
        sales,
        "account",
        name="Acme",
        annual_revenue=1234.5,
        website="https://acme.example/",
        phone="+1 555 0100",
    )
    contact = create(
        sales,
        "contact",
        full_name="Ada Byron",
        email="ada@acme.example",
        birthdate="1990-03-01",
        account=acme["id"],
    )
    deal = create(sales, "opportunity", title="Deal", probability=25)

    account = page_of(browser, f"/app/account/{acme['id']}")
    german = page_of(
        browser, f"/app/account/{acme['id']}", headers={"Accept-Language": "de-DE"}
    )
    person = page_of(browser, f"/app/contact/{contact['id']}")
    person_de = page_of(
        browser, f"/app/contact/{contact['id']}", headers={"Accept-Language": "de"}
    )
    chance = page_of(
        browser, f"/app/opportunity/{deal['id']}", headers={"Accept-Language": "de"}
    )

    assert field_text(account, "Annual revenue") == "$1,234.50"
    assert field_text(german, "Annual revenue") == f"1.234,50{NBSP}$"
    assert field_text(person, "Birthdate") == "Mar 1, 1990"
    assert field_text(person_de, "Birthdate") == "01.03.1990"
    assert field_text(chance, "Probability") == f"25,00{NBSP}%"
    website = [e for e in elements(account) if e.get("href") == "https://acme.example/"]
    assert [(e["rel"], e["target"]) for e in website] == [
        ("noopener noreferrer", "_blank")
    ]
    assert links(account)["+1 555 0100"] == "tel:+15550100"
    assert links(person)["ada@acme.example"] == "mailto:ada@acme.example"
    assert links(person)["Acme"] == f"/app/account/{acme['id']}"
    assert field_text(account, "Industry") == "— empty"


def test_a_url_that_is_not_http_is_shown_but_never_linked(
    browser: Browser, sales: Platform
) -> None:
    acme = create(sales, "account", name="Acme")
    with sales.engine.begin() as connection:
        # The record service refuses such a URL; older data or SQL may hold one.
        connection.execute(
            sa.text("UPDATE account SET website = :site"),
            {"site": "javascript:alert(1)"},
        )

    page = page_of(browser, f"/app/account/{acme['id']}")

    assert field_text(page, "Website") == "javascript:alert(1)"
    assert "javascript:" not in [e.get("href", "") or "" for e in elements(page)]
    assert 'href="javascript' not in page.lower()
    shown = format_value({"type": "url"}, "JavaScript:alert(1)")
    assert shown.href is None


def test_related_lists_show_five_rows_the_total_and_a_prefilled_new_button(
    browser: Browser, sales: Platform
) -> None:
    acme = create(sales, "account", name="Acme")
    for number in range(7):
        create(sales, "opportunity", title=f"Deal {number}", account=acme["id"])
    create(sales, "contact", full_name="Ada Byron", account=acme["id"])

    page = page_of(browser, f"/app/account/{acme['id']}")

    blocks = {block.split('"', 1)[0]: block for block in page.split('id="related-')[1:]}
    deals = blocks["opportunity-account"]
    rows = [e for e in elements(deals) if e.get("class") == "row-link"]
    assert len(rows) == 5
    assert links(deals)["New Opportunity"] == (
        f"/app/opportunity/new?account={acme['id']}"
    )
    assert links(deals)["View all 7 Opportunities"] == (
        f"/app/opportunity?account={acme['id']}"
    )
    contacts = blocks["contact-account"]
    assert links(contacts)["Ada Byron"].startswith("/app/contact/")
    assert "View all" not in contacts


def test_recently_viewed_records_are_listed_on_the_home_page(
    browser: Browser, sales: Platform
) -> None:
    acme = create(sales, "account", name="Acme")
    ada = create(sales, "contact", full_name="Ada Byron")
    page_of(browser, f"/app/account/{acme['id']}")
    page_of(browser, f"/app/contact/{ada['id']}")

    home = page_of(browser, "/")

    recent = home[home.index('id="recent-heading"') :]
    shown = [e.text for e in elements(recent) if e.tag == "a"]
    assert shown[:2] == ["Ada Byron", "Acme"]


def test_a_record_opened_twice_at_once_is_remembered_once(
    browser: Browser, sales: Platform
) -> None:
    acme = create(sales, "account", name="Acme")
    if is_sqlite(sales.engine):
        pytest.skip("SQLite lets one writer in at a time: the pages take turns")
    user_id = _user_id(sales, "dana.vega")
    answers: list[int] = []
    other = sales.engine.connect()
    held = other.begin()
    # Another page of the same record notes it first and has not committed yet:
    # this page's update finds no row, and its insert waits for the other's.
    other.execute(
        recent_records.insert().values(
            user_id=user_id,
            entity="account",
            record_id=acme["id"],
            viewed_at=dt.datetime(2031, 4, 17, 9, 41, 27),
        )
    )
    opening = threading.Thread(
        target=lambda: answers.append(
            browser.get(f"/app/account/{acme['id']}").status_code
        )
    )

    opening.start()
    time.sleep(1)
    held.commit()
    other.close()
    opening.join()

    assert answers == [200]
    with sales.engine.connect() as connection:
        viewed = connection.execute(
            sa.select(recent_records.c.viewed_at).where(
                recent_records.c.record_id == acme["id"]
            )
        ).scalars()
        assert [at.year for at in viewed] == [dt.datetime.now(dt.UTC).year]


def _user_id(platform: Platform, username: str) -> int:
    with platform.engine.connect() as connection:
        return int(
            connection.execute(
                sa.select(users.c.id).where(users.c.username == username)
            ).scalar_one()
        )


def test_record_pages_draw_tabs_and_collapsed_sections_from_the_layout(
    browser: Browser, sales: Platform
) -> None:
    layout = {
        "kind": "layout",
        "entity": "account",
        "form": {
            "tabs": [
                {"label": "Main", "sections": [{"items": [{"field": "name"}]}]},
                {
                    "label": "Money",
                    "sections": [
                        {
                            "label": "Figures",
                            "collapsible": True,
                            "collapsed": True,
                            "items": [{"field": "annual_revenue"}],
                        }
                    ],
                },
            ]
        },
    }
    sales.store.apply([("layout.json", layout)], actor="test")
    acme = create(sales, "account", name="Acme")

    page = page_of(browser, f"/app/account/{acme['id']}")

    tabs = [e for e in elements(page) if e.get("role") == "tab"]
    assert [(t.text, t["aria-selected"], t["href"]) for t in tabs] == [
        ("Main", "true", "#tab-0"),
        ("Money", "false", "#tab-1"),
    ]
    assert by_id(page, "tab-1")["aria-labelledby"] == "tab-1-tab"
    assert "<details>" in page and "<summary><h2>Figures</h2></summary>" in page


# -- deleting --------------------------------------------------------------------


def test_deleting_asks_first_naming_the_record_and_what_refers_to_it(
    browser: Browser, sales: Platform
) -> None:
    acme = create(sales, "account", name="Acme")
    ada = create(sales, "contact", full_name="Ada Byron", account=acme["id"])
    create(sales, "contact", full_name="Bo Chen", account=acme["id"])
    create(sales, "opportunity", title="Deal", account=acme["id"])

    page = page_of(browser, f"/app/account/{acme['id']}/delete")

    text = text_of(page)
    assert "Delete account “Acme”?" in text
    assert "2 Contacts (through Account): Account will be cleared on each." in text
    assert (
        "1 Opportunity (through Account): blocks the deletion; delete it or change "
        "Account first."
    ) in text
    assert "“Acme” cannot be deleted yet." in text
    assert links(page)["1 Opportunity"] == f"/app/opportunity?account={acme['id']}"
    assert not [
        e
        for e in elements(page)
        if e.tag == "form" and "delete" in (e.get("action") or "")
    ]
    assert fetch(sales, "contact", ada["id"])["account"] == acme["id"]


def test_a_delete_without_blockers_is_confirmed_with_a_button_and_clears_lookups(
    browser: Browser, sales: Platform
) -> None:
    acme = create(sales, "account", name="Acme")
    ada = create(sales, "contact", full_name="Ada Byron", account=acme["id"])

    page = page_of(browser, f"/app/account/{acme['id']}/delete")
    response = browser.post(
        f"/app/account/{acme['id']}/delete", {"_version": str(acme["version"])}
    )

    buttons = [e for e in elements(page) if e.tag == "button"]
    assert [b.text for b in buttons][-1] == "Delete “Acme”"
    assert buttons[-1]["type"] == "submit"
    assert "Deleting it cannot be undone." in text_of(page)
    assert response.status_code == 303
    assert response.headers["Location"] == "/app/account"
    assert fetch(sales, "contact", ada["id"])["account"] is None
    listed = page_of(browser, "/app/account")
    assert "Account “Acme” was deleted." in listed


def test_a_blocked_delete_sent_anyway_deletes_nothing_and_says_why(
    browser: Browser, sales: Platform
) -> None:
    acme = create(sales, "account", name="Acme")
    create(sales, "opportunity", title="Deal", account=acme["id"])

    response = browser.post(f"/app/account/{acme['id']}/delete", {})

    assert response.status_code == 303
    assert response.headers["Location"] == f"/app/account/{acme['id']}/delete"
    page = page_of(browser, response.headers["Location"])
    assert "cannot be deleted while other records refer to it" in page
    assert fetch(sales, "account", acme["id"])["name"] == "Acme"


# -- lookup search -----------------------------------------------------------------


def test_lookup_search_answers_ten_names_by_prefix_in_name_order(
    browser: Browser, sales: Platform
) -> None:
    for number in [12, 3, 7, 1, 11, 5, 9, 2, 10, 4, 8, 6]:
        create(sales, "account", name=f"Acme {number:02}")
    create(sales, "account", name="acme 00")
    create(sales, "account", name="Beta")

    found = browser.get("/app/account/lookup?q=ACM").json
    percent = browser.get("/app/account/lookup?q=%25").json
    blank = browser.get("/app/account/lookup?q=").json

    assert [row["name"] for row in found] == ["acme 00"] + [
        f"Acme {n:02}" for n in range(1, 10)
    ]
    assert set(found[0]) == {"id", "name"}
    assert percent == []
    assert len(blank) == 10


def test_lookup_search_sends_names_as_data_that_never_reads_as_markup(
    browser: Browser, sales: Platform
) -> None:
    evil = create(sales, "account", name="<script>alert(1)</script> & Co")

    response = browser.get("/app/account/lookup?q=%3Cscr")

    body = response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    assert "<" not in body and ">" not in body and "&" not in body
    assert json.loads(body) == [
        {"id": evil["id"], "name": "<script>alert(1)</script> & Co"}
    ]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def _explain(connection: sa.Connection, statement: sa.Select[Any]) -> str:
    compiled = statement.compile(dialect=connection.dialect)
    if is_sqlite(connection):
        params: Any = tuple(
            compiled.params[name] for name in compiled.positiontup or []
        )
        rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", params)
    else:
        # Few rows make a scan cheapest; with scans priced out, the plan shows
        # whether the index can serve the query at all.
        connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
        rows = connection.exec_driver_sql(f"EXPLAIN {compiled}", compiled.params)
    return "\n".join(str(row[-1]) for row in rows)


def test_lookup_search_goes_through_the_display_field_index(sales: Platform) -> None:
    plans = []
    with sales.engine.begin() as connection:
        account = sales.catalogs.get(connection).entity("account")
        for text in ("Ac", "kiel", "zz"):
            plans.append(_explain(connection, lookup_query(connection, account, text)))

    for plan in plans:
        assert "sx_account" in plan, plan
        assert "SCAN account" not in plan and "Seq Scan" not in plan, plan


def test_prefix_ranges_cover_every_lower_case_spelling() -> None:
    ascii_lowering = {
        char.lower()[0]: char
        for char in map(chr, range(0x80, 0x110000))
        if char.lower() != char and char.lower()[0].isascii()
    }

    assert ascii_lowering == ASCII_LOWERING
    assert prefix_ranges("ab") == [("ab", "ac")]
    assert prefix_ranges("sk") == [("sk", "sl"), ("s\u212a", "s\u212b")]
    assert prefix_ranges("li") == [("li", "lj"), ("l\u0130", "l\u0131")]
    assert prefix_ranges("lis") == [("lis", "lit")]
    assert prefix_ranges("éc") == []
    assert prefix_ranges("a@") == [("a@", "aA")]


def test_lookup_search_on_sqlite_ignores_case_beyond_ascii(
    browser: Browser, sales: Platform, database_url: str
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("PostgreSQL folds case with the database's own rules")
    for name in ["École", "ecole", "ÉCOLE", "\u212aelvin", "Kelvin", "İzmir"]:
        create(sales, "account", name=name)

    def names(text: str) -> list[str]:
        return sorted(
            row["name"] for row in browser.get(f"/app/account/lookup?q={text}").json
        )

    assert names("éc") == ["ÉCOLE", "École"]
    assert names("KEL") == ["Kelvin", "\u212aelvin"]
    assert names("i") == ["İzmir"]


# -- the search index in the schema ------------------------------------------------


def _index_sql(platform: Platform, entity: str) -> str | None:
    with platform.engine.connect() as connection:
        if is_sqlite(connection):
            query = "SELECT sql FROM sqlite_master WHERE name = :name"
        else:
            # The schema of this test: others may run beside it.
            query = (
                "SELECT indexdef FROM pg_indexes WHERE indexname = :name"
                " AND schemaname = current_schema()"
            )
        found = connection.execute(sa.text(query), {"name": f"sx_{entity}"}).scalar()
        return None if found is None else str(found)


def _account_document(platform: Platform) -> dict[str, Any]:
    with platform.engine.connect() as connection:
        return dict(platform.catalogs.get(connection).entity("account").document)


def test_an_entity_is_created_with_a_search_index_on_its_display_field(
    sales: Platform,
) -> None:
    created = _index_sql(sales, "account")

    if sales.engine.dialect.name == "sqlite":
        assert (
            created == 'CREATE INDEX "sx_account" ON "account" ("name" COLLATE NOCASE)'
        )
    else:
        assert created is not None and "(lower(name) text_pattern_ops)" in created


def test_the_search_index_follows_the_display_field(sales: Platform) -> None:
    renamed = _account_document(sales)
    renamed["fields"] = [dict(spec) for spec in renamed["fields"]]
    renamed["fields"][0]["name"] = "company"
    renamed["display_field"] = "company"
    moved = {**renamed, "display_field": "erp_code"}

    rename = sales.store.apply([("", renamed)], actor="test")
    after_rename = _index_sql(sales, "account")
    move = sales.store.apply([("", moved)], actor="test")
    after_move = _index_sql(sales, "account")

    assert rename.plan.describe() == ["rename_field account.company old=name"]
    assert after_rename is not None and "company" in after_rename
    assert move.plan.describe() == [
        "drop_search_index account.company",
        "add_search_index account.erp_code",
    ]
    assert after_move is not None and "erp_code" in after_move


def test_a_display_field_longer_than_an_index_entry_has_no_search_index(
    platform: Platform, api: Api
) -> None:
    # PostgreSQL refuses a b-tree entry past about 2,700 bytes, so an index on
    # such a field would refuse the save of a long name; its lookups scan.
    memo = LONG_NAMED
    body = LONG_NAME

    created = api.put("/meta/entities/memo", json=memo)
    saved = api.post("/memo", json={"body": body})
    with platform.engine.connect() as connection:
        memo_entity = platform.catalogs.get(connection).entity("memo")
        found = lookup_matches(connection, memo_entity, body[:30].upper())

    assert created.status_code == 201, created.json
    assert "add_search_index memo.body" not in created.json["steps"]
    assert saved.status_code == 201, saved.json
    assert _index_sql(platform, "memo") is None
    assert found == [(saved.json["id"], body)]


def test_a_database_made_before_search_indexes_gets_them_when_it_starts(
    sales: Platform, database_url: str
) -> None:
    with sales.engine.begin() as connection:
        connection.exec_driver_sql('DROP INDEX "sx_account"')
        connection.exec_driver_sql('DROP INDEX "sx_contact"')

    again = create_app({"database_url": database_url, "secret_key": "test"})
    second = create_app({"database_url": database_url, "secret_key": "test"})

    assert _index_sql(sales, "account") is not None
    assert _index_sql(sales, "contact") is not None
    for started in (again, second):
        started.extensions["tailorcrm"].engine.dispose()


NOTE = {
    "name": "note",
    "label": "Note",
    "display_field": "body",
    "fields": [{"name": "body", "type": "textarea", "label": "Body"}],
}


def test_a_display_field_too_long_for_an_index_entry_gets_no_search_index(
    platform: Platform,
) -> None:
    # Letters in no order: PostgreSQL cannot compress them into an index entry's
    # 2,700 bytes.
    body = "".join(random.Random(7).choices(string.ascii_letters, k=3000))
    text = {"name": "body", "type": "text", "label": "Body"}
    short = {**NOTE, "name": "memo", "fields": [{**text, "max_length": 80}]}
    long = {**short, "fields": [{**text, "max_length": 4000}]}

    created = platform.store.apply([("", NOTE)], actor="test")
    note = create(platform, "note", body=body)
    platform.store.apply([("", short)], actor="test")
    widened = platform.store.apply([("", long)], actor="test")
    memo = create(platform, "memo", body=body)

    assert "add_search_index note.body" not in created.plan.describe()
    assert fetch(platform, "note", note["id"])["body"] == body
    assert widened.plan.describe() == ["drop_search_index memo.body"]
    assert fetch(platform, "memo", memo["id"])["body"] == body


def test_a_search_index_too_long_for_its_display_field_is_dropped_when_it_starts(
    platform: Platform, database_url: str
) -> None:
    platform.store.apply([("", NOTE)], actor="test")
    with platform.engine.begin() as connection:
        # As a database made before such display fields went without one.
        create_index(connection, "note", "body")

    again = create_app({"database_url": database_url, "secret_key": "test"})
    body = "".join(random.Random(7).choices(string.ascii_letters, k=3000))
    note = create(platform, "note", body=body)

    assert _index_sql(platform, "note") is None
    assert fetch(platform, "note", note["id"])["body"] == body
    again.extensions["tailorcrm"].engine.dispose()


def test_purging_a_column_keeps_the_search_index_as_it_was(sales: Platform) -> None:
    before = _index_sql(sales, "account")
    document = _account_document(sales)
    document["fields"] = [
        s for s in document["fields"] if s["name"] != "parent_account"
    ]
    sales.store.apply([("", document)], actor="test")

    sales.store.purge("account", "parent_account", actor="test")

    assert _index_sql(sales, "account") == before


# -- escaping ------------------------------------------------------------------------

SCRIPT = "<script>alert(1)</script>"
QUOTE = '" onmouseover="alert(1)'
GIZMO = {
    "name": "gizmo",
    "label": SCRIPT,
    "label_plural": f"{QUOTE} gizmos",
    "description": SCRIPT,
    "display_field": "title",
    "fields": [
        {
            "name": "title",
            "type": "text",
            "label": QUOTE,
            "help_text": SCRIPT,
            "required": True,
        },
        {"name": "notes", "type": "textarea", "label": SCRIPT, "help_text": QUOTE},
        {"name": "site", "type": "url", "label": f"Site {QUOTE}"},
        {
            "name": "kind",
            "type": "picklist",
            "label": f"Kind {SCRIPT}",
            "options": [
                {"value": "a", "label": SCRIPT},
                {"value": "b", "label": QUOTE},
            ],
        },
        {
            "name": "flags",
            "type": "multi_picklist",
            "label": "Flags",
            "options": [
                {"value": "x", "label": QUOTE},
                {"value": "y", "label": SCRIPT},
            ],
        },
        {"name": "maker", "type": "lookup", "target": "account", "label": QUOTE},
    ],
}


def _assert_safe(response: Any) -> str:
    page: str = response.get_data(as_text=True)
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert SCRIPT not in page
    assert QUOTE not in page
    found = elements(page)
    hrefs = [(e.get("href") or "").strip().lower() for e in found]
    assert [href for href in hrefs if href.startswith("javascript:")] == []
    assert [e for e in found if e.tag == "script" and not e.get("src")] == []
    assert [e for e in found if any(name.startswith("on") for name in e.attrs)] == []
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    return page


def test_every_page_shows_metadata_and_values_as_text(
    app: Flask, platform: Platform
) -> None:
    platform.store.apply([*load_pack(), ("gizmo.json", GIZMO)], actor="test")
    browser = sign_in(app, platform)
    maker = create(platform, "account", name=SCRIPT)
    gizmo = create(
        platform,
        "gizmo",
        title=f"{SCRIPT}{QUOTE}",
        notes=f"{SCRIPT}\n{QUOTE}",
        site=f"https://example.com/?q={QUOTE}",
        kind="a",
        flags=["x", "y"],
        maker=maker["id"],
    )
    with platform.engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE account SET website = 'javascript:alert(1)'")
        )
    record = f"/app/gizmo/{gizmo['id']}"

    pages = [
        browser.get("/app/gizmo"),
        browser.get(record),
        browser.get(f"/app/account/{maker['id']}"),
        browser.get("/app/gizmo/new"),
        browser.get(f"{record}/edit"),
        browser.get(f"{record}/delete"),
        browser.get("/"),
    ]
    refused = browser.post(
        f"{record}/edit",
        {"title": "", "notes": SCRIPT, "site": f"nope {QUOTE}", "kind": QUOTE},
    )

    for response in pages:
        assert response.status_code == 200, response.request.path
        _assert_safe(response)
    assert refused.status_code == 422
    summary = _assert_safe(refused)
    assert "&#34; onmouseover=&#34;alert(1): This field is required." in summary
    assert 'value="nope &#34; onmouseover=&#34;alert(1)"' in summary
