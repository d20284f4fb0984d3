"""The record service: the only way records are created, changed and deleted.

Every path that writes records (the API, forms, CSV import, demo data, automation)
comes here, so validation, defaults, rules, system columns and optimistic locking have
one implementation. Every problem with the input is collected before anything is
refused. The order is DESIGN.md principle 6: read the values, defaults, formulas,
validation rules and field state, save, then roll-ups, formulas reached through
lookups and automation (see :mod:`.rules` and :mod:`.cascade`).
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
from collections import defaultdict
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import marshmallow as ma
import sqlalchemy as sa

from ..errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    PreconditionFailed,
    Problem,
    ValidationFailed,
)
from ..metadata import (
    INTEGER_LIMIT,
    SYSTEM_COLUMNS,
    TEXT_TYPES,
    Catalog,
    EntityAccess,
    EntityDef,
    index_name,
    is_unique,
    problems_from,
    to_json,
)
from . import direct
from .access import readable_rules
from .automation import MAX_AUTOMATION_DEPTH, AutomationLoop, row_problems
from .cascade import Cascade, Change
from .db import users, utcnow
from .fieldhistory import (
    batched,
    lookups_cleared,
    record_changed,
    record_created,
    record_deleted,
)
from .numbering import allocate, format_number
from .rules import RecordRules, rows_by_id, unread_fields, user_data

WRITABLE_SYSTEM_COLUMNS = frozenset({"owner_id"})
_VERBS = {
    "read": "read",
    "create": "create",
    "edit": "change",
    "delete": "delete",
    "import": "import",
    "export": "export",
}


@dataclass(frozen=True)
class Actor:
    """Who is acting: the user whose name goes into ``created_by`` and history."""

    user_id: int | None
    username: str
    is_admin: bool = False


SYSTEM_ACTOR = Actor(user_id=None, username="system", is_admin=True)


class BatchFailed(ValidationFailed):
    """Rows of a batch failed; ``rows`` maps each bad row's index to its problems."""

    def __init__(self, rows: dict[int, list[Problem]]) -> None:
        super().__init__(f"{len(rows)} rows failed validation.")
        self.rows = rows


def record_json(entity: EntityDef, row: Mapping[Any, Any]) -> dict[str, Any]:
    """Return the API form of a stored row: id, the live fields, system columns."""
    record: dict[str, Any] = {"id": row["id"]}
    for name, spec in entity.fields.items():
        record[name] = to_json(spec, row.get(name))
    record["created_at"] = _timestamp(row.get("created_at"))
    record["updated_at"] = _timestamp(row.get("updated_at"))
    record["created_by"] = row.get("created_by")
    record["owner_id"] = row.get("owner_id")
    record["version"] = row.get("version")
    return record


def _timestamp(value: Any) -> str | None:
    return None if value is None else value.isoformat() + "Z"


