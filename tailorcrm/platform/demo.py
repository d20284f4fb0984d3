"""Deterministic demo records for the sales pack.

Every name, address and number is made up from the small word lists below.
Email addresses and websites use the reserved ``.example`` domain (RFC 2606)
and phone numbers the 555-0100 to 555-0199 range set aside for fiction, so
the demo never points at a real company or person.
"""

from __future__ import annotations

import datetime
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

__all__ = ["CreateRecords", "populate"]

#: Saves the rows of one entity and returns the new record ids in row order.
CreateRecords = Callable[[str, list[dict[str, Any]]], list[int]]

# Dates are offsets from a fixed day rather than from the clock, so that one
# seed gives the same records on every run and on every machine.
_ANCHOR = datetime.date(2026, 1, 1)
_ANCHOR_AT = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)

_CENT = Decimal("0.01")

# Word lists stay packed, several names to a line.
# fmt: off
_NAME_STARTS = (
    "Amber", "Birch", "Cobalt", "Dapple", "Ember", "Fennel", "Granite", "Heron",
    "Juniper", "Kestrel", "Larch", "Marigold", "Nettle", "Quarry", "Saffron",
    "Tamarack",
)
_NAME_ENDS = (
    "Harbor", "Ridge", "Forge", "Field", "Works", "Vale", "Stone", "Brook", "Crest",
    "Gate",
)
# fmt: on
_SECTORS = (
    ("Farms", "agriculture"),
    ("Builders", "construction"),
    ("Academy", "education"),
    ("Energy", "energy"),
    ("Capital", "finance"),
    ("Clinics", "healthcare"),
    ("Hotels", "hospitality"),
    ("Logistics", "logistics"),
    ("Manufacturing", "manufacturing"),
    ("Media", "media"),
    ("Stores", "retail"),
    ("Systems", "technology"),
)
_LEGAL_FORMS = ("Ltd", "GmbH", "Inc.", "S.A.", "AG", "BV", "")
_REGIONS = ("Nordic", "Iberia", "Benelux", "Alpine", "Pacific", "Baltic")
_CITIES = (
    ("Aldermoor", "United Kingdom"),
    ("Hallowmere", "Ireland"),
    ("Kestrelbrook", "Canada"),
    ("Cedar Hollow", "United States"),
    ("Port Linden", "United States"),
    ("Lindenfeld", "Germany"),
    ("Vasteby", "Sweden"),
    ("Oosterveld", "Netherlands"),
    ("Montaubel", "France"),
    ("Valcresta", "Italy"),
    ("Santa Lucera", "Spain"),
    ("Port Alder", "Australia"),
)
_STREETS = (
    "Harbour Road",
    "Mill Lane",
    "Station Street",
    "Orchard Way",
    "Kingfisher Avenue",
    "Quarry Hill",
    "Market Square",
    "Tannery Row",
)

# fmt: off
_FIRST_NAMES = (
    "Amara", "Bastian", "Chiara", "Dmitri", "Elif", "Farid", "Greta", "Hiroshi",
    "Ines", "Jonas", "Kalani", "Liesl", "Mateo", "Nadia", "Oskar", "Priya", "Quentin",
    "Rosa", "Soren", "Talia", "Umberto", "Vera", "Wendell", "Yusuf",
)
_LAST_NAMES = (
    "Arkwright", "Bellamy", "Castellan", "Dunmore", "Everly", "Fairbanks", "Galloway",
    "Hargrove", "Ivers", "Jessup", "Kettering", "Lindqvist", "Marchetti", "Novak",
    "Okafor", "Pellegrini", "Quimby", "Rasmussen", "Sandoval", "Thorne", "Underhill",
    "Varga", "Whitlock", "Zeller",
)
# fmt: on
_JOB_TITLES = (
    "Chief Executive Officer",
    "Chief Financial Officer",
    "Head of Purchasing",
    "IT Manager",
    "Operations Director",
    "Sales Manager",
    "Office Manager",
    "Project Lead",
    "Procurement Specialist",
    "Head of Customer Service",
)

