"""Metadata: document schemas and checks, the compiled catalog, diffs and plans."""

from __future__ import annotations

from ._catalog import (
    USER_TABLE,
    Catalog,
    EntityDef,
    StoredEntity,
    build_catalog,
    field_column,
    index_name,
    system_columns,
)
from ._fields import (
    ALL_TYPES,
    DECIMAL_TYPES,
    ID_TYPE,
    INTEGER_LIMIT,
    TEXT_TYPES,
    FieldValueError,
    convert,
    convert_date,
    convert_datetime,
    option_values,
    to_json,
)
from ._plan import Operation, Plan, is_unique, plan_entity
from ._schemas import problems_from
from ._validate import (
    MAX_FIELDS,
    SYSTEM_COLUMNS,
    check_entity_document,
    entity_schema,
)

__all__ = [
    "ALL_TYPES",
    "DECIMAL_TYPES",
    "ID_TYPE",
    "INTEGER_LIMIT",
    "MAX_FIELDS",
    "SYSTEM_COLUMNS",
    "TEXT_TYPES",
    "USER_TABLE",
    "Catalog",
    "EntityDef",
    "FieldValueError",
    "Operation",
    "Plan",
    "StoredEntity",
    "build_catalog",
    "check_entity_document",
    "convert",
    "convert_date",
    "convert_datetime",
    "entity_schema",
    "field_column",
    "index_name",
    "is_unique",
    "option_values",
    "plan_entity",
    "problems_from",
    "system_columns",
    "to_json",
]
