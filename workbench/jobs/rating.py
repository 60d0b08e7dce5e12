"""The rating job: rate (or re-rate) the unbilled calls of a period and store them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine

from workbench.config import Settings
from workbench.jobs.cluster import Progress as PartitionProgress
from workbench.jobs.cluster import cluster, partitioned_rater
from workbench.jobs.progress import Progress, progress_of
from workbench.jobs.workspace import objects_before_frozen, utc_now
from workbench.period import Period
from workbench.rated_calls import RatingSummary, rate_period


def rate(engine: Engine, settings: Settings, period: Period | str, now: datetime | None = None,
         progress: bool | Progress | None = None,
         on_partition: PartitionProgress | None = None) -> RatingSummary:
    """Rate every unbilled call of ``period`` in one transaction (see :mod:`workbench.rated_calls`),
    on this machine or, when the ``dask_scheduler`` setting names one, on a Dask cluster, in
    partitions by account (:mod:`workbench.jobs.cluster`; ``on_partition(done, total)`` told as
    partitions are rated); the summary's ``where`` says which. Stored on this machine in one
    transaction either way. ``progress``: called with the calls rated once stored
    (:mod:`workbench.jobs.progress`), or ``True`` for a progress bar in calls/s. Ctrl-C leaves the
    period's ratings as they were. :class:`~workbench.errors.InputError` for a bad period or rate
    plan, :class:`~workbench.errors.UnavailableError` for a scheduler that cannot be reached."""
    period = Period.parse(period)
    with (progress_of(progress, f"rate {period}") as update, cluster(settings.dask_scheduler) as on,
          objects_before_frozen()):
        if on is None:
            return rate_period(engine, period, settings, now or utc_now(), progress=update)
        return rate_period(engine, period, settings, now or utc_now(), progress=update,
                           rater=partitioned_rater(on, progress=on_partition), where=on.where)
