"""Create and edit forms: a widget per field type, problems shown where they are,
typed values kept, lookups resolved, edit races explained, CSRF refused."""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from tailorcrm.platform import Platform
from tailorcrm.platform.records import SYSTEM_ACTOR, RecordService
from tests.conftest import load_pack
from tests.web_helpers import (
    Browser,
    by_id,
    create,
    elements,
    fetch,
    label_for,
    sign_in,
    text_of,
)

GADGET = {
    "name": "gadget",
    "label": "Gadget",
    "label_plural": "Gadgets",
    "display_field": "title",
    "fields": [
        {"name": "title", "type": "text", "label": "Title", "required": True},
        {"name": "notes", "type": "textarea", "label": "Notes", "max_length": 900},
        {"name": "units", "type": "integer", "label": "Units", "min": 1, "max": 99},
        {"name": "weight", "type": "decimal", "label": "Weight", "scale": 3},
        {
            "name": "price",
            "type": "currency",
            "label": "Price",
            "currency_code": "EUR",
            "min": 0,
        },
        {"name": "discount", "type": "percent", "label": "Discount"},
        {"name": "active", "type": "boolean", "label": "Active"},
        {"name": "launch", "type": "date", "label": "Launch"},
        {"name": "review_at", "type": "datetime", "label": "Review at"},
        {"name": "email", "type": "email", "label": "Support email"},
        {"name": "phone", "type": "phone", "label": "Hotline"},
        {"name": "site", "type": "url", "label": "Site"},
        {
            "name": "colour",
            "type": "picklist",
            "label": "Colour",
            "options": [
                {"value": "red", "label": "Red"},
                {"value": "blue", "label": "Blue"},
            ],
        },
        {
            "name": "tags",
            "type": "multi_picklist",
            "label": "Tags",
            "help_text": "Pick any that apply.",
            "options": [
                {"value": "new", "label": "New"},
                {"value": "eco", "label": "Eco"},
                {"value": "sale", "label": "Sale"},
            ],
        },
        {"name": "maker", "type": "lookup", "target": "account", "label": "Maker"},
        {"name": "serial", "type": "autonumber", "label": "Serial", "prefix": "G-"},
    ],
}


@pytest.fixture
def sales(platform: Platform) -> Platform:
    platform.store.apply([*load_pack(), ("gadget.json", GADGET)], actor="test")
    return platform


@pytest.fixture
def browser(app: Flask, sales: Platform) -> Browser:
    return sign_in(app, sales)


def count(platform: Platform, entity: str) -> int:
    with platform.engine.connect() as connection:
        table = sa.table(entity)
        found: int = connection.execute(
            sa.select(sa.func.count()).select_from(table)
        ).scalar_one()
        return found


def summary_links(page: str) -> list[tuple[str, str]]:
    start = page.index('class="error-summary"')
    block = page[start : page.index("</div>", start)]
    return [
        (element["href"], element.text)
        for element in elements(block)
        if element.tag == "a"
    ]


# -- widgets -------------------------------------------------------------------------


def test_every_field_type_gets_its_widget_with_a_label_tied_to_it(
    browser: Browser,
) -> None:
    page = browser.get("/app/gadget/new").get_data(as_text=True)

    kinds = {
        name: (element.tag, element.get("type"))
        for name in [spec["name"] for spec in GADGET["fields"]][:-1]
        for element in [by_id(page, f"f-{name}")]
    }
    assert kinds == {
        "title": ("input", "text"),
        "notes": ("textarea", None),
        "units": ("input", "number"),
        "weight": ("input", "number"),
        "price": ("input", "number"),
        "discount": ("input", "number"),
        "active": ("input", "checkbox"),
        "launch": ("input", "date"),
        "review_at": ("input", "datetime-local"),
        # Text with the keyboard of its kind: the browser's own email and address
        # checks are not the save's (see INPUT_TYPES).
        "email": ("input", "text"),
        "phone": ("input", "tel"),
        "site": ("input", "text"),
        "colour": ("select", None),
        "tags": ("input", "checkbox"),
        "maker": ("input", "text"),
    }
    labels = {name: label_for(page, f"f-{name}") for name in kinds if name != "tags"}
    assert labels["title"] == "Title" and labels["review_at"] == "Review at"
    assert len(labels) == len(kinds) - 1
    legend = [e for e in elements(page) if e.tag == "legend"]
    assert [e.text.strip() for e in legend] == ["Tags"]
    assert "f-serial" not in page
    assert by_id(page, "f-email")["inputmode"] == "email"
    assert by_id(page, "f-site")["inputmode"] == "url"


