"""Rating: classification (account, destination, zone, band, allowance), then pricing.

:func:`rate` is a pure function of frames and plans: no database, no clock, no per-call Python
loop. Calls that cannot be rated come back as rows of ``errors`` with a reason and a message.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from workbench.period import Period
from workbench.phone_numbers import DigitsIndex, from_digits, to_digits
from workbench.rating.allowances import UNLIMITED, allowance_buckets, consume
from workbench.rating.classify import LineIndex, epoch_seconds, minute_bands
from workbench.rating.plan import CompiledPlan, RatePlan, compile_plan, match_destinations
from workbench.rating.pricing import price_calls, price_table

__all__ = [
    "Rater",
    "RULES",
    "CompiledPlan",
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


#: what rates calls: :func:`rate` or anything with its signature and result (the same function
#: run elsewhere, e.g. on the workers of a cluster, :mod:`workbench.jobs.cluster`)
Rater = Callable[..., RatingResult]


_CHUNK = 1 << 18  # calls per slice: small enough for the intermediate arrays to stay in the caches
# why a call is not rated, per call: 0 for rated, else 1 + index into REASONS (plan not loaded: 5)
_OK, _OUTSIDE, _NO_LINE, _NO_DEST, _NO_RATE, _NO_PLAN = range(6)
_NO_BUCKET, _UNLIMITED_BUCKET, _CAPPED_BUCKET = range(3)


def _in_slices(func, n: int) -> None:
    """``func(lo, hi)`` over consecutive slices of ``n`` calls, in threads on all cores when
    there are many: NumPy and Arrow kernels release the interpreter lock, so the cores share the
    work. ``func`` writes its results into the slices of preallocated arrays."""
    if n <= _CHUNK:
        func(0, n)
        return
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for _ in pool.map(lambda lo: func(lo, min(lo + _CHUNK, n)), range(0, n, _CHUNK)):
            pass


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


class _KeyIndex:
    """Positions of int64 keys among distinct ``keys``, -1 if absent: by a dense table when the
    keys are small non-negative integers (customer ids x zones are), else by hashing."""

    def __init__(self, keys: np.ndarray):
        top = int(keys.max()) + 1 if len(keys) else 0
        self.table = None
        if 0 < top <= 50_000_000 and keys.min() >= 0:
            self.table = np.full(top + 1, -1, dtype=np.int64)  # the last slot answers the rest
            self.table[keys] = np.arange(len(keys))
        else:
            self.index = DigitsIndex(keys)

    def get(self, wanted: np.ndarray) -> np.ndarray:
        if self.table is None:
            return self.index.get_indexer(wanted)
        # below 0 and beyond the top: the last slot, -1
        return np.take(self.table, np.clip(wanted, -1, len(self.table) - 1), mode="wrap")


class _Plans:
    """The compiled plans the lines use, with their categories merged for the output (zones,
    bands and destination prefixes as one set of codes), the plan of each line, and the period's
    bounds and band tables."""

    def __init__(self, compiled: dict[int, CompiledPlan], lines: pd.DataFrame, period: Period, timezone: str):
        used = pd.unique(lines["rate_plan_id"].to_numpy(np.int64)) if len(lines) else np.zeros(0, np.int64)
        self.ids = [int(i) for i in sorted(used) if int(i) in compiled]
        self.plans = [compiled[i] for i in self.ids]
        #: plans the lines name but ``compiled`` lacks; their lines' calls cannot be rated
        self.missing = [int(i) for i in sorted(used) if int(i) not in compiled]
        position = {pid: k for k, pid in enumerate(self.ids)} | {pid: -1 - k for k, pid in enumerate(self.missing)}
        # by line row, with one more slot for the calls with no line (-1, taken with mode="wrap")
        self.line_plan = np.array([position[int(i)] for i in (lines["rate_plan_id"] if len(lines) else [])] + [0],
                                  dtype=np.int16)
        self.single = len(self.plans) == 1
        self.simple = self.single and not self.missing
        self.zones, self.zone_map = self._merge([p.zones for p in self.plans])
        self.bands, self.band_map = self._merge([p.bands for p in self.plans])
        self.prefixes, self.dest_map = self._merge([list(p.dest_prefix) for p in self.plans])
        lo, hi = (int(pd.Timestamp(b).value // 10**9) for b in period.utc_bounds(timezone))
        self.bounds = lo, hi
        self.first_minute = lo // 60
        self.band_tables = [minute_bands(p, self.first_minute, -(-hi // 60) - self.first_minute) for p in self.plans]
        for plan in self.plans:
            price_table(plan)  # built once, before the threads share the plan

    @staticmethod
    def _merge(lists: list[list[str]]):
        """One sorted set of codes for several plans' lists, and each list's map into it (None
        when it is the set itself)."""
        if len(lists) == 1:
            return pd.Index(lists[0]), [None]
        merged = pd.Index(sorted(set().union(*lists)))
        return merged, [merged.get_indexer(values).astype(np.int32) for values in lists]


class _Buckets:
    """Allowance buckets of the period, one per (customer, zone), found by key."""

    def __init__(self, buckets: pd.DataFrame | None, consumed: pd.DataFrame | None, zones: pd.Index,
                 period_s: tuple[int, int]):
        self.n_zones = max(len(zones), 1)
        frame = buckets if buckets is not None else pd.DataFrame(columns=["zone_code"])
        zone = zones.get_indexer(frame["zone_code"].astype(str)) if len(frame) else np.zeros(0, np.int64)
        frame = frame[zone >= 0]
        self.size = len(frame)
        if not self.size:
            return
        keys = frame["customer_id"].to_numpy(np.int64) * self.n_zones + zone[zone >= 0]
        self.index = _KeyIndex(keys)
        self.cap = frame["cap_s"].to_numpy(np.int64)
        self.from_s = frame["from_s"].to_numpy(np.int64)
        self.to_s = frame["to_s"].to_numpy(np.int64)
        self.windowed = bool((self.from_s > period_s[0]).any() or (self.to_s < period_s[1]).any())
        # by bucket: capped or unlimited; one more slot for the calls with no bucket (-1)
        self.kind = np.append(np.where(self.cap == UNLIMITED, _UNLIMITED_BUCKET, _CAPPED_BUCKET), _NO_BUCKET)
        self.used = np.zeros(self.size, dtype=np.int64)
        if consumed is not None and len(consumed):
            cz = zones.get_indexer(consumed["zone_code"].astype(str))
            at = pd.Index(keys).get_indexer(consumed["customer_id"].to_numpy(np.int64) * self.n_zones + cz)
            known = (at >= 0) & (cz >= 0)
            np.add.at(self.used, at[known], consumed["seconds"].to_numpy(np.int64)[known])

    def lookup(self, customer, zone, start, seconds, ok):
        """Covered seconds of each call in an unlimited bucket, and the capped bucket of each
        call (-1 for none), which :func:`consume` settles in chronological order afterwards."""
        bucket = self.index.get(customer * self.n_zones + zone)
        if self.windowed:
            pos = np.maximum(bucket, 0)
            bucket = np.where((start >= self.from_s[pos]) & (start < self.to_s[pos]), bucket, -1)
        kind = np.where(ok & (seconds > 0), np.take(self.kind, bucket, mode="wrap"), _NO_BUCKET)
        return np.where(kind == _UNLIMITED_BUCKET, seconds, 0), np.where(kind == _CAPPED_BUCKET, bucket, -1)


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

    Returns rated calls (``RATED_COLUMNS``), in the order of ``calls``, and errors
    (``ERROR_COLUMNS``).

    The work is done in two sweeps over slices of calls, each slice in one go while its arrays
    are in the caches: classification (line, plan, destination, zone, band, rate, allowance
    bucket), then pricing. Between them, calls to capped allowances are put in chronological
    order per bucket to share the allowance out.
    """
    period = Period.parse(period)
    compiled = {pid: p if isinstance(p, CompiledPlan) else compile_plan(p) for pid, p in plans.items()}
    calls = calls.reset_index(drop=True)
    n = len(calls)
    plan_set = _Plans(compiled, lines, period, timezone)
    allowances = _Buckets(buckets, consumed, plan_set.zones, plan_set.bounds)
    cdr_id = calls["cdr_id"].to_numpy(np.int64)
    utc_s = epoch_seconds(calls["start_utc"])
    seconds = calls["duration_s"].to_numpy(np.int64)
    number_columns = {name: _column(calls, name) for name in ("calling", "called")}
    # the numbers as digits: the columns themselves, or filled slice by slice from the text
    digits = {name: col if isinstance(col, np.ndarray) else np.empty(n, np.int64)
              for name, col in number_columns.items()}
    index = LineIndex(lines, timezone)
    # by line row, with one more slot for the calls with no line (-1, taken with mode="wrap")
    line_customer = np.append(lines["customer_id"].to_numpy(np.int64) if len(lines) else [], 0).astype(np.int64)
    line_plan = plan_set.line_plan
    lo_s, hi_s = plan_set.bounds

    status = np.empty(n, dtype=np.int8)
    customer = np.empty(n, dtype=np.int64)
    plan_of = np.zeros(n, dtype=np.int16)
    dest = np.full(n, -1, dtype=np.int32)
    zone = np.zeros(n, dtype=np.int32)
    band = np.zeros(n, dtype=np.int16)
    rate_row = np.zeros(n, dtype=np.int32)
    covered = np.zeros(n, dtype=np.int64)
    capped = np.full(n, -1, dtype=np.int64) if allowances.size else None

    def numbers(name: str, part: slice) -> np.ndarray:
        col = number_columns[name]
        if isinstance(col, np.ndarray):
            return col[part]
        out = digits[name][part]
        out[:] = to_digits(col[part.start : part.stop])
        return out

    def classify(lo: int, hi: int) -> None:
        part = slice(lo, hi)
        calling, called, start = numbers("calling", part), numbers("called", part), utc_s[part]
        line = index.lookup(calling, start)
        np.take(line_customer, line, mode="wrap", out=customer[part])  # no line: the extra slot
        if plan_set.simple:  # one plan, loaded
            code = (line < 0).view(np.int8) * np.int8(_NO_LINE)
        else:
            p_of = plan_of[part]
            np.take(line_plan, line, mode="wrap", out=p_of)
            code = np.where(line >= 0, np.where(p_of >= 0, _OK, _NO_PLAN), _NO_LINE).astype(np.int8)
        outside = (start - lo_s).view(np.uint64) >= np.uint64(hi_s - lo_s)
        if outside.any():
            code[outside] = _OUTSIDE
        minute = start // 60 - plan_set.first_minute
        for k, cp in enumerate(plan_set.plans):
            if plan_set.single:
                sel, out = None, part
            else:
                sel = np.flatnonzero(p_of == k)
                out = lo + sel

            def pick(values, sel=sel):
                return values if sel is None else values[sel]

            if not len(cp.dest_zone):  # a plan without destinations: its calls have none
                here = pick(code)
                here[here == _OK] = _NO_DEST
                if sel is not None:
                    code[sel] = here
                continue
            d = match_destinations(cp, pick(called))
            z = np.take(cp.dest_zone, d, mode="clip")
            b = np.take(plan_set.band_tables[k], pick(minute), mode="clip")
            r = np.take(cp.rate_table.ravel(), z * np.int32(len(cp.bands)) + b)
            if (d | r).min(initial=0) < 0:  # no destination, or no rate for the zone and band
                here = pick(code)
                here = np.where(here == _OK, np.where(d < 0, _NO_DEST, np.where(r < 0, _NO_RATE, _OK)), here)
                if sel is None:
                    code = here.astype(np.int8)
                else:
                    code[sel] = here
            for target, values, mapping in ((dest, d, plan_set.dest_map[k]), (zone, z, plan_set.zone_map[k]),
                                            (band, b, plan_set.band_map[k]), (rate_row, r, None)):
                target[out] = values if mapping is None else mapping[values]
        status[part] = code
        if allowances.size:
            cover, bucket = allowances.lookup(customer[part], zone[part], start, seconds[part], code == _OK)
            covered[part] = cover
            capped[part] = bucket

    _in_slices(classify, n)

    if allowances.size:  # capped buckets: in chronological order, over the whole period
        rows = np.flatnonzero(capped >= 0)
        covered[rows] = consume(capped[rows], utc_s[rows], cdr_id[rows], seconds[rows], allowances.cap,
                                allowances.used)

    price_units = np.empty(n, dtype=np.int64)
    rule = np.empty(n, dtype=np.int8)
    rate_id = np.empty(n, dtype=np.int64)

    def price(lo: int, hi: int) -> None:
        part = slice(lo, hi)
        for k, cp in enumerate(plan_set.plans):
            if not len(cp.rate_ids):
                continue  # a plan without rates: its calls are errors
            rows = part if plan_set.single else lo + np.flatnonzero(plan_of[part] == k)
            r = rate_row[rows]
            price_units[rows], rule[rows] = price_calls(cp, r, seconds[rows], covered[rows])
            rate_id[rows] = np.take(cp.rate_ids, r, mode="clip")

    _in_slices(price, n)
    return RatingResult(
        _rated_frame(status, period, plan_set, cdr_id, customer, dest, zone, band, seconds, covered,
                     price_units, rate_id, rule),
        _error_frame(status, period, plan_set, cdr_id, utc_s, digits, zone, band, plan_of),
    )


