"""The entities, the 20 rules and the records of benchmark (f).

The Account and Opportunity of the other benchmarks, with the fields that the
rules read and fill, and 20 rule documents of the kinds a sales team writes: ten
validation rules (stage, amount, dates, text, ``is_blank``, ``in``, nested
``and``/``or``), three field-state rules, three defaults, two formulas (one reads
the account's name through the lookup), a roll-up of the open pipeline onto the
account and an automation that sets a field. The records saved are the same on
every run, and every rule accepts them.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from ._support import ACCOUNT, OPPORTUNITY


def _picklist(name: str, label: str, *values: str) -> dict[str, Any]:
    options = [{"value": value, "label": value.title()} for value in values]
    return {"name": name, "type": "picklist", "label": label, "options": options}


#: The Account of the other benchmarks, with the field the roll-up fills.
RULED_ACCOUNT: dict[str, Any] = {
    **ACCOUNT,
    "fields": [
        *ACCOUNT["fields"],
        {"name": "open_pipeline", "type": "currency", "label": "Open pipeline"},
    ],
}

#: The Opportunity of the other benchmarks, with the fields the rules read and fill.
RULED_OPPORTUNITY: dict[str, Any] = {
    **OPPORTUNITY,
    "fields": [
        *OPPORTUNITY["fields"],
        {"name": "probability", "type": "percent", "label": "Probability"},
        {"name": "discount", "type": "percent", "label": "Discount"},
        {"name": "next_step", "type": "text", "label": "Next step"},
        {"name": "competitor", "type": "text", "label": "Competitor"},
        {"name": "loss_reason", "type": "textarea", "label": "Loss reason"},
        _picklist("priority", "Priority", "low", "normal", "high"),
        _picklist("forecast", "Forecast", "pipeline", "commit", "closed"),
        {"name": "source", "type": "text", "label": "Source"},
        {"name": "weighted_amount", "type": "currency", "label": "Weighted amount"},
        {"name": "account_name", "type": "text", "label": "Account name"},
    ],
}


def _var(name: str) -> dict[str, Any]:
    return {"var": name}


def _rule(name: str, kind: str, **parts: Any) -> dict[str, Any]:
    return {
        "kind": "rule",
        "name": name,
        "entity": parts.pop("entity", "opportunity"),
        "type": kind,
        "label": name.replace("_", " ").capitalize(),
        **parts,
    }


def _validation(name: str, condition: Any, message: str, field: str) -> Any:
    return _rule(name, "validation", condition=condition, message=message, field=field)


#: The stages of an opportunity still being worked on.
OPEN_STAGES = ["qualify", "propose"]

VALIDATIONS = [
    _validation(
        "loss_reason_required",
        {"and": [{"==": [_var("stage"), "lost"]}, {"is_blank": _var("loss_reason")}]},
        "Say why the opportunity was lost.",
        "loss_reason",
    ),
    _validation(
        "proposal_minimum",
        {"and": [{"==": [_var("stage"), "propose"]}, {"<": [_var("amount"), 500]}]},
        "A proposal is worth at least 500.",
        "amount",
    ),
    _validation(
        "discount_limit",
        {">": [_var("discount"), 30]},
        "A discount above 30 % needs a special price agreement.",
        "discount",
    ),
    _validation(
        "probability_range",
        {"or": [{"<": [_var("probability"), 0]}, {">": [_var("probability"), 100]}]},
        "Give a probability between 0 and 100.",
        "probability",
    ),
    _validation(
        "won_is_certain",
        {"and": [{"==": [_var("stage"), "won"]}, {"<": [_var("probability"), 100]}]},
        "A won opportunity has a probability of 100.",
        "probability",
    ),
    _validation(
        "won_needs_account",
        {
            "and": [
                {"in": [_var("stage"), ["won", "lost"]]},
                {"is_blank": _var("account")},
            ]
        },
        "A closed opportunity belongs to an account.",
        "account",
    ),
    _validation(
        "close_date_window",
        {
            "and": [
                {"!": {"is_blank": _var("close_date")}},
                {"!": {"<=": ["2020-01-01", _var("close_date"), "2035-12-31"]}},
            ]
        },
        "Give a close date between 2020 and 2035.",
        "close_date",
    ),
    _validation(
        "open_close_date_ahead",
        {
            "and": [
                {"in": [_var("stage"), OPEN_STAGES]},
                {
                    ">": [
                        {"date_diff": [{"today": []}, _var("close_date"), "days"]},
                        3650,
                    ]
                },
            ]
        },
        "An open opportunity closes within ten years.",
        "close_date",
    ),
    _validation(
        "no_test_titles",
        {"or": [{"in": ["test", _var("title")]}, {"in": ["TEST", _var("title")]}]},
        "Test opportunities belong in the sandbox.",
        "title",
    ),
    _validation(
        "big_deal_next_step",
        {
            "and": [
                {">": [_var("amount"), 250_000]},
                {"in": [_var("stage"), OPEN_STAGES]},
                {"is_blank": _var("next_step")},
            ]
        },
        "A deal above 250,000 needs a next step.",
        "next_step",
    ),
]

FIELD_STATES = [
    _rule(
        "next_step_state",
        "field_state",
        field="next_step",
        required_if={"==": [_var("stage"), "propose"]},
    ),
    _rule(
        "amount_state",
        "field_state",
        field="amount",
        readonly_if={"in": [_var("stage"), ["won", "lost"]]},
    ),
    _rule(
        "competitor_state",
        "field_state",
        field="competitor",
        visible_if={"==": [_var("stage"), "lost"]},
        required_if={"==": [_var("loss_reason"), "Competitor"]},
    ),
]

DEFAULTS = [
    _rule(
        "priority_default",
        "default",
        field="priority",
        expression={"if": [{">": [_var("amount"), 50_000]}, "high", "normal"]},
    ),
    _rule(
        "forecast_default",
        "default",
        field="forecast",
        expression={
            "if": [
                {"in": [_var("stage"), ["won", "lost"]]},
                "closed",
                {">=": [{"var": ["probability", 0]}, 70]},
                "commit",
                "pipeline",
            ]
        },
    ),
    _rule(
        "source_default",
        "default",
        field="source",
        expression={"if": [{"in": ["admin", _var("$user.roles")]}, "import", "sales"]},
    ),
]

FORMULAS = [
    _rule(
        "weighted_amount",
        "formula",
        field="weighted_amount",
        expression={
            "round": [
                {"*": [_var("amount"), {"/": [{"var": ["probability", 0]}, 100]}]},
                2,
            ]
        },
    ),
    _rule(
        "account_name",
        "formula",
        field="account_name",
        expression=_var("account.name"),
    ),
]

ROLLUP = _rule(
    "open_pipeline",
    "rollup",
    entity="account",
    field="open_pipeline",
    relation={"entity": "opportunity", "lookup": "account"},
    function="sum",
    of="amount",
    condition={"in": [_var("stage"), OPEN_STAGES]},
)

HANDOVER = "Hand over to delivery"
AUTOMATION = _rule(
    "won_handover",
    "automation",
    trigger=["create", "update"],
    condition={
        "and": [{"==": [_var("stage"), "won"]}, {"is_blank": _var("next_step")}]
    },
    actions=[{"type": "set_field", "field": "next_step", "value": HANDOVER}],
)

RULES: list[dict[str, Any]] = [
    *VALIDATIONS,
    *FIELD_STATES,
    *DEFAULTS,
    *FORMULAS,
    ROLLUP,
    AUTOMATION,
]
#: The rules that need a query of their own on each save: the roll-up reads and
#: writes the account, the formula reads the account's name.
QUERYING = frozenset({ROLLUP["name"], "account_name"})
#: The 18 others, which read only the record being saved.
LOCAL_RULES = [rule for rule in RULES if rule["name"] not in QUERYING]

#: Opportunities are spread over this many accounts: a few dozen each by the end
#: of a run, as in use (a roll-up sums over all of an account's opportunities).
ACCOUNTS = 200
#: Every this many creates, a won opportunity comes without a next step and the
#: automation fills it: one more save inside the save, as it would be in use.
AUTOMATION_EVERY = 20


def account_name(account_id: int) -> str:
    return f"Harbour Supply {account_id:03d}"


def create_body(number: int, *, prefix: str) -> dict[str, Any]:
    """A new opportunity that every rule accepts, the same on each run."""
    stage = ("qualify", "propose", "won", "qualify")[number % 4]
    body: dict[str, Any] = {
        "title": f"Fleet renewal {prefix}{number}",
        "account": 1 + number % ACCOUNTS,
        "stage": stage,
        "amount": Decimal(100_000 + (number * 372_513) % 9_000_000) / 100,
        "close_date": (
            dt.date(2026, 1, 5) + dt.timedelta(days=number % 300)
        ).isoformat(),
        "erp_code": f"{prefix}-{number:07d}",
        "probability": 100 if stage == "won" else 10 + number % 80,
        "discount": number % 25,
    }
    if stage == "propose" or (stage == "won" and number % AUTOMATION_EVERY != 2):
        body["next_step"] = "Call the buyer"
    return body


def update_body(number: int, *, round_number: int) -> dict[str, Any]:
    """A change of an open opportunity's amount, probability and next step."""
    return {
        "amount": Decimal(
            200_000 + (number * 91_111 + round_number * 57_707) % 8_000_000
        )
        / 100,
        "probability": 5 + (number + round_number) % 90,
        "next_step": f"Follow-up {round_number}",
    }
