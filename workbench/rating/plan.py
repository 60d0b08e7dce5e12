"""Rate plans as data, compiled into arrays for vectorised rating.

A plan is four small frames (see ``data/README.md`` for their CSV form):

* ``destinations``: ``prefix`` (E.164 digits), ``name``, ``zone_code``;
* ``time_bands``: ``band``, ``weekdays`` (``"0,1,2,3,4"``, 0 = Monday), ``start_minute``,
  ``end_minute`` (local time);
* ``rates``: ``rate_id``, ``zone_code``, ``band`` (``*`` = any band), ``connect_fee_units``
  (int, 1/10,000 of the currency, ``PRICE_SCALE``), ``charge_unanswered``;
* ``intervals``: ``rate_id``, ``from_second``, ``price_per_minute_micros`` (int, 1/1,000,000 of
  the currency per minute, ``RATE_SCALE``), ``increment_s``.

:func:`compile_plan` turns them into lookup arrays once; rating then costs a few array
operations per call, whatever the number of prefixes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from workbench.errors import InputError
from workbench.phone_numbers import DigitsIndex

MAX_DIGITS = 15  # E.164
BLOCK_DIGITS = 6  # the direct lookup table covers the first 6 digits of a number
SUB_DIGITS = 2  # blocks holding longer prefixes get a second table on the next 2 digits
HOLIDAY = 7  # row of the band table used for public holidays (rated as Sundays)
NO_INTERVAL = np.iinfo(np.int64).max // 4  # start of the padding intervals: never reached
ANY_BAND = "*"
_POW10 = np.array([10**i for i in range(MAX_DIGITS + 1)], dtype=np.int64)


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
    # int32 [10**BLOCK_DIGITS], by a number's first digits: the row of its longest prefix (of at
    # most BLOCK_DIGITS digits, -1 for none), or for a block holding longer prefixes -2 - its row
    # in sub_owner
    block_info: np.ndarray
    has_long: np.ndarray  # bool [10**BLOCK_DIGITS]: a prefix longer than 8 digits starts in the block
    sub_owner: np.ndarray  # int32 [mixed blocks, 10**SUB_DIGITS]: longest prefix of <= 8 digits
    long_prefixes: tuple  # prefixes of more than 8 digits: (length, pd.Index of values, rows), longest first
    by_length: tuple  # every prefix: (length, pd.Index of values, rows), longest first (for short numbers)
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
    iv_price: np.ndarray  # per minute, micro units (RATE_SCALE)
    iv_increment: np.ndarray
    iv_before: np.ndarray  # amount x 60, micro units, of the whole intervals before interval k
    iv_params: np.ndarray  # int64 [rate x k, 4]: start, increment, before, price (one gather)
    cache: dict = field(default_factory=dict, repr=False)  # derived tables (prices), built once


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


def _owners_at(prefixes: list[str], rows: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Row (of ``rows``) of the longest of ``prefixes`` holding each 15-digit ``starts``, -1 if none."""
    if len(rows) == 0:
        return np.full(len(starts), -1, dtype=np.int32)
    boundaries, owner = _prefix_ranges([prefixes[i] for i in rows])
    seg = np.searchsorted(boundaries, starts, side="right") - 1
    found = np.where(seg >= 0, owner[np.maximum(seg, 0)], -1)
    return np.where(found >= 0, rows[np.maximum(found, 0)], -1).astype(np.int32)


