"""The ``tailorcrm`` command line.

The database comes from ``TAILORCRM_DATABASE_URL`` (default: SQLite in ``instance/``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

import click
import sqlalchemy as sa

from ..errors import (
    BadRequest,
    InvalidMetadata,
    Problem,
    TailorError,
    ValidationFailed,
)
from ..metadata import (
    LAYOUT,
    ROLE,
    RULE,
    Catalog,
    EntityDef,
    check_layout_document,
    check_rule_document,
    compile_rules,
    live_grants,
    permissions_for,
)
from ._app import Platform, create_app
from .access import (
    create_team,
    delete_team,
    list_teams,
    load_caller,
    set_team,
    set_user_attributes,
    set_user_roles,
    user_id_of,
    user_info,
)
from .auth import (
    MIN_PASSWORD_LENGTH,
    SCOPES,
    create_token,
    create_user,
    deactivate_user,
    end_sessions,
    find_user,
    generate_password,
    list_tokens,
    revoke_token,
    set_password,
)
from .config import Settings, SettingsError
from .db import held_back, users
from .exporting import csv_cell, csv_writer, export_columns, export_records
from .importer import ImportFailed, ImportReport, counted, import_csv
from .layoutstore import stored_layouts
from .records import SYSTEM_ACTOR, Actor, BatchFailed, RecordService
from .strictjson import JSONRefused, read_json, write_json

SAMPLE_PACK = Path(__file__).resolve().parents[2] / "sample_schemas" / "sales"
#: The subfolder of a metadata folder that holds layouts, one ``<entity>.json`` each.
LAYOUTS_FOLDER = "layouts"
#: The subfolder of a metadata folder that holds rules, one ``<name>.json`` each.
RULES_FOLDER = "rules"
#: The subfolder of a metadata folder that holds roles, one ``<name>.json`` each.
ROLES_FOLDER = "roles"


def _platform() -> Platform:
    settings = _settings()
    try:
        return Platform(settings)
    except sa.exc.OperationalError as error:
        raise click.ClickException(_cannot_open(settings, error)) from None


def _cannot_open(settings: Settings, error: sa.exc.OperationalError) -> str:
    """Say which database could not be opened and what its driver answered
    (the URL's password left out)."""
    url = sa.engine.make_url(settings.database_url).render_as_string(hide_password=True)
    answer = " ".join(str(error.orig).split())
    return f"Cannot open the database {url} (TAILORCRM_DATABASE_URL): {answer}"


def _settings() -> Settings:
    """The settings from the environment; one the platform cannot run with stops
    the command with its message rather than a traceback."""
    try:
        return Settings.load()
    except SettingsError as error:
        raise click.ClickException(str(error)) from None


def _fail(error: TailorError) -> None:
    click.echo(f"Error: {error.message}", err=True)
    for problem in error.problems:
        click.echo(f"  {problem}", err=True)
    sys.exit(1)


@click.group()
def main() -> None:
    """Tailor CRM: a metadata-driven CRM platform."""


# -- init and serve ------------------------------------------------------------------


@main.command()
@click.option("--demo", is_flag=True, help="Install the sales pack and demo data.")
def init(demo: bool) -> None:
    """Create the database and the first admin user, 'admin'.

    The database is TAILORCRM_DATABASE_URL (default: SQLite in
    instance/tailorcrm.db under the current folder); the admin's password is
    TAILORCRM_ADMIN_PASSWORD, or generated and printed. Run again with --demo,
    it prints a fresh password and API token for admin.
    """
    password = os.environ.get("TAILORCRM_ADMIN_PASSWORD") or generate_password()
    if len(password) < MIN_PASSWORD_LENGTH:
        raise click.ClickException(
            f"TAILORCRM_ADMIN_PASSWORD must have at least {MIN_PASSWORD_LENGTH} "
            "characters; nothing was created."
        )
    platform = _platform()
    with platform.engine.begin() as connection:
        existing = connection.execute(
            users.select().where(users.c.username == "admin")
        ).first()
        if existing is not None and not demo:
            click.echo("The database is already initialized; nothing was changed.")
            return
        if existing is None:
            admin = create_user(connection, "admin", password, is_admin=True)
        else:
            if not existing.active:
                # Nothing else makes a user active again: a fresh demo admin is
                # how an operator gets back in.
                connection.execute(
                    users.update().where(users.c.id == existing.id).values(active=True)
                )
                click.echo("The user admin was deactivated; admin is active again.")
            # The new password also ends every session signed in with the old.
            admin = find_user(connection, "admin")
            set_password(connection, admin.id, password)
    demo_users: list[str] = []
    failure: TailorError | None = None
    try:
        if demo:
            _install_demo(platform, admin.actor())
            demo_users = _demo_people(platform, password)
    except TailorError as error:
        failure = error
    # The password is already changed: it is shown even when the demo failed, or
    # nobody could sign in as admin any more.
    with platform.engine.begin() as connection:
        token = create_token(connection, admin, name="demo" if demo else "init")
    click.echo(f"Database: {platform.settings.database_url}")
    click.echo("Admin user: admin")
    click.echo(f"Admin password: {password}")
    if demo_users:
        click.echo("Demo users with the same password: " + "; ".join(demo_users) + ".")
    click.echo(f"API token: {token}")
    click.echo(
        "Try, once 'tailorcrm serve' runs (on port 5000 unless --port says "
        "otherwise): curl -H 'Authorization: Bearer <token>' "
        "http://127.0.0.1:5000/api/v1/meta/entities"
    )
    if failure is not None:
        _fail(failure)


#: Demo users: name, roles, team, country (what the reps' sharing rule reads).
DEMO_PEOPLE = (
    ("riley.north", ("sales_rep",), "north", "United Kingdom"),
    ("sam.north", ("sales_rep",), "north", "Ireland"),
    ("jo.south", ("sales_rep",), "south", "Spain"),
    ("morgan.lee", ("sales_manager",), None, None),
    ("avery.audit", ("auditor",), None, None),
)


def _demo_people(platform: Platform, password: str) -> list[str]:
    """Create the demo's sellers, manager and auditor, once, with the pack's roles.

    They get ``password`` (the admin's), so each run's printed password signs
    them all in; each rep owns a share of the demo records, so team access shows.
    """
    with platform.transaction() as (connection, catalog):
        missing = [
            person
            for person in DEMO_PEOPLE
            if all(role in catalog.roles for role in person[1])
        ]
        described = []
        for name, roles, _, country in missing:
            existing = connection.execute(
                users.select().where(users.c.username == name)
            ).first()
            if existing is None:
                create_user(connection, name, password)
                set_user_roles(connection, catalog, name, roles)
                if country:
                    set_user_attributes(connection, name, {"country": country})
            else:
                set_password(connection, int(existing.id), password)
            described.append(f"{name} ({', '.join(roles)})")
        _demo_teams(connection, catalog)
    return described


def _demo_teams(connection: Any, catalog: Catalog) -> None:
    import sqlalchemy as sa

    from .db import teams

    names = {row.name for row in connection.execute(sa.select(teams.c.name))}
    reps = [(name, team_name) for name, _, team_name, _ in DEMO_PEOPLE if team_name]
    for team_name in sorted({team_name for _, team_name in reps}):
        if team_name in names:
            continue
        create_team(connection, team_name, team_name.capitalize())
        members = [name for name, mine in reps if mine == team_name]
        set_team(connection, catalog, team_name, members=members)
        # Each rep owns a share of the records: one in four.
        for member in members:
            user_id = connection.execute(
                sa.select(users.c.id).where(users.c.username == member)
            ).scalar_one()
            share = [name for name, _ in reps].index(member)
            for entity in catalog.live():
                table = entity.table
                connection.execute(
                    table.update()
                    .where((table.c.id + share) % 4 == 0)
                    .values(owner_id=user_id)
                )
        names.add(team_name)


def _install_demo(platform: Platform, actor: Actor) -> None:
    from .demo import populate

    everything = load_documents(SAMPLE_PACK)
    documents = [(n, doc) for n, doc in everything if "kind" not in doc]
    with platform.reading() as (_, catalog):
        known = set(catalog.entities)
    # Only entities the database has never had are installed: upgrading a pack
    # over local changes (or over an entity the admin removed) needs the packs
    # feature, so until then a re-run leaves the admin's work alone.
    missing = [(n, doc) for n, doc in documents if doc["name"] not in known]
    if missing:
        result = platform.store.apply(missing, actor=actor.username)
        names = ", ".join(doc["name"] for _, doc in missing)
        click.echo(
            f"Installed from the sales pack: {names} (revision {result.revision})."
        )
    else:
        click.echo("The sales pack is already installed; its entities were kept.")
    layouts = [(n, doc) for n, doc in everything if doc.get("kind") == LAYOUT]
    _install_demo_layouts(platform, layouts, actor)
    # Rules come before the demo data, which is saved under them like any data.
    rules = [(n, doc) for n, doc in everything if doc.get("kind") == RULE]
    _install_demo_rules(platform, rules, actor)
    roles = [
        (n, doc)
        for n, doc in everything
        if doc.get("kind") == ROLE
        and not platform.store.history(doc["name"], kind=ROLE)
    ]
    if roles:
        try:
            result = platform.store.apply(roles, actor=actor.username)
            click.echo(
                "Installed sales pack roles: "
                + ", ".join(doc["name"] for _, doc in roles)
                + f" (revision {result.revision})."
            )
        except TailorError as error:
            click.echo(f"Left out the sales pack roles: {error.message}")
            for problem in error.problems:
                click.echo(f"  {problem}")
    with platform.reading() as (_, catalog):
        live = {entity.name for entity in catalog.live()}
    if any(doc["name"] not in live for _, doc in documents):
        click.echo("Some sales pack entities were removed; no demo data was added.")
        return
    with platform.transaction() as (connection, catalog):
        service = RecordService(connection, catalog, actor)
        if _has_records(connection, catalog.entity("account")):
            click.echo("Demo data is already there.")
            return

        def create(entity: str, rows: list[dict[str, Any]]) -> list[int]:
            try:
                ids, _ = service.create_many(entity, rows)
            except BatchFailed as error:
                # The entities or rules as changed here refuse the demo records;
                # the first bad row says why, for each is much like the others.
                _, problems = min(error.rows.items())
                raise ValidationFailed(
                    f"{len(error.rows)} of the {len(rows)} demo {entity} records "
                    "do not fit the entities and rules as changed here, so no "
                    "demo data was added. The first:",
                    problems=problems,
                ) from None
            return [int(i) for i in ids if i is not None]

        counts = populate(create)
    click.echo(
        "Demo data: " + ", ".join(f"{count} {name}" for name, count in counts.items())
    )


def _install_demo_layouts(
    platform: Platform, documents: list[tuple[str, Any]], actor: Actor
) -> None:
    # As with entities, only layouts the database never had are installed, so a
    # layout the admin changed or deleted stays as the admin left it.
    fresh = [
        (source, document)
        for source, document in documents
        if not platform.store.history(document["entity"], kind=LAYOUT)
    ]
    with platform.reading() as (_, catalog):
        fitting = [
            (n, doc) for n, doc in fresh if not check_layout_document(doc, catalog)
        ]
    skipped = sorted(
        {doc["entity"] for _, doc in fresh} - {doc["entity"] for _, doc in fitting}
    )
    if fitting:
        result = platform.store.apply(fitting, actor=actor.username)
        names = ", ".join(doc["entity"] for _, doc in fitting)
        click.echo(
            f"Installed sales pack layouts: {names} (revision {result.revision})."
        )
    if skipped:
        click.echo(
            "Kept the generated layouts of "
            + ", ".join(skipped)
            + ": the pack's layouts do not fit those entities as changed here."
        )


def _install_demo_rules(
    platform: Platform, documents: list[tuple[str, Any]], actor: Actor
) -> None:
    # As with layouts: only rules the database never had are installed, so a rule
    # the admin changed or deleted stays as the admin left it, and only those that
    # fit the entities as they are here.
    fresh = [
        (source, document)
        for source, document in documents
        if not platform.store.history(document["name"], kind=RULE)
    ]
    with platform.reading() as (_, catalog):
        fitting = _fitting_rules(fresh, catalog)
    skipped = sorted(
        {doc["name"] for _, doc in fresh} - {doc["name"] for _, doc in fitting}
    )
    if fitting:
        result = platform.store.apply(fitting, actor=actor.username)
        names = ", ".join(doc["name"] for _, doc in fitting)
        click.echo(f"Installed sales pack rules: {names} (revision {result.revision}).")
    if skipped:
        click.echo(
            "Left out the sales pack rules "
            + ", ".join(skipped)
            + ": they do not fit the entities as changed here."
        )


def _fitting_rules(
    documents: list[tuple[str, Any]], catalog: Catalog
) -> list[tuple[str, Any]]:
    """The rule documents that fit the catalog's entities and rules, in order.

    A rule fits when it brings no problem the rules before it did not have: its
    own, and those it causes to a rule already there (an automation of the
    admin's that writes the field the pack's formula would compute).
    """
    every = {stored.name: stored.document for stored in catalog.rules.documents_of()}
    _, problems = compile_rules(every, catalog.entities)
    known = {(problem.field, problem.code) for problem in problems}
    fitting = []
    for source, document in documents:
        if check_rule_document(document):
            continue
        name = document["name"]
        _, problems = compile_rules(
            {**every, name: document}, catalog.entities, new=[name]
        )
        found = {(problem.field, problem.code) for problem in problems}
        if found - known:
            continue
        every[name] = document
        known = found
        fitting.append((source, document))
    return fitting


def _has_records(connection: Any, entity: EntityDef) -> bool:
    import sqlalchemy as sa

    return connection.execute(sa.select(entity.table.c.id).limit(1)).first() is not None


@main.command()
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="The address to listen on."
)
@click.option(
    "--port",
    default=5000,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="The port to listen on.",
)
def serve(host: str, port: int) -> None:
    """Serve the web application and the API."""
    settings = _settings()
    try:
        app = create_app()
    except sa.exc.OperationalError as error:
        raise click.ClickException(_cannot_open(settings, error)) from None
    click.echo(f"Serving Tailor CRM on http://{host}:{port}")
    app.run(host=host, port=port, threaded=True, use_reloader=False)


