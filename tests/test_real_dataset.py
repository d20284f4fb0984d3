"""Import of a public CRM sample dataset, on SQLite and on PostgreSQL.

The dataset (85 accounts, 7 products, 8,800 opportunities of a fictitious hardware
company) is read where it lies, next to the project; nothing of it is copied into
the project. Every expected number is computed from the files themselves with the
``csv`` module and ``Decimal``, then compared with SQL over the imported tables.

The pipeline names the product ``GTXPro`` in 1,480 rows while the product list
spells it ``GTX Pro``: a broken reference that an import must report, not guess.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from tailorcrm.platform import Platform
from tailorcrm.platform.importer import ImportFailed, ImportReport, import_csv
from tailorcrm.platform.records import SYSTEM_ACTOR
from tests.conftest import SHARED

DATASET = SHARED / "datasets" / "maven-crm-sales-opportunities"
BROKEN_PRODUCT = "GTXPro"

pytestmark = pytest.mark.skipif(
    not DATASET.is_dir(),
    reason="the CRM sales opportunities dataset is not next to the project "
    "(shared/datasets/maven-crm-sales-opportunities)",
)

ACCOUNT = {
    "name": "account",
    "label": "Account",
    "display_field": "name",
    "fields": [
        {
            "name": "name",
            "type": "text",
            "label": "Account",
            "required": True,
            "unique": True,
            "external_id": True,
        },
        {"name": "sector", "type": "text", "label": "Sector"},
        {"name": "year_established", "type": "integer", "label": "Year established"},
        {"name": "revenue", "type": "decimal", "label": "Revenue (millions)"},
        {"name": "employees", "type": "integer", "label": "Employees"},
        {"name": "office_location", "type": "text", "label": "Office location"},
        {
            "name": "subsidiary_of",
            "type": "lookup",
            "label": "Subsidiary of",
            "target": "account",
            "on_delete": "set_null",
        },
    ],
}

PRODUCT = {
    "name": "product",
    "label": "Product",
    "display_field": "name",
    "fields": [
        {
            "name": "name",
            "type": "text",
            "label": "Product",
            "required": True,
            "unique": True,
            "external_id": True,
        },
        {"name": "series", "type": "text", "label": "Series"},
        {"name": "sales_price", "type": "currency", "label": "Sales price"},
    ],
}

OPPORTUNITY = {
    "name": "opportunity",
    "label": "Opportunity",
    "label_plural": "Opportunities",
    "display_field": "opportunity_id",
    "fields": [
        {
            "name": "opportunity_id",
            "type": "text",
            "label": "Opportunity id",
            "required": True,
            "unique": True,
            "external_id": True,
        },
        {"name": "sales_agent", "type": "text", "label": "Sales agent"},
        {"name": "product", "type": "lookup", "label": "Product", "target": "product"},
        {"name": "account", "type": "lookup", "label": "Account", "target": "account"},
        {
            "name": "deal_stage",
            "type": "picklist",
            "label": "Deal stage",
            "options": [
                {"value": "prospecting", "label": "Prospecting"},
                {"value": "engaging", "label": "Engaging"},
                {"value": "won", "label": "Won"},
                {"value": "lost", "label": "Lost"},
            ],
        },
        {"name": "engage_date", "type": "date", "label": "Engage date"},
        {"name": "close_date", "type": "date", "label": "Close date"},
        {"name": "close_value", "type": "currency", "label": "Close value"},
    ],
}

BLANKABLE = ("account", "engage_date", "close_date", "close_value")


def read_file(name: str) -> list[dict[str, str]]:
    with (DATASET / name).open(encoding="utf-8", newline="") as file:
        return list(csv.DictReader(file))


def import_file(
    platform: Platform, entity: str, name: str, **options: Any
) -> ImportReport:
    with (DATASET / name).open("rb") as stream:
        return import_csv(platform, entity, stream, actor=SYSTEM_ACTOR, **options)


def optional_date(text: str) -> dt.date | None:
    return dt.date.fromisoformat(text) if text else None


def optional_decimal(text: str) -> Decimal | None:
    return Decimal(text) if text else None


def expected_opportunities(rows: list[dict[str, str]]) -> dict[str, tuple[Any, ...]]:
    """Each pipeline row as the import should store it, by opportunity id."""
    return {
        row["opportunity_id"]: (
            row["sales_agent"],
            row["product"],
            row["account"] or None,
            row["deal_stage"].lower(),
            optional_date(row["engage_date"]),
            optional_date(row["close_date"]),
            optional_decimal(row["close_value"]),
        )
        for row in rows
    }


def expected_summary(rows: list[dict[str, str]]) -> dict[str, Any]:
    won = [Decimal(row["close_value"]) for row in rows if row["deal_stage"] == "Won"]
    return {
        "count": len(rows),
        "stages": dict(Counter(row["deal_stage"].lower() for row in rows)),
        "blanks": {name: sum(not row[name] for row in rows) for name in BLANKABLE},
        "won_value": sum(won, Decimal(0)),
        "products": dict(Counter(row["product"] for row in rows)),
    }


def stored_opportunities(platform: Platform) -> dict[str, tuple[Any, ...]]:
    with platform.transaction() as (connection, catalog):
        opportunity = catalog.entity("opportunity").table
        product = catalog.entity("product").table
        account = catalog.entity("account").table
        query = (
            sa.select(
                opportunity.c.opportunity_id,
                opportunity.c.sales_agent,
                product.c.name,
                account.c.name,
                opportunity.c.deal_stage,
                opportunity.c.engage_date,
                opportunity.c.close_date,
                opportunity.c.close_value,
            )
            .outerjoin(product, opportunity.c.product == product.c.id)
            .outerjoin(account, opportunity.c.account == account.c.id)
        )
        return {key: tuple(values) for key, *values in connection.execute(query)}


def stored_summary(platform: Platform) -> dict[str, Any]:
    """The same figures as :func:`expected_summary`, computed by the database."""
    with platform.transaction() as (connection, catalog):
        opportunity = catalog.entity("opportunity").table
        product = catalog.entity("product").table
        count = sa.func.count(opportunity.c.id)

        def scalar(query: Any) -> Any:
            return connection.execute(query).scalar()

        stages = sa.select(opportunity.c.deal_stage, count).group_by(
            opportunity.c.deal_stage
        )
        products = (
            sa.select(product.c.name, count)
            .join(opportunity, opportunity.c.product == product.c.id)
            .group_by(product.c.name)
        )
        won_value = sa.select(sa.func.sum(opportunity.c.close_value)).where(
            opportunity.c.deal_stage == "won"
        )
        return {
            "count": scalar(sa.select(count)),
            "stages": dict(connection.execute(stages).all()),
            "blanks": {
                name: scalar(sa.select(count).where(opportunity.c[name].is_(None)))
                for name in BLANKABLE
            },
            "won_value": Decimal(scalar(won_value) or 0),
            "products": dict(connection.execute(products).all()),
        }


@pytest.fixture
def maven(platform: Platform) -> Platform:
    """The platform with the dataset's entities, accounts and products."""
    platform.store.apply(
        [("account", ACCOUNT), ("product", PRODUCT), ("opportunity", OPPORTUNITY)],
        actor="test",
    )
    import_file(platform, "account", "accounts.csv")
    import_file(platform, "product", "products.csv")
    return platform