def test_number_inputs_follow_the_fields_scale_limits_and_unit(
    browser: Browser,
) -> None:
    page = browser.get("/app/gadget/new").get_data(as_text=True)

    units, weight = by_id(page, "f-units"), by_id(page, "f-weight")
    price, discount = by_id(page, "f-price"), by_id(page, "f-discount")
    assert (units["step"], units["min"], units["max"]) == ("1", "1", "99")
    assert weight["step"] == "0.001"
    assert (price["step"], price["min"]) == ("0.01", "0")
    assert by_id(page, "f-price-unit").text == "€ EUR"
    assert price["aria-describedby"] == "f-price-unit"
    assert (discount["step"], by_id(page, "f-discount-unit").text) == ("0.01", "%")
    assert by_id(page, "f-review_at-unit").text == "UTC"
    assert by_id(page, "f-notes")["maxlength"] == "900"
    assert by_id(page, "f-email")["maxlength"] == "254"


def test_a_bound_raised_since_a_value_was_saved_does_not_lock_the_form(
    browser: Browser, sales: Platform
) -> None:
    """Units of 5 saved before min became 10: the browser refused to send the
    edit form, whatever was changed, while the save keeps a value left alone."""
    platform = sales
    record = create(platform, "gadget", title="Lamp", units=5)
    document = {
        **GADGET,
        "fields": [
            {**spec, "min": 10} if spec["name"] == "units" else spec
            for spec in GADGET["fields"]
        ],
    }
    platform.store.apply([("", document)], actor="test")

    edit = by_id(
        browser.get(f"/app/gadget/{record['id']}/edit").get_data(as_text=True),
        "f-units",
    )
    new = by_id(browser.get("/app/gadget/new").get_data(as_text=True), "f-units")
    saved = browser.post(
        f"/app/gadget/{record['id']}/edit",
        {"title": "Desk lamp", "units": "5", "_version": "1"},
    )

    assert (edit["value"], edit.get("min"), edit.get("max")) == ("5", None, "99")
    assert edit.get("data-min") == "10"
    assert (new.get("min"), new.get("max"), new.get("data-min")) == ("10", "99", None)
    assert saved.status_code == 303
    assert fetch(platform, "gadget", record["id"])["units"] == 5


@pytest.mark.parametrize(
    ("spec", "attrs"),
    [
        ({"type": "integer", "min": 0.5, "max": 9.5}, ("1", "1", "9")),
        ({"type": "currency", "min": 0.005, "max": 99.999}, ("0.01", "0.01", "99.99")),
        ({"type": "decimal", "scale": 2, "min": -0.001}, ("0.01", "0.00", None)),
        (
            {"type": "decimal", "scale": 2, "min": -1.5, "max": 1e20},
            ("0.01", "-1.5", "100000000000000000000"),
        ),
        ({"type": "percent", "min": -12.345}, ("0.01", "-12.34", None)),
    ],
)
def test_a_bound_with_more_decimals_than_the_field_keeps_is_put_on_the_step(
    app: Flask, platform: Platform, spec: dict[str, Any], attrs: tuple[Any, ...]
) -> None:
    """A browser counts steps from min: an integer input with min 0.5 refused 1
    (it took 0.5, 1.5, ...), so the form could not be sent with a value the
    save takes."""
    document = {
        "name": "meter",
        "label": "Meter",
        "display_field": "title",
        "fields": [
            {"name": "title", "type": "text", "label": "Title"},
            {"name": "reading", "label": "Reading", **spec},
        ],
    }
    platform.store.apply([("", document)], actor="test")
    browser = sign_in(app, platform)

    reading = by_id(browser.get("/app/meter/new").get_data(as_text=True), "f-reading")

    assert (reading["step"], reading.get("min"), reading.get("max")) == attrs


