"""An INSERT … ON CONFLICT DO NOTHING compiled once per dialect and run on the DBAPI cursor
of a SQLAlchemy connection, inside that connection's transaction.

Why: storing a webhook delivery is the one statement on the hot path of every request, and
SQLAlchemy's execution machinery (execution context, result object, events) cost several
times what SQLite spends executing it; under eight request threads sharing one interpreter
lock that overhead halved webhook throughput. SQLAlchemy still writes the SQL and converts
every value (each column type's own bind processor for the dialect), so the rows are exactly
what `connection.execute(insert(...), row)` would store."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Dialect, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, StatementError

Insert = Callable[[Mapping[str, Any]], bool]


def insert_for(dialect: str) -> Any:
    """The dialect's INSERT construct, which has ON CONFLICT (SQLite and PostgreSQL spell it
    alike; the generic one has none)."""
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


@dataclass(frozen=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]  # parameter order, for positional paramstyles
    positional: bool
    processors: dict[str, Callable[[Any], Any]]


@dataclass
class PreparedInsert:
    """`prepared.on(connection)(row)` inserts `row` (every one of `columns`) unless a row
    with the same `conflict_on` values exists; True when it inserted."""

    table: Table
    conflict_on: Sequence[str]
    columns: Sequence[str]
    _by_dialect: dict[str, _Compiled] = field(default_factory=dict, repr=False)

    def on(self, connection: Connection) -> Insert:
        compiled = self._compiled(connection.dialect)
        cursor = connection.connection.cursor()  # the transaction's own DBAPI connection
        processors = compiled.processors.items()

        dbapi_error = connection.dialect.loaded_dbapi.Error

        def insert(row: Mapping[str, Any]) -> bool:
            values = dict(row)
            try:
                for name, process in processors:
                    values[name] = process(values[name])
            except (TypeError, ValueError) as error:  # a value its column refuses
                raise StatementError(str(error), compiled.sql, row, error) from error
            parameters = (tuple(values[name] for name in compiled.names)
                          if compiled.positional else values)
            try:
                cursor.execute(compiled.sql, parameters)
            except dbapi_error as error:  # raised as SQLAlchemy would: callers catch those
                raise DBAPIError.instance(compiled.sql, parameters, error, dbapi_error
                                          ) from error
            return cursor.rowcount == 1

        return insert

    def _compiled(self, dialect: Dialect) -> _Compiled:
        known = self._by_dialect.get(dialect.name)
        if known is None:
            statement = insert_for(dialect.name)(self.table).on_conflict_do_nothing(
                index_elements=self.conflict_on)
            compiled = statement.compile(dialect=dialect, column_keys=list(self.columns))
            processors = {}
            for name in self.columns:
                column_type = self.table.c[name].type
                process = column_type.dialect_impl(dialect).bind_processor(dialect)
                if process is not None:
                    processors[name] = process
            known = self._by_dialect[dialect.name] = _Compiled(
                str(compiled), tuple(compiled.positiontup or ()), compiled.positional,
                processors)
        return known