# -- metadata ------------------------------------------------------------------------


@main.group()
def meta() -> None:
    """Apply, export and purge metadata documents."""


def load_documents(path: Path) -> list[tuple[str, Any]]:
    """Read one document file, or a folder's documents.

    A folder holds entity documents as ``*.json``, layouts in its ``layouts/``
    subfolder, rules in ``rules/`` and roles in ``roles/``, as ``meta export``
    writes them; a document is a layout, a rule or a role by its ``kind``
    (``"layout"``, ``"rule"``, ``"role"``), wherever it lies. A folder's
    ``pack.json`` manifest is not a metadata document and is skipped.

    :raises BadRequest: naming every file that cannot be read, or is not JSON as
        the API reads it (:func:`.strictjson.read_json`), and where in it.
    """
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        files += sorted((path / LAYOUTS_FOLDER).glob("*.json"))
        files += sorted((path / RULES_FOLDER).glob("*.json"))
        files += sorted((path / ROLES_FOLDER).glob("*.json"))
    else:
        files = [path]
    documents = []
    problems = []
    for file in files:
        if path.is_dir() and file == path / "pack.json":
            continue
        name = file.relative_to(path).as_posix() if path.is_dir() else file.name
        try:
            # A byte order mark, which some editors write, is not part of it.
            text = file.read_text(encoding="utf-8-sig")
            documents.append((name, read_json(text)))
        except (OSError, UnicodeDecodeError) as error:
            problems.append(Problem(name, "unreadable", f"Cannot read it: {error}."))
        except JSONRefused as error:
            problems += [_in_file(name, problem) for problem in error.problems]
    if problems:
        raise BadRequest(
            "These files cannot be read; nothing was changed.", problems=problems
        )
    if not documents:
        raise click.ClickException(f"No JSON documents in {path}.")
    return documents


