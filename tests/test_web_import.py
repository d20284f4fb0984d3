"""The CSV import page: upload, map columns, check, import, and its safeguards."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from werkzeug.test import TestResponse

from tailorcrm.platform import Platform
from tailorcrm.platform.auth import create_user
from tailorcrm.platform.records import SYSTEM_ACTOR
from tailorcrm.platform.web import _import

from .conftest import SALES_PACK, grant_all
from .permissions_support import sign_in_as
from .web_helpers import PASSWORD, Browser, elements, sign_in, text_of

DEALS = (
    "Title,Amount,Stage,ERP order number,Notes\n"
    "Anvils for Acme,1200.50,Proposal,E-1,call Monday\n"
    "Rockets,99,won,E-2,\n"
)


@pytest.fixture
def browser(app: Flask, sales: Platform, tmp_path: Path) -> Browser:
    app.config["IMPORT_FOLDER"] = str(tmp_path / "uploads")
    return sign_in(app, sales, "ada.admin")


def _upload(
    browser: Browser, text: str, *, name: str = "deals.csv", csrf: bool = True
) -> TestResponse:
    data: dict[str, Any] = {"file": (io.BytesIO(text.encode("utf-8")), name)}
    if csrf:
        browser.get("/app/opportunity/import")
        data["csrf_token"] = browser.token
    return browser.client.post(
        "/app/opportunity/import", data=data, content_type="multipart/form-data"
    )


def _selected(page: str) -> dict[str, str]:
    """The field chosen for each column: ``{select name: value}``."""
    found: dict[str, str] = {}
    current = ""
    for element in elements(page):
        if element.tag == "select" and element["name"].startswith("map_"):
            current = element["name"]
            found[current] = ""
        elif element.tag == "option" and current and "selected" in element.attrs:
            found[current] = element["value"]
        elif element.tag == "select":
            current = ""
    return found


def _titles(platform: Platform) -> list[tuple[str, Any]]:
    with platform.reading() as (connection, _):
        rows = connection.execute(
            sa.text("SELECT title, amount FROM opportunity ORDER BY title")
        ).all()
    return [(title, amount) for title, amount in rows]


def _counts(response: TestResponse) -> dict[str, str]:
    """The counts of an import summary: ``{label: number}``."""
    found = elements(response.get_data(as_text=True))
    return {
        term.text.strip(): value.text.strip()
        for term, value in zip(found, found[1:], strict=False)
        if term.tag == "dt" and value.tag == "dd"
    }


def _mapping(**chosen: str) -> dict[str, str]:
    return {f"map_{index}": field for index, field in chosen.items()}


def test_upload_shows_the_columns_matched_to_fields(browser: Browser) -> None:
    uploaded = _upload(browser, DEALS)
    page = browser.get(uploaded.headers["Location"]).get_data(as_text=True)

    assert uploaded.status_code == 303
    assert _selected(page) == {
        "map_0": "title",
        "map_1": "amount",
        "map_2": "stage",
        "map_3": "erp_code",
        "map_4": "",
    }
    assert "Anvils for Acme" in text_of(page)
    assert "deals.csv" in text_of(page)


def test_import_creates_the_records_and_removes_the_upload(
    browser: Browser, sales: Platform, tmp_path: Path
) -> None:
    address = _upload(browser, DEALS).headers["Location"]
    browser.get(address)

    done = browser.post(
        address,
        {"action": "import", **_mapping(**{"0": "title", "1": "amount", "2": "stage"})},
    )

    assert done.status_code == 200
    assert "Imported 2 of 2 rows" in text_of(done.get_data(as_text=True))
    assert "deals.csv" in text_of(done.get_data(as_text=True))
    assert [title for title, _ in _titles(sales)] == ["Anvils for Acme", "Rockets"]
    # Only an empty mark is left, for this browser and a second tab to learn the
    # file was imported.
    assert [
        (path.suffix, path.stat().st_size) for path in (tmp_path / "uploads").iterdir()
    ] == [(".imported", 0)]
    assert browser.get(address).status_code == 409


def test_a_dry_run_counts_and_saves_nothing(browser: Browser, sales: Platform) -> None:
    address = _upload(browser, DEALS).headers["Location"]
    browser.get(address)

    checked = browser.post(
        address, {"action": "check", **_mapping(**{"0": "title", "1": "amount"})}
    )

    text = text_of(checked.get_data(as_text=True))
    assert checked.status_code == 200
    assert "The check found no problems" in text
    assert _counts(checked)["Would be created"] == "2"
    assert "This was a check: nothing was saved." in text
    assert _titles(sales) == []
    assert browser.get(address).status_code == 200


def test_row_errors_name_the_row_the_field_and_the_problem(
    browser: Browser, sales: Platform
) -> None:
    bad = DEALS + "Broken,lots,Proposal,E-3,\n,5,Proposal,E-4,\n"
    address = _upload(browser, bad).headers["Location"]
    browser.get(address)
    mapping = _mapping(**{"0": "title", "1": "amount", "2": "stage"})

    refused = browser.post(address, {"action": "import", **mapping})
    skipped = browser.post(
        address, {"action": "import", "skip_bad_rows": "on", **mapping}
    )

    page = refused.get_data(as_text=True)
    cells = [e.text.strip() for e in elements(page) if e.tag == "td"]
    assert refused.status_code == 200
    assert "Nothing was imported: 2 of 4 rows have problems" in text_of(page)
    assert cells[:2] == ["4", "Amount"]
    assert cells[2].startswith("'lots' is not a number")
    assert cells[3:5] == ["5", "Title"]
    assert skipped.status_code == 200
    assert "Imported 2 of 4 rows" in text_of(skipped.get_data(as_text=True))
    assert [title for title, _ in _titles(sales)] == ["Anvils for Acme", "Rockets"]


def test_a_changed_mapping_decides_what_is_imported(
    browser: Browser, sales: Platform
) -> None:
    text = "Deal name,Amount,Next step\nAnvils,10,Call\n"
    address = _upload(browser, text).headers["Location"]
    page = browser.get(address).get_data(as_text=True)

    done = browser.post(
        address, {"action": "import", "map_0": "title", "map_1": "", "map_2": ""}
    )

    assert _selected(page) == {"map_0": "", "map_1": "amount", "map_2": "next_step"}
    assert done.status_code == 200
    with sales.reading() as (connection, _):
        row = connection.execute(
            sa.text("SELECT title, amount, next_step FROM opportunity")
        ).one()
    assert tuple(row) == ("Anvils", None, None)


def test_a_column_without_a_name_is_imported_from_the_column_chosen(
    browser: Browser, sales: Platform
) -> None:
    # Two columns have no name: the one picked on the page is the one read.
    text = "Title,,Amount,\nAnvils,Call Monday,10,Write Friday\n"
    address = _upload(browser, text).headers["Location"]
    browser.get(address)

    done = browser.post(
        address, {"action": "import", "map_0": "title", "map_1": "next_step"}
    )

    assert done.status_code == 200
    with sales.reading() as (connection, _):
        row = connection.execute(
            sa.text("SELECT title, amount, next_step FROM opportunity")
        ).one()
    assert tuple(row) == ("Anvils", None, "Call Monday")


def test_the_mapping_is_checked_before_the_import_runs(browser: Browser) -> None:
    address = _upload(browser, DEALS).headers["Location"]
    browser.get(address)

    twice = browser.post(
        address, {"action": "import", "map_0": "title", "map_3": "title"}
    )
    none = browser.post(address, {"action": "check"})
    key = browser.post(
        address, {"action": "import", "map_0": "title", "key": "erp_code"}
    )
    unknown = browser.post(address, {"action": "import", "map_0": "no_such_field"})

    assert twice.status_code == 422
    assert "Title is chosen for more than one column; keep one." in text_of(
        twice.get_data(as_text=True)
    )
    assert "Choose a field for at least one column." in text_of(
        none.get_data(as_text=True)
    )
    assert (
        "Choose the column that holds ERP order number to update records by it."
        in text_of(key.get_data(as_text=True))
    )
    assert "has no field 'no_such_field'" in text_of(unknown.get_data(as_text=True))


def test_a_key_updates_the_records_that_have_it(
    browser: Browser, sales: Platform
) -> None:
    with sales.records(SYSTEM_ACTOR) as service:
        service.create("opportunity", {"title": "Old name", "erp_code": "E-1"})
    address = _upload(browser, DEALS).headers["Location"]
    page = browser.get(address).get_data(as_text=True)

    done = browser.post(
        address,
        {
            "action": "import",
            "key": "erp_code",
            **_mapping(**{"0": "title", "1": "amount", "3": "erp_code"}),
        },
    )

    assert "Update the record with the same ERP order number" in text_of(page)
    assert _counts(done) == {
        "Rows read": "2",
        "Created": "1",
        "Updated": "1",
        "Skipped": "0",
    }
    assert [title for title, _ in _titles(sales)] == ["Anvils for Acme", "Rockets"]


def _probabilities(platform: Platform) -> dict[str, Any]:
    with platform.reading() as (connection, _):
        rows = connection.execute(sa.text("SELECT title, probability FROM opportunity"))
        return {title: None if p is None else int(p) for title, p in rows}


def _won_probability(platform: Platform) -> None:
    """Install the sales pack's automation that makes a won deal's probability
    100%."""
    path = SALES_PACK / "rules" / "won_probability.json"
    platform.store.apply([(path.name, json.loads(path.read_text()))], actor="test")


def test_an_admin_may_import_without_running_automations(
    browser: Browser, sales: Platform
) -> None:
    _won_probability(sales)
    address = _upload(browser, DEALS).headers["Location"]
    page = browser.get(address).get_data(as_text=True)

    done = browser.post(
        address,
        {
            "action": "import",
            "bypass_automation": "on",
            **_mapping(**{"0": "title", "1": "amount", "2": "stage"}),
        },
    )

    assert "Run no automations" in text_of(page)
    assert done.status_code == 200
    assert _probabilities(sales) == {"Anvils for Acme": None, "Rockets": None}


def test_only_admins_may_import_without_running_automations(
    app: Flask, browser: Browser, sales: Platform
) -> None:
    _won_probability(sales)
    with sales.engine.begin() as connection:
        create_user(connection, "kim.clerk", PASSWORD)
    grant_all(sales, "kim.clerk")
    clerk = sign_in_as(app, sales, "kim.clerk")
    address = _upload(clerk, DEALS).headers["Location"]
    page = clerk.get(address).get_data(as_text=True)
    mapping = _mapping(**{"0": "title", "1": "amount", "2": "stage"})

    refused = clerk.post(
        address, {"action": "import", "bypass_automation": "on", **mapping}
    )
    done = clerk.post(address, {"action": "import", **mapping})

    assert "Run no automations" not in text_of(page)
    assert refused.status_code == 403
    assert done.status_code == 200
    assert _probabilities(sales) == {"Anvils for Acme": None, "Rockets": 100}


@pytest.mark.parametrize("box", ["bypass_automation", "skip_bad_rows"])
def test_a_box_sent_with_other_text_than_a_browser_sends_is_refused(
    browser: Browser, sales: Platform, box: str
) -> None:
    # A script's "true" read as an unticked box would run the automations it
    # meant to bypass, or refuse the file it meant to load in part.
    _won_probability(sales)
    address = _upload(browser, DEALS).headers["Location"]
    mapping = _mapping(**{"0": "title", "1": "amount", "2": "stage"})

    refused = browser.post(address, {"action": "import", box: "true", **mapping})

    assert refused.status_code == 400
    assert (
        f"{box}: a ticked box sends 'on', an unticked one nothing; 'true' is "
        "neither. Nothing was imported."
    ) in text_of(refused.get_data(as_text=True))
    assert _probabilities(sales) == {}


def _second_tab(app: Flask, browser: Browser) -> Browser:
    """Another tab of the same browser: the session as it is now, kept apart."""
    name = app.config["SESSION_COOKIE_NAME"]
    cookie = browser.client.get_cookie(name)
    assert cookie is not None
    client = app.test_client()
    client.set_cookie(name, cookie.value)
    tab = Browser(client, browser.platform)
    tab.token = browser.token
    return tab


def test_an_upload_is_imported_once_however_often_it_is_sent(
    app: Flask, browser: Browser, sales: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    address = _upload(browser, DEALS).headers["Location"]
    browser.get(address)
    tab = _second_tab(app, browser)
    form = {"action": "import", **_mapping(**{"0": "title", "1": "amount"})}
    started, go_on = threading.Event(), threading.Event()
    importing = _import.import_csv

    def held(*args: Any, **kwargs: Any) -> Any:
        started.set()
        go_on.wait(30)
        return importing(*args, **kwargs)

    monkeypatch.setattr(_import, "import_csv", held)
    answers: list[TestResponse] = []
    first = threading.Thread(target=lambda: answers.append(browser.post(address, form)))

    first.start()
    assert started.wait(30)
    during = tab.post(address, form)
    go_on.set()
    first.join(30)
    after = tab.post(address, form)
    shown = tab.get(address)

    assert [answer.status_code for answer in answers] == [200]
    assert "Imported 2 of 2 rows" in text_of(answers[0].get_data(as_text=True))
    assert during.status_code == 409
    assert "This file is being imported" in text_of(during.get_data(as_text=True))
    assert after.status_code == 409
    assert "Nothing was imported This file was already imported" in text_of(
        after.get_data(as_text=True)
    )
    assert shown.status_code == 409
    assert [title for title, _ in _titles(sales)] == ["Anvils for Acme", "Rockets"]


def test_sending_the_import_form_again_from_the_same_browser_says_it_was_imported(
    browser: Browser, sales: Platform
) -> None:
    address = _upload(browser, DEALS).headers["Location"]
    browser.get(address)
    form = {"action": "import", **_mapping(**{"0": "title", "1": "amount"})}

    first = browser.post(address, form)
    again = browser.post(address, form)

    assert first.status_code == 200
    assert again.status_code == 409
    assert "This file was already imported" in text_of(again.get_data(as_text=True))
    assert [title for title, _ in _titles(sales)] == ["Anvils for Acme", "Rockets"]


def test_an_import_that_saves_nothing_gives_the_file_back(
    browser: Browser, sales: Platform, tmp_path: Path
) -> None:
    address = _upload(browser, DEALS + "Broken,lots,,,\n").headers["Location"]
    browser.get(address)
    form = {"action": "import", **_mapping(**{"0": "title", "1": "amount"})}

    refused = browser.post(address, form)
    again = browser.post(address, {**form, "skip_bad_rows": "on"})

    assert "Nothing was imported: 1 of 3 rows have problems" in text_of(
        refused.get_data(as_text=True)
    )
    assert "Imported 2 of 3 rows" in text_of(again.get_data(as_text=True))
    assert [path.suffix for path in (tmp_path / "uploads").iterdir()] == [".imported"]


def test_the_mapping_form_is_sent_once_by_its_script(browser: Browser) -> None:
    address = _upload(browser, DEALS).headers["Location"]

    page = browser.get(address).get_data(as_text=True)

    form = next(
        e
        for e in elements(page)
        if e.tag == "form" and "data-import-mapping" in e.attrs
    )
    assert "data-submit-once" in form.attrs
    assert any(
        e.tag == "script" and e["src"].endswith("list.js") for e in elements(page)
    )


def test_uploads_need_the_csrf_token(browser: Browser, tmp_path: Path) -> None:
    response = _upload(browser, DEALS, csrf=False)

    assert response.status_code == 400
    assert not (tmp_path / "uploads").exists() or not any(
        (tmp_path / "uploads").iterdir()
    )


def test_an_upload_belongs_to_the_session_that_made_it(
    app: Flask, browser: Browser, sales: Platform
) -> None:
    address = _upload(browser, DEALS).headers["Location"]
    stranger = sign_in(app, sales, "sam.other")
    token = address.rsplit("/", 1)[1]

    seen = stranger.get(address)
    posted = stranger.post(address, {"action": "import", "map_0": "title"})
    traversal = browser.get("/app/opportunity/import/..%2F..%2Fetc%2Fpasswd")
    other_entity = browser.get(f"/app/account/import/{token}")

    assert (seen.status_code, posted.status_code) == (404, 404)
    assert traversal.status_code == 404
    assert other_entity.status_code == 404
    assert _titles(sales) == []


def test_files_that_cannot_be_imported_are_refused_at_upload(
    browser: Browser, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(_import, "MAX_UPLOAD_BYTES", 100)

    too_big = _upload(browser, DEALS + "x" * 200)
    empty = _upload(browser, "")
    repeated = _upload(browser, "Title,title\nA,B\n")
    missing = browser.post("/app/opportunity/import", {})

    assert too_big.status_code == 422
    assert "The file is larger than 0 MB" in text_of(too_big.get_data(as_text=True))
    assert "The file is empty" in text_of(empty.get_data(as_text=True))
    assert "more than once" in text_of(repeated.get_data(as_text=True))
    assert "Choose a CSV file to upload." in text_of(missing.get_data(as_text=True))
    assert list((tmp_path / "uploads").iterdir()) == []


def test_a_file_with_more_columns_than_an_entity_has_fields_is_refused(
    browser: Browser, tmp_path: Path
) -> None:
    wide = ",".join(f"c{number}" for number in range(50_000))
    widest = ",".join(f"c{number}" for number in range(_import.MAX_COLUMNS))

    refused = _upload(browser, f"{wide}\n{'x,' * 49_999}x\n")
    leftover = list((tmp_path / "uploads").iterdir())
    taken = _upload(browser, f"{widest}\n")

    assert refused.status_code == 422
    assert "The file has 50,000 columns; an import takes at most 500" in text_of(
        refused.get_data(as_text=True)
    )
    assert len(refused.get_data()) < 100_000
    assert leftover == []
    assert taken.status_code == 303


def test_discarding_an_upload_removes_it(browser: Browser, tmp_path: Path) -> None:
    address = _upload(browser, DEALS).headers["Location"]
    browser.get(address)

    discarded = browser.post(address, {"action": "discard"})

    assert discarded.status_code == 303
    assert list((tmp_path / "uploads").iterdir()) == []
    assert browser.get(address).status_code == 404


def test_imported_text_is_escaped_on_the_page(browser: Browser) -> None:
    text = "<b>Title</b>,Amount\n<script>alert(1)</script>,5\n"

    address = _upload(browser, text, name="<i>.csv").headers["Location"]
    page = browser.get(address).get_data(as_text=True)

    assert "<script>alert(1)" not in page
    assert "<b>Title" not in page and "<i>.csv" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_a_computed_column_is_left_out_as_the_command_line_does(
    browser: Browser, sales: Platform
) -> None:
    rule = json.loads((SALES_PACK / "rules" / "weighted_amount.json").read_text())
    sales.store.apply([("weighted_amount.json", rule)], actor="test")
    text = "Title,Amount,Weighted amount\nBolts,100,5\n"

    address = _upload(browser, text).headers["Location"]
    page = browser.get(address).get_data(as_text=True)
    done = browser.post(address, {"action": "import", **_selected(page)})

    offered = {e["value"] for e in elements(page) if e.tag == "option"}
    assert _selected(page) == {"map_0": "title", "map_1": "amount", "map_2": ""}
    assert "weighted_amount" not in offered
    assert done.status_code == 200
    assert _titles(sales) == [("Bolts", 100)]


def test_a_problem_on_a_record_an_automation_saves_names_its_field_by_label(
    browser: Browser, sales: Platform
) -> None:
    rule = {
        "kind": "rule",
        "name": "deal_call",
        "entity": "opportunity",
        "type": "automation",
        "label": "A new deal gets a call",
        "trigger": "create",
        "actions": [
            {
                "type": "create_record",
                "entity": "activity",
                "values": {"subject": {"cat": ["Call about ", {"var": "title"}]}},
            }
        ],
    }
    sales.store.apply([("deal_call.json", rule)], actor="test")
    text = "Title\n" + "T" * 195 + "\n"

    address = _upload(browser, text).headers["Location"]
    browser.get(address)
    checked = browser.post(address, {"action": "check", **_mapping(**{"0": "title"})})

    cells = [
        e.text.strip()
        for e in elements(checked.get_data(as_text=True))
        if e.tag == "td"
    ]
    assert cells[:2] == ["2", "Activity · Subject"]
    assert "could not save Activity" in cells[2]
