"""Saving a form writes what the person changed, and nothing the form did not show.

A form can stay open while an admin changes the metadata under it: a field renamed,
a choice removed, a field added. Saving it then must not clear or rewrite data.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from werkzeug.datastructures import MultiDict

from tailorcrm.platform import Platform
from tailorcrm.platform.records import SYSTEM_ACTOR
from tests.rules_support import rule
from tests.web_helpers import Browser, create, elements, fetch, sign_in, text_of

GADGET: dict[str, Any] = {
    "name": "gadget",
    "label": "Gadget",
    "display_field": "title",
    "fields": [
        {"name": "title", "type": "text", "label": "Title", "required": True},
        {
            "name": "color",
            "type": "picklist",
            "label": "Color",
            "options": [
                {"value": "blue", "label": "Blue"},
                {"value": "red", "label": "Red"},
            ],
        },
        {
            "name": "tags",
            "type": "multi_picklist",
            "label": "Tags",
            "options": [
                {"value": "a", "label": "A"},
                {"value": "b", "label": "B"},
                {"value": "c", "label": "C"},
            ],
        },
        {"name": "ok", "type": "boolean", "label": "OK"},
        {"name": "note", "type": "text", "label": "Note"},
        {"name": "amount", "type": "decimal", "label": "Amount", "scale": 2},
    ],
}


def form_data(page: str) -> list[tuple[str, str]]:
    """What a browser would post for the first record form of a page, untouched."""
    data: list[tuple[str, str]] = []
    select: str | None = None
    inside = False
    for element in elements(page):
        if element.tag == "form" and "data-record-form" in element.attrs:
            inside = True
            continue
        if not inside:
            continue
        name = element.get("name")
        if element.tag == "select":
            select = name
        elif element.tag == "option" and select and "selected" in element.attrs:
            data.append((select, element["value"]))
        elif element.tag == "textarea" and name:
            data.append((name, element.raw_text.removeprefix("\n")))
        elif element.tag == "input" and name and "disabled" not in element.attrs:
            kind = element.get("type", "text")
            if kind == "checkbox" and "checked" not in element.attrs:
                continue
            data.append((name, element.get("value") or ""))
        elif element.tag == "button":
            break
    return data


def _post(browser: Browser, path: str, data: list[tuple[str, str]]) -> Any:
    return browser.client.post(
        path, data=MultiDict([("csrf_token", browser.token), *data])
    )


@pytest.fixture
def browser(app: Flask, platform: Platform) -> Browser:
    platform.store.apply([("", GADGET)], actor="test")
    return sign_in(app, platform)


def _document(platform: Platform) -> dict[str, Any]:
    with platform.engine.begin() as connection:
        return dict(platform.catalogs.get(connection).entity("gadget").document)


#: A whole-number field and a lookup some tests add to the gadget.
PIECES = {"name": "pieces", "type": "integer", "label": "Pieces"}
MAKER = {"name": "maker", "type": "lookup", "target": "gadget", "label": "Maker"}


def _add_fields(platform: Platform, *fields: dict[str, Any]) -> None:
    """Give the gadget ``fields`` besides those it has."""
    document = _document(platform)
    document["fields"] = [*document["fields"], *fields]
    platform.store.apply([("", document)], actor="test")


def _saved_id(response: Any) -> int:
    """The id of the record a new form's save went on to show."""
    return int(response.headers["Location"].rsplit("/", 1)[-1])


def test_a_field_renamed_while_the_form_is_open_keeps_its_value(
    browser: Browser, platform: Platform
) -> None:
    record = create(platform, "gadget", title="Lamp", amount="150.00")
    page = browser.get(f"/app/gadget/{record['id']}/edit").get_data(as_text=True)
    document = _document(platform)
    for spec in document["fields"]:
        if spec["name"] == "amount":
            spec["name"] = "deal_value"
    platform.store.apply([("", document)], actor="test")

    data = [(k, "Desk lamp" if k == "title" else v) for k, v in form_data(page)]
    response = _post(browser, f"/app/gadget/{record['id']}/edit", data)

    saved = fetch(platform, "gadget", record["id"])
    assert response.status_code == 303
    assert saved["title"] == "Desk lamp"
    assert saved["deal_value"] == 150