def _in_file(name: str, problem: Problem) -> Problem:
    where = f"{name}: {problem.field}" if problem.field else name
    return Problem(where, problem.code, problem.message)


@meta.command("apply")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Print the plan without applying it.")
def meta_apply(path: Path, dry_run: bool) -> None:
    """Create or change entities, layouts, rules and roles from a file or a folder.

    Layout, rule and role documents (with "kind": "layout", "rule" or "role") are
    applied after the entities, in the same revision.
    """
    try:
        documents = load_documents(path)
        result = _platform().store.apply(documents, actor="cli", dry_run=dry_run)
    except TailorError as error:
        _fail(error)
    if not result.plan.operations:
        click.echo("Nothing to change.")
        return
    heading = "Plan (dry run, nothing applied):" if dry_run else "Applied plan:"
    click.echo(heading)
    for step in result.plan.describe():
        click.echo(f"  {step}")
    if not dry_run:
        click.echo(f"Revision {result.revision}.")


@meta.command("export")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def meta_export(directory: Path) -> None:
    """Write every entity, layout, rule and role document to DIRECTORY, one file
    each.

    Stored layouts go to DIRECTORY/layouts/ENTITY.json (an entity showing the
    generated layout has none), rules to DIRECTORY/rules/NAME.json and roles to
    DIRECTORY/roles/NAME.json, as a pack holds them. 'meta apply DIRECTORY'
    reads them all back. A stored document holding NaN or Infinity, which JSON
    cannot hold, is named and left out, and the command fails. A DIRECTORY that
    holds other documents 'meta apply' would read (one deleted since an earlier
    export) is refused, and nothing is written.
    """
    platform = _platform()
    _make_folder(directory)
    with platform.reading() as (connection, catalog):
        if not catalog.live():
            click.echo("There are no entities to export.")
        files = [
            (Path(f"{entity.name}.json"), entity.document) for entity in catalog.live()
        ]
        files += [
            (Path(LAYOUTS_FOLDER, f"{name}.json"), layout.document)
            for name, layout in sorted(stored_layouts(connection).items())
        ]
        files += [
            (Path(RULES_FOLDER, f"{stored.name}.json"), stored.document)
            for stored in catalog.rules.documents_of()
        ]
        # Without what roles give removed entities and fields, which the export
        # leaves out; applied here again, the roles keep them (plan_roles).
        files += [
            (
                Path(ROLES_FOLDER, f"{name}.json"),
                live_grants(role.document, catalog.entities),
            )
            for name, role in sorted(catalog.roles.items())
        ]
    stale = _not_exported(directory, {name for name, _ in files})
    if stale:
        # Left there, 'meta apply DIRECTORY' would bring their documents back.
        raise click.ClickException(
            f"{directory} holds documents this export does not write (deleted or "
            f"removed since, or not metadata): {', '.join(stale)}. 'meta apply' "
            "would read them; delete them or export into an empty folder. "
            "Nothing was written."
        )
    problems = []
    for name, document in files:
        try:
            _write_json(directory / name, document)
        except JSONRefused as error:
            problems += [_in_file(name.as_posix(), found) for found in error.problems]
    if problems:
        message = (
            "These stored documents cannot be written as JSON; "
            "apply corrected ones with 'meta apply'."
        )
        _fail(InvalidMetadata(message, problems=problems))


