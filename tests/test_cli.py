"""The tailorcrm command line: init, metadata, users and tokens."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from flask import Flask

from tailorcrm.platform import Platform, create_app
from tailorcrm.platform.auth import check_password
from tailorcrm.platform.cli import load_documents, main
from tailorcrm.platform.metastore import current_revision
from tailorcrm.platform.strictjson import MAX_NESTING
from tests.conftest import ACCOUNT, OPPORTUNITY, SALES_PACK, Api


@pytest.fixture
def run(database_url: str) -> CliRunner:
    runner = CliRunner(env={"TAILORCRM_DATABASE_URL": database_url})
    return runner


def test_init_creates_admin_with_given_password(
    run: CliRunner, database_url: str
) -> None:
    result = run.invoke(
        main, ["init"], env={"TAILORCRM_ADMIN_PASSWORD": "chosen-password"}
    )
    again = run.invoke(main, ["init"])

    assert result.exit_code == 0, result.output
    assert "Admin password: chosen-password" in result.output
    token = result.output.split("API token: ")[1].split()[0]
    app = create_app({"database_url": database_url})
    api = Api(app.test_client(), token)
    assert api.get("/meta/entities").status_code == 200
    assert again.exit_code == 0
    assert "already initialized" in again.output


def test_init_generates_a_password_when_none_is_given(run: CliRunner) -> None:
    result = run.invoke(main, ["init"], env={"TAILORCRM_ADMIN_PASSWORD": ""})

    password = result.output.split("Admin password: ")[1].split()[0]
    assert len(password) >= 12
    # The hint's address is serve's default, and says so.
    assert "once 'tailorcrm serve' runs (on port 5000 unless --port" in result.output


def test_init_demo_installs_the_sales_pack_and_data(
    run: CliRunner, database_url: str
) -> None:
    result = run.invoke(main, ["init", "--demo"])

    assert result.exit_code == 0, result.output
    token = result.output.split("API token: ")[1].split()[0]
    api = Api(create_app({"database_url": database_url}).test_client(), token)
    names = [doc["name"] for doc in api.get("/meta/entities").json["data"]]
    assert sorted(names) == [
        "account",
        "activity",
        "contact",
        "opportunity",
        "product",
        "sales_lead",
    ]
    assert api.get("/opportunity?count=1&limit=1").json["count"] == 120
    first = api.get("/account?sort=account_number&limit=1").json["data"][0]
    assert first["account_number"] == "ACC-000001"


PACK_RULES = [
    "close_date_default",
    "loss_reason_required",
    "loss_reason_visible",
    "weighted_amount",
    "won_probability",
    "won_total",
]


def test_init_demo_installs_the_pack_rules_before_the_data_and_only_missing_ones(
    run: CliRunner, database_url: str
) -> None:
    first = run.invoke(main, ["init", "--demo"])
    token = first.output.split("API token: ")[1].split()[0]
    api = Api(create_app({"database_url": database_url}).test_client(), token)
    api.delete("/meta/rules/won_probability")

    again = run.invoke(main, ["init", "--demo"])

    assert first.exit_code == 0, first.output
    assert f"Installed sales pack rules: {', '.join(PACK_RULES)}" in first.output
    assert again.exit_code == 0, again.output
    assert "Installed sales pack rules" not in again.output
    names = [doc["name"] for doc in api.get("/meta/rules").json["data"]]
    assert names == [name for name in PACK_RULES if name != "won_probability"]
    # The demo data was saved under the rules: computed fields are filled.
    unexplained = api.get("/opportunity?stage=lost&loss_reason__isnull=true&count=1")
    assert unexplained.json["count"] == 0
    deal = api.get("/opportunity?amount__gt=0&probability__gt=0&limit=1").json
    assert deal["data"][0]["weighted_amount"] > 0
    winners = api.get("/account?won_total__gt=0&count=1&limit=1").json
    assert winners["count"] > 0


def pack_entities(*, without: str | None = None) -> list[tuple[str, Any]]:
    """The sales pack's entity documents, as a database made before the pack's
    rules and roles has them; Opportunity without the field ``without``."""
    documents = [
        (name, document)
        for name, document in load_documents(SALES_PACK)
        if "kind" not in document
    ]
    for _, document in documents:
        if document["name"] == "opportunity" and without is not None:
            document["fields"] = [
                spec for spec in document["fields"] if spec["name"] != without
            ]
    return documents


#: A local rule that the demo opportunities break.
NO_SMALL_DEALS = {
    "kind": "rule",
    "name": "no_small_deals",
    "entity": "opportunity",
    "type": "validation",
    "label": "No deals under a million",
    "condition": {"<": [{"var": "amount"}, 1000000]},
    "message": "Deals under a million are not taken.",
}


def test_init_demo_leaves_out_pack_rules_that_do_not_fit(
    run: CliRunner, platform: Platform
) -> None:
    # A database made before Opportunity had its weighted amount.
    platform.store.apply(pack_entities(without="weighted_amount"), actor="test")

    result = run.invoke(main, ["init", "--demo"])

    assert result.exit_code == 0, result.output
    assert "Left out the sales pack rules weighted_amount" in result.output
    installed = [name for name in PACK_RULES if name != "weighted_amount"]
    assert f"Installed sales pack rules: {', '.join(installed)}" in result.output


def test_init_demo_leaves_out_a_pack_rule_that_clashes_with_a_local_rule(
    run: CliRunner, platform: Platform
) -> None:
    # The admin's own automation writes the field the pack's formula computes, so
    # the formula does not fit; the clash is the automation's, not the formula's.
    documents = pack_entities()
    local = {
        "kind": "rule",
        "name": "local_weight",
        "entity": "opportunity",
        "type": "automation",
        "label": "New deals start unweighted",
        "trigger": "create",
        "actions": [{"type": "set_field", "field": "weighted_amount", "value": 0}],
    }
    platform.store.apply([*documents, ("local_weight.json", local)], actor="test")

    result = run.invoke(main, ["init", "--demo"])

    assert result.exit_code == 0, result.output
    assert "Left out the sales pack rules weighted_amount" in result.output
    installed = [name for name in PACK_RULES if name != "weighted_amount"]
    assert f"Installed sales pack rules: {', '.join(installed)}" in result.output
    assert "Demo data: " in result.output


def test_init_demo_shows_the_new_password_when_the_demo_data_is_refused(
    run: CliRunner, platform: Platform
) -> None:
    first = run.invoke(main, ["init"], env={"TAILORCRM_ADMIN_PASSWORD": "first-pass-1"})
    platform.store.apply(
        [*pack_entities(), ("no_small_deals.json", NO_SMALL_DEALS)], actor="test"
    )

    result = run.invoke(main, ["init", "--demo"], env={"TAILORCRM_ADMIN_PASSWORD": ""})

    assert first.exit_code == 0, first.output
    assert result.exit_code == 1
    # The password was changed, so it is shown even though the demo failed.
    password = result.output.split("Admin password: ")[1].split()[0]
    with platform.engine.begin() as connection:
        assert check_password(connection, "admin", password).username == "admin"


def test_init_demo_says_why_the_demo_data_was_refused(
    run: CliRunner, platform: Platform
) -> None:
    platform.store.apply(
        [*pack_entities(), ("no_small_deals.json", NO_SMALL_DEALS)], actor="test"
    )

    result = run.invoke(main, ["init", "--demo"])

    assert result.exit_code == 1
    assert "no demo data was added" in result.output
    assert "opportunity" in result.output
    assert "Deals under a million are not taken." in result.output


def test_init_demo_says_why_it_left_out_the_pack_roles(
    run: CliRunner, platform: Platform
) -> None:
    # A database whose opportunities have no probability, which a role names.
    platform.store.apply(pack_entities(without="probability"), actor="test")

    result = run.invoke(main, ["init", "--demo"])

    assert "Left out the sales pack roles" in result.output
    assert (
        "roles/sales_rep.json: sales_rep.entities.opportunity.fields.probability: "
        "Opportunity has no field 'probability'."
    ) in result.output


#: A rule of the accounts of ``ACCOUNT``.
NAME_REQUIRED = {
    "kind": "rule",
    "name": "needs_name",
    "entity": "account",
    "type": "validation",
    "label": "An account has a name",
    "condition": {"is_blank": {"var": "name"}},
    "message": "Name the account.",
}


def write(path: Path, document: dict) -> Path:
    path.write_text(json.dumps(document))
    return path


def test_meta_apply_dry_run_then_apply_then_export(
    run: CliRunner, tmp_path: Path, app: Flask
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    write(folder / "account.json", ACCOUNT)
    write(folder / "opportunity.json", OPPORTUNITY)

    dry = run.invoke(main, ["meta", "apply", str(folder), "--dry-run"])
    applied = run.invoke(main, ["meta", "apply", str(folder)])
    again = run.invoke(main, ["meta", "apply", str(folder)])
    exported = run.invoke(main, ["meta", "export", str(tmp_path / "out")])

    assert dry.exit_code == 0, dry.output
    assert "Plan (dry run, nothing applied):" in dry.output
    assert "  create_table opportunity" in dry.output
    assert applied.exit_code == 0, applied.output
    assert "Revision 1." in applied.output
    assert "Nothing to change." in again.output
    assert exported.exit_code == 0, exported.output
    saved = json.loads((tmp_path / "out" / "opportunity.json").read_text())
    assert saved["fields"][0]["id"].startswith("fld_")
    assert [f["name"] for f in saved["fields"]] == [
        f["name"] for f in OPPORTUNITY["fields"]
    ]
    assert run.invoke(
        main, ["meta", "apply", str(tmp_path / "out")]
    ).output.strip() == ("Nothing to change.")


def test_meta_export_refuses_a_folder_holding_documents_it_would_not_write(
    run: CliRunner, tmp_path: Path
) -> None:
    """Exported again into the same folder after a document was deleted, the old
    file stayed, and 'meta apply' of the folder brought the document back."""
    folder = tmp_path / "docs"
    folder.mkdir()
    write(folder / "account.json", ACCOUNT)
    write(folder / "opportunity.json", OPPORTUNITY)
    write(folder / "pack.json", {"name": "mine"})
    run.invoke(main, ["meta", "apply", str(folder)])
    out = tmp_path / "out"
    first = run.invoke(main, ["meta", "export", str(out)])
    # What an earlier export wrote for a layout deleted since.
    (out / "layouts").mkdir()
    write(out / "layouts" / "account.json", {"kind": "layout", "entity": "account"})
    (out / "opportunity.json").unlink()

    again = run.invoke(main, ["meta", "export", str(out)])
    into_pack = run.invoke(main, ["meta", "export", str(folder)])

    assert first.exit_code == 0, first.output
    assert again.exit_code == 1
    assert "layouts/account.json" in again.output
    assert "Nothing was written." in again.output
    assert not (out / "opportunity.json").exists()
    # The files an export writes, and a pack's manifest, are no reason to refuse.
    assert into_pack.exit_code == 0, into_pack.output


def test_meta_export_names_a_folder_or_file_it_cannot_write(
    run: CliRunner, tmp_path: Path
) -> None:
    """A folder that could not be made ended the export with a traceback."""
    folder = tmp_path / "docs"
    folder.mkdir()
    write(folder / "account.json", ACCOUNT)
    write(folder / "named.json", NAME_REQUIRED)
    assert run.invoke(main, ["meta", "apply", str(folder)]).exit_code == 0
    (tmp_path / "a-file").write_text("", encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    (out / "rules").write_text("", encoding="utf-8")

    under_a_file = run.invoke(main, ["meta", "export", str(tmp_path / "a-file" / "x")])
    rules_a_file = run.invoke(main, ["meta", "export", str(out)])

    assert under_a_file.exit_code == 1
    assert under_a_file.exc_info is None or under_a_file.exc_info[0] is SystemExit
    assert f"Cannot make the folder {tmp_path / 'a-file' / 'x'}" in (
        under_a_file.output
    )
    assert rules_a_file.exit_code == 1
    assert rules_a_file.exc_info is None or rules_a_file.exc_info[0] is SystemExit
    assert f"Cannot write {out / 'rules' / 'needs_name.json'}" in rules_a_file.output


def test_meta_apply_reports_every_problem_and_fails(
    run: CliRunner, tmp_path: Path
) -> None:
    bad = dict(OPPORTUNITY, fields=[{"name": "Bad", "type": "text", "label": "B"}])
    path = write(tmp_path / "opportunity.json", bad)

    result = run.invoke(main, ["meta", "apply", str(path)])

    assert result.exit_code == 1
    assert "opportunity.json: fields[0].name" in result.output
    assert "opportunity.json: display_field" in result.output


def test_meta_apply_names_both_files_of_a_rule_given_twice(
    run: CliRunner, tmp_path: Path
) -> None:
    # The refusal named only the second file, leaving the first to be found.
    folder = tmp_path / "docs"
    (folder / "rules").mkdir(parents=True)
    write(folder / "account.json", ACCOUNT)
    write(folder / "needs_name.json", NAME_REQUIRED)
    write(folder / "rules" / "needs_name.json", dict(NAME_REQUIRED, label="Again"))

    result = run.invoke(main, ["meta", "apply", str(folder)])

    assert result.exit_code == 1
    assert (
        "rules/needs_name.json: needs_name.name: Rule 'needs_name' is defined "
        "more than once (also in needs_name.json)."
    ) in result.output


def test_meta_apply_names_the_kinds_it_takes_for_one_it_does_not(
    run: CliRunner, tmp_path: Path
) -> None:
    view = {"kind": "view", "entity": "account", "label": "Mine"}

    result = run.invoke(main, ["meta", "apply", str(write(tmp_path / "v.json", view))])

    assert result.exit_code == 1
    assert "v.json: kind: Documents of kind 'view' cannot be applied" in result.output
    assert "roles the kind 'role'" in result.output


def test_meta_apply_reads_files_that_begin_with_a_byte_order_mark(
    run: CliRunner, tmp_path: Path
) -> None:
    # Some editors save UTF-8 with a byte order mark; the file was refused
    # with the JSON library's own advice to decode it otherwise.
    path = tmp_path / "account.json"
    path.write_text(json.dumps(ACCOUNT), encoding="utf-8-sig")

    result = run.invoke(main, ["meta", "apply", str(path)])

    assert result.exit_code == 0, result.output
    assert "Revision 1." in result.output


def test_meta_apply_unreadable_file(run: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text("{nope")

    result = run.invoke(main, ["meta", "apply", str(path)])

    assert result.exit_code != 0
    assert "broken.json" in result.output


def revision(platform: Platform) -> int:
    with platform.engine.connect() as connection:
        return current_revision(connection)


def apply_account_and_opportunity(run: CliRunner, folder: Path) -> None:
    folder.mkdir()
    write(folder / "account.json", ACCOUNT)
    write(folder / "opportunity.json", OPPORTUNITY)
    result = run.invoke(main, ["meta", "apply", str(folder)])
    assert result.exit_code == 0, result.output


CEILING_RULE = {
    "kind": "rule",
    "name": "deal_ceiling",
    "entity": "opportunity",
    "type": "validation",
    "label": "A deal stays under the ceiling",
    "condition": {">": [{"var": "amount"}, "<number>"]},
    "message": "Split the deal in two.",
}
CAPPED_OPPORTUNITY = {
    **OPPORTUNITY,
    "fields": [
        dict(spec, max="<number>") if spec["name"] == "amount" else spec
        for spec in OPPORTUNITY["fields"]
    ],
}


def _applied_unread(
    run: CliRunner, platform: Platform, tmp_path: Path, file_name: str, text: str
) -> str:
    """Apply the file ``file_name`` holding ``text`` over the Account and
    Opportunity; check that it is refused as unreadable and changes nothing, and
    return what is said of the files after the first line."""
    apply_account_and_opportunity(run, tmp_path / "docs")
    path = tmp_path / file_name
    path.write_text(text)
    before = revision(platform)

    result = run.invoke(main, ["meta", "apply", str(path)])

    assert result.exit_code == 1
    heading = "Error: These files cannot be read; nothing was changed.\n"
    assert result.output.startswith(heading)
    assert revision(platform) == before
    return result.output.removeprefix(heading)


@pytest.mark.parametrize(
    ("literal", "reason"),
    [
        ("NaN", "NaN is not a JSON number."),
        ("Infinity", "Infinity is not a JSON number."),
        ("1e999", "1e999 is too large a number."),
    ],
)
@pytest.mark.parametrize(
    ("file_name", "document", "where"),
    [
        ("deal_ceiling.json", CEILING_RULE, "condition.>[1]"),
        ("opportunity.json", CAPPED_OPPORTUNITY, "fields[3].max"),
    ],
    ids=["rule", "entity"],
)
def test_meta_apply_refuses_a_number_json_cannot_hold(
    run: CliRunner,
    platform: Platform,
    tmp_path: Path,
    literal: str,
    reason: str,
    file_name: str,
    document: dict[str, Any],
    where: str,
) -> None:
    text = json.dumps(document).replace('"<number>"', literal)

    output = _applied_unread(run, platform, tmp_path, file_name, text)

    assert output == f"  {file_name}: {where}: {reason}\n"


@pytest.mark.parametrize("depth", [300, 5000])
def test_meta_apply_refuses_a_file_nested_too_deeply(
    run: CliRunner, platform: Platform, tmp_path: Path, depth: int
) -> None:
    # 300 levels parse, then exhaust the stack of the validator's messages;
    # 5,000 exhaust the parser's.
    nested = "[" * depth + "]" * depth
    text = json.dumps(CEILING_RULE)[:-1] + f', "notes": {nested}}}'

    output = _applied_unread(run, platform, tmp_path, "tangle.json", text)

    assert output == (
        f"  tangle.json: Arrays and objects nest more than {MAX_NESTING} deep.\n"
    )


def test_meta_apply_names_every_file_it_cannot_read_and_applies_none(
    run: CliRunner, platform: Platform, tmp_path: Path
) -> None:
    folder = tmp_path / "docs"
    (folder / "rules").mkdir(parents=True)
    write(folder / "account.json", ACCOUNT)
    text = json.dumps(CAPPED_OPPORTUNITY).replace('"<number>"', "-Infinity")
    (folder / "opportunity.json").write_text(text)
    text = json.dumps(CEILING_RULE).replace('"<number>"', "1e999")
    (folder / "rules" / "deal_ceiling.json").write_text(text)
    (folder / "rules" / "half_written.json").write_text('{\n  "kind" "rule"\n}')

    result = run.invoke(main, ["meta", "apply", str(folder)])

    assert result.exit_code == 1
    assert result.output == (
        "Error: These files cannot be read; nothing was changed.\n"
        "  opportunity.json: fields[3].max: -Infinity is not a JSON number.\n"
        "  rules/deal_ceiling.json: condition.>[1]: 1e999 is too large a number.\n"
        "  rules/half_written.json: line 2, column 10: Expecting ':' delimiter.\n"
    )
    assert revision(platform) == 0


def test_meta_export_leaves_out_and_names_a_stored_number_json_cannot_hold(
    run: CliRunner, platform: Platform, tmp_path: Path, database_url: str
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("PostgreSQL refuses to store NaN in the first place.")
    apply_account_and_opportunity(run, tmp_path / "docs")
    # As meta apply stored it before it read files strictly.
    stored = dict(CEILING_RULE, condition={">": [{"var": "amount"}, float("nan")]})
    platform.store.apply([("deal_ceiling.json", stored)], actor="test")
    out = tmp_path / "out"

    result = run.invoke(main, ["meta", "export", str(out)])

    assert result.exit_code == 1
    assert result.output.splitlines()[-2:] == [
        "Error: These stored documents cannot be written as JSON; "
        "apply corrected ones with 'meta apply'.",
        "  rules/deal_ceiling.json: condition.>[1]: NaN is not a JSON number.",
    ]
    written = sorted(path.relative_to(out).as_posix() for path in out.rglob("*"))
    assert written == ["account.json", "opportunity.json"]


def test_sales_pack_applies_from_the_cli(run: CliRunner) -> None:
    result = run.invoke(main, ["meta", "apply", str(SALES_PACK)])

    assert result.exit_code == 0, result.output
    assert "create_table sales_lead" in result.output


def test_an_export_with_removed_fields_and_entities_applies_to_a_fresh_database(
    run: CliRunner, tmp_path: Path, app: Flask
) -> None:
    # The roles keep what they give a removed field or entity, which the export
    # leaves out; the export must still be a whole that applies anywhere.
    platform: Platform = app.extensions["tailorcrm"]
    run.invoke(main, ["meta", "apply", str(SALES_PACK)])
    opportunity = json.loads((SALES_PACK / "opportunity.json").read_text())
    opportunity["fields"] = [
        spec for spec in opportunity["fields"] if spec["name"] != "erp_code"
    ]
    run.invoke(main, ["meta", "apply", str(write(tmp_path / "o.json", opportunity))])
    platform.store.remove_entity("activity", actor="test")
    fresh = {"TAILORCRM_DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.db'}"}

    exported = run.invoke(main, ["meta", "export", str(tmp_path / "out")])
    elsewhere = run.invoke(main, ["meta", "apply", str(tmp_path / "out")], env=fresh)
    here = run.invoke(main, ["meta", "apply", str(tmp_path / "out")])
    with platform.reading() as (_, catalog):
        kept = catalog.roles["sales_rep"].document["entities"]

    assert exported.exit_code == 0, exported.output
    assert elsewhere.exit_code == 0, elsewhere.output
    assert "add_role sales_rep" in elsewhere.output
    assert here.output.strip() == "Nothing to change."
    assert kept["opportunity"]["fields"]["erp_code"] == "hidden"
    assert "activity" in kept


def test_user_and_token_create(run: CliRunner, database_url: str) -> None:
    run.invoke(main, ["init"])

    created = run.invoke(
        main, ["user", "create", "seller", "--password", "seller-password"]
    )
    duplicate = run.invoke(
        main, ["user", "create", "seller", "--password", "seller-password"]
    )
    short = run.invoke(main, ["user", "create", "other", "--password", "short"])
    token = run.invoke(main, ["token", "create", "seller", "--name", "laptop"])
    missing = run.invoke(main, ["token", "create", "nobody"])

    assert created.exit_code == 0, created.output
    assert duplicate.exit_code == 1
    assert short.exit_code == 1
    assert "password" in short.output
    assert token.exit_code == 0
    secret = token.output.strip().splitlines()[-1]
    assert secret.startswith("tcrm_")
    api = Api(create_app({"database_url": database_url}).test_client(), secret)
    assert api.get("/meta/entities").status_code == 200
    assert missing.exit_code == 1


def test_expired_token_is_refused(run: CliRunner, database_url: str) -> None:
    import datetime as dt

    import sqlalchemy as sa

    from tailorcrm.platform.db import api_tokens

    run.invoke(main, ["init"])
    secret = run.invoke(main, ["token", "create", "admin", "--expires-days", "1"])
    app = create_app({"database_url": database_url})
    api = Api(app.test_client(), secret.output.strip().splitlines()[-1])
    assert api.get("/meta/entities").status_code == 200

    with app.extensions["tailorcrm"].engine.begin() as connection:
        connection.execute(
            sa.update(api_tokens).values(expires_at=dt.datetime(2000, 1, 1))
        )

    assert api.get("/meta/entities").status_code == 401


def test_init_refuses_a_short_admin_password(run: CliRunner) -> None:
    result = run.invoke(main, ["init"], env={"TAILORCRM_ADMIN_PASSWORD": "short"})

    assert result.exit_code == 1
    assert "at least 10 characters" in result.output
    assert "Traceback" not in result.output


def test_init_demo_again_keeps_the_admins_changes(
    run: CliRunner, database_url: str
) -> None:
    first = run.invoke(main, ["init", "--demo"])
    token = first.output.split("API token: ")[1].split()[0]
    api = Api(create_app({"database_url": database_url}).test_client(), token)
    account = api.get("/meta/entities/account").json
    account["fields"].append({"name": "tier", "type": "text", "label": "Tier"})
    api.put("/meta/entities/account", json=account)

    again = run.invoke(main, ["init", "--demo"])

    assert again.exit_code == 0, again.output
    assert "already installed" in again.output
    names = [f["name"] for f in api.get("/meta/entities/account").json["fields"]]
    assert "tier" in names


def test_init_demo_again_makes_a_deactivated_admin_active(
    run: CliRunner, database_url: str
) -> None:
    run.invoke(main, ["init", "--demo"])
    run.invoke(main, ["user", "create", "noor.vale", "--admin", "--password", "x" * 12])
    run.invoke(main, ["user", "deactivate", "admin"])

    again = run.invoke(main, ["init", "--demo"])

    assert again.exit_code == 0, again.output
    assert "admin is active again" in again.output
    token = again.output.split("API token: ")[1].split()[0]
    api = Api(create_app({"database_url": database_url}).test_client(), token)
    assert api.get("/users/admin").json["active"] is True


def test_export_writes_decimals_in_fixed_point(
    run: CliRunner, database_url: str, tmp_path: Path
) -> None:
    run.invoke(main, ["init"])
    document = {
        "name": "measure",
        "label": "Measure",
        "fields": [
            {
                "name": "ratio",
                "type": "decimal",
                "label": "R",
                "precision": 12,
                "scale": 8,
            }
        ],
    }
    run.invoke(main, ["meta", "apply", str(write(tmp_path / "m.json", document))])
    (tmp_path / "in.csv").write_text("ratio\n0.00006629\n")
    run.invoke(main, ["import", "measure", str(tmp_path / "in.csv")])

    exported = run.invoke(main, ["export", "measure"])
    again = run.invoke(main, ["import", "measure", str(tmp_path / "in.csv")])

    assert exported.output.splitlines()[1].split(",")[1] == "0.00006629"
    assert again.exit_code == 0


def _commands(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple]:
    found: list[tuple] = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += _commands(command, (*path, name))
        else:
            found.append(((*path, name), command))
    return found


def test_every_option_of_every_command_says_what_it_does() -> None:
    """`--help` is what a first-time operator reads: no option is left bare."""
    bare = [
        f"{' '.join(path)} {option.opts[0]}"
        for path, command in _commands(main)
        for option in command.params
        if isinstance(option, click.Option) and not option.help
    ]

    assert bare == []


def test_help_of_import_and_team_create_explains_the_repeatable_options() -> None:
    runner = CliRunner()

    imported = runner.invoke(main, ["import", "--help"])
    team = runner.invoke(main, ["team", "create", "--help"])

    assert "repeatable" in imported.output.split("--map", 1)[1].split("--key")[0]
    assert "repeatable" in team.output.split("--role", 1)[1]


def test_init_help_names_the_variables_it_reads() -> None:
    help_text = CliRunner().invoke(main, ["init", "--help"]).output

    assert "TAILORCRM_ADMIN_PASSWORD" in help_text
    assert "TAILORCRM_DATABASE_URL" in help_text
