"""The metadata store: documents with revisions and history, and the catalog cache.

Every change runs in one transaction: check the documents, plan the schema change,
check the plan against the data, apply it, and write the new documents with a new
revision number and the before/after of each. Processes notice a new revision on
their next request and swap in a freshly compiled catalog.

Layout documents (kind ``layout``, one per entity, named after it) live beside the
entity documents. A change that renames or removes fields rewrites the stored
layouts and saved views that name them in the same transaction, so neither is
ever left pointing at a field that is gone.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ..errors import (
    Conflict,
    InvalidMetadata,
    NotFound,
    Problem,
    UnsupportedChange,
)
from ..metadata import (
    Catalog,
    EntityDef,
    Plan,
    StoredEntity,
    build_catalog,
    check_entity_document,
    plan_entity,
)
from .db import (
    field_history,
    is_sqlite,
    meta_documents,
    meta_history,
    meta_revisions,
    utcnow,
)
from .layoutstore import (
    bodies,
    check_expected_layouts,
    check_layouts,
    entity_field_changes,
    given_layouts,
    rewritten_layouts,
    split_kinds,
    stored_layouts,
    write_layouts,
)
from .migrate import apply_plan, check_plan, drop_table, purge_column
from .revisions import check_expected
from .rolestore import (
    RoleChange,
    check_expected_roles,
    plan_entity_purge,
    plan_field_purge,
    plan_role_removal,
    plan_roles,
    split_roles,
    stored_roles,
    write_roles,
)
from .rulestore import (
    check_expected_rules,
    plan_rules,
    refill_computed,
    rules_using_entity,
    split_documents,
    stored_rules,
    write_rules,
)
from .search_index import create_missing_indexes, missing_indexes
from .views import drop_views, plan_view_rewrites, write_view_rewrites

log = logging.getLogger(__name__)

ENTITY = "entity"
# Any constant works; with the platform's schema it names the lock that
# serializes metadata changes.
_METADATA_LOCK = 7_320_104
#: The lock's two keys: platforms that share a database in schemas of their own
#: (``search_path``) each have their own lock, so a metadata change of one does
#: not wait for, or hold up, the saves of another.
_LOCK_KEYS = ":key, hashtext(current_schema())"


@dataclass(frozen=True)
class ChangeResult:
    """What a metadata change did (or, for a dry run, would do)."""

    revision: int
    plan: Plan
    applied: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "applied": self.applied,
            "plan": self.plan.as_list(),
            "steps": self.plan.describe(),
        }


def current_revision(connection: sa.Connection) -> int:
    return int(
        connection.execute(sa.select(sa.func.max(meta_revisions.c.id))).scalar() or 0
    )


def _stored_entities(connection: sa.Connection) -> dict[str, StoredEntity]:
    rows = connection.execute(
        sa.select(meta_documents).where(meta_documents.c.kind == ENTITY)
    )
    return {
        row.name: StoredEntity(
            row.body, list(row.hidden_fields), bool(row.removed), int(row.revision)
        )
        for row in rows
    }


def load_catalog(connection: sa.Connection) -> Catalog:
    """Compile the catalog from what the database holds now."""
    revision = current_revision(connection)
    return build_catalog(
        revision,
        _stored_entities(connection).values(),
        bodies(stored_layouts(connection)),
        rules=stored_rules(connection).values(),
        roles=stored_roles(connection).values(),
    )


class CatalogCache:
    """Keeps one compiled catalog per process and swaps it when the revision moves."""

    def __init__(self) -> None:
        self._catalog: Catalog | None = None
        self._lock = threading.Lock()

    def get(self, connection: sa.Connection, *, revision: int | None = None) -> Catalog:
        """Return the catalog for the database's current revision.

        One cheap query per call (none when the caller read ``revision`` in its own
        transaction); the catalog is rebuilt only after a change.
        """
        if revision is None:
            revision = current_revision(connection)
        catalog = self._catalog
        if catalog is not None and catalog.revision == revision:
            return catalog
        with self._lock:
            catalog = self._catalog
            if catalog is None or catalog.revision != revision:
                catalog = load_catalog(connection)
                self._catalog = catalog
                log.info("loaded catalog at revision %s", catalog.revision)
        return catalog


class MetadataStore:
    """Changes metadata documents and the tables they describe, atomically."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def apply(
        self,
        documents: Sequence[tuple[str, Any]],
        *,
        actor: str,
        dry_run: bool = False,
        expected: Mapping[str, int] | None = None,
        expected_layouts: Mapping[str, int] | None = None,
        expected_rules: Mapping[str, int] | None = None,
        expected_roles: Mapping[str, int] | None = None,
    ) -> ChangeResult:
        """Create or change entities, layouts and rules from ``(source, document)``
        pairs.

        A document whose ``kind`` is ``"layout"`` is a layout, ``"rule"`` a rule;
        one without a kind is an entity. Entities are planned first; layouts and
        rules are checked against the entities as they will be, so they may name
        a field added by the same change. Stored layouts and saved views that
        name fields this change renames or removes are rewritten in the same
        revision.

        ``source`` prefixes the problem paths of its document when several are
        applied together (a file name, say); pass ``""`` for a single document.
        Rule documents (``"kind": "rule"``) are checked against the entities as
        the change leaves them and written in the same revision.

        :raises InvalidMetadata: a document fails its schema or a semantic check.
        :raises UnsupportedChange: a change needs a conversion not supported yet.
        :raises Conflict: existing data would break a new constraint, or stored
            rules use a field or entity the change removes or renames.
        :raises PreconditionFailed: a document changed since the revision given for
            it in ``expected`` (entity name -> the document's revision, its ETag),
            ``expected_layouts`` (entity name -> its layout's revision, 0 for
            none stored), ``expected_rules`` (rule name -> its revision) or
            ``expected_roles`` (role name -> its revision).

        Role documents (``"kind": "role"``) are checked against the entities as
        the change leaves them; stored roles follow renamed and removed fields.
        """
        documents, role_documents = split_roles(documents)
        documents, rule_documents = split_documents(documents)
        entity_documents, layout_documents = split_kinds(documents)
        with self.engine.begin() as connection:
            self._lock(connection)
            stored = _stored_entities(connection)
            layouts = stored_layouts(connection)
            _check_expected(stored, expected or {})
            check_expected_layouts(layouts, expected_layouts or {})
            rules_before = stored_rules(connection)
            check_expected_rules(rules_before, expected_rules or {})
            roles_before = stored_roles(connection)
            check_expected_roles(roles_before, expected_roles or {})
            current = build_catalog(
                current_revision(connection),
                stored.values(),
                bodies(layouts),
                rules=rules_before.values(),
            )
            _check_documents(entity_documents, current)
            plan = Plan()
            after: dict[str, StoredEntity] = {}
            unsupported: list[tuple[str, UnsupportedChange]] = []
            for source, document in _creation_order(entity_documents):
                try:
                    entity, entity_plan = plan_entity(
                        stored.get(document["name"]), document
                    )
                except UnsupportedChange as error:
                    # Every document is planned, so that all of them are told.
                    unsupported.append((source, error))
                    continue
                plan.extend(entity_plan)
                if entity_plan.operations:
                    after[document["name"]] = entity
            if unsupported:
                raise _unsupported(unsupported)
            revision = current.revision + 1
            target = build_catalog(revision, {**stored, **after}.values())
            # Layouts, rules and roles are each checked against the entities as
            # the change leaves them, and all their problems are told at once.
            refusals: list[InvalidMetadata] = []
            _checked(refusals, lambda: check_layouts(layout_documents, target, layouts))
            changes = entity_field_changes(current, after)
            new_layouts = {}
            if not refusals:
                new_layouts = given_layouts(layout_documents, layouts, plan)
                new_layouts.update(
                    rewritten_layouts(layouts, changes, plan, skip=new_layouts)
                )
            view_updates = plan_view_rewrites(connection, current, changes)
            for name in sorted({update.entity for update in view_updates}):
                count = sum(update.entity == name for update in view_updates)
                plan.add("update_views", name, count=count)
            rules = _checked(
                refusals,
                lambda: plan_rules(current, target, rule_documents, rules_before),
            )
            roles = _checked(
                refusals,
                lambda: plan_roles(target, role_documents, roles_before, changes),
            )
            if rules is None or roles is None or refusals:
                raise _refused(refusals)
            plan.extend(rules.plan)
            plan.extend(roles.plan)
            check_plan(connection, plan, current)
            if dry_run or not (after or new_layouts or rules.after or roles.after):
                # Nothing was written: the answer names the revision still current.
                connection.rollback()
                return ChangeResult(current.revision, plan, applied=False)
            apply_plan(connection, plan, target)
            self._write(connection, stored, after, revision, plan, actor=actor)
            write_layouts(connection, layouts, new_layouts, revision)
            write_view_rewrites(connection, view_updates)
            write_rules(connection, rules_before, rules, revision)
            write_roles(connection, roles_before, roles, revision)
            if rules.after:
                refill_computed(connection, load_catalog(connection), rules)
        log.info("applied plan r%s: %s", revision, "; ".join(plan.describe()))
        return ChangeResult(revision, plan, applied=True)

    def remove_layout(
        self,
        entity: str,
        *,
        actor: str,
        expected: int | None = None,
        dry_run: bool = False,
    ) -> ChangeResult:
        """Delete an entity's stored layout; its pages show the generated one.

        With ``dry_run`` the checks run and the plan is answered, but nothing is
        written.

        :raises NotFound: no layout is stored for ``entity``.
        :raises PreconditionFailed: it changed since revision ``expected``.
        """
        with self.engine.begin() as connection:
            self._lock(connection)
            layouts = stored_layouts(connection)
            if expected is not None:
                check_expected_layouts(layouts, {entity: expected})
            if entity not in layouts:
                raise NotFound(
                    f"No layout is stored for {entity!r}; it already shows the "
                    "generated one."
                )
            plan = Plan()
            plan.add("remove_layout", entity)
            if dry_run:
                return ChangeResult(current_revision(connection), plan, applied=False)
            revision = current_revision(connection) + 1
            self._write(connection, {}, {}, revision, plan, actor=actor)
            write_layouts(connection, layouts, {entity: None}, revision)
        log.info("applied plan r%s: %s", revision, "; ".join(plan.describe()))
        return ChangeResult(revision, plan, applied=True)

    def remove_entity(
        self,
        name: str,
        *,
        actor: str,
        expected: Mapping[str, int] | None = None,
        dry_run: bool = False,
    ) -> ChangeResult:
        """Hide an entity; its table and records stay until it is purged.

        With ``dry_run`` the checks run and the plan (with the layouts it would
        rewrite) is answered, but nothing is written.

        :raises Conflict: other entities still look up to it.
        :raises PreconditionFailed: it changed since the revision in ``expected``.
        """
        with self.engine.begin() as connection:
            self._lock(connection)
            stored = _stored_entities(connection)
            _check_expected(stored, expected or {})
            current = build_catalog(
                current_revision(connection),
                stored.values(),
                rules=stored_rules(connection).values(),
            )
            current.entity(name)
            used = rules_using_entity(current, name)
            if used:
                raise Conflict(
                    f"Rules use {name!r}; change or delete them first.", problems=used
                )
            referrers = [
                f"{entity.name}.{spec['name']}"
                for entity, spec in current.referrers(name)
                if entity.name != name
            ]
            if referrers:
                raise Conflict(
                    f"Other entities look up to {name!r}; remove those fields first.",
                    problems=[
                        Problem(field, "referenced", f"{field} looks up to {name}.")
                        for field in referrers
                    ],
                )
            old = stored[name]
            after = {name: StoredEntity(old.document, old.hidden_fields, removed=True)}
            plan = Plan()
            plan.add("hide_entity", name)
            # Its layout goes, and so do the related lists of it in other layouts;
            # its saved views stay, hidden with it, until it is purged.
            layouts = stored_layouts(connection)
            new_layouts: dict[str, dict[str, Any] | None] = {}
            if name in layouts:
                plan.add("remove_layout", name)
                new_layouts[name] = None
            new_layouts.update(
                rewritten_layouts(
                    layouts, {}, plan, skip=new_layouts, removed_entities={name}
                )
            )
            if dry_run:
                return ChangeResult(current.revision, plan, applied=False)
            revision = current.revision + 1
            self._write(connection, stored, after, revision, plan, actor=actor)
            write_layouts(connection, layouts, new_layouts, revision)
        return ChangeResult(revision, plan, applied=True)

    def remove_rule(
        self,
        name: str,
        *,
        actor: str,
        expected: Mapping[str, int] | None = None,
        dry_run: bool = False,
    ) -> ChangeResult:
        """Delete a rule document; its history stays. With ``dry_run`` nothing is
        written.

        :raises NotFound: there is no such rule.
        :raises PreconditionFailed: it changed since the revision in ``expected``.
        """
        with self.engine.begin() as connection:
            self._lock(connection)
            stored = _stored_entities(connection)
            rules_before = stored_rules(connection)
            check_expected_rules(rules_before, expected or {})
            current = build_catalog(
                current_revision(connection),
                stored.values(),
                rules=rules_before.values(),
            )
            rules = plan_rules(current, current, [], rules_before, removing=[name])
            if dry_run:
                return ChangeResult(current.revision, rules.plan, applied=False)
            revision = current.revision + 1
            self._write(connection, stored, {}, revision, rules.plan, actor=actor)
            write_rules(connection, rules_before, rules, revision)
        log.info("applied plan r%s: %s", revision, "; ".join(rules.plan.describe()))
        return ChangeResult(revision, rules.plan, applied=True)

    def remove_role(
        self,
        name: str,
        *,
        actor: str,
        expected: Mapping[str, int] | None = None,
        dry_run: bool = False,
    ) -> ChangeResult:
        """Delete a role document that no user or team holds; its history stays.
        With ``dry_run`` nothing is written.

        :raises NotFound: there is no such role.
        :raises Conflict: users or teams hold it.
        :raises PreconditionFailed: it changed since the revision in ``expected``.
        """
        with self.engine.begin() as connection:
            self._lock(connection)
            roles_before = stored_roles(connection)
            check_expected_roles(roles_before, expected or {})
            change = plan_role_removal(connection, roles_before, name)
            if dry_run:
                return ChangeResult(
                    current_revision(connection), change.plan, applied=False
                )
            revision = current_revision(connection) + 1
            self._write(connection, {}, {}, revision, change.plan, actor=actor)
            write_roles(connection, roles_before, change, revision)
        log.info("applied plan r%s: %s", revision, "; ".join(change.plan.describe()))
        return ChangeResult(revision, change.plan, applied=True)

    def check_purge(self, name: str, field: str | None) -> None:
        """Refuse, as :meth:`purge` would, a purge that cannot be made; change
        nothing. The command line asks its question only for one that can."""
        with self.engine.connect() as connection:
            stored = _stored_entities(connection)
            current = build_catalog(current_revision(connection), stored.values())
            _check_purge(current, name, field)

    def purge(self, name: str, field: str | None, *, actor: str) -> ChangeResult:
        """Drop a removed field's column, or a removed entity's table, for good."""
        with _table_rebuilds(self.engine) as connection:
            self._lock(connection)
            stored = _stored_entities(connection)
            current = build_catalog(current_revision(connection), stored.values())
            entity = _check_purge(current, name, field)
            plan = Plan()
            old = stored[name]
            roles_before = stored_roles(connection)
            roles = RoleChange()
            if field is None:
                drop_table(connection, entity)
                # Its records' history goes with them: a table made again under
                # the name numbers its records from 1 again, and their history
                # would read the purged records' entries.
                connection.execute(
                    field_history.delete().where(field_history.c.entity == name)
                )
                plan.add("drop_table", name)
                count = drop_views(connection, name)
                if count:
                    plan.add("drop_views", name, count=count)
                # So do the roles' grants on it, as its views: an entity made
                # again under the name is another one.
                roles = plan_entity_purge(roles_before, name)
                plan.extend(roles.plan)
                after = None
            else:
                purge_column(connection, entity, field)
                plan.add("drop_column", name, field)
                hidden = [s for s in old.hidden_fields if s["name"] != field]
                after = StoredEntity(old.document, hidden, old.removed)
                # The roles' levels of the field go with it (a removed field
                # keeps them, since it may come back).
                roles = plan_field_purge(roles_before, name, field)
                plan.extend(roles.plan)
            revision = current.revision + 1
            self._write(connection, stored, {name: after}, revision, plan, actor=actor)
            write_roles(connection, roles_before, roles, revision)
        log.info("applied plan r%s: %s", revision, "; ".join(plan.describe()))
        return ChangeResult(revision, plan, applied=True)

    def ensure_search_indexes(self) -> list[str]:
        """Create the lookup search index of each entity that lacks one, and drop
        each that its display field no longer gets.

        Databases made before lookups searched through an index get theirs the
        first time the platform starts on them; after that this is one query.
        Returns the entities whose index changed.
        """
        with self.engine.begin() as connection:
            if not missing_indexes(connection, load_catalog(connection)):
                return []
            self._lock(connection)
            return create_missing_indexes(connection, load_catalog(connection))

    def history(self, name: str, *, kind: str = ENTITY) -> list[dict[str, Any]]:
        """Return every revision of one document, newest first.

        :param kind: ``"entity"``, or ``"layout"`` for the layout of entity
            ``name``.
        """
        query = (
            sa.select(meta_history, meta_revisions.c.actor, meta_revisions.c.at)
            .join(meta_revisions, meta_revisions.c.id == meta_history.c.revision)
            .where(meta_history.c.kind == kind, meta_history.c.name == name)
            .order_by(meta_history.c.revision.desc())
        )
        with self.engine.connect() as connection:
            return [
                {
                    "revision": row.revision,
                    "actor": row.actor,
                    "at": row.at.isoformat() + "Z",
                    "before": row.before,
                    "after": row.after,
                }
                for row in connection.execute(query)
            ]

    def _lock(self, connection: sa.Connection) -> None:
        if not is_sqlite(connection):
            connection.execute(
                sa.text(f"SELECT pg_advisory_xact_lock({_LOCK_KEYS})"),
                {"key": _METADATA_LOCK},
            )

    def _write(
        self,
        connection: sa.Connection,
        before: dict[str, StoredEntity],
        after: Mapping[str, StoredEntity | None],
        revision: int,
        plan: Plan,
        *,
        actor: str,
    ) -> None:
        try:
            connection.execute(
                meta_revisions.insert().values(
                    id=revision,
                    actor=actor,
                    at=utcnow(),
                    summary="; ".join(plan.describe())[:2000],
                    plan=plan.as_list(),
                )
            )
        except sa.exc.IntegrityError:
            raise Conflict(
                "Metadata was changed by someone else at the same time; try again."
            ) from None
        for name, entity in after.items():
            old = before.get(name)
            key = (meta_documents.c.kind == ENTITY, meta_documents.c.name == name)
            if entity is None:
                connection.execute(meta_documents.delete().where(*key))
            else:
                values = {
                    "body": entity.document,
                    "hidden_fields": entity.hidden_fields,
                    "removed": entity.removed,
                    "revision": revision,
                }
                if old is None:
                    connection.execute(
                        meta_documents.insert().values(kind=ENTITY, name=name, **values)
                    )
                else:
                    connection.execute(
                        meta_documents.update().where(*key).values(values)
                    )
            connection.execute(
                meta_history.insert().values(
                    revision=revision,
                    kind=ENTITY,
                    name=name,
                    before=_history_body(old),
                    after=_history_body(entity),
                )
            )


