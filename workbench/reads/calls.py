"""Calls as stored: what rating reads (lines, rate plans, allowances, the period's calls), and
the frames analysts look at (rejected records, calls not rated, traffic by zone and band, a
customer's consumption by month).

Amounts are exact: integer 1/10,000 EUR (``units``) or ``Decimal`` euros (``_eur`` columns).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy import Connection, func, select

from workbench.db import calls as call_store
from workbench.db import ratings as rating_store
from workbench.db import schema as s
from workbench.db.frames import read_columns, read_frame, read_plain
from workbench.errors import Problem, problems_frame
from workbench.money import minutes, to_decimal
from workbench.period import Period
from workbench.rating import RatePlan
from workbench.rating.classify import epoch_seconds, local_seconds


def lines(connection: Connection) -> pd.DataFrame:
    """All lines with their customer and rate plan: ``number`` (E.164 text), ``customer_id`` and
    ``rate_plan_id`` (int64), ``valid_from`` and ``valid_to`` (local dates as datetime64[s] at
    midnight; ``valid_to`` NaT for open-ended), in the order of the lines' ids."""
    stmt = select(
        s.Line.number, s.Line.customer_id, s.Customer.rate_plan_id, s.Line.valid_from,
        s.Line.valid_to,
    ).join(s.Customer, s.Customer.id == s.Line.customer_id).order_by(s.Line.id)
    return read_plain(connection, stmt)


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
                   s.RateInterval.price_per_minute_micros, s.RateInterval.increment_s)
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


#: what a billed call's rating gives the rating of its period (the allowance it consumed)
_BILLED_RATING = (s.RatedCall.customer_id, s.RatedCall.zone_code, s.RatedCall.allowance_s)


def ids_among(connection: Connection, column, ids: np.ndarray, *where) -> np.ndarray:
    """Of the call ids ``ids``, those in ``column`` (a call id column: ``RatedCall.cdr_id``,
    ``RatingError.cdr_id``) of the rows meeting ``where``: read within the range of ``ids``
    (by the column's index; about 8 bytes an id, other calls of the range included), told apart
    in memory."""
    if not len(ids):
        return np.zeros(0, dtype=np.int64)
    found = read_columns(connection, select(column.label("id")).where(
        column.between(int(ids.min()), int(ids.max())), *where), integers=("id",))["id"].to_numpy()
    return found[np.isin(found, ids)]


def rated_ids(connection: Connection, ids: np.ndarray) -> np.ndarray:
    """Of the call ids ``ids``, those with a rating, billed or not (int64)."""
    return np.union1d(ids_among(connection, s.RatedCall.cdr_id, ids), rating_store.unbilled_ids(connection, ids))


def _billed_ratings(connection: Connection, billed_ids: np.ndarray) -> pd.DataFrame:
    """The ratings of the billed calls ``billed_ids``: customer_id, zone_code, allowance_s."""
    if not len(billed_ids):  # none: the same columns, empty
        return read_frame(connection, select(*_BILLED_RATING).where(s.RatedCall.cdr_id.is_(None)))
    ratings = read_frame(connection, select(s.RatedCall.cdr_id, *_BILLED_RATING).where(
        s.RatedCall.cdr_id.between(int(billed_ids.min()), int(billed_ids.max())), s.RatedCall.invoice_id.is_not(None)))
    keep = np.isin(ratings["cdr_id"].to_numpy(dtype=np.int64), billed_ids)
    return ratings[keep].drop(columns=["cdr_id"]).reset_index(drop=True)


def period_calls(connection: Connection, period: Period, timezone: str, billed: bool | None) -> pd.DataFrame:
    """The stored calls of ``period``: those not yet billed (``billed=False``, to rate), every
    one (``billed=None``, as a what-if rates them: ``cdr_id``, ``start_utc`` datetime64[s] UTC,
    ``calling``, ``called``, ``duration_s`` int64), or the ratings of those already billed
    (``billed=True``: customer_id, zone_code, allowance_s)."""
    if billed is None:
        return _calls_of(connection, period, timezone)
    unbilled, billed_ratings = unbilled_and_billed(connection, period, timezone)
    return billed_ratings if billed else unbilled


def _calls_of(connection: Connection, period: Period, timezone: str) -> pd.DataFrame:
    """Every stored call of ``period``: cdr_id, start_utc, calling, called, duration_s."""
    return call_store.read(connection, *period.utc_bounds(timezone),
                           ["id", "start_utc", "calling", "called", "duration_s"]).rename(columns={"id": "cdr_id"})


