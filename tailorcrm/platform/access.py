"""Who holds which roles, teams and attributes; the caller's view of the catalog.

Role documents are metadata (see :mod:`tailorcrm.metadata`); which users and teams
hold them is data, kept in ``tc_user_role``, ``tc_team_role`` and
``tc_team_member``. Both are read on every request, so a role taken away is gone
from the next request on, without signing in again.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from ..errors import Conflict, NotFound, Problem, ValidationFailed
from ..metadata import (
    ID_TYPE,
    INTEGER_LIMIT,
    Caller,
    Catalog,
    entity_shapes,
    permissions_for,
    restrict,
    text_problems,
)
from ..metadata._access import RESERVED_USER_KEYS
from ..rules_engine import RollupRule, rule_uses
from .db import (
    access_versions,
    team_members,
    team_roles,
    teams,
    user_attributes,
    user_roles,
    users,
    utcnow,
)

NAME = re.compile(r"^[a-z][a-z0-9_]{0,99}$")

_m1 = team_members.alias("m1")
_m2 = team_members.alias("m2")
_me: sa.BindParameter[int] = sa.bindparam("user_id")
_NO_NAME = sa.cast(sa.null(), sa.String(100))
_NO_NUMBER = sa.cast(sa.null(), ID_TYPE)
_NO_VALUE = sa.cast(sa.null(), sa.JSON())
# The roles held directly and through teams, the teams, every teammate and the
# attributes, in one statement: every request reads them.
_CALLER_QUERY = sa.union_all(
    sa.select(
        sa.literal("role").label("kind"),
        user_roles.c.role.label("name"),
        _NO_NUMBER.label("number"),
        _NO_VALUE.label("value"),
    ).where(user_roles.c.user_id == _me),
    sa.select(sa.literal("role"), team_roles.c.role, _NO_NUMBER, _NO_VALUE)
    .select_from(team_roles.join(_m1, _m1.c.team_id == team_roles.c.team_id))
    .where(_m1.c.user_id == _me),
    sa.select(sa.literal("team"), teams.c.name, _NO_NUMBER, _NO_VALUE)
    .select_from(teams.join(_m1, _m1.c.team_id == teams.c.id))
    .where(_m1.c.user_id == _me),
    sa.select(sa.literal("mate"), _NO_NAME, _m2.c.user_id, _NO_VALUE)
    .select_from(_m1.join(_m2, _m1.c.team_id == _m2.c.team_id))
    .where(_m1.c.user_id == _me),
    sa.select(
        sa.literal("attribute"),
        user_attributes.c.name,
        _NO_NUMBER,
        user_attributes.c.value,
    ).where(user_attributes.c.user_id == _me),
)


def load_caller(
    connection: sa.Connection, user_id: int, username: str, is_admin: bool
) -> Caller:
    """Read what a user's permissions depend on (one statement)."""
    roles: set[str] = set()
    team_names: set[str] = set()
    mates: set[int] = {user_id}
    attributes: dict[str, Any] = {}
    rows = connection.execute(_CALLER_QUERY, {"user_id": user_id})
    for kind, name, number, value in rows:
        if kind == "role":
            roles.add(name)
        elif kind == "team":
            team_names.add(name)
        elif kind == "mate":
            mates.add(int(number))
        else:
            attributes[name] = value
    return Caller(
        user_id=user_id,
        username=username,
        admin=is_admin,
        roles=tuple(sorted(roles)),
        teams=tuple(sorted(team_names)),
        teammates=tuple(sorted(mates)),
        attributes=json.dumps(attributes, sort_keys=True),
    )


class CatalogViews:
    """Each caller's view of the catalog, kept while the revision lasts."""

    LIMIT = 1000

    def __init__(self) -> None:
        self._views: dict[tuple[int, Caller], Catalog] = {}
        self._revision: int | None = None
        self._lock = threading.Lock()

    def get(self, catalog: Catalog, caller: Caller) -> Catalog:
        key = (id(catalog), caller)
        view = self._views.get(key)
        if view is None:
            view = restrict(catalog, permissions_for(caller, catalog.roles))
            with self._lock:
                # A new revision makes every view kept so far useless.
                if catalog.revision != self._revision or len(self._views) >= self.LIMIT:
                    self._views.clear()
                    self._revision = catalog.revision
                self._views[key] = view
        return view