_T = TypeVar("_T")


def _checked(refusals: list[InvalidMetadata], check: Callable[[], _T]) -> _T | None:
    """Run one kind's check; keep its refusal with the others (``None`` then).

    A clash with stored data found after documents were refused is not told:
    the documents' problems come first.
    """
    try:
        return check()
    except InvalidMetadata as error:
        refusals.append(error)
        return None
    except Conflict:
        if refusals:
            raise _refused(refusals) from None
        raise


def _refused(refusals: list[InvalidMetadata]) -> InvalidMetadata:
    """One refusal with the problems of every kind of document refused."""
    if len(refusals) == 1:
        return refusals[0]
    return InvalidMetadata(
        "The metadata documents were refused; nothing was changed.",
        problems=[problem for refusal in refusals for problem in refusal.problems],
    )


def _unsupported(refusals: list[tuple[str, UnsupportedChange]]) -> UnsupportedChange:
    """One refusal for the documents whose changes are not supported, each
    problem under the name of its document (as :func:`_check_documents` names
    them) when several documents were applied together."""
    problems = [
        Problem(
            f"{source}: {problem.field}" if source else problem.field,
            problem.code,
            problem.message,
        )
        for source, refusal in refusals
        for problem in refusal.problems
    ]
    message = refusals[0][1].message
    if len(refusals) > 1:
        message = (
            "Several entities ask for changes that are not supported yet; nothing "
            "was changed."
        )
    return UnsupportedChange(message, problems=problems)