def _not_exported(directory: Path, written: set[Path]) -> list[str]:
    """The files of ``directory`` that 'meta apply' reads (as
    :func:`load_documents` finds them) and an export would not write."""
    found = [directory / name for name in written]
    return [
        file.relative_to(directory).as_posix()
        for folder in ("", LAYOUTS_FOLDER, RULES_FOLDER, ROLES_FOLDER)
        for file in sorted((directory / folder).glob("*.json"))
        if file not in found and file != directory / "pack.json"
    ]


def _make_folder(folder: Path) -> None:
    """Make ``folder`` (and its parents) for an export, or fail naming it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise click.ClickException(
            f"Cannot make the folder {folder}: {error.strerror}. Nothing was written."
        ) from None


def _write_json(target: Path, document: Any) -> None:
    # Documents stored before files were read strictly may hold NaN or Infinity,
    # which Python would write and no strict JSON parser reads back.
    text = write_json(document, indent=2)
    try:
        target.parent.mkdir(exist_ok=True)
        target.write_text(text + "\n", encoding="utf-8")
    except OSError as error:
        raise click.ClickException(
            f"Cannot write {target}: {error.strerror}."
        ) from None
    click.echo(f"wrote {target}")


@meta.command("purge")
@click.argument("target")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def meta_purge(target: str, yes: bool) -> None:
    """Drop the data of a removed field (ENTITY.FIELD) or entity (ENTITY)."""
    entity, _, field = target.partition(".")
    what = f"column {entity}.{field}" if field else f"table {entity}"
    store = _platform().store
    try:
        # Asked only of a purge that can be made.
        store.check_purge(entity, field or None)
        if not yes:
            click.confirm(
                f"This drops the {what} and all its data for good. Continue?",
                abort=True,
            )
        result = store.purge(entity, field or None, actor="cli")
    except TailorError as error:
        _fail(error)
    click.echo(f"Dropped the {what} (revision {result.revision}).")


# -- records -------------------------------------------------------------------------


def _actor(platform: Platform, username: str | None) -> Actor:
    """The user a command saves records as.

    A user is an administrator through the flag of their account or through a
    role that says ``"admin": true``, as the API and the pages count them, so
    that such a user may also bypass automation here.
    """
    if username is None:
        return SYSTEM_ACTOR
    with platform.reading() as (connection, catalog):
        user = find_user(connection, username)
        caller = load_caller(connection, user.id, user.username, user.is_admin)
        admin = permissions_for(caller, catalog.roles).admin
    return replace(user.actor(), is_admin=admin)


@main.command("import")
@click.argument("entity")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--map",
    "maps",
    multiple=True,
    metavar="FIELD=COLUMN",
    help="Fill FIELD from COLUMN (repeatable); the other columns are matched to "
    "fields by name or label, ignoring case.",
)
@click.option("--key", help="Upsert on this external-id field.")
@click.option("--dry-run", is_flag=True, help="Check every row; import nothing.")
@click.option("--skip-bad-rows", is_flag=True, help="Import the good rows only.")
@click.option(
    "--bypass-automation",
    is_flag=True,
    help="Run no automations for these rows (the user must be an admin).",
)
@click.option(
    "--user",
    "username",
    default="admin",
    show_default=True,
    help="The user who creates and owns the records (the command line works "
    "with full rights, whatever their roles).",
)
def import_command(
    entity: str,
    file: Path,
    maps: tuple[str, ...],
    key: str | None,
    dry_run: bool,
    skip_bad_rows: bool,
    bypass_automation: bool,
    username: str,
) -> None:
    """Import records of ENTITY from a CSV file."""
    mapping: dict[str, str] = {}
    for item in maps:
        field, sep, column = item.partition("=")
        if not sep or not field or not column:
            raise click.BadParameter(
                f"{item!r} is not FIELD=COLUMN.", param_hint="--map"
            )
        field = field.strip()
        if field in mapping:
            # One field takes one column; the later option must not quietly
            # win over the earlier one, as the import page refuses it too.
            raise click.BadParameter(
                f"{field!r} is given two columns, {mapping[field]!r} and "
                f"{column!r}; map each field once.",
                param_hint="--map",
            )
        mapping[field] = column
    platform = _platform()
    try:
        actor = _actor(platform, username)
        with file.open("rb") as stream, _progress(file) as advance:
            report = import_csv(
                platform,
                entity,
                stream,
                actor=actor,
                mapping=mapping,
                key=key,
                dry_run=dry_run,
                skip_bad_rows=skip_bad_rows,
                bypass_automation=bypass_automation,
                progress=advance,
            )
    except ImportFailed as error:
        _print_report(error.report, sys.stderr, failed=True)
        click.echo("Nothing was imported.", err=True)
        sys.exit(1)
    except TailorError as error:
        _fail(error)
    except sa.exc.OperationalError as error:
        reason = held_back(error)
        if reason is None:
            raise
        click.echo(f"Error: {_HELD_BACK[reason]}", err=True)
        click.echo("Nothing was imported.", err=True)
        sys.exit(1)
    _print_report(report, sys.stdout)


#: Why the database refused a change that may be made again, by reason.
_HELD_BACK = {
    "busy": "The database was busy with another change the whole time; run the "
    "command again in a moment.",
    "retry": "The import met another change made at the same moment and was "
    "undone; run the command again.",
}


class _Progress:
    def __init__(self, bar: Any) -> None:
        self.bar = bar

    def __call__(self, rows: int) -> None:
        self.bar.update(rows)


def _progress(file: Path) -> Any:
    from contextlib import contextmanager

    @contextmanager
    def bar() -> Iterator[Any]:
        # Rows are estimated from the file size; the bar only shows on large files.
        size = file.stat().st_size
        if size < 1_000_000:
            yield None
            return
        with file.open("rb") as probe:
            sample = probe.read(65536)
        per_row = max(1, len(sample) // max(1, sample.count(b"\n")))
        with click.progressbar(
            length=size // per_row, label="Importing", file=sys.stderr
        ) as progress:
            yield _Progress(progress)
            # The length was an estimate; a finished import shows a full bar.
            progress.update(max(0, (progress.length or 0) - progress.pos))

    return bar()


def _print_report(
    report: ImportReport, stream: TextIO, *, failed: bool = False
) -> None:
    prefix = "Dry run: " if report.dry_run else ""
    if failed:
        summary = f"{counted(report.rows, 'row')} read, {report.failed_rows} bad."
    else:
        would = "would be " if report.dry_run else ""
        summary = (
            f"{counted(report.rows, 'row')} read, {report.created} {would}created, "
            f"{report.updated} {would}updated, {report.failed_rows} failed."
        )
    print(prefix + summary, file=stream)
    for field, column in report.columns.items():
        print(f"  column {column!r} -> {field}", file=stream)
    if report.ignored_columns:
        print(f"  ignored columns: {', '.join(report.ignored_columns)}", file=stream)
    for error in report.errors:
        print(f"  {error}", file=stream)


@main.command("export")
@click.argument("entity")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "json"]),
    default="csv",
    show_default=True,
    help="CSV as the importer reads it back, or a JSON array of records.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to FILE instead of standard output.",
)
def export_command(entity: str, fmt: str, output: Path | None) -> None:
    """Write every record of ENTITY as CSV or JSON (standard output by default)."""
    platform = _platform()
    try:
        with platform.transaction() as (connection, catalog):
            definition = catalog.entity(entity)
            try:
                stream = (
                    output.open("w", encoding="utf-8", newline="") if output else None
                )
            except OSError as error:
                raise click.ClickException(
                    f"Cannot write {output}: {error.strerror}."
                ) from None
            try:
                _write_export(
                    connection, catalog, definition, fmt, stream or sys.stdout
                )
            finally:
                if stream:
                    stream.close()
    except TailorError as error:
        _fail(error)


def _write_export(
    connection: Any, catalog: Catalog, entity: EntityDef, fmt: str, stream: TextIO
) -> None:
    del catalog
    columns = export_columns(entity)
    if fmt == "json":
        stream.write("[")
        for index, record in enumerate(export_records(connection, entity)):
            stream.write(",\n" if index else "\n")
            stream.write(
                json.dumps({c: record[c] for c in columns}, ensure_ascii=False)
            )
        stream.write("\n]\n")
        return
    writer = csv_writer(stream)
    writer.writerow(columns)
    for record in export_records(connection, entity):
        writer.writerow([csv_cell(record[column]) for column in columns])


# -- teams -------------------------------------------------------------------------


@main.group()
def team() -> None:
    """Manage teams: records owned by a team's members are open to the team."""


