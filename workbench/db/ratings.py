"""Rated calls: the unbilled ones as blocks of columns, the billed ones as rows.

A period's unbilled ratings are replaced whole at each rating of the period (re-rated after a
reference fix, a late file, a what-if made real), many times a month; a billed rating never
changes. So the two are kept apart, in the one database and its transactions:

* the **unbilled** ratings of each period are blocks of ``rating_blocks``: up to
  :data:`BLOCK_RATINGS` ratings, by customer and call, as one Parquet file in a binary column,
  with the block's period, range of customers and of call ids and the time of rating. A rating
  of the period replaces its blocks (:func:`replace`);
* the **billed** ratings are rows of ``rated_calls``, each with its invoice: a production run
  moves the ratings it bills from the blocks into rows (:func:`bill`; on PostgreSQL each month's
  partition written anew, :func:`workbench.db.partitions.replace_partition`); a credit note that
  reopens a period moves its invoice's ratings back (:func:`unbill`).

A rating of a period is written once, in bulk, and read in bulk (a run's inputs, the balance, the
reports): a million ratings take about a second to write as blocks, against 4-6 seconds as rows
with their indexes. What it costs: the unbilled ratings are not rows that SQL can query; readers
take frames from here.

Frames: ``cdr_id``, ``period`` (``YYYY-MM``), ``customer_id``, ``destination_prefix``,
``zone_code``, ``band``, ``duration_s`` (seconds), ``allowance_s`` (seconds),
``price_units`` (1/10,000 EUR), ``rate_id`` (``Int64``, ``<NA>`` for none), ``rule``, ``rated_at``
(naive UTC), ``invoice_id`` (``Int64``, ``<NA>`` while unbilled); integers int64, text object.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Connection, delete, func, insert, select, text

from workbench.db import schema as s
from workbench.db.bulk import insert_frame
from workbench.db.frames import read_frame
from workbench.db.partitions import partition_name, replace_partition
from workbench.errors import RefusedError

#: the columns of a block, as stored
SCHEMA = pa.schema([
    ("cdr_id", pa.int64()), ("customer_id", pa.int64()), ("destination_prefix", pa.string()),
    ("zone_code", pa.string()), ("band", pa.string()), ("duration_s", pa.int64()), ("allowance_s", pa.int64()),
    ("price_units", pa.int64()), ("rate_id", pa.int64()), ("rule", pa.string()),
])
#: the columns of a rating (of ``rated_calls``)
COLUMNS = ["cdr_id", "period", "customer_id", "destination_prefix", "zone_code", "band", "duration_s",
           "allowance_s", "price_units", "rate_id", "rule", "rated_at", "invoice_id"]
#: the ratings of a block, at most
BLOCK_RATINGS = 200_000
#: how a block is written: the call ids (in order within a customer) as deltas, zstd
_PARQUET = {"compression": "zstd", "write_statistics": False, "column_encoding": {"cdr_id": "DELTA_BINARY_PACKED"},
            "use_dictionary": ["destination_prefix", "zone_code", "band", "rule"]}
_TEXT = ("destination_prefix", "zone_code", "band", "rule")


def _text(values: pd.Series) -> pa.Array:
    """A text column as an Arrow dictionary of strings, as Parquet writes it (a few distinct
    values: prefixes, zones, bands, rules); a categorical one (as rating makes them) through its
    codes, without a Python string per value. Written so, a block is written and read in about
    half the time of plain strings (read back as categories, not a string per value)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes = values.cat.codes.to_numpy()
        categories = pa.array(values.cat.categories.astype(str).to_numpy(dtype=object), type=pa.string())
        return pa.DictionaryArray.from_arrays(pa.array(codes, mask=codes < 0), categories)
    return pa.array(values.astype(object).to_numpy(), type=pa.string(), from_pandas=True).dictionary_encode()


def encode(ratings: pd.DataFrame) -> bytes:
    """A block's bytes: ``ratings`` (the columns of :data:`SCHEMA`) as one Parquet file."""
    arrays = []
    for field in SCHEMA:
        values = ratings[field.name]
        if field.name in _TEXT:
            arrays.append(_text(values))
        else:
            arrays.append(pa.array(pd.array(values, dtype="Int64") if field.name == "rate_id" else
                                   values.to_numpy(dtype=np.int64), type=pa.int64(), from_pandas=True))
    out = io.BytesIO()
    pq.write_table(pa.Table.from_arrays(arrays, names=SCHEMA.names), out, row_group_size=len(ratings) or 1,
                   **_PARQUET)
    return out.getvalue()


