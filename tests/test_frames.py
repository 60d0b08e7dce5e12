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
