"""Rating step 1: which account, destination, zone and time band each call belongs to."""

from __future__ import annotations

import holidays as holiday_calendars
import numpy as np
import pandas as pd

from workbench.rating.plan import HOLIDAY, CompiledPlan

_GRID_S = 900  # UTC offsets change on quarter hours in every real time zone
_KEY_SHIFT = np.int64(1) << np.int64(35)  # > seconds from 1970 to 2900


def epoch_seconds(values: pd.Series) -> np.ndarray:
    """Naive-UTC datetimes to int64 seconds since 1970."""
    return pd.to_datetime(values).to_numpy("datetime64[s]").astype(np.int64)


def local_seconds(utc_s: np.ndarray, timezone: str) -> np.ndarray:
    """Local wall-clock seconds since 1970 for UTC seconds, exact across DST changes.

    The UTC offset is looked up on a quarter-hour grid spanning the data, so the cost is one
    ``searchsorted`` per call rather than a time-zone conversion per call.
    """
    if len(utc_s) == 0:
        return utc_s.copy()
    first = (int(utc_s.min()) // _GRID_S) * _GRID_S
    grid = np.arange(first, int(utc_s.max()) + _GRID_S, _GRID_S, dtype=np.int64)
    stamps = pd.DatetimeIndex(grid.astype("datetime64[s]")).tz_localize("UTC").tz_convert(timezone)
    offsets = stamps.tz_localize(None).as_unit("s").asi8.astype(np.int64) - grid
    slot = (utc_s - first) // _GRID_S
    return utc_s + offsets[slot]


def local_midnight_utc(days: pd.Series, timezone: str) -> np.ndarray:
    """UTC seconds of local midnight starting each date (``NaT`` -> int64 max)."""
    stamps = pd.to_datetime(days)
    missing = stamps.isna().to_numpy()
    local = pd.DatetimeIndex(stamps.fillna(pd.Timestamp("1970-01-01")))
    utc = local.tz_localize(timezone, nonexistent="shift_forward", ambiguous=False).tz_convert("UTC")
    out = utc.tz_localize(None).to_numpy("datetime64[s]").astype(np.int64)
    out[missing] = np.iinfo(np.int64).max
    return out


def holiday_days(country: str, years: list[int]) -> np.ndarray:
    """Public holidays of ``country`` in ``years`` as day numbers since 1970."""
    dates = sorted(holiday_calendars.country_holidays(country, years=years))
    return np.array([(d - pd.Timestamp(0).date()).days for d in dates], dtype=np.int64)


def time_bands(compiled: CompiledPlan, utc_s: np.ndarray) -> np.ndarray:
    """Band index of each call start: from local time, weekday, and public holidays."""
    plan = compiled.plan
    local = local_seconds(utc_s, plan.timezone)
    day = local // 86400
    weekday = (day + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday
    if len(day):
        first, last = (np.datetime64(int(d), "D").astype(object).year for d in (day.min(), day.max()))
        years = list(range(first, last + 1))
        weekday = np.where(np.isin(day, holiday_days(plan.holiday_country, years)), HOLIDAY, weekday)
    minute = (local % 86400) // 60
    return compiled.band_table[weekday, minute]


def resolve_lines(
    calling: pd.Series, utc_s: np.ndarray, lines: pd.DataFrame, timezone: str
) -> np.ndarray:
    """Row of ``lines`` holding each calling number at call time, -1 for none.

    ``lines`` has ``number`` (E.164), ``valid_from`` and ``valid_to`` (local dates, inclusive,
    ``valid_to`` empty for open-ended). When a number has several rows, the latest one starting
    before the call wins.
    """
    if len(lines) == 0:
        return np.full(len(calling), -1, dtype=np.int64)
    numbers = pd.Index(lines["number"].astype(str).unique())
    line_code = numbers.get_indexer(lines["number"].astype(str)).astype(np.int64)
    start = local_midnight_utc(lines["valid_from"], timezone)
    end_day = pd.to_datetime(lines["valid_to"]) + pd.Timedelta(days=1)
    end = local_midnight_utc(end_day, timezone)
    key = line_code * _KEY_SHIFT + start
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    call_code = numbers.get_indexer(calling.astype(str)).astype(np.int64)
    query = call_code * _KEY_SHIFT + utc_s
    pos = np.searchsorted(sorted_key, query, side="right") - 1
    candidate = order[np.clip(pos, 0, None)]
    ok = (call_code >= 0) & (pos >= 0) & (line_code[candidate] == call_code) & (utc_s < end[candidate])
    return np.where(ok, candidate, -1)