def _check_expected(
    stored: Mapping[str, StoredEntity], expected: Mapping[str, int]
) -> None:
    revisions = {name: entity.revision for name, entity in stored.items()}
    check_expected(revisions, expected, lambda name: f"Entity {name!r}")


@contextmanager
def _table_rebuilds(engine: Engine) -> Iterator[sa.Connection]:
    """A transaction in which SQLite tables may be rebuilt.

    SQLite drops a column that a foreign key names only by rebuilding its table,
    and dropping the old table would trip the references of other tables to it.
    SQLite's own procedure for this turns foreign keys off outside the transaction
    and checks every reference before committing; this does the same. PostgreSQL
    needs nothing of the kind.
    """
    with engine.connect() as connection:
        if not is_sqlite(connection):
            with connection.begin():
                yield connection
            return
        raw = connection.connection.driver_connection
        if raw is None:
            raise RuntimeError("a checked-out connection has no driver connection")
        raw.execute("PRAGMA foreign_keys = OFF")
        try:
            with connection.begin():
                yield connection
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                if broken:
                    raise Conflict(
                        f"The change would leave {len(broken)} broken references; "
                        "nothing was changed."
                    )
        finally:
            raw.execute("PRAGMA foreign_keys = ON")


def hold_metadata(connection: sa.Connection) -> None:
    """Keep metadata from changing until the caller's transaction ends.

    Every transaction that reads the catalog takes this shared lock first, so a
    schema change (which takes it exclusively) never lands between reading the
    revision and using its tables. SQLite needs nothing: its writers already take
    turns and its readers see one snapshot.
    """
    if not is_sqlite(connection):
        connection.execute(
            sa.text(f"SELECT pg_advisory_xact_lock_shared({_LOCK_KEYS})"),
            {"key": _METADATA_LOCK},
        )