def _categorical(codes: np.ndarray, categories) -> pd.Categorical:
    return pd.Categorical.from_codes(codes, dtype=pd.CategoricalDtype(categories), validate=False)


def _rated_frame(status, period, plan_set, cdr_id, customer, dest, zone, band, seconds, covered,
                 price_units, rate_id, rule) -> pd.DataFrame:
    keep = np.flatnonzero(status == _OK)
    everything = len(keep) == len(status)

    def take(values: np.ndarray) -> np.ndarray:
        return values if everything else values[keep]

    return pd.DataFrame(
        {
            "cdr_id": take(cdr_id),
            "period": _categorical(np.zeros(len(keep), np.int8), [str(period)]),
            "customer_id": take(customer),
            "destination_prefix": _categorical(take(dest), plan_set.prefixes),
            "zone_code": _categorical(take(zone), plan_set.zones),
            "band": _categorical(take(band), plan_set.bands),
            "duration_s": take(seconds),
            "allowance_s": take(covered),
            "price_units": take(price_units),
            "rate_id": take(rate_id),
            "rule": _categorical(take(rule), RULES),
        },
        copy=False,  # the arrays are new: no need to copy them into blocks
    )[RATED_COLUMNS]


def _error_frame(status, period, plan_set, cdr_id, utc_s, digits, zone, band, plan_of) -> pd.DataFrame:
    """``digits``: the calling and called numbers as digits, by column name."""
    bad = np.flatnonzero(status != _OK)
    if len(bad) == 0:
        return pd.DataFrame(columns=ERROR_COLUMNS)

    def number(name: str, rows: np.ndarray) -> pd.Series:
        return from_digits(digits[name][rows])

    errors = []
    for code in (_OUTSIDE, _NO_LINE, _NO_PLAN, _NO_DEST, _NO_RATE):
        rows = bad[status[bad] == code]
        if not len(rows):
            continue
        if code == _OUTSIDE:
            message = [f"call is not in period {period}"] * len(rows)
            errors.append(_errors(cdr_id, rows, period, "outside_period", message))
        elif code == _NO_LINE:
            when = pd.Series(utc_s[rows].astype("datetime64[s]")).astype(str)
            errors.append(_errors(cdr_id, rows, period, "no_line", "calling number " + number("calling", rows)
                                  + " is no customer's line at " + when + " UTC"))
        elif code == _NO_PLAN:
            plan_ids = np.array(plan_set.missing, dtype=np.int64)[-1 - plan_of[rows].astype(np.int64)]
            errors.append(_errors(cdr_id, rows, period, "no_rate",
                                  "rate plan " + pd.Series(plan_ids).astype(str) + " is not loaded"))
        else:
            codes = pd.Series(np.array([p.plan.code for p in plan_set.plans], dtype=object)[plan_of[rows]])
            if code == _NO_DEST:
                message = "called number " + number("called", rows) + " matches no destination of plan " + codes
                errors.append(_errors(cdr_id, rows, period, "no_destination", message))
            else:
                message = ("plan " + codes + " has no rate for zone " + pd.Series(plan_set.zones[zone[rows]])
                           + " in band " + pd.Series(plan_set.bands[band[rows]]))
                errors.append(_errors(cdr_id, rows, period, "no_rate", message))
    return pd.concat(errors, ignore_index=True)[ERROR_COLUMNS]
