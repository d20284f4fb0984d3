"""List pages: sort, search, filters, pages, saved views, selected rows, export."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import pytest
import sqlalchemy as sa
from flask import Flask
from werkzeug.test import TestResponse

from tailorcrm.errors import InvalidMetadata
from tailorcrm.platform import Platform
from tailorcrm.platform.auth import create_user, find_user
from tailorcrm.platform.csvio import read_csv
from tailorcrm.platform.db import saved_views
from tailorcrm.platform.exporting import export_columns
from tailorcrm.platform.query import (
    Page,
    parse_list_args,
    run_list,
    run_list_before,
)
from tailorcrm.platform.records import SYSTEM_ACTOR
from tailorcrm.platform.views import get_view, list_views, save_view
from tailorcrm.platform.web._filters import (
    MAX_NESTING,
    condition_of,
    filters_of,
    nesting,
)
from tailorcrm.rules_engine import evaluate

from .conftest import CROSSED_TIERS, Api, add_field, grant_all
from .web_helpers import (
    PASSWORD,
    Browser,
    by_id,
    create,
    elements,
    sign_in,
    text_of,
    token_of,
)


@pytest.fixture
def browser(app: Flask, sales: Platform) -> Browser:
    return sign_in(app, sales, "ada.admin")


def _records(platform: Platform, entity: str, rows: list[dict[str, Any]]) -> list[int]:
    with platform.records(SYSTEM_ACTOR) as service:
        return [int(service.create(entity, row)["id"]) for row in rows]


def _deals(platform: Platform, count: int = 6) -> list[int]:
    [acme, globex] = _records(
        platform, "account", [{"name": "Acme Tools"}, {"name": "Globex"}]
    )
    stages = ["won", "lost", "proposal"]
    rows = [
        {
            "title": f"Deal {number:02d}",
            "account": acme if number % 2 else globex,
            "stage": stages[number % 3],
            "amount": number * 100,
            "close_date": f"2025-0{1 + number % 9}-15",
            "next_step": "Call back" if number == 1 else None,
        }
        for number in range(1, count + 1)
    ]
    return _records(platform, "opportunity", rows)


def _titles(response: TestResponse) -> list[str]:
    return [
        e.text.strip()
        for e in elements(response.get_data(as_text=True))
        if e.get("class") == "row-link"
    ]


def _params(location: str) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(location).query, keep_blank_values=True)


def _link(response: TestResponse, text: str) -> str | None:
    """The address of the page's link that reads ``text``, if it has one."""
    found = [
        e["href"]
        for e in elements(response.get_data(as_text=True))
        if e.tag == "a" and e.text == text
    ]
    return found[0] if found else None


def _chip_texts(response: TestResponse) -> list[str]:
    page = response.get_data(as_text=True)
    return [e.text.strip() for e in elements(page) if e.get("class") == "chip"]


def _other(app: Flask, platform: Platform, name: str, *, admin: bool) -> Browser:
    """Another signed-in user, with a browser of their own."""
    with platform.engine.begin() as connection:
        create_user(connection, name, PASSWORD, is_admin=admin)
    if not admin:
        grant_all(platform, name)
    client = app.test_client()
    token = token_of(client.get("/login").get_data(as_text=True))
    client.post(
        "/login", data={"username": name, "password": PASSWORD, "csrf_token": token}
    )
    return Browser(client, platform)


# -- sort, search, filters ---------------------------------------------------------


def test_a_column_header_sorts_and_a_second_click_reverses(
    browser: Browser, sales: Platform
) -> None:
    _deals(sales)

    ascending = browser.get("/app/opportunity?sort=amount")
    found = elements(ascending.get_data(as_text=True))
    at = next(i for i, e in enumerate(found) if e.get("class") == "col-currency")
    header, link = found[at], found[at + 1]
    descending = browser.get(link["href"])

    assert _titles(ascending) == [f"Deal {n:02d}" for n in range(1, 7)]
    assert header.get("aria-sort") == "ascending"
    assert ("sort", "-amount") in _params(link["href"])
    assert _titles(descending) == [f"Deal {n:02d}" for n in range(6, 0, -1)]
    assert 'aria-sort="descending"' in descending.get_data(as_text=True)


def test_quick_search_finds_every_word_in_text_fields(
    browser: Browser, sales: Platform
) -> None:
    _deals(sales)
    _records(
        sales, "opportunity", [{"title": "Renewal for Initech", "erp_code": "X-7"}]
    )

    by_title = browser.get("/app/opportunity?q=renewal+INITECH")
    by_code = browser.get("/app/opportunity?q=x-7")
    none = browser.get("/app/opportunity?q=renewal+globex")

    assert _titles(by_title) == ["Renewal for Initech"]
    assert _titles(by_code) == ["Renewal for Initech"]
    assert _titles(none) == []


def test_a_search_of_more_words_than_it_takes_is_refused_not_cut(
    browser: Browser, sales: Platform
) -> None:
    # Words past the tenth were dropped without a word: the list showed rows
    # that lacked them, under a chip that named them all.
    _records(sales, "opportunity", [{"title": "a b c d e f g h i j"}])
    words = "a b c d e f g h i j zebra"

    listed = browser.get("/app/opportunity", query_string={"q": words})
    exported = browser.get("/app/opportunity/export.csv", query_string={"q": words})
    saved = _save_view(browser, urlencode({"q": words}), label="Eleven words")

    message = "Search: enter at most 10 words."
    assert listed.status_code == 400
    assert message in text_of(listed.get_data(as_text=True))
    assert _titles(listed) == []
    assert exported.status_code == 400
    assert exported.mimetype == "text/html"
    assert saved.status_code == 400
    assert message in text_of(saved.get_data(as_text=True))
    with sales.reading() as (connection, catalog):
        admin = find_user(connection, "ada.admin")
        assert list_views(connection, catalog, admin, "opportunity") == []


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("title__contains=EAL 0", ["Deal 01", "Deal 02", "Deal 03", "Deal 04"]),
        ("title__startswith=deal 03", ["Deal 03"]),
        ("amount__gte=300&amount__lt=500", ["Deal 03", "Deal 04"]),
        ("close_date__lte=2025-03-15", ["Deal 01", "Deal 02"]),
        ("stage__in=won,lost", ["Deal 01", "Deal 03", "Deal 04"]),
        ("stage__ne=won", ["Deal 01", "Deal 02", "Deal 04"]),
        ("next_step__isnull=false", ["Deal 01"]),
        ("next_step__isnull=true&amount__gt=300", ["Deal 04"]),
    ],
)
def test_filters_of_each_type_narrow_the_list(
    browser: Browser, sales: Platform, query: str, expected: list[str]
) -> None:
    _deals(sales, 4)

    response = browser.get(f"/app/opportunity?sort=title&{query}")

    assert _titles(response) == expected


def test_boolean_and_lookup_filters(browser: Browser, sales: Platform) -> None:
    [acme] = _records(sales, "account", [{"name": "Acme"}])
    _records(
        sales,
        "contact",
        [
            {"full_name": "Mia Ito", "account": acme, "do_not_call": True},
            {"full_name": "Obi Okafor", "do_not_call": False},
        ],
    )

    no_calls = browser.get("/app/contact?do_not_call__eq=true")
    of_acme = browser.get(f"/app/contact?account__eq={acme}")
    without = browser.get("/app/contact?account__isnull=true")

    assert _titles(no_calls) == ["Mia Ito"]
    assert _titles(of_acme) == ["Mia Ito"]
    assert _titles(without) == ["Obi Okafor"]


def test_the_filter_form_works_without_scripts(
    browser: Browser, sales: Platform
) -> None:
    _deals(sales, 4)

    added = browser.get(
        "/app/opportunity?sort=-amount&q=deal&add_field=amount&add_op=gte&add_value=300"
    )
    shown = browser.get(added.headers["Location"])

    assert added.status_code == 303
    assert _params(added.headers["Location"]) == [
        ("sort", "-amount"),
        ("q", "deal"),
        ("amount__gte", "300"),
    ]
    assert _titles(shown) == ["Deal 04", "Deal 03"]


def test_choosing_only_a_field_offers_the_operators_of_its_type(
    browser: Browser,
) -> None:
    response = browser.get("/app/opportunity?add_field=stage&add_op=")

    page = response.get_data(as_text=True)
    found = elements(page)
    start = next(i for i, e in enumerate(found) if e.get("id") == "add_op")
    options = []
    for element in found[start + 1 :]:
        if element.tag != "option":
            break
        options.append(element["value"])
    assert response.status_code == 200
    assert options == ["eq", "ne", "in", "blank", "notblank"]
    assert 'multiple size="5"' in page


def test_the_filter_form_says_what_is_wrong(browser: Browser) -> None:
    wrong_operator = browser.get(
        "/app/opportunity?add_field=amount&add_op=contains&add_value=1"
    )
    not_a_number = browser.get(
        "/app/opportunity?add_field=amount&add_op=gte&add_value=lots"
    )
    no_value = browser.get("/app/opportunity?add_field=title&add_op=eq&add_value=")
    one_of = browser.get("/app/opportunity?add_field=amount&add_op=in&add_value=0,10.1")

    assert wrong_operator.status_code == one_of.status_code == 422
    ways = "“=”, “≠”, “<”, “≤”, “>”, “≥”, “is blank” or “is not blank”"
    for refused in (wrong_operator, one_of):
        assert f"Amount is not compared that way; choose {ways}." in text_of(
            refused.get_data(as_text=True)
        )
    assert "Amount: 'lots' is not a number." in text_of(
        not_a_number.get_data(as_text=True)
    )
    assert "Enter a value to compare Title with." in text_of(
        no_value.get_data(as_text=True)
    )


