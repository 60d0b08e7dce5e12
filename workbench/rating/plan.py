"""Rate plans as data, compiled into arrays for vectorised rating.

A plan is four small frames (see ``data/README.md`` for their CSV form):

* ``destinations``: ``prefix`` (E.164 digits), ``name``, ``zone_code``;
* ``time_bands``: ``band``, ``weekdays`` (``"0,1,2,3,4"``, 0 = Monday), ``start_minute``,
  ``end_minute`` (local time);
* ``rates``: ``rate_id``, ``zone_code``, ``band`` (``*`` = any band), ``connect_fee_units``,
  ``charge_unanswered``;
* ``intervals``: ``rate_id``, ``from_second``, ``price_per_minute_units``, ``increment_s``.

:func:`compile_plan` turns them into lookup arrays once; rating then costs a few array
operations per call, whatever the number of prefixes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

MAX_DIGITS = 15  # E.164
BLOCK_DIGITS = 6  # the direct lookup table covers the first 6 digits of a number
HOLIDAY = 7  # row of the band table used for public holidays (rated as Sundays)
NO_INTERVAL = np.iinfo(np.int64).max // 4  # start of the padding intervals: never reached
ANY_BAND = "*"
_POW10 = np.array([10**i for i in range(MAX_DIGITS + 1)], dtype=np.int64)


class PlanError(ValueError):
    """A rate plan that cannot be used as it is (named row and problem)."""


@dataclass(frozen=True)
class RatePlan:
    """A rate plan's rows, as frames (see module docstring)."""

    code: str
    destinations: pd.DataFrame
    time_bands: pd.DataFrame
    rates: pd.DataFrame
    intervals: pd.DataFrame
    timezone: str = "Europe/Paris"
    holiday_country: str = "FR"
    default_band: str = "offpeak"


@dataclass(frozen=True, eq=False)
class CompiledPlan:
    """Arrays derived from a :class:`RatePlan` (built by :func:`compile_plan`)."""

    plan: RatePlan
    boundaries: np.ndarray  # int64, sorted starts of the disjoint 15-digit ranges
    owner: np.ndarray  # int32, destination row owning each range, -1 for none
    block_owner: np.ndarray  # int32 [10**BLOCK_DIGITS]: longest prefix of <= BLOCK_DIGITS digits
    has_long: np.ndarray  # bool [10**BLOCK_DIGITS]: a longer prefix starts in the block
    long_prefixes: tuple  # (length, pd.Index of prefix values, rows), longest first
    dest_prefix: np.ndarray  # object, prefix text of each destination row
    dest_len: np.ndarray  # int64, prefix length
    dest_zone: np.ndarray  # int32, zone index
    zones: list[str]
    bands: list[str]
    band_table: np.ndarray  # int8 [8, 1440]: band index by (weekday or HOLIDAY, minute)
    rate_table: np.ndarray  # int32 [zone, band]: rate row, -1 for none
    rate_ids: np.ndarray
    connect_units: np.ndarray
    charge_unanswered: np.ndarray
    iv_start: np.ndarray  # int64 [rate, k], padding: NO_INTERVAL
    iv_price: np.ndarray  # per minute
    iv_increment: np.ndarray
    iv_before: np.ndarray  # amount x 60 of the whole intervals before interval k
    holidays: dict = field(default_factory=dict)