@team.command("create")
@click.argument("name")
@click.option("--label", help="The team's label (default: its name).")
@click.option("--member", "members", multiple=True, help="A member (repeatable).")
@click.option(
    "--role", "roles", multiple=True, help="A role every member holds (repeatable)."
)
def team_create(
    name: str, label: str | None, members: tuple[str, ...], roles: tuple[str, ...]
) -> None:
    """Create a team."""
    platform = _platform()
    try:
        with platform.transaction() as (connection, catalog):
            create_team(connection, name, label)
            info = set_team(connection, catalog, name, members=members, roles=roles)
    except TailorError as error:
        _fail(error)
    click.echo(json.dumps(info, indent=2, ensure_ascii=False))


@team.command("set")
@click.argument("name")
@click.option("--label", help="A new label.")
@click.option("--member", "members", multiple=True, help="Replace the members.")
@click.option("--role", "roles", multiple=True, help="Replace the team's roles.")
@click.option("--no-members", is_flag=True, help="Remove every member.")
@click.option("--no-roles", is_flag=True, help="Remove every team role.")
def team_set(
    name: str,
    label: str | None,
    members: tuple[str, ...],
    roles: tuple[str, ...],
    no_members: bool,
    no_roles: bool,
) -> None:
    """Change a team's label, members or roles."""
    # Both at once would say two things; neither is guessed.
    if members and no_members:
        raise click.UsageError("Give --member and --no-members one at a time.")
    if roles and no_roles:
        raise click.UsageError("Give --role and --no-roles one at a time.")
    platform = _platform()
    try:
        with platform.transaction() as (connection, catalog):
            info = set_team(
                connection,
                catalog,
                name,
                label=label,
                members=() if no_members else (members or None),
                roles=() if no_roles else (roles or None),
            )
    except TailorError as error:
        _fail(error)
    click.echo(json.dumps(info, indent=2, ensure_ascii=False))