def test_blank_and_lookup_by_name_in_the_filter_form(
    browser: Browser, sales: Platform
) -> None:
    _deals(sales, 2)
    with sales.reading() as (connection, catalog):
        acme = connection.execute(
            sa.text("SELECT id FROM account WHERE name = 'Acme Tools'")
        ).scalar_one()

    blank = browser.get("/app/opportunity?add_field=next_step&add_op=blank")
    by_name = browser.get(
        "/app/opportunity?add_field=account&add_op=eq&add_text=acme+tools"
    )
    unknown = browser.get(
        "/app/opportunity?add_field=account&add_op=eq&add_text=Nobody"
    )
    nameless = browser.get("/app/opportunity?add_field=account&add_op=eq&add_text=")

    assert _params(blank.headers["Location"]) == [("next_step__isnull", "true")]
    assert _params(by_name.headers["Location"]) == [("account__eq", str(acme))]
    assert unknown.status_code == 422
    assert "No Account is named “Nobody”; check the spelling" in text_of(
        unknown.get_data(as_text=True)
    )
    assert nameless.status_code == 422
    assert "Enter the name of the Account record to filter by." in text_of(
        nameless.get_data(as_text=True)
    )


def test_is_on_a_date_time_takes_seconds_and_the_chip_and_view_agree(
    browser: Browser, sales: Platform
) -> None:
    _records(
        sales,
        "activity",
        [
            {"subject": "Check the Varden pumps", "due_at": "2031-04-17T09:41:27Z"},
            {"subject": "Call Varden back", "due_at": "2031-04-17T09:41:00Z"},
        ],
    )
    chosen = browser.get("/app/activity?add_field=due_at&add_op=eq")

    added = browser.get(
        "/app/activity?add_field=due_at&add_op=eq&add_value=2031-04-17T09:41:27"
    )
    listed = browser.get(added.headers["Location"])
    saved = _save_view(
        browser,
        urlsplit(added.headers["Location"]).query,
        entity="activity",
        label="Pump check",
        columns=["subject", "due_at"],
    )
    opened = browser.get(saved.headers["Location"])

    value = by_id(chosen.get_data(as_text=True), "add_value")
    assert (value["type"], value["step"]) == ("datetime-local", "1")
    assert by_id(chosen.get_data(as_text=True), "add_value-help").text == (
        "In UTC, to the second, as record pages show it."
    )
    assert _params(added.headers["Location"]) == [("due_at__eq", "2031-04-17T09:41:27")]
    chip = "Due is on Apr 17, 2031, 9:41:27\u202fAM UTC"
    assert (_titles(listed), _chip_texts(listed)) == (
        ["Check the Varden pumps"],
        [chip],
    )
    assert saved.status_code == 303
    assert (_titles(opened), _chip_texts(opened)) == (
        ["Check the Varden pumps"],
        [chip],
    )


def test_chips_name_the_filters_and_each_removes_only_itself(
    browser: Browser, sales: Platform
) -> None:
    _deals(sales, 4)
    with sales.reading() as (connection, _):
        acme = connection.execute(
            sa.text("SELECT id FROM account WHERE name = 'Acme Tools'")
        ).scalar_one()

    response = browser.get(
        f"/app/opportunity?stage__in=won,lost&amount__gte=200&account__eq={acme}"
        "&q=deal&sort=title"
    )

    page = response.get_data(as_text=True)
    chips = [e for e in elements(page) if e.get("class") == "chip"]
    links = [e for e in elements(page) if e.tag == "a" and e.get("title")]
    assert [chip.text.strip() for chip in chips] == [
        "Stage is one of Closed won, Closed lost",
        "Amount ≥ $200.00",
        "Account is Acme Tools",
        "Search: “deal”",
    ]
    assert _params(links[1]["href"]) == [
        ("stage__in", "won,lost"),
        ("account__eq", str(acme)),
        ("q", "deal"),
        ("sort", "title"),
    ]
    clear = next(e for e in elements(page) if e.get("class") == "clear-filters")
    assert _params(clear["href"]) == [("sort", "title")]


def test_a_filter_that_does_not_parse_is_shown_with_a_way_out(
    browser: Browser, sales: Platform
) -> None:
    _deals(sales, 2)

    response = browser.get("/app/opportunity?amount__gte=abc&sort=title")

    text = text_of(response.get_data(as_text=True))
    assert response.status_code == 400
    assert "These filters cannot be applied: Amount: 'abc' is not a number." in text
    assert "Amount ≥ abc" in text
    assert _titles(response) == []


def test_a_sort_that_cannot_be_applied_is_not_called_a_filter_and_its_way_out_drops_it(
    browser: Browser, sales: Platform
) -> None:
    """A bookmarked list sorted by a field since removed: the page says what is
    wrong and every way out leaves that sort behind (it used to keep it, so
    "clear all filters" led back to the same refusal)."""
    _deals(sales, 2)

    alone = browser.get("/app/opportunity?sort=-gone")
    filtered = browser.get("/app/opportunity?stage=won&sort=-gone")

    alone_text = text_of(alone.get_data(as_text=True))
    assert alone.status_code == 400
    assert (
        "This list cannot be shown as asked: sort: Opportunity has no field 'gone'."
        in alone_text
    )
    assert "These filters" not in alone_text
    way_out = _link(alone, "Show the list without it")
    assert way_out is not None
    assert _params(way_out) == []
    assert browser.get(way_out).status_code == 200

    filtered_page = filtered.get_data(as_text=True)
    assert filtered.status_code == 400
    assert "These filters" not in text_of(filtered_page)
    clear = next(
        e for e in elements(filtered_page) if e.get("class") == "clear-filters"
    )
    assert _params(clear["href"]) == []
    assert [
        _params(e["href"])
        for e in elements(filtered_page)
        if e.tag == "a" and e.get("title") == "Remove this filter"
    ] == [[]]
    assert _link(filtered, "Show the list without it") is not None
    assert _params(_link(filtered, "Show the list without it") or "") == [
        ("stage", "won")
    ]


def test_a_cursor_that_is_not_valid_offers_to_start_over(
    browser: Browser, sales: Platform
) -> None:
    _deals(sales, 2)

    response = browser.get("/app/opportunity?stage=won&cursor=nonsense")

    text = text_of(response.get_data(as_text=True))
    assert response.status_code == 400
    assert "This list cannot be shown as asked: cursor:" in text
    start = _link(response, "Show the list without it")
    assert start is not None
    assert _params(start) == [("stage", "won")]


@pytest.mark.parametrize(
    ("query", "status", "chip"),
    [
        ("amount__gte=1e400", 400, "Amount ≥ 1e400"),
        ("probability__lt=" + "9" * 30, 200, "Probability < " + "9" * 30),
        ("id__in=1," + "9" * 40, 400, "ID in 1, " + "9" * 40),
    ],
)
def test_a_number_too_large_to_show_reads_on_its_chip_as_written(
    browser: Browser, sales: Platform, query: str, status: int, chip: str
) -> None:
    response = browser.get(f"/app/opportunity?{query}")

    assert response.status_code == status
    assert _chip_texts(response) == [chip]


@pytest.mark.parametrize(
    ("query", "chip"),
    [
        ("opportunity?amount__gte=1e3", "Amount ≥ 1e3"),
        ("opportunity?amount__gte=1_000", "Amount ≥ 1_000"),
        ("account?employees__gte=12.5", "Employees ≥ 12.5"),
        # A whole number field refuses a point, even with no fraction after it.
        ("account?employees__gte=12.0", "Employees ≥ 12.0"),
        ("account?employees__gte=12.", "Employees ≥ 12."),
        ("account?employees__gte=1200.00", "Employees ≥ 1200.00"),
    ],
)
def test_a_number_the_filter_refuses_reads_on_its_chip_as_written(
    browser: Browser, sales: Platform, query: str, chip: str
) -> None:
    # The chip read "Amount ≥ $1,000.00" beside the refusal "'1e3' is not a
    # number": it seemed to name a filter that was fine.
    response = browser.get(f"/app/{query}")

    assert response.status_code == 400
    assert _chip_texts(response) == [chip]


@pytest.mark.parametrize(
    "value", ["9999-12-31T23:59:59-01:00", "9999-12-31T23:30:00-0030"]
)
def test_a_date_and_time_past_year_9999_in_utc_reads_on_its_chip_as_written(
    browser: Browser, sales: Platform, value: str
) -> None:
    # Taken to UTC the moment falls in year 10000: its chip was formatted that
    # way, and the page answered 500 where the API refuses the filter.
    response = browser.get(f"/app/activity?due_at__lt={quote(value)}")

    text = text_of(response.get_data(as_text=True))
    assert response.status_code == 400
    assert "These filters cannot be applied: Due:" in text
    assert _chip_texts(response) == [f"Due is before {value}"]


def test_a_lookup_filter_of_thousands_of_digits_is_a_filter_that_cannot_apply(
    browser: Browser, sales: Platform
) -> None:
    # Python's int refuses to read more than 4,300 digits: naming the chips'
    # records read this one anyway, and the page answered 500.
    response = browser.get(f"/app/opportunity?account={'9' * 5000}")

    text = text_of(response.get_data(as_text=True))
    assert response.status_code == 400
    assert "These filters cannot be applied: Account: enter a whole number" in text


def test_a_filter_that_cannot_apply_is_named_as_its_chip_names_it(
    api: Any, browser: Browser, sales: Platform
) -> None:
    # A field may be named like a list's parameter ("sort"): its filter
    # "sort__gte" is no sort. The owner is named by its label, as its chip.
    document = api.get("/meta/entities/opportunity").json
    document["fields"].append({"name": "sort", "type": "integer", "label": "Rank"})
    assert api.put("/meta/entities/opportunity", json=document).status_code == 200

    ranked = browser.get("/app/opportunity?sort__gte=abc")
    owned = browser.get("/app/opportunity?owner_id=abc")

    assert ranked.status_code == owned.status_code == 400
    assert "cannot be applied: Rank: 'abc' is not a whole number." in text_of(
        ranked.get_data(as_text=True)
    )
    assert _chip_texts(ranked) == ["Rank ≥ abc"]
    assert "cannot be applied: Owner: 'abc' is not a whole number." in text_of(
        owned.get_data(as_text=True)
    )
    assert _chip_texts(owned) == ["Owner = abc"]


