"""The catalog: an immutable, compiled snapshot of all metadata at one revision."""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

import marshmallow as ma
import sqlalchemy as sa

from ..errors import NotFound
from ._fields import ID_TYPE, column_type
from ._layouts import effective_layout
from ._roles import StoredRole
from ._rules import EMPTY_RULES, RuleCatalog, StoredRule, build_rule_catalog
from ._schemas import build_schema
from ._sections import NO_SECTION_CONDITIONS, SectionConditions, compile_sections

if TYPE_CHECKING:
    from ._access import EntityAccess, Permissions

USER_TABLE = "tc_user"

_T = TypeVar("_T")
_MISSING = object()


@dataclass(frozen=True)
class StoredEntity:
    """An entity document as the metadata store keeps it."""

    document: dict[str, Any]
    hidden_fields: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    removed: bool = False
    #: The metadata revision that last changed this document (0 until stored).
    revision: int = 0


@dataclass(frozen=True)
class EntityDef:
    """One compiled entity: its document, fields, table and record schema."""

    name: str
    document: dict[str, Any]
    fields: Mapping[str, dict[str, Any]]
    hidden_fields: Mapping[str, dict[str, Any]]
    table: sa.Table
    schema: ma.Schema
    removed: bool
    revision: int
    #: In a caller's view of the catalog (see :func:`restrict`), what the caller
    #: may do to the entity's records; ``None`` in the full catalog, and for an
    #: administrator, where everything is allowed.
    access: EntityAccess | None = None

    @property
    def label(self) -> str:
        return str(self.document.get("label", self.name))

    @property
    def display_field(self) -> str | None:
        return self.document.get("display_field")

    @functools.cached_property
    def writable(self) -> frozenset[str]:
        """Names a record may be written with: fields set by people, and the owner."""
        names = [n for n, spec in self.fields.items() if spec["type"] != "autonumber"]
        return frozenset([*names, "owner_id"])

    @functools.cached_property
    def defaults(self) -> tuple[tuple[str, Any], ...]:
        return tuple(
            (name, spec["default"])
            for name, spec in self.fields.items()
            if "default" in spec
        )

    def allows(self, operation: str) -> bool:
        """Whether the caller whose view this is may do ``operation`` to any
        record of the entity (always, in the full catalog)."""
        return self.access is None or self.access.can(operation)

    def field(self, name: str) -> dict[str, Any]:
        try:
            return self.fields[name]
        except KeyError:
            raise NotFound(f"Entity {self.name!r} has no field {name!r}.") from None

    def lookups(self) -> list[dict[str, Any]]:
        return [spec for spec in self.fields.values() if spec["type"] == "lookup"]

    def external_ids(self) -> list[str]:
        return [name for name, spec in self.fields.items() if spec.get("external_id")]