def test_required_fields_are_marked_for_eyes_and_screen_readers(
    browser: Browser,
) -> None:
    page = browser.get("/app/gadget/new").get_data(as_text=True)

    title = by_id(page, "f-title")
    assert title["aria-required"] == "true"
    assert by_id(page, "f-units").get("aria-required") is None
    assert '<label for="f-title">Title <span class="required" aria-hidden="true">*' in (
        page
    )
    assert "Title * (required)" in text_of(page)


def test_a_lookup_is_a_combobox_over_its_targets_search(browser: Browser) -> None:
    page = browser.get("/app/gadget/new").get_data(as_text=True)

    box = by_id(page, "f-maker")
    options = by_id(page, "f-maker-options")
    assert box["role"] == "combobox"
    assert box["aria-controls"] == "f-maker-options"
    assert box["aria-expanded"] == "false"
    assert box["name"] == "maker__search"
    assert options["role"] == "listbox"
    lookup = [e for e in elements(page) if e.get("data-lookup-url") is not None]
    assert [e["data-lookup-url"] for e in lookup] == ["/app/account/lookup"]
    scripts = [e["src"] for e in elements(page) if e.tag == "script"]
    assert "/static/lookup.js" in scripts and "/static/forms.js" in scripts


def test_an_autonumber_shows_read_only_on_the_edit_form(
    browser: Browser, sales: Platform
) -> None:
    gadget = create(sales, "gadget", title="Lamp")

    page = browser.get(f"/app/gadget/{gadget['id']}/edit").get_data(as_text=True)

    serial = by_id(page, "f-serial")
    assert "readonly" in serial.attrs and serial["value"] == "G-000001"
    assert serial.get("name") is None
    assert label_for(page, "f-serial") == "Serial"


# -- problems ------------------------------------------------------------------------


def test_problems_show_beside_each_field_and_in_a_summary_values_kept(
    browser: Browser, sales: Platform
) -> None:
    acme = create(sales, "account", name="Acme")
    browser.get("/app/opportunity/new")

    response = browser.post(
        "/app/opportunity/new",
        {
            "title": "",
            "amount": "-5",
            "stage": "proposal",
            "close_date": "2026-09-30",
            "account": str(acme["id"]),
            "account__search": "Acme",
            "next_step": "Call <b>Bo</b>",
        },
    )

    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert summary_links(page) == [
        ("#f-title", "Title: This field is required."),
        ("#f-amount", "Amount: Enter a value of at least 0."),
    ]
    assert 'role="alert"' in page and "2 problems to fix before saving" in page
    amount = by_id(page, "f-amount")
    assert amount["aria-invalid"] == "true"
    assert "f-amount-errors" in amount["aria-describedby"].split()
    assert by_id(page, "f-amount-errors").tag == "ul"
    assert "Enter a value of at least 0." in text_of(page)
    assert by_id(page, "f-title")["aria-invalid"] == "true"
    assert amount["value"] == "-5"
    assert by_id(page, "f-close_date")["value"] == "2026-09-30"
    assert by_id(page, "f-next_step")["value"] == "Call <b>Bo</b>"
    assert by_id(page, "f-account")["value"] == "Acme"
    chosen = [e for e in elements(page) if e.tag == "option" and "selected" in e.attrs]
    assert [e["value"] for e in chosen] == ["proposal"]
    assert count(sales, "opportunity") == 0