@pytest.mark.parametrize(
    ("value", "status", "chip"),
    [
        ("true", 200, "Next step is blank"),
        ("No", 200, "Next step is not blank"),
        ("maybe", 400, "Next step is blank: “maybe”"),
    ],
)
def test_a_blank_filter_reads_on_its_chip_as_the_list_applies_it(
    browser: Browser, sales: Platform, value: str, status: int, chip: str
) -> None:
    # A value that is neither yes nor no is refused; its chip does not claim
    # the "is not blank" that the list does not apply.
    response = browser.get(f"/app/opportunity?next_step__isnull={value}")

    assert response.status_code == status
    assert _chip_texts(response) == [chip]


def test_a_zero_filter_reads_without_a_sign(browser: Browser, sales: Platform) -> None:
    """'amount__gt=-0' read 'Amount > -$0.00': minus zero is zero."""
    money = browser.get("/app/opportunity?amount__gt=-0")
    percent = browser.get("/app/opportunity?probability__lte=-0.00")

    assert _chip_texts(money) == ["Amount > $0.00"]
    assert _chip_texts(percent) == ["Probability ≤ 0.00%"]


def test_filter_values_and_system_fields_read_as_the_record_pages_show_them(
    browser: Browser, sales: Platform
) -> None:
    yes = browser.get("/app/contact?do_not_call__eq=yes")
    no = browser.get("/app/contact?do_not_call__eq=0")
    modified = browser.get("/app/contact?updated_at__gte=2025-01-01")
    refused = browser.get("/app/contact?add_field=updated_at&add_op=gte&add_value=soon")

    assert _chip_texts(yes) == ["Do not call is Yes"]
    assert _chip_texts(no) == ["Do not call is No"]
    assert _chip_texts(modified)[0].startswith("Last modified is on or after ")
    assert refused.status_code == 422
    assert "Last modified: Enter a date and time" in text_of(
        refused.get_data(as_text=True)
    )
    assert "Updated" not in text_of(refused.get_data(as_text=True))


DEEP_FILTERS = {
    "lists": "[" * 5000 + "]" * 5000,
    "negations": '{"!":' * 3000 + "true" + "}" * 3000,
}


@pytest.mark.parametrize("text", DEEP_FILTERS.values(), ids=DEEP_FILTERS.keys())
def test_a_filter_nested_too_deeply_is_refused_and_the_page_still_works(
    browser: Browser, sales: Platform, text: str
) -> None:
    _deals(sales, 2)

    response = browser.get("/app/opportunity?sort=title&filter=" + quote(text))

    page = response.get_data(as_text=True)
    chips = [e for e in elements(page) if e.get("class") == "chip"]
    remove = next(e for e in elements(page) if e.get("title") == "Remove this filter")
    assert response.status_code == 400
    assert (
        "These filters cannot be applied: filter: the condition is nested too deeply."
        in text_of(page)
    )
    assert [chip.text[:14] for chip in chips] == [f"Condition: {text[:3]}"]
    assert _params(remove["href"]) == [("sort", "title")]
    assert {"q", "add_field", "view-select", "view-label"} <= {
        e.get("id") for e in elements(page)
    }
    assert _titles(browser.get(remove["href"])) == ["Deal 01", "Deal 02"]


@pytest.mark.parametrize(
    "text",
    ["[" * 1500 + "]" * 1500, '{"!":' * 1500 + "true" + "}" * 1500],
    ids=["lists", "negations"],
)
def test_a_view_of_a_filter_nested_too_deeply_is_refused(
    browser: Browser, sales: Platform, text: str
) -> None:
    saved = _save_view(browser, f"sort=title&filter={text}")

    assert saved.status_code == 400
    assert "Filters: the condition is nested too deeply." in text_of(
        saved.get_data(as_text=True)
    )
    with sales.reading() as (connection, catalog):
        admin = find_user(connection, "ada.admin")
        assert list_views(connection, catalog, admin) == []


# A JSON escape of half a UTF-16 pair: valid JSON, but no text a page can hold.
BROKEN_CHARACTER = '{"==": [{"var": "title"}, "\\ud800"]}'


def test_a_filter_with_a_broken_character_is_refused_and_the_page_still_works(
    browser: Browser, sales: Platform
) -> None:
    _deals(sales, 2)

    response = browser.get(
        "/app/opportunity?sort=title&filter=" + quote(BROKEN_CHARACTER)
    )

    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert (
        "These filters cannot be applied: filter: The condition holds a broken "
        "character." in text_of(page)
    )
    assert "Filter condition it saves" not in text_of(page)
    assert _chip_texts(response) == [f"Condition: {BROKEN_CHARACTER}"]


def test_a_view_of_a_filter_with_a_broken_character_is_refused(
    browser: Browser, sales: Platform
) -> None:
    saved = _save_view(browser, "sort=title&filter=" + quote(BROKEN_CHARACTER))

    assert saved.status_code == 422
    assert "Filters: The condition holds a broken character." in text_of(
        saved.get_data(as_text=True)
    )
    with sales.reading() as (connection, catalog):
        admin = find_user(connection, "ada.admin")
        assert list_views(connection, catalog, admin) == []


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            '{"==": [{"var": "stage"}, "won"], "==": [{"var": "stage"}, "lost"]}',
            "'==' is given more than once",
        ),
        ('{"<": [{"var": "amount"}, NaN]}', "NaN is not a JSON number"),
        ('{"<": [{"var": "amount"}, 1e999]}', "1e999 is too large a number"),
    ],
    ids=["twice", "nan", "infinite"],
)
def test_a_view_of_a_filter_the_list_cannot_read_is_refused_as_the_list_says(
    browser: Browser, sales: Platform, text: str, reason: str
) -> None:
    """Saved, the first stage would be dropped without a word: the view would
    list lost deals where the person asked for won ones."""
    _deals(sales, 3)
    state = "sort=title&filter=" + quote(text)

    listed = browser.get(f"/app/opportunity?{state}")
    saved = _save_view(browser, state)

    assert listed.status_code == 400
    assert reason in text_of(listed.get_data(as_text=True))
    assert saved.status_code == 400
    page = text_of(saved.get_data(as_text=True))
    assert "Filters: the condition is not valid JSON (" in page
    assert reason in page
    with sales.reading() as (connection, catalog):
        admin = find_user(connection, "ada.admin")
        assert list_views(connection, catalog, admin) == []


@pytest.mark.parametrize(
    ("state", "refusal"),
    [
        ("amount__gte=abc", "Amount: 'abc' is not a number."),
        ("stage=won&close_date__lt=2024-02-30", "Close date: 2024-02-30 is not"),
    ],
)
def test_a_view_of_a_filter_the_list_refuses_names_its_field_by_label(
    browser: Browser, sales: Platform, state: str, refusal: str
) -> None:
    # The list named the field; the refused view gave only the reason, so a
    # list of several filters left the person to guess which one was wrong.
    listed = browser.get(f"/app/opportunity?{state}")
    saved = _save_view(browser, state)

    summary = [
        e.text
        for e in elements(saved.get_data(as_text=True))
        if e.tag == "li" and refusal.split(":")[1].strip() in e.text
    ]
    assert refusal in text_of(listed.get_data(as_text=True))
    assert saved.status_code == 400
    assert [text.startswith(refusal) for text in summary] == [True]


@pytest.mark.parametrize(
    ("state", "refusal"),
    [
        (
            "filter="
            + quote('{"==": [{"var": "stage"}, "won"]}')
            + "&filter="
            + quote('{">": [{"var": "amount"}, 250]}'),
            "Filters: ",
        ),
        ("sort=title&sort=-amount", "Sort: "),
    ],
    ids=["filter", "sort"],
)
def test_a_view_of_a_list_giving_filter_or_sort_twice_is_refused(
    browser: Browser, sales: Platform, state: str, refusal: str
) -> None:
    """The list refuses to guess which of the two was meant; so does the view,
    which would otherwise keep the first and drop the other without a word."""
    _deals(sales, 6)

    listed = browser.get(f"/app/opportunity?{state}")
    saved = _save_view(browser, state)

    assert listed.status_code == 400
    assert "give this parameter only once" in text_of(listed.get_data(as_text=True))
    assert "Filter condition it saves" not in text_of(listed.get_data(as_text=True))
    assert saved.status_code == 400
    page = text_of(saved.get_data(as_text=True))
    assert f"{refusal}the list gives it more than once; keep one." in page
    with sales.reading() as (connection, catalog):
        admin = find_user(connection, "ada.admin")
        assert list_views(connection, catalog, admin) == []


def test_a_condition_within_the_nesting_limit_gets_the_rules_engine_answer(
    browser: Browser, sales: Platform
) -> None:
    depth = MAX_NESTING // 2
    text = '{"!":' * depth + "true" + "}" * depth

    response = browser.get("/app/opportunity?filter=" + quote(text))

    assert response.status_code == 400
    assert "Conditions nest at most 32 deep." in text_of(
        response.get_data(as_text=True)
    )


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("true", 0),
        ('[1, {"a": [2]}]', 3),
        ('["[[[", "\\"{{"]', 1),
        ('{"a": "]]] \\\\"}, [[', 2),
        ("[[[", 3),
    ],
)
def test_nesting_counts_the_brackets_outside_strings(text: str, depth: int) -> None:
    assert nesting(text) == depth


# -- pages -------------------------------------------------------------------------


def test_pages_show_the_range_and_total_and_follow_the_cursor(
    browser: Browser, sales: Platform
) -> None:
    _deals(sales, 30)

    first = browser.get("/app/opportunity?sort=title")
    page = first.get_data(as_text=True)
    next_link = next(e for e in elements(page) if e.get("rel") == "next")
    second = browser.get(next_link["href"])
    second_page = second.get_data(as_text=True)

    assert "1–25 of 30" in text_of(page)
    assert len(_titles(first)) == 25
    assert "26–30 of 30" in text_of(second_page)
    assert _titles(second) == [f"Deal {n:02d}" for n in range(26, 31)]
    assert not any(e.get("rel") == "next" for e in elements(second_page))
    first_link = next(e for e in elements(second_page) if e.text == "First page")
    assert _params(first_link["href"]) == [("sort", "title")]


