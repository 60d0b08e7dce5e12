"""Frames from SQL: the one way the package reads rows into pandas."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import Connection, text


def read_frame(connection: Connection, statement, **params) -> pd.DataFrame:
    """A frame of the rows of a SQLAlchemy statement (or SQL text) on ``connection``, with the
    statement's column names; values as the driver returns them (``Decimal`` stays ``Decimal``)."""
    if isinstance(statement, str):
        statement = text(statement)
    result = connection.execute(statement, params)
    return pd.DataFrame(result.fetchall(), columns=list(result.keys()))