def test_every_kind_of_typed_value_comes_back_after_a_refused_save(
    browser: Browser, sales: Platform
) -> None:
    acme = create(sales, "account", name="Acme")

    response = browser.post(
        "/app/gadget/new",
        {
            "title": "",
            "notes": "\r\nline two\r\n",
            "weight": "1.250",
            "active": ["", "on"],
            "tags": ["", "eco", "sale"],
            "review_at": "2026-05-01T09:30",
            "maker": str(acme["id"]),
            "maker__search": "Acme",
        },
    )

    page = response.get_data(as_text=True)
    assert response.status_code == 422
    ticked = [
        e["value"]
        for e in elements(page)
        if e.get("name") == "tags" and "checked" in e.attrs
    ]
    assert ticked == ["eco", "sale"]
    assert "checked" in by_id(page, "f-active").attrs
    assert by_id(page, "f-weight")["value"] == "1.250"
    assert by_id(page, "f-review_at")["value"] == "2026-05-01T09:30"
    # The newline after <textarea> is eaten by HTML; the value's own one stays.
    assert 'rows="5">\n\r\nline two\r\n</textarea>' in page
    hidden = [e for e in elements(page) if e.get("name") == "maker"]
    assert [e["value"] for e in hidden] == [str(acme["id"])]
    assert by_id(page, "f-maker")["value"] == "Acme"


def test_a_problem_in_a_collapsed_section_of_another_tab_is_shown(
    browser: Browser, sales: Platform
) -> None:
    layout = {
        "kind": "layout",
        "entity": "gadget",
        "form": {
            "tabs": [
                {
                    "label": "Main",
                    "sections": [{"label": "Basics", "items": [{"field": "units"}]}],
                },
                {
                    "label": "More",
                    "sections": [
                        {
                            "label": "Naming",
                            "collapsible": True,
                            "collapsed": True,
                            "items": [{"field": "title"}],
                        }
                    ],
                },
            ]
        },
    }
    sales.store.apply([("layout.json", layout)], actor="test")

    shown = browser.get("/app/gadget/new").get_data(as_text=True)
    refused = browser.post("/app/gadget/new", {"units": "3", "title": ""})

    page = refused.get_data(as_text=True)
    assert "<details>" in shown and "<details open>" not in shown
    assert "<details open>" in page
    assert by_id(page, "tab-1-tab")["aria-selected"] == "true"
    assert by_id(page, "tab-0-tab")["aria-selected"] == "false"
    assert "More (1 problem)" in text_of(page)


# -- lookups -------------------------------------------------------------------------


def test_a_lookup_name_typed_without_scripts_is_found_by_the_server(
    browser: Browser, sales: Platform
) -> None:
    acme = create(sales, "account", name="Acme Ltd")

    response = browser.post(
        "/app/opportunity/new",
        {"title": "Deal", "account": "", "account__search": "  acme LTD "},
    )

    assert response.status_code == 303
    saved = fetch(sales, "opportunity", 1)
    assert saved["account"] == acme["id"]


@pytest.mark.parametrize(
    ("names", "typed", "message"),
    [
        ([], "Globex", "No Account is named “Globex”; check the spelling"),
        (["Acme", "acme"], "ACME", "More than one Account is named “ACME”"),
    ],
)
def test_a_lookup_name_that_finds_no_single_record_keeps_the_text(
    browser: Browser,
    sales: Platform,
    names: list[str],
    typed: str,
    message: str,
) -> None:
    for name in names:
        create(sales, "account", name=name)

    response = browser.post(
        "/app/opportunity/new",
        {"title": "Deal", "account": "", "account__search": typed},
    )

    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert by_id(page, "f-account")["value"] == typed
    assert message in by_id(page, "f-account-errors").text + text_of(page)
    assert summary_links(page)[0][0] == "#f-account"
    assert count(sales, "opportunity") == 0