# -- administration ------------------------------------------------------------


def bump_access(connection: sa.Connection) -> None:
    """Note that roles, teams or attributes changed: every process reads the
    callers it keeps again from the next request on."""
    bumped = connection.execute(
        access_versions.update()
        .where(access_versions.c.id == 1)
        .values(version=access_versions.c.version + 1)
    )
    if bumped.rowcount == 0:
        connection.execute(access_versions.insert().values(id=1, version=1))


def user_id_of(connection: sa.Connection, username: str) -> int:
    """The id of a user, active or not.

    :raises NotFound: there is no such user.
    """
    found = connection.execute(
        sa.select(users.c.id).where(users.c.username == username)
    ).scalar()
    if found is None:
        raise NotFound(f"There is no user named {username!r}.")
    return int(found)


def _team_id(connection: sa.Connection, name: str) -> int:
    found = connection.execute(
        sa.select(teams.c.id).where(teams.c.name == name)
    ).scalar()
    if found is None:
        raise NotFound(f"There is no team named {name!r}.")
    return int(found)


def _check_roles(catalog: Catalog, roles: Iterable[str], field: str) -> list[str]:
    wanted = list(dict.fromkeys(roles))
    unknown = [name for name in wanted if name not in catalog.roles]
    if unknown:
        raise ValidationFailed(
            "Unknown roles; nothing was changed.",
            problems=[
                Problem(field, "unknown_role", f"There is no role named {name!r}.")
                for name in unknown
            ],
        )
    return wanted


def set_user_roles(
    connection: sa.Connection, catalog: Catalog, username: str, roles: Iterable[str]
) -> list[str]:
    """Give a user exactly these roles (held directly; team roles stay)."""
    user_id = user_id_of(connection, username)
    wanted = _check_roles(catalog, roles, "roles")
    bump_access(connection)
    connection.execute(user_roles.delete().where(user_roles.c.user_id == user_id))
    if wanted:
        connection.execute(
            user_roles.insert(), [{"user_id": user_id, "role": r} for r in wanted]
        )
    return wanted


def set_user_attributes(
    connection: sa.Connection, username: str, attributes: Mapping[str, Any]
) -> dict[str, Any]:
    """Replace a user's attributes (what ``$user.<name>`` reads)."""
    user_id = user_id_of(connection, username)
    problems = [
        Problem(
            f"attributes.{name}",
            "invalid_attribute",
            "Attribute names are lower case letters, digits and _; "
            "id, username, roles, teams and admin are the platform's.",
        )
        for name in attributes
        if not isinstance(name, str)
        or not NAME.match(name)
        or name in RESERVED_USER_KEYS
    ]
    problems += [
        Problem(
            f"attributes.{name}",
            "invalid_value",
            "An attribute is text, a number or true/false; a whole number lies "
            "between -9,223,372,036,854,775,807 and 9,223,372,036,854,775,807.",
        )
        for name, value in attributes.items()
        if not _plain(value)
    ]
    # A NUL or half a UTF-16 pair would reach the SQL of every list that reads
    # the attribute, which no database takes.
    problems += text_problems({"attributes": dict(attributes)})
    if problems:
        raise ValidationFailed("The attributes were refused.", problems=problems)
    bump_access(connection)
    connection.execute(
        user_attributes.delete().where(user_attributes.c.user_id == user_id)
    )
    if attributes:
        connection.execute(
            user_attributes.insert(),
            [
                {"user_id": user_id, "name": name, "value": value}
                for name, value in attributes.items()
            ],
        )
    return dict(attributes)


def _plain(value: Any) -> bool:
    if isinstance(value, float):
        return value == value and abs(value) != float("inf")
    if isinstance(value, int) and not isinstance(value, bool):
        # SQLite keeps a longer whole number as a float, losing its last digits,
        # and no filter could compare a field with it.
        return abs(value) <= INTEGER_LIMIT
    return isinstance(value, str | bool)


