"""Rating a period in the database: read its calls, rate them, replace the unbilled ratings.

Calls already billed by a production invoice keep their rating; the allowance seconds they used
count as already consumed when the others are rated again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd
from sqlalchemy import Engine, delete

from workbench.config import Settings
from workbench.db import ratings as rating_store
from workbench.db import schema as s
from workbench.db.bulk import insert_frame
from workbench.db.partitions import lock_partitions
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


def store_period(connection, period: Period, rated: pd.DataFrame, errors: pd.DataFrame, now: datetime) -> None:
    """Replace the unbilled ratings and the rating errors of ``period`` by ``rated`` and
    ``errors`` (in the caller's transaction): the ratings as blocks
    (:func:`workbench.db.ratings.replace`; :class:`~workbench.errors.RefusedError` for a call
    rated in another period)."""
    connection.execute(delete(s.RatingError).where(s.RatingError.period == str(period)))
    rating_store.replace(connection, str(period), rated, now)
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
        lock_partitions(connection, "rated_calls")  # ratings, productions and credit notes one at a time
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


def rated_calls(engine: Engine, period: Period | str) -> pd.DataFrame:
    """The stored ratings of a period, billed or not (:data:`workbench.db.ratings.COLUMNS`), by call."""
    with engine.connect() as connection:
        return rating_store.of_period(connection, str(Period.parse(period)))