@team.command("list")
def team_list() -> None:
    """List the teams with their members and roles."""
    platform = _platform()
    with platform.reading() as (connection, _):
        for info in list_teams(connection):
            click.echo(
                f"{info['name']}: {', '.join(info['members']) or 'no members'}"
                f" (roles: {', '.join(info['roles']) or 'none'})"
            )


@team.command("delete")
@click.argument("name")
def team_delete(name: str) -> None:
    """Delete a team; its members' records keep their owners."""
    platform = _platform()
    try:
        with platform.engine.begin() as connection:
            delete_team(connection, name)
    except TailorError as error:
        _fail(error)
    click.echo(f"Deleted team {name}.")


# -- users and tokens ----------------------------------------------------------------


@main.group()
def user() -> None:
    """Manage users."""


@user.command("create")
@click.argument("username")
@click.option("--admin", is_flag=True, help="Make the user an administrator.")
@click.option(
    "--password",
    envvar="TAILORCRM_USER_PASSWORD",
    help="Password (default: generated and printed).",
)
@click.option("--role", "roles", multiple=True, help="A role to hold (repeatable).")
def user_create(
    username: str, admin: bool, password: str | None, roles: tuple[str, ...]
) -> None:
    """Create a user. Without --admin or a --role, they may see no records."""
    platform = _platform()
    generated = password is None
    password = password or generate_password()
    try:
        with platform.transaction() as (connection, catalog):
            create_user(connection, username, password, is_admin=admin)
            if roles:
                set_user_roles(connection, catalog, username, roles)
    except TailorError as error:
        _fail(error)
    held = f" with roles {', '.join(roles)}" if roles else ""
    click.echo(f"Created user {username}" + (" (admin)" if admin else "") + held + ".")
    if generated:
        click.echo(f"Password: {password}")