def test_previous_and_last_pages_go_back_and_to_the_end(
    browser: Browser, sales: Platform
) -> None:
    _deals(sales, 60)

    first = browser.get("/app/opportunity?sort=title")
    second = browser.get(_link(first, "Next page") or "")
    third = browser.get(_link(second, "Next page") or "")
    back = browser.get(_link(third, "Previous page") or "")
    back_again = browser.get(_link(back, "Previous page") or "")
    last = browser.get(_link(first, "Last page") or "")
    before_last = browser.get(_link(last, "Previous page") or "")

    def shown(response: TestResponse) -> tuple[str, str, str]:
        """The page's status, and its first and last rows."""
        titles = _titles(response)
        found = re.search(r"\d+–\d+ of 60", text_of(response.get_data(as_text=True)))
        return found.group() if found else "", titles[0], titles[-1]

    assert shown(third) == ("51–60 of 60", "Deal 51", "Deal 60")
    assert shown(back) == ("26–50 of 60", "Deal 26", "Deal 50")
    assert shown(back_again) == ("1–25 of 60", "Deal 01", "Deal 25")
    assert _link(back, "Previous page") == _link(back, "First page")
    assert _link(back_again, "Previous page") is None
    assert _link(back_again, "First page") is None
    assert shown(last) == ("36–60 of 60", "Deal 36", "Deal 60")
    assert (_link(last, "Next page"), _link(last, "Last page")) == (None, None)
    assert shown(before_last) == ("11–35 of 60", "Deal 11", "Deal 35")
    assert _link(before_last, "Previous page") == _link(before_last, "First page")
    assert _titles(browser.get(_link(before_last, "Next page") or "")) == _titles(last)


def test_a_page_read_backwards_runs_as_many_statements_as_one_read_forwards(
    browser: Browser, sales: Platform
) -> None:
    _deals(sales, 30)
    second = browser.get("/app/opportunity?sort=-amount&amount__gte=0")
    forward = _link(second, "Next page") or ""
    backward = _link(browser.get(forward), "Previous page") or ""
    last = _link(second, "Last page") or ""
    counted: list[str] = []

    def count(*args: Any) -> None:
        counted.append(str(args[2]))

    def statements(address: str) -> int:
        browser.get(address)  # the catalog is cached from here on
        counted.clear()
        sa.event.listen(sales.engine, "before_cursor_execute", count)
        try:
            browser.get(address)
        finally:
            sa.event.remove(sales.engine, "before_cursor_execute", count)
        return len(counted)

    assert "before" not in dict(_params(backward))  # back to the first page
    assert statements(forward) == statements(last) == statements(backward)


PAGED_SORTS = [
    ("opportunity", ["amount"]),
    ("opportunity", ["-amount"]),
    ("opportunity", ["next_step", "-close_date"]),
    ("opportunity", ["-stage", "-next_step", "amount"]),
    ("opportunity", ["stage", "next_step"]),
    ("contact", ["-do_not_call", "birthdate"]),
]


def _paged_rows(entity: str) -> list[dict[str, Any]]:
    """Rows full of ties and blanks in every sortable field the sorts use."""
    if entity == "contact":
        return [
            {
                "full_name": f"Person {n:02d}",
                "do_not_call": [True, False, None][n % 3],
                "birthdate": [None, "1990-05-01", "1980-01-01"][n % 3 - n % 2],
            }
            for n in range(23)
        ]
    return [
        {
            "title": f"Deal {n:02d}",
            "amount": [None, 100, 100, 250][n % 4],
            "next_step": [None, "call", "Call"][n % 3],
            "close_date": [None, "2025-01-15"][n % 2],
            "stage": ["won", "lost", "proposal"][n % 3],
        }
        for n in range(23)
    ]


@pytest.mark.parametrize(("entity_name", "sort"), PAGED_SORTS)
def test_pages_read_backwards_are_the_pages_read_forwards(
    sales: Platform, entity_name: str, sort: list[str]
) -> None:
    _records(sales, entity_name, _paged_rows(entity_name))

    with sales.reading() as (connection, catalog):
        entity = catalog.entity(entity_name)
        args = {"sort": [",".join(sort)], "limit": ["4"], "count": ["true"]}
        forward = [run_list(connection, entity, parse_list_args(entity, args))]
        while forward[-1].next_cursor:
            query = parse_list_args(entity, args)
            query.cursor = forward[-1].next_cursor
            forward.append(run_list(connection, entity, query))
        backward = [
            run_list_before(connection, entity, parse_list_args(entity, args), None)
        ]
        while backward[-1].previous_cursor:
            query = parse_list_args(entity, args)
            cursor = backward[-1].previous_cursor
            backward.append(run_list_before(connection, entity, query, cursor))
        stepped_back = [
            run_list_before(
                connection, entity, parse_list_args(entity, args), page.previous_cursor
            )
            for page in forward[1:]
        ]

    def ids(pages: Sequence[Page]) -> list[int]:
        return [record["id"] for page in pages for record in page.records]

    assert len(set(ids(forward))) == 23
    assert ids(backward[::-1]) == ids(forward)
    assert [len(page.records) for page in backward] == [4, 4, 4, 4, 4, 3]
    assert [ids([page]) for page in stepped_back] == [ids([p]) for p in forward[:-1]]
    assert stepped_back[0].previous_cursor is None
    assert forward[0].previous_cursor is None and backward[0].next_cursor is None
    assert {page.total for page in forward + backward} == {23}


def test_a_list_page_runs_as_many_statements_for_50_rows_as_for_5(
    browser: Browser, sales: Platform
) -> None:
    layout = {
        "kind": "layout",
        "entity": "opportunity",
        "list": {
            "columns": ["title", "account", "product", "stage", "amount"],
            "sort": ["title"],
            "page_size": 50,
        },
    }
    sales.store.apply([("opportunity.json", layout)], actor="test")
    [product] = _records(sales, "product", [{"name": "Anvil", "product_code": "A1"}])
    counted: list[str] = []

    def count(*args: Any) -> None:
        counted.append(str(args[2]))

    def statements(address: str) -> tuple[int, TestResponse]:
        browser.get(address)  # the catalog is cached from here on
        counted.clear()
        sa.event.listen(sales.engine, "before_cursor_execute", count)
        try:
            response = browser.get(address)
        finally:
            sa.event.remove(sales.engine, "before_cursor_execute", count)
        return len(counted), response

    address = "/app/opportunity?amount__gte=0&q=deal"
    ids = _deals(sales, 5)
    with sales.records(SYSTEM_ACTOR) as service:
        for record_id in ids:
            service.update("opportunity", record_id, {"product": product})
    few, small = statements(address)
    _deals(sales, 45)
    many, big = statements(address)

    assert len(_titles(small)) == 5
    assert len(_titles(big)) == 50
    assert "Anvil" in text_of(big.get_data(as_text=True))
    assert few == many


# -- saved views -------------------------------------------------------------------


def _save_view(
    browser: Browser, state: str, *, entity: str = "opportunity", **form: Any
) -> TestResponse:
    """Save a list's state as a view, as its "Save as view" form does."""
    data = {"state": state, "page_size": "25", **form}
    data.setdefault("label", "Big wins")
    data.setdefault("columns", ["title", "amount"])
    return browser.post(f"/app/{entity}/views", data)


def _view_id(location: str) -> int:
    return int(dict(_params(location))["view"])


def _columns(response: TestResponse) -> list[str]:
    return [
        e["class"].removeprefix("col-")
        for e in elements(response.get_data(as_text=True))
        if e.tag == "th" and e.get("scope") == "col" and e["class"] != "select-col"
    ]


def test_the_address_of_a_refused_view_leads_back_to_the_list(
    browser: Browser,
) -> None:
    # Save as view refused (a name in use) leaves the form's address in the
    # browser; reloading or opening it again showed "Method Not Allowed".
    assert _save_view(browser, "stage=won").status_code == 303
    refused = _save_view(browser, "stage=lost")
    opened = browser.get("/app/opportunity/views")
    unknown = browser.get("/app/nowhere/views")

    assert refused.status_code == 422
    assert opened.status_code == 303
    assert opened.headers["Location"] == "/app/opportunity"
    assert unknown.status_code == 404


def test_a_view_of_dates_in_a_list_selects_what_the_list_did(
    browser: Browser, sales: Platform
) -> None:
    _deals(sales, 6)
    state = "close_date__in=2025-03-15,2025-05-15"
    listed = browser.get(f"/app/opportunity?{state}")

    saved = _save_view(browser, state)
    opened = browser.get(saved.headers["Location"])

    assert _titles(listed) == ["Deal 02", "Deal 04"]
    assert saved.status_code == 303
    assert _titles(opened) == _titles(listed)


def test_a_view_of_date_times_in_a_list_selects_what_the_list_did(
    browser: Browser, sales: Platform
) -> None:
    _records(
        sales,
        "activity",
        [
            {"subject": "Check the Varden pumps", "due_at": "2031-04-17T09:41:27Z"},
            {"subject": "Call Varden back", "due_at": "2031-04-18T10:00:00Z"},
        ],
    )
    state = "due_at__in=2031-04-17T11:41:27%2B02:00,2031-04-19T10:00:00Z"
    listed = browser.get(f"/app/activity?{state}")

    saved = _save_view(browser, state, entity="activity", columns=["subject", "due_at"])
    opened = browser.get(saved.headers["Location"])

    assert _titles(listed) == ["Check the Varden pumps"]
    assert _titles(opened) == _titles(listed)


