"""One caller's permissions, and the catalog as that caller may see it.

:func:`permissions_for` adds up the roles a caller holds into one
:class:`EntityAccess` per entity: the widest scope of each operation, the most open
level of each field, and the sharing rules that apply. :func:`restrict` turns the
catalog into the caller's view of it: entities the caller may not read are
removed, hidden fields are left out of every entity, and each entity carries its
:class:`EntityAccess`, whose :meth:`EntityAccess.where` gives the SQL that selects
the records an operation may touch. Every list, count, search and lookup builds on
that one clause.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ..rules_engine import ConditionError, SqlTranslationError
from ._roles import OPERATIONS, SCOPES, StoredRole, sharing_clause

if TYPE_CHECKING:
    from ._catalog import Catalog, EntityDef

_RANK = {scope: rank for rank, scope in enumerate(SCOPES)}
_LEVEL_RANK = {"hidden": 0, "read_only": 1, "editable": 2}
#: Keys of ``$user`` the platform fills; attributes may not replace them.
RESERVED_USER_KEYS = frozenset({"id", "username", "roles", "teams", "admin"})


@dataclass(frozen=True)
class Caller:
    """Who asks: what the permissions and ``$user`` in conditions depend on."""

    user_id: int | None
    username: str
    #: An administrator: by the account's flag or, in :class:`Permissions`, also
    #: by a role that says ``"admin": true``.
    admin: bool = False
    #: The roles held, directly or through a team.
    roles: tuple[str, ...] = ()
    #: The names of the user's teams.
    teams: tuple[str, ...] = ()
    #: Ids of every user who shares a team with this one, this one included.
    teammates: tuple[int, ...] = ()
    #: The user's attributes (``region``...) as a JSON object text.
    attributes: str = "{}"

    def condition_data(self) -> dict[str, Any]:
        """What ``$user`` reads in a condition."""
        data = {
            key: value
            for key, value in json.loads(self.attributes).items()
            if key not in RESERVED_USER_KEYS
        }
        roles = list(self.roles)
        if self.admin and "admin" not in roles:
            roles.append("admin")
        data.update(
            id=self.user_id,
            username=self.username,
            roles=roles,
            teams=list(self.teams),
        )
        return data


@dataclass(frozen=True)
class EntityAccess:
    """What one caller may do to the records of one entity."""

    entity: str
    caller: Caller
    #: Operation -> scope; ``read`` already covers what edit and delete reach.
    scopes: Mapping[str, str]
    #: Fields that are not editable -> ``hidden`` or ``read_only``.
    levels: Mapping[str, str]
    #: ``(access, condition)`` of each sharing rule that applies.
    sharing: tuple[tuple[str, Any], ...] = ()
    #: The entity with every field (sharing conditions may read hidden ones);
    #: set by :func:`restrict`.
    full: EntityDef | None = None

    def scope(self, operation: str) -> str:
        return self.scopes.get(operation, "none")

    def exports_what_it_reads(self) -> bool:
        """Whether an export reaches every record the caller reads: its scope is
        ``all``, or as wide as the read scope with no sharing rule opening more."""
        export = self.scope("export")
        if export == "all":
            return True
        return not self.sharing and _RANK[export] >= _RANK[self.scope("read")]

    def can(self, operation: str) -> bool:
        """Whether the operation reaches any record at all (sharing included)."""
        if self.scope(operation) != "none":
            return True
        wanted = {"read": ("read", "edit"), "edit": ("edit",)}.get(operation, ())
        return any(access in wanted for access, _ in self.sharing)

    def level(self, field: str) -> str:
        return self.levels.get(field, "editable")

    def owner_allowed(self, operation: str, owner_id: Any) -> bool:
        """Whether a record owned by ``owner_id`` is within the operation's scope."""
        scope = self.scope(operation)
        if scope == "all":
            return True
        if scope == "team":
            return owner_id in self.caller.teammates or owner_id == self.caller.user_id
        if scope == "own":
            return owner_id == self.caller.user_id
        return False

    def where(
        self, operation: str, table: sa.Table, *, now: dt.datetime | None = None
    ) -> sa.ColumnElement[bool] | None:
        """The records ``operation`` may touch, as a WHERE clause; ``None`` for all.

        ``read`` and ``edit`` add the records the caller's sharing rules open;
        ``export`` reaches what the caller may read within the export scope.
        """
        if operation == "export":
            readable = self.where("read", table, now=now)
            scoped = self._scope_clause(self.scope("export"), table)
            if scoped is None:
                return readable
            return scoped if readable is None else sa.and_(scoped, readable)
        clause = self._scope_clause(self.scope(operation), table)
        if clause is None:
            return None
        wanted = {"read": ("read", "edit"), "edit": ("edit",)}.get(operation, ())
        user = self._user
        shared = []
        for access, condition in self.sharing:
            if access not in wanted or not _user_has_all(user, condition):
                continue
            try:
                shared.append(sharing_clause(self._full(), condition, user, now=now))
            except (ConditionError, SqlTranslationError, ValueError, OverflowError):
                # A value of the caller's that the condition cannot compare (a
                # list where text was meant): the rule opens nothing to them.
                continue
        if not shared:
            return clause
        if self.scope(operation) == "none":
            return sa.or_(*shared)
        return sa.or_(clause, *shared)

    def _scope_clause(
        self, scope: str, table: sa.Table
    ) -> sa.ColumnElement[bool] | None:
        owner = table.c.owner_id
        if scope == "all":
            return None
        if scope == "team":
            mates = sorted({*self.caller.teammates, self.caller.user_id or 0})
            if len(mates) == 1:
                return owner == mates[0]
            return owner.in_(mates)
        if scope == "own":
            return owner == self.caller.user_id
        return sa.false()

    @property
    def _user(self) -> dict[str, Any]:
        return self.caller.condition_data()

    def _full(self) -> EntityDef:
        if self.full is None:
            raise LookupError(f"the access to {self.entity} belongs to no catalog")
        return self.full


