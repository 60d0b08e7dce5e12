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
HOLIDAY = 7  # row of the band table used for public holidays (rated as Sundays)
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
    iv_start: np.ndarray  # int64 [rate, k]
    iv_end: np.ndarray
    iv_price: np.ndarray
    iv_increment: np.ndarray  # 0 marks padding
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
    iv_start, iv_end = np.zeros(shape, np.int64), np.zeros(shape, np.int64)
    iv_price, iv_increment = np.zeros(shape, np.int64), np.zeros(shape, np.int64)
    for pos, rid in enumerate(rates["rate_id"]):
        grp = by_rate.get(rid)
        if grp is None or grp["from_second"].iloc[0] != 0:
            raise PlanError(f"plan {plan.code}: rate {rid} needs an interval starting at second 0")
        if (grp["increment_s"] <= 0).any() or (grp["price_per_minute_units"] < 0).any():
            raise PlanError(f"plan {plan.code}: rate {rid} has a non-positive increment or a negative price")
        n = len(grp)
        starts = grp["from_second"].to_numpy(np.int64)
        iv_start[pos, :n] = starts
        iv_end[pos, :n] = np.append(starts[1:], np.iinfo(np.int64).max // 4)
        iv_price[pos, :n] = grp["price_per_minute_units"].to_numpy(np.int64)
        iv_increment[pos, :n] = grp["increment_s"].to_numpy(np.int64)
    return CompiledPlan(
        plan=plan,
        boundaries=boundaries,
        owner=owner,
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
        iv_end=iv_end,
        iv_price=iv_price,
        iv_increment=iv_increment,
    )


def digit_count(digits: np.ndarray) -> np.ndarray:
    """Number of decimal digits of positive int64 values (exact, no float logarithm)."""
    return np.searchsorted(_POW10, digits, side="right").astype(np.int64)


def match_destinations(compiled: CompiledPlan, digits: np.ndarray) -> np.ndarray:
    """Row of the longest destination prefix of each number (E.164 digits), -1 for none."""
    if len(compiled.boundaries) == 0:
        return np.full(len(digits), -1, dtype=np.int32)
    ndigits = digit_count(digits)
    valid = (digits > 0) & (ndigits <= MAX_DIGITS)
    padded = np.where(valid, digits * _POW10[np.clip(MAX_DIGITS - ndigits, 0, MAX_DIGITS)], 0)
    seg = np.searchsorted(compiled.boundaries, padded, side="right") - 1
    row = np.where(seg >= 0, compiled.owner[np.clip(seg, 0, None)], -1)
    # a prefix longer than the number itself does not match it
    row = np.where(valid & (row >= 0) & (compiled.dest_len[np.clip(row, 0, None)] <= ndigits), row, -1)
    return row.astype(np.int32)