@pytest.mark.parametrize(
    ("op", "titles"),
    [("eq", ["Renewal"]), ("ne", ["Site visit", "Upsell"])],
)
def test_a_view_of_text_that_reads_as_a_date_selects_what_the_list_did(
    browser: Browser, sales: Platform, op: str, titles: list[str]
) -> None:
    _records(
        sales,
        "opportunity",
        [
            {"title": "Renewal", "next_step": "2031-06-30"},
            {"title": "Upsell", "next_step": "2031-06-30T00:00:00Z"},
            {"title": "Site visit"},
        ],
    )
    state = f"next_step__{op}=2031-06-30"
    listed = browser.get(f"/app/opportunity?{state}")

    saved = _save_view(browser, state)
    opened = browser.get(saved.headers.get("Location", ""))

    assert sorted(_titles(listed)) == titles
    assert saved.status_code == 303
    assert sorted(_titles(opened)) == titles
    assert (f"next_step__{op}", "2031-06-30") in _params(saved.headers["Location"])


def test_save_as_view_keeps_the_filters_and_search_as_one_condition(
    browser: Browser, sales: Platform
) -> None:
    _deals(sales, 6)

    saved = _save_view(
        browser,
        "stage__in=won,lost&amount__gte=200&sort=-amount&q=deal&cursor=x&start=26",
        page_size="10",
    )

    view_id = _view_id(saved.headers["Location"])
    with sales.reading() as (connection, catalog):
        admin = find_user(connection, "ada.admin")
        view = get_view(connection, catalog, admin, view_id)
    assert saved.status_code == 303
    assert _params(saved.headers["Location"]) == [
        ("view", str(view_id)),
        ("sort", "-amount"),
        ("stage__in", "won,lost"),
        ("amount__gte", "200"),
        ("q", "deal"),
    ]
    assert view["filter"] == {
        "and": [
            {"in": [{"var": "stage"}, ["won", "lost"]]},
            {
                "and": [
                    {"!": {"is_blank": {"var": "amount"}}},
                    {">=": [{"var": "amount"}, 200]},
                ]
            },
            {
                "or": [
                    {"contains": [{"lower": {"var": name}}, "deal"]}
                    for name in ("title", "erp_code", "next_step")
                ]
            },
        ]
    }
    assert (view["columns"], view["sort"], view["page_size"]) == (
        ["title", "amount"],
        ["-amount"],
        10,
    )
    assert view["shared"] is False


def test_opening_a_view_applies_its_columns_sort_filters_and_page_size(
    browser: Browser, sales: Platform
) -> None:
    _deals(sales, 30)
    saved = _save_view(browser, "stage__eq=won&sort=-amount", page_size="10")
    view_id = _view_id(saved.headers["Location"])

    opened = browser.get(f"/app/opportunity?view={view_id}")
    shown = browser.get(opened.headers["Location"])

    page = shown.get_data(as_text=True)
    assert opened.status_code == 303
    assert opened.headers["Location"] == saved.headers["Location"]
    assert _columns(shown) == ["text", "currency"]
    assert _titles(shown) == [f"Deal {n:02d}" for n in range(30, 0, -3)]
    assert "1–10 of 10" in text_of(page)
    selected = [
        e for e in elements(page) if e.tag == "option" and "selected" in e.attrs
    ]
    assert any(e.text.strip() == "Big wins" for e in selected)
    assert "Changed since saved" not in text_of(page)


def test_a_saved_search_comes_back_as_the_search_of_the_view(
    browser: Browser, sales: Platform
) -> None:
    _deals(sales, 3)
    _records(
        sales,
        "opportunity",
        [{"title": "Renewal", "erp_code": "DEAL-07"}, {"title": "Other deal"}],
    )
    searched = browser.get("/app/opportunity?sort=title&q=DEAL++0")

    saved = _save_view(browser, "sort=title&q=DEAL++0")
    view_id = _view_id(saved.headers["Location"])
    opened = browser.get(f"/app/opportunity?view={view_id}")
    shown = browser.get(opened.headers["Location"])
    searched_again = browser.get(opened.headers["Location"] + "+other")
    with sales.reading() as (connection, catalog):
        admin = find_user(connection, "ada.admin")
        condition = get_view(connection, catalog, admin, view_id)["filter"]
    by_condition = browser.get(
        "/app/opportunity?sort=title&filter=" + quote(json.dumps(condition))
    )

    text = text_of(shown.get_data(as_text=True))
    assert "The view keeps the filters, the search and the sort shown now." in (
        text_of(searched.get_data(as_text=True))
    )
    assert _params(opened.headers["Location"])[1:] == [
        ("sort", "title"),
        ("q", "deal 0"),
    ]
    assert _titles(shown) == _titles(searched) == _titles(by_condition)
    assert _titles(shown) == ["Deal 01", "Deal 02", "Deal 03", "Renewal"]
    assert _chip_texts(shown) == ["Search: “deal 0”"]
    assert "Changed since saved" not in text
    assert "Changed since saved" in text_of(searched_again.get_data(as_text=True))


@pytest.mark.parametrize(
    ("add", "param", "chip", "names"),
    [
        (
            "add_op=contains&add_value=training",
            ("interests__contains", "training"),
            "Interests has Training",
            ["Mirela Voss"],
        ),
        (
            "add_op=blank",
            ("interests__isnull", "true"),
            "Interests is blank",
            ["Osk Lindqvist"],
        ),
        (
            "add_op=notblank",
            ("interests__isnull", "false"),
            "Interests is not blank",
            ["Mirela Voss", "Tobin Achterberg"],
        ),
    ],
)
def test_multi_picklist_filters_from_the_builder_are_saved_as_views(
    browser: Browser,
    sales: Platform,
    add: str,
    param: tuple[str, str],
    chip: str,
    names: list[str],
) -> None:
    _records(
        sales,
        "sales_lead",
        [
            {
                "company": "Voss Cartage",
                "full_name": "Mirela Voss",
                "interests": ["training", "software"],
            },
            {
                "company": "Achterberg Mills",
                "full_name": "Tobin Achterberg",
                "interests": ["support_plan"],
            },
            {"company": "Lindqvist Salt", "full_name": "Osk Lindqvist"},
        ],
    )

    added = browser.get(f"/app/sales_lead?sort=full_name&add_field=interests&{add}")
    listed = browser.get(added.headers["Location"])
    saved = _save_view(
        browser,
        urlsplit(added.headers["Location"]).query,
        entity="sales_lead",
        label="Leads by interest",
        columns=["full_name", "interests"],
    )
    opened = browser.get(saved.headers["Location"])

    assert _params(added.headers["Location"]) == [("sort", "full_name"), param]
    assert (_titles(listed), _chip_texts(listed)) == (names, [chip])
    assert saved.status_code == 303
    assert (_titles(opened), _chip_texts(opened)) == (names, [chip])
    assert ("view", str(_view_id(saved.headers["Location"]))) in _params(
        saved.headers["Location"]
    )
    assert param in _params(saved.headers["Location"])


def test_a_view_of_another_entity_is_unknown_on_this_list(
    browser: Browser, sales: Platform
) -> None:
    _records(sales, "account", [{"name": "Initech"}])
    saved = _save_view(browser, "stage__eq=won")
    view_id = _view_id(saved.headers["Location"])

    opened = browser.get(f"/app/account?view={view_id}")
    with_more = browser.get(f"/app/account?view={view_id}&sort=name&name__eq=x")
    shown = browser.get(opened.headers["Location"])
    manage = browser.get(f"/app/account/views/{view_id}")

    assert (opened.status_code, opened.headers["Location"]) == (303, "/app/account")
    assert with_more.headers["Location"] == "/app/account"
    assert (
        "That view does not exist for Accounts; the list shows all records."
        in text_of(shown.get_data(as_text=True))
    )
    assert _titles(shown) == ["Initech"]
    assert manage.status_code == 404


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        (
            {"page_size": "999999999"},
            "Rows per page: enter a whole number from 10 to 200.",
        ),
        ({"page_size": "300"}, "Rows per page: enter a whole number from 10 to 200."),
        ({"page_size": "ten"}, "Rows per page: enter a whole number from 10 to 200."),
        ({"label": "x" * 101}, "Name: enter a name of at most 100 characters."),
    ],
)
def test_a_refused_view_says_what_to_enter_in_the_form_s_terms(
    browser: Browser, sales: Platform, form: dict[str, str], expected: str
) -> None:
    refused = _save_view(browser, "stage__eq=won", **form)

    text = text_of(refused.get_data(as_text=True))
    assert refused.status_code == 422
    assert expected in text
    assert "is not of type" not in text and "is greater than" not in text


def test_a_changed_view_can_be_saved_again(browser: Browser, sales: Platform) -> None:
    _deals(sales, 6)
    saved = _save_view(browser, "stage__eq=won&amount__gte=200&sort=-amount")
    view_id = _view_id(saved.headers["Location"])
    changed = f"view={view_id}&sort=title&stage__eq=won"

    page = browser.get(f"/app/opportunity?{changed}").get_data(as_text=True)
    updated = browser.post(
        f"/app/opportunity/views/{view_id}", {"action": "state", "state": changed}
    )

    with sales.reading() as (connection, catalog):
        view = get_view(
            connection, catalog, find_user(connection, "ada.admin"), view_id
        )
    assert "Changed since saved" in text_of(page)
    assert "Save changes to “Big wins”" in text_of(page)
    assert updated.status_code == 303
    assert view["sort"] == ["title"]
    assert view["filter"] == {"and": [{"==": [{"var": "stage"}, "won"]}]}
    assert view["columns"] == ["title", "amount"]


def test_the_views_service_problems_are_shown_next_to_the_form(
    browser: Browser, sales: Platform
) -> None:
    unnamed = _save_view(browser, "stage__eq=won", label=" ")
    no_columns = _save_view(browser, "stage__eq=won", columns=[])
    too_long = _save_view(browser, "", label="x" * 101)

    assert unnamed.status_code == 422
    assert "Name: enter a name for the view." in text_of(unnamed.get_data(as_text=True))
    assert "Columns: choose at least one column." in text_of(
        no_columns.get_data(as_text=True)
    )
    assert too_long.status_code == 422
    assert "Name: " in text_of(too_long.get_data(as_text=True))
    with sales.reading() as (connection, catalog):
        admin = find_user(connection, "ada.admin")
        assert list_views(connection, catalog, admin) == []


