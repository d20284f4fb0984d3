"""Automations checked against a simple model, over random series of saves.

Deals are created, changed and deleted at random, and accounts moved in and out
of the industry that locks their tier. Each save must leave the accounts as the
model says RULES.md has them: a won count that follows the deals, and a tier
judged for ``readonly_if`` on the account as the save found it when the save
moved its count (invented names throughout).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.conftest import Api
from tests.rules_support import ACCOUNT, OPPORTUNITY, TASK, create, define, rule

WON_COUNT = rule(
    "won_count", "account", "rollup", field="won_count",
    relation={"entity": "opportunity", "lookup": "account"},
    function="count", condition={"==": [{"var": "stage"}, "won"]},
)  # fmt: skip
TIER_LOCKED = rule(
    "tier_locked", "account", "field_state", field="tier",
    readonly_if={"==": [{"var": "industry"}, "energy"]},
)  # fmt: skip
#: A deal in negotiation is won by its own automation, a second save of it.
CLOSE = rule(
    "close", "opportunity", "automation", trigger=["create", "update"],
    condition={"==": [{"var": "stage"}, "negotiation"]},
    actions=[{"type": "set_field", "field": "stage", "value": "won"}],
)  # fmt: skip
#: A lost deal moves its account out of energy, then promotes it: two saves.
PROMOTE = rule(
    "promote", "opportunity", "automation", trigger=["create", "update", "delete"],
    condition={"==": [{"var": "stage"}, "lost"]},
    actions=[{"type": "update_related", "lookup": "account",
              "values": {"industry": "retail"}},
             {"type": "update_related", "lookup": "account",
              "values": {"tier": "gold"}}],
)  # fmt: skip
STAGES = ("prospecting", "negotiation", "won", "lost")


@dataclass
class Model:
    """What the accounts and deals should be."""

    accounts: dict[int, dict[str, str]]
    deals: dict[int, tuple[int | None, str]] = field(default_factory=dict)

    def won(self, deals: dict[int, tuple[int | None, str]]) -> dict[int, int]:
        return {
            account: sum(
                1 for (at, stage) in deals.values() if (at, stage) == (account, "won")
            )
            for account in self.accounts
        }

    def refuses(
        self, promoted: int | None, deals: dict[int, tuple[int | None, str]]
    ) -> bool:
        """Whether the save that leaves ``deals`` is refused for the tier of the
        account it promotes. Judged on the account as the save found it when
        the save moved its count; otherwise each action is a save of its own,
        and the first one unlocks the tier for the second."""
        if promoted is None:
            return False
        moved = self.won(self.deals)[promoted] != self.won(deals)[promoted]
        stored = self.accounts[promoted]
        return moved and stored["industry"] == "energy" and stored["tier"] != "gold"


def _save(
    crm: Api, rng: random.Random, step: int, model: Model
) -> tuple[Any, dict[int, tuple[int | None, str]], int | None, int | None]:
    """Make one random save of a deal; return the response, the deals as the
    save leaves them, the account it promotes and the deal's id (None: new)."""
    deals = dict(model.deals)
    choices = [*model.accounts, None]
    action = rng.choice(["create", "update", "delete"]) if deals else "create"
    if action == "create":
        account, stage = rng.choice(choices), rng.choice(STAGES)
        body = {"title": f"Deal {step}", "account": account, "stage": stage}
        deals[0] = (account, "won" if stage == "negotiation" else stage)
        response = crm.post("/opportunity", json=body)
        return response, deals, account if deals[0][1] == "lost" else None, None
    deal = rng.choice(sorted(deals))
    account, stage = deals[deal]
    if action == "delete":
        del deals[deal]
        response = crm.delete(f"/opportunity/{deal}")
        return response, deals, account if stage == "lost" else None, deal
    body = {"account": rng.choice(choices), "stage": rng.choice(STAGES)}
    deals[deal] = (
        body["account"],
        "won" if body["stage"] == "negotiation" else body["stage"],
    )
    changed = (body["account"], body["stage"]) != model.deals[deal]
    promoted = body["account"] if changed and deals[deal][1] == "lost" else None
    response = crm.patch(f"/opportunity/{deal}", json=body)
    return response, deals, promoted, deal


@pytest.mark.parametrize("seed", range(6))
def test_random_saves_keep_counts_and_tier_locks_as_the_model_says(
    api: Api, seed: int
) -> None:
    rng = random.Random(seed)
    define(api, ACCOUNT, OPPORTUNITY, TASK, WON_COUNT, TIER_LOCKED, CLOSE, PROMOTE)
    model = Model({})
    for name in ("Quay", "Pier", "Wharf"):
        found = create(api, "account", name=name, industry="energy", tier="standard")
        model.accounts[found["id"]] = {"industry": "energy", "tier": "standard"}

    for step in range(60):
        if rng.random() < 0.2:
            account = rng.choice(sorted(model.accounts))
            industry = rng.choice(["energy", "retail"])
            moved = api.patch(f"/account/{account}", json={"industry": industry})
            assert moved.status_code == 200, moved.json
            model.accounts[account]["industry"] = industry
            continue
        response, deals, promoted, deal = _save(api, rng, step, model)

        if model.refuses(promoted, deals):
            assert response.status_code == 422, (step, response.json)
        else:
            assert response.status_code in (200, 201, 204), (step, response.json)
            if deal is None:
                deals[response.json["id"]] = deals.pop(0)
            model.deals = deals
            if promoted is not None:
                model.accounts[promoted] = {"industry": "retail", "tier": "gold"}
        counts = model.won(model.deals)
        for account, expected in model.accounts.items():
            stored = api.get(f"/account/{account}").json
            assert (stored["won_count"] or 0, stored["industry"], stored["tier"]) == (
                counts[account],
                expected["industry"],
                expected["tier"],
            ), (step, account)
