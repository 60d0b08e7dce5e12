"""Frames from SQL: the one way the package reads rows into pandas."""

from __future__ import annotations

import io
import re
import sqlite3

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from sqlalchemy import Connection, Date, DateTime, Integer, String, cast, func, select, text


def _integer_columns(statement, names: list[str]) -> set[str]:
    """The columns of a SQLAlchemy select typed as integers (empty for SQL text)."""
    selected = getattr(statement, "selected_columns", None)
    if selected is None:
        return set()
    columns = list(selected)
    if len(columns) != len(names):
        return set()
    return {name for name, column in zip(names, columns, strict=True) if isinstance(column.type, Integer)}


def read_frame(connection: Connection, statement, **params) -> pd.DataFrame:
    """A frame of the rows of a SQLAlchemy statement (or SQL text) on ``connection``, with the
    statement's column names; values as the driver returns them (``Decimal`` stays ``Decimal``).

    Missing values never turn a column into floats or ``NaN`` text:

    * integer columns (typed ``Integer``/``BigInteger`` in the statement, or holding only
      integers) are pandas' nullable ``Int64``, ``NULL`` being ``pd.NA``: money in integer minor
      units and counts stay exact integers, never float64;
    * text columns are ``object`` with ``None`` for ``NULL`` (not the ``str`` dtype's ``NaN``,
      which prints ``nan``);
    * other columns (dates, times, booleans, ``Decimal``) as pandas makes them.
    """
    if isinstance(statement, str):
        statement = text(statement)
    result = connection.execute(statement, params)
    names = list(result.keys())
    rows = result.fetchall()
    typed = _integer_columns(statement, names)
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]  # column-wise: fast
    data = {}
    for position, (name, values) in enumerate(zip(names, columns, strict=True)):
        data[position] = _column(list(values), name in typed)
    frame = pd.DataFrame(data)
    frame.columns = names
    return frame


def read_plain(connection: Connection, statement) -> pd.DataFrame:
    """The rows of a SQLAlchemy select of integer, text and date columns, fetched as the driver
    gives them: no SQLAlchemy value processing, no pandas object per value, a few times as fast
    as :func:`read_frame` for tens of thousands of rows (the customers' lines a load and a
    rating read). Integers are int64 (``Int64`` when a ``NULL`` is among them), text ``object``
    (``None`` for ``NULL``), dates datetime64[s] at midnight (``NaT`` for ``NULL``), with the
    statement's column names.

    Raises :class:`ValueError` for a column of another type (a time, a decimal: their drivers'
    values need SQLAlchemy's processing on SQLite)."""
    names = [column.name for column in statement.selected_columns]
    kinds = []
    for name, column in zip(names, statement.selected_columns, strict=True):
        if isinstance(column.type, Integer):
            kinds.append("integer")
        elif isinstance(column.type, Date) and not isinstance(column.type, DateTime):
            kinds.append("date")
        elif isinstance(column.type, String):
            kinds.append("text")
        else:
            raise ValueError(f"read_plain reads integer, text and date columns, not {name} ({column.type})")
    # as SQL text, so that SQLAlchemy knows no type to process (its errors still go through the
    # engine's handling: a locked database is reported as such)
    sql = str(statement.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True}))
    rows = connection.exec_driver_sql(sql).fetchall()
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    data = {}
    for position, (kind, values) in enumerate(zip(kinds, columns, strict=True)):
        if kind == "date":  # ISO text (SQLite) or dates (PostgreSQL): NumPy reads both, None as NaT
            data[position] = np.array(values, dtype="datetime64[D]").astype("datetime64[s]")
        elif kind == "integer":
            data[position] = _column(list(values), True)
            if not data[position].isna().any():
                data[position] = data[position].to_numpy(dtype=np.int64)
        else:
            data[position] = pd.Series(values, dtype=object)
    frame = pd.DataFrame(data)
    frame.columns = names
    return frame