class RecordService:
    """Creates, changes and deletes records of any entity in one transaction.

    The caller owns the transaction: nothing is committed here. With
    ``bypass_automation`` (administrators only, for data loads) saves run every
    rule but automations. ``via`` names the path the saves come by in the field
    history (see :data:`~.fieldhistory.VIAS`).

    :raises Forbidden: ``bypass_automation`` for an actor who is not an admin.
    """

    def __init__(
        self,
        connection: sa.Connection,
        catalog: Catalog,
        actor: Actor,
        *,
        bypass_automation: bool = False,
        via: str = "system",
    ) -> None:
        if bypass_automation and not actor.is_admin:
            raise Forbidden("Only administrators may bypass automation.")
        self.connection = connection
        #: Every entity and field: rules, uniqueness and references need them all.
        self.catalog = catalog.unrestricted()
        #: The caller's view: what is checked against their permissions and what
        #: they are shown (the full catalog for system work and administrators).
        self.view = catalog
        #: The view of the person whose save this is, also in the saves that
        #: automations make for it with the platform's rights: what problems
        #: may tell them.
        self.shown_to = catalog
        #: An operation whose scope also limits every save, such as ``import``.
        self.also: str | None = None
        self.actor = actor
        self.bypass_automation = bypass_automation
        self.via = via
        permissions = catalog.permissions
        self.user = (
            permissions.caller.condition_data()
            if permissions is not None
            else user_data(actor.user_id, actor.username, actor.is_admin)
        )
        self.now = dt.datetime.now(dt.UTC)
        #: The automations whose actions this service saves, outermost first.
        self.chain: tuple[str, ...] = ()
        #: For each record (entity, id) whose save under way this service's
        #: updates belong to (an automation's action): the record as
        #: stored before that save, ``None`` when the save creates it.
        #: ``readonly_if`` is judged on it.
        self.saves_under_way: dict[tuple[str, int], Mapping[str, Any] | None] = {}
        #: The records (entity, id) whose automations a save further out is yet
        #: to run, for the whole of its change: the saves that this service's
        #: actions make leave them to it (see :func:`.automation.run_automations`).
        #: One set, shared by every level of a save.
        self.automations_pending: set[tuple[str, int]] = set()
        #: The records (entity, id) the caller saved, in a service that saves
        #: what automations do for them: a ``set_field`` on one of them, at any
        #: depth, is refused with the problems any save of it gets.
        self.saved_by_caller: frozenset[tuple[str, int]] = frozenset()
        #: Field history rows kept back to be written together (see
        #: :func:`~.fieldhistory.batched`); ``None`` writes each at once.
        self.history_rows: list[dict[str, Any]] | None = None
        #: The related records that the rules of the latest save read, by entity
        #: and id: a formula need not be computed again at the end of the save
        #: from a record that has not changed since (see ``Cascade._settle``).
        self.related_read: Mapping[tuple[str, int], Mapping[str, Any] | None] = {}

    def nested(self, automation: str) -> RecordService:
        """The service that saves what ``automation`` does, one level deeper.

        :raises AutomationLoop: past the depth limit, naming every automation the
            person whose save this is may be shown.
        """
        chain = (*self.chain, automation)
        if len(chain) > MAX_AUTOMATION_DEPTH:
            raise AutomationLoop(chain, readable_rules(self.shown_to))
        nested = RecordService(
            self.connection, self.catalog, self.actor, via="automation"
        )
        nested.now = self.now
        nested.user = self.user
        nested.shown_to = self.shown_to
        nested.chain = chain
        nested.saves_under_way = dict(self.saves_under_way)
        nested.automations_pending = self.automations_pending
        return nested

    # -- permissions -----------------------------------------------------------

    def access(self, entity_name: str) -> EntityAccess | None:
        """The caller's access to an entity; ``None`` when nothing is restricted."""
        entity = self.view.entities.get(entity_name)
        return None if entity is None else entity.access

    def shown(self, entity_name: str, row: Mapping[Any, Any]) -> dict[str, Any]:
        """A stored row as the caller may see it: without hidden fields."""
        return record_json(self.view.entity(entity_name), row)

    def _may(self, entity: EntityDef, operation: str) -> EntityAccess | None:
        """The caller's access, after checking ``operation`` reaches any record.

        :raises NotFound: the caller may not read the entity at all.
        :raises Forbidden: they may read it, but not do ``operation``.
        """
        self.view.entity(entity.name)
        access = self.access(entity.name)
        if access is None:
            return None
        for needed in (operation, self.also):
            if needed is not None and not access.can(needed):
                verb = _VERBS.get(needed, needed)
                raise Forbidden(f"You may not {verb} {entity.label} records.")
        return access

    def _check_fields(
        self,
        access: EntityAccess | None,
        data: Any,
        *,
        changed: Collection[str] | None = None,
    ) -> None:
        """Refuse, naming each, the fields the caller may not write.

        A hidden field is refused whatever its value; a read-only one when the
        value would change (``changed``; on create, whenever it is given).

        :raises Forbidden: with one problem per field.
        """
        if access is None or not isinstance(data, dict) or not access.levels:
            return
        problems = []
        for name in data:
            level = access.level(name)
            if level == "editable":
                continue
            if level == "read_only" and changed is not None and name not in changed:
                continue
            message = (
                "You may not change this field."
                if level == "read_only"
                else "You may not write this field."
            )
            problems.append(Problem(name, "forbidden_field", message))
        if problems:
            raise Forbidden(
                "You may not write some of these fields; nothing was saved.",
                problems=problems,
            )

    def _check_owners(
        self,
        access: EntityAccess | None,
        operation: str,
        owners: Sequence[Any],
    ) -> list[list[Problem]]:
        """Owners the caller may not give records to, one list per record."""
        found: list[list[Problem]] = [[] for _ in owners]
        if access is None:
            return found
        for index, owner in enumerate(owners):
            owner = self.actor.user_id if owner is None else owner
            if not _is_user_id(owner):
                # Not an owner at all: the schema's check says so, to everyone.
                continue
            for needed in (operation, self.also):
                if needed is None or access.owner_allowed(needed, owner):
                    continue
                message = (
                    "You may not give records to this user."
                    if owner != self.actor.user_id
                    else "You may not own records of this entity."
                )
                found[index].append(Problem("owner_id", "forbidden_owner", message))
                break
        return found

    def check(self, entity_name: str, record_id: Any, operation: str) -> None:
        """Check the caller may do ``operation`` to one record.

        :raises NotFound: no such record, or the caller may not read it.
        :raises Forbidden: the caller may read it but not do ``operation``.
        """
        self._reachable(self.catalog.entity(entity_name), record_id, operation)

    def allows(self, entity_name: str, record_id: int, operation: str) -> bool:
        """Whether the caller may do ``operation`` to one record they can read."""
        try:
            self.check(entity_name, record_id, operation)
        except (Forbidden, NotFound):
            return False
        return True

    def _reachable(
        self, entity: EntityDef, record_id: Any, operation: str, *, lock: bool = False
    ) -> Mapping[Any, Any]:
        """The stored row, if ``operation`` may touch it.

        :raises NotFound: no such record, or the caller may not even read it.
        :raises Forbidden: the caller may read it but not do ``operation``.
        """
        self.view.entity(entity.name)
        access = self.access(entity.name)
        if access is None:
            return self._row(entity, record_id, lock=lock)
        readable = access.where("read", entity.table)
        if not access.can(operation) or (
            self.also is not None and not access.can(self.also)
        ):
            # Whether the record exists is not told to whoever may not read it.
            self._row(entity, record_id, where=[] if readable is None else [readable])
            self._may(entity, operation)
        clauses = [access.where(operation, entity.table)]
        if self.also is not None:
            clauses.append(access.where(self.also, entity.table))
        where = [clause for clause in clauses if clause is not None]
        try:
            return self._row(entity, record_id, lock=lock, where=where)
        except NotFound:
            if operation == "read":
                raise
            self._row(entity, record_id, where=[] if readable is None else [readable])
            verb = _VERBS.get(operation, operation)
            raise Forbidden(f"You may not {verb} this {entity.label}.") from None

    def unreadable(self, entity_name: str, ids: Collection[int]) -> set[int]:
        """Which of ``ids`` of ``entity_name`` the caller may not read (see
        :func:`unreadable_ids`)."""
        return unreadable_ids(self.connection, self.view, entity_name, ids)

    def hidden_from_caller(self, entity_name: str, record_id: int) -> bool:
        """Whether the person whose save this is (see :attr:`shown_to`) may not
        read the record, also in a save an automation makes for them."""
        hidden = unreadable_ids(
            self.connection, self.shown_to, entity_name, {record_id}
        )
        return bool(hidden)

    def _as_seen(self, entity: EntityDef, problems: list[Problem]) -> list[Problem]:
        """Problems as the caller may read them: one on a field their roles
        hide names no field, and a field-state problem there does not name it.
        A value a default or formula computed that does not fit its field is
        told (with the rule and the value) only when the field is one the caller
        sees and every rule that fills it is one they are shown (see
        :func:`.access.readable_rules`), as a recomputation refused on another
        record is.

        The rules judge every field, seen or not (the same answer on every path);
        a field the caller cannot see is one they cannot fill either, so they
        are told to ask an administrator, as they are for a required field they
        see but may not write. The caller is the person whose save this is, also
        in a save an automation makes for them with the platform's rights.
        """
        seen = self.shown_to.entities.get(entity.name)
        if seen is None or seen is entity or not problems:
            return problems
        found: list[Problem] = []
        for problem in problems:
            if problem.code == "rule_value" and not self._told_value(
                entity, seen, problem.field
            ):
                unseen = Problem(None, problem.code, _UNSEEN[problem.code])
                if unseen not in found:
                    found.append(unseen)
            elif problem.field in seen.fields and _unfillable(seen, problem):
                # A field the caller sees but may not write: asking them for a
                # value would leave them no way to save.
                found.append(Problem(problem.field, problem.code, _NOT_YOURS))
            elif problem.field not in entity.fields or problem.field in seen.fields:
                # A system column, or a key the entity does not have, is named
                # to everyone alike: no role hides it.
                found.append(problem)
            elif problem.code in ("required", "read_only"):
                found.append(Problem(None, problem.code, _UNSEEN[problem.code]))
            else:
                found.append(Problem(None, problem.code, problem.message))
        return found

    def _told_value(self, entity: EntityDef, seen: EntityDef, field: Any) -> bool:
        """Whether a value that a rule computed for ``field`` may be told to
        the caller: the field is one they see, filled only by rules they are
        shown."""
        if field is None or field not in seen.fields:
            return False
        shown = readable_rules(self.shown_to)
        if shown is None:
            return True
        rules = self.catalog.rules.for_entity(entity.name)
        filling = [rule.name for rule in rules.defaults if rule.field == field]
        computed = rules.computed.get(field)
        if computed is not None:
            filling.append(computed.name)
        return all(name in shown for name in filling)

    def _rules(self, entity: EntityDef) -> RecordRules:
        return RecordRules(
            self.connection, self.catalog, entity, user=self.user, now=self.now
        )

    # -- reading ---------------------------------------------------------------

    def get(
        self, entity_name: str, record_id: Any, *, lock: bool = False
    ) -> dict[str, Any]:
        """Return one record.

        :param lock: lock its row as an update does, until the transaction ends,
            so that what is read stays so for a save that follows.
        :raises NotFound: no such entity or record.
        """
        entity = self.catalog.entity(entity_name)
        row = self._reachable(entity, record_id, "read", lock=lock)
        return self.shown(entity_name, row)

    def _row(
        self,
        entity: EntityDef,
        record_id: Any,
        *,
        lock: bool = False,
        where: Sequence[sa.ColumnElement[bool]] = (),
    ) -> Mapping[Any, Any]:
        if (
            isinstance(record_id, bool)
            or not isinstance(record_id, int)
            or not 0 < record_id <= INTEGER_LIMIT
        ):
            raise NotFound(f"There is no {entity.label} with id {record_id!r}.")
        query = sa.select(entity.table).where(entity.table.c.id == record_id, *where)
        if lock and self.connection.dialect.name != "sqlite":
            # What an automation changes is mostly the parent of the record
            # saved, whose other children may be being saved: each holds the
            # key-share lock of its foreign key on it and goes on to change it
            # too, so FOR UPDATE would make them wait in a circle. An update
            # keeps the id, which is all FOR NO KEY UPDATE leaves out
            # (automations delete nothing). Other saves keep FOR UPDATE, so that
            # a record created or moved to this one at the same moment waits and
            # reads what the save wrote (see RecordRules.load_related).
            query = query.with_for_update(key_share=self.via == "automation")
        row = self.connection.execute(query).mappings().first()
        if row is None:
            raise NotFound(f"There is no {entity.label} with id {record_id}.")
        return row

    # -- creating --------------------------------------------------------------

    def create(self, entity_name: str, data: Any) -> dict[str, Any]:
        """Validate and insert one record; return it as the API shows it.

        :raises ValidationFailed: with every field problem at once.
        :raises Conflict: only unique values clash with stored records.
        """
        entity = self.catalog.entity(entity_name)
        values, problems = self.check_new(entity_name, [data])
        _raise_for(problems[0])
        with batched(self):
            row = self._insert(entity, values)[0]
            record_created(self, entity, [row])
            wrote = Cascade(self).run([Change(entity, "create", None, row)])
        if wrote:
            return self.shown(entity_name, self._row(entity, row["id"]))
        return self.shown(entity_name, row)

    def create_many(
        self, entity_name: str, rows: Sequence[Any], *, skip_bad_rows: bool = False
    ) -> tuple[list[int | None], dict[int, list[Problem]]]:
        """Validate and insert many records with one statement.

        Returns the new ids in row order (``None`` for a bad row) and the problems
        of each bad row by its index.

        :raises BatchFailed: some rows are bad and ``skip_bad_rows`` is false; then
            nothing of the batch is inserted.
        """
        entity = self.catalog.entity(entity_name)
        values, problems = self.check_new(entity_name, rows)
        bad = {index: found for index, found in enumerate(problems) if found}
        runner = self._rules(entity)
        again = self._reads_earlier_rows(entity, runner)
        # A row refused on what the rows before it had not yet changed is
        # judged again once they are stored (see _create_one_by_one).
        if bad and not skip_bad_rows and not again:
            raise BatchFailed(bad)
        if again or self._one_at_a_time(entity, runner):
            return self._create_one_by_one(
                entity, rows, values, bad, skip_bad_rows, again=again
            )
        good = [item for index, item in enumerate(values) if index not in bad]
        cascade = Cascade(self)
        # What follows the inserts (a roll-up's total that no longer fits), or a
        # formula computed as they are stored, can refuse the batch as a whole;
        # the rows are then saved one at a time instead, so that the bad ones are
        # known: skipped if the caller asked, else reported row by row.
        retry = cascade.needed(entity) or runner.computed_when_stored
        batch = self.connection.begin_nested() if retry else None
        try:
            inserted = self._insert(entity, good) if good else []
            record_created(self, entity, inserted)
            cascade.run([Change(entity, "create", None, row) for row in inserted])
        except (ValidationFailed, Conflict):
            if batch is None:
                raise
            batch.rollback()
            return self._create_one_by_one(
                entity, rows, values, bad, skip_bad_rows, again=again
            )
        if batch is not None:
            batch.commit()
        rows_left = iter(inserted)
        ids = [
            None if index in bad else int(next(rows_left)["id"])
            for index in range(len(values))
        ]
        return ids, bad

    def _one_at_a_time(self, entity: EntityDef, runner: RecordRules) -> bool:
        """Whether new records of ``entity`` are saved one at a time: automations
        save other records with each, or a unique formula is known only once each
        is stored (see :meth:`_insert`). So are they when the rules read what the
        rows before one change (see :meth:`_reads_earlier_rows`), and when what
        follows a new record (a roll-up's parent, what that changes in turn)
        triggers automations: saved together, the parent would change once for
        the batch, and its automations would run once instead of once a record.
        """
        if runner.unique_when_stored:
            return True
        if self.bypass_automation:
            return False
        if self.catalog.rules.for_entity(entity.name).automations:
            return True
        return self.catalog.derived(
            ("automated_after_create", entity.name),
            lambda: _automated_after(self.catalog, entity.name),
        )

    def _reads_earlier_rows(self, entity: EntityDef, runner: RecordRules) -> bool:
        """Whether the rules of ``entity`` read, through a lookup, what the save of
        another new record of it may change: a roll-up's total or a formula that
        follows it, or any field when automations run (its own, or those of the
        related record, which a roll-up's change triggers)."""
        rules = self.catalog.rules.for_entity(entity.name)
        automated = not self.bypass_automation and bool(rules.automations)
        if not (automated or rules.rollups):
            return False
        for lookup, names in runner.related_reads.items():
            spec = entity.fields.get(lookup)
            if spec is None or spec["type"] != "lookup":
                continue
            target = self.catalog.rules.for_entity(spec["target"])
            anything = automated or (
                bool(target.automations) and not self.bypass_automation
            )
            if any(anything or name in target.computed for name in names):
                return True
        return False

    def _create_one_by_one(
        self,
        entity: EntityDef,
        rows: Sequence[Any],
        values: list[dict[str, Any]],
        bad: dict[int, list[Problem]],
        skip_bad_rows: bool,
        *,
        again: bool,
    ) -> tuple[list[int | None], dict[int, list[Problem]]]:
        """Insert rows one at a time, so that a failure fails its row only.

        Automations save other records, and each row's must succeed or vanish with
        it; a savepoint per row gives that. A unique formula known only once a row
        is stored is judged then, against the rows stored before it. Rules that
        read what the rows before a row changed judge it again once they are
        stored, as saves made one by one would, a row they refused before too
        (``again``: see :meth:`_reads_earlier_rows`).
        """
        ids: list[int | None] = [None] * len(values)
        stored: set[int] = set()
        batch = self.connection.begin_nested()
        for index, item in enumerate(values):
            if index in bad and not (again and stored):
                continue
            row_savepoint = self.connection.begin_nested()
            try:
                if again and stored:
                    checked, found = self.check_new(entity.name, [rows[index]])
                    _raise_for(found[0])
                    item = checked[0]
                row = self._insert(entity, [item], earlier=stored)[0]
                record_created(self, entity, [row])
                Cascade(self).run([Change(entity, "create", None, row)])
            except (ValidationFailed, Conflict) as error:
                row_savepoint.rollback()
                bad[index] = row_problems(error)
                continue
            row_savepoint.commit()
            bad.pop(index, None)
            ids[index] = int(row["id"])
            stored.add(int(row["id"]))
        if bad and not skip_bad_rows:
            batch.rollback()
            raise BatchFailed(bad)
        batch.commit()
        return ids, bad

    def check_new(
        self,
        entity_name: str,
        rows: Sequence[Any],
        *,
        unread: Sequence[Collection[str]] = (),
    ) -> tuple[list[dict[str, Any]], list[list[Problem]]]:
        """Validate new records without saving them.

        Returns the converted values and the problems of each row, in row order.

        :param unread: the fields of each row whose values the caller could not
            read and so left out of it (a CSV cell that is not a date). They
            count as given, and the rules that read them are left out, as for a
            value of ``rows`` that cannot be read; the others run.
        """
        entity = self.catalog.entity(entity_name)
        access = self._may(entity, "create")
        for data in rows:
            self._check_fields(access, data)
        runner = self._rules(entity)
        self.related_read = runner.related_rows
        problems = [_check_keys(entity, data) for data in rows]
        if access is not None:
            owners = [
                data.get("owner_id") if isinstance(data, dict) else None
                for data in rows
            ]
            for found, more in zip(
                problems, self._check_owners(access, "create", owners), strict=True
            ):
                found += more
        computed = runner.rules.computed
        if computed:
            for data, found in zip(rows, problems, strict=True):
                found += _computed_problems(self.view, entity, computed, data)
        incoming = [_known(entity, data, computed) for data in rows]
        given = [frozenset(record) for record in incoming]
        if unread:
            given = [
                names | frozenset(left_out)
                for names, left_out in zip(given, unread, strict=True)
            ]
        for record in incoming:
            for name, default in entity.defaults:
                if name not in record:
                    record[name] = copy.deepcopy(default)
        values = self._load_many(
            entity, incoming, problems, partial=runner.relaxed() or False
        )
        if runner.rules.on_records:
            runner.withhold(values, self.unreadable)
            runner.prepare_new(values, given, problems, unread=unread)
        problems = [self._as_seen(entity, found) for found in problems]
        checks = (
            self._check_references(entity, values, known=runner.stored),
            self._check_unique(entity, values, later=runner.unique_when_stored),
        )
        for found_per_row in checks:
            for index, found in enumerate(found_per_row):
                problems[index] += found
        return values, problems

    def _load_many(
        self,
        entity: EntityDef,
        incoming: list[dict[str, Any]],
        problems: list[list[Problem]],
        *,
        partial: bool | tuple[str, ...],
    ) -> list[dict[str, Any]]:
        """Check records with the entity's schema in one call; add their problems.

        One ``load`` of the whole batch spares marshmallow's per-call work, which
        matters for imports of many rows.
        """
        owners = [record.pop("owner_id", None) for record in incoming]
        try:
            values: list[dict[str, Any]] = entity.schema.load(
                incoming, many=True, partial=partial
            )
        except ma.ValidationError as error:
            valid: list[Any] = list(error.valid_data or [])
            values = [dict(item or {}) for item in valid]
            for position, messages in _as_dict(error.messages).items():
                problems[int(position)] += problems_from(_as_dict(messages))
        for row, owner in enumerate(owners):
            if owner is not None:
                problems[row] += self._check_owner(owner)
                values[row]["owner_id"] = owner
        return values

    def _check_owner(self, owner: Any) -> list[Problem]:
        if not _is_user_id(owner):
            return [Problem("owner_id", "invalid_reference", "Enter a user id.")]
        found = self.connection.execute(
            sa.select(users.c.id).where(users.c.id == owner, users.c.active)
        ).first()
        if found is None:
            return [Problem("owner_id", "not_found", f"There is no user {owner}.")]
        return []

    def _insert(
        self,
        entity: EntityDef,
        batch: list[dict[str, Any]],
        *,
        earlier: Collection[int] = (),
    ) -> list[dict[str, Any]]:
        """Store new records whose values were checked; return their rows.

        :param earlier: records stored by earlier rows of the same batch, when it
            is saved one row at a time.
        """
        now = utcnow()
        rows: list[dict[str, Any]] = []
        numbered = [s for s in entity.fields.values() if s["type"] == "autonumber"]
        firsts = {
            spec["name"]: allocate(
                self.connection, entity.name, spec["name"], len(batch)
            )
            for spec in numbered
        }
        for index, values in enumerate(batch):
            row: dict[str, Any] = dict.fromkeys(entity.fields)
            row.update(values)
            for spec in numbered:
                row[spec["name"]] = format_number(spec, firsts[spec["name"]] + index)
            row.setdefault("owner_id", None)
            if row["owner_id"] is None:
                row["owner_id"] = self.actor.user_id
            row.update(
                created_at=now, updated_at=now, created_by=self.actor.user_id, version=1
            )
            rows.append(row)
        if self.catalog.rules.for_entity(entity.name).formulas:
            runner = self._rules(entity)
            try:
                runner.when_stored(rows)
            except ValidationFailed as error:
                error.problems = self._as_seen(entity, list(error.problems))
                raise
            late = runner.unique_when_stored
            if late:
                # One row at a time (see create_many): its clash is its own.
                for found in self._check_unique(
                    entity, rows, only=late, earlier=earlier
                ):
                    _raise_for(found)
        try:
            ids = self._execute_insert(entity.table, rows)
        except sa.exc.IntegrityError as error:
            raise self._clash(entity, error) from None
        for row, new_id in zip(rows, ids, strict=True):
            row["id"] = new_id
        return rows

    def _execute_insert(self, table: sa.Table, rows: list[dict[str, Any]]) -> list[int]:
        if len(rows) == 1 or self.connection.dialect.name != "sqlite":
            return list(self.connection.execute(_insert(table), rows).scalars())
        # SQLite cannot match RETURNING rows to an executemany's rows, so SQLAlchemy
        # would fall back to one INSERT per row. A write transaction on SQLite holds
        # the database's write lock (see db.create_engine), so the next ids are
        # known: the ones SQLite itself would give.
        last = self.connection.execute(
            sa.text(
                "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = :t),"
                ' 0), coalesce((SELECT max(id) FROM "' + table.name + '"), 0))'
            ),
            {"t": table.name},
        ).scalar()
        first = int(last or 0) + 1
        for offset, row in enumerate(rows):
            row["id"] = first + offset
        self.connection.execute(table.insert(), rows)
        return [first + offset for offset in range(len(rows))]

    # -- changing --------------------------------------------------------------

    def update(
        self,
        entity_name: str,
        record_id: Any,
        data: Any,
        *,
        expected_version: int | None = None,
        unread: Collection[str] = (),
    ) -> dict[str, Any]:
        """Validate and apply a partial change; return the record after it.

        :param unread: fields whose values the caller could not read and so left
            out of ``data`` (a CSV cell that is not a number): the rules that
            read them are left out, as for a value of ``data`` that cannot be
            read, and the others run. Such a change is only checked, never
            written, so no automation judges the stored values of those fields.

        :raises NotFound: no such record.
        :raises PreconditionFailed: ``expected_version`` is not the stored version.
        :raises ValidationFailed: with every field problem at once.
        """
        entity = self.catalog.entity(entity_name)
        current = self._reachable(entity, record_id, "edit", lock=True)
        access = self.access(entity_name)
        self._check_fields(access, data, changed=())
        if isinstance(data, dict) and "version" in data:
            # Both the body's version and If-Match must hold: either one left
            # unchecked would let a stale change through.
            data = dict(data)
            _check_version(entity, current, data.pop("version"))
        _check_version(entity, current, expected_version)
        rules = self._rules(entity)
        self.related_read = rules.related_rows
        problems = _check_keys(entity, data)
        computed = rules.rules.computed
        if computed:
            problems += _computed_problems(self.view, entity, computed, data)
        known = _known(entity, data, computed)
        as_read = _given_as_read(entity, current, known)
        values = self._load_many(
            entity,
            [{key: value for key, value in known.items() if key not in as_read}],
            [problems],
            partial=True,
        )[0]
        values.update({name: current.get(name) for name in as_read})
        _keep_stored_spellings(entity, current, values)
        # The rules judge what could be read; a value that could not be read
        # leaves out those that read it (see RecordRules.prepare_new).
        blind = unread_fields(problems)
        if blind is not None:
            blind |= set(unread)
        if rules.rules.on_records and blind is not None:
            given = {k: v for k, v in values.items() if current.get(k) != v}
            rules.withhold([given], self.unreadable)
            key = (entity.name, int(current["id"]))
            began = None
            if key in self.saves_under_way:
                found = self.saves_under_way[key]
                # A roll-up's parent moved without being read first has, as
                # they were, the fields its move returned (all of them when a
                # readonly_if may read them); the others are as stored (see
                # Cascade._blind_increments).
                began = (None if found is None else {**current, **found},)
            problems += self._as_seen(
                entity,
                rules.prepare_change(current, values, save_began=began, blind=blind),
            )
        merged = {**current, **values}
        changed = {k: v for k, v in values.items() if current.get(k) != v}
        if access is not None:
            self._check_fields(access, data, changed=changed)
            if "owner_id" in changed and _is_user_id(changed["owner_id"]):
                problems += self._check_owners(access, "edit", [changed["owner_id"]])[0]
                if not access.owner_allowed("edit", current["owner_id"]):
                    # A record reached only through a sharing rule is edited, not
                    # owned: taking it would give its new owner what its scope
                    # gives owners (deleting it, say) and take it from the old.
                    message = "You may not change the owner of this record."
                    problems.append(Problem("owner_id", "forbidden_owner", message))
        probe = {k: merged[k] for k in changed}
        probe["id"] = current["id"]
        problems += self._check_references(entity, [probe])[0]
        problems += self._check_unique(entity, [probe])[0]
        _raise_for(problems)
        if not changed:
            return self.shown(entity_name, current)
        if unread:
            # As when a body value cannot be read, the change stops here: writing
            # it would run automations on the unread fields' stored values.
            return self.shown(entity_name, merged)
        with batched(self):
            merged = self._write_change(entity, current, merged, changed, computed)
        return self.shown(entity_name, merged)

    def _write_change(
        self,
        entity: EntityDef,
        current: Mapping[Any, Any],
        merged: dict[str, Any],
        changed: dict[str, Any],
        computed: Collection[str],
    ) -> dict[str, Any]:
        """Write a checked change with its history, and what follows from it;
        return the record after it."""
        table = entity.table
        now = utcnow()
        statement = (
            table.update()
            .where(table.c.id == current["id"], table.c.version == current["version"])
            .values(**changed, updated_at=now, version=current["version"] + 1)
        )
        try:
            result = self.connection.execute(statement)
        except sa.exc.IntegrityError as error:
            raise self._clash(entity, error) from None
        if result.rowcount != 1:
            raise PreconditionFailed(
                f"{entity.label} {current['id']} was changed by someone else; "
                "reload it."
            )
        merged.update(updated_at=now, version=current["version"] + 1)
        record_changed(self, entity, current, changed, computed=computed)
        if Cascade(self).run([Change(entity, "update", dict(current), merged)]):
            merged = dict(self._row(entity, current["id"]))
        return merged

    def delete(
        self, entity_name: str, record_id: Any, *, expected_version: int | None = None
    ) -> None:
        """Delete a record, honouring each lookup's ``on_delete``.

        :raises Conflict: a restricting lookup still points at the record.
        """
        entity = self.catalog.entity(entity_name)
        current = self._reachable(entity, record_id, "delete", lock=True)
        _check_version(entity, current, expected_version)
        cascade = Cascade(self)
        cleared = cascade.clearing(entity, current["id"])
        self._release_references(entity, current["id"])
        record_deleted(self, entity, current)
        self.connection.execute(
            entity.table.delete().where(entity.table.c.id == current["id"])
        )
        recomputed = cascade.after_clearing(cleared)
        cascade.run([Change(entity, "delete", dict(current), None), *recomputed])

    def _release_references(self, entity: EntityDef, record_id: int) -> None:
        """Apply each lookup's ``on_delete`` to the records that point here.

        A removed field or entity keeps its data, so its references hold the record
        back as a restricting lookup would: clearing them would lose data no one
        can see.
        """
        cleared: dict[str, tuple[EntityDef, dict[str, sa.ColumnElement[bool]]]] = {}
        for other, spec, pointing, visible in self._pointing_at(entity, record_id):
            if visible and spec.get("on_delete", "restrict") == "set_null":
                lookups_cleared(self, other, spec["name"], pointing)
                cleared.setdefault(other.name, (other, {}))[1][spec["name"]] = pointing
        for other, lookups in cleared.values():
            self._clear(other, lookups)
        problems = []
        unseen = False
        for other, spec, visible, count, shown in self._holders(entity, record_id):
            unseen = unseen or shown < count
            if shown:
                where = spec["label"] if visible else f"the removed {spec['label']}"
                message = (
                    f"{shown} {other.label} record(s) refer to it through {where}."
                )
                if not visible:
                    message += " Restore or purge that field to go on."
                field = f"{other.name}.{spec['name']}"
                problems.append(Problem(field, "referenced", message))
        if unseen:
            problems.append(Problem(None, "referenced", _UNSEEN["referenced"]))
        if problems:
            raise Conflict(
                f"This {entity.label} cannot be deleted while other records refer to "
                "it.",
                problems=problems,
            )

    def held_back_unseen(self, entity_name: str, record_id: int) -> bool:
        """Whether records the caller may not be told of would hold a delete of
        ``record_id`` back, as :meth:`_release_references` finds them: the
        delete page says so before the caller presses Delete, as the refusal
        would, without counting them."""
        entity = self.catalog.entity(entity_name)
        return any(
            shown < count for *_, count, shown in self._holders(entity, record_id)
        )

    def _holders(
        self, entity: EntityDef, record_id: int
    ) -> Iterator[tuple[EntityDef, Mapping[str, Any], bool, int, int]]:
        """Each lookup that holds a delete of ``record_id`` back (one that does
        not clear itself, with records pointing here): the entity it belongs to,
        its spec, whether it is live, how many records point here, and how many
        of them the caller may be told of."""
        for other, spec, pointing, visible in self._pointing_at(entity, record_id):
            if visible and spec.get("on_delete", "restrict") == "set_null":
                continue
            count = self.connection.execute(
                sa.select(sa.func.count()).where(pointing)
            ).scalar()
            if count:
                shown = self._referring(other, spec["name"], pointing, count)
                yield other, spec, visible, count, shown

    def _pointing_at(
        self, entity: EntityDef, record_id: int
    ) -> Iterator[tuple[EntityDef, Mapping[str, Any], sa.ColumnElement[bool], bool]]:
        """Each lookup to ``entity``, also of removed fields and entities: the
        entity it belongs to, its spec, the records of it that refer to
        ``record_id`` and whether the lookup is live."""
        for other in self.catalog.entities.values():
            specs = [*other.fields.values(), *other.hidden_fields.values()]
            for spec in specs:
                if spec["type"] != "lookup" or spec["target"] != entity.name:
                    continue
                column = other.table.c[spec["name"]]
                # A record that refers to itself does not hold itself back.
                pointing = column == record_id
                if other.name == entity.name:
                    pointing = sa.and_(pointing, other.table.c.id != record_id)
                visible = spec["name"] in other.fields and not other.removed
                yield other, spec, pointing, visible

    def _referring(
        self, other: EntityDef, field: str, pointing: sa.ColumnElement[bool], count: int
    ) -> int:
        """How many of the ``count`` records of ``other`` that refer through
        ``field`` the caller may be told of: those they may read, through a
        lookup they can see. The delete page counts the same ones."""
        seen = self.view.entities.get(other.name)
        if seen is other:
            return count
        if seen is None or seen.removed:
            return 0
        if field not in seen.fields and field not in seen.hidden_fields:
            return 0
        access = seen.access
        readable = None if access is None else access.where("read", other.table)
        if readable is None:
            return count
        return int(
            self.connection.execute(
                sa.select(sa.func.count())
                .select_from(other.table)
                .where(pointing, readable)
            ).scalar_one()
        )

    def _clear(
        self, entity: EntityDef, lookups: Mapping[str, sa.ColumnElement[bool]]
    ) -> None:
        """Clear each of ``lookups`` in the records it selects, with one statement,
        so that a record cleared through several lookups changes once."""
        table = entity.table
        if len(lookups) == 1:
            ((field, where),) = lookups.items()
            values: dict[str, Any] = {field: None}
        else:
            where = sa.or_(*lookups.values())
            values = {
                field: sa.case((pointing, sa.null()), else_=table.c[field])
                for field, pointing in lookups.items()
            }
        self.connection.execute(
            table.update()
            .where(where)
            .values({**values, "updated_at": utcnow(), "version": table.c.version + 1})
        )

    # -- checks against stored data --------------------------------------------

    def _check_references(
        self,
        entity: EntityDef,
        batch: list[dict[str, Any]],
        *,
        known: Callable[[str, Any], bool | None] | None = None,
    ) -> list[list[Problem]]:
        """The lookups of each record that point at no stored record.

        :param known: whether a record of an entity is stored, for the records
            this transaction has already read (``None`` for the others): the
            rules load the related records they read, and those need no second
            query.
        """
        problems: list[list[Problem]] = [[] for _ in batch]
        for spec in entity.lookups():
            name = spec["name"]
            wanted = {v[name] for v in batch if v.get(name) is not None}
            if not wanted:
                continue
            target = self.catalog.entity(spec["target"])
            found: set[Any] = set()
            access = self.access(target.name)
            clause = None if access is None else access.where("read", target.table)
            if clause is not None:
                # Only records the caller may read can be pointed at; the others
                # answer as if they did not exist.
                statement = sa.select(target.table.c.id).where(
                    target.table.c.id.in_(list(wanted)), clause
                )
                found = set(self.connection.execute(statement).scalars())
                wanted = set()
            elif known is not None:
                seen = {value: known(target.name, value) for value in wanted}
                found = {value for value, stored in seen.items() if stored}
                wanted = {value for value, stored in seen.items() if stored is None}
            if len(wanted) == 1:
                # One reference, the usual save: straight on the driver (see
                # .direct), as the rules load a related record.
                query = rows_by_id(target.table, (), single=True)
                rows = direct.run(self.connection, query, {"ids": min(wanted)})
                found |= {row["id"] for row in rows}
            elif wanted:
                found |= set(
                    self.connection.execute(
                        _ids_among(target.table), {"ids": list(wanted)}
                    ).scalars()
                )
            # A record may refer to one created earlier in the same batch only
            # through the database; ids not stored yet are reported.
            for index, values in enumerate(batch):
                value = values.get(name)
                if value is not None and value not in found:
                    message = f"There is no {target.label} with id {value}."
                    problems[index].append(Problem(name, "not_found", message))
        return problems

    def _check_unique(
        self,
        entity: EntityDef,
        batch: list[dict[str, Any]],
        *,
        later: Collection[str] = (),
        only: Collection[str] | None = None,
        earlier: Collection[int] = (),
    ) -> list[list[Problem]]:
        """Unique values of ``batch`` that clash with stored records or with each
        other: the problems of each row.

        :param later: fields left out, judged once the records are stored.
        :param only: the fields judged (all unique ones by default).
        :param earlier: records stored by earlier rows of the same batch, saved
            one at a time: a clash with one of them is a value given twice.
        """
        problems: list[list[Problem]] = [[] for _ in batch]
        for spec in entity.fields.values():
            name = spec["name"]
            if not is_unique(spec) or name in later:
                continue
            if only is not None and name not in only:
                continue
            positions: dict[Any, list[int]] = defaultdict(list)
            for index, values in enumerate(batch):
                if values.get(name) is not None:
                    positions[values[name]].append(index)
            if not positions:
                continue
            stored = self.connection.execute(
                _holders_of(entity.table, name), {"values": list(positions)}
            ).all()
            taken = {value: record_id for value, record_id in stored}
            # Only a clash with another record names it; most saves have none.
            clashing = {
                taken[value]
                for value, indexes in positions.items()
                if value in taken
                and any(taken[value] != batch[index].get("id") for index in indexes)
            }
            readable = self.readable(
                entity, {owner for owner in clashing if owner not in earlier}
            )
            for value, indexes in positions.items():
                for index in indexes:
                    owner = taken.get(value)
                    if owner is not None and owner in earlier:
                        message = (
                            f"{spec['label']} {value!r} appears twice in this batch."
                        )
                        problems[index].append(Problem(name, "unique", message))
                    elif owner is not None and owner != batch[index].get("id"):
                        whose = f"record {owner}" if owner in readable else "a record"
                        message = (
                            f"{spec['label']} {value!r} is already used by {whose}."
                        )
                        problems[index].append(Problem(name, "unique", message))
                for index in indexes[1:]:
                    message = f"{spec['label']} {value!r} appears twice in this batch."
                    problems[index].append(Problem(name, "unique", message))
        return self._unique_as_seen(entity, problems)

    def readable(
        self, entity: EntityDef, ids: Collection[int], *, aborted: bool = False
    ) -> set[int]:
        """Which of ``ids`` the caller may read: a record out of their reach is
        not named to them, though the value it holds cannot be given again.

        ``aborted``: the save's transaction can run no more statements (PostgreSQL
        gives one up at its first error), so the records are read beside it, as
        they were last committed; one this save stored is not among them.
        """
        if not ids:
            return set()
        seen = self.shown_to.entities.get(entity.name)
        access = None if seen is None else seen.access
        clause = None if access is None else access.where("read", entity.table)
        if clause is None:
            return set(ids)
        table = entity.table
        statement = sa.select(table.c.id).where(table.c.id.in_(list(ids)), clause)
        if not aborted:
            return set(self.connection.execute(statement).scalars())
        with self.connection.engine.connect() as beside:
            return set(beside.execute(statement).scalars())

    def _clash(self, entity: EntityDef, error: sa.exc.IntegrityError) -> Conflict:
        """A write the database refused after the save's own checks passed: a
        save made at the same moment took the unique value first, or removed a
        record referred to. Names the unique field where the database says
        which (a field the caller's roles hide, as a clash of it is named)."""
        field = _unique_field(entity, error)
        if field is None:
            return Conflict(_integrity_message(error))
        label = entity.fields[field]["label"]
        message = (
            f"{label}: a record saved at the same moment took the same value; "
            "change it and save again."
        )
        [problems] = self._unique_as_seen(entity, [[Problem(field, "unique", message)]])
        return Conflict(_integrity_message(error), problems=problems)

    def _unique_as_seen(
        self, entity: EntityDef, problems: list[list[Problem]]
    ) -> list[list[Problem]]:
        """Clashes of a field the caller's roles hide (a default or a formula
        filled it) name neither the field nor its value."""
        seen = self.shown_to.entities.get(entity.name)
        if seen is None or seen is entity:
            return problems
        return [
            [
                problem
                if problem.field is None or problem.field in seen.fields
                else Problem(None, "unique", _UNSEEN["unique"])
                for problem in found
            ]
            for found in problems
        ]


