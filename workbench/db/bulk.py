"""Fast bulk inserts of frames: ``executemany`` on SQLite, ``COPY`` on PostgreSQL.

Both run inside the caller's transaction, on its connection.
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg.copy import LibpqWriter
from sqlalchemy import Connection

_CHUNK = 200_000


def _python_column(series: pd.Series) -> list:
    if pd.api.types.is_datetime64_any_dtype(series):  # formatted once per distinct value
        codes, uniques = pd.factorize(series)
        text = np.append(pd.DatetimeIndex(uniques).strftime("%Y-%m-%d %H:%M:%S.%f").to_numpy(object), None)
        return text[codes].tolist()
    if isinstance(series.dtype, pd.CategoricalDtype):
        labels = np.append(series.cat.categories.to_numpy(dtype=object), None)
        return labels[series.cat.codes.to_numpy()].tolist()
    if pd.api.types.is_bool_dtype(series):
        return series.astype(np.int64).tolist()
    if series.dtype == object or pd.api.types.is_string_dtype(series) or series.hasnans:
        values = series.astype(object).where(series.notna(), None).tolist()
        if series.dtype == object:  # exact decimals as text: SQLite's driver takes no Decimal
            values = [str(v) if isinstance(v, Decimal) else v for v in values]
        return values
    return series.tolist()


def insert_frame(connection: Connection, table: str, frame: pd.DataFrame) -> int:
    """Insert all rows of ``frame`` (columns named as the table's) into ``table``."""
    if frame.empty:
        return 0
    columns = list(frame.columns)
    if connection.dialect.name == "postgresql":
        _copy(connection, table, frame, columns)
        return len(frame)
    placeholders = ", ".join("?" for _ in columns)
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})"
    cursor = connection.connection.driver_connection.cursor()
    for start in range(0, len(frame), _CHUNK):
        chunk = frame.iloc[start : start + _CHUNK]
        cursor.executemany(sql, zip(*(_python_column(chunk[c]) for c in columns), strict=True))
    cursor.close()
    return len(frame)


def _arrow_csv(frame: pd.DataFrame) -> bytes | None:
    """``frame`` as CSV text for PostgreSQL's ``COPY ... (FORMAT csv)``, written by Arrow's CSV
    writer (no Python per value): a missing value an empty unquoted field (``NULL``), text
    quoted, ``Decimal`` written exactly, datetimes as ``YYYY-MM-DD HH:MM:SS``. None when a
    column does not convert (the pandas writer then does it)."""
    columns = {}
    for name in frame.columns:
        column = frame[name]
        if pd.api.types.is_bool_dtype(column.dtype):
            column = column.map({True: "t", False: "f"}).astype("string")
        try:
            array = pa.array(column, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return None
        if pa.types.is_timestamp(array.type):
            array = array.cast(pa.timestamp("s"), safe=False)
        elif pa.types.is_dictionary(array.type):
            array = array.cast(array.type.value_type)
        kind = array.type
        if not (pa.types.is_integer(kind) or pa.types.is_string(kind) or pa.types.is_large_string(kind)
                or pa.types.is_timestamp(kind) or pa.types.is_decimal(kind) or pa.types.is_null(kind)
                or pa.types.is_date(kind)):
            return None
        columns[name] = array
    sink = pa.BufferOutputStream()
    pacsv.write_csv(pa.table(columns), sink, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
    return sink.getvalue().to_pybytes()


def _arrow_csv_copy(cursor, table: str, columns: list[str]):
    """psycopg's ``COPY table (columns) FROM STDIN`` for the CSV text of :func:`_arrow_csv` (an
    empty unquoted field is NULL, ``""`` an empty text), each write sent whole at once (not its
    last MiB kept back until the next), so that the server works through it meanwhile."""
    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv)"
    return cursor.copy(sql, writer=LibpqWriter(cursor, flush_threshold=0))


def _copy(connection: Connection, table: str, frame: pd.DataFrame, columns: list[str]) -> None:
    driver = connection.connection.driver_connection
    with driver.cursor() as cursor:
        first = _arrow_csv(frame.iloc[:_CHUNK])
        if first is not None:
            with _arrow_csv_copy(cursor, table, columns) as copy:
                copy.write(first)
                for start in range(_CHUNK, len(frame), _CHUNK):
                    text = _arrow_csv(frame.iloc[start : start + _CHUNK])
                    if text is None:  # pragma: no cover - the same dtypes as the first chunk
                        raise TypeError(f"a column of {table} does not convert to Arrow")
                    copy.write(text)
            return
        # NULL is an unquoted \N; every other value is written as text (quoted when needed)
        sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv, NULL '\\N')"
        with cursor.copy(sql) as copy:
            for start in range(0, len(frame), _CHUNK):
                chunk = frame.iloc[start : start + _CHUNK].copy()
                for column in columns:
                    if pd.api.types.is_datetime64_any_dtype(chunk[column]):
                        chunk[column] = chunk[column].dt.strftime("%Y-%m-%d %H:%M:%S")
                    elif pd.api.types.is_bool_dtype(chunk[column]):
                        chunk[column] = chunk[column].map({True: "t", False: "f"})
                for column in columns:
                    if chunk[column].dtype == object:
                        chunk[column] = chunk[column].map(lambda v: str(v) if isinstance(v, Decimal) else v)
                buffer = io.StringIO()
                chunk.to_csv(buffer, header=False, index=False, quoting=csv.QUOTE_MINIMAL, na_rep="\\N")
                copy.write(buffer.getvalue())