def create_team(
    connection: sa.Connection, name: str, label: str | None = None
) -> dict[str, Any]:
    _check_label(label, "The team cannot be created.")
    if not NAME.match(name):
        raise ValidationFailed(
            "The team cannot be created.",
            problems=[
                Problem(
                    "name",
                    "invalid_name",
                    "Use lower case letters, digits and _, starting with a letter.",
                )
            ],
        )
    taken = connection.execute(
        sa.select(teams.c.id).where(teams.c.name == name)
    ).first()
    if taken is not None:
        message = f"There is already a team named {name!r}."
        raise Conflict(message, problems=[Problem("name", "unique", message)])
    connection.execute(
        teams.insert().values(name=name, label=label or name, created_at=utcnow())
    )
    return team_info(connection, name)


def _check_label(label: str | None, refusal: str) -> None:
    problems = text_problems({"label": label})
    if problems:
        raise ValidationFailed(refusal, problems=problems)


def delete_team(connection: sa.Connection, name: str) -> None:
    team_id = _team_id(connection, name)
    bump_access(connection)
    connection.execute(team_members.delete().where(team_members.c.team_id == team_id))
    connection.execute(team_roles.delete().where(team_roles.c.team_id == team_id))
    connection.execute(teams.delete().where(teams.c.id == team_id))


def set_team(
    connection: sa.Connection,
    catalog: Catalog,
    name: str,
    *,
    members: Iterable[str] | None = None,
    roles: Iterable[str] | None = None,
    label: str | None = None,
) -> dict[str, Any]:
    """Change a team's label, members or roles (each replaced when given)."""
    team_id = _team_id(connection, name)
    _check_label(label, "The team was not changed.")
    bump_access(connection)
    if label is not None:
        connection.execute(
            teams.update().where(teams.c.id == team_id).values(label=label)
        )
    if roles is not None:
        wanted = _check_roles(catalog, roles, "roles")
        connection.execute(team_roles.delete().where(team_roles.c.team_id == team_id))
        if wanted:
            connection.execute(
                team_roles.insert(), [{"team_id": team_id, "role": r} for r in wanted]
            )
    if members is not None:
        names = list(dict.fromkeys(members))
        ids = dict(
            connection.execute(
                sa.select(users.c.username, users.c.id).where(
                    users.c.username.in_(names)
                )
            ).all()
        )
        unknown = [member for member in names if member not in ids]
        if unknown:
            raise ValidationFailed(
                "Unknown users; nothing was changed.",
                problems=[
                    Problem("members", "unknown_user", f"There is no user {m!r}.")
                    for m in unknown
                ],
            )
        connection.execute(
            team_members.delete().where(team_members.c.team_id == team_id)
        )
        if names:
            connection.execute(
                team_members.insert(),
                [{"team_id": team_id, "user_id": ids[m]} for m in names],
            )
    return team_info(connection, name)


def team_info(connection: sa.Connection, name: str) -> dict[str, Any]:
    """One team: name, label, members and roles.

    :raises NotFound: there is no such team.
    """
    found = _describe_teams(connection, teams.c.name == name)
    if not found:
        raise NotFound(f"There is no team named {name!r}.")
    return found[0]


def list_teams(connection: sa.Connection) -> list[dict[str, Any]]:
    return _describe_teams(connection, sa.true())


def _describe_teams(
    connection: sa.Connection, which: sa.ColumnElement[bool]
) -> list[dict[str, Any]]:
    """The teams ``which`` selects, by name, in three statements whatever their
    number."""
    rows = connection.execute(sa.select(teams).where(which).order_by(teams.c.name))
    found = {
        int(row.id): {"name": row.name, "label": row.label, "members": [], "roles": []}
        for row in rows
    }
    ids = list(found)
    members = connection.execute(
        sa.select(team_members.c.team_id, users.c.username)
        .select_from(team_members.join(users, users.c.id == team_members.c.user_id))
        .where(team_members.c.team_id.in_(ids))
        .order_by(users.c.username)
    )
    for team_id, username in members:
        found[int(team_id)]["members"].append(username)
    held = connection.execute(
        sa.select(team_roles.c.team_id, team_roles.c.role)
        .where(team_roles.c.team_id.in_(ids))
        .order_by(team_roles.c.role)
    )
    for team_id, role in held:
        found[int(team_id)]["roles"].append(role)
    return list(found.values())