@dataclass(frozen=True)
class Catalog:
    """All entities at one metadata revision. Never changed once built."""

    revision: int
    entities: Mapping[str, EntityDef]
    metadata: sa.MetaData
    #: Stored layout documents by entity name; an entity missing here has the
    #: generated layout.
    layouts: Mapping[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    _effective: dict[str, dict[str, Any]] = dataclasses.field(
        default_factory=dict, compare=False, repr=False
    )
    _sections: dict[str, SectionConditions] = dataclasses.field(
        default_factory=dict, compare=False, repr=False
    )
    _derived: dict[Hashable, Any] = dataclasses.field(
        default_factory=dict, compare=False, repr=False
    )
    #: Rule documents and the compiled rules of each entity.
    rules: RuleCatalog = EMPTY_RULES
    #: Role documents by name.
    roles: Mapping[str, StoredRole] = dataclasses.field(default_factory=dict)
    #: In a caller's view of the catalog: the catalog with every entity and
    #: field, and the caller's permissions. ``None`` in the full catalog.
    full: Catalog | None = dataclasses.field(default=None, compare=False, repr=False)
    permissions: Permissions | None = dataclasses.field(
        default=None, compare=False, repr=False
    )

    def entity(self, name: str) -> EntityDef:
        """Return a live entity.

        :raises NotFound: no entity of that name, or it was removed.
        """
        entity = self.entities.get(name)
        if entity is None or entity.removed:
            raise NotFound(f"There is no entity named {name!r}.")
        return entity

    def derived(self, key: Hashable, build: Callable[[], _T]) -> _T:
        """A value that other parts compute from this catalog, kept with it.

        A catalog never changes, so what is derived from it holds as long as it
        does; ``build`` runs the first time ``key`` is asked for (two threads
        asking at once may both run it, and one result is kept).
        """
        found = self._derived.get(key, _MISSING)
        if found is _MISSING:
            found = self._derived.setdefault(key, build())
        return cast("_T", found)

    def unrestricted(self) -> Catalog:
        """The catalog with every entity and field, whoever this view is for."""
        return self.full if self.full is not None else self

    def live(self) -> list[EntityDef]:
        return [entity for entity in self.entities.values() if not entity.removed]

    def referrers(self, target: str) -> list[tuple[EntityDef, dict[str, Any]]]:
        """Return every live lookup field that points at ``target``."""
        return [
            (entity, spec)
            for entity in self.live()
            for spec in entity.lookups()
            if spec["target"] == target
        ]

    def layout(self, name: str) -> dict[str, Any]:
        """Return the layout pages show for a live entity: form and list, complete.

        It is the stored layout with its missing parts generated and anything no
        longer live left out, or the generated layout when none is stored (see
        :func:`effective_layout`). The caller gets its own copy.

        :raises NotFound: no live entity of that name.
        """
        return copy.deepcopy(self._layout(name))

    def _layout(self, name: str) -> dict[str, Any]:
        entity = self.entity(name)
        found = self._effective.get(name)
        if found is None:
            found = effective_layout(self.layouts.get(name), entity, self)
            # The catalog never changes, so neither does what is computed from it.
            self._effective[name] = found
        return found

    def effective_layout(self, name: str) -> dict[str, Any]:
        """The same as :meth:`layout`."""
        return self.layout(name)

    def section_conditions(self, name: str) -> SectionConditions:
        """The compiled ``visible_if`` of the sections of a live entity's form.

        Keys are places in :meth:`layout` (tab index, section index). An entity
        that is removed, or unknown, has no form and so no conditions.
        """
        found = self._sections.get(name)
        if found is None:
            entity = self.entities.get(name)
            if entity is None or entity.removed:
                return NO_SECTION_CONDITIONS
            found = compile_sections(self._layout(name), entity, self)
            self._sections[name] = found
        return found


def system_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("id", ID_TYPE, primary_key=True, autoincrement=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", ID_TYPE, nullable=True),
        sa.Column("owner_id", ID_TYPE, nullable=True),
        sa.Column("version", sa.Integer(), nullable=False, server_default="1"),
    ]


def field_column(spec: dict[str, Any]) -> sa.Column[Any]:
    return sa.Column(spec["name"], column_type(spec), nullable=True)


def index_name(prefix: str, table: str, column: str) -> str:
    """Return an index name that fits PostgreSQL's 63-character limit."""
    # Names cannot hold "__", so the double underscore keeps (a_b, c) and (a, b_c)
    # apart.
    name = f"{prefix}_{table}__{column}"
    if len(name) <= 63:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:10]
    return f"{name[:52]}_{digest}"


def compile_entity(stored: StoredEntity, metadata: sa.MetaData) -> EntityDef:
    """Compile one stored entity into ``metadata``."""
    document = stored.document
    fields = {spec["name"]: spec for spec in document["fields"]}
    hidden = {spec["name"]: spec for spec in stored.hidden_fields}
    columns = [field_column(spec) for spec in [*fields.values(), *hidden.values()]]
    table = sa.Table(document["name"], metadata, *system_columns(), *columns)
    return EntityDef(
        name=document["name"],
        document=document,
        fields=fields,
        hidden_fields=hidden,
        table=table,
        schema=build_schema(document["name"], list(fields.values())),
        removed=stored.removed,
        revision=stored.revision,
    )


def build_catalog(
    revision: int,
    stored: Iterable[StoredEntity],
    layouts: Mapping[str, dict[str, Any]] | None = None,
    *,
    rules: Iterable[StoredRule] = (),
    roles: Iterable[StoredRole] = (),
) -> Catalog:
    """Compile stored entities, their stored layouts and the rules that apply to
    them into a new catalog."""
    metadata = sa.MetaData()
    entities = {}
    for item in stored:
        entity = compile_entity(item, metadata)
        entities[entity.name] = entity
    return Catalog(
        revision=revision,
        entities=entities,
        metadata=metadata,
        layouts=dict(layouts or {}),
        rules=build_rule_catalog(rules, entities),
        roles={role.name: role for role in roles},
    )
