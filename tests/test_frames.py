"""Frames read from the database: integers stay integers and missing values stay missing."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, insert, select

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