def _automated_after(catalog: Catalog, entity_name: str) -> bool:
    """Whether a new record of ``entity_name`` can change, through the roll-ups
    over it and whatever follows them (roll-ups over the parents, formulas that
    read the parents through lookups), a record whose automations run on
    ``update``."""
    rules = catalog.rules
    reached: set[str] = set()
    pending = [rollup.entity for rollup in rules.for_entity(entity_name).rollups]
    while pending:
        name = pending.pop()
        if name in reached:
            continue
        reached.add(name)
        found = rules.for_entity(name)
        if any("update" in automation.triggers for automation in found.automations):
            return True
        pending += [rollup.entity for rollup in found.rollups]
        pending += [dependent.child for dependent in found.dependents]
    return False


def unreadable_ids(
    connection: sa.Connection, view: Catalog, entity_name: str, ids: Collection[int]
) -> set[int]:
    """Which of ``ids`` of ``entity_name`` the caller whose view of the catalog is
    ``view`` may not read: none when nothing restricts their reading (or the
    entity is not in their view), all of them when they may not read it."""
    seen = view.entities.get(entity_name)
    if seen is None:
        return set()
    access = seen.access
    clause = None if access is None else access.where("read", seen.table)
    if clause is None or not ids:
        return set()
    table = seen.table
    readable = connection.execute(
        sa.select(table.c.id).where(table.c.id.in_(list(ids)), clause)
    ).scalars()
    return set(ids) - set(readable)