def _column(values: list, integer: bool):
    if integer:
        return pd.array(values, dtype="Int64")
    if not values:
        return pd.Series(values, dtype=object)
    column = pd.Series(values)
    if column.dtype == "int64":
        return column.astype("Int64")
    if column.dtype == "float64" and column.isna().any():  # SQL text: integers with NULLs?
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values if v is not None):
            return pd.array(values, dtype="Int64")
    elif isinstance(column.dtype, pd.StringDtype):
        return pd.Series(values, dtype=object)
    return column


#: rows fetched at a time from SQLite by :func:`read_columns`
_FETCH_ROWS = 100_000


#: PostgreSQL's binary ``COPY``: its signature (then 4 bytes of flags, and the length of a
#: header extension, then the extension), and its end marker
_BINARY_SIGNATURE, _BINARY_TRAILER = b"PGCOPY\n\xff\r\n\x00", b"\xff\xff"
#: the result types read in binary (PostgreSQL's type oids): int2, int4, int8; timestamp
_INTEGER_OIDS, _TIMESTAMP_OID = (21, 23, 20), 1114
#: 2000-01-01, PostgreSQL's epoch, in Unix seconds
_POSTGRES_EPOCH_S = 946_684_800


def _postgresql_binary(connection: Connection, statement, times: list[bool]) -> list[np.ndarray] | None:
    """The columns of ``statement`` (integers, and times where ``times`` says so, by position)
    as int64 arrays (times as epoch seconds, cut to the second they are in), read by a binary
    ``COPY ... TO STDOUT``: the server writes no text, and rows of fixed width (no ``NULL``) are
    read as one NumPy record array. None when the result's columns are not all integers
    (``int2``, ``int4``, ``int8``) and, where ``times`` says so, ``timestamp`` (without time
    zone), as the server types them, or when a row is not of the first row's widths (a
    ``NULL``, a time at infinity): the statement is then run again as CSV text
    (:func:`_postgresql_csv`), which reads ``NULL`` and refuses what is not an integer or a time."""
    sql = str(statement.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True}))
    with connection.connection.driver_connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM ({sql}) AS q LIMIT 0")  # the result's types, as the server has them
        oids = [column.type_code for column in cursor.description]
    if len(oids) != len(times) or any(oid != _TIMESTAMP_OID if time else oid not in _INTEGER_OIDS
                                      for oid, time in zip(oids, times, strict=True)):
        return None
    data = _copied_out(connection, f"COPY ({sql}) TO STDOUT (FORMAT binary)")
    extension = int.from_bytes(data[len(_BINARY_SIGNATURE) + 4:len(_BINARY_SIGNATURE) + 8], "big")
    start = len(_BINARY_SIGNATURE) + 8 + extension
    if not data.startswith(_BINARY_SIGNATURE) or not data.endswith(_BINARY_TRAILER) or len(data) < start + 2:
        return None  # pragma: no cover - PostgreSQL's own format
    body = memoryview(data)[start:len(data) - len(_BINARY_TRAILER)]
    if not len(body):
        return [np.zeros(0, dtype=np.int64) for _ in times]
    count, widths, at = int.from_bytes(body[:2], "big"), [], 2
    for _ in range(count):  # the first row's fields: each a length, then that many bytes
        width = int.from_bytes(body[at:at + 4], "big", signed=True)
        if width not in (2, 4, 8):
            return None
        widths.append(width)
        at += 4 + width
    if count != len(times) or len(body) % at or any(t and w != 8 for t, w in zip(times, widths, strict=True)):
        return None
    fields = [("count", ">i2")]
    for position, width in enumerate(widths):
        fields += [(f"l{position}", ">i4"), (f"v{position}", f">i{width}")]
    rows = np.frombuffer(body, dtype=np.dtype(fields))
    if (rows["count"] != count).any() or any((rows[f"l{p}"] != w).any() for p, w in enumerate(widths)):
        return None
    columns = []
    for position, time in enumerate(times):
        values = rows[f"v{position}"].astype(np.int64)
        if time:  # microseconds since 2000-01-01, cut to the second they are in
            infinite = (values == np.iinfo(np.int64).max) | (values == np.iinfo(np.int64).min)
            if infinite.any():
                return None  # (-)infinity: refused by the text's parse, naming the column
            values = values // 1_000_000 + _POSTGRES_EPOCH_S
        columns.append(values)
    return columns