def test_shared_views_are_for_everyone_and_changed_by_administrators_only(
    app: Flask, browser: Browser, sales: Platform
) -> None:
    shared = _save_view(browser, "stage__eq=won", label="Team wins", shared="on")
    shared_id = _view_id(shared.headers["Location"])
    seller = _other(app, sales, "sam.seller", admin=False)

    picker = seller.get("/app/opportunity").get_data(as_text=True)
    sharing = _save_view(seller, "stage__eq=lost", label="Mine too", shared="on")
    manage = seller.get(f"/app/opportunity/views/{shared_id}")
    change = seller.post(
        f"/app/opportunity/views/{shared_id}", {"action": "state", "state": ""}
    )
    delete = seller.post(f"/app/opportunity/views/{shared_id}/delete", {})

    assert '<optgroup label="Shared views">' in picker
    assert "Team wins" in text_of(picker)
    assert "Share with everyone" not in text_of(picker)
    assert sharing.status_code == 403
    assert "Only administrators may share views." in text_of(
        sharing.get_data(as_text=True)
    )
    assert (manage.status_code, change.status_code, delete.status_code) == (
        403,
        403,
        403,
    )
    with sales.reading() as (connection, catalog):
        admin = find_user(connection, "ada.admin")
        assert get_view(connection, catalog, admin, shared_id)["label"] == "Team wins"


def test_own_views_are_private_and_their_owner_renames_and_deletes_them(
    app: Flask, browser: Browser, sales: Platform
) -> None:
    seller = _other(app, sales, "sam.seller", admin=False)
    own = _save_view(seller, "stage__eq=lost", label="My losses")
    own_id = _view_id(own.headers["Location"])

    hidden = browser.get(f"/app/opportunity?view={own_id}")
    admin_picker = browser.get("/app/opportunity").get_data(as_text=True)
    manage = seller.get(f"/app/opportunity/views/{own_id}")
    renamed = seller.post(
        f"/app/opportunity/views/{own_id}",
        {
            "action": "edit",
            "label": "Lost deals",
            "columns": ["title", "stage"],
            "page_size": "50",
        },
    )
    picker = seller.get("/app/opportunity").get_data(as_text=True)
    deleted = seller.post(f"/app/opportunity/views/{own_id}/delete", {})

    assert hidden.status_code == 303
    assert hidden.headers["Location"] == "/app/opportunity"
    assert "My losses" not in admin_picker
    assert manage.status_code == 200
    assert 'value="My losses"' in manage.get_data(as_text=True)
    assert renamed.status_code == 303
    assert '<optgroup label="My views">' in picker
    assert "Lost deals" in text_of(picker)
    assert deleted.status_code == 303
    with sales.reading() as (connection, catalog):
        user = find_user(connection, "sam.seller")
        assert list_views(connection, catalog, user) == []


def test_a_view_whose_filter_lost_its_field_says_so(
    api: Any, browser: Browser, sales: Platform
) -> None:
    _deals(sales, 3)
    saved = _save_view(browser, "next_step__isnull=false&sort=title")
    view_id = _view_id(saved.headers["Location"])
    document = api.get("/meta/entities/opportunity").json
    document["fields"] = [f for f in document["fields"] if f["name"] != "next_step"]
    assert api.put("/meta/entities/opportunity", json=document).status_code == 200

    opened = browser.get(f"/app/opportunity?view={view_id}")
    shown = browser.get(opened.headers["Location"])

    assert _params(opened.headers["Location"]) == [
        ("view", str(view_id)),
        ("sort", "title"),
    ]
    assert (
        'The filter was cleared because the field "Next step" was removed.'
        in text_of(shown.get_data(as_text=True))
    )
    assert len(_titles(shown)) == 3


def _open_view(
    browser: Browser,
    sales: Platform,
    label: str,
    condition: Any,
    entity: str = "opportunity",
) -> tuple[TestResponse, TestResponse]:
    """Save the admin's view of ``entity`` with ``condition``, and open it: the
    address it leads to, and the list found there."""
    with sales.transaction() as (connection, catalog):
        admin = find_user(connection, "ada.admin")
        view = save_view(
            connection,
            catalog,
            admin,
            {"entity": entity, "label": label, "filter": condition},
        )
    opened = browser.get(f"/app/{entity}?view={view['id']}")
    return opened, browser.get(opened.headers["Location"])


def test_a_view_with_a_condition_of_its_own_shows_it_as_one_chip(
    browser: Browser, sales: Platform
) -> None:
    _deals(sales, 6)
    condition = {
        "or": [{"==": [{"var": "stage"}, "won"]}, {"<": [{"var": "amount"}, 150]}]
    }

    opened, shown = _open_view(browser, sales, "Either", condition)

    assert dict(_params(opened.headers["Location"]))["filter"] == json.dumps(
        condition, separators=(",", ":")
    )
    assert "Condition: " in text_of(shown.get_data(as_text=True))
    assert sorted(_titles(shown)) == ["Deal 01", "Deal 03", "Deal 06"]


def test_a_view_of_stages_opens_as_the_filter_the_page_would_write(
    browser: Browser, sales: Platform
) -> None:
    _deals(sales, 6)
    condition = {"in": [{"var": "stage"}, ["won", "lost"]]}

    opened, shown = _open_view(browser, sales, "Closed", condition)

    assert ("stage__in", "won,lost") in _params(opened.headers["Location"])
    assert "Condition: " not in text_of(shown.get_data(as_text=True))
    assert sorted(_titles(shown)) == ["Deal 01", "Deal 03", "Deal 04", "Deal 06"]


def test_a_view_of_choices_written_as_numbers_selects_what_its_condition_does(
    api: Any, browser: Browser, sales: Platform
) -> None:
    """``in`` finds an item as ``===`` does: the number 1 is not the choice "1"."""
    options = [{"value": v, "label": f"Tier {v}"} for v in ("1", "2", "3")]
    add_field(api, "opportunity", {**CROSSED_TIERS, "options": options})
    _records(
        sales,
        "opportunity",
        [
            {"title": "Kestrel refit", "tier": "1"},
            {"title": "Plover hull", "tier": "2"},
        ],
    )
    condition = {"in": [{"var": "tier"}, [1, 2]]}
    by_api = api.get("/opportunity", query_string={"filter": json.dumps(condition)})

    opened, shown = _open_view(browser, sales, "Top tiers", condition)

    assert by_api.json["data"] == []
    assert _titles(shown) == []
    assert "Condition: " in text_of(shown.get_data(as_text=True))


@pytest.mark.parametrize(
    ("query", "chip"),
    [
        ("tier=A", "Tier is B"),
        ("tier__ne=B", "Tier is not A"),
        ("tier__in=A,%20b%20", "Tier is one of B, A"),
        ("stage=%20WON", "Stage is Closed won"),
    ],
)
def test_a_choice_filter_s_chip_names_the_choice_it_selects_as_its_view_does(
    api: Any, browser: Browser, sales: Platform, query: str, chip: str
) -> None:
    # Of the choices a (labelled "B") and b (labelled "A"), tier=A selects a:
    # its chip read "Tier is A" above rows whose Tier reads B, and "Tier is B"
    # once saved as a view.
    add_field(api, "opportunity", CROSSED_TIERS)

    listed = browser.get(f"/app/opportunity?{query}")
    saved = _save_view(browser, urlsplit(listed.request.url).query)
    opened = browser.get(saved.headers["Location"])

    assert listed.status_code == 200
    assert _chip_texts(listed) == _chip_texts(opened) == [chip]


@pytest.mark.parametrize(
    "condition",
    [
        {"==": [{"var": "stage"}, "Won"]},
        {"!=": [{"var": "stage"}, "Closed lost"]},
    ],
)
def test_a_view_comparing_a_choice_with_its_label_selects_what_its_condition_does(
    api: Any, browser: Browser, sales: Platform, condition: Any
) -> None:
    """A page's filter reads ``stage=Won`` as the choice won; the condition
    compares the text "Won", which no record holds. Such a filter is refused
    when it is written now; a view saved before that shows what it selects."""
    _deals(sales, 6)
    by_api = api.get("/opportunity", query_string={"filter": json.dumps(condition)})
    every = api.get("/opportunity", query_string={"limit": "100"}).json["data"]
    document = {"entity": "opportunity", "label": "By label", "filter": condition}
    with sales.transaction() as (connection, catalog):
        admin = find_user(connection, "ada.admin")
        with pytest.raises(InvalidMetadata) as refused:
            save_view(connection, catalog, admin, document)
        view = save_view(connection, catalog, admin, {**document, "filter": None})
    with sales.engine.begin() as connection:
        # As saved before such filters were refused.
        stored = saved_views.c.id == view["id"]
        body = connection.execute(sa.select(saved_views.c.body).where(stored)).one()[0]
        connection.execute(
            saved_views.update()
            .where(stored)
            .values(body={**body, "filter": condition})
        )
    opened = browser.get(f"/app/opportunity?view={view['id']}")
    shown = browser.get(opened.headers["Location"])

    assert by_api.status_code == 400
    assert [e["code"] for e in by_api.json["errors"]] == ["choice_label"]
    assert refused.value.problems[0].code == "choice_label"
    assert sorted(_titles(shown)) == sorted(
        record["title"] for record in every if evaluate(condition, record)
    )
    assert "Condition: " in text_of(shown.get_data(as_text=True))