def _is_user_id(owner: Any) -> bool:
    """Whether an owner given for a record is a user id at all (stored or not)."""
    return (
        isinstance(owner, int)
        and not isinstance(owner, bool)
        and 0 < owner <= INTEGER_LIMIT
    )


def _check_keys(entity: EntityDef, data: Any) -> list[Problem]:
    if not isinstance(data, dict):
        raise BadRequest("A record must be a JSON object of field names and values.")
    if entity.writable.issuperset(data):
        return []
    problems = []
    for key in data:
        if not isinstance(key, str):
            problems.append(Problem(str(key), "unknown_field", "Unknown field."))
        elif key in WRITABLE_SYSTEM_COLUMNS:
            continue
        elif key in SYSTEM_COLUMNS or (
            key in entity.fields and entity.fields[key]["type"] == "autonumber"
        ):
            message = "This field is set by the system and cannot be written."
            problems.append(Problem(key, "read_only", message))
        elif key not in entity.fields:
            message = f"{entity.label} has no field {key!r}."
            problems.append(Problem(key, "unknown_field", message))
    return problems


# Statements are built once per table of a catalog: building one costs more than
# running it. The caches hold tables of recent catalogs only.


@functools.lru_cache(maxsize=2048)
def _ids_among(table: sa.Table) -> sa.Select[Any]:
    return sa.select(table.c.id).where(
        table.c.id.in_(sa.bindparam("ids", expanding=True))
    )


