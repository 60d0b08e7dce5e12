"""The rating job: rate (or re-rate) the unbilled calls of a period and store them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine

from workbench.config import Settings
from workbench.jobs.cluster import Progress, cluster, partitioned_rater
from workbench.jobs.workspace import utc_now
from workbench.period import Period
from workbench.rated_calls import RatingSummary, rate_period


def rate(engine: Engine, settings: Settings, period: Period | str, now: datetime | None = None,
         progress: Progress | None = None) -> RatingSummary:
    """Rate every unbilled call of ``period`` in one transaction (see :mod:`workbench.rated_calls`),
    on this machine or, when the ``dask_scheduler`` setting names one, on a Dask cluster, in
    partitions by account (:mod:`workbench.jobs.cluster`; ``progress(done, total)`` told as
    partitions are rated); the summary's ``where`` says which. Stored on this machine in one
    transaction either way. :class:`~workbench.errors.InputError` for a bad period or rate plan,
    :class:`~workbench.errors.UnavailableError` for a scheduler that cannot be reached."""
    period = Period.parse(period)
    with cluster(settings.dask_scheduler) as on:
        if on is None:
            return rate_period(engine, period, settings, now or utc_now())
        return rate_period(engine, period, settings, now or utc_now(),
                           rater=partitioned_rater(on, progress=progress), where=on.where)
