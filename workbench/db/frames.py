"""Frames from SQL: the one way the package reads rows into pandas."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Integer, cast, func, select, text


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


def read_columns(connection: Connection, statement, integers: tuple[str, ...] = (),
                 datetimes: tuple[str, ...] = ()) -> pd.DataFrame:
    """The rows of a SQLAlchemy select of numbers and times, read in bulk: on PostgreSQL through
    ``COPY (...) TO STDOUT`` parsed by Arrow's CSV reader, on SQLite through the driver's cursor
    without SQLAlchemy's per-value processing. ``integers`` become int64 (``NULL`` is not
    allowed in them), ``datetimes`` datetime64[s] (naive, as stored); other columns as the driver
    gives them. For the big reads of calls (a month's calls); :func:`read_frame` for the rest."""
    sql = str(statement.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True}))
    names = [column.name for column in statement.selected_columns]
    driver = connection.connection.driver_connection
    if connection.dialect.name == "postgresql":
        import io

        import pyarrow as pa
        import pyarrow.csv as pacsv

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
    else:
        # SQLite gives the times as epoch seconds (its ``strftime('%s')``, in C), not as text
        # for pandas to parse: one Python int per value, turned into arrays by NumPy. The
        # fraction of a second is cut off first (``strftime`` would round it to the millisecond,
        # and a time of 23:59:59.9996 would become the next day), as ``datetime64[s]`` does; the
        # columns of the statement are taken by position (their names may repeat or be labels).
        inner = statement.subquery()
        outer = select(*(
            cast(func.strftime("%s", func.substr(column, 1, 19)), Integer) if name in datetimes else column
            for name, column in zip(names, inner.c, strict=True)))
        sql = str(outer.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True}))
        cursor = driver.cursor()
        try:
            rows = cursor.execute(sql).fetchall()
        finally:
            cursor.close()
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
        data = {}
        for name, values in zip(names, columns, strict=True):
            if name in integers:
                data[name] = np.array(values, dtype=np.int64)
            elif name in datetimes:  # a NULL (None) is NaT
                seconds = pd.array(values, dtype="Int64")
                data[name] = (pd.Series(pd.to_datetime(seconds, unit="s")).astype("datetime64[s]")
                              if seconds.isna().any() else
                              pd.Series(seconds.to_numpy(dtype=np.int64).astype("datetime64[s]")))
            else:
                data[name] = pd.Series(list(values), dtype=object)
        return pd.DataFrame(data, columns=names)
    for name in integers:
        frame[name] = frame[name].astype("int64")
    for name in datetimes:
        frame[name] = pd.to_datetime(frame[name], format="ISO8601").astype("datetime64[s]")
    return frame