# A scale above 1 repeats the catalogue as further editions at a higher price.
_CATALOGUE = (
    ("Pipeline Suite", "software", Decimal("4800.00")),
    ("Insight Analytics", "software", Decimal("2950.00")),
    ("Field Tablet", "hardware", Decimal("689.90")),
    ("Desk Phone Kit", "hardware", Decimal("149.50")),
    ("Onboarding Package", "services", Decimal("7500.00")),
    ("Integration Service", "services", Decimal("12000.00")),
    ("Admin Workshop", "training", Decimal("1250.00")),
)
_EDITIONS = ("Plus", "Pro", "Enterprise", "Select", "Prime")

_STAGES = ("prospecting", "qualification", "proposal", "negotiation", "won", "lost")
_STAGE_WEIGHTS = (18, 16, 14, 10, 26, 16)
_PROBABILITY = dict(zip(_STAGES, (10, 20, 50, 75, 100, 0), strict=True))
_DEAL_KINDS = ("new business", "renewal", "expansion", "pilot")
_NEXT_STEPS = (
    "Book a discovery call",
    "Send the revised quote",
    "Demo for the purchasing team",
    "Agree on the rollout plan",
    "Wait for the budget decision",
)
_LOSS_REASONS = (
    "Chose a competitor with a lower price.",
    "Project postponed until next year.",
    "No budget after the reorganisation.",
    "Went with an in-house solution.",
)

_LEAD_STATUSES = ("new", "working", "nurturing", "qualified", "unqualified")
_LEAD_STATUS_WEIGHTS = (30, 25, 15, 20, 10)
_LEAD_SOURCES = (
    "web",
    "referral",
    "trade_show",
    "cold_call",
    "partner",
    "advertisement",
)
_RATINGS = ("hot", "warm", "cold")
_INTERESTS = ("software", "hardware", "implementation", "training", "support_plan")

_ACTIVITY_KINDS = ("call", "email", "meeting", "task")
_ACTIVITY_KIND_WEIGHTS = (30, 25, 20, 25)
_NOTES = (
    "Asked for references in their industry.",
    "The budget owner joins the next meeting.",
    "Prefers email to phone before noon.",
    "Needs the security questionnaire filled in.",
)


@dataclass(frozen=True)
class _Company:
    base: str
    name: str
    industry: str

    @property
    def domain(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.base.lower()).strip("-") + ".example"


@dataclass(frozen=True)
class _Product:
    name: str
    code: str
    family: str
    list_price: Decimal