def decode(data: bytes, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The ratings of a block's bytes, ``columns`` of :data:`SCHEMA` (default: all)."""
    frame = pq.read_table(io.BytesIO(data), columns=list(columns) if columns else None).to_pandas(
        types_mapper={pa.int64(): None}.get)
    for column in _TEXT:
        if column in frame:
            values = frame[column].astype(object)
            frame[column] = values.where(values.notna(), None)
    if "rate_id" in frame:
        frame["rate_id"] = frame["rate_id"].astype("Int64")
    return frame


def _blocks(connection: Connection, where: Iterable, columns: Sequence[str] | None = None):
    """The blocks meeting ``where`` (criteria on ``rating_blocks``): (id, period, rated_at, ratings)."""
    stmt = select(s.RatingBlock.id, s.RatingBlock.period, s.RatingBlock.rated_at, s.RatingBlock.data).where(
        *where).order_by(s.RatingBlock.period, s.RatingBlock.customer_min, s.RatingBlock.id)
    for block_id, period, rated_at, data in connection.execute(stmt):
        yield int(block_id), str(period), rated_at, decode(data, columns)


def _where(period: str | None, upto: str | None, before: str | None, customers: np.ndarray | None) -> list:
    where = []
    if period is not None:
        where.append(s.RatingBlock.period == str(period))
    if upto is not None:
        where.append(s.RatingBlock.period <= str(upto))
    if before is not None:
        where.append(s.RatingBlock.period < str(before))
    if customers is not None:
        if not len(customers):
            return [s.RatingBlock.id.is_(None)]
        where += [s.RatingBlock.customer_min <= int(customers.max()),
                  s.RatingBlock.customer_max >= int(customers.min())]
    return where


def _ids(values) -> np.ndarray | None:
    return None if values is None else np.unique(np.asarray(list(values), dtype=np.int64))


def unbilled(connection: Connection, *, period: str | None = None, upto: str | None = None,
             before: str | None = None, customers: Iterable[int] | None = None) -> pd.DataFrame:
    """The unbilled ratings of ``period``, of the periods up to ``upto`` or before ``before``
    (``YYYY-MM``; ``None``: every period), of the customers ``customers`` only if given; by
    period, customer and call (:data:`COLUMNS`, ``invoice_id`` all ``<NA>``)."""
    customers = _ids(customers)
    parts = []
    for _, block_period, rated_at, ratings in _blocks(connection, _where(period, upto, before, customers)):
        if customers is not None:
            ratings = ratings[np.isin(ratings["customer_id"].to_numpy(), customers)]
        parts.append(ratings.assign(period=block_period, rated_at=pd.Timestamp(rated_at)))
    if not parts:
        return _empty()
    frame = pd.concat(parts, ignore_index=True)
    frame["invoice_id"] = pd.arrays.IntegerArray(np.zeros(len(frame), np.int64), np.ones(len(frame), bool))
    return frame[COLUMNS]


def unbilled_ids(connection: Connection, ids: np.ndarray) -> np.ndarray:
    """Of the call ids ``ids``, those with an unbilled rating (int64)."""
    if not len(ids):
        return np.zeros(0, dtype=np.int64)
    where = [s.RatingBlock.cdr_min <= int(ids.max()), s.RatingBlock.cdr_max >= int(ids.min())]
    found = [r["cdr_id"].to_numpy() for *_, r in _blocks(connection, where, ["cdr_id"])]
    found = np.concatenate(found) if found else np.zeros(0, dtype=np.int64)
    return found[np.isin(found, ids)]


def count(connection: Connection, period: str) -> int:
    """The ratings of ``period``, billed or not."""
    blocks = connection.execute(select(func.coalesce(func.sum(s.RatingBlock.ratings), 0)).where(
        s.RatingBlock.period == str(period))).scalar_one()
    rows = connection.execute(select(func.count()).select_from(s.RatedCall).where(
        s.RatedCall.period == str(period))).scalar_one()
    return int(blocks) + int(rows)


def of_period(connection: Connection, period: str, columns: Sequence[str] = COLUMNS) -> pd.DataFrame:
    """Every rating of ``period``, billed (rows) or not (blocks): ``columns`` of :data:`COLUMNS`, by call."""
    return every(connection, columns, period=period)


def every(connection: Connection, columns: Sequence[str] = COLUMNS, period: str | None = None) -> pd.DataFrame:
    """Every rating stored (of ``period`` only, if given), billed (rows) or not (blocks):
    ``columns`` of :data:`COLUMNS`, by call."""
    rows = select(*(getattr(s.RatedCall, c) for c in columns))
    billed = _typed(read_frame(connection, rows if period is None else rows.where(s.RatedCall.period == str(period))))
    unbilled_ = unbilled(connection, period=period)[list(columns)]
    frame = pd.concat([billed, unbilled_], ignore_index=True) if len(billed) else unbilled_
    return frame.sort_values("cdr_id", ignore_index=True) if "cdr_id" in frame else frame


def _write(connection: Connection, period: str, ratings: pd.DataFrame, rated_at: datetime) -> None:
    """``ratings`` (unbilled, of ``period``) as new blocks, by customer and call."""
    if ratings.empty:
        return
    ratings = ratings.sort_values(["customer_id", "cdr_id"], kind="stable", ignore_index=True)
    connection.execute(insert(s.RatingBlock), [block_row(period, ratings.iloc[low:low + BLOCK_RATINGS], rated_at)
                                               for low in range(0, len(ratings), BLOCK_RATINGS)])


def block_row(period: str, ratings: pd.DataFrame, rated_at: datetime) -> dict:
    """The row of ``rating_blocks`` of a block of unbilled ``ratings`` of ``period`` (the
    columns of :data:`SCHEMA`, by customer and call), rated at ``rated_at``."""
    ids = ratings["cdr_id"].to_numpy()
    return {"period": str(period), "customer_min": int(ratings["customer_id"].iat[0]),
            "customer_max": int(ratings["customer_id"].iat[-1]), "cdr_min": int(ids.min()), "cdr_max": int(ids.max()),
            "ratings": len(ratings), "rated_at": rated_at, "data": encode(ratings)}


def replace(connection: Connection, period: str, ratings: pd.DataFrame, now: datetime) -> None:
    """Replace the unbilled ratings of ``period`` by ``ratings`` (the frame of
    :func:`workbench.rating.rate`), rated at ``now``, in the caller's transaction.

    Raises :class:`~workbench.errors.RefusedError` (``rated_in_another_period``), storing
    nothing, for a call that already has a rating of another period (a call rated under another
    time zone setting): a call has one rating."""
    ids = np.sort(ratings["cdr_id"].to_numpy(dtype=np.int64))  # (np.unique: a hash, slower)
    if len(ids):
        where = [s.RatingBlock.period != str(period), s.RatingBlock.cdr_min <= int(ids[-1]),
                 s.RatingBlock.cdr_max >= int(ids[0])]
        elsewhere = [(p, r["cdr_id"].to_numpy()) for _, p, _, r in _blocks(connection, where, ["cdr_id"])]
        billed = read_frame(connection, select(s.RatedCall.cdr_id, s.RatedCall.period).where(
            s.RatedCall.cdr_id.between(int(ids[0]), int(ids[-1]))))
        billed = billed[np.isin(billed["cdr_id"].to_numpy(dtype=np.int64), ids)]
        if len(billed):  # billed since the rating read its calls (another session's production)
            first = billed.iloc[0]
            raise RefusedError(f"call {int(first['cdr_id'])} has a billed rating of {first['period']} "
                               f"({len(billed)} such calls): rate {period} again", source=f"rating {period}",
                               code="rated_in_another_period" if first["period"] != str(period) else "billed_meanwhile")
        for other, found in elsewhere:
            twice = found[np.isin(found, ids)]
            if len(twice):
                raise RefusedError(
                    f"call {int(twice[0])} already has a rating of {other}: rated under another time zone "
                    f"setting? ({len(twice)} such calls)", source=f"rating {period}", code="rated_in_another_period")
    connection.execute(delete(s.RatingBlock).where(s.RatingBlock.period == str(period)))
    _write(connection, period, ratings, now)


def take(connection: Connection, where: Iterable, pick: Callable[[pd.DataFrame], np.ndarray]) -> pd.DataFrame:
    """Take out of the blocks meeting ``where`` (criteria on ``rating_blocks``) the ratings that
    ``pick`` chooses (a frame of a block's ratings -> a boolean mask): each block holding some is
    written again without them. Returns them with their ``period`` and ``rated_at`` (no
    ``invoice_id``), in the caller's transaction."""
    taken = []
    for block_id, period, rated_at, ratings in list(_blocks(connection, where)):
        mine = pick(ratings)
        if not mine.any():
            continue
        taken.append(ratings[mine].assign(period=period, rated_at=pd.Timestamp(rated_at)))
        connection.execute(delete(s.RatingBlock).where(s.RatingBlock.id == block_id))
        _write(connection, period, ratings[~mine], rated_at)
    return pd.concat(taken, ignore_index=True) if taken else _empty().drop(columns=["invoice_id"])


def bill(connection: Connection, upto: str, invoices: Mapping[int, int]) -> int:
    """Mark billed the unbilled ratings of the periods up to ``upto`` of the customers of
    ``invoices`` (customer id -> the invoice that bills them): they leave the blocks and become
    rows of ``rated_calls`` with their invoice. Returns how many."""
    customers = _ids(invoices.keys())
    rows = take(connection, _where(None, upto, None, customers),
                lambda ratings: np.isin(ratings["customer_id"].to_numpy(), customers))
    if rows.empty:
        return 0
    rows["invoice_id"] = rows["customer_id"].map({int(c): int(i) for c, i in invoices.items()}).astype(np.int64)
    rows = rows.sort_values("cdr_id", ignore_index=True)[COLUMNS]
    for period, of_period_ in rows.groupby("period", sort=True):
        if _rewrite_partition(connection, str(period), len(of_period_)):  # written anew, indexed once
            replace_partition(connection, "rated_calls", str(period), of_period_, keep="invoice_id IS NOT NULL")
        else:
            insert_frame(connection, "rated_calls", of_period_)
    return len(rows)


def _rewrite_partition(connection: Connection, period: str, new: int) -> bool:
    """Whether ``new`` billed ratings of ``period`` are stored by writing the month's partition
    anew (PostgreSQL): when it has none yet, or holds fewer rows than are added (a month's
    production); rows added one by one cost less than rewriting a big month for a few (late
    calls, a group of customers billed after the others). Never on SQLite."""
    if connection.dialect.name != "postgresql":
        return False
    try:
        name = partition_name("rated_calls", period)
    except ValueError:  # not a month: the default partition's
        return False
    held = connection.execute(text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:name)"),
                              {"name": name}).scalar()
    return held is None or held < new


