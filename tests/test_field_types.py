"""Every field type makes the round trip through the API, and bad values are refused."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tailorcrm.metadata import _fields
from tailorcrm.renderer import STATIC_DIR
from tests.conftest import Api

EVERYTHING = {
    "name": "sample",
    "label": "Sample",
    "display_field": "text_value",
    "fields": [
        {"name": "text_value", "type": "text", "label": "Text", "max_length": 5},
        {"name": "long_text", "type": "textarea", "label": "Notes"},
        {"name": "whole", "type": "integer", "label": "Whole", "min": -5, "max": 10},
        {
            "name": "ratio",
            "type": "decimal",
            "label": "Ratio",
            "precision": 6,
            "scale": 3,
        },
        {"name": "price", "type": "currency", "label": "Price"},
        {"name": "share", "type": "percent", "label": "Share", "max": 100},
        {"name": "flag", "type": "boolean", "label": "Flag"},
        {"name": "due_on", "type": "date", "label": "Due on"},
        {"name": "moment", "type": "datetime", "label": "Moment"},
        {"name": "mail", "type": "email", "label": "Mail"},
        {"name": "phone_number", "type": "phone", "label": "Phone"},
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
            "options": [
                {"value": "new", "label": "New"},
                {"value": "vip", "label": "VIP"},
            ],
        },
        {"name": "parent", "type": "lookup", "target": "sample", "label": "Parent"},
        {
            "name": "number",
            "type": "autonumber",
            "label": "Number",
            "prefix": "S-",
            "digits": 4,
        },
    ],
}

GOOD = {
    "text_value": "Zoë",
    "long_text": "line one\nline two — ünïcode ✓",
    "whole": -5,
    "ratio": 123.456,
    "price": 999999999999.99,
    "share": 12.5,
    "flag": False,
    "due_on": "2024-02-29",
    "moment": "2026-03-01T10:15:30+02:00",
    "mail": "zoe.example@example.org",
    "phone_number": "+44 20 7946 0000",
    "site": "https://example.org/a?b=c",
    "colour": "blue",
    "tags": ["vip", "new"],
}


@pytest.fixture
def samples(api: Api) -> Api:
    response = api.put("/meta/entities/sample", json=EVERYTHING)
    assert response.status_code == 201, response.json
    return api


def test_every_type_round_trips(samples: Api) -> None:
    created = samples.post("/sample", json=GOOD)

    assert created.status_code == 201, created.json
    fetched = json.loads(samples.get(f"/sample/{created.json['id']}").get_data())
    expected = {**GOOD, "moment": "2026-03-01T08:15:30Z"}
    assert {key: fetched[key] for key in GOOD} == expected
    assert fetched["number"] == "S-0001"
    assert fetched["parent"] is None
    assert fetched["version"] == 1


def test_values_come_back_as_json_types(samples: Api) -> None:
    created = samples.post("/sample", json=GOOD)

    raw = created.get_data(as_text=True)
    assert '"price":999999999999.99' in raw
    assert '"ratio":123.456' in raw
    assert '"flag":false' in raw


def test_lookup_and_autonumber_sequence(samples: Api) -> None:
    first = samples.post("/sample", json={"text_value": "a"}).json
    second = samples.post("/sample", json={"text_value": "b", "parent": first["id"]})

    assert second.status_code == 201
    assert second.json["parent"] == first["id"]
    assert second.json["number"] == "S-0002"


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("text_value", "toolong", "too_long"),
        ("text_value", 5, "invalid_text"),
        ("whole", 11, "too_large"),
        ("whole", -6, "too_small"),
        ("whole", "3", "invalid_integer"),
        ("whole", True, "invalid_integer"),
        ("whole", 1.5, "invalid_integer"),
        ("ratio", 1.2345, "too_many_decimals"),
        ("ratio", 1000, "out_of_range"),
        ("ratio", "1,2,3", "invalid_decimal"),
        ("price", 1e20, "out_of_range"),
        ("share", 100.01, "too_large"),
        ("flag", "no", "invalid_boolean"),
        ("flag", 0, "invalid_boolean"),
        ("due_on", "2023-02-29", "invalid_date"),
        ("due_on", "29/02/2024", "invalid_date"),
        ("moment", "2026-13-01T00:00:00Z", "invalid_datetime"),
        ("moment", "yesterday", "invalid_datetime"),
        ("moment", "2024-05-31T10:00:00+00:60", "invalid_datetime"),
        ("moment", "2024-05-31T10:00:00-05:99", "invalid_datetime"),
        ("moment", "2024-05-31T10:00-0075", "invalid_datetime"),
        ("moment", "2030-01-01T00:00:00.0000001Z", "invalid_datetime"),
        ("moment", "2024-05-31T10:00:00,5Z", "invalid_datetime"),
        ("moment", "2024-05-31T10:00:00+02:00:30", "invalid_datetime"),
        ("moment", "2024-05-31T10:00:00.Z", "invalid_datetime"),
        ("mail", "not-an-address", "invalid_email"),
        ("phone_number", "call me", "invalid_phone"),
        ("site", "javascript:alert(1)", "invalid_url"),
        ("colour", "green", "invalid_choice"),
        ("colour", "Blue", "invalid_choice"),
        ("tags", "vip", "invalid_choice"),
        ("tags", ["vip", "vip"], "duplicate_choice"),
        ("tags", ["gold"], "invalid_choice"),
        ("parent", 999, "not_found"),
        ("parent", "1", "invalid_reference"),
        ("number", "S-9999", "read_only"),
        ("id", 5, "read_only"),
        ("nonsense", 1, "unknown_field"),
    ],
)
def test_bad_values_are_refused(
    samples: Api, field: str, value: Any, code: str
) -> None:
    response = samples.post("/sample", json={field: value})

    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert [(e["field"], e["code"]) for e in response.json["errors"]] == [(field, code)]
    assert samples.get("/sample?count=1").json["count"] == 0


@pytest.mark.parametrize(
    ("written", "stored"), [("7.0", 7), ("1e1", 10), ("-5.00", -5)]
)
def test_a_whole_number_written_with_a_point_or_exponent_fills_an_integer(
    samples: Api, written: str, stored: int
) -> None:
    response = samples.post(
        "/sample",
        data=f'{{"text_value": "a", "whole": {written}}}',
        content_type="application/json",
    )

    assert response.status_code == 201, response.json
    assert response.json["whole"] == stored


def test_a_whole_number_past_64_bits_written_with_an_exponent_is_out_of_range(
    samples: Api,
) -> None:
    response = samples.post(
        "/sample", data='{"whole": 1e20}', content_type="application/json"
    )

    assert response.status_code == 422
    assert [(e["field"], e["code"]) for e in response.json["errors"]] == [
        ("whole", "out_of_range")
    ]


@pytest.mark.parametrize(
    ("phone", "taken"),
    [
        ("(503) 555-9831", True),
        ("(5) 555-4729", True),
        ("+1 (503) 555-9831", True),
        ("+(44) 20 7946 0000", True),
        ("030-0074321 ext. 12", True),
        ("(", False),
        ("()", False),
        ("((503) 555", False),
        ("(call) 555", False),
    ],
)
def test_a_phone_number_may_open_with_its_area_code_in_brackets(
    samples: Api, phone: str, taken: bool
) -> None:
    """'(503) 555-9831', as address books and spreadsheets write it, was refused
    as no phone number on every path."""
    response = samples.post("/sample", json={"phone_number": phone})

    assert response.status_code == (201 if taken else 422), response.json


def test_forms_check_a_phone_number_as_the_record_service_does() -> None:
    """The script writes the service's pattern with its own class of spaces
    (SPACE) where the service has ``\\s``; that class holds exactly the
    characters Python's ``\\s`` matches."""
    script = (STATIC_DIR / "field_state.js").read_text(encoding="utf-8")
    written = re.search(r'phone: new RegExp\("(.*)", "i"\)', script)
    spaces = re.search(r'var SPACE = "(.*)";', script)

    assert written is not None and spaces is not None
    pattern = written.group(1).replace('" + SPACE + "', "\\s").replace("\\\\", "\\")
    assert pattern == _fields._PHONE.pattern
    # The JavaScript string's escapes (\\t, \\x1c, \\u1680) read as Python's do.
    space_class = re.compile(spaces.group(1).encode().decode("unicode_escape"))
    characters = [chr(code) for code in range(0x3100)] + ["\ufeff"]
    assert [c for c in characters if space_class.fullmatch(c)] == [
        c for c in characters if re.fullmatch(r"\s", c)
    ]