def test_the_text_of_a_lookup_decides_over_a_stale_chosen_id(
    browser: Browser, sales: Platform
) -> None:
    acme = create(sales, "account", name="Acme")
    globex = create(sales, "account", name="Globex")
    deal = create(sales, "opportunity", title="Deal", account=acme["id"])
    other = create(sales, "opportunity", title="Other", account=acme["id"])

    changed = browser.post(
        f"/app/opportunity/{deal['id']}/edit",
        {"title": "Deal", "account": str(acme["id"]), "account__search": "Globex"},
    )
    cleared = browser.post(
        f"/app/opportunity/{other['id']}/edit",
        {"title": "Other", "account": str(acme["id"]), "account__search": ""},
    )

    assert changed.status_code == cleared.status_code == 303
    assert fetch(sales, "opportunity", deal["id"])["account"] == globex["id"]
    assert fetch(sales, "opportunity", other["id"])["account"] is None


def test_a_lookup_to_a_name_with_a_line_break_is_kept_as_the_box_shows_it(
    browser: Browser, sales: Platform
) -> None:
    """A name saved through the API may hold a line break, which the text box
    drops: the form refused its own, untouched, lookup as naming no record."""
    harbor = create(sales, "account", name="Harbor\nLights")
    deal = create(sales, "opportunity", title="Deal", account=harbor["id"])

    page = browser.get(f"/app/opportunity/{deal['id']}/edit").get_data(as_text=True)
    saved = browser.post(
        f"/app/opportunity/{deal['id']}/edit",
        {
            "title": "Deal two",
            "account": str(harbor["id"]),
            "account__search": "HarborLights",
        },
    )

    assert by_id(page, "f-account")["value"] == "Harbor\nLights"
    assert saved.status_code == 303
    assert fetch(sales, "opportunity", deal["id"])["account"] == harbor["id"]


def test_new_from_a_related_list_starts_with_the_lookup_filled_in(
    browser: Browser, sales: Platform
) -> None:
    acme = create(sales, "account", name="Acme & Sons")

    page = browser.get(f"/app/opportunity/new?account={acme['id']}").get_data(
        as_text=True
    )

    hidden = [e for e in elements(page) if e.get("name") == "account"]
    assert [e["value"] for e in hidden] == [str(acme["id"])]
    assert by_id(page, "f-account")["value"] == "Acme & Sons"
    assert "Acme &amp; Sons" in page
    assert by_id(page, "f-stage").tag == "select"
    chosen = [e for e in elements(page) if e.tag == "option" and "selected" in e.attrs]
    assert [e["value"] for e in chosen] == ["prospecting"]


def test_new_from_a_related_list_keeps_a_lookup_the_layout_leaves_out(
    browser: Browser, sales: Platform
) -> None:
    layout = {
        "kind": "layout",
        "entity": "gadget",
        "form": {
            "tabs": [{"label": "Main", "sections": [{"items": [{"field": "title"}]}]}]
        },
    }
    sales.store.apply([("layout.json", layout)], actor="test")
    acme = create(sales, "account", name="Acme & Sons")
    page = browser.get(f"/app/gadget/new?maker={acme['id']}").get_data(as_text=True)
    form = next(
        e for e in elements(page) if e.tag == "form" and "data-record-form" in e.attrs
    )

    response = browser.post(form["action"], {"title": "Lamp"})

    assert "f-maker" not in page
    assert response.status_code == 303
    saved = fetch(sales, "gadget", int(response.headers["Location"].rsplit("/", 1)[1]))
    assert (saved["title"], saved["maker"]) == ("Lamp", acme["id"])


# -- editing -------------------------------------------------------------------------