def test_a_choice_removed_since_is_kept_when_the_form_is_saved(
    browser: Browser, platform: Platform
) -> None:
    record = create(platform, "gadget", title="Lamp", color="blue", tags=["a", "c"])
    document = _document(platform)
    document["fields"][1]["options"] = [{"value": "red", "label": "Red"}]
    document["fields"][2]["options"] = document["fields"][2]["options"][:2]
    platform.store.apply([("", document)], actor="test")

    page = browser.get(f"/app/gadget/{record['id']}/edit").get_data(as_text=True)
    response = _post(browser, f"/app/gadget/{record['id']}/edit", form_data(page))

    saved = fetch(platform, "gadget", record["id"])
    assert "blue (no longer offered)" in page
    assert response.status_code == 303
    assert (saved["color"], saved["tags"]) == ("blue", ["a", "c"])


def test_untouched_values_are_not_rewritten(
    browser: Browser, platform: Platform
) -> None:
    record = create(platform, "gadget", title="Lamp", note="padded", ok=True)
    # A value stored with spaces around it, as before one-line text was trimmed
    # on every path: a save that does not touch it leaves it as it is.
    with platform.transaction() as (connection, catalog):
        table = catalog.entity("gadget").table
        connection.execute(
            table.update().where(table.c.id == record["id"]).values(note="  padded  ")
        )

    page = browser.get(f"/app/gadget/{record['id']}/edit").get_data(as_text=True)
    response = _post(browser, f"/app/gadget/{record['id']}/edit", form_data(page))

    saved = fetch(platform, "gadget", record["id"])
    assert response.status_code == 303
    assert (saved["note"], saved["version"]) == ("  padded  ", 1)


def test_line_breaks_a_browser_sends_otherwise_are_kept_when_left_alone(
    browser: Browser, platform: Platform
) -> None:
    """Text saved through the API may hold line breaks: a one-line input drops
    them and a textarea sends each as CRLF, and the save took that for a change."""
    document = _document(platform)
    document["fields"].append({"name": "memo", "type": "textarea", "label": "Memo"})
    platform.store.apply([("", document)], actor="test")
    record = create(
        platform, "gadget", title="Lamp", note="first\nsecond", memo="a\rb\nc", ok=True
    )

    page = browser.get(f"/app/gadget/{record['id']}/edit").get_data(as_text=True)
    shown = next(e for e in elements(page) if e.get("name") == "memo").own_text
    # What a browser sends: the input drops line breaks, the textarea sends CRLF.
    memo = shown.removeprefix("\n").replace("\r\n", "\n").replace("\r", "\n")
    sent = [
        (name, value.replace("\r", "").replace("\n", "") if name == "note" else value)
        for name, value in form_data(page)
        if name != "memo"
    ] + [("memo", memo.replace("\n", "\r\n"))]
    response = _post(browser, f"/app/gadget/{record['id']}/edit", sent)

    saved = fetch(platform, "gadget", record["id"])
    assert ("note", "firstsecond") in sent
    assert ("memo", "a\r\nb\r\nc") in sent
    assert response.status_code == 303
    assert (saved["note"], saved["memo"], saved["version"]) == (
        "first\nsecond",
        "a\rb\nc",
        1,
    )


