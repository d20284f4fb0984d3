"""Statements run straight on the database driver, for the hottest short writes.

Running a cached statement through SQLAlchemy's Core costs several times what the
database takes for a one-row write: the cache key, the execution context, the
parameter and result processing and the result object take tens of microseconds,
SQLite a few. The short statements of every save (a roll-up's increment of its
parent, the one record a lookup points at) are therefore compiled once per dialect
here and run on the connection's own driver cursor, inside the transaction
SQLAlchemy began on it.

What SQLAlchemy would do around them is done here too: literal values bound in the
statement, each type's bind and result processing (dates as SQLite keeps them,
decimals), and driver errors turned into SQLAlchemy's exceptions, so that callers
catch :class:`sqlalchemy.exc.DataError` and the like as for any statement.
Listeners of the ``before_cursor_execute`` event (statement counters, tracing) are
told of each statement as SQLAlchemy would tell them, without an execution
context. Execution options that rewrite statements (``schema_translate_map``)
are not applied here; the platform sets none.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.dml import UpdateBase

_Processor = Callable[[Any], Any] | None
#: What runs here: statements whose bound parameters are all plain values (no
#: expanding ``IN`` lists), with the columns they return.
_Statement = sa.Select[Any] | UpdateBase


@dataclass(frozen=True, eq=False)
class DirectStatement:
    """A statement compiled for one dialect, with what it takes and gives back."""

    sql: str
    dialect: Dialect
    positional: bool
    #: Per bound parameter: its name in the statement, the caller's name for it
    #: (None for a value the statement holds), that value, and its processor.
    binds: tuple[tuple[str, str | None, Any, _Processor], ...]
    #: The columns of the rows returned, and the SQLAlchemy type of each.
    columns: tuple[str, ...]
    types: tuple[sa.types.TypeEngine[Any], ...]
    #: Result processors by the driver's type codes of the returned columns.
    _results: dict[tuple[Any, ...], tuple[_Processor, ...]] = field(
        default_factory=dict
    )

    def parameters(self, given: Mapping[str, Any]) -> Sequence[Any] | dict[str, Any]:
        values = []
        for _, name, value, processor in self.binds:
            if name is not None:
                value = given[name]
            values.append(processor(value) if processor is not None else value)
        if self.positional:
            return values
        return {
            bound: value for (bound, *_), value in zip(self.binds, values, strict=True)
        }

    def processors(self, description: Any) -> tuple[_Processor, ...]:
        codes = tuple(column[1] for column in description or ())
        found = self._results.get(codes)
        if found is None:
            found = tuple(
                type_.dialect_impl(self.dialect).result_processor(self.dialect, code)
                for type_, code in zip(self.types, codes, strict=True)
            )
            self._results[codes] = found
        return found


@functools.lru_cache(maxsize=512)
def prepare(statement: _Statement, dialect: Dialect) -> DirectStatement:
    """Compile ``statement`` for ``dialect`` once (statements and dialects hash by
    identity, so a statement built once per table is compiled once per engine)."""
    compiled = statement.compile(dialect=dialect)
    names = (
        list(compiled.positiontup or [])
        if compiled.positional
        else list(compiled.binds)
    )
    binds = []
    for name in names:
        bind = compiled.binds[name]
        processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
        given = bind.key if bind.required else None
        bound = compiled.escaped_bind_names.get(name, name)
        value = None if given is not None else bind.effective_value
        binds.append((bound, given, value, processor))
    returning = list(statement.exported_columns)
    return DirectStatement(
        sql=compiled.string,
        dialect=dialect,
        positional=compiled.positional,
        binds=tuple(binds),
        columns=tuple(column.name for column in returning),
        types=tuple(column.type for column in returning),
    )


def run(
    connection: sa.Connection, statement: _Statement, parameters: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Run ``statement`` with ``parameters`` on the connection's driver cursor, in
    its transaction; return the rows it returns (or selects), as dictionaries."""
    direct = prepare(statement, connection.dialect)
    bound = direct.parameters(parameters)
    dbapi = connection.dialect.loaded_dbapi
    cursor = connection.connection.cursor()
    sql = direct.sql
    for listener in connection.dispatch.before_cursor_execute:
        sql, bound = listener(connection, cursor, sql, bound, None, False)
    try:
        cursor.execute(sql, bound)
        fetched = cursor.fetchall() if direct.columns else []
        description = cursor.description
    except dbapi.Error as error:
        raise sa.exc.DBAPIError.instance(
            sql, bound, error, dbapi.Error, dialect=connection.dialect
        ) from error
    finally:
        cursor.close()
    if not fetched:
        return []
    processors = direct.processors(description)
    return [
        {
            name: processor(value) if processor is not None else value
            for name, processor, value in zip(
                direct.columns, processors, row, strict=True
            )
        }
        for row in fetched
    ]