@user.command("roles")
@click.argument("username")
@click.argument("roles", nargs=-1)
def user_roles_command(username: str, roles: tuple[str, ...]) -> None:
    """Give USERNAME exactly ROLES (none: take every role held directly)."""
    platform = _platform()
    try:
        with platform.transaction() as (connection, catalog):
            held = set_user_roles(connection, catalog, username, roles)
    except TailorError as error:
        _fail(error)
    click.echo(f"{username} holds: {', '.join(held) or 'no role'} (and team roles).")


@user.command("attributes")
@click.argument("username")
@click.argument("pairs", nargs=-1)
def user_attributes_command(username: str, pairs: tuple[str, ...]) -> None:
    """Set USERNAME's attributes as NAME=VALUE pairs (all others are removed).

    NAME=VALUE gives text; NAME:=VALUE a number or true/false, as JSON writes
    them (score:=5, vip:=true). Conditions read them as $user.NAME, e.g. sharing
    rules by region.
    """
    attributes: dict[str, Any] = {}
    for pair in pairs:
        name, sign, value = pair.partition("=")
        if not sign:
            raise click.BadParameter(f"{pair!r}: write NAME=VALUE or NAME:=VALUE.")
        typed = name.endswith(":")
        name = name.removesuffix(":")
        if name in attributes:
            raise click.BadParameter(
                f"{pair!r}: {name} is given twice; give each attribute once."
            )
        if typed:
            attributes[name] = _typed_attribute(pair, value)
        else:
            attributes[name] = value
    platform = _platform()
    try:
        with platform.engine.begin() as connection:
            set_user_attributes(connection, username, attributes)
    except TailorError as error:
        _fail(error)
    shown = (
        json.dumps(attributes, ensure_ascii=False) if attributes else "no attributes"
    )
    click.echo(f"{username}: {shown}")