def _prefix_ranges(prefixes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint ranges of 15-digit padded numbers, each owned by its longest matching prefix."""
    lengths = np.array([len(p) for p in prefixes], dtype=np.int64)
    values = np.array([int(p) for p in prefixes], dtype=np.int64)
    scale = _POW10[MAX_DIGITS - lengths]
    starts, ends = values * scale, (values + 1) * scale
    boundaries = np.unique(np.concatenate([starts, ends]))
    owner = np.full(len(boundaries), -1, dtype=np.int32)
    lo = np.searchsorted(boundaries, starts)
    hi = np.searchsorted(boundaries, ends)
    for row in np.argsort(lengths, kind="stable"):  # shorter first: longer prefixes overwrite
        owner[lo[row] : hi[row]] = row
    return boundaries, owner


def _block_tables(prefixes: list[str]) -> tuple[np.ndarray, np.ndarray, tuple]:
    """Lookup tables for longest-prefix match (see :func:`match_destinations`)."""
    size = 10**BLOCK_DIGITS
    lengths = np.array([len(p) for p in prefixes], dtype=np.int64)
    short = np.flatnonzero(lengths <= BLOCK_DIGITS)
    block_owner = np.full(size, -1, dtype=np.int32)
    if len(short):
        boundaries, owner = _prefix_ranges([prefixes[i] for i in short])
        first = np.arange(size, dtype=np.int64) * _POW10[MAX_DIGITS - BLOCK_DIGITS]
        seg = np.searchsorted(boundaries, first, side="right") - 1
        block_owner = np.where(seg >= 0, short[np.clip(owner[np.clip(seg, 0, None)], 0, None)], -1)
        block_owner = np.where((seg >= 0) & (owner[np.clip(seg, 0, None)] >= 0), block_owner, -1)
    has_long = np.zeros(size, dtype=bool)
    long_prefixes = []
    for length in sorted({int(n) for n in lengths if n > BLOCK_DIGITS}, reverse=True):
        rows = np.flatnonzero(lengths == length)
        values = np.array([int(prefixes[i]) for i in rows], dtype=np.int64)
        has_long[values // _POW10[length - BLOCK_DIGITS]] = True
        long_prefixes.append((length, pd.Index(values), rows.astype(np.int32)))
    return block_owner.astype(np.int32), has_long, tuple(long_prefixes)


def _band_table(plan: RatePlan, bands: list[str]) -> np.ndarray:
    table = np.full((8, 1440), bands.index(plan.default_band), dtype=np.int8)
    for row in plan.time_bands.itertuples(index=False):
        days = [int(d) for d in str(row.weekdays).split(",") if d.strip() != ""]
        if not 0 <= row.start_minute < row.end_minute <= 1440 or any(d not in range(7) for d in days):
            raise PlanError(
                f"plan {plan.code}: time band {row.band!r} has bad days {row.weekdays!r} "
                f"or hours {row.start_minute}-{row.end_minute}"
            )
        for day in days:
            table[day, row.start_minute : row.end_minute] = bands.index(row.band)
    return table


def compile_plan(plan: RatePlan) -> CompiledPlan:
    """Check a plan and build its lookup arrays."""
    dest = plan.destinations.reset_index(drop=True)
    prefixes = dest["prefix"].astype(str).tolist()
    bad = [p for p in prefixes if not (p.isdigit() and 1 <= len(p) <= MAX_DIGITS and p[0] != "0")]
    if bad:
        raise PlanError(f"plan {plan.code}: bad destination prefixes {bad[:5]}")
    duplicated = dest["prefix"].astype(str).duplicated()
    if duplicated.any():
        raise PlanError(
            f"plan {plan.code}: prefix {dest['prefix'][duplicated].iloc[0]} is listed twice"
        )
    zones = sorted(set(dest["zone_code"].astype(str)) | set(plan.rates["zone_code"].astype(str)))
    bands = sorted(
        {plan.default_band}
        | set(plan.time_bands["band"].astype(str))
        | (set(plan.rates["band"].astype(str)) - {ANY_BAND})
    )
    boundaries, owner = _prefix_ranges(prefixes) if prefixes else (np.zeros(0, np.int64),) * 2
    block_owner, has_long, long_prefixes = _block_tables(prefixes)
    rates = plan.rates.reset_index(drop=True)
    rate_table = np.full((len(zones), len(bands)), -1, dtype=np.int32)
    for pos, row in enumerate(rates.itertuples(index=False)):  # "*" first, specific bands win
        if row.band == ANY_BAND:
            rate_table[zones.index(row.zone_code), :] = pos
    for pos, row in enumerate(rates.itertuples(index=False)):
        if row.band != ANY_BAND:
            rate_table[zones.index(row.zone_code), bands.index(row.band)] = pos

    intervals = plan.intervals.sort_values(["rate_id", "from_second"])
    by_rate = {rid: grp for rid, grp in intervals.groupby("rate_id", sort=False)}
    width = max((len(g) for g in by_rate.values()), default=1)
    shape = (len(rates), width)
    iv_start = np.full(shape, NO_INTERVAL, np.int64)
    iv_price, iv_increment = np.zeros(shape, np.int64), np.ones(shape, np.int64)
    iv_before = np.zeros(shape, np.int64)
    for pos, rid in enumerate(rates["rate_id"]):
        grp = by_rate.get(rid)
        if grp is None or grp["from_second"].iloc[0] != 0:
            raise PlanError(f"plan {plan.code}: rate {rid} needs an interval starting at second 0")
        if (grp["increment_s"] <= 0).any() or (grp["price_per_minute_units"] < 0).any():
            raise PlanError(f"plan {plan.code}: rate {rid} has a non-positive increment or a negative price")
        n = len(grp)
        starts = grp["from_second"].to_numpy(np.int64)
        prices = grp["price_per_minute_units"].to_numpy(np.int64)
        increments = grp["increment_s"].to_numpy(np.int64)
        iv_start[pos, :n] = starts
        iv_price[pos, :n] = prices
        iv_increment[pos, :n] = increments
        # a whole interval is billed in whole increments, even when the last one overruns it
        whole = -(-(starts[1:] - starts[:-1]) // increments[:-1]) * increments[:-1] * prices[:-1]
        iv_before[pos, 1:n] = np.cumsum(whole)
    return CompiledPlan(
        plan=plan,
        boundaries=boundaries,
        owner=owner,
        block_owner=block_owner,
        has_long=has_long,
        long_prefixes=long_prefixes,
        dest_prefix=np.array(prefixes, dtype=object),
        dest_len=np.array([len(p) for p in prefixes], dtype=np.int64),
        dest_zone=np.array([zones.index(z) for z in dest["zone_code"].astype(str)], dtype=np.int32),
        zones=zones,
        bands=bands,
        band_table=_band_table(plan, bands),
        rate_table=rate_table,
        rate_ids=rates["rate_id"].to_numpy(np.int64),
        connect_units=rates["connect_fee_units"].to_numpy(np.int64),
        charge_unanswered=rates["charge_unanswered"].to_numpy(bool),
        iv_start=iv_start,
        iv_price=iv_price,
        iv_increment=iv_increment,
        iv_before=iv_before,
    )


def digit_count(digits: np.ndarray) -> np.ndarray:
    """Number of decimal digits of positive int64 values (exact, no float logarithm)."""
    return np.searchsorted(_POW10, digits, side="right").astype(np.int64)


def match_destinations(compiled: CompiledPlan, digits: np.ndarray) -> np.ndarray:
    """Row of the longest destination prefix of each number (E.164 digits), -1 for none.

    Prefixes of up to ``BLOCK_DIGITS`` digits are answered by a table indexed by a number's
    first digits; where longer prefixes exist, they are looked up by length, longest first, in
    hash indexes. A prefix longer than the number itself does not match it.
    """
    ndigits = digit_count(digits)
    valid = (digits > 0) & (ndigits <= MAX_DIGITS) & (ndigits >= BLOCK_DIGITS)
    padded = np.where(valid, digits * _POW10[np.maximum(MAX_DIGITS - ndigits, 0)], 0)
    block = padded // _POW10[MAX_DIGITS - BLOCK_DIGITS]
    row = np.where(valid, compiled.block_owner[block], -1)
    if compiled.long_prefixes:
        todo = np.flatnonzero(valid & compiled.has_long[block])
        for length, values, rows in compiled.long_prefixes:
            if len(todo) == 0:
                break
            n = ndigits[todo]
            head = np.where(n >= length, digits[todo] // _POW10[np.clip(n - length, 0, MAX_DIGITS)], -1)
            found = values.get_indexer(head)
            hit = found >= 0
            row[todo[hit]] = rows[found[hit]]
            todo = todo[~hit]
    short = np.flatnonzero(~valid & (digits > 0) & (ndigits <= MAX_DIGITS))
    if len(short):  # numbers shorter than a block: the ranges, then the length check
        padded_short = digits[short] * _POW10[MAX_DIGITS - ndigits[short]]
        seg = np.searchsorted(compiled.boundaries, padded_short, side="right") - 1
        found = np.where(seg >= 0, compiled.owner[np.clip(seg, 0, None)], -1)
        ok = (found >= 0) & (compiled.dest_len[np.clip(found, 0, None)] <= ndigits[short])
        row[short] = np.where(ok, found, -1)
    return row.astype(np.int32)