def test_a_date_and_time_on_the_minute_keeps_its_decimals_when_left_alone(
    browser: Browser, platform: Platform
) -> None:
    """A browser sends 09:41:00 as 09:41; the save read that as a change and
    stored the whole second over a value the API saved with .5 s."""
    document = _document(platform)
    document["fields"].append({"name": "due", "type": "datetime", "label": "Due"})
    platform.store.apply([("", document)], actor="test")
    record = create(platform, "gadget", title="Lamp", ok=True)
    on_the_second = create(platform, "gadget", title="Desk", ok=True)
    with platform.transaction() as (connection, catalog):
        table = catalog.entity("gadget").table
        for found, due in (
            (record, dt.datetime(2031, 4, 17, 9, 41, 0, 500000)),
            (on_the_second, dt.datetime(2031, 4, 17, 9, 41, 0)),
        ):
            connection.execute(
                table.update().where(table.c.id == found["id"]).values(due=due)
            )

    for found in (record, on_the_second):
        path = f"/app/gadget/{found['id']}/edit"
        page = browser.get(path).get_data(as_text=True)
        data = [
            (key, "2031-04-17T09:41" if key == "due" else value)
            for key, value in form_data(page)
        ]
        assert ("due", "2031-04-17T09:41") in data
        response = _post(browser, path, data)
        assert response.status_code == 303

    assert fetch(platform, "gadget", record["id"])["due"] == (
        "2031-04-17T09:41:00.500000Z"
    )
    assert fetch(platform, "gadget", on_the_second["id"])["version"] == 1


def test_a_date_and_time_left_alone_is_not_named_when_the_save_lost_a_race(
    browser: Browser, platform: Platform
) -> None:
    document = _document(platform)
    document["fields"].append({"name": "due", "type": "datetime", "label": "Due"})
    platform.store.apply([("", document)], actor="test")
    record = create(platform, "gadget", title="Lamp", ok=True, due="2031-04-17T09:41Z")
    path = f"/app/gadget/{record['id']}/edit"
    data = [
        (key, "2031-04-17T09:41" if key == "due" else value)
        for key, value in form_data(browser.get(path).get_data(as_text=True))
    ]
    with platform.records(SYSTEM_ACTOR) as service:
        service.update("gadget", record["id"], {"title": "Desk lamp"})

    response = _post(browser, path, data)

    page = response.get_data(as_text=True)
    assert response.status_code == 409
    assert "Title: Saved meanwhile as “Desk lamp”" in text_of(page)
    assert "Due: Saved meanwhile" not in text_of(page)


def _lost_race(
    browser: Browser, platform: Platform, meanwhile: dict[str, Any]
) -> tuple[int, str]:
    """Open a new lamp's edit form, save ``meanwhile`` to it from elsewhere, then
    send the form untouched: the status and the text of the page."""
    record = create(platform, "gadget", title="Lamp")
    path = f"/app/gadget/{record['id']}/edit"
    data = form_data(browser.get(path).get_data(as_text=True))
    with platform.records(SYSTEM_ACTOR) as service:
        service.update("gadget", record["id"], meanwhile)
    response = _post(browser, path, data)
    return response.status_code, text_of(response.get_data(as_text=True))


def test_a_blank_checkbox_left_alone_is_not_named_when_the_save_lost_a_race(
    browser: Browser, platform: Platform
) -> None:
    # The box shows unticked, and the form sends it as false; the value saved
    # meanwhile is still blank, which the box shows the same.
    status, page = _lost_race(browser, platform, {"title": "Desk lamp"})

    assert status == 409
    assert "Title: Saved meanwhile as “Desk lamp”" in page
    assert "OK: Saved meanwhile" not in page


def test_a_checkbox_ticked_meanwhile_is_named_when_the_save_lost_a_race(
    browser: Browser, platform: Platform
) -> None:
    status, page = _lost_race(browser, platform, {"ok": True})

    assert status == 409
    assert "OK: Saved meanwhile as “Yes”" in page


def test_a_field_locked_meanwhile_shows_its_saved_value_after_a_lost_race(
    browser: Browser, platform: Platform
) -> None:
    # The note is locked once the gadget is OK. Someone ticks OK while the form is
    # open and changes the note in it: the note cannot take the value typed, so
    # the conflict page shows the saved one, and saving again keeps it.
    locked = rule(
        "note_locked_when_ok",
        "gadget",
        "field_state",
        field="note",
        readonly_if={"==": [{"var": "ok"}, True]},
    )
    platform.store.apply([("", locked)], actor="test")
    record = create(platform, "gadget", title="Lamp", note="First")
    path = f"/app/gadget/{record['id']}/edit"
    data = [
        (key, "Mine" if key == "note" else "Desk lamp" if key == "title" else value)
        for key, value in form_data(browser.get(path).get_data(as_text=True))
    ]
    with platform.records(SYSTEM_ACTOR) as service:
        service.update("gadget", record["id"], {"ok": True})

    lost = _post(browser, path, data)
    again = _post(browser, path, form_data(lost.get_data(as_text=True)))

    page = text_of(lost.get_data(as_text=True))
    assert lost.status_code == 409
    assert ("note", "First") in form_data(lost.get_data(as_text=True))
    assert "Note: Saved meanwhile as “First”, and it cannot be changed now." in page
    assert again.status_code == 303
    saved = fetch(platform, "gadget", record["id"])
    assert (saved["title"], saved["note"]) == ("Desk lamp", "First")


