"""Rating step 1: which account, destination, zone and time band each call belongs to."""

from __future__ import annotations

import holidays as holiday_calendars
import numpy as np
import pandas as pd

from workbench.phone_numbers import DigitsIndex, to_digits
from workbench.rating.plan import HOLIDAY, CompiledPlan

_GRID_S = 900  # UTC offsets change on quarter hours in every real time zone
_KEY_SHIFT = np.int64(1) << np.int64(35)  # > seconds from 1970 to 2900
_SEVERAL = -2


def epoch_seconds(values: pd.Series) -> np.ndarray:
    """Naive-UTC datetimes to int64 seconds since 1970."""
    return pd.to_datetime(values).to_numpy("datetime64[s]").view(np.int64)


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


def minute_bands(compiled: CompiledPlan, first_minute: int, span: int) -> np.ndarray:
    """Band index of each UTC minute from ``first_minute`` (minutes since 1970) for ``span``
    minutes: from local time, weekday, and public holidays.

    UTC offsets are whole quarter hours, so the band is constant within a UTC minute: the bands
    of the minutes of a period are computed once, and each call looks its minute up.
    """
    return _bands_of(compiled, (first_minute + np.arange(span, dtype=np.int64)) * 60)


def _bands_of(compiled: CompiledPlan, utc_s: np.ndarray) -> np.ndarray:
    plan = compiled.plan
    local = local_seconds(utc_s, plan.timezone)
    day = local // 86400
    weekday = (day + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday
    if len(day):
        lo, hi = int(day.min()), int(day.max())
        years = list(range(np.datetime64(lo, "D").astype(object).year,
                           np.datetime64(hi, "D").astype(object).year + 1))
        is_holiday = np.zeros(hi - lo + 1, dtype=bool)
        found = holiday_days(plan.holiday_country, years)
        is_holiday[found[(found >= lo) & (found <= hi)] - lo] = True
        weekday = np.where(is_holiday[day - lo], HOLIDAY, weekday)
    minute = (local % 86400) // 60
    return compiled.band_table[weekday, minute]


class LineIndex:
    """The customers' lines, prepared for finding the line holding a number at a given time.

    ``lines`` has ``number`` (E.164), ``valid_from`` and ``valid_to`` (local dates, inclusive,
    ``valid_to`` empty for open-ended). When a number has several rows, the latest one
    starting before the call wins.
    """

    def __init__(self, lines: pd.DataFrame, timezone: str):
        self.size = len(lines)
        line_digits = to_digits(lines["number"]) if len(lines) else np.zeros(0, np.int64)
        self.numbers = DigitsIndex(np.unique(line_digits))
        self.line_code = self.numbers.get_indexer(line_digits).astype(np.int64)
        self.start = local_midnight_utc(lines["valid_from"], timezone)
        self.end = local_midnight_utc(pd.to_datetime(lines["valid_to"]) + pd.Timedelta(days=1), timezone)
        key = self.line_code * _KEY_SHIFT + self.start
        self.order = np.argsort(key, kind="stable")
        self.sorted_key = key[self.order]
        rows_per_number = np.bincount(self.line_code, minlength=len(self.numbers))
        # by number: its line row when it has one, _SEVERAL when it has more (then by time);
        # one more slot answers the numbers that are no line (-1, taken with mode="wrap")
        self.single_row = np.full(len(self.numbers) + 1, -1, dtype=np.int64)
        self.single_row[:-1] = _SEVERAL
        single = rows_per_number[self.line_code] == 1
        self.single_row[self.line_code[single]] = np.flatnonzero(single)
        # validity by row, and a last row that no call fits, for the calls with no line
        self.start_ext = np.append(self.start, np.iinfo(np.int64).max)
        self.end_ext = np.append(self.end, np.iinfo(np.int64).min)

    def lookup(self, calling: pd.Series | np.ndarray, utc_s: np.ndarray) -> np.ndarray:
        """Row of ``lines`` holding each calling number (E.164 text or digits) at ``utc_s``,
        -1 for none."""
        if self.size == 0:
            return np.full(len(utc_s), -1, dtype=np.int64)
        code = self.numbers.get_indexer(to_digits(calling))
        row = np.take(self.single_row, code, mode="wrap")
        several = np.flatnonzero(row == _SEVERAL)  # numbers with several rows: the one in force
        if len(several):
            number = code[several].astype(np.int64)
            pos = np.searchsorted(self.sorted_key, number * _KEY_SHIFT + utc_s[several], side="right") - 1
            candidate = self.order[np.maximum(pos, 0)]
            row[several] = np.where((pos >= 0) & (self.line_code[candidate] == number), candidate, -1)
        valid = (utc_s >= np.take(self.start_ext, row, mode="wrap")) & (utc_s < np.take(self.end_ext, row, mode="wrap"))
        return np.where(valid, row, -1)


def resolve_lines(
    calling: pd.Series | np.ndarray, utc_s: np.ndarray, lines: pd.DataFrame, timezone: str
) -> np.ndarray:
    """Row of ``lines`` holding each calling number at call time, -1 for none (see
    :class:`LineIndex`)."""
    return LineIndex(lines, timezone).lookup(calling, utc_s)