def _block_tables(prefixes: list[str]):
    """Lookup tables for longest-prefix match (see :func:`match_destinations`)."""
    size, sub = 10**BLOCK_DIGITS, 10**SUB_DIGITS
    deep = BLOCK_DIGITS + SUB_DIGITS
    lengths = np.array([len(p) for p in prefixes], dtype=np.int64)
    first = np.arange(size, dtype=np.int64) * _POW10[MAX_DIGITS - BLOCK_DIGITS]
    block_owner = _owners_at(prefixes, np.flatnonzero(lengths <= BLOCK_DIGITS), first)
    middle = np.flatnonzero((lengths > BLOCK_DIGITS) & (lengths <= deep))
    mixed = np.unique(np.array([int(prefixes[i][:BLOCK_DIGITS]) for i in middle], dtype=np.int64))
    block_slot = np.full(size, -1, dtype=np.int32)
    block_slot[mixed] = np.arange(len(mixed), dtype=np.int32)
    sub_starts = ((mixed[:, None] * sub + np.arange(sub)[None, :]) * _POW10[MAX_DIGITS - deep]).ravel()
    sub_owner = _owners_at(prefixes, np.flatnonzero(lengths <= deep), sub_starts).reshape(len(mixed), sub)
    has_long = np.zeros(size, dtype=bool)
    by_length = []
    for length in sorted({int(n) for n in lengths}, reverse=True):
        rows = np.flatnonzero(lengths == length)
        values = np.array([int(prefixes[i]) for i in rows], dtype=np.int64)
        if length > deep:
            has_long[values // _POW10[length - BLOCK_DIGITS]] = True
        by_length.append((length, DigitsIndex(values), rows.astype(np.int32)))
    long_prefixes = tuple(entry for entry in by_length if entry[0] > deep)
    return block_owner, block_slot, sub_owner, has_long, long_prefixes, tuple(by_length)


def _band_table(plan: RatePlan, bands: list[str]) -> np.ndarray:
    table = np.full((8, 1440), bands.index(plan.default_band), dtype=np.int8)
    for row in plan.time_bands.itertuples(index=False):
        days = [int(d) for d in str(row.weekdays).split(",") if d.strip() != ""]
        if not 0 <= row.start_minute < row.end_minute <= 1440 or any(d not in range(7) for d in days):
            raise InputError(f"plan {plan.code}: time band {row.band!r} has bad days {row.weekdays!r} "
                             f"or hours {row.start_minute}-{row.end_minute}", code="bad_rate_plan")
        for day in days:
            table[day, row.start_minute : row.end_minute] = bands.index(row.band)
    table[HOLIDAY] = table[6]  # a public holiday is rated as a Sunday, whatever the Sunday bands are
    return table


def compile_plan(plan: RatePlan) -> CompiledPlan:
    """Check a plan and build its lookup arrays."""
    dest = plan.destinations.reset_index(drop=True)
    prefixes = dest["prefix"].astype(str).tolist()
    bad = [p for p in prefixes if not (p.isdigit() and 1 <= len(p) <= MAX_DIGITS and p[0] != "0")]
    if bad:
        raise InputError(f"plan {plan.code}: bad destination prefixes {bad[:5]}", code="bad_rate_plan")
    duplicated = dest["prefix"].astype(str).duplicated()
    if duplicated.any():
        raise InputError(f"plan {plan.code}: prefix {dest['prefix'][duplicated].iloc[0]} is listed twice",
                         code="bad_rate_plan")
    zones = sorted(set(dest["zone_code"].astype(str)) | set(plan.rates["zone_code"].astype(str)))
    bands = sorted(
        {plan.default_band}
        | set(plan.time_bands["band"].astype(str))
        | (set(plan.rates["band"].astype(str)) - {ANY_BAND})
    )
    block_owner, block_slot, sub_owner, has_long, long_prefixes, by_length = _block_tables(prefixes)
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
            raise InputError(f"plan {plan.code}: rate {rid} needs an interval starting at second 0",
                             code="bad_rate_plan")
        if (grp["increment_s"] <= 0).any() or (grp["price_per_minute_micros"] < 0).any():
            raise InputError(f"plan {plan.code}: rate {rid} has a non-positive increment or a negative price",
                             code="bad_rate_plan")
        n = len(grp)
        starts = grp["from_second"].to_numpy(np.int64)
        prices = grp["price_per_minute_micros"].to_numpy(np.int64)
        increments = grp["increment_s"].to_numpy(np.int64)
        iv_start[pos, :n] = starts
        iv_price[pos, :n] = prices
        iv_increment[pos, :n] = increments
        # a whole interval is billed in whole increments, even when the last one overruns it
        whole = -(-(starts[1:] - starts[:-1]) // increments[:-1]) * increments[:-1] * prices[:-1]
        iv_before[pos, 1:n] = np.cumsum(whole)
    return CompiledPlan(
        plan=plan,
        block_info=np.where(block_slot >= 0, -2 - block_slot, block_owner).astype(np.int32),
        sub_owner=sub_owner,
        has_long=has_long,
        long_prefixes=long_prefixes,
        by_length=by_length,
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
        iv_params=np.stack([iv_start.ravel(), iv_increment.ravel(), iv_before.ravel(), iv_price.ravel()], axis=1),
    )


def digit_count(digits: np.ndarray) -> np.ndarray:
    """Number of decimal digits of positive int64 values below 2**53 (exact: the binary exponent
    of the value as a float, times log10(2), is right or one short, which one comparison
    settles); meaningless for values <= 0."""
    exponent = (np.asarray(digits, dtype=np.int64).astype(np.float64).view(np.int64) >> 52) - 1022
    guess = (exponent * 1233) >> 12  # 1233 / 4096 ~ log10(2): floor(log10(2**exponent)) or 1 more
    return guess + (digits >= np.take(_POW10, guess, mode="clip"))


def _by_length(indexes: tuple, digits: np.ndarray, ndigits: np.ndarray, row: np.ndarray, todo: np.ndarray) -> None:
    """Set ``row`` of the numbers ``todo`` to their longest prefix among ``indexes`` (by length,
    longest first), where one matches."""
    for length, values, rows in indexes:
        if len(todo) == 0:
            break
        n = ndigits[todo]
        head = np.where(n >= length, digits[todo] // _POW10[np.clip(n - length, 0, MAX_DIGITS)], -1)
        found = values.get_indexer(head)
        hit = found >= 0
        row[todo[hit]] = rows[found[hit]]
        todo = todo[~hit]


def match_destinations(compiled: CompiledPlan, digits: np.ndarray) -> np.ndarray:
    """Row of the longest destination prefix of each number (E.164 digits), -1 for none.

    Prefixes of up to ``BLOCK_DIGITS`` digits are answered by a table indexed by a number's
    first digits; blocks holding prefixes of up to ``BLOCK_DIGITS + SUB_DIGITS`` digits have a
    second table on the next digits; longer prefixes are looked up by length, longest first, in
    hash indexes. A prefix longer than the number itself does not match it.
    """
    deep = BLOCK_DIGITS + SUB_DIGITS
    digits = np.asarray(digits, dtype=np.int64)
    ndigits = digit_count(digits)
    valid = (digits > 0) & ((ndigits - deep).view(np.uint64) <= MAX_DIGITS - deep)  # deep..15 digits
    # every number is looked up (no subsets: whole-array operations are the fast ones); the
    # invalid ones get nonsense, clipped into the tables, then -1
    padded = digits * np.take(_POW10, MAX_DIGITS - ndigits, mode="clip")
    block = padded // _POW10[MAX_DIGITS - BLOCK_DIGITS]
    info = np.take(compiled.block_info, block, mode="clip")
    if compiled.sub_owner.size:
        sub = padded // _POW10[MAX_DIGITS - deep] - block * 10**SUB_DIGITS
        cell = np.maximum(-2 - info, 0) * 10**SUB_DIGITS + sub
        info = np.where(info >= -1, info, np.take(compiled.sub_owner.ravel(), cell, mode="clip"))
    row = np.where(valid, info, -1)
    if compiled.long_prefixes:
        long = np.take(compiled.has_long, block, mode="clip")
        _by_length(compiled.long_prefixes, digits, ndigits, row, np.flatnonzero(valid & long))
    short = np.flatnonzero(~valid & (digits > 0) & (ndigits <= MAX_DIGITS))
    if len(short):  # numbers shorter than the tables: every prefix length, longest first
        row[short] = -1
        _by_length(compiled.by_length, digits, ndigits, row, short)
    return row.astype(np.int32)