def _count_parts(platform: Platform) -> None:
    """Give gadgets parts, and each gadget a roll-up counting its parts."""
    document = _document(platform)
    document["fields"].append({"name": "parts", "type": "integer", "label": "Parts"})
    part = {
        "name": "part",
        "label": "Part",
        "fields": [
            {"name": "gadget", "type": "lookup", "target": "gadget", "label": "Gadget"}
        ],
    }
    counted = rule(
        "parts", "gadget", "rollup", field="parts",
        relation={"entity": "part", "lookup": "gadget"}, function="count",
    )  # fmt: skip
    platform.store.apply([("", document), ("", part), ("", counted)], actor="test")


def test_an_edit_is_saved_when_only_computed_values_moved_meanwhile(
    browser: Browser, platform: Platform
) -> None:
    # A part saved while the gadget's form is open moves the gadget's roll-up,
    # and with it the gadget's version; nobody changed what the form edits.
    _count_parts(platform)
    record = create(platform, "gadget", title="Lamp")
    path = f"/app/gadget/{record['id']}/edit"
    data = form_data(browser.get(path).get_data(as_text=True))
    create(platform, "part", gadget=record["id"])

    response = _post(
        browser, path, [(k, "Bright" if k == "note" else v) for k, v in data]
    )

    assert response.status_code == 303
    saved = fetch(platform, "gadget", record["id"])
    assert (saved["note"], saved["parts"]) == ("Bright", 1)


def test_an_edit_that_lost_a_race_is_refused_when_computed_values_moved_too(
    browser: Browser, platform: Platform
) -> None:
    _count_parts(platform)
    record = create(platform, "gadget", title="Lamp")
    path = f"/app/gadget/{record['id']}/edit"
    data = form_data(browser.get(path).get_data(as_text=True))
    create(platform, "part", gadget=record["id"])
    with platform.records(SYSTEM_ACTOR) as service:
        service.update("gadget", record["id"], {"title": "Desk lamp"})

    response = _post(browser, path, data)

    assert response.status_code == 409
    assert "Title: Saved meanwhile as “Desk lamp”" in text_of(
        response.get_data(as_text=True)
    )


def test_a_field_added_while_the_form_is_open_is_left_alone(
    browser: Browser, platform: Platform
) -> None:
    record = create(platform, "gadget", title="Lamp")
    page = browser.get(f"/app/gadget/{record['id']}/edit").get_data(as_text=True)
    document = _document(platform)
    document["fields"].append(
        {"name": "region", "type": "text", "label": "Region", "required": True}
    )
    platform.store.apply([("", document)], actor="test")

    data = [(k, "Desk lamp" if k == "title" else v) for k, v in form_data(page)]
    response = _post(browser, f"/app/gadget/{record['id']}/edit", data)
    reopened = browser.get(f"/app/gadget/{record['id']}/edit").get_data(as_text=True)

    saved = fetch(platform, "gadget", record["id"])
    assert response.status_code == 303
    assert (saved["title"], saved["region"]) == ("Desk lamp", None)
    assert 'name="region"' in reopened


def test_a_tampered_checkbox_value_is_refused_as_the_api_would(
    browser: Browser, platform: Platform
) -> None:
    record = create(platform, "gadget", title="Lamp")
    page = browser.get(f"/app/gadget/{record['id']}/edit").get_data(as_text=True)

    data = [(k, v) for k, v in form_data(page) if k != "ok"] + [("ok", "maybe")]
    response = _post(browser, f"/app/gadget/{record['id']}/edit", data)

    assert response.status_code == 422
    assert "Enter true or false." in response.get_data(as_text=True)
    assert fetch(platform, "gadget", record["id"])["ok"] is None