def _history_body(entity: StoredEntity | None) -> dict[str, Any] | None:
    if entity is None:
        return None
    return {
        "document": entity.document,
        "hidden_fields": entity.hidden_fields,
        "removed": entity.removed,
    }


def _check_documents(documents: Sequence[tuple[str, Any]], current: Catalog) -> None:
    names = [doc.get("name") for _, doc in documents if isinstance(doc, dict)]
    known = [entity.name for entity in current.live()]
    known += [name for name in names if isinstance(name, str)]
    problems: list[Problem] = []
    seen: set[str] = set()
    ids = {entity.document["id"]: entity.name for entity in current.entities.values()}
    # The entity ids the documents give, with the document that gave each first:
    # two entities with one id could not be told apart afterwards.
    given_ids: dict[str, tuple[str, str]] = {}
    for source, document in documents:
        prefix = f"{source}: " if source else ""
        for problem in check_entity_document(document, known_entities=known):
            problems.append(
                Problem(f"{prefix}{problem.field}", problem.code, problem.message)
            )
        name = document.get("name") if isinstance(document, dict) else None
        given = document.get("id") if isinstance(document, dict) else None
        owner = ids.get(given) if isinstance(given, str) else None
        if owner is not None and owner != name:
            message = (
                f"This id belongs to the entity {owner!r}; renaming an entity is not "
                "supported yet."
            )
            problems.append(Problem(f"{prefix}id", "id_in_use", message))
        elif isinstance(given, str) and isinstance(name, str):
            first_source, first_name = given_ids.setdefault(given, (source, name))
            if first_name != name:
                where = f" in {first_source}" if first_source else ""
                message = (
                    f"The entity {first_name!r}{where} has this id already; each "
                    "entity needs its own (leave it out and one is made)."
                )
                problems.append(Problem(f"{prefix}id", "duplicate_id", message))
        if isinstance(name, str) and name in seen:
            message = f"Entity {name!r} is defined more than once."
            problems.append(Problem(f"{prefix}name", "duplicate_name", message))
        if isinstance(name, str):
            seen.add(name)
    if problems:
        raise InvalidMetadata(
            "The metadata document was refused; nothing was changed.",
            problems=problems,
        )