def test_an_edit_saves_and_leaves_fields_outside_the_layout_alone(
    browser: Browser, sales: Platform
) -> None:
    layout = {
        "kind": "layout",
        "entity": "gadget",
        "form": {
            "tabs": [
                {
                    "label": "Main",
                    "sections": [{"items": [{"field": "title"}, {"field": "units"}]}],
                }
            ]
        },
    }
    sales.store.apply([("layout.json", layout)], actor="test")
    gadget = create(sales, "gadget", title="Lamp", units=2, notes="Keep me")
    form = browser.get(f"/app/gadget/{gadget['id']}/edit").get_data(as_text=True)

    response = browser.post(
        f"/app/gadget/{gadget['id']}/edit",
        {"title": "Desk lamp", "units": "", "_version": "1"},
    )

    saved = fetch(sales, "gadget", gadget["id"])
    assert 'name="_version" value="1"' in form
    assert "f-notes" not in form
    assert response.status_code == 303
    assert response.headers["Location"] == f"/app/gadget/{gadget['id']}"
    assert (saved["title"], saved["units"], saved["notes"]) == (
        "Desk lamp",
        None,
        "Keep me",
    )
    assert saved["version"] == 2
    assert "Gadget “Desk lamp” was saved." in browser.get(
        response.headers["Location"]
    ).get_data(as_text=True)


def test_an_edit_that_lost_a_race_keeps_the_values_and_says_what_changed(
    browser: Browser, sales: Platform
) -> None:
    deal = create(sales, "opportunity", title="Deal", amount=100)
    form = browser.get(f"/app/opportunity/{deal['id']}/edit").get_data(as_text=True)
    with sales.engine.begin() as connection:
        catalog = sales.catalogs.get(connection)
        RecordService(connection, catalog, SYSTEM_ACTOR).update(
            "opportunity", deal["id"], {"amount": 250}
        )
    mine = {
        "title": "Deal (mine)",
        "amount": "100",
        "_version": re.findall(r'name="_version" value="(\d+)"', form)[0],
    }

    refused = browser.post(f"/app/opportunity/{deal['id']}/edit", mine)
    page = refused.get_data(as_text=True)
    version = re.findall(r'name="_version" value="(\d+)"', page)[0]
    again = browser.post(
        f"/app/opportunity/{deal['id']}/edit", {**mine, "_version": version}
    )

    assert refused.status_code == 409
    assert "Someone else saved this record while you were editing it." in page
    assert by_id(page, "f-title")["value"] == "Deal (mine)"
    assert by_id(page, "f-amount")["value"] == "100"
    assert "Saved meanwhile as “$250.00”" in by_id(page, "f-amount-errors").text + (
        text_of(page)
    )
    assert by_id(page, "f-title").get("aria-invalid") == "true"
    assert version == "2"
    assert again.status_code == 303
    saved = fetch(sales, "opportunity", deal["id"])
    assert (saved["title"], saved["amount"], saved["version"]) == (
        "Deal (mine)",
        100,
        3,
    )


def test_datetimes_are_typed_and_shown_in_utc(
    browser: Browser, sales: Platform
) -> None:
    response = browser.post(
        "/app/gadget/new", {"title": "Lamp", "review_at": "2026-05-01T09:30"}
    )
    gadget_id = int(response.headers["Location"].rsplit("/", 1)[1])

    form = browser.get(f"/app/gadget/{gadget_id}/edit").get_data(as_text=True)

    assert fetch(sales, "gadget", gadget_id)["review_at"] == "2026-05-01T09:30:00Z"
    assert by_id(form, "f-review_at")["value"] == "2026-05-01T09:30:00"


# -- CSRF --------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "forged"])
def test_a_form_without_the_sessions_token_is_refused_and_saves_nothing(
    browser: Browser, sales: Platform, token: str | None
) -> None:
    acme = create(sales, "account", name="Acme")
    data = {} if token is None else {"csrf_token": token}

    created = browser.post("/app/account/new", {**data, "name": "X"}, csrf=False)
    edited = browser.post(
        f"/app/account/{acme['id']}/edit", {**data, "name": "Y"}, csrf=False
    )
    deleted = browser.post(f"/app/account/{acme['id']}/delete", data, csrf=False)

    assert created.status_code == edited.status_code == deleted.status_code == 400
    assert "The form expired" in created.get_data(as_text=True)
    assert count(sales, "account") == 1
    assert fetch(sales, "account", acme["id"])["name"] == "Acme"
