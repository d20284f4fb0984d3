"""The filter builder in the browser: each type's value input takes what its
filter compares, and the list, its chips and a view saved from it agree."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import Page, expect

from tailorcrm.platform.records import SYSTEM_ACTOR

from .conftest import LiveServer


def _create(live_server: LiveServer, entity: str, **values: Any) -> int:
    with live_server.platform.records(SYSTEM_ACTOR) as service:
        return int(service.create(entity, values)["id"])


def _choose_filter(page: Page, field: str, op: str) -> None:
    page.locator("details.filter-builder > summary").click()
    page.locator("#add_field").select_option(field)
    page.locator("#add_op").select_option(op)


def _twins(
    page: Page, live_server: LiveServer, title: str, subjects: tuple[str, str]
) -> tuple[int, int]:
    """Two opportunities of one title, each with an activity of its own; the
    activities' list open with its filter builder on the opportunity."""
    ids = tuple(_create(live_server, "opportunity", title=title) for _ in subjects)
    for subject, record_id in zip(subjects, ids, strict=True):
        _create(live_server, "activity", subject=subject, opportunity=record_id)
    page.goto("/app/activity")
    _choose_filter(page, "opportunity", "eq")
    return ids[0], ids[1]


def _two_offered(page: Page, typed: str) -> list[str]:
    """Type ``typed`` in the filter builder's value box; once it offers two
    records, what it offers."""
    page.locator("#add_value").press_sequentially(typed, delay=10)
    options = page.locator("#add_value-options option")
    expect(options).to_have_count(2)
    return [str(option.get_attribute("value")) for option in options.all()]


def _filtered_by(page: Page, opportunity: int, subjects: list[str]) -> None:
    """The activities' list shows what the opportunity filter picked."""
    url = re.compile(rf"/app/activity\?opportunity__eq={opportunity}$")
    expect(page).to_have_url(url)
    expect(page.locator("a.row-link")).to_have_text(subjects)


def _save_as_view(page: Page, label: str) -> None:
    page.locator("details.save-view > summary").click()
    page.locator("#view-label").fill(label)
    page.get_by_role("button", name="Save view").click()


def test_is_on_a_date_time_takes_seconds_and_finds_that_second(
    page: Page, live_server: LiveServer
) -> None:
    _create(
        live_server,
        "activity",
        subject="Inspect the Ostrava sluice",
        due_at="2031-04-17T09:41:27Z",
    )
    _create(
        live_server,
        "activity",
        subject="Ring the Ostrava lock keeper",
        due_at="2031-04-17T09:41:00Z",
    )
    page.goto("/app/activity")

    _choose_filter(page, "due_at", "eq")
    page.locator("#add_value").fill("2031-04-17T09:41:27")
    page.locator(".filter-submit button").click()

    rows = page.locator("a.row-link")
    chip = page.locator("li.chip")
    expect(page).to_have_url(
        re.compile(r"/app/activity\?due_at__eq=2031-04-17T09%3A41%3A27$")
    )
    expect(rows).to_have_text(["Inspect the Ostrava sluice"])
    expect(chip).to_contain_text("Due is on Apr 17, 2031, 9:41:27")

    _save_as_view(page, "Sluice inspection")

    expect(page.locator("#view-select option:checked")).to_have_text(
        "Sluice inspection"
    )
    expect(rows).to_have_text(["Inspect the Ostrava sluice"])
    expect(chip).to_contain_text("Due is on Apr 17, 2031, 9:41:27")


def test_a_multi_picklist_filter_from_the_builder_is_saved_as_a_view(
    page: Page, live_server: LiveServer
) -> None:
    for name, interests in [
        ("Quenby Marsh", ["training", "hardware"]),
        ("Quenby Stroud", ["software"]),
    ]:
        _create(
            live_server,
            "sales_lead",
            company="Quenby Freight",
            full_name=name,
            interests=interests,
        )
    page.goto("/app/sales_lead?full_name__contains=quenby")

    _choose_filter(page, "interests", "contains")
    page.locator("#add_value").select_option("training")
    page.locator(".filter-submit button").click()

    rows = page.locator("a.row-link")
    chips = page.locator("li.chip")
    expect(rows).to_have_text(["Quenby Marsh"])
    expect(chips.nth(1)).to_contain_text("Interests has Training")

    _save_as_view(page, "Quenby training")

    expect(page.locator("#view-select option:checked")).to_have_text("Quenby training")
    expect(page.locator(".error-summary")).to_have_count(0)
    expect(rows).to_have_text(["Quenby Marsh"])
    expect(chips.nth(1)).to_contain_text("Interests has Training")


def test_a_refused_filter_takes_focus_and_describes_the_value_at_fault(
    page: Page,
) -> None:
    page.goto("/app/opportunity")

    _choose_filter(page, "amount", "gt")
    page.locator("#add_value").fill("12,5")
    page.locator(".filter-submit button").click()

    error = page.locator("#filter-error")
    expect(error).to_have_text("Amount: '12,5' is not a number.")
    expect(error).to_be_focused()
    value = page.get_by_label("Value")
    expect(value).to_have_value("12,5")
    expect(value).to_have_attribute("aria-invalid", "true")
    expect(value).to_have_attribute("aria-describedby", "filter-error")
    for control in (
        page.get_by_label("Field", exact=True),
        page.get_by_label("Condition"),
    ):
        expect(control).not_to_have_attribute("aria-invalid", "true")
        expect(control).not_to_have_attribute("aria-describedby", "filter-error")
    # From the message, the next key leads on to the builder's controls.
    page.keyboard.press("Tab")
    expect(page.get_by_label("Field", exact=True)).to_be_focused()


