"""Rating a period in the database: read its calls, rate them, replace the unbilled ratings.

Calls already billed by a production invoice keep their rating; the allowance seconds they used
count as already consumed when the others are rated again.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd
from sqlalchemy import Engine, delete, func, select

from workbench.config import Settings
from workbench.db import schema as s
from workbench.db.bulk import index_dropped, insert_frame
from workbench.db.frames import read_frame
from workbench.db.partitions import lock_partitions, replace_partition
from workbench.period import Period
from workbench.rating import Rater, allowance_buckets, rate
from workbench.reads import calls as stored_calls


@dataclass(frozen=True)
class RatingSummary:
    period: str
    calls: int
    rated: int
    errors: int
    kept_billed: int
    amount_units: int
    by_zone: pd.DataFrame = field(repr=False)
    errors_by_reason: dict[str, int] = field(default_factory=dict)
    #: where the calls were rated: "on this machine", or "on a Dask cluster of N workers at ADDRESS"
    where: str = "on this machine"


@dataclass(frozen=True)
class PeriodInputs:
    """What rating a period reads (:func:`read_period`): the unbilled ``calls`` (``cdr_id``,
    ``start_utc`` datetime64[s] UTC, ``calling``/``called`` int64 E.164 digits, ``duration_s``),
    the allowance seconds ``consumed`` by calls already billed (``customer_id``, ``zone_code``,
    ``seconds``), the ``billed`` count, the ``lines``, the rate ``plans`` and the allowance
    ``buckets``."""

    calls: pd.DataFrame
    consumed: pd.DataFrame
    billed: int
    lines: pd.DataFrame
    plans: dict
    buckets: pd.DataFrame


def read_period(connection, period: Period, timezone: str) -> PeriodInputs:
    """Read what rating ``period`` needs, on ``connection`` (in the caller's transaction)."""
    calls, billed = stored_calls.unbilled_and_billed(connection, period, timezone)
    consumed = (
        billed.groupby(["customer_id", "zone_code"], as_index=False)["allowance_s"].sum()
        .rename(columns={"allowance_s": "seconds"})
    )
    subs, allowances = stored_calls.subscriptions_with_allowances(connection)
    return PeriodInputs(calls, consumed, len(billed), stored_calls.lines(connection),
                        stored_calls.rate_plans(connection), allowance_buckets(subs, allowances, period, timezone))


def rate_inputs(inputs: PeriodInputs, period: Period, timezone: str, rater: Rater = rate):
    """Rate the calls read with ``rater`` (default :func:`workbench.rating.rate`, pure): the
    rating result (``rated``, ``errors`` frames)."""
    return rater(inputs.calls, inputs.lines, inputs.plans, period, buckets=inputs.buckets,
                consumed=inputs.consumed, timezone=timezone)


#: the index of the unbilled ratings (:class:`~workbench.db.schema.RatedCall`), partial
UNBILLED_INDEX = "ix_rated_calls_unbilled"


def store_period(connection, period: Period, rated: pd.DataFrame, errors: pd.DataFrame, now: datetime) -> None:
    """Replace the unbilled ratings and the rating errors of ``period`` by ``rated`` and
    ``errors`` (in the caller's transaction)."""
    connection.execute(delete(s.RatingError).where(s.RatingError.period == str(period)))
    if connection.dialect.name == "postgresql":  # a new partition of the period, indexed once
        replace_partition(connection, "rated_calls", str(period), _ratings_frame(rated),
                          keep="invoice_id IS NOT NULL", constants={"rated_at": now})
    else:
        # the index of the unbilled ratings is built again once when the month's ratings are at
        # least as many as the other unbilled ones it holds (it holds no billed rating: in the
        # monthly cycle, the months not yet billed), instead of kept up row by row
        others = connection.execute(select(func.count()).select_from(s.RatedCall).where(
            s.RatedCall.invoice_id.is_(None), s.RatedCall.period != str(period))).scalar_one()
        with index_dropped(connection, UNBILLED_INDEX) if len(rated) >= others else nullcontext():
            connection.execute(
                delete(s.RatedCall).where(s.RatedCall.period == str(period), s.RatedCall.invoice_id.is_(None))
            )
            store_ratings(connection, rated, now)
    insert_frame(connection, "rating_errors", errors)


def rate_period(engine: Engine, period: Period | str, settings: Settings, now: datetime,
                progress: Callable[[int], None] | None = None, rater: Rater = rate,
                where: str = "on this machine") -> RatingSummary:
    """Rate (or re-rate) every unbilled call of ``period`` in one transaction: read
    (:func:`read_period`), rate (:func:`rate_inputs`, pure), store (:func:`store_period`). An
    interruption (Ctrl-C) or any other exception rolls it back: the period's ratings stay as they
    were. On PostgreSQL, ratings of two months at once run one after the other (the second
    waits). ``progress`` is called with the number of calls once they are rated and stored,
    before the commit.
    ``rater`` rates the calls (default :func:`workbench.rating.rate`, here; ``where`` says where it
    rates, for the summary): whatever it raises, nothing is stored."""
    period = Period.parse(period)
    tz = settings.timezone
    with engine.begin() as connection:
        lock_partitions(connection, "rated_calls")  # one rating at a time swaps a month in
        inputs = read_period(connection, period, tz)
        result = rate_inputs(inputs, period, tz, rater)
        store_period(connection, period, result.rated, result.errors, now)
        if progress is not None:  # before the commit: an interruption there still rolls back
            progress(len(inputs.calls))
    calls = inputs.calls
    rated = result.rated
    by_zone = (
        rated.groupby(["zone_code", "band"], observed=True)
        .agg(calls=("cdr_id", "size"), seconds=("duration_s", "sum"), amount_units=("price_units", "sum"))
        .reset_index()
    )
    return RatingSummary(
        str(period), len(calls), len(rated), len(result.errors), inputs.billed,
        int(rated["price_units"].sum()), by_zone,
        {str(k): int(v) for k, v in result.errors["reason"].value_counts().items()}, where,
    )


def _ratings_frame(rated: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``rated_calls`` for the frame of :func:`workbench.rating.rate` (without
    ``rated_at``), in key order."""
    frame = rated.sort_values("cdr_id", kind="stable")  # the key, written in order
    frame["rate_id"] = frame["rate_id"].astype("Int64")
    return frame


def store_ratings(connection, rated: pd.DataFrame, now: datetime) -> int:
    """Bulk-insert rated calls (the frame of :func:`workbench.rating.rate`), rated at ``now``."""
    return insert_frame(connection, "rated_calls", _ratings_frame(rated).assign(rated_at=pd.Timestamp(now)))


def rated_calls(engine: Engine, period: Period | str) -> pd.DataFrame:
    """The stored ratings of a period."""
    with engine.connect() as connection:
        return read_frame(
            connection, select(s.RatedCall.__table__).where(s.RatedCall.period == str(Period.parse(period)))
        )