def _creation_order(
    documents: Sequence[tuple[str, Any]],
) -> list[tuple[str, dict[str, Any]]]:
    """Order documents so that a lookup's target is planned before the lookup."""
    by_name = {doc["name"]: (source, doc) for source, doc in documents}
    ordered: list[tuple[str, dict[str, Any]]] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name not in by_name or name in visiting or by_name[name] in ordered:
            return
        visiting.add(name)
        for spec in by_name[name][1]["fields"]:
            if spec["type"] == "lookup":
                visit(spec["target"])
        ordered.append(by_name[name])

    for name in by_name:
        visit(name)
    return ordered


def _check_purge(current: Catalog, name: str, field: str | None) -> EntityDef:
    """The entity whose table, or removed ``field``, may be purged.

    :raises NotFound: there is no such entity, or no such removed field.
    :raises Conflict: the entity or field is live, or other columns refer to it.
    """
    entity = current.entities.get(name)
    if entity is None:
        raise NotFound(f"There is no entity named {name!r}.")
    if field is None:
        _check_purge_entity(current, name)
    elif field in entity.fields:
        raise Conflict(
            f"{name}.{field} is a live field; remove it from the entity first, then "
            "purge it."
        )
    elif field not in entity.hidden_fields:
        raise NotFound(
            f"{name} has no removed field {field!r} holding data (it may have been "
            "purged already)."
        )
    return entity


def _check_purge_entity(current: Catalog, name: str) -> None:
    entity = current.entities[name]
    if not entity.removed:
        raise Conflict(f"Entity {name!r} is live; delete it before purging it.")
    problems = [
        Problem(f"{other.name}.{spec['name']}", "referenced", "")
        for other in current.entities.values()
        for spec in [*other.fields.values(), *other.hidden_fields.values()]
        if other.name != name and spec["type"] == "lookup" and spec["target"] == name
    ]
    if problems:
        raise Conflict(
            f"Columns of other entities still refer to {name!r}; purge them first.",
            problems=problems,
        )


__all__ = [
    "CatalogCache",
    "ChangeResult",
    "MetadataStore",
    "current_revision",
    "hold_metadata",
    "load_catalog",
]
