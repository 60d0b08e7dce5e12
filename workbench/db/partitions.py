"""Tables partitioned by period on PostgreSQL, and a period's partition replaced in bulk.

On PostgreSQL, ``rated_calls`` is partitioned by ``period`` (``PARTITION BY LIST``, migration
``0019_rated_calls_by_period``): one partition per month, named ``rated_calls_pYYYY_MM``, and a
default partition ``rated_calls_default`` that takes any row of a month without its own.

``rated_calls`` holds the billed ratings (the unbilled ones are blocks,
:mod:`workbench.db.ratings`): a production run moves a month's billed ratings there in bulk.
Why partitions: storing a month of ratings row by row updates every index of the table at each
row (in PostgreSQL, one index entry and one WAL record per index per row); a month of ratings
takes longer to index than to copy. :func:`replace_partition` instead copies the rows into a new table
without indexes, builds its indexes once by sorting, and swaps it in for the month's old
partition, all in the caller's transaction: a rollback, an interruption or a killed process
leaves the old partition as it was. SQLite has no partitions; its tables are written in place.

What a partitioned table gives up, and how it is kept:

* its unique keys must hold the partition key: the primary key of ``rated_calls`` is
  (cdr_id, period), which alone would let one call have ratings in two months (rated once under
  one time zone setting, then under another). :func:`replace_partition` refuses that before the
  swap (:class:`~workbench.errors.RefusedError`, code ``rated_in_another_period``), as the
  primary key on ``cdr_id`` did on SQLite;
* two transactions that replace partitions, or change what a replacement keeps, wait for each
  other (:func:`lock_partitions`);
* replacing a partition needs an exclusive lock of the table for the swap: readers wait for it.
  It is taken in attempts of :data:`LOCK_ATTEMPT_MS`, so that readers are not queued behind a
  swap that itself waits for a long reader, for at most :data:`LOCK_WAIT_S`;
* a production run writes tables (``CREATE``, ``ATTACH``, ``DROP``): the database user of the
  workbench owns ``rated_calls`` and may create tables in its schema (as the migrations already
  require).
"""

from __future__ import annotations

import re
import time
import zlib
from collections.abc import Mapping

import pandas as pd
from sqlalchemy import Connection, literal, text
from sqlalchemy.exc import IntegrityError, OperationalError

from workbench.db.bulk import insert_frame
from workbench.db.locks import LOCK_NOT_AVAILABLE
from workbench.errors import RefusedError, UnavailableError

#: the tables partitioned by period on PostgreSQL, with the column that identifies a row across
#: the periods (a call has one rating)
PARTITIONED = {"rated_calls": "cdr_id"}
_PERIOD = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")
_PARTITION_NAME = re.compile(r"(?P<table>[a-z_]+)_(p[0-9]{4}_[0-9]{2}|default|p[0-9]{4}_[0-9]{2}_next)")
#: memory PostgreSQL may at least use to sort an index of a new partition (``SET LOCAL``: to the
#: end of the caller's transaction; a larger server setting is kept)
SORT_MEMORY_KB = 256 * 1024
#: one attempt at the swap's exclusive lock (milliseconds), and how long attempts go on (seconds)
LOCK_ATTEMPT_MS = 2000
LOCK_WAIT_S = 600.0


def is_partition(name: str) -> bool:
    """Whether the table ``name`` is a partition of a table of :data:`PARTITIONED` (the schema
    names the parent only; migrations and schema comparisons leave partitions alone)."""
    match = _PARTITION_NAME.fullmatch(name)
    return bool(match) and match["table"] in PARTITIONED


def partition_name(table: str, period: str) -> str:
    """The partition of ``table`` for ``period`` (``YYYY-MM``, ASCII digits): ``rated_calls_p2026_10``.
    :class:`ValueError` for anything else than a month (the name and the value are written into
    SQL)."""
    if table not in PARTITIONED or not isinstance(period, str) or not _PERIOD.fullmatch(period):
        raise ValueError(f"no partition of {table!r} for {period!r}")
    return f"{table}_p{period.replace('-', '_')}"


