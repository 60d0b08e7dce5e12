"""The rating job: rate (or re-rate) the unbilled calls of a period and store them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine

from workbench.config import Settings
from workbench.jobs.workspace import utc_now
from workbench.period import Period
from workbench.rated_calls import RatingSummary, rate_period


def rate(engine: Engine, settings: Settings, period: Period | str, now: datetime | None = None) -> RatingSummary:
    """Rate every unbilled call of ``period`` in one transaction (see :mod:`workbench.rated_calls`);
    :class:`~workbench.errors.InputError` for a bad period or rate plan."""
    return rate_period(engine, Period.parse(period), settings, now or utc_now())