# -- a blank boolean: the box shows it unticked, and the save stores that ------------


def _note_rule(platform: Platform, **state: Any) -> None:
    document = rule("note_by_ok", "gadget", "field_state", field="note", **state)
    platform.store.apply([("", document)], actor="test")


def _marked_required(page: str, name: str) -> bool:
    """Whether the field's required marker shows (it is there, hidden, if not)."""
    found = elements(page)
    start = next(i for i, e in enumerate(found) if e.get("data-field") == name)
    mark = next(e for e in found[start:] if "data-required-mark" in e.attrs)
    return "hidden" not in mark.attrs


def test_a_blank_boolean_is_saved_as_the_unticked_box_the_form_shows(
    browser: Browser, platform: Platform
) -> None:
    record = create(platform, "gadget", title="Lamp")

    page = browser.get(f"/app/gadget/{record['id']}/edit").get_data(as_text=True)
    response = _post(browser, f"/app/gadget/{record['id']}/edit", form_data(page))

    assert record["ok"] is None
    assert response.status_code == 303
    assert fetch(platform, "gadget", record["id"])["ok"] is False


def test_a_field_required_while_a_blank_box_reads_false_is_required_on_save(
    browser: Browser, platform: Platform
) -> None:
    _note_rule(platform, required_if={"==": [{"var": "ok"}, False]})
    record = create(platform, "gadget", title="Lamp")

    page = browser.get(f"/app/gadget/{record['id']}/edit").get_data(as_text=True)
    refused = _post(browser, f"/app/gadget/{record['id']}/edit", form_data(page))
    again = refused.get_data(as_text=True)
    data = [(k, "Fragile" if k == "note" else v) for k, v in form_data(page)]
    saved = _post(browser, f"/app/gadget/{record['id']}/edit", data)

    assert _marked_required(page, "note")
    assert refused.status_code == 422
    assert "Note is required here." in again
    assert _marked_required(again, "note")
    assert saved.status_code == 303
    stored = fetch(platform, "gadget", record["id"])
    assert (stored["ok"], stored["note"]) == (False, "Fragile")


def test_a_field_required_unless_a_box_is_false_is_optional_for_a_blank_one(
    browser: Browser, platform: Platform
) -> None:
    record = create(platform, "gadget", title="Lamp")
    _note_rule(platform, required_if={"!=": [{"var": "ok"}, False]})

    page = browser.get(f"/app/gadget/{record['id']}/edit").get_data(as_text=True)
    response = _post(browser, f"/app/gadget/{record['id']}/edit", form_data(page))

    assert not _marked_required(page, "note")
    assert response.status_code == 303
    assert fetch(platform, "gadget", record["id"])["ok"] is False


def test_a_blank_box_that_readonly_if_locks_stays_blank_and_reads_blank(
    browser: Browser, platform: Platform
) -> None:
    locked = rule(
        "ok_when_red",
        "gadget",
        "field_state",
        field="ok",
        readonly_if={"==": [{"var": "color"}, "red"]},
    )
    platform.store.apply([("", locked)], actor="test")
    _note_rule(platform, required_if={"==": [{"var": "ok"}, False]})
    record = create(platform, "gadget", title="Lamp", color="red")

    page = browser.get(f"/app/gadget/{record['id']}/edit").get_data(as_text=True)
    response = _post(browser, f"/app/gadget/{record['id']}/edit", form_data(page))

    form = next(e for e in elements(page) if "data-record-form" in e.attrs)
    assert json.loads(form["data-field-state"])["record"]["ok"] is None
    assert not _marked_required(page, "note")
    assert response.status_code == 303
    assert fetch(platform, "gadget", record["id"])["ok"] is None


# -- a box ticked on a new form ----------------------------------------------------