def lock_partitions(connection: Connection, table: str) -> None:
    """Keep other transactions from replacing a partition of ``table`` (or from changing what a
    replacement keeps) to the end of this one, waiting for one under way (a PostgreSQL advisory
    lock; taken again by the same transaction, it is already held).

    Taken first by the transactions that change which ratings are billed (a production run,
    which replaces the partitions of the months it bills; a credit note that reopens a period)
    and by a rating, before they read: a rating keeps the billed ratings of its month as they
    were when it read the month. On SQLite, the database's write lock, taken at once by a write
    that changes nothing: the transaction's reads then come after the writers before it."""
    if connection.dialect.name != "postgresql":
        connection.execute(text(f"DELETE FROM {table} WHERE {PARTITIONED[table]} < 0"))  # deletes nothing
        return
    key = zlib.crc32(f"workbench partitions of {table}".encode())
    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def replace_partition(connection: Connection, table: str, period: str, frame: pd.DataFrame,
                      keep: str, constants: Mapping[str, object] | None = None) -> None:
    """Replace the rows of ``period`` in ``table`` (PostgreSQL, partitioned by period) by the
    rows of ``frame`` (columns named as the table's) and the old rows of the period that match
    the SQL condition ``keep`` (say ``invoice_id IS NOT NULL``), in the caller's transaction.

    ``frame`` needs no ``period`` column, nor the columns of ``constants`` (column name: the
    value of every new row, a text or a datetime): these are written by the database (the new
    table's defaults while it is filled), not copied, which saves the server parsing them for
    every row (a third of the copy of a month of ratings).

    Steps, after :func:`lock_partitions`: the new rows are copied (``COPY``) into a new table,
    the kept rows added, its primary key and the indexes of ``table`` built on it once, and it is
    analysed; a row whose identity (``cdr_id``) has a row of another period is refused; then,
    under an exclusive lock of ``table`` (readers wait from there to the commit), the table
    replaces the period's partition (or becomes its first partition: the period's rows in the
    default partition, the kept ones copied, are deleted from it). ``keep`` is SQL written by the
    caller, never data.

    Raises :class:`ValueError` for a period that is not ``YYYY-MM``, a column of ``constants``
    that ``table`` does not have, or a row of ``frame`` with another period (or value of
    ``constants``) than given; :class:`~workbench.errors.RefusedError` for two rows with one key
    (``repeated_key``: a new row for a kept one, say) or a row whose identity has a row of another
    period (``rated_in_another_period``); :class:`~workbench.errors.UnavailableError`
    (``table_in_use``) when the exclusive lock cannot be had within :data:`LOCK_WAIT_S`; and
    whatever else the database raises. The caller's transaction is then to be rolled back:
    nothing is changed.
    """
    final = partition_name(table, period)
    constants = {"period": period, **(constants or {})}
    defaults = _column_defaults(connection, table)
    for column, value in constants.items():
        if column not in defaults:
            raise ValueError(f"{table} has no column {column!r}")
        if column in frame.columns and not (frame[column] == value).all():
            raise ValueError(f"rows of {table} for {period} with another {column} than {value}")
    lock_partitions(connection, table)
    run = connection.exec_driver_sql
    old = connection.execute(text("SELECT to_regclass(:name) IS NOT NULL"), {"name": final}).scalar_one()
    new = f"{final}_next" if old else final
    literal_period = _literal(connection, period)
    run(f"CREATE TABLE {new} (LIKE {table} INCLUDING DEFAULTS)")
    # the partition's bound, proved by a constraint (added while the table is empty, checked on
    # each row copied): attaching then reads no row to check it
    run(f"ALTER TABLE {new} ADD CONSTRAINT {new}_bound CHECK (period = {literal_period})")
    _set_defaults(connection, new, {column: _literal(connection, value) for column, value in constants.items()})
    insert_frame(connection, new, frame.drop(columns=list(constants), errors="ignore"))
    _set_defaults(connection, new, {column: defaults[column] for column in constants})
    # what is kept cannot change meanwhile: its writers take lock_partitions too
    run(f"INSERT INTO {new} SELECT * FROM {table} WHERE period = {literal_period} AND ({keep})")
    sort_memory = connection.execute(text(
        "SELECT CAST(setting AS bigint) FROM pg_settings WHERE name = 'maintenance_work_mem'")).scalar_one()
    if sort_memory < SORT_MEMORY_KB:
        run(f"SET LOCAL maintenance_work_mem = '{SORT_MEMORY_KB}kB'")
    statements = _index_statements(connection, table, new)
    try:
        with connection.begin_nested():
            run(statements[0])  # the primary key
    except IntegrityError as error:
        detail = getattr(getattr(error.orig, "diag", None), "message_detail", None) or ""
        raise RefusedError(
            f"the ratings of {period} repeat a key ({detail.strip() or 'a call twice'}): a new row for a "
            f"row kept, or one call twice; nothing was stored", source=table, code="repeated_key") from error
    for statement in statements[1:]:
        run(statement)
    run(f"ANALYZE {new}")  # the next run reads it at once: its plans need the statistics
    _refuse_other_periods(connection, table, new, period)

    _lock_exclusive(connection, table)
    if old:
        run(f"ALTER TABLE {table} DETACH PARTITION {final}")
        run(f"DROP TABLE {final}")
        run(f"ALTER TABLE {new} RENAME TO {final}")
    else:
        run(f"DELETE FROM {table}_default WHERE period = {literal_period}")
    run(f"ALTER TABLE {table} ATTACH PARTITION {final} FOR VALUES IN ({literal_period})")
    run(f"ALTER TABLE {final} DROP CONSTRAINT {new}_bound")