def test_one_line_text_is_kept_without_the_spaces_around_it(samples: Api) -> None:
    """As forms and imports read it; long text keeps what it is given."""
    body = {
        "text_value": "  Zoë\t",
        "long_text": "  indented\n",
        "mail": " desk@example.org ",
        "site": " https://example.org/a ",
    }
    created = samples.post("/sample", json=body)

    assert created.status_code == 201, created.json
    assert created.json["text_value"] == "Zoë"
    assert created.json["long_text"] == "  indented\n"
    assert created.json["mail"] == "desk@example.org"
    assert created.json["site"] == "https://example.org/a"
    found = samples.get("/sample", query_string={"text_value": "Zoë", "count": "1"})
    assert found.json["count"] == 1


def test_dates_and_date_times_are_read_without_the_spaces_around_them(
    samples: Api,
) -> None:
    """As a form and an import read them: a date was refused where a date and time
    with the same spaces was taken."""
    body = {"due_on": " 2024-05-01\n", "moment": "\t2024-05-01T10:00:00Z "}
    created = samples.post("/sample", json=body)

    assert created.status_code == 201, created.json
    assert (created.json["due_on"], created.json["moment"]) == (
        "2024-05-01",
        "2024-05-01T10:00:00Z",
    )
    found = samples.get("/sample", query_string={"due_on": " 2024-05-01 ", "count": 1})
    assert found.json["count"] == 1
    blank = samples.post("/sample", json={"due_on": "  "})
    assert [e["code"] for e in blank.json["errors"]] == ["invalid_date"]


