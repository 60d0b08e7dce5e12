"""The rating job: rate (or re-rate) the unbilled calls of a period and store them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine

from workbench.config import Settings
from workbench.jobs.progress import Progress, progress_of
from workbench.jobs.workspace import utc_now
from workbench.period import Period
from workbench.rated_calls import RatingSummary, rate_period


def rate(engine: Engine, settings: Settings, period: Period | str, now: datetime | None = None,
         progress: bool | Progress | None = None) -> RatingSummary:
    """Rate every unbilled call of ``period`` in one transaction (see :mod:`workbench.rated_calls`);
    :class:`~workbench.errors.InputError` for a bad period or rate plan. ``progress``: called
    with the calls rated once stored (:mod:`workbench.jobs.progress`), or ``True`` for a
    progress bar in calls/s. Ctrl-C leaves the period's ratings as they were."""
    with progress_of(progress, f"rate {Period.parse(period)}") as update:
        return rate_period(engine, Period.parse(period), settings, now or utc_now(), progress=update)