@functools.lru_cache(maxsize=2048)
def _holders_of(table: sa.Table, column: str) -> sa.Select[Any]:
    return sa.select(table.c[column], table.c.id).where(
        table.c[column].in_(sa.bindparam("values", expanding=True))
    )


@functools.lru_cache(maxsize=2048)
def _insert(table: sa.Table) -> sa.Insert:
    return table.insert().returning(table.c.id, sort_by_parameter_order=True)


def _known(
    entity: EntityDef, data: dict[str, Any], computed: Collection[str] = ()
) -> dict[str, Any]:
    """Keep the keys a record may be written with; the rest are reported apart."""
    if entity.writable.issuperset(data) and not computed:
        return dict(data)
    return {
        key: value
        for key, value in data.items()
        if key in WRITABLE_SYSTEM_COLUMNS
        or (
            key in entity.fields
            and entity.fields[key]["type"] != "autonumber"
            and key not in computed
        )
    }


def _given_as_read(
    entity: EntityDef, current: Mapping[str, Any], data: Mapping[str, Any]
) -> set[str]:
    """The fields given exactly the value a read of the record shows.

    They are no change, and their stored values are kept without being judged
    by their fields' limits again: a value saved before its field's limits
    changed (a lower ``max`` or ``max_length``, a choice no longer offered, a
    field made required while blank) is kept by a PATCH sending the record back
    as read, and by a keyed import of its export, as the edit form keeps what
    the person did not touch.
    """
    found = set()
    for name, given in data.items():
        spec = entity.fields.get(name)
        if spec is None:
            continue
        stored = current.get(name)
        if _same_value(given, to_json(spec, stored)) or _same_value(given, stored):
            found.add(name)
    return found


