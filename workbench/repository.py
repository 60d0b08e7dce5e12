"""Frames in and out of the database: what the pure layers need, read with SQL."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import Connection, select, text

from workbench.db import schema as s
from workbench.period import Period
from workbench.rating import RatePlan


def read_frame(connection: Connection, statement, **params) -> pd.DataFrame:
    """A frame from a SQLAlchemy statement (or SQL text) on ``connection``."""
    if isinstance(statement, str):
        statement = text(statement)
    result = connection.execute(statement, params)
    return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


def lines(connection: Connection) -> pd.DataFrame:
    """All lines with their customer and rate plan."""
    stmt = select(
        s.Line.number, s.Line.customer_id, s.Customer.rate_plan_id, s.Line.valid_from,
        s.Line.valid_to,
    ).join(s.Customer, s.Customer.id == s.Line.customer_id)
    return read_frame(connection, stmt)


def rate_plans(connection: Connection) -> dict[int, RatePlan]:
    """Every rate plan by id."""
    plans = {}
    for plan in connection.execute(select(s.RatePlan.__table__)).mappings():
        pid = plan["id"]
        destinations = read_frame(
            connection,
            select(s.Destination.prefix, s.Destination.name, s.Destination.zone_code).where(
                s.Destination.plan_id == pid
            ),
        )
        bands = read_frame(
            connection,
            select(s.TimeBand.band, s.TimeBand.weekdays, s.TimeBand.start_minute,
                   s.TimeBand.end_minute).where(s.TimeBand.plan_id == pid),
        )
        rates = read_frame(
            connection,
            select(s.Rate.id.label("rate_id"), s.Rate.zone_code, s.Rate.band,
                   s.Rate.connect_fee_units, s.Rate.charge_unanswered).where(s.Rate.plan_id == pid),
        )
        intervals = read_frame(
            connection,
            select(s.RateInterval.rate_id, s.RateInterval.from_second,
                   s.RateInterval.price_per_minute_units, s.RateInterval.increment_s)
            .join(s.Rate, s.Rate.id == s.RateInterval.rate_id)
            .where(s.Rate.plan_id == pid),
        )
        plans[pid] = RatePlan(
            code=plan["code"], destinations=destinations, time_bands=bands, rates=rates,
            intervals=intervals, timezone=plan["timezone"],
            holiday_country=plan["holiday_country"], default_band=plan["default_band"],
        )
    return plans


def subscriptions_with_allowances(connection: Connection) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Subscriptions (customer_id, product_id, quantity, start_date, end_date) and product
    allowances (product_id, zone_code, seconds)."""
    subs = read_frame(
        connection,
        select(s.Subscription.customer_id, s.Subscription.product_id, s.Subscription.quantity,
               s.Subscription.start_date, s.Subscription.end_date),
    )
    allowances = read_frame(
        connection, select(s.Allowance.product_id, s.Allowance.zone_code, s.Allowance.seconds)
    )
    return subs, allowances


def period_calls(connection: Connection, period: Period, timezone: str, billed: bool) -> pd.DataFrame:
    """The stored calls of ``period``: those not yet billed (``billed=False``, to rate), or the
    ratings of those already billed (``billed=True``)."""
    lo, hi = period.utc_bounds(timezone)
    if billed:
        stmt = select(s.RatedCall.customer_id, s.RatedCall.zone_code, s.RatedCall.allowance_s).join(
            s.Cdr, s.Cdr.id == s.RatedCall.cdr_id
        ).where(s.Cdr.start_utc >= lo, s.Cdr.start_utc < hi, s.RatedCall.invoice_id.is_not(None))
        return read_frame(connection, stmt)
    billed_ids = select(s.RatedCall.cdr_id).where(s.RatedCall.invoice_id.is_not(None))
    stmt = select(
        s.Cdr.id.label("cdr_id"), s.Cdr.start_utc, s.Cdr.calling, s.Cdr.called, s.Cdr.duration_s
    ).where(s.Cdr.start_utc >= lo, s.Cdr.start_utc < hi, s.Cdr.id.not_in(billed_ids))
    frame = read_frame(connection, stmt)
    frame["start_utc"] = pd.to_datetime(frame["start_utc"]).astype("datetime64[s]")
    return frame