def _user_has_all(user: Mapping[str, Any], condition: Any) -> bool:
    """Whether the caller has every ``$user`` value a sharing condition reads.

    A rule such as "region equals $user.region" opens nothing to a user without a
    region: otherwise null would equal the blank region of every record.
    """
    for name in _user_reads(condition):
        value = user.get(name)
        if value is None or value == "" or value == []:
            return False
    return True


def _user_reads(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, list):
        for item in node:
            found |= _user_reads(item)
    elif isinstance(node, dict):
        for operator, operand in node.items():
            path = operand[0] if isinstance(operand, list) and operand else operand
            if (
                operator == "var"
                and isinstance(path, str)
                and path.startswith("$user.")
            ):
                found.add(path.split(".")[1])
            found |= _user_reads(operand)
    return found


@dataclass(frozen=True)
class Permissions:
    """Everything one caller may do, entity by entity."""

    caller: Caller
    #: Administrators may do everything; ``entities`` is then empty.
    admin: bool
    entities: Mapping[str, EntityAccess]

    def entity(self, name: str) -> EntityAccess | None:
        """The caller's access to ``name``; ``None`` for an administrator."""
        if self.admin:
            return None
        return self.entities.get(name) or EntityAccess(name, self.caller, {}, {})

    def can(self, entity: str, operation: str) -> bool:
        access = self.entity(entity)
        return access is None or access.can(operation)


def permissions_for(caller: Caller, roles: Mapping[str, StoredRole]) -> Permissions:
    """Add up the roles ``caller`` holds (unknown role names are ignored)."""
    held = [roles[name].document for name in caller.roles if name in roles]
    admin = caller.admin or any(document.get("admin") for document in held)
    if admin:
        # A role that makes its holders administrators makes them so to the
        # rules too: ``$user.roles`` carries "admin", as on the pages.
        return Permissions(replace(caller, admin=True), True, {})
    scopes: dict[str, dict[str, str]] = {}
    # Per entity, the field levels of each role that reads it.
    readers: dict[str, list[Mapping[str, str]]] = {}
    sharing: dict[str, list[tuple[str, Any]]] = {}
    for document in held:
        grants = document.get("entities", {})
        # A role reads an entity through its scopes or through its sharing rules;
        # either way its field levels are the ones its records are read with.
        shared = {rule["entity"] for rule in document.get("sharing", [])}
        for entity, grant in grants.items():
            mine = scopes.setdefault(entity, {})
            for operation in OPERATIONS:
                mine[operation] = _wider(mine.get(operation), grant.get(operation))
        for entity in {*grants, *shared}:
            grant = grants.get(entity, {})
            if _reach(grant) != "none" or entity in shared:
                readers.setdefault(entity, []).append(grant.get("fields", {}))
        for rule in document.get("sharing", []):
            sharing.setdefault(rule["entity"], []).append(
                (rule["access"], rule["condition"])
            )
    result = {}
    for entity in {*scopes, *sharing}:
        mine = dict(scopes.get(entity, {}))
        mine["read"] = _reach(mine)
        result[entity] = EntityAccess(
            entity,
            caller,
            mine,
            _field_levels(readers.get(entity, [])),
            tuple(sharing.get(entity, ())),
        )
    return Permissions(caller, False, result)


def _wider(one: str | None, other: str | None) -> str:
    one, other = one or "none", other or "none"
    return one if _RANK[one] >= _RANK[other] else other


def _reach(grant: Mapping[str, Any]) -> str:
    """How far reading goes: editing or deleting a record means reading it."""
    reach = "none"
    for operation in ("read", "edit", "delete"):
        reach = _wider(reach, grant.get(operation))
    return reach


def _field_levels(readers: list[Mapping[str, str]]) -> dict[str, str]:
    """The most open level of each field over the roles that read the entity.

    A role that does not name a field leaves it editable.
    """
    result = {}
    for field in {name for levels in readers for name in levels}:
        level = max(
            (levels.get(field, "editable") for levels in readers),
            key=_LEVEL_RANK.__getitem__,
        )
        if level != "editable":
            result[field] = level
    return result


def restrict(catalog: Catalog, permissions: Permissions) -> Catalog:
    """The catalog as the caller may see it (the same catalog for an admin).

    Entities the caller cannot read are marked removed, so every page and endpoint
    answers for them as for an entity that does not exist; hidden fields are gone
    from ``fields`` and from the document. The result keeps the full catalog in
    ``full``, for the record service, and the permissions in ``permissions``.
    """
    if permissions.admin:
        return dataclasses.replace(catalog, full=catalog, permissions=permissions)
    entities = {}
    for name, entity in catalog.entities.items():
        found = permissions.entity(name)
        assert found is not None
        access = dataclasses.replace(found, full=entity)
        readable = access.can("read")
        fields = {
            field: spec
            for field, spec in entity.fields.items()
            if access.level(field) != "hidden"
        }
        document = dict(entity.document)
        document["fields"] = [
            spec for spec in entity.document.get("fields", []) if spec["name"] in fields
        ]
        entities[name] = dataclasses.replace(
            entity,
            document=document,
            fields=fields,
            removed=entity.removed or not readable,
            access=access,
        )
    return dataclasses.replace(
        catalog,
        entities=entities,
        full=catalog,
        permissions=permissions,
        _effective={},
        _sections={},
        _derived={},
    )