def _same_value(given: Any, stored: Any) -> bool:
    """Whether ``given`` is ``stored`` in the same form: its JSON form, or the
    typed value an import reads from a cell (a ``Decimal``, a ``date``)."""
    if isinstance(given, bool) or isinstance(stored, bool):
        return given is stored
    if isinstance(given, (int, float)) and isinstance(stored, (int, float)):
        return bool(given == stored)
    return type(given) is type(stored) and bool(given == stored)


def _keep_stored_spellings(
    entity: EntityDef, current: Mapping[str, Any], values: dict[str, Any]
) -> None:
    """A value given in another spelling of what is stored is no change, and the
    stored value is kept:

    - a multi-picklist holds a set of choices, so the same choices named in
      another order (forms send ticked boxes in the order of the options, an
      import and the API in the order written);
    - one-line text stored with spaces around it (before such text was trimmed
      on every path) is the text without them, which is all a save can now give.

    Without this, ``readonly_if`` or a role that may only read the field would
    refuse on one path (a PATCH sending the record back as read, a keyed import
    of its export) what the edit form, which leaves untouched values alone,
    saves; and a save would be written, and kept in the history, that changed
    nothing.
    """
    for name, value in values.items():
        stored = current.get(name)
        if value == stored or stored is None or value is None:
            continue
        spec = entity.fields.get(name)
        kind = spec["type"] if spec is not None else None
        if kind == "multi_picklist":
            same = (
                isinstance(value, list)
                and isinstance(stored, list)
                and sorted(value) == sorted(stored)
            )
        elif kind in _ONE_LINE_TEXT:
            same = isinstance(stored, str) and stored.strip() == value
        else:
            continue
        if same:
            values[name] = stored