def _copied_out(connection: Connection, sql: str) -> bytearray:
    """What the ``COPY ... TO STDOUT`` statement ``sql`` writes, gathered in one buffer (a row
    comes as one message: added to the buffer as it comes, not made a ``bytes`` object first,
    which took a third of the time of reading a month's calls)."""
    data = bytearray()
    with connection.connection.driver_connection.cursor() as cursor, cursor.copy(sql) as copy:
        for block in copy:
            data += block
    return data


def _postgresql_csv(connection: Connection, statement) -> bytearray:
    """The rows of ``statement`` as CSV text written by PostgreSQL (``COPY ... TO STDOUT``)."""
    sql = str(statement.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True}))
    return _copied_out(connection, f"COPY ({sql}) TO STDOUT (FORMAT csv)")


#: numpy's NaT as an int64 (a NULL time read from SQLite)
_NAT = np.iinfo(np.int64).min


def _sqlite_epoch(value):
    """SQLite's epoch seconds of a time text, in C: ``unixepoch`` (SQLite 3.38 and later), else
    ``strftime('%s')`` as an integer; NULL for a text that is no time."""
    if sqlite3.sqlite_version_info >= (3, 38, 0):
        return func.unixepoch(value)
    return cast(func.strftime("%s", value), Integer)  # pragma: no cover - SQLite before 3.38


def _sqlite_columns(connection: Connection, statement, names: list[str], times: list[bool]) -> list[np.ndarray]:
    """The columns of ``statement`` as int64 arrays, read from SQLite in batches of
    :data:`_FETCH_ROWS` rows, each batch made one NumPy array of integers at once (no pandas
    object per value): a time (``times`` by position) as epoch seconds, the fraction of a second
    cut off first (``strftime`` would round it to the millisecond, and a time of 23:59:59.9996
    would become the next day), a ``NULL`` or a text that is no time as NaT's integer. The
    columns are taken by position (their names may repeat or be labels).

    Raises :class:`ValueError` naming the column for a ``NULL``, or a value that SQLite does not
    hold as an integer (a text, a real; SQLite keeps any value in any column), in an integer
    column."""
    columns = []
    for time, column in zip(times, statement.subquery().c, strict=True):
        columns.append(func.coalesce(_sqlite_epoch(func.substr(column, 1, 19)), _NAT) if time else column)
    sql = str(select(*columns).compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True}))
    cursor = connection.connection.driver_connection.cursor()
    batches = []
    try:
        cursor.execute(sql)
        while rows := cursor.fetchmany(_FETCH_ROWS):
            batch = np.array(rows)  # integers when every value is an integer of 64 bits
            if batch.dtype.kind != "i":
                _refuse_non_integers(rows, names, times)
            batches.append(batch.astype(np.int64, copy=False))
    finally:
        cursor.close()
    values = np.concatenate(batches) if batches else np.zeros((0, len(names)), dtype=np.int64)
    return list(np.ascontiguousarray(values.T))  # a column's values side by side


def _refuse_non_integers(rows: list[tuple], names: list[str], times: list[bool]) -> None:
    """:class:`ValueError` naming the first column of ``rows`` (SQLite's) with a value that is
    not an integer."""
    for position, (name, time) in enumerate(zip(names, times, strict=True)):
        kinds = {type(row[position]) for row in rows}
        if type(None) in kinds and not time:
            raise ValueError(f"column {name} holds NULL: read_columns reads integers without NULL")
        if kinds - {int}:
            wrong = next(row[position] for row in rows if type(row[position]) is not int)
            raise ValueError(f"column {name} holds a value that is not an integer ({wrong!r})")
    raise ValueError(f"columns {names} hold a value that is not an integer of 64 bits")