def test_a_box_ticked_on_a_new_form_is_saved_ticked(browser: Browser) -> None:
    # The box posts a hidden "" and then "on"; nothing in the address names it.
    browser.get("/app/gadget/new")
    data = [("title", "Ticked"), ("ok", ""), ("ok", "on")]
    response = _post(browser, "/app/gadget/new", data)

    assert response.status_code == 303, response.get_data(as_text=True)
    gadget_id = _saved_id(response)
    assert fetch(browser.platform, "gadget", gadget_id)["ok"] is True


@pytest.mark.parametrize(
    ("amount", "count", "saved"),
    [
        ("1.25e2", "1e3", (Decimal("125"), 1000)),
        ("-2E-2", "1.50E1", (Decimal("-0.02"), 15)),
        ("0.5e1", "15.0", (Decimal("5"), 15)),
    ],
)
def test_a_number_typed_with_an_exponent_is_saved_as_the_number_input_reads_it(
    browser: Browser,
    platform: Platform,
    amount: str,
    count: str,
    saved: tuple[Decimal, int],
) -> None:
    # A number input takes 1e3 and 15.0 (for whole numbers) and sends them as
    # typed; the save refused them as "not a number" and "not a whole number".
    _add_fields(platform, PIECES)
    browser.get("/app/gadget/new")

    response = _post(
        browser,
        "/app/gadget/new",
        [("title", "Exponent"), ("amount", amount), ("pieces", count)],
    )

    assert response.status_code == 303, response.get_data(as_text=True)
    gadget_id = _saved_id(response)
    stored = fetch(platform, "gadget", gadget_id)
    assert (Decimal(str(stored["amount"])), stored["pieces"]) == saved


def test_a_number_with_an_exponent_the_field_cannot_hold_is_refused_beside_it(
    browser: Browser,
) -> None:
    browser.get("/app/gadget/new")

    response = _post(
        browser, "/app/gadget/new", [("title", "Tiny"), ("amount", "1e-3")]
    )

    assert response.status_code == 422
    assert "Enter at most 2 digits after the point." in text_of(
        response.get_data(as_text=True)
    )


@pytest.mark.parametrize("field", ["pieces", "maker"])
def test_a_whole_number_of_thousands_of_digits_is_refused_beside_its_field(
    browser: Browser, platform: Platform, field: str
) -> None:
    # Python's int refuses text of more than 4,300 digits; the form's save
    # answered 500.
    _add_fields(platform, PIECES, MAKER)
    browser.get("/app/gadget/new")

    response = _post(
        browser, "/app/gadget/new", [("title", "Huge"), (field, "9" * 5000)]
    )

    assert response.status_code == 422, response.status_code
    with platform.engine.connect() as connection:
        stored = connection.execute(sa.text("SELECT count(*) FROM gadget")).scalar()
    assert stored == 0


@pytest.mark.parametrize("count", ["1" + "0" * 20, "1" + "0" * 20 + ".0", "1e20"])
def test_a_whole_number_past_64_bits_is_told_to_be_out_of_range_as_the_api_tells_it(
    browser: Browser, platform: Platform, count: str
) -> None:
    # Past 19 digits the form sent the number on as text, which the save
    # refused with "Enter a whole number." though it is one.
    _add_fields(platform, PIECES)
    browser.get("/app/gadget/new")

    response = _post(
        browser, "/app/gadget/new", [("title", "Countless"), ("pieces", count)]
    )

    assert response.status_code == 422, response.status_code
    assert "Enter a whole number between" in text_of(response.get_data(as_text=True))


def test_a_whole_number_behind_thousands_of_zeros_is_the_number_it_writes(
    browser: Browser, platform: Platform
) -> None:
    # Python's int counts leading zeros toward its limit on digits: read as
    # written, 5,000 zeros and a 5 gave a 500.
    _add_fields(platform, PIECES)
    browser.get("/app/gadget/new")

    response = _post(
        browser, "/app/gadget/new", [("title", "Padded"), ("pieces", "0" * 5000 + "5")]
    )

    assert response.status_code == 303, response.status_code
    gadget_id = _saved_id(response)
    assert fetch(platform, "gadget", gadget_id)["pieces"] == 5
