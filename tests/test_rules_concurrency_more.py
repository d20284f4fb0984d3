"""Formulas through lookups and roll-ups when one save both points a record at
another parent and moves a roll-up of that same record.

Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import pytest

from tests.conftest import Api
from tests.rules_support import ACCOUNT, OPPORTUNITY, TASK, create, define, rule

#: A task reads the stage of its deal.
TASK_STAGE = rule(
    "task_stage",
    "task",
    "formula",
    field="about",
    expression={"var": "opportunity.stage"},
)
#: A deal counts its tasks that read won, kept by increments.
WON_TASKS = rule(
    "won_tasks",
    "opportunity",
    "rollup",
    field="touches",
    relation={"entity": "task", "lookup": "opportunity"},
    function="count",
    condition={"==": [{"var": "about"}, "won"]},
)
#: A deal reads its own title and its account's tier.
DEAL_LABEL = rule(
    "deal_label",
    "opportunity",
    "formula",
    field="next_step",
    expression={"cat": [{"var": "title"}, " for ", {"var": "account.tier"}]},
)


@pytest.fixture
def crm(api: Api) -> Api:
    define(api, ACCOUNT, OPPORTUNITY, TASK, TASK_STAGE, WON_TASKS, DEAL_LABEL)
    return api


def test_a_record_moved_whose_own_roll_up_moves_keeps_its_formulas(crm: Api) -> None:
    # Moving the deal to another account and winning it at once makes its task
    # read won, which adds to the deal's own count of won tasks in the same save.
    # The deal's label is still computed from the whole deal: its title and the
    # tier of the account it now points at.
    harbour = create(crm, "account", name="Harbour Mill", tier="standard")
    quay = create(crm, "account", name="Quay Works", tier="gold")
    deal = create(crm, "opportunity", title="Cranes", account=harbour["id"])
    create(crm, "task", subject="Call", opportunity=deal["id"])

    saved = crm.patch(
        f"/opportunity/{deal['id']}", json={"account": quay["id"], "stage": "won"}
    )

    assert saved.status_code == 200, saved.json
    stored = crm.get(f"/opportunity/{deal['id']}").json
    assert (stored["next_step"], stored["touches"]) == ("Cranes for gold", 1)
    assert saved.json["next_step"] == stored["next_step"]
    assert saved.json["version"] == stored["version"]
    history = crm.get(f"/opportunity/{deal['id']}/history").json["data"]
    steps = [(e["old"], e["new"]) for e in history if e["field"] == "next_step"]
    assert steps[-1][1] == "Cranes for gold"


def test_an_account_made_its_own_parent_keeps_its_formulas(api: Api) -> None:
    # The account now counts itself among its child accounts, and reads its own
    # tier as its parent's, in the one save that points it at itself.
    sub_accounts = rule(
        "sub_accounts",
        "account",
        "rollup",
        field="won_count",
        relation={"entity": "account", "lookup": "parent"},
        function="count",
    )
    under = rule(
        "under",
        "account",
        "formula",
        field="notes",
        expression={"cat": [{"var": "name"}, " under ", {"var": "parent.tier"}]},
    )
    define(api, ACCOUNT, sub_accounts, under)
    account = create(api, "account", name="Harbour Mill", tier="gold")

    saved = api.patch(f"/account/{account['id']}", json={"parent": account["id"]})

    assert saved.status_code == 200, saved.json
    stored = api.get(f"/account/{account['id']}").json
    assert (stored["notes"], stored["won_count"]) == ("Harbour Mill under gold", 1)
    assert saved.json["notes"] == stored["notes"]
