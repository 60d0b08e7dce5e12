"""Frames from SQL: the one way the package reads rows into pandas."""

from __future__ import annotations

import io

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from sqlalchemy import Connection, Integer, cast, func, literal_column, select, text


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


def _sqlite_columns(connection: Connection, statement, names: list[str], integers: tuple[str, ...],
                    datetimes: tuple[str, ...]) -> pd.DataFrame:
    """:func:`read_columns` on SQLite. Each row is written by SQLite as one CSV line of integers:
    the times as epoch seconds (``strftime('%s')``, in C), the fraction of a second cut off
    first (``strftime`` would round it to the millisecond, and a time of 23:59:59.9996 would
    become the next day), as ``datetime64[s]`` does; a ``NULL`` as an empty field; every line
    led by a constant field, so that none is empty. The columns of the statement are taken by
    position (their names may repeat or be labels)."""
    others = [n for n in names if n not in integers and n not in datetimes]
    if others:
        raise ValueError(f"read_columns reads integers and times on SQLite, not {others}")
    inner = statement.subquery()
    line = literal_column("'0'")
    for name, column in zip(names, inner.c, strict=True):
        value = cast(func.strftime("%s", func.substr(column, 1, 19)), Integer) if name in datetimes else column
        line = line.op("||")(literal_column("','")).op("||")(func.coalesce(value, literal_column("''")))
    sql = str(select(line).compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True}))
    cursor = connection.connection.driver_connection.cursor()
    parts = []
    try:
        cursor.execute(sql)
        while rows := cursor.fetchmany(_FETCH_ROWS):
            parts.append("\n".join([row[0] for row in rows]))
    finally:
        cursor.close()
    positions = [f"c{i}" for i in range(len(names) + 1)]
    if parts:
        table = pacsv.read_csv(io.BytesIO("\n".join(parts).encode("ascii")),
                               read_options=pacsv.ReadOptions(column_names=positions),
                               convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(positions, pa.int64())))
        columns = [table.column(i + 1) for i in range(len(names))]
    else:
        columns = [pa.chunked_array([], pa.int64()) for _ in names]
    data = {}
    for position, (name, values) in enumerate(zip(names, columns, strict=True)):
        if name in integers:
            if values.null_count:
                raise ValueError(f"column {name} holds NULL: read_columns reads integers without NULL")
            data[position] = values.to_numpy()
        elif values.null_count:  # a time; NULL is NaT
            data[position] = pd.to_datetime(values.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get),
                                            unit="s").astype("datetime64[s]").to_numpy()
        else:
            data[position] = values.to_numpy().astype("datetime64[s]")
    frame = pd.DataFrame(data)
    frame.columns = names
    return frame


def read_columns(connection: Connection, statement, integers: tuple[str, ...] = (),
                 datetimes: tuple[str, ...] = ()) -> pd.DataFrame:
    """The rows of a SQLAlchemy select of numbers and times, read in bulk and parsed by Arrow's
    CSV reader: on PostgreSQL written by ``COPY (...) TO STDOUT``, on SQLite one line of text per
    row written by SQLite itself (``||``), so that no Python object is made per value.
    ``integers`` become int64 (``NULL`` is not allowed in them), ``datetimes`` datetime64[s]
    (naive, as stored; ``NULL`` is NaT). On SQLite every column is one of the two
    (:class:`ValueError` otherwise); on PostgreSQL other columns are read as text. For the big
    reads of calls (a month's calls); :func:`read_frame` for the rest."""
    names = [column.name for column in statement.selected_columns]
    if connection.dialect.name != "postgresql":
        return _sqlite_columns(connection, statement, names, integers, datetimes)
    sql = str(statement.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True}))
    driver = connection.connection.driver_connection
    with driver.cursor() as cursor, cursor.copy(f"COPY ({sql}) TO STDOUT (FORMAT csv)") as copy:
        data = b"".join(bytes(block) for block in copy)
    # times read to the microsecond, then cut to the second (below), as on SQLite
    types = {**{n: pa.int64() for n in integers}, **{n: pa.timestamp("us") for n in datetimes}}
    if data:
        table = pacsv.read_csv(io.BytesIO(data), read_options=pacsv.ReadOptions(column_names=names),
                               convert_options=pacsv.ConvertOptions(column_types=types))
        frame = table.to_pandas(types_mapper={pa.string(): pd.StringDtype()}.get)
    else:
        frame = pd.DataFrame({n: pd.Series(dtype=object) for n in names})
    for name in integers:
        if frame[name].isna().any():
            raise ValueError(f"column {name} holds NULL: read_columns reads integers without NULL")
        frame[name] = frame[name].astype("int64")
    for name in datetimes:
        frame[name] = pd.to_datetime(frame[name], format="ISO8601").astype("datetime64[s]")
    return frame