def _literal(connection: Connection, value: object) -> str:
    """``value`` (a text or a datetime) as an SQL literal, quoted by SQLAlchemy."""
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    return str(literal(value).compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True}))


def _column_defaults(connection: Connection, table: str) -> dict[str, str | None]:
    """The columns of ``table`` with their default expression (None: no default)."""
    rows = connection.execute(text(
        "SELECT column_name, column_default FROM information_schema.columns WHERE table_name = :t "
        "AND table_schema = current_schema()"), {"t": table})
    return dict(rows.all())


def _set_defaults(connection: Connection, table: str, defaults: dict[str, str | None]) -> None:
    """Set (an SQL expression) or drop (None) the defaults of columns of ``table``."""
    clauses = [f"ALTER COLUMN {column} " + ("DROP DEFAULT" if expression is None else f"SET DEFAULT {expression}")
               for column, expression in defaults.items()]
    connection.exec_driver_sql(f"ALTER TABLE {table} {', '.join(clauses)}")


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


def _lock_exclusive(connection: Connection, table: str) -> None:
    """Lock ``table`` (and its partitions) exclusively to the end of the transaction, in attempts
    of :data:`LOCK_ATTEMPT_MS` (each in a savepoint) for at most :data:`LOCK_WAIT_S`: a swap that
    waits for a long reader does not hold up the readers that come after it for longer than one
    attempt. :class:`~workbench.errors.UnavailableError` (``table_in_use``) when time is up."""
    deadline = time.monotonic() + LOCK_WAIT_S
    before = _literal(connection, connection.execute(text("SELECT current_setting('lock_timeout')")).scalar_one())
    while True:
        try:
            with connection.begin_nested():
                connection.exec_driver_sql(f"SET LOCAL lock_timeout = {LOCK_ATTEMPT_MS}")
                connection.exec_driver_sql(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
                connection.exec_driver_sql(f"SET LOCAL lock_timeout = {before}")  # the caller's again
            return
        except OperationalError as error:
            if getattr(error.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
                raise
            if time.monotonic() >= deadline:
                raise UnavailableError(
                    f"{table} is in use by other sessions (open reads or writes) for more than "
                    f"{LOCK_WAIT_S:.0f} s: nothing was stored; run this again when they are done",
                    source=table, code="table_in_use") from error
            time.sleep(min(1.0, LOCK_ATTEMPT_MS / 1000))


def _refuse_other_periods(connection: Connection, table: str, new: str, period: str) -> None:
    """:class:`~workbench.errors.RefusedError` when a row of ``new`` has the identity of a row of
    ``table`` in another period. Only the other rows within the range of ``new``'s identities are
    read (by each partition's primary key, led by the identity). Other months do not change
    meanwhile: their replacements wait for :func:`lock_partitions`."""
    column = PARTITIONED[table]
    low, high = connection.exec_driver_sql(f"SELECT min({column}), max({column}) FROM {new}").one()
    if low is None:
        return
    clash = connection.execute(text(
        f"SELECT r.{column}, r.period FROM {table} r WHERE r.{column} BETWEEN :low AND :high "
        f"AND r.period <> :period AND EXISTS (SELECT 1 FROM {new} n WHERE n.{column} = r.{column}) "
        f"ORDER BY r.{column} LIMIT 1"), {"low": low, "high": high, "period": period}).first()
    if clash is not None:
        raise RefusedError(
            f"{column} {clash[0]} already has a row of {clash[1]} in {table}; one of {period} cannot "
            f"be added (a call has one rating: was it rated under another time zone setting? "
            f"Rate {clash[1]} again first, if its rating is not billed)",
            source=table, code="rated_in_another_period")