def read_columns(connection: Connection, statement, integers: tuple[str, ...] = (),
                 datetimes: tuple[str, ...] = ()) -> pd.DataFrame:
    """The rows of a SQLAlchemy select of integer and time columns, read in bulk, so that no
    pandas object is made per value: on PostgreSQL by a binary ``COPY (...) TO STDOUT`` read as
    one NumPy record array (:func:`_postgresql_binary`), or for rows with a ``NULL`` as CSV text
    parsed by Arrow's CSV reader; on SQLite as integers only (times as epoch
    seconds computed by SQLite), a batch of rows made one NumPy array at once
    (:func:`_sqlite_columns`; faster than SQLite writing the text of each row). ``integers``
    become int64, ``datetimes`` datetime64[s] (naive, as stored, cut to the second; ``NULL`` is
    NaT). The columns are taken by position (their names may repeat).
    For the big reads of calls (a month's calls); :func:`read_frame` for the rest.

    Raises :class:`ValueError` for a column that is neither, a ``NULL`` in an integer column, or
    a value of an integer column that is not an integer (SQLite keeps any type in any column)."""
    names = [column.name for column in statement.selected_columns]
    others = [n for n in names if n not in integers and n not in datetimes]
    if others:
        raise ValueError(f"read_columns reads integer and time columns, not {others}")
    times = [n in datetimes for n in names]
    if connection.dialect.name != "postgresql":
        arrays = _sqlite_columns(connection, statement, names, times)
    else:
        arrays = _postgresql_binary(connection, statement, times)
        if arrays is None:
            arrays = _postgresql_text_columns(connection, statement, names, times)
    frame = pd.DataFrame({position: values.view("datetime64[s]") if time else values
                          for position, (time, values) in enumerate(zip(times, arrays, strict=True))})
    frame.columns = names
    return frame


def _postgresql_text_columns(connection: Connection, statement, names: list[str], times: list[bool]
                             ) -> list[np.ndarray]:
    """:func:`_postgresql_binary`'s arrays, read as CSV text (:func:`_postgresql_csv`) parsed by
    Arrow: times to the microsecond, then cut to the second they are in (floored, as the binary
    read), ``NULL`` as NaT's integer. :class:`ValueError` naming the column for a ``NULL`` or a
    value that is not an integer in an integer column, or a value that is not a time in a time
    column."""
    data = _postgresql_csv(connection, statement)
    types = [pa.timestamp("us") if time else pa.int64() for time in times]
    if data:
        positions = [f"c{i}" for i in range(len(types))]
        options = pacsv.ConvertOptions(column_types=dict(zip(positions, types, strict=True)), null_values=[""])
        try:
            table = pacsv.read_csv(io.BytesIO(data), read_options=pacsv.ReadOptions(column_names=positions),
                                   convert_options=options)
        except pa.ArrowInvalid as exc:
            found = re.search(r"column #(\d+)", str(exc))
            position = int(found[1]) if found and int(found[1]) < len(names) else None
            name = "?" if position is None else names[position]
            kind = "a time" if position is not None and times[position] else "an integer"
            raise ValueError(f"column {name} holds a value that is not {kind} ({exc})") from exc
        columns = [table.column(i) for i in range(len(types))]
    else:
        columns = [pa.chunked_array([], kind) for kind in types]
    arrays = []
    for name, time, values in zip(names, times, columns, strict=True):
        if time:
            seconds = np.floor_divide(values.cast(pa.int64()).fill_null(0).to_numpy(), 1_000_000)
            seconds[values.is_null().to_numpy()] = _NAT
            arrays.append(seconds)
        elif values.null_count:
            raise ValueError(f"column {name} holds NULL: read_columns reads integers without NULL")
        else:
            arrays.append(values.to_numpy())
    return arrays
