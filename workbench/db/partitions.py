"""Tables partitioned by period on PostgreSQL, and a period's partition replaced in bulk.

On PostgreSQL, ``rated_calls`` is partitioned by ``period`` (``PARTITION BY LIST``, migration
``0019_rated_calls_by_period``): one partition per month, named ``rated_calls_pYYYY_MM``, and a
default partition ``rated_calls_default`` that takes any row of a month without its own.

Why: storing a month of ratings row by row updates every index of the table at each row (in
PostgreSQL, one index entry and one WAL record per index per row); a month of 10 million rated
calls takes longer to index than to copy. :func:`replace_partition` instead copies the rows into
a new table without indexes, builds its indexes once by sorting, and swaps it in for the month's
old partition, all in the caller's transaction: a rollback, an interruption or a killed process
leaves the old partition as it was. SQLite has no partitions; its tables are written in place.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import pandas as pd
from sqlalchemy import Connection, literal, text

from workbench.db.bulk import insert_frame

#: the tables partitioned by period on PostgreSQL
PARTITIONED = ("rated_calls",)
_PERIOD = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
_PARTITION_NAME = re.compile(r"(?P<table>[a-z_]+)_(p\d{4}_\d{2}|default|p\d{4}_\d{2}_next)")
#: memory PostgreSQL may use to sort an index of a partition, in the swap's transaction only
SORT_MEMORY = "256MB"


def is_partition(name: str) -> bool:
    """Whether the table ``name`` is a partition of a table of :data:`PARTITIONED` (the schema
    names the parent only; migrations and schema comparisons leave partitions alone)."""
    match = _PARTITION_NAME.fullmatch(name)
    return bool(match) and match["table"] in PARTITIONED


def in_schema(name: str | None, kind: str, parent_names: dict) -> bool:
    """Alembic's ``include_name`` hook: everything but the partitions, which the schema does not
    name (``kind`` ``"table"`` and :func:`is_partition`)."""
    return not (kind == "table" and name is not None and is_partition(name))


def partition_name(table: str, period: str) -> str:
    """The partition of ``table`` for ``period`` (``YYYY-MM``): ``rated_calls_p2026_10``.
    :class:`ValueError` for anything else than a month (the name and the value are written into
    SQL)."""
    if table not in PARTITIONED or not _PERIOD.fullmatch(period):
        raise ValueError(f"no partition of {table!r} for {period!r}")
    return f"{table}_p{period.replace('-', '_')}"


def replace_partition(connection: Connection, table: str, period: str, frame: pd.DataFrame,
                      keep: str, constants: Mapping[str, object] | None = None) -> None:
    """Replace the rows of ``period`` in ``table`` (PostgreSQL, partitioned by period) by the
    rows of ``frame`` (columns named as the table's) and the old rows of the period that match
    the SQL condition ``keep`` (say ``invoice_id IS NOT NULL``), in the caller's transaction.

    ``frame`` needs no ``period`` column, nor the columns of ``constants`` (column name: the
    value of every new row, a text or a datetime): these are written by the database (the new
    table's defaults while it is filled), not copied, which saves the server parsing them for
    every row (a third of the copy of a month of ratings).

    The new rows are copied (``COPY``) into a new table, the kept rows added, the primary key and
    the indexes of ``table`` built once on it, and it replaces the period's partition (or is
    attached as the first one; rows of the period in the default partition are moved out of
    it). Readers of ``table`` wait for the end of the transaction once the swap begins; until
    the commit they read the old partition. Raises :class:`ValueError` for a period that is not
    ``YYYY-MM`` or a row of ``frame`` with another period (or value of ``constants``) than
    given, and whatever the database raises (a duplicate key among the rows, say), the
    transaction then to be rolled back."""
    final = partition_name(table, period)
    constants = {"period": period, **(constants or {})}
    for column, value in constants.items():
        if column in frame.columns and not (frame[column] == value).all():
            raise ValueError(f"rows of {table} for {period} with another {column} than {value}")
    old = connection.execute(text("SELECT to_regclass(:name) IS NOT NULL"), {"name": final}).scalar_one()
    new = f"{final}_next" if old else final
    connection.execute(text(f"CREATE TABLE {new} (LIKE {table} INCLUDING DEFAULTS)"))
    _defaults(connection, new, {name: _literal(connection, value) for name, value in constants.items()})
    insert_frame(connection, new, frame.drop(columns=list(constants), errors="ignore"))
    _defaults(connection, new, _column_defaults(connection, table, list(constants)))
    literal = _literal(connection, period)
    connection.execute(text(f"INSERT INTO {new} SELECT * FROM {table} WHERE period = {literal} AND ({keep})"))
    connection.execute(text(f"SET LOCAL maintenance_work_mem = '{SORT_MEMORY}'"))
    for statement in _index_statements(connection, table, new):
        connection.execute(text(statement))
    # the partition's bound, proved by a constraint: attaching then reads no row to check it
    connection.execute(text(f"ALTER TABLE {new} ADD CONSTRAINT {new}_bound CHECK (period = {literal})"))
    if old:
        connection.execute(text(f"ALTER TABLE {table} DETACH PARTITION {final}"))
        connection.execute(text(f"DROP TABLE {final}"))
        connection.execute(text(f"ALTER TABLE {new} RENAME TO {final}"))
    else:
        connection.execute(text(f"DELETE FROM {table}_default WHERE period = {literal}"))
    connection.execute(text(f"ALTER TABLE {table} ATTACH PARTITION {final} FOR VALUES IN ({literal})"))
    connection.execute(text(f"ALTER TABLE {final} DROP CONSTRAINT {new}_bound"))


def _literal(connection: Connection, value: object) -> str:
    """``value`` (a text or a datetime) as an SQL literal, quoted by SQLAlchemy."""
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    return str(literal(value).compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True}))


def _column_defaults(connection: Connection, table: str, columns: list[str]) -> dict[str, str | None]:
    """The default expression of each of ``columns`` of ``table`` (None: no default)."""
    rows = connection.execute(text(
        "SELECT column_name, column_default FROM information_schema.columns WHERE table_name = :t "
        "AND table_schema = current_schema()"), {"t": table})
    defaults = dict(rows.all())
    return {column: defaults[column] for column in columns}


def _defaults(connection: Connection, table: str, defaults: dict[str, str | None]) -> None:
    """Set (an SQL expression) or drop (None) the defaults of columns of ``table``."""
    clauses = [f"ALTER COLUMN {column} " + ("DROP DEFAULT" if expression is None else f"SET DEFAULT {expression}")
               for column, expression in defaults.items()]
    connection.execute(text(f"ALTER TABLE {table} {', '.join(clauses)}"))


def _index_statements(connection: Connection, table: str, new: str) -> list[str]:
    """The primary key and the indexes of ``table``, as statements building them on ``new`` (the
    same definitions, so that attaching ``new`` adopts them instead of building others)."""
    key = connection.execute(text(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = CAST(:t AS regclass) "
        "AND contype = 'p'"), {"t": table}).scalar_one()
    statements = [f"ALTER TABLE {new} ADD {key}"]
    definitions = connection.execute(text(
        "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i WHERE i.indrelid = CAST(:t AS regclass) "
        "AND NOT i.indisprimary ORDER BY i.indexrelid"), {"t": table}).scalars()
    for definition in definitions:  # CREATE [UNIQUE] INDEX name ON ONLY public.table USING ...
        match = re.fullmatch(r"CREATE (UNIQUE )?INDEX \S+ ON ONLY \S+ (USING .*)", definition)
        if match is None:  # pragma: no cover - PostgreSQL's own form
            raise RuntimeError(f"unexpected index of {table}: {definition}")
        statements.append(f"CREATE {match[1] or ''}INDEX ON {new} {match[2]}")
    return statements
