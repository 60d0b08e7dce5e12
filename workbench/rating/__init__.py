"""Rating: classification (account, destination, zone, band, allowance), then pricing.

:func:`rate` is a pure function of frames and plans: no database, no clock, no per-call Python
loop. Calls that cannot be rated come back as rows of ``errors`` with a reason and a message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from workbench.numbering import to_digits
from workbench.period import Period
from workbench.rating.allowances import allowance_buckets, consume
from workbench.rating.classify import epoch_seconds, resolve_lines, time_bands
from workbench.rating.plan import CompiledPlan, PlanError, RatePlan, compile_plan, match_destinations
from workbench.rating.pricing import call_prices

__all__ = [
    "RULES",
    "CompiledPlan",
    "PlanError",
    "RatePlan",
    "RatingResult",
    "allowance_buckets",
    "compile_plan",
    "rate",
]

RATED_COLUMNS = [
    "cdr_id", "period", "customer_id", "destination_prefix", "zone_code", "band", "duration_s",
    "allowance_s", "price_units", "rate_id", "rule",
]
ERROR_COLUMNS = ["cdr_id", "period", "reason", "message"]
#: how a call was priced
RULES = ["rate", "allowance", "allowance_overflow", "unanswered_free", "unanswered_fee"]
#: why a call could not be rated
REASONS = ["outside_period", "no_line", "no_destination", "no_rate"]


@dataclass(frozen=True)
class RatingResult:
    rated: pd.DataFrame
    errors: pd.DataFrame


def _errors(calls: pd.DataFrame, rows: np.ndarray, period: Period, reason: str, message: pd.Series):
    return pd.DataFrame(
        {
            "cdr_id": calls["cdr_id"].to_numpy()[rows],
            "period": str(period),
            "reason": reason,
            "message": message.to_numpy(dtype=object),
        }
    )


def _rate_plan_calls(
    compiled: CompiledPlan,
    calls: pd.DataFrame,
    rows: np.ndarray,
    utc_s: np.ndarray,
    customer: np.ndarray,
    buckets: pd.DataFrame,
    consumed: pd.DataFrame | None,
    period: Period,
) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    errors = []
    called = calls["called"].iloc[rows] if len(rows) != len(calls) else calls["called"]
    dest = match_destinations(compiled, to_digits(called))
    no_dest = dest < 0
    if no_dest.any():
        errors.append(
            _errors(calls, rows[no_dest], period, "no_destination",
                    "called number " + called[no_dest].astype(str)
                    + f" matches no destination of plan {compiled.plan.code}")
        )
    zone = compiled.dest_zone[np.clip(dest, 0, None)]
    band = time_bands(compiled, utc_s[rows])
    rate_row = compiled.rate_table[zone, band]
    no_rate = ~no_dest & (rate_row < 0)
    if no_rate.any():
        names = pd.Series(np.array(compiled.zones, dtype=object)[zone[no_rate]])
        band_names = pd.Series(np.array(compiled.bands, dtype=object)[band[no_rate]])
        errors.append(
            _errors(calls, rows[no_rate], period, "no_rate",
                    f"plan {compiled.plan.code} has no rate for zone " + names + " in band "
                    + band_names)
        )
    ok = np.flatnonzero(~no_dest & ~no_rate)
    rows, dest, zone, band, rate_row = rows[ok], dest[ok], zone[ok], band[ok], rate_row[ok]
    customer = customer[ok]
    seconds = calls["duration_s"].to_numpy(np.int64)[rows]
    start = utc_s[rows]

    # allowances: one bucket per (customer, zone)
    n_zones = len(compiled.zones)
    zone_index = pd.Index(compiled.zones)
    covered = np.zeros(len(rows), dtype=np.int64)
    if len(buckets):
        bz = zone_index.get_indexer(buckets["zone_code"].astype(str))
        known = bz >= 0
        b = buckets[known]
        keys = pd.Index(b["customer_id"].to_numpy(np.int64) * n_zones + bz[known])
        bucket = keys.get_indexer(customer.astype(np.int64) * n_zones + zone)
        from_s = b["from_s"].to_numpy(np.int64)
        to_s = b["to_s"].to_numpy(np.int64)
        pos = np.clip(bucket, 0, None)
        in_window = (bucket >= 0) & (start >= from_s[pos]) & (start < to_s[pos])
        bucket = np.where(in_window, bucket, -1)
        used = np.zeros(len(b), dtype=np.int64)
        if consumed is not None and len(consumed):
            cz = zone_index.get_indexer(consumed["zone_code"].astype(str))
            ckeys = consumed["customer_id"].to_numpy(np.int64) * n_zones + cz
            at = keys.get_indexer(ckeys)
            np.add.at(used, at[(at >= 0) & (cz >= 0)],
                      consumed["seconds"].to_numpy(np.int64)[(at >= 0) & (cz >= 0)])
        covered = consume(bucket, start, calls["cdr_id"].to_numpy(np.int64)[rows], seconds,
                          b["cap_s"].to_numpy(np.int64), used)

    overflow = seconds - covered
    in_allowance = covered > 0
    price = call_prices(compiled, rate_row, np.where(in_allowance, overflow, seconds), ~in_allowance)
    price = np.where(in_allowance & (overflow == 0), 0, price)
    rule = np.select(
        [seconds == 0, in_allowance & (overflow == 0), in_allowance],
        [np.where(compiled.charge_unanswered[rate_row], 4, 3), 1, 2],
        default=0,
    )
    rated = pd.DataFrame(
        {
            "cdr_id": calls["cdr_id"].to_numpy(np.int64)[rows],
            "period": str(period),
            "customer_id": customer.astype(np.int64),
            "destination_prefix": pd.Categorical.from_codes(
                dest, categories=pd.Index(compiled.dest_prefix)
            ) if len(compiled.dest_prefix) else pd.Categorical([]),
            "zone_code": pd.Categorical.from_codes(zone, categories=compiled.zones),
            "band": pd.Categorical.from_codes(band, categories=compiled.bands),
            "duration_s": seconds,
            "allowance_s": covered,
            "price_units": price.astype(np.int64),
            "rate_id": compiled.rate_ids[rate_row],
            "rule": pd.Categorical.from_codes(rule, categories=RULES),
        }
    )
    return rated, errors


def rate(
    calls: pd.DataFrame,
    lines: pd.DataFrame,
    plans: Mapping[int, RatePlan | CompiledPlan],
    period: Period | str,
    buckets: pd.DataFrame | None = None,
    consumed: pd.DataFrame | None = None,
    timezone: str = "Europe/Paris",
) -> RatingResult:
    """Rate the calls of ``period``.

    * ``calls``: cdr_id, start_utc (naive UTC datetimes), calling, called (E.164), duration_s;
    * ``lines``: number, customer_id, rate_plan_id, valid_from, valid_to (local dates);
    * ``plans``: rate plans by id (compiled or not);
    * ``buckets``: allowances of the period (:func:`allowance_buckets`);
    * ``consumed``: allowance seconds already used in the period by calls that keep their
      rating (customer_id, zone_code, seconds);
    * ``timezone``: the operator's, for the month's bounds and the lines' dates.

    Returns rated calls (``RATED_COLUMNS``) and errors (``ERROR_COLUMNS``).
    """
    period = Period.parse(period)
    compiled = {pid: p if isinstance(p, CompiledPlan) else compile_plan(p) for pid, p in plans.items()}
    calls = calls.reset_index(drop=True)
    utc_s = epoch_seconds(calls["start_utc"])
    errors: list[pd.DataFrame] = []
    lo, hi = (int(pd.Timestamp(b).value // 10**9) for b in period.utc_bounds(timezone))
    inside = (utc_s >= lo) & (utc_s < hi)
    if not inside.all():
        out = np.flatnonzero(~inside)
        errors.append(_errors(calls, out, period, "outside_period",
                              pd.Series([f"call is not in period {period}"] * len(out))))
    line_row = resolve_lines(calls["calling"], utc_s, lines, timezone)
    no_line = inside & (line_row < 0)
    if no_line.any():
        rows = np.flatnonzero(no_line)
        when = pd.Series(calls["start_utc"].to_numpy()[rows]).astype(str)
        errors.append(
            _errors(calls, rows, period, "no_line",
                    "calling number " + calls["calling"].iloc[rows].astype(str).reset_index(drop=True)
                    + " is no customer's line at " + when + " UTC")
        )
    usable = inside & (line_row >= 0)
    pos = np.clip(line_row, 0, None)
    customer = lines["customer_id"].to_numpy(np.int64)[pos]
    plan_of = lines["rate_plan_id"].to_numpy(np.int64)[pos]
    if buckets is None:
        buckets = pd.DataFrame(columns=["customer_id", "zone_code", "cap_s", "from_s", "to_s"])
    rated = []
    for plan_id in np.unique(plan_of[usable]):
        rows = np.flatnonzero(usable & (plan_of == plan_id))
        if int(plan_id) not in compiled:
            errors.append(_errors(calls, rows, period, "no_rate",
                                  pd.Series([f"rate plan {plan_id} is not loaded"] * len(rows))))
            continue
        frame, errs = _rate_plan_calls(
            compiled[int(plan_id)], calls, rows, utc_s, customer[rows], buckets, consumed, period
        )
        rated.append(frame)
        errors.extend(errs)
    rated_frame = pd.concat(rated, ignore_index=True) if rated else pd.DataFrame(columns=RATED_COLUMNS)
    error_frame = (
        pd.concat(errors, ignore_index=True) if errors else pd.DataFrame(columns=ERROR_COLUMNS)
    )
    return RatingResult(rated_frame[RATED_COLUMNS], error_frame[ERROR_COLUMNS])