def unbill(connection: Connection, invoice_id: int) -> int:
    """Make unbilled again the ratings billed by ``invoice_id`` (a credit note reopened its
    period): the rows go back into blocks of their periods. Returns how many."""
    rows = _typed(read_frame(connection, select(s.RatedCall.__table__).where(
        s.RatedCall.invoice_id == int(invoice_id))))
    if rows.empty:
        return 0
    for (period, rated_at), ratings in rows.groupby(["period", "rated_at"], sort=True):
        _write(connection, str(period), ratings, pd.Timestamp(rated_at).to_pydatetime())
    connection.execute(delete(s.RatedCall).where(s.RatedCall.invoice_id == int(invoice_id)))
    return len(rows)


def _typed(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``rated_calls`` as read by :func:`~workbench.db.frames.read_frame`, typed as the blocks'."""
    rows = rows.copy()
    for column in ("cdr_id", "customer_id", "duration_s", "allowance_s", "price_units"):
        if column in rows:
            rows[column] = rows[column].astype(np.int64)
    if "rated_at" in rows:
        rows["rated_at"] = pd.to_datetime(rows["rated_at"])
    return rows


def _empty() -> pd.DataFrame:
    dtypes = {"period": object, "rated_at": "datetime64[ns]", "rate_id": "Int64", "invoice_id": "Int64",
              **dict.fromkeys(_TEXT, object)}
    return pd.DataFrame({c: pd.Series(dtype=dtypes.get(c, np.int64)) for c in COLUMNS})
