"""Billing periods: calendar months, named ``YYYY-MM``."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from workbench.errors import InputError

_PERIOD = re.compile(r"^([0-9]{4})-([0-9]{2})$")  # ASCII digits only


def local_time(moment: datetime, timezone: str) -> datetime:
    """``moment`` (aware, or naive UTC as the database keeps times) as the naive local time of
    ``timezone``: the operator's clock, from which every document date, numbering year and period
    decision is taken."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo("UTC"))
    return aware.astimezone(ZoneInfo(timezone)).replace(tzinfo=None)


def local_date(moment: datetime, timezone: str) -> date:
    """The operator's date at ``moment`` (see :func:`local_time`): 2026-12-31 23:30 UTC is
    2027-01-01 in Paris."""
    return local_time(moment, timezone).date()


@dataclass(frozen=True, order=True)
class Period:
    """A calendar month; ``start`` is its first day, ``end`` the first day of the next month."""

    year: int
    month: int

    @classmethod
    def parse(cls, text: str | Period) -> Period:
        if isinstance(text, Period):
            return text
        match = _PERIOD.match(str(text).strip())
        if not match or not 1 <= int(match.group(2)) <= 12:
            raise InputError(f"{text!r} is not a billing period; expected YYYY-MM, e.g. 2026-10", code="bad_period")
        return cls(int(match.group(1)), int(match.group(2)))

    @classmethod
    def of(cls, day: date) -> Period:
        return cls(day.year, day.month)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def start(self) -> date:
        return date(self.year, self.month, 1)

    @property
    def end(self) -> date:
        return self.start + timedelta(days=self.days)

    @property
    def days(self) -> int:
        return calendar.monthrange(self.year, self.month)[1]

    def next(self) -> Period:
        return Period.of(self.end)

    def previous(self) -> Period:
        return Period.of(self.start - timedelta(days=1))

    def utc_bounds(self, timezone: str) -> tuple[datetime, datetime]:
        """The period's [start, end) as naive UTC datetimes, the month being local to ``timezone``."""
        tz = ZoneInfo(timezone)
        utc = ZoneInfo("UTC")

        def to_utc(day: date) -> datetime:
            local = datetime(day.year, day.month, day.day, tzinfo=tz)
            return local.astimezone(utc).replace(tzinfo=None)

        return to_utc(self.start), to_utc(self.end)
