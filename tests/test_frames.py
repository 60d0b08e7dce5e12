"""Frames read from the database: integers stay integers and missing values stay missing."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import BigInteger, Column, DateTime, Integer, MetaData, String, Table, insert, select

from workbench.db.frames import read_frame


def test_a_nullable_bigint_column_with_nulls_is_int64(engine):
    """NULLs do not turn integer money into float64 (2**53 + 1 would lose its last digit) nor text
    into ``nan``: Int64 with ``pd.NA``, object with ``None``."""
    table = Table("frame_check", MetaData(), Column("id", Integer, primary_key=True),
                  Column("amount_cents", BigInteger, nullable=True), Column("vat_number", String(20), nullable=True))
    table.create(engine)
    try:
        with engine.begin() as connection:
            connection.execute(insert(table), [{"id": 1, "amount_cents": 2**53 + 1, "vat_number": "FR40303265045"},
                                               {"id": 2, "amount_cents": None, "vat_number": None}])
            frame = read_frame(connection, select(table).order_by(table.c.id))
            text = read_frame(connection, "SELECT amount_cents, vat_number FROM frame_check ORDER BY id")
            empty = read_frame(connection, select(table).where(table.c.id > 5))
    finally:
        table.drop(engine)
    assert frame["amount_cents"].dtype == "Int64" and frame["id"].dtype == "Int64"
    assert frame["amount_cents"].tolist() == [9_007_199_254_740_993, pd.NA]
    assert frame["vat_number"].dtype == object and frame["vat_number"].tolist() == ["FR40303265045", None]
    assert text["amount_cents"].dtype == "Int64" and text["amount_cents"].tolist() == [9_007_199_254_740_993, pd.NA]
    assert text["vat_number"].tolist() == ["FR40303265045", None]
    assert empty.empty and empty["amount_cents"].dtype == "Int64"


def test_plain_reads_keep_integers_text_dates_and_their_nulls(engine):
    """``read_plain`` (the driver's rows as they come): integers int64, or Int64 with a NULL;
    text with ``None``; dates at midnight with NaT, from SQLite's text and PostgreSQL's dates;
    no row; and a column of another type refused by name."""
    from datetime import date

    from sqlalchemy import Date

    from workbench.db.frames import read_plain

    table = Table("plain_check", MetaData(), Column("id", Integer, primary_key=True),
                  Column("amount", BigInteger, nullable=True), Column("number", String(16), nullable=True),
                  Column("valid_from", Date), Column("valid_to", Date, nullable=True),
                  Column("at", DateTime, nullable=True))
    table.create(engine)
    try:
        with engine.begin() as connection:
            connection.execute(insert(table), [
                {"id": 1, "amount": 2**53 + 1, "number": "+33145000001", "valid_from": date(2024, 2, 29),
                 "valid_to": date(2026, 10, 31)},
                {"id": 2, "amount": None, "number": None, "valid_from": date(1969, 12, 31), "valid_to": None}])
            columns = [table.c.id, table.c.amount, table.c.number, table.c.valid_from, table.c.valid_to]
            frame = read_plain(connection, select(*columns).order_by(table.c.id))
            whole = read_plain(connection, select(table.c.id.label("line"), table.c.valid_from).where(table.c.id == 1))
            empty = read_plain(connection, select(*columns).where(table.c.id > 5))
            with pytest.raises(ValueError, match="not at"):
                read_plain(connection, select(table.c.id, table.c.at))
    finally:
        table.drop(engine)
    assert frame["id"].dtype == "int64" and frame["id"].tolist() == [1, 2]
    assert frame["amount"].dtype == "Int64" and frame["amount"].tolist() == [9_007_199_254_740_993, pd.NA]
    assert frame["number"].dtype == object and frame["number"].tolist() == ["+33145000001", None]
    assert frame["valid_from"].dtype == "datetime64[s]" and frame["valid_to"].dtype == "datetime64[s]"
    assert frame["valid_from"].tolist() == [pd.Timestamp("2024-02-29"), pd.Timestamp("1969-12-31")]
    assert frame["valid_to"].iloc[0] == pd.Timestamp("2026-10-31") and pd.isna(frame["valid_to"].iloc[1])
    assert list(whole.columns) == ["line", "valid_from"] and whole["line"].tolist() == [1]
    assert empty.empty and list(empty.columns) == ["id", "amount", "number", "valid_from", "valid_to"]


def test_bulk_reads_cut_the_fraction_of_a_second_keep_nulls_and_take_columns_by_position(engine):
    """``read_columns``: a time of 23:59:59.9996 stays in its second (and its day), a NULL time is
    NaT, and two columns of the same name, or an unlabelled function, are read as selected."""
    from datetime import datetime

    from sqlalchemy import DateTime, func

    from workbench.db.frames import read_columns

    table = Table("times_check", MetaData(), Column("id", Integer, primary_key=True),
                  Column("at", DateTime, nullable=True), Column("other_id", Integer))
    table.create(engine)
    try:
        with engine.begin() as connection:
            connection.execute(insert(table), [
                {"id": 1, "at": datetime(2026, 10, 31, 23, 59, 59, 999_600), "other_id": 7},
                {"id": 2, "at": None, "other_id": 8}])
            times = read_columns(connection, select(table.c.id, table.c.at).order_by(table.c.id),
                                 integers=("id",), datetimes=("at",))
            other = table.alias("other")
            pairs = read_columns(connection, select(table.c.id, other.c.id.label("twin"), other.c.other_id)
                                 .join(other, other.c.id == table.c.id).order_by(table.c.id),
                                 integers=("id", "twin", "other_id"))
            latest = read_columns(connection, select(func.max(table.c.at)), datetimes=("max",))
    finally:
        table.drop(engine)
    assert times["id"].tolist() == [1, 2] and str(times["id"].dtype) == "int64"
    assert times["at"].tolist()[0] == pd.Timestamp("2026-10-31 23:59:59") and pd.isna(times["at"].tolist()[1])
    assert str(times["at"].dtype) == "datetime64[s]"
    assert pairs.values.tolist() == [[1, 1, 7], [2, 2, 8]]
    assert latest["max"].tolist() == [pd.Timestamp("2026-10-31 23:59:59")]


def test_read_columns_in_batches_keeps_the_order_and_the_types(engine, monkeypatch):
    """Read in several batches (3 rows each here) the rows come in the statement's order; an
    empty result has the columns and types; a NULL number is refused, not read as 0."""
    from datetime import datetime, timedelta

    from workbench.db import frames
    from workbench.db.frames import read_columns

    monkeypatch.setattr(frames, "_FETCH_ROWS", 3)
    table = Table("batches_check", MetaData(), Column("id", Integer, primary_key=True),
                  Column("at", DateTime, nullable=True), Column("n", BigInteger, nullable=True))
    table.create(engine)
    start = datetime(2026, 10, 1, 8, 0)
    try:
        with engine.begin() as connection:
            # ids written backwards, numbers of 15 digits (E.164 at its longest)
            connection.execute(insert(table), [
                {"id": 10 - i, "at": start + timedelta(seconds=i), "n": 999_999_999_999_990 + i} for i in range(10)])
            rows = read_columns(connection, select(table.c.id, table.c.n, table.c.at).order_by(table.c.at),
                                integers=("id", "n"), datetimes=("at",))
            empty = read_columns(connection, select(table.c.id, table.c.at).where(table.c.id > 99),
                                 integers=("id",), datetimes=("at",))
            connection.execute(insert(table), [{"id": 11, "at": start, "n": None}])
            with pytest.raises(ValueError, match="column n holds NULL"):
                read_columns(connection, select(table.c.id, table.c.n), integers=("id", "n"))
    finally:
        table.drop(engine)
    assert rows["id"].tolist() == list(range(10, 0, -1))
    assert rows["n"].tolist() == [999_999_999_999_990 + i for i in range(10)]
    assert rows["at"].tolist() == [pd.Timestamp(start) + pd.Timedelta(seconds=i) for i in range(10)]
    assert empty.empty and list(empty.columns) == ["id", "at"]
    assert str(empty["id"].dtype) == "int64" and str(empty["at"].dtype) == "datetime64[s]"



def test_read_columns_refuses_what_is_not_an_integer_or_a_time(engine):
    """Columns twice under one name are read by position; a text column is refused (its value
    would be guessed); on SQLite, which keeps any value in any column, a text or a real in an
    integer column is refused naming the column, never split into rows or read as NULL."""
    from sqlalchemy import Float, text

    from workbench.db.frames import read_columns

    table = Table("kinds_check", MetaData(), Column("id", Integer, primary_key=True),
                  Column("n", BigInteger), Column("code", String(10)), Column("ratio", Float))
    table.create(engine)
    try:
        with engine.begin() as connection:
            connection.execute(insert(table), [{"id": 1, "n": 42, "code": "0042", "ratio": 0.5}])
            other = table.alias("other")
            twice = read_columns(connection, select(table.c.id, other.c.id).join(other, other.c.id == table.c.id),
                                 integers=("id",))
            with pytest.raises(ValueError, match=r"not \['code'\]"):
                read_columns(connection, select(table.c.id, table.c.code), integers=("id", "n"))
            if engine.dialect.name == "sqlite":
                for value in ("'5' || char(10) || '0,99,7'", "'NaN'", "60.5", "''"):
                    connection.execute(text(f"UPDATE kinds_check SET n = {value} WHERE id = 1"))
                    with pytest.raises(ValueError, match="column n holds a value that is not an integer"):
                        read_columns(connection, select(table.c.id, table.c.n), integers=("id", "n"))
    finally:
        table.drop(engine)
    assert twice.values.tolist() == [[1, 1]] and list(twice.columns) == ["id", "id"]


# --- bulk writes: what is written is what is read back -------------------------------------


def _kinds_table(name: str) -> Table:
    from sqlalchemy import SmallInteger, Text

    return Table(name, MetaData(), Column("id", Integer, primary_key=True), Column("small", SmallInteger),
                 Column("n", Integer), Column("big", BigInteger), Column("at", DateTime), Column("code", String(8)),
                 Column("note", Text))


# each value written, and read back as it is stored: integers at each width's bounds, times
# (before and after PostgreSQL's epoch of 2000-01-01 and Unix's; cut to the second on PostgreSQL,
# kept to the microsecond on SQLite), text with what CSV quotes (commas, quotes, line ends),
# non-ASCII text, an empty text (not NULL) and NULLs
BULK_ROWS = [
    (1, -32768, -2147483648, -9223372036854775808, "1970-01-01 00:00:00", "a,b", 'say "hi"'),
    (2, 32767, 2147483647, 9223372036854775807, "1999-12-31 23:59:59.999999", "", "line\nbreak\r\nand \\N"),
    (3, 0, 0, 0, "2000-01-01 00:00:00", "été", "\u2028\u00e9\U0001F600"),
    (4, None, None, None, None, None, None),
    (5, 7, -1, 33612345678, "2026-10-25 02:30:00.5", "NULL", "\\N"),
]


def _bulk_frame(rows) -> pd.DataFrame:
    ids, small, n, big, at, code, note = (list(values) for values in zip(*rows, strict=True))
    return pd.DataFrame({
        "id": pd.array(ids, dtype="int64"), "small": pd.array(small, dtype="Int64"), "n": pd.array(n, dtype="Int64"),
        "big": pd.array(big, dtype="Int64"), "at": pd.to_datetime(pd.Series(at), format="ISO8601"),
        "code": pd.Series(code, dtype="category"),  # as rating makes its zone codes and bands
        "note": pd.Series(note, dtype="string")})


def test_bulk_writes_store_every_kind_of_value_exactly(engine):
    from datetime import datetime

    from workbench.db.bulk import insert_frame

    def fraction(microseconds: int) -> int:
        return microseconds if engine.dialect.name == "sqlite" else 0

    table = _kinds_table("bulk_check")
    table.create(engine)
    frame = _bulk_frame(BULK_ROWS)
    try:
        with engine.begin() as connection:
            insert_frame(connection, "bulk_check", frame)
            # the text in Arrow's strings (as the files' fields are read)
            again = frame.assign(id=frame["id"] + 10, note=frame["note"].astype("string[pyarrow]"))
            insert_frame(connection, "bulk_check", again)
            stored = connection.execute(select(table).order_by(table.c.id)).all()
    finally:
        table.drop(engine)
    expected = [
        (1, -32768, -2147483648, -9223372036854775808, datetime(1970, 1, 1), "a,b", 'say "hi"'),
        (2, 32767, 2147483647, 9223372036854775807, datetime(1999, 12, 31, 23, 59, 59, fraction(999_999)), "",
         "line\nbreak\r\nand \\N"),
        (3, 0, 0, 0, datetime(2000, 1, 1), "été", "\u2028\u00e9\U0001F600"),
        (4, None, None, None, None, None, None),
        (5, 7, -1, 33612345678, datetime(2026, 10, 25, 2, 30, 0, fraction(500_000)), "NULL", "\\N"),
    ]
    assert [tuple(row) for row in stored] == expected + [(10 + row[0], *row[1:]) for row in expected]


def test_bulk_reads_of_integers_and_times_of_every_width_and_epoch(engine):
    """``read_columns`` of small, regular and big integers and of times either side of 1970 and
    2000 (PostgreSQL's epoch), cut to the second within their second; on PostgreSQL by a binary
    ``COPY`` (rows of fixed width), falling back to text for a row with a ``NULL``."""
    from datetime import datetime

    from sqlalchemy import SmallInteger, func, text

    from workbench.db.frames import _postgresql_binary, read_columns

    table = Table("widths_check", MetaData(), Column("id", Integer, primary_key=True), Column("small", SmallInteger),
                  Column("big", BigInteger), Column("at", DateTime))
    table.create(engine)
    rows = [(1, -32768, -9223372036854775808, datetime(1999, 12, 31, 23, 59, 59, 500_000)),
            (2, 32767, 9223372036854775807, datetime(2000, 1, 1, 0, 0, 0, 1)),
            (3, 0, 33612345678, datetime(1969, 12, 31, 23, 59, 59)),
            (4, 1, 1, datetime(2026, 10, 31, 23, 59, 59, 999_999))]
    statement = select(table.c.id, table.c.small, table.c.big, table.c.at).order_by(table.c.id)
    try:
        with engine.begin() as connection:
            connection.execute(insert(table), [dict(zip(("id", "small", "big", "at"), row, strict=True))
                                               for row in rows])
            read = read_columns(connection, statement, integers=("id", "small", "big"), datetimes=("at",))
            if engine.dialect.name == "postgresql":
                assert _postgresql_binary(connection, statement, [False, False, False, True]) is not None
                connection.execute(insert(table), [{"id": 5, "small": None, "big": 5, "at": None}])
                nulls = select(table.c.id, table.c.at).order_by(table.c.id)
                assert _postgresql_binary(connection, nulls, [False, True]) is None  # a NULL: read as text
                with_null = read_columns(connection, nulls, integers=("id",), datetimes=("at",))
                assert with_null["id"].tolist() == [1, 2, 3, 4, 5] and pd.isna(with_null["at"].iloc[4])
                connection.execute(text("UPDATE widths_check SET at = 'infinity' WHERE id = 5"))
                with pytest.raises(ValueError, match="column at holds a value that is not a time"):
                    read_columns(connection, nulls, integers=("id",), datetimes=("at",))
                count = read_columns(connection, select(func.count()).select_from(table), integers=("count",))
                assert count["count"].tolist() == [5]
    finally:
        table.drop(engine)
    assert read["id"].tolist() == [1, 2, 3, 4]
    assert read["small"].tolist() == [-32768, 32767, 0, 1]
    assert read["big"].tolist() == [-9223372036854775808, 9223372036854775807, 33612345678, 1]
    assert read["at"].tolist() == [pd.Timestamp("1999-12-31 23:59:59"), pd.Timestamp("2000-01-01 00:00:00"),
                                   pd.Timestamp("1969-12-31 23:59:59"), pd.Timestamp("2026-10-31 23:59:59")]
    assert [str(read[c].dtype) for c in read.columns] == ["int64", "int64", "int64", "datetime64[s]"]