def test_a_date_time_keeps_its_microseconds_and_refuses_more_digits(
    samples: Api,
) -> None:
    """More than six decimals of a second were cut without a word (an import
    refuses them): 0.0000001 s was stored as the whole second."""
    kept = samples.post("/sample", json={"moment": "2030-01-01T00:00:00.123456Z"})
    refused = samples.post("/sample", json={"moment": "2030-01-01T00:00:00.0000001Z"})

    assert kept.status_code == 201, kept.json
    assert kept.json["moment"] == "2030-01-01T00:00:00.123456Z"
    assert refused.status_code == 422
    assert refused.json["errors"] == [
        {
            "field": "moment",
            "code": "invalid_datetime",
            "message": "Enter at most 6 decimals of a second (microseconds); this "
            "value has 7.",
        }
    ]
    assert samples.get("/sample?count=1").json["count"] == 1


def test_offsets_are_read_to_the_minute(samples: Api) -> None:
    created = samples.post("/sample", json={"moment": "2024-05-31T10:00:00+05:45"})

    assert created.status_code == 201, created.json
    assert created.json["moment"].startswith("2024-05-31T04:15:00")


def test_lengths_count_characters_not_bytes(samples: Api) -> None:
    response = samples.post("/sample", json={"text_value": "ééééé"})

    assert response.status_code == 201
    assert response.json["text_value"] == "ééééé"


def test_all_field_errors_come_together(samples: Api) -> None:
    response = samples.post(
        "/sample", json={"whole": 99, "colour": "green", "due_on": "x", "bogus": 1}
    )

    assert response.status_code == 422
    assert {e["field"] for e in response.json["errors"]} == {
        "whole",
        "colour",
        "due_on",
        "bogus",
    }