#: Text kept without the spaces around it (see :func:`_keep_stored_spellings`).
_ONE_LINE_TEXT = TEXT_TYPES - {"textarea"}


def _computed_problems(
    view: Catalog, entity: EntityDef, computed: Mapping[str, Any], data: Any
) -> list[Problem]:
    """Fields a formula or roll-up computes are refused, never silently dropped.

    The rule is named only to a caller whose ``view`` of the catalog shows it (see
    :func:`.access.readable_rules`): its name would tell of fields or entities
    hidden from them.
    """
    if not isinstance(data, dict) or computed.keys().isdisjoint(data):
        return []
    shown = readable_rules(view)
    problems = []
    for key in data:
        rule = computed.get(key)
        if rule is None:
            continue
        label = entity.fields[key]["label"]
        if shown is None or rule.name in shown:
            message = (
                f"{label} is computed by the {rule.type} rule {rule.name!r} and "
                "cannot be written."
            )
        else:
            message = f"{label} is computed by a rule and cannot be written."
        problems.append(Problem(key, "computed", message))
    return problems


def _check_version(
    entity: EntityDef, current: Mapping[Any, Any], expected: Any
) -> None:
    if expected is None:
        return
    if isinstance(expected, bool) or not isinstance(expected, int):
        raise BadRequest.parameter(
            "version", "give the record's version as a whole number, e.g. 3."
        )
    if expected != current["version"]:
        raise PreconditionFailed(
            f"{entity.label} {current['id']} is at version {current['version']}, not "
            f"{expected}; reload it and apply your change again."
        )