def unbilled_and_billed(connection: Connection, period: Period, timezone: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What :func:`period_calls` gives with ``billed=False`` and with ``billed=True``, read so
    that a month none of whose calls is billed (a month rated before its production run) costs
    one read of its calls: the period's calls once (:func:`workbench.db.calls.read`), then the
    ids of the billed ratings within the range of their ids (by the key of ``rated_calls``),
    told apart in memory; only when some of the period's calls are billed, their ratings."""
    every = _calls_of(connection, period, timezone)
    ids = every["cdr_id"].to_numpy()
    billed_ids = ids_among(connection, s.RatedCall.cdr_id, ids, s.RatedCall.invoice_id.is_not(None))
    return every[~np.isin(ids, billed_ids)].reset_index(drop=True), _billed_ratings(connection, billed_ids)


def period_ratings(connection: Connection, period: Period) -> pd.DataFrame:
    """The stored ratings of the calls of ``period``, billed or not: cdr_id, customer_id,
    zone_code, band, price_units (1/10,000 EUR), invoiced (bool: on an invoice of a production
    run); by call."""
    frame = rating_store.of_period(connection, str(period), ["cdr_id", "customer_id", "zone_code", "band",
                                                              "price_units", "invoice_id"])
    frame["invoiced"] = frame.pop("invoice_id").notna().astype(bool)
    return frame


def unrated_calls(connection: Connection, period: Period, timezone: str) -> pd.DataFrame:
    """The calls stored up to the end of ``period`` that were never rated: no rating and no rating
    error (loaded after the last rating of their period, or a rating that failed), by period:
    ``period`` (``YYYY-MM``, local to ``timezone``), ``calls``. Empty when every call is rated.

    A period whose calls are as many as its ratings and rating errors is taken as rated whole
    (counted from the blocks' counts and the stored rows, without reading a call); the others'
    calls are read and told apart by id. (A period rated under another time zone setting may
    hold ratings of calls now of the next period: its counts then differ, and it is read.)"""
    first = call_store.first_start(connection)
    if first is None:
        return pd.DataFrame({"period": pd.Series(dtype=object), "calls": pd.Series(dtype="int64")})
    month = pd.Timestamp(first).tz_localize("UTC").tz_convert(timezone)
    months = pd.period_range(f"{month.year}-{month.month:02d}", str(period), freq="M")
    rows = []
    for month in months:
        of = Period.parse(month.strftime("%Y-%m"))
        lo, hi = of.utc_bounds(timezone)
        errors = connection.execute(select(func.count()).select_from(s.RatingError).where(
            s.RatingError.period == str(of))).scalar_one()
        if call_store.count(connection, lo, hi) == rating_store.count(connection, str(of)) + errors:
            continue
        ids = call_store.read(connection, lo, hi, ["id"])["id"].to_numpy()
        done = np.union1d(rated_ids(connection, ids), ids_among(connection, s.RatingError.cdr_id, ids))
        never = int((~np.isin(ids, done)).sum())
        if never:
            rows.append((str(of), never))
    return pd.DataFrame({"period": pd.Series([p for p, _ in rows], dtype=object),
                         "calls": pd.Series([n for _, n in rows], dtype="int64")})


def rejects_frame(engine, reason: str | None = None, files: list[str] | None = None) -> pd.DataFrame:
    """Rejected CDR records as data problems (:data:`~workbench.errors.PROBLEM_COLUMNS`: ``source``
    the file, ``key`` the line number, ``code`` the reject reason, ``message``) with the record's
    ``raw`` text and ``status`` (``final``; ``pending`` a reference fix; cured into a call,
    ``accepted``, or found a ``duplicate``), optionally of one reason and some files; by file and line."""
    stmt = select(s.CdrFile.name.label("source"), s.CdrReject.line_no.label("key"), s.CdrReject.reason.label("code"),
                  s.CdrReject.message, s.CdrReject.raw, s.CdrReject.status
                  ).join(s.CdrFile, s.CdrFile.id == s.CdrReject.file_id)
    if reason:
        stmt = stmt.where(s.CdrReject.reason == reason)
    if files:
        stmt = stmt.where(s.CdrFile.name.in_(files))
    with engine.connect() as connection:
        return read_frame(connection, stmt.order_by(s.CdrFile.name, s.CdrReject.line_no))


def reject_counts(engine) -> pd.DataFrame:
    """Rejected CDR records counted by file and reason: ``file``, ``reason``, ``records``
    (int64), by file then reason."""
    with engine.connect() as connection:
        frame = read_frame(connection, select(
            s.CdrFile.name.label("file"), s.CdrReject.reason, func.count().label("records"),
        ).join(s.CdrFile, s.CdrFile.id == s.CdrReject.file_id).group_by(s.CdrFile.name, s.CdrReject.reason)
            .order_by(s.CdrFile.name, s.CdrReject.reason))
    frame["records"] = frame["records"].astype("int64")
    return frame


def pending_rejects(engine, timezone: str, period: str | None = None) -> pd.DataFrame:
    """The CDR records rejected for a reason a reference fix can cure and not cured yet
    (``status`` pending: see :func:`workbench.integration.reprocess_rejects`), counted by the
    period of their call's local date in ``timezone`` and reason: ``period`` (``YYYY-MM``),
    ``reason``, ``rejects`` (int64); one period's only when ``period`` is given."""
    with engine.connect() as connection:
        frame = read_frame(connection, select(s.CdrReject.start_utc, s.CdrReject.reason)
                           .where(s.CdrReject.status == "pending"))
    starts = pd.to_datetime(frame["start_utc"]).astype("datetime64[s]")
    local = pd.to_datetime(local_seconds(epoch_seconds(starts), timezone), unit="s") if len(frame) else starts
    frame["period"] = pd.Series(local, index=frame.index).dt.strftime("%Y-%m")
    if period is not None:
        frame = frame[frame["period"] == str(Period.parse(period))]
    counts = frame.groupby(["period", "reason"], as_index=False).size().rename(columns={"size": "rejects"})
    counts["rejects"] = counts["rejects"].astype("int64")
    return counts[["period", "reason", "rejects"]].sort_values(["period", "reason"], ignore_index=True)


def traffic_frame(engine, period: str) -> pd.DataFrame:
    """Rated calls of a period by zone and band: calls, minutes (``Decimal``, 2 decimals,
    :func:`workbench.money.minutes`), revenue (EUR)."""
    with engine.connect() as connection:
        rated = rating_store.of_period(connection, str(Period.parse(period)),
                                       ["zone_code", "band", "duration_s", "price_units"])
    frame = rated.groupby(["zone_code", "band"], as_index=False, sort=True).agg(
        calls=("duration_s", "size"), seconds=("duration_s", "sum"), units=("price_units", "sum"))
    frame["minutes"] = frame["seconds"].astype("int64").map(minutes)
    frame["revenue_eur"] = frame["units"].astype("int64").map(to_decimal)  # exact, in 1/10,000
    return frame[["zone_code", "band", "calls", "minutes", "revenue_eur"]]


def rating_problems(engine, period: str) -> pd.DataFrame:
    """The calls of a period that could not be rated, as data problems: ``source``
    ``rating <period>``, ``key`` the call (``cdr <id>``), ``code`` the cause, ``message``."""
    period = str(Period.parse(period))
    with engine.connect() as connection:
        frame = read_frame(connection, select(s.RatingError.cdr_id, s.RatingError.reason, s.RatingError.message)
                           .where(s.RatingError.period == period).order_by(s.RatingError.cdr_id))
    return problems_frame([Problem(f"rating {period}", f"cdr {int(c)}", r, m)
                           for c, r, m in zip(frame["cdr_id"], frame["reason"], frame["message"], strict=True)])


def unrated_frame(engine, period: str) -> pd.DataFrame:
    """The calls of a period not rated, by cause: reason, calls, an example message."""
    with engine.connect() as connection:
        return read_frame(connection, select(
            s.RatingError.reason, func.count().label("calls"), func.min(s.RatingError.message).label("example"),
        ).where(s.RatingError.period == str(Period.parse(period))).group_by(s.RatingError.reason))


def monthly_consumption(engine, account_number: str, months: int = 6) -> pd.DataFrame:
    """A customer's rated calls by period (latest ``months``), billed or not: calls, minutes
    (``Decimal``, 2 decimals, :func:`workbench.money.minutes`), amount (EUR)."""
    with engine.connect() as connection:
        customer = connection.execute(select(s.Customer.id).where(s.Customer.account_number == account_number)).scalar()
        billed = read_frame(connection, select(
            s.RatedCall.period, func.count().label("calls"), func.sum(s.RatedCall.duration_s).label("seconds"),
            func.sum(s.RatedCall.price_units).label("units"),
        ).where(s.RatedCall.customer_id == customer).group_by(s.RatedCall.period))
        unbilled = rating_store.unbilled(connection, customers=[] if customer is None else [customer])
    unbilled = unbilled.groupby("period", as_index=False).agg(
        calls=("cdr_id", "size"), seconds=("duration_s", "sum"), units=("price_units", "sum"))
    frame = pd.concat([billed.astype({"calls": "int64", "seconds": "int64", "units": "int64"}), unbilled],
                      ignore_index=True).groupby("period", as_index=False).sum()
    frame = frame.sort_values("period").tail(months)
    frame["minutes"] = frame["seconds"].astype("int64").map(minutes)
    frame["amount_eur"] = frame["units"].astype("int64").map(to_decimal)
    return frame[["period", "calls", "minutes", "amount_eur"]].reset_index(drop=True)