def test_long_text_in_a_list_is_cut_and_whole_on_the_record_page(
    browser: Browser, sales: Platform
) -> None:
    layout = {
        "kind": "layout",
        "entity": "account",
        "list": {"columns": ["name", "notes"], "sort": ["name"], "page_size": 25},
    }
    sales.store.apply([("account.json", layout)], actor="test")
    notes = "word " * 800
    [record_id] = _records(sales, "account", [{"name": "Wordy", "notes": notes}])

    listed = browser.get("/app/account").get_data(as_text=True)
    record = browser.get(f"/app/account/{record_id}").get_data(as_text=True)

    cell = next(
        e for e in elements(listed) if e.get("class") == "multiline"
    ).text.strip()
    assert len(cell) <= 201 and cell.endswith("…")
    assert notes.startswith(cell.removesuffix("…"))
    assert 'class="cell-clamp"' in listed
    assert notes.strip() in " ".join(record.split())


# -- selected rows and export ------------------------------------------------------


def test_deleting_selected_rows_asks_first_then_deletes_them_all(
    browser: Browser, sales: Platform
) -> None:
    ids = _deals(sales, 4)
    state = "sort=title&amount__gte=100"

    confirm = browser.post(
        "/app/opportunity/bulk",
        {"action": "delete", "ids": [str(ids[0]), str(ids[2])], "state": state},
    )
    page = confirm.get_data(as_text=True)
    done = browser.post(
        "/app/opportunity/bulk",
        {
            "action": "delete_confirmed",
            "ids": [str(ids[0]), str(ids[2])],
            "state": state,
        },
    )

    assert confirm.status_code == 200
    assert "Delete 2 opportunities?" in text_of(page)
    assert "Deal 01" in text_of(page) and "Deal 03" in text_of(page)
    assert done.status_code == 303
    assert _params(done.headers["Location"]) == _params(f"?{state}")
    listed = browser.get(done.headers["Location"])
    assert _titles(listed) == ["Deal 02", "Deal 04"]
    assert "2 opportunities deleted." in text_of(listed.get_data(as_text=True))


def test_selected_rows_and_list_numbers_in_other_digits_are_no_error(
    browser: Browser, sales: Platform
) -> None:
    ids = _deals(sales, 2)

    chosen = browser.post(
        "/app/opportunity/bulk",
        {"action": "delete", "ids": ["\u00b2", str(ids[0])], "state": ""},
    )
    listed = browser.get("/app/opportunity?start=%C2%B2&view=%E2%91%A0")

    assert chosen.status_code == 200
    assert "Delete 1 opportunity?" in text_of(chosen.get_data(as_text=True))
    assert listed.status_code == 303


def test_deleting_selected_rows_is_all_or_nothing(
    browser: Browser, sales: Platform
) -> None:
    _deals(sales, 2)
    [free] = _records(sales, "account", [{"name": "Initech"}])
    with sales.reading() as (connection, _):
        used = connection.execute(
            sa.text("SELECT id FROM account WHERE name = 'Acme Tools'")
        ).scalar_one()
    chosen = [str(used), str(free)]

    confirm = browser.post(
        "/app/account/bulk", {"action": "delete", "ids": chosen, "state": ""}
    )
    refused = browser.post(
        "/app/account/bulk", {"action": "delete_confirmed", "ids": chosen, "state": ""}
    )

    text = text_of(confirm.get_data(as_text=True))
    assert (
        "1 Opportunity: it keeps this record from being deleted (through Account)"
        in text
    )
    assert (
        "Nothing can be deleted while other records keep “Acme Tools” from being "
        "deleted. Go back and leave it out" in text
    )
    assert "delete_confirmed" not in confirm.get_data(as_text=True)
    assert refused.status_code == 303
    listed = browser.get("/app/account?sort=name")
    assert _titles(listed) == ["Acme Tools", "Globex", "Initech"]
    assert (
        "Nothing was deleted: other records refer to Account “Acme Tools”, which "
        "keeps it from being deleted." in text_of(listed.get_data(as_text=True))
    )


def test_selected_rows_that_refer_to_each_other_are_deleted_referrers_first(
    api: Api, browser: Browser, sales: Platform
) -> None:
    # A restricting lookup of accounts to accounts: each holding is kept by the
    # account below it, which is selected too and goes first.
    add_field(
        api,
        "account",
        {"name": "holding", "type": "lookup", "target": "account", "label": "Holding"},
    )
    [group] = _records(sales, "account", [{"name": "Umbrella Group"}])
    [unit] = _records(sales, "account", [{"name": "Umbrella Unit", "holding": group}])
    [branch] = _records(sales, "account", [{"name": "Umbrella Desk", "holding": unit}])
    chosen = [str(group), str(unit), str(branch)]

    confirm = browser.post(
        "/app/account/bulk", {"action": "delete", "ids": chosen, "state": ""}
    )
    done = browser.post(
        "/app/account/bulk", {"action": "delete_confirmed", "ids": chosen, "state": ""}
    )

    page = confirm.get_data(as_text=True)
    assert "keeps this record from being deleted" not in text_of(page)
    assert "delete_confirmed" in page
    assert done.status_code == 303
    listed = browser.get("/app/account?sort=name")
    assert "3 accounts deleted." in text_of(listed.get_data(as_text=True))
    assert _titles(listed) == []


def test_selected_rows_that_refer_to_each_other_in_a_circle_keep_each_other(
    api: Api, browser: Browser, sales: Platform
) -> None:
    add_field(
        api,
        "account",
        {"name": "holding", "type": "lookup", "target": "account", "label": "Holding"},
    )
    [east, west] = _records(sales, "account", [{"name": "East"}, {"name": "West"}])
    with sales.records(SYSTEM_ACTOR) as service:
        service.update("account", east, {"holding": west})
        service.update("account", west, {"holding": east})
    chosen = [str(east), str(west)]

    confirm = browser.post(
        "/app/account/bulk", {"action": "delete", "ids": chosen, "state": ""}
    )

    text = text_of(confirm.get_data(as_text=True))
    assert "keep “East” and “West” from being deleted" in text
    assert "delete_confirmed" not in confirm.get_data(as_text=True)


def test_a_clearing_lookup_back_to_a_selected_row_makes_no_circle(
    api: Api, browser: Browser, sales: Platform
) -> None:
    # Holding restricts, Mentor is cleared: the unit must go before its holding,
    # and the holding's mentor link to the unit keeps neither of them.
    add_field(
        api,
        "account",
        {"name": "holding", "type": "lookup", "target": "account", "label": "Holding"},
    )
    mentor = {
        "name": "mentor",
        "type": "lookup",
        "target": "account",
        "label": "Mentor",
        "on_delete": "set_null",
    }
    add_field(api, "account", mentor)
    [group, unit] = _records(sales, "account", [{"name": "Orbit"}, {"name": "Moon"}])
    with sales.records(SYSTEM_ACTOR) as service:
        service.update("account", unit, {"holding": group})
        service.update("account", group, {"mentor": unit})
    chosen = [str(group), str(unit)]

    confirm = browser.post(
        "/app/account/bulk", {"action": "delete", "ids": chosen, "state": ""}
    )
    done = browser.post(
        "/app/account/bulk", {"action": "delete_confirmed", "ids": chosen, "state": ""}
    )

    assert "keeps this record from being deleted" not in text_of(
        confirm.get_data(as_text=True)
    )
    assert done.status_code == 303
    listed = browser.get("/app/account?sort=name")
    assert "2 accounts deleted." in text_of(listed.get_data(as_text=True))
    assert _titles(listed) == []


def test_what_deleting_does_to_other_records_is_worded_by_their_count(
    browser: Browser, sales: Platform
) -> None:
    [one, two] = _records(sales, "account", [{"name": "Solo"}, {"name": "Duo"}])
    _records(
        sales,
        "contact",
        [
            {"full_name": "Ann", "account": one},
            {"full_name": "Bo", "account": two},
            {"full_name": "Cy", "account": two},
        ],
    )
    _records(sales, "opportunity", [{"title": f"D{n}", "account": two} for n in (1, 2)])

    confirm = browser.post(
        "/app/account/bulk",
        {"action": "delete", "ids": [str(one), str(two)], "state": ""},
    )

    text = text_of(confirm.get_data(as_text=True))
    assert "1 Contact: its Account will be cleared" in text
    assert "2 Contacts: their Account will be cleared" in text
    assert (
        "2 Opportunities: they keep this record from being deleted (through Account)"
        in text
    )
    assert "keep “Duo” from being deleted. Go back and leave it out" in text


def _csv(response: TestResponse) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def test_export_of_selected_rows(browser: Browser, sales: Platform) -> None:
    ids = _deals(sales, 4)
    chosen = [str(ids[1]), str(ids[3]), str(ids[0])]

    # In the order of the list they were selected on.
    response = browser.post(
        "/app/opportunity/bulk",
        {"action": "export", "ids": chosen, "state": "sort=-close_date"},
    )
    rows = _csv(response)
    by_title = browser.post(
        "/app/opportunity/bulk",
        {"action": "export", "ids": chosen, "state": "sort=title&start=26"},
    )

    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "opportunity-selected.csv" in response.headers["Content-Disposition"]
    assert [row["title"] for row in rows] == ["Deal 04", "Deal 02", "Deal 01"]
    assert [row["title"] for row in _csv(by_title)] == ["Deal 01", "Deal 02", "Deal 04"]


def test_export_follows_the_filters_search_and_sort_of_the_list(
    browser: Browser, sales: Platform
) -> None:
    _deals(sales, 9)

    response = browser.get(
        "/app/opportunity/export.csv?stage__in=won,lost&amount__gte=300"
        "&q=deal&sort=-amount&cursor=ignored&start=26"
    )

    rows = _csv(response)
    with sales.reading() as (_, catalog):
        columns = export_columns(catalog.entity("opportunity"))
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    assert response.get_data(as_text=True).splitlines()[0] == ",".join(columns)
    assert [row["title"] for row in rows] == [
        "Deal 09",
        "Deal 07",
        "Deal 06",
        "Deal 04",
        "Deal 03",
    ]
    assert rows[0]["amount"] == "900"
    assert rows[0]["next_step"] == ""