class _CompanyNames:
    """Hands out company names that are unique within one demo run."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._used: set[str] = set()

    def new(self) -> _Company:
        rng = self._rng
        sector, industry = rng.choice(_SECTORS)
        base = f"{rng.choice(_NAME_STARTS)} {rng.choice(_NAME_ENDS)} {sector}"
        return self._claim(base, industry)

    def subsidiary(self, parent: _Company, region: str) -> _Company:
        return self._claim(f"{parent.base} {region}", parent.industry)

    def _claim(self, base: str, industry: str) -> _Company:
        # The word lists allow a few thousand names; past that, or on a
        # collision, a number keeps the name and its web domain unique.
        candidate = base
        number = 2
        while candidate in self._used:
            candidate = f"{base} {number}"
            number += 1

        self._used.add(candidate)
        name = f"{candidate} {self._rng.choice(_LEGAL_FORMS)}".strip()
        return _Company(base=candidate, name=name, industry=industry)


def populate(
    create: CreateRecords, *, seed: int = 2026, scale: int = 1
) -> dict[str, int]:
    """Create demo records for every entity of the sales pack.

    Entities are created in dependency order -- products and accounts, then
    contacts, leads, opportunities and activities -- and every lookup value is
    the id of a record that ``create`` returned earlier. Accounts come in two
    batches, subsidiaries after the accounts they point to. The same ``seed``
    and ``scale`` always give the same rows. Autonumber fields are never set,
    and all rows of one batch have the same keys, ``None`` marking an empty
    optional field.

    :param create: saves the rows of one entity and returns the new record ids
        in row order.
    :param seed: seed of the random generator.
    :param scale: multiplies the number of records; ``1`` makes 40 accounts,
        80 contacts, 30 leads, 7 products, 120 opportunities and 150
        activities.
    :return: the number of records created per entity name.
    :raises ValueError: if ``scale`` is below 1, or if ``create`` returns a
        different number of ids than it was given rows.
    """
    if scale < 1:
        raise ValueError(f"The demo scale must be 1 or more, not {scale}.")

    rng = random.Random(seed)
    counts: dict[str, int] = {}

    def save(entity: str, rows: list[dict[str, Any]]) -> list[int]:
        ids = list(create(entity, rows))
        if len(ids) != len(rows):
            raise ValueError(
                f"Saving {len(rows)} demo {entity} records returned {len(ids)}"
                " ids; the create callback must return one id per row."
            )

        counts[entity] = counts.get(entity, 0) + len(ids)
        return ids

    products = [_product(number) for number in range(7 * scale)]
    product_ids = save("product", [_product_row(p) for p in products])

    names = _CompanyNames(rng)
    parents = [names.new() for _ in range(32 * scale)]
    parent_ids = save(
        "account", [_account_row(rng, c, n) for n, c in enumerate(parents, 1)]
    )
    owners = rng.sample(range(len(parents)), 8 * scale)
    subsidiaries = [
        names.subsidiary(parents[owner], _REGIONS[n % len(_REGIONS)])
        for n, owner in enumerate(owners)
    ]
    subsidiary_rows = [
        _account_row(rng, company, len(parents) + n, parent_ids[owner])
        for n, (company, owner) in enumerate(zip(subsidiaries, owners, strict=True), 1)
    ]
    subsidiary_ids = save("account", subsidiary_rows)
    accounts = list(
        zip(parent_ids + subsidiary_ids, parents + subsidiaries, strict=True)
    )

    contact_rows = [_contact_row(rng, accounts) for _ in range(80 * scale)]
    contact_ids = save("contact", contact_rows)
    people: dict[int, list[tuple[int, str]]] = {}
    for contact_id, row in zip(contact_ids, contact_rows, strict=True):
        if row["account"] is not None:
            people.setdefault(row["account"], []).append((contact_id, row["full_name"]))

    save("sales_lead", [_lead_row(rng, names.new()) for _ in range(30 * scale)])

    catalogue = list(zip(product_ids, products, strict=True))
    deal_rows = [
        _opportunity_row(rng, n, accounts, catalogue) for n in range(1, 120 * scale + 1)
    ]
    deal_ids = save("opportunity", deal_rows)
    deals = [
        (deal_id, row["account"], row["title"])
        for deal_id, row in zip(deal_ids, deal_rows, strict=True)
    ]

    save("activity", [_activity_row(rng, deals, people) for _ in range(150 * scale)])
    return counts


def _product(number: int) -> _Product:
    name, family, price = _CATALOGUE[number % len(_CATALOGUE)]
    edition = number // len(_CATALOGUE)
    if edition:
        word = _EDITIONS[(edition - 1) % len(_EDITIONS)]
        cycle = (edition - 1) // len(_EDITIONS)
        name = f"{name} {word} {cycle + 1}" if cycle else f"{name} {word}"
        price = (price * (1 + Decimal("0.25") * edition)).quantize(_CENT)

    code = f"{family[:3].upper()}-{number + 1:04d}"
    return _Product(name=name, code=code, family=family, list_price=price)


def _product_row(product: _Product) -> dict[str, Any]:
    return {
        "name": product.name,
        "product_code": product.code,
        "family": product.family,
        "list_price": product.list_price,
        "active": True,
    }


def _account_row(
    rng: random.Random, company: _Company, number: int, parent: int | None = None
) -> dict[str, Any]:
    city, country = rng.choice(_CITIES)
    employees = min(int(rng.lognormvariate(4.5, 1.5)) + 1, 250_000)
    revenue = Decimal(employees * rng.randint(60, 240) * 1000)
    return {
        "name": company.name,
        "industry": company.industry,
        "annual_revenue": revenue,
        "employees": employees,
        "website": f"https://www.{company.domain}",
        "phone": _phone(rng),
        "billing_street": f"{rng.randint(1, 240)} {rng.choice(_STREETS)}",
        "billing_city": city,
        "billing_postal_code": str(rng.randint(10000, 99999)),
        "country": country,
        "parent_account": parent,
        "erp_code": f"C{number:06d}",
    }


def _contact_row(
    rng: random.Random, accounts: list[tuple[int, _Company]]
) -> dict[str, Any]:
    first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
    account_id: int | None
    account_id, company = rng.choice(accounts)
    domain = company.domain
    if rng.random() < 0.05:
        # A few contacts work for no account the team knows yet.
        account_id, domain = None, "mail.example"

    birthdate = None
    if rng.random() < 0.6:
        birthdate = _ANCHOR - datetime.timedelta(days=rng.randint(9_000, 24_000))

    return {
        "first_name": first,
        "last_name": last,
        "full_name": f"{first} {last}",
        "email": _email(first, last, domain),
        "phone": _phone(rng),
        "title": rng.choice(_JOB_TITLES),
        "account": account_id,
        "do_not_call": rng.random() < 0.1,
        "birthdate": birthdate,
    }


def _lead_row(rng: random.Random, company: _Company) -> dict[str, Any]:
    first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
    status = rng.choices(_LEAD_STATUSES, weights=_LEAD_STATUS_WEIGHTS)[0]
    converted = rng.random() < 0.5 if status == "qualified" else False
    return {
        "company": company.name,
        "full_name": f"{first} {last}",
        "email": _email(first, last, company.domain),
        "phone": _phone(rng),
        "status": status,
        "source": rng.choice(_LEAD_SOURCES),
        "rating": rng.choice(_RATINGS),
        "converted": converted,
        "interests": [value for value in _INTERESTS if rng.random() < 0.35],
    }


def _opportunity_row(
    rng: random.Random,
    number: int,
    accounts: list[tuple[int, _Company]],
    catalogue: list[tuple[int, _Product]],
) -> dict[str, Any]:
    account_id, company = rng.choice(accounts)
    product_id, product = rng.choice(catalogue)
    stage = rng.choices(_STAGES, weights=_STAGE_WEIGHTS)[0]
    quantity = rng.choice((1, 2, 3, 5, 10, 20))
    discount = rng.choice((0, 5, 10, 15, 20))
    amount = product.list_price * quantity * (100 - discount) / 100
    closed = stage in ("won", "lost")

    # Closed deals closed in the past year; open ones are expected to close
    # within the next six months.
    days = -rng.randint(3, 330) if closed else rng.randint(7, 180)
    return {
        "title": f"{company.base}: {product.name} {rng.choice(_DEAL_KINDS)}",
        "account": account_id,
        "stage": stage,
        "amount": amount.quantize(_CENT),
        "close_date": _ANCHOR + datetime.timedelta(days=days),
        "erp_code": f"SO-{number:06d}" if stage == "won" else None,
        "product": product_id,
        "probability": Decimal(_PROBABILITY[stage]),
        "next_step": None if closed else rng.choice(_NEXT_STEPS),
        "loss_reason": rng.choice(_LOSS_REASONS) if stage == "lost" else None,
    }


def _activity_row(
    rng: random.Random,
    deals: list[tuple[int, int, str]],
    people: dict[int, list[tuple[int, str]]],
) -> dict[str, Any]:
    deal_id: int | None
    deal_id, account_id, topic = rng.choice(deals)
    if rng.random() < 0.2:
        # Some activities concern the account as a whole, not one deal.
        deal_id, topic = None, "the account plan"

    contact_id: int | None = None
    person = "the customer"
    if account_id in people:
        contact_id, person = rng.choice(people[account_id])

    kind = rng.choices(_ACTIVITY_KINDS, weights=_ACTIVITY_KIND_WEIGHTS)[0]
    due_at = _ANCHOR_AT + datetime.timedelta(
        days=rng.randint(-120, 45),
        hours=rng.randint(8, 17),
        minutes=rng.choice((0, 15, 30, 45)),
    )
    return {
        "subject": _subject(kind, person, topic),
        "kind": kind,
        "due_at": due_at,
        "done": due_at < _ANCHOR_AT and rng.random() < 0.85,
        "notes": rng.choice(_NOTES) if rng.random() < 0.3 else None,
        "account": account_id,
        "contact": contact_id,
        "opportunity": deal_id,
    }


def _subject(kind: str, person: str, topic: str) -> str:
    if kind == "call":
        return f"Call {person} about {topic}"
    if kind == "email":
        return f"Email {person} the summary of {topic}"
    if kind == "meeting":
        return f"Meet {person} to review {topic}"
    return f"Prepare the next steps for {topic}"


def _email(first: str, last: str, domain: str) -> str:
    return f"{first}.{last}@{domain}".lower()


def _phone(rng: random.Random) -> str:
    return f"+1 555-01{rng.randrange(100):02d}"