def _unfillable(seen: EntityDef, problem: Problem) -> bool:
    """Whether ``problem`` asks for a value of a field that the caller's roles
    let them see but not write."""
    access = seen.access
    return (
        problem.code == "required"
        and access is not None
        and isinstance(problem.field, str)
        and access.level(problem.field) != "editable"
    )


#: What a required field the caller may see but not write says.
_NOT_YOURS = (
    "This field is required, and your roles cannot fill it; ask an administrator."
)

#: What a field-state problem on a field the caller cannot see says instead.
_UNSEEN = {
    "required": (
        "A field you cannot see is required for this record; ask an administrator."
    ),
    "read_only": (
        "A field you cannot see cannot be changed now; ask an administrator."
    ),
    "referenced": (
        "Records you cannot see refer to it; ask an administrator to go on."
    ),
    "unique": (
        "A field you cannot see would hold a value another record already has; "
        "ask an administrator."
    ),
    "rule_value": "A rule you cannot see refused this change; ask an administrator.",
}


def _raise_for(problems: list[Problem]) -> None:
    if not problems:
        return
    refused = [problem for problem in problems if problem.code == "forbidden_owner"]
    if refused:
        raise Forbidden(
            "You may not give the record to that owner; nothing was saved.",
            problems=refused,
        )
    if all(problem.code == "unique" for problem in problems):
        raise Conflict(
            "A record with the same value already exists.", problems=problems
        )
    raise ValidationFailed("The record has invalid values.", problems=problems)


def _as_dict(messages: Any) -> dict[str, Any]:
    return messages if isinstance(messages, dict) else {"_schema": messages}


def _unique_field(entity: EntityDef, error: sa.exc.IntegrityError) -> str | None:
    """The unique field of ``entity`` whose index refused a write, where the
    driver says: PostgreSQL names the index, SQLite the column."""
    constraint = getattr(getattr(error.orig, "diag", None), "constraint_name", None)
    text = str(error.orig)
    for name, spec in entity.fields.items():
        if not is_unique(spec):
            continue
        if constraint is not None:
            if constraint == index_name("uq", entity.table.name, name):
                return name
        elif text == f"UNIQUE constraint failed: {entity.table.name}.{name}":
            return name
    return None


def _integrity_message(error: sa.exc.IntegrityError) -> str:
    # The driver's text may contain values; keep the user's message generic.
    del error
    return "The change clashes with stored records (a unique value or a reference)."