def test_the_export_of_a_views_own_address_follows_the_view(
    browser: Browser, sales: Platform
) -> None:
    # The list page opens ``?view=N`` as the view's filters and sort; an export
    # of that address wrote every record.
    _deals(sales, 9)
    saved = _save_view(browser, "stage=won&sort=-amount")

    response = browser.get(
        f"/app/opportunity/export.csv?view={_view_id(saved.location)}"
    )
    unknown = browser.get("/app/opportunity/export.csv?view=999999")
    everything = browser.get("/app/opportunity/export.csv?view=")

    assert response.status_code == 200
    assert [row["title"] for row in _csv(response)] == ["Deal 09", "Deal 06", "Deal 03"]
    assert unknown.status_code == 404
    assert unknown.mimetype == "text/html"
    assert len(_csv(everything)) == 9


def test_the_export_of_a_views_own_address_keeps_the_views_search(
    browser: Browser, sales: Platform
) -> None:
    # The view's quick search was left out: its address exported every record
    # its filters selected, searched or not.
    _deals(sales, 9)
    saved = _save_view(browser, "stage=won&q=deal 06&sort=-amount")
    view_id = _view_id(saved.location)

    listed = browser.get(f"/app/opportunity?view={view_id}", follow_redirects=True)
    response = browser.get(f"/app/opportunity/export.csv?view={view_id}")

    assert _titles(listed) == ["Deal 06"]
    assert [row["title"] for row in _csv(response)] == _titles(listed)


def test_an_exported_carriage_return_alone_reads_back_as_one_value(
    browser: Browser, sales: Platform
) -> None:
    create(sales, "account", name="Quayside Ltd", notes="Gate code 4711\rAsk for Bo")

    response = browser.get("/app/account/export.csv")

    reader = read_csv(io.BytesIO(response.get_data()))
    rows = [values for _, values in reader]
    notes = reader.header.index("notes")
    assert [row[notes] for row in rows] == ["Gate code 4711\rAsk for Bo"]


@pytest.mark.parametrize("search", ["İstanbul", "İSTANBUL", "İst"])
def test_the_quick_search_finds_a_value_by_its_own_letters_whatever_their_case(
    browser: Browser, sales: Platform, search: str
) -> None:
    # The capital I with a dot above folds to different text in Python and in
    # PostgreSQL: the search's words are folded by the database, as the names.
    _records(sales, "account", [{"name": "İstanbul Ferries"}, {"name": "Tugs"}])

    page = browser.get("/app/account", query_string={"q": search})

    assert "İstanbul Ferries" in text_of(page.get_data(as_text=True))
    assert "Tugs" not in text_of(page.get_data(as_text=True))


def test_a_filtered_list_with_a_cursor_of_another_list_still_shows_its_page(
    browser: Browser, sales: Platform
) -> None:
    _deals(sales, 3)

    response = browser.get("/app/opportunity?stage=won&q=deal&cursor=nonsense")
    again = browser.get("/app/opportunity?stage=won&q=deal")

    assert response.status_code == 400
    assert "This list cannot be shown as asked: cursor:" in text_of(
        response.get_data(as_text=True)
    )
    assert again.status_code == 200


def test_a_wrong_export_filter_is_an_error_page_not_a_broken_file(
    browser: Browser,
) -> None:
    response = browser.get("/app/opportunity/export.csv?amount__gte=lots")

    assert response.status_code == 400
    assert response.mimetype == "text/html"


@pytest.mark.parametrize("path", ["/app/opportunity", "/app/opportunity/export.csv"])
def test_a_filter_the_database_refuses_says_so_naming_the_filter(
    browser: Browser, sales: Platform, path: str
) -> None:
    # Whether the number overflows depends on the records, so the condition
    # was accepted: the list says why it shows nothing, and keeps its view bar,
    # as for any other filter it cannot run; an export is an error page.
    _deals(sales, 2)
    past_64_bits = {">": [{"*": [{"var": "id"}, 2**63 - 1]}, 0]}

    response = browser.get(path, query_string={"filter": json.dumps(past_64_bits)})

    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert response.mimetype == "text/html"
    assert "filter: a number the condition computes for these records" in page
    assert ('aria-label="Saved views"' in page) == (path == "/app/opportunity")


def test_state_changing_list_requests_need_the_csrf_token(
    browser: Browser, sales: Platform
) -> None:
    ids = _deals(sales, 1)

    requests = [
        ("/app/opportunity/bulk", {"action": "delete_confirmed", "ids": str(ids[0])}),
        ("/app/opportunity/views", {"label": "X", "columns": "title"}),
    ]
    answers = [
        browser.post(path, data, csrf=False).status_code for path, data in requests
    ]

    assert answers == [400, 400]
    assert len(_titles(browser.get("/app/opportunity"))) == 1


def test_every_text_on_a_list_page_is_escaped(
    browser: Browser, sales: Platform
) -> None:
    _records(sales, "opportunity", [{"title": "<script>alert(1)</script>"}])

    response = browser.get(
        "/app/opportunity?title__contains=<img src=x onerror=alert(2)>"
        "&q=<b>&filter=" + '{"==":[{"var":"title"},"</code><i>"]}'
    )

    page = response.get_data(as_text=True)
    assert "<script>alert(1)" not in page
    assert "<img src=x" not in page
    assert "<b>" not in page and "<i>" not in page
    assert "&lt;img src=x onerror=alert(2)&gt;" in page
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy


# -- filters as conditions ---------------------------------------------------------


ROUND_TRIPS = [
    "title__contains=DEAL 0",
    "title__startswith=deal",
    "title__eq=Deal 01",
    "title__ne=Deal 01",
    "next_step__isnull=true",
    "next_step__isnull=false",
    "amount__eq=200",
    "amount__ne=200",
    "amount__lt=250",
    "amount__lte=200",
    "amount__gt=150.5",
    "amount__gte=0",
    "close_date__lt=2025-04-01",
    "close_date__gte=2025-03-15",
    "stage__in=won,proposal",
    "stage__ne=lost",
    "account__isnull=false",
]


@pytest.mark.parametrize("pair", ROUND_TRIPS)
def test_a_saved_filter_selects_what_the_page_filter_did_and_reads_back(
    browser: Browser, sales: Platform, pair: str
) -> None:
    _deals(sales, 5)
    _records(sales, "opportunity", [{"title": "No amount, no date"}])
    param, raw = pair.split("=", 1)

    with sales.reading() as (_, catalog):
        entity = catalog.entity("opportunity")
        condition = condition_of(entity, [(param, raw)], None)
        back = filters_of(entity, condition)
    by_param = browser.get(f"/app/opportunity?sort=title&{pair}")
    by_condition = browser.get(
        "/app/opportunity?sort=title&filter=" + json.dumps(condition)
    )

    folded = param.endswith(("__contains", "__startswith"))
    assert back == [(param, raw.lower() if folded else raw)]
    assert _titles(by_param) == _titles(by_condition)
    assert _titles(by_param)


@pytest.mark.parametrize(
    "condition",
    [
        {"or": [{"==": [{"var": "stage"}, "won"]}]},
        {"<": [{"var": "amount"}, 5]},
        {"==": [{"var": "owner_id"}, {"var": "$user.id"}]},
        {"contains": [{"var": "title"}, "Deal"]},
        {"and": []},
    ],
)
def test_conditions_a_page_cannot_show_as_filters_stay_whole(
    sales: Platform, condition: Any
) -> None:
    with sales.reading() as (_, catalog):
        found = filters_of(catalog.entity("opportunity"), condition)

    assert found is None


def test_a_multi_picklist_is_filtered_by_a_choice_s_label_as_imports_read_it(
    api: Any, browser: Browser, sales: Platform
) -> None:
    # interests__contains=Software found nothing: only the value was read.
    _records(
        sales,
        "sales_lead",
        [
            {"company": "Kestrel Mills", "full_name": "Ada Quill", "status": "new",
             "interests": ["software", "training"]},
            {"company": "Plover Yards", "full_name": "Ben Rook", "status": "new",
             "interests": ["hardware"]},
        ],
    )  # fmt: skip
    condition = {"contains": [{"var": "interests"}, "Software"]}

    by_label = api.get("/sales_lead?interests__contains=Software").json["data"]
    listed = browser.get("/app/sales_lead?interests__contains=Software")
    by_text = api.get("/sales_lead", query_string={"filter": json.dumps(condition)})
    _, shown = _open_view(browser, sales, "Software", condition, "sales_lead")

    assert [lead["company"] for lead in by_label] == ["Kestrel Mills"]
    assert _chip_texts(listed) == ["Interests has Software"]
    # The condition compares the text as written, which no choice is; its view
    # opens as that condition, not as the filter that reads the label.
    assert by_text.json["data"] == []
    assert "Condition: " in text_of(shown.get_data(as_text=True))
    assert _titles(shown) == []


@pytest.mark.parametrize(
    ("query", "chip"),
    [
        ("kit=Hardware,Software", "Kit is Bundle"),
        ("kit__ne=Hardware,Software", "Kit is not Bundle"),
        ("kit__in=Hardware,Software", "Kit is one of Hardware, Software"),
    ],
)
def test_a_choice_holding_a_comma_is_named_on_its_chip_as_one_choice(
    api: Any, browser: Browser, sales: Platform, query: str, chip: str
) -> None:
    # The filter builder writes a choice that holds a comma with "is" (kit=...):
    # its chip read "Kit is hw,sw", the text split at the comma and each part
    # read as another choice, above rows whose Kit reads Bundle.
    options = [
        {"value": "hw", "label": "Hardware"},
        {"value": "sw", "label": "Software"},
        {"value": "Hardware,Software", "label": "Bundle"},
    ]
    add_field(
        api,
        "opportunity",
        {"name": "kit", "type": "picklist", "label": "Kit", "options": options},
    )

    listed = browser.get(f"/app/opportunity?{query}")
    saved = _save_view(browser, urlsplit(listed.request.url).query)
    opened = browser.get(saved.headers["Location"])

    assert listed.status_code == 200
    assert _chip_texts(listed) == _chip_texts(opened) == [chip]