def _typed_attribute(pair: str, text: str) -> Any:
    """The number or true/false that NAME:=VALUE gives, read as JSON."""
    try:
        value = read_json(text)
    except JSONRefused:
        value = None
    if isinstance(value, bool | int | float):
        return value
    raise click.BadParameter(
        f"{pair!r}: after := write a number or true/false; use = for text."
    )


@user.command("show")
@click.argument("username")
def user_show(username: str) -> None:
    """Show USERNAME's roles, teams and attributes."""
    platform = _platform()
    try:
        with platform.reading() as (connection, _):
            info = user_info(connection, username)
    except TailorError as error:
        _fail(error)
    click.echo(json.dumps(info, indent=2, ensure_ascii=False))


@user.command("set-password")
@click.argument("username")
@click.option(
    "--password",
    envvar="TAILORCRM_USER_PASSWORD",
    help="The new password (default: generated and printed).",
)
def user_set_password(username: str, password: str | None) -> None:
    """Give USERNAME a new password; their web sessions end."""
    platform = _platform()
    generated = password is None
    password = password or generate_password()
    try:
        with platform.engine.begin() as connection:
            found = find_user(connection, username)
            set_password(connection, found.id, password)
    except TailorError as error:
        _fail(error)
    click.echo(f"New password set for {username}; their web sessions ended.")
    if generated:
        click.echo(f"Password: {password}")


@user.command("deactivate")
@click.argument("username")
def user_deactivate(username: str) -> None:
    """Deactivate USERNAME: their sessions end and their API tokens stop working."""
    platform = _platform()
    try:
        with platform.engine.begin() as connection:
            found = find_user(connection, username)
            deactivate_user(connection, found.id)
    except TailorError as error:
        _fail(error)
    click.echo(f"Deactivated {username}.")


@user.command("logout-all")
@click.argument("username")
def user_logout_all(username: str) -> None:
    """End every web session of USERNAME (API tokens are left alone)."""
    platform = _platform()
    try:
        with platform.engine.begin() as connection:
            found = find_user(connection, username)
            ended = end_sessions(connection, found.id)
    except TailorError as error:
        _fail(error)
    sessions = "session" if ended == 1 else "sessions"
    click.echo(f"Ended {ended} web {sessions} of {username}.")


@main.group()
def token() -> None:
    """Manage API tokens."""


@token.command("create")
@click.argument("username")
@click.option("--name", default="", help="What the token is for.")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice(SCOPES),
    help="What the token may do; repeat for several (default: all).",
)
@click.option(
    "--expires-in",
    "--expires-days",
    "expires_days",
    type=click.IntRange(min=1),
    metavar="DAYS",
    help="Expire after DAYS days (default: never).",
)
def token_create(
    username: str, name: str, scopes: tuple[str, ...], expires_days: int | None
) -> None:
    """Create an API token for USERNAME and print it (it is shown only once)."""
    platform = _platform()
    expires = dt.timedelta(days=expires_days) if expires_days else None
    try:
        with platform.engine.begin() as connection:
            found = find_user(connection, username)
            secret = create_token(
                connection,
                found,
                name=name,
                scopes=scopes or None,
                expires_in=expires,
            )
    except TailorError as error:
        _fail(error)
    click.echo(f"API token for {username} (shown once, store it safely):")
    click.echo(secret)


@token.command("list")
@click.argument("username", required=False)
def token_list(username: str | None) -> None:
    """List the API tokens (of USERNAME); the tokens themselves are never shown."""
    platform = _platform()
    try:
        with platform.engine.connect() as connection:
            # A deactivated user's tokens are listed too, as inactive.
            user_id = user_id_of(connection, username) if username else None
            tokens = list_tokens(connection, user_id=user_id)
    except TailorError as error:
        _fail(error)
    if not tokens:
        click.echo("No API tokens.")
        return
    now = platform.clock()
    rows = [("ID", "USER", "NAME", "SCOPES", "CREATED", "EXPIRES", "STATE")]
    for info in tokens:
        rows.append(
            (
                str(info.id),
                info.username,
                info.name or "-",
                ",".join(info.scopes),
                _minute(info.created_at),
                _minute(info.expires_at),
                info.state(now),
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(7)]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        click.echo("  ".join(cells).rstrip())


def _minute(value: dt.datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M")


@token.command("revoke")
@click.argument("token_id", metavar="ID", type=int)
def token_revoke(token_id: int) -> None:
    """Revoke the API token ID (see 'token list'); it stops working at once."""
    platform = _platform()
    try:
        with platform.engine.begin() as connection:
            info = revoke_token(connection, token_id)
    except TailorError as error:
        _fail(error)
    click.echo(f"Revoked API token {info.id} of {info.username}.")


if __name__ == "__main__":
    main()
