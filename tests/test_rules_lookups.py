"""What rules read through lookups on an update: a related record is loaded when a
rule that runs reads one of its fields, and not otherwise.

Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import sqlalchemy as sa

from tailorcrm.platform import Platform
from tailorcrm.platform.cascade import Cascade
from tailorcrm.platform.records import SYSTEM_ACTOR
from tests.conftest import Api
from tests.rules_support import (
    ACCOUNT,
    OPPORTUNITY,
    TASK,
    WON_TOTAL,
    create,
    define,
    problems,
    rule,
    saved_behind,
)
from tests.web_helpers import fetch

#: Reads the account's name, and the title, which changes on its own.
LABEL = rule(
    "label",
    "opportunity",
    "formula",
    field="next_step",
    expression={"cat": [{"var": "title"}, " for ", {"var": "account.name"}]},
)
#: Reads the account's industry on every save.
NO_ENERGY = rule(
    "no_energy",
    "opportunity",
    "validation",
    condition={"==": [{"var": "account.industry"}, "energy"]},
    message="Energy accounts are handled elsewhere.",
    field="account",
)
#: Reads the account whole: it is there or not.
WON_NEEDS_ACCOUNT = rule(
    "won_needs_account",
    "opportunity",
    "validation",
    condition={
        "and": [{"==": [{"var": "stage"}, "won"]}, {"is_blank": {"var": "account"}}]
    },
    message="A won opportunity belongs to an account.",
    field="account",
)


@pytest.fixture
def crm(api: Api) -> Api:
    define(api, ACCOUNT, OPPORTUNITY)
    return api


def statements(platform: Platform, save: Any, wanted: Any) -> list[str]:
    """The statements ``save`` runs that ``wanted`` picks by their text."""
    found: list[str] = []

    def seen(*args: Any) -> None:
        if wanted(args[2]):
            found.append(args[2])

    sa.event.listen(platform.engine, "before_cursor_execute", seen)
    try:
        save()
    finally:
        sa.event.remove(platform.engine, "before_cursor_execute", seen)
    return found


def account_reads(platform: Platform, save: Any) -> int:
    """How many statements ``save`` runs that read the account table."""
    return len(
        statements(
            platform,
            save,
            lambda sql: sql.lstrip().startswith("SELECT") and "FROM account" in sql,
        )
    )


def test_a_formula_that_runs_on_an_update_reads_the_related_record(
    crm: Api,
) -> None:
    define(crm, LABEL)
    account = create(crm, "account", name="Harbour Mill")
    deal = create(crm, "opportunity", title="Cranes", account=account["id"])

    changed = crm.patch(f"/opportunity/{deal['id']}", json={"title": "Gantries"})

    assert changed.json["next_step"] == "Gantries for Harbour Mill"


def test_a_validation_reads_the_related_record_on_every_update(crm: Api) -> None:
    define(crm, NO_ENERGY)
    account = create(crm, "account", name="Harbour Mill", industry="retail")
    deal = create(crm, "opportunity", title="Cranes", account=account["id"])
    crm.patch(f"/account/{account['id']}", json={"industry": "energy"})

    refused = crm.patch(f"/opportunity/{deal['id']}", json={"title": "Gantries"})

    assert refused.status_code == 422
    assert problems(refused) == [("account", "rule")]


def test_an_update_that_reads_no_related_field_does_not_load_the_record(
    platform: Platform, crm: Api
) -> None:
    define(crm, LABEL, WON_NEEDS_ACCOUNT)
    account = create(crm, "account", name="Harbour Mill")
    deal = create(crm, "opportunity", title="Cranes", account=account["id"])
    path = f"/opportunity/{deal['id']}"

    won = account_reads(platform, lambda: crm.patch(path, json={"stage": "won"}))
    crm.patch(path, json={"account": None, "stage": "lost"})
    refused = crm.patch(path, json={"stage": "won"})

    assert won == 0
    assert crm.get(path).json["next_step"] == "Cranes for"
    assert problems(refused) == [("account", "rule")]


def test_a_changed_lookup_to_no_record_reads_as_null(crm: Api) -> None:
    define(crm, LABEL, WON_NEEDS_ACCOUNT)
    account = create(crm, "account", name="Harbour Mill")
    deal = create(crm, "opportunity", title="Cranes", account=account["id"])

    refused = crm.patch(
        f"/opportunity/{deal['id']}", json={"account": 999_999, "stage": "won"}
    )

    assert sorted(problems(refused)) == [("account", "not_found"), ("account", "rule")]


def test_a_formula_followed_through_a_lookup_reads_the_record_as_committed(
    platform: Platform, crm: Api, database_url: str
) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite lets one writer in at a time")
    define(crm, LABEL)
    account = create(crm, "account", name="Harbour Mill")
    deal = create(crm, "opportunity", title="Cranes", account=account["id"])

    # The account's save follows the deal while another save of the deal, which
    # read the account's old name, is not yet committed.
    renamed = saved_behind(
        platform,
        lambda records: records.update(
            "opportunity", deal["id"], {"title": "Gantries"}
        ),
        lambda records: records.update(
            "account", account["id"], {"name": "Quay Works"}
        ),
    )

    assert renamed == []
    assert read_deal(crm, deal)["next_step"] == "Gantries for Quay Works"
    history = crm.get(f"/opportunity/{deal['id']}/history").json["data"]
    steps = [(e["old"], e["new"]) for e in history if e["field"] == "next_step"]
    assert steps == [
        ("Gantries for Harbour Mill", "Gantries for Quay Works"),
        ("Cranes for Harbour Mill", "Gantries for Harbour Mill"),
    ]


@pytest.mark.parametrize("how", ["created", "moved"])
def test_a_record_pointed_at_a_record_being_saved_reads_it_as_committed(
    platform: Platform, crm: Api, database_url: str, how: str
) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite lets one writer in at a time")
    define(crm, LABEL)
    account = create(crm, "account", name="Harbour Mill")
    elsewhere = create(crm, "account", name="Dry Dock")
    deal = create(crm, "opportunity", title="Cranes", account=elsewhere["id"])

    def point(records: Any) -> None:
        if how == "created":
            records.create("opportunity", {"title": "Cranes", "account": account["id"]})
        else:
            records.update("opportunity", deal["id"], {"account": account["id"]})

    # The deal comes to the account while the account's save, which follows
    # the deals it has, is not yet committed: the deal must read the new name.
    failed = saved_behind(
        platform,
        lambda records: records.update(
            "account", account["id"], {"name": "Quay Works"}
        ),
        point,
    )

    assert failed == []
    listed = crm.get(f"/opportunity?account={account['id']}").json["data"]
    assert [row["next_step"] for row in listed] == ["Cranes for Quay Works"]


#: Reads the account's roll-up of won deals, which the platform writes itself.
WON_LABEL = rule(
    "won_label",
    "opportunity",
    "formula",
    field="next_step",
    expression={"cat": ["won ", {"var": "account.won_total"}]},
)
#: A task on an account makes the account gold, through an automation.
ACCOUNT_TASK = {
    **TASK,
    "fields": [
        *TASK["fields"],
        {"name": "account", "type": "lookup", "target": "account", "label": "Account"},
    ],
}
PROMOTE = rule(
    "promote",
    "task",
    "automation",
    trigger="create",
    actions=[
        {"type": "update_related", "lookup": "account", "values": {"tier": "gold"}}
    ],
)
TIER_LABEL = rule(
    "tier_label",
    "opportunity",
    "formula",
    field="next_step",
    expression={"var": "account.tier"},
)


@pytest.mark.parametrize(
    ("changed_by", "how"),
    [
        ("roll-up", "created"),
        ("roll-up", "moved"),
        ("automation", "created"),
        ("automation", "moved"),
    ],
)
def test_a_record_pointed_at_a_record_the_platform_changes_reads_it_as_committed(
    platform: Platform, crm: Api, database_url: str, changed_by: str, how: str
) -> None:
    # What the platform writes on the account (a roll-up's increment, an
    # automation's update) took no lock that the key-share lock of the deal's
    # foreign key waits for: the deal, not yet committed, kept a formula of the
    # value it replaced, as the account's recomputation could not see it.
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite lets one writer in at a time")
    if changed_by == "roll-up":
        define(crm, WON_TOTAL, WON_LABEL)
    else:
        define(crm, ACCOUNT_TASK, PROMOTE, TIER_LABEL)
    account = create(crm, "account", name="Harbour Mill", tier="standard")
    elsewhere = create(crm, "account", name="Dry Dock", tier="standard")
    deal = create(crm, "opportunity", title="Cranes", account=elsewhere["id"])
    ids: list[int] = []

    def point(records: Any) -> None:
        if how == "created":
            new = {"title": "Gantries", "account": account["id"]}
            ids.append(records.create("opportunity", new)["id"])
        else:
            records.update("opportunity", deal["id"], {"account": account["id"]})
            ids.append(deal["id"])

    def change_account(records: Any) -> None:
        if changed_by == "roll-up":
            won = {"title": "Won", "account": account["id"], "stage": "won"}
            records.create("opportunity", {**won, "amount": 50})
        else:
            records.create("task", {"subject": "Call", "account": account["id"]})

    failed = saved_behind(platform, point, change_account)

    assert failed == []
    stored = fetch(platform, "account", account["id"])
    if changed_by == "roll-up":
        assert stored["won_total"] == 50
    else:
        assert stored["tier"] == "gold"
    expected = "won 50" if changed_by == "roll-up" else "gold"
    assert fetch(platform, "opportunity", ids[0])["next_step"] == expected


def task_saved_meanwhile(
    platform: Platform, account_id: int, ran: list[BaseException | None]
) -> None:
    """Save a task on the account in another thread, which must not wait for the
    save under way; note in ``ran`` what it raised (``None`` when it saved)."""

    def task() -> None:
        try:
            with platform.records(SYSTEM_ACTOR) as records:
                records.create("task", {"subject": "Call", "account": account_id})
            ran.append(None)
        except BaseException as error:  # noqa: BLE001 - reported by the test
            ran.append(error)

    other = threading.Thread(target=task)
    other.start()
    other.join(10)
    assert not other.is_alive(), "the task's save waited"


def test_a_record_reads_again_what_the_platform_committed_while_it_was_saved(
    platform: Platform, crm: Api, database_url: str, monkeypatch: Any
) -> None:
    # The task's automation makes the account gold and commits after the new
    # deal read the account and before its save ends: the deal's formula is
    # computed again from what was committed.
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite lets one writer in at a time")
    define(crm, ACCOUNT_TASK, PROMOTE, TIER_LABEL)
    account = create(crm, "account", name="Harbour Mill", tier="standard")
    settle = Cascade._settle
    ran: list[BaseException | None] = []

    def settle_after_the_task(self: Cascade, *args: Any) -> Any:
        if not ran:
            task_saved_meanwhile(platform, account["id"], ran)
        return settle(self, *args)

    monkeypatch.setattr(Cascade, "_settle", settle_after_the_task)
    with platform.records(SYSTEM_ACTOR) as records:
        new = {"title": "Gantries", "account": account["id"]}
        created = records.create("opportunity", new)

    assert ran == [None]
    assert created["next_step"] == "gold"
    assert fetch(platform, "opportunity", created["id"])["next_step"] == "gold"
    history = crm.get(f"/opportunity/{created['id']}/history").json["data"]
    assert [(e["old"], e["new"]) for e in history if e["field"] == "next_step"] == [
        ("standard", "gold")
    ]


def test_a_rule_comparing_a_lookup_with_an_id_is_refused_when_saved(
    crm: Api,
) -> None:
    # The lookup reads as the related record in a rule, so the rule would never
    # fire; a list filter (SQL) compares the same condition by id.
    refused = crm.put(
        "/meta/rules/not_that_account",
        json=rule(
            "not_that_account",
            "opportunity",
            "validation",
            condition={"==": [{"var": "account"}, 1]},
            message="Not for this account.",
            field="account",
        ),
    )

    assert refused.status_code == 422
    assert problems(refused) == [("not_that_account.condition.==[0]", "wrong_type")]
    assert "'account.id'" in refused.json["errors"][0]["message"]
    assert crm.get("/meta/rules/not_that_account").status_code == 404


def test_a_rule_compares_a_lookup_by_its_id_now_and_before(crm: Api) -> None:
    define(
        crm,
        rule(
            "stays_with_account",
            "opportunity",
            "validation",
            condition={
                "and": [
                    {"!": {"is_blank": {"var": "$prior.account"}}},
                    {"!=": [{"var": "$prior.account.id"}, {"var": "account.id"}]},
                    {"==": [{"var": "$prior.account.industry"}, "energy"]},
                ]
            },
            message="A deal of an energy account stays with it.",
            field="account",
        ),
    )
    energy = create(crm, "account", name="Harbour Mill", industry="energy")
    other = create(crm, "account", name="Quay Works", industry="retail")
    deal = create(crm, "opportunity", title="Cranes", account=energy["id"])
    moved = create(crm, "opportunity", title="Hoists", account=other["id"])

    refused = crm.patch(f"/opportunity/{deal['id']}", json={"account": other["id"]})
    renamed = crm.patch(f"/opportunity/{deal['id']}", json={"title": "Gantries"})
    allowed = crm.patch(f"/opportunity/{moved['id']}", json={"account": energy["id"]})

    assert problems(refused) == [("account", "rule")]
    assert renamed.status_code == 200
    assert allowed.status_code == 200


def test_a_roll_up_condition_compares_the_child_lookup_as_its_id(crm: Api) -> None:
    with_count = {
        **ACCOUNT,
        "fields": [
            *ACCOUNT["fields"],
            {"name": "parented", "type": "integer", "label": "Parented"},
        ],
    }
    define(crm, with_count)
    first = create(crm, "account", name="Harbour Mill")
    define(
        crm,
        rule(
            "parented",
            "account",
            "rollup",
            field="parented",
            relation={"entity": "opportunity", "lookup": "account"},
            function="count",
            condition={"==": [{"var": "account"}, first["id"]]},
        ),
    )
    create(crm, "opportunity", title="Cranes", account=first["id"])

    assert crm.get(f"/account/{first['id']}").json["parented"] == 1


def read_deal(api: Api, deal: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = api.get(f"/opportunity/{deal['id']}").json
    return found


def statements_reading_account_for_share(platform: Platform, save: Any) -> list[str]:
    """The statements ``save`` runs that read the account under a share lock."""
    return statements(
        platform,
        save,
        lambda sql: "FROM account" in sql and sql.rstrip().endswith("FOR SHARE"),
    )


def won_deal_saved(
    platform: Platform, account_id: int, created: list[dict[str, Any]]
) -> Any:
    """A save of a new won deal of 50 on the account, which notes the deal in
    ``created``."""

    def save() -> None:
        with platform.records(SYSTEM_ACTOR) as records:
            won = {"title": "Cranes", "account": account_id, "stage": "won"}
            created.append(records.create("opportunity", {**won, "amount": 50}))

    return save


def test_a_record_reads_what_its_roll_up_increment_returned_of_the_account(
    platform: Platform, crm: Api, database_url: str, monkeypatch: Any
) -> None:
    # A task's automation makes the account gold, and commits, after the new
    # won deal read the account and before the deal's roll-up adds to it. The
    # increment locks the account and returns it as committed: the deal's
    # formula is computed again from that, with no share-locked read of the
    # account besides.
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite lets one writer in at a time")
    define(crm, ACCOUNT_TASK, PROMOTE, WON_TOTAL, TIER_LABEL)
    account = create(crm, "account", name="Harbour Mill", tier="standard")
    rollups = Cascade._rollups
    ran: list[BaseException | None] = []
    started: list[bool] = []

    def task_first(self: Cascade, *args: Any) -> Any:
        # The task's own save comes here too, in its thread, and goes on.
        if not started:
            started.append(True)
            task_saved_meanwhile(platform, account["id"], ran)
        return rollups(self, *args)

    monkeypatch.setattr(Cascade, "_rollups", task_first)
    created: list[dict[str, Any]] = []
    save = won_deal_saved(platform, account["id"], created)

    assert statements_reading_account_for_share(platform, save) == []
    assert ran == [None]
    assert created[0]["next_step"] == "gold"
    assert fetch(platform, "opportunity", created[0]["id"])["next_step"] == "gold"
    stored = fetch(platform, "account", account["id"])
    assert (stored["tier"], stored["won_total"]) == ("gold", 50)
    history = crm.get(f"/opportunity/{created[0]['id']}/history").json["data"]
    assert [(e["old"], e["new"]) for e in history if e["field"] == "next_step"] == [
        ("standard", "gold")
    ]


def test_a_record_reads_the_account_again_when_written_after_its_increment(
    platform: Platform, crm: Api, database_url: str, monkeypatch: Any
) -> None:
    # The account is written again in the same save after the deal's roll-up
    # added to it (here by a stand-in for whatever follows from the increment):
    # the row the increment returned holds the tier before that, so the deal
    # reads the account again and keeps the tier written last.
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite lets one writer in at a time")
    define(crm, WON_TOTAL, TIER_LABEL)
    account = create(crm, "account", name="Harbour Mill", tier="standard")
    dependents = Cascade._dependents

    def gild_after_the_increment(self: Cascade, changes: Any) -> Any:
        found = dependents(self, changes)
        for change in changes:
            if change.entity.name == "account" and change.after["tier"] != "gold":
                key = change.record_id
                found += self.system_update(
                    change.entity, {key: change.after}, {key: {"tier": "gold"}}, {}
                )
        return found

    monkeypatch.setattr(Cascade, "_dependents", gild_after_the_increment)
    created: list[dict[str, Any]] = []
    save = won_deal_saved(platform, account["id"], created)

    assert len(statements_reading_account_for_share(platform, save)) == 1
    stored = fetch(platform, "account", account["id"])
    assert (stored["tier"], stored["won_total"]) == ("gold", 50)
    assert created[0]["next_step"] == "gold"
    assert fetch(platform, "opportunity", created[0]["id"])["next_step"] == "gold"


def test_a_record_whose_account_is_as_read_is_not_computed_again(
    platform: Platform, crm: Api, database_url: str, monkeypatch: Any
) -> None:
    # The end of the save reads the account again under its lock; nothing of it
    # changed since the deal's rules read it, so no formula runs a second time.
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite lets one writer in at a time")
    define(crm, LABEL)
    account = create(crm, "account", name="Harbour Mill")
    system_update = Cascade.system_update
    recomputed: list[str] = []

    def noted(self: Cascade, entity: Any, *args: Any, **kwargs: Any) -> Any:
        recomputed.append(entity.name)
        return system_update(self, entity, *args, **kwargs)

    monkeypatch.setattr(Cascade, "system_update", noted)
    with platform.records(SYSTEM_ACTOR) as records:
        created = records.create(
            "opportunity", {"title": "Cranes", "account": account["id"]}
        )

    assert recomputed == []
    assert created["next_step"] == "Cranes for Harbour Mill"
    assert fetch(platform, "opportunity", created["id"])["next_step"] == (
        "Cranes for Harbour Mill"
    )