def user_info(connection: sa.Connection, username: str) -> dict[str, Any]:
    """One user: roles held directly and in all, teams, attributes.

    :raises NotFound: there is no such user.
    """
    found = _describe_users(connection, users.c.username == username)
    if not found:
        raise NotFound(f"There is no user named {username!r}.")
    return found[0]


def list_users(connection: sa.Connection) -> list[dict[str, Any]]:
    return _describe_users(connection, sa.true())


def _describe_users(
    connection: sa.Connection, which: sa.ColumnElement[bool]
) -> list[dict[str, Any]]:
    """The users ``which`` selects, by name, in five statements whatever their
    number."""
    rows = connection.execute(sa.select(users).where(which).order_by(users.c.username))
    found: dict[int, dict[str, Any]] = {
        int(row.id): {
            "id": int(row.id),
            "username": row.username,
            "active": bool(row.active),
            "admin": bool(row.is_admin),
            "roles": [],
            "all_roles": set(),
            "teams": [],
            "attributes": {},
        }
        for row in rows
    }
    ids = list(found)
    direct = connection.execute(
        sa.select(user_roles.c.user_id, user_roles.c.role)
        .where(user_roles.c.user_id.in_(ids))
        .order_by(user_roles.c.role)
    )
    for user_id, role in direct:
        found[int(user_id)]["roles"].append(role)
        found[int(user_id)]["all_roles"].add(role)
    through_teams = connection.execute(
        sa.select(team_members.c.user_id, team_roles.c.role)
        .select_from(
            team_members.join(
                team_roles, team_roles.c.team_id == team_members.c.team_id
            )
        )
        .where(team_members.c.user_id.in_(ids))
    )
    for user_id, role in through_teams:
        found[int(user_id)]["all_roles"].add(role)
    memberships = connection.execute(
        sa.select(team_members.c.user_id, teams.c.name)
        .select_from(team_members.join(teams, teams.c.id == team_members.c.team_id))
        .where(team_members.c.user_id.in_(ids))
        .order_by(teams.c.name)
    )
    for user_id, name in memberships:
        found[int(user_id)]["teams"].append(name)
    attributes = connection.execute(
        sa.select(
            user_attributes.c.user_id, user_attributes.c.name, user_attributes.c.value
        ).where(user_attributes.c.user_id.in_(ids))
    )
    for user_id, name, value in attributes:
        found[int(user_id)]["attributes"][name] = value
    for info in found.values():
        info["all_roles"] = sorted(info["all_roles"])
    return list(found.values())


def readable_rules(catalog: Catalog) -> frozenset[str] | None:
    """The names of the rules a caller's view of the catalog may show; ``None``
    when it shows every rule (to administrators, and in the full catalog).

    A rule is shown only when every entity and field it names is one the caller
    can read: a rule over a hidden field would tell what the field is for and
    which values matter. Inactive rules are not shown (they are metadata work in
    progress, for administrators).
    """
    permissions = catalog.permissions
    if catalog.full is None or permissions is None or permissions.admin:
        return None
    return catalog.derived("readable_rules", lambda: _readable_rules(catalog))


def _readable_rules(view: Catalog) -> frozenset[str]:
    full = view.unrestricted()
    shapes = entity_shapes(full.entities.values())

    def readable(entity: str, field: str | None = None) -> bool:
        seen = view.entities.get(entity)
        if seen is None or seen.removed:
            return False
        known = full.entities[entity].fields if entity in full.entities else {}
        return field is None or field not in known or field in seen.fields

    shown = set()
    for name, rule in full.rules.compiled.items():
        stored = full.rules.documents.get(name)
        if stored is None or stored.document.get("active", True) is False:
            continue
        uses = rule_uses(rule, shapes)
        entities = {rule.entity, *(entity for entity, _ in uses)}
        if isinstance(rule, RollupRule):
            entities.add(rule.child)
        if all(readable(entity) for entity in entities) and all(
            readable(entity, field) for entity, field in uses
        ):
            shown.add(name)
    return frozenset(shown)