def test_accounts_and_products_import_with_their_subsidiaries(maven: Platform) -> None:
    accounts = read_file("accounts.csv")
    products = read_file("products.csv")
    expected_accounts = {
        row["account"]: (
            row["sector"],
            int(row["year_established"]),
            Decimal(row["revenue"]),
            int(row["employees"]),
            row["office_location"],
            row["subsidiary_of"] or None,
        )
        for row in accounts
    }

    with maven.transaction() as (connection, catalog):
        account = catalog.entity("account").table
        parent = account.alias("parent_account")
        product = catalog.entity("product").table
        account_rows = connection.execute(
            sa.select(
                account.c.name,
                account.c.sector,
                account.c.year_established,
                account.c.revenue,
                account.c.employees,
                account.c.office_location,
                parent.c.name,
            ).outerjoin(parent, account.c.subsidiary_of == parent.c.id)
        )
        stored_accounts = {name: tuple(values) for name, *values in account_rows}
        product_rows = connection.execute(
            sa.select(product.c.name, product.c.series, product.c.sales_price)
        )
        stored_products = {name: tuple(values) for name, *values in product_rows}

    assert len(accounts) == 85
    assert sum(bool(row["subsidiary_of"]) for row in accounts) == 15
    assert stored_accounts == expected_accounts
    assert stored_products == {
        row["product"]: (row["series"], Decimal(row["sales_price"])) for row in products
    }


def test_all_or_nothing_refuses_the_pipeline_for_its_unknown_product(
    maven: Platform,
) -> None:
    rows = read_file("sales_pipeline.csv")
    # No value of the file spans lines, so row n of the file is line n.
    broken = [
        number
        for number, row in enumerate(rows, start=2)
        if row["product"] == BROKEN_PRODUCT
    ]

    with pytest.raises(ImportFailed) as excinfo:
        import_file(maven, "opportunity", "sales_pipeline.csv")

    report = excinfo.value.report
    assert len(broken) == 1480
    assert (report.rows, report.failed_rows) == (8800, 1480)
    assert [(e.row, e.field, e.code) for e in report.errors] == [
        (number, "product", "not_found") for number in broken
    ]
    assert {error.message for error in report.errors} == {
        f"There is no Product '{BROKEN_PRODUCT}'."
    }
    assert stored_summary(maven)["count"] == 0


def test_skip_bad_rows_imports_every_other_opportunity_as_written(
    maven: Platform,
) -> None:
    rows = read_file("sales_pipeline.csv")
    good = [row for row in rows if row["product"] != BROKEN_PRODUCT]

    report = import_file(maven, "opportunity", "sales_pipeline.csv", skip_bad_rows=True)

    assert (report.created, report.failed_rows) == (8800 - 1480, 1480)
    assert len(good) == 7320
    expected = expected_summary(good)
    assert stored_summary(maven) == expected
    assert stored_opportunities(maven) == expected_opportunities(good)


def test_the_missing_product_and_an_upsert_complete_the_pipeline(
    maven: Platform,
) -> None:
    rows = read_file("sales_pipeline.csv")
    spelled = {row["product"]: row for row in read_file("products.csv")}["GTX Pro"]
    import_file(maven, "opportunity", "sales_pipeline.csv", skip_bad_rows=True)
    with maven.records(SYSTEM_ACTOR) as service:
        service.create(
            "product",
            {
                "name": BROKEN_PRODUCT,
                "series": spelled["series"],
                "sales_price": Decimal(spelled["sales_price"]),
            },
        )

    report = import_file(
        maven, "opportunity", "sales_pipeline.csv", key="opportunity_id"
    )

    assert (report.created, report.updated, report.failed_rows) == (1480, 7320, 0)
    expected = expected_summary(rows)
    assert expected["stages"] == {
        "won": 4238,
        "lost": 2473,
        "engaging": 1589,
        "prospecting": 500,
    }
    assert expected["blanks"] == {
        "account": 1425,
        "engage_date": 500,
        "close_date": 2089,
        "close_value": 2089,
    }
    assert stored_summary(maven) == expected
    assert stored_opportunities(maven) == expected_opportunities(rows)
