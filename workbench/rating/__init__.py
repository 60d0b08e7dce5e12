"""Rating: classification (account, destination, zone, band, allowance), then pricing.

:func:`rate` is a pure function of frames and plans: no database, no clock, no per-call Python
loop. Calls that cannot be rated come back as rows of ``errors`` with a reason and a message.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from workbench.numbering import DigitsIndex, from_digits, to_digits
from workbench.period import Period
from workbench.rating.allowances import allowance_buckets, consume
from workbench.rating.classify import LineIndex, epoch_seconds, time_bands
from workbench.rating.plan import CompiledPlan, PlanError, RatePlan, compile_plan, match_destinations
from workbench.rating.pricing import price_calls

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


_CHUNK = 1 << 18  # calls per slice: small enough to stay in the CPU caches


def _map_chunks(func, n: int, *arrays):
    """``func`` on aligned slices of ``arrays`` (NumPy or Arrow), in threads when there are many
    calls: NumPy and Arrow kernels release the GIL, so the cores share the work. Results are
    concatenated in order (element-wise when ``func`` returns a tuple)."""
    if n <= _CHUNK:
        return func(*arrays)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        parts = list(pool.map(lambda lo: func(*(a[lo : lo + _CHUNK] for a in arrays)), range(0, n, _CHUNK)))
    if isinstance(parts[0], tuple):
        return tuple(np.concatenate(p) for p in zip(*parts, strict=True))
    return np.concatenate(parts)


def _column(calls: pd.DataFrame, name: str):
    """A number column as int64 digits or an Arrow array (cheap to slice for the threads)."""
    column = calls[name]
    if pd.api.types.is_integer_dtype(column.dtype):
        return column.to_numpy(np.int64)
    return pa.array(column, type=pa.string(), from_pandas=True)


def _errors(cdr_id: np.ndarray, rows: np.ndarray, period: Period, reason: str, message) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "cdr_id": cdr_id[rows],
            "period": str(period),
            "reason": reason,
            "message": pd.Series(message).to_numpy(dtype=object),
        }
    )


def _bucket_of(keys: pd.Index, wanted: np.ndarray) -> np.ndarray:
    """Position of each wanted key in ``keys``, -1 if absent: by a dense table when the keys
    are small integers (customer ids are), else by hashing."""
    top = int(keys.max()) + 1 if len(keys) else 0
    if 0 < top <= 50_000_000 and keys.min() >= 0:
        table = np.full(top + 1, -1, dtype=np.int64)
        table[keys.to_numpy()] = np.arange(len(keys))
        return table[np.minimum(np.maximum(wanted, -1), top)]  # -1 and beyond: the last slot
    return DigitsIndex(keys.to_numpy()).get_indexer(wanted)


def _classify(compiled: CompiledPlan, called: np.ndarray, utc_s: np.ndarray):
    dest = match_destinations(compiled, called)
    zone = compiled.dest_zone[np.maximum(dest, 0)]
    band = time_bands(compiled, utc_s)
    return dest, zone, band, compiled.rate_table[zone, band]


def _rate_plan_calls(
    compiled: CompiledPlan,
    rows: np.ndarray,
    cdr_id: np.ndarray,
    utc_s: np.ndarray,
    called: np.ndarray,
    seconds: np.ndarray,
    customer: np.ndarray,
    buckets: pd.DataFrame,
    consumed: pd.DataFrame | None,
    period: Period,
) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    errors = []
    everything = len(rows) == len(cdr_id)  # rows are sorted and distinct: then rows == all

    def take(values: np.ndarray) -> np.ndarray:
        return values if everything else values[rows]

    called, start = take(called), take(utc_s)
    dest, zone, band, rate_row = _map_chunks(
        lambda c, t: _classify(compiled, c, t), len(rows), called, start
    )
    no_dest = dest < 0
    if no_dest.any():
        errors.append(
            _errors(cdr_id, rows[no_dest], period, "no_destination",
                    "called number " + from_digits(called[no_dest])
                    + f" matches no destination of plan {compiled.plan.code}")
        )
    no_rate = ~no_dest & (rate_row < 0)
    if no_rate.any():
        names = pd.Series(np.array(compiled.zones, dtype=object)[zone[no_rate]])
        band_names = pd.Series(np.array(compiled.bands, dtype=object)[band[no_rate]])
        errors.append(
            _errors(cdr_id, rows[no_rate], period, "no_rate",
                    f"plan {compiled.plan.code} has no rate for zone " + names + " in band " + band_names)
        )
    if no_dest.any() or no_rate.any():
        ok = np.flatnonzero(~no_dest & ~no_rate)
        rows, dest, zone, band, rate_row = rows[ok], dest[ok], zone[ok], band[ok], rate_row[ok]
        customer, start = customer[ok], start[ok]
        everything = False
    seconds = take(seconds)
    ids = take(cdr_id)

    # allowances: one bucket per (customer, zone)
    n_zones = len(compiled.zones)
    zone_index = pd.Index(compiled.zones)
    covered = np.zeros(len(rows), dtype=np.int64)
    if len(buckets):
        bz = zone_index.get_indexer(buckets["zone_code"].astype(str))
        known = bz >= 0
        b = buckets[known]
        keys = pd.Index(b["customer_id"].to_numpy(np.int64) * n_zones + bz[known])
        bucket = _bucket_of(keys, customer.astype(np.int64) * n_zones + zone)
        from_s = b["from_s"].to_numpy(np.int64)
        to_s = b["to_s"].to_numpy(np.int64)
        pos = np.maximum(bucket, 0)
        in_window = (bucket >= 0) & (start >= from_s[pos]) & (start < to_s[pos])
        bucket = np.where(in_window, bucket, -1)
        used = np.zeros(len(b), dtype=np.int64)
        if consumed is not None and len(consumed):
            cz = zone_index.get_indexer(consumed["zone_code"].astype(str))
            ckeys = consumed["customer_id"].to_numpy(np.int64) * n_zones + cz
            at = keys.get_indexer(ckeys)
            np.add.at(used, at[(at >= 0) & (cz >= 0)],
                      consumed["seconds"].to_numpy(np.int64)[(at >= 0) & (cz >= 0)])
        covered = consume(bucket, start, ids, seconds, b["cap_s"].to_numpy(np.int64), used)

    amount, rule = _map_chunks(lambda r, d, c: price_calls(compiled, r, d, c), len(rows), rate_row, seconds,
                               covered)
    rated = pd.DataFrame(
        {
            "cdr_id": ids,
            "period": pd.Categorical.from_codes(np.zeros(len(rows), np.int8), categories=[str(period)]),
            "customer_id": customer.astype(np.int64),
            "destination_prefix": pd.Categorical.from_codes(
                dest, categories=pd.Index(compiled.dest_prefix)
            ) if len(compiled.dest_prefix) else pd.Categorical([]),
            "zone_code": pd.Categorical.from_codes(zone, categories=compiled.zones),
            "band": pd.Categorical.from_codes(band, categories=compiled.bands),
            "duration_s": seconds,
            "allowance_s": covered,
            "price_units": amount.astype(np.int64),
            "rate_id": compiled.rate_ids[rate_row],
            "rule": pd.Categorical.from_codes(rule, categories=RULES),
        },
        copy=False,  # the arrays are new: no need to copy them into blocks
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

    * ``calls``: cdr_id, start_utc (naive UTC datetimes), calling, called (E.164 text, or its
      digits as int64), duration_s;
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
    n = len(calls)
    cdr_id = calls["cdr_id"].to_numpy(np.int64)
    utc_s = epoch_seconds(calls["start_utc"])
    calling = _map_chunks(to_digits, n, _column(calls, "calling"))
    called = _map_chunks(to_digits, n, _column(calls, "called"))
    seconds = calls["duration_s"].to_numpy(np.int64)
    errors: list[pd.DataFrame] = []
    lo, hi = (int(pd.Timestamp(b).value // 10**9) for b in period.utc_bounds(timezone))
    inside = (utc_s >= lo) & (utc_s < hi)
    if not inside.all():
        out = np.flatnonzero(~inside)
        errors.append(_errors(cdr_id, out, period, "outside_period", [f"call is not in period {period}"] * len(out)))
    index = LineIndex(lines, timezone)
    line_row = _map_chunks(index.lookup, n, calling, utc_s)
    no_line = inside & (line_row < 0)
    if no_line.any():
        rows = np.flatnonzero(no_line)
        when = pd.Series(calls["start_utc"].to_numpy()[rows]).astype(str)
        errors.append(
            _errors(cdr_id, rows, period, "no_line",
                    "calling number " + from_digits(calling[rows]) + " is no customer's line at " + when + " UTC")
        )
    usable = inside & (line_row >= 0)
    pos = np.maximum(line_row, 0)
    customer = lines["customer_id"].to_numpy(np.int64)[pos] if len(lines) else np.zeros(n, np.int64)
    plan_of = lines["rate_plan_id"].to_numpy(np.int64)[pos] if len(lines) else np.zeros(n, np.int64)
    if buckets is None:
        buckets = pd.DataFrame(columns=["customer_id", "zone_code", "cap_s", "from_s", "to_s"])
    rated = []
    present = plan_of[usable]
    plan_ids = present[:1] if len(present) and present.min() == present.max() else np.unique(present)
    for plan_id in plan_ids:
        rows = np.flatnonzero(usable & (plan_of == plan_id))
        if int(plan_id) not in compiled:
            errors.append(_errors(cdr_id, rows, period, "no_rate", [f"rate plan {plan_id} is not loaded"] * len(rows)))
            continue
        frame, errs = _rate_plan_calls(
            compiled[int(plan_id)], rows, cdr_id, utc_s, called, seconds,
            customer if len(rows) == n else customer[rows], buckets,
            consumed, period,
        )
        rated.append(frame)
        errors.extend(errs)
    rated_frame = pd.concat(rated, ignore_index=True) if rated else pd.DataFrame(columns=RATED_COLUMNS)
    error_frame = (
        pd.concat(errors, ignore_index=True) if errors else pd.DataFrame(columns=ERROR_COLUMNS)
    )
    return RatingResult(rated_frame[RATED_COLUMNS], error_frame[ERROR_COLUMNS])
