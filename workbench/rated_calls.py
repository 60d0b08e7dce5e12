"""Rating a period in the database: read its calls, rate them, replace the unbilled ratings.

Calls already billed by a production invoice keep their rating; the allowance seconds they used
count as already consumed when the others are rated again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd
from sqlalchemy import Engine, delete, select

from workbench.config import Settings
from workbench.db import schema as s
from workbench.db.bulk import insert_frame
from workbench.db.frames import read_frame
from workbench.period import Period
from workbench.rating import RatingResult, allowance_buckets, rate
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


#: what rates the calls: :func:`workbench.rating.rate` or anything with its signature and result
#: (the same function run elsewhere, e.g. on the workers of a cluster, :mod:`workbench.jobs.cluster`)
Rater = Callable[..., RatingResult]


def rate_period(engine: Engine, period: Period | str, settings: Settings, now: datetime,
                rater: Rater = rate, where: str = "on this machine") -> RatingSummary:
    """Rate (or re-rate) every unbilled call of ``period`` in one transaction: the calls are read,
    rated by ``rater`` (default :func:`workbench.rating.rate`, here; ``where`` says where it
    rates, for the summary) and their ratings stored, all in one transaction: whatever ``rater``
    raises, nothing is stored and the ratings already stored stay."""
    period = Period.parse(period)
    tz = settings.timezone
    with engine.begin() as connection:
        calls = stored_calls.period_calls(connection, period, tz, billed=False)
        billed = stored_calls.period_calls(connection, period, tz, billed=True)
        consumed = (
            billed.groupby(["customer_id", "zone_code"], as_index=False)["allowance_s"].sum()
            .rename(columns={"allowance_s": "seconds"})
        )
        subs, allowances = stored_calls.subscriptions_with_allowances(connection)
        buckets = allowance_buckets(subs, allowances, period, tz)
        result = rater(
            calls, stored_calls.lines(connection), stored_calls.rate_plans(connection), period,
            buckets=buckets, consumed=consumed, timezone=tz,
        )
        connection.execute(
            delete(s.RatedCall).where(s.RatedCall.period == str(period), s.RatedCall.invoice_id.is_(None))
        )
        connection.execute(delete(s.RatingError).where(s.RatingError.period == str(period)))
        store_ratings(connection, result.rated, now)
        insert_frame(connection, "rating_errors", result.errors)
    rated = result.rated
    by_zone = (
        rated.groupby(["zone_code", "band"], observed=True)
        .agg(calls=("cdr_id", "size"), seconds=("duration_s", "sum"), amount_units=("price_units", "sum"))
        .reset_index()
    )
    return RatingSummary(
        str(period), len(calls), len(rated), len(result.errors), len(billed),
        int(rated["price_units"].sum()), by_zone,
        {str(k): int(v) for k, v in result.errors["reason"].value_counts().items()}, where,
    )


def store_ratings(connection, rated: pd.DataFrame, now: datetime) -> int:
    """Bulk-insert rated calls (the frame of :func:`workbench.rating.rate`)."""
    frame = rated.copy()
    frame["rated_at"] = pd.Timestamp(now)
    frame["rate_id"] = frame["rate_id"].astype("Int64")
    return insert_frame(connection, "rated_calls", frame)


def rated_calls(engine: Engine, period: Period | str) -> pd.DataFrame:
    """The stored ratings of a period."""
    with engine.connect() as connection:
        return read_frame(
            connection, select(s.RatedCall.__table__).where(s.RatedCall.period == str(Period.parse(period)))
        )