def test_a_chip_shows_the_decimals_its_filter_compares_with(page: Page) -> None:
    # Probability keeps 2 decimals; the filter compares with 3.
    page.goto("/app/opportunity?probability__lt=12.345&probability__gte=12.5")

    expect(page.locator("li.chip")).to_contain_text(
        ["Probability < 12.345%", "Probability ≥ 12.50%"]
    )


def test_text_that_reads_as_a_date_is_saved_as_a_view_of_the_same_rows(
    page: Page, live_server: LiveServer
) -> None:
    for title, next_step in [
        ("Harrowgate pump renewal", "2031-06-30"),
        ("Harrowgate valve upsell", "2031-06-30T00:00:00Z"),
    ]:
        _create(live_server, "opportunity", title=title, next_step=next_step)
    page.goto("/app/opportunity?title__startswith=harrowgate")

    _choose_filter(page, "next_step", "eq")
    page.locator("#add_value").fill("2031-06-30")
    page.locator(".filter-submit button").click()

    rows = page.locator("a.row-link")
    chips = page.locator("li.chip")
    expect(rows).to_have_text(["Harrowgate pump renewal"])
    expect(chips.nth(1)).to_contain_text("Next step is “2031-06-30”")

    _save_as_view(page, "Harrowgate by the end of June")

    expect(page.locator(".error-summary")).to_have_count(0)
    expect(page.locator("#view-select option:checked")).to_have_text(
        "Harrowgate by the end of June"
    )
    expect(rows).to_have_text(["Harrowgate pump renewal"])
    expect(chips.nth(1)).to_contain_text("Next step is “2031-06-30”")


def test_a_lookup_filter_tells_apart_records_of_the_same_name(
    page: Page, live_server: LiveServer
) -> None:
    # Both records were offered as the same name, which gave no id: the list
    # then asked to "choose one from the list", which could not be done.
    _, second = _twins(
        page,
        live_server,
        "Quay Works gantry hire",
        ("Price the gantry", "Book the gantry"),
    )
    offered = _two_offered(page, "Quay Works gantry")
    assert len(set(offered)) == 2
    page.locator("#add_value").fill(f"Quay Works gantry hire (#{second})")
    page.locator(".filter-submit button").click()

    _filtered_by(page, second, ["Book the gantry"])


def test_a_record_picked_by_its_number_stays_picked_while_the_user_reads(
    page: Page, live_server: LiveServer
) -> None:
    # Picking "Name (#40)" searched again for that text, which no record's name
    # holds: the empty answer dropped the record picked, and the filter then
    # said no record was named "Name (#40)".
    _, second = _twins(
        page,
        live_server,
        "Harbour Mill crane lease",
        ("Check the crane", "Sign the lease"),
    )
    _two_offered(page, "Harbour Mill crane")
    page.locator("#add_value").fill(f"Harbour Mill crane lease (#{second})")
    # Time for the search the box makes once typing stops, and its answer.
    page.wait_for_timeout(1000)
    page.locator(".filter-submit button").click()

    _filtered_by(page, second, ["Sign the lease"])


def test_records_named_as_a_property_of_every_object_are_told_apart(
    page: Page, live_server: LiveServer
) -> None:
    # The count of each name started from what every script object already has
    # by that name (a function), so two records named "constructor" were offered
    # as one name that picked the last of them.
    first, second = _twins(
        page, live_server, "constructor", ("Frame the quay", "Pour the slab")
    )
    assert set(_two_offered(page, "construct")) == {
        f"constructor (#{first})",
        f"constructor (#{second})",
    }


def test_a_refused_lookup_name_stays_in_the_box_to_be_mended(
    page: Page, live_server: LiveServer
) -> None:
    # The name typed was dropped from the box when the filter was refused: it
    # had to be typed again to be corrected, or to offer the records to pick.
    _create(live_server, "opportunity", title="Lantern Row refit")
    page.goto("/app/activity")

    _choose_filter(page, "opportunity", "eq")
    page.locator("#add_value").fill("Lantern Row refti")
    page.locator(".filter-submit button").click()

    value = page.get_by_label("Opportunity name")
    expect(page.locator("#filter-error")).to_have_text(
        "No Opportunity is named “Lantern Row refti”; check the spelling, or "
        "choose one from the list."
    )
    expect(value).to_have_value("Lantern Row refti")
    expect(value).to_have_attribute("aria-invalid", "true")


def test_is_one_of_tells_how_to_choose_several_values(page: Page) -> None:
    # The page without scripts said how; the list the script builds for "is
    # one of" said nothing, so a screen reader gave no hint that it takes more
    # than one value.
    page.goto("/app/opportunity")

    _choose_filter(page, "stage", "in")

    value = page.get_by_role("listbox", name="Value")
    expect(value).to_have_attribute("multiple", "")
    expect(value).to_have_accessible_description(
        "For “is one of”, choose several values (Ctrl or ⌘ and click)."
    )
