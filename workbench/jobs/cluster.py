"""Scale-out on Dask: rating and invoice PDFs on the workers of a Dask cluster.

The ``dask_scheduler`` setting (``WORKBENCH_DASK_SCHEDULER``) says where: empty, on this machine
(the default); ``local:N``, on a ``LocalCluster`` of N worker processes on 127.0.0.1 started for
the command and stopped after it; ``tcp://host:port``, on the workers of a running Dask scheduler.

**Rating** (:func:`partitioned_rater`): the client reads the period's calls as always, then
resolves each call's account at call time (the customer holding the calling line on the call's
local date, :func:`workbench.rating.classify.resolve_lines`: numbers move between customers within
a month, so the account of a number is a matter of date), and cuts the calls into partitions by
account: every call of an account is in the same partition, so its allowances are consumed in
chronological order over all its calls, as on one machine. Calls of no line are spread by call.
Each partition is rated on a worker by the same pure function, :func:`workbench.rating.rate`,
with all the lines, plans and allowance buckets of the period; the results come back to the
client, which stores them in the one transaction of :func:`workbench.rated_calls.rate_period`:
if the cluster fails, nothing is stored.

A worker that dies mid-run loses nothing: every input is a task of the graph (no data is
scattered), so the scheduler runs again, on another worker, the tasks that were running on it
and those whose results it held; after too many deaths of one task (Dask's
``distributed.scheduler.allowed-failures``, 3 by default) the job fails with nothing stored and
can be run again.

**PDFs** (:func:`render_on_cluster`): batches of invoices (:func:`workbench.documents.pdf.batches`)
rendered on the workers by :func:`workbench.documents.pdf.render_batch`; the PDFs come back to
the client, which stores them as it does those of the local process pool.

The workers need what the rating and the PDFs need: this package (the same version as the
client: functions travel by name), Dask's ``distributed``, WeasyPrint's system libraries and
fonts, and, when ``templates_dir`` is set, that folder at the same path.

This is the only module that imports Dask (lazily: the command line starts without it).
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import ConfigError, UnavailableError
from workbench.period import Period
from workbench.rated_calls import Rater
from workbench.rating import ERROR_COLUMNS, RatingResult, compile_plan, rate
from workbench.rating.classify import epoch_seconds, resolve_lines

#: on this machine, without Dask
HERE = "on this machine"
#: seconds to reach a scheduler, and to wait for its first worker
CONNECT_TIMEOUT = 30
#: calls per partition, at most (a partition is rated in one task, in the memory of one worker)
PARTITION_CALLS = 500_000
_SOURCE = "setting dask_scheduler (WORKBENCH_DASK_SCHEDULER)"

#: progress of a job on the cluster: ``progress(done, total)`` after each task done
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Cluster:
    """A Dask client and what it is connected to."""

    client: Any  # distributed.Client
    address: str
    workers: int

    @property
    def where(self) -> str:
        """``on a Dask cluster of 2 workers at tcp://127.0.0.1:8786``"""
        return f"on a Dask cluster of {self.workers} worker{'s' if self.workers != 1 else ''} at {self.address}"


@contextmanager
def cluster(setting: str, timeout: float = CONNECT_TIMEOUT) -> Iterator[Cluster | None]:
    """The cluster the ``dask_scheduler`` setting names, for the time of a job: None when empty
    (this machine); a ``LocalCluster`` of N worker processes (one thread each, on 127.0.0.1, its
    HTTP server on a free port) started and stopped around the job for ``local:N``; else a client of the scheduler
    at that address. :class:`~workbench.errors.UnavailableError` when the scheduler cannot be
    reached or has no worker within ``timeout`` seconds."""
    if not setting:
        yield None
        return
    from distributed import Client, LocalCluster

    if setting.startswith("local:"):
        workers = int(setting.removeprefix("local:"))
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=":0", silence_logs=logging.ERROR) as local, Client(local) as client:
            yield Cluster(client, local.scheduler_address, workers)
        return
    if "://" not in setting:
        raise ConfigError(f"{setting!r} is not local:N nor the address of a Dask scheduler", source=_SOURCE)
    try:
        client = Client(setting, timeout=timeout)
    except (OSError, TimeoutError) as exc:
        raise UnavailableError(f"the Dask scheduler at {setting} cannot be reached: {exc}", source=_SOURCE,
                               code="cluster_unavailable") from None
    with client:
        try:
            client.wait_for_workers(1, timeout=timeout)
        except TimeoutError:
            raise UnavailableError(f"the Dask scheduler at {setting} has no worker (start some with "
                                   f"`dask worker {setting}`)", source=_SOURCE, code="cluster_unavailable") from None
        yield Cluster(client, setting, len(client.scheduler_info()["workers"]))


def partition_keys(calls: pd.DataFrame, lines: pd.DataFrame, timezone: str, partitions: int) -> np.ndarray:
    """The partition (0 to ``partitions`` - 1) of each call: by the account holding its calling
    line at call time (:func:`~workbench.rating.classify.resolve_lines`), so that all the calls of
    an account are in one partition; a call of no line by its ``cdr_id``. int64, in the order of
    ``calls``."""
    row = resolve_lines(calls["calling"], epoch_seconds(calls["start_utc"]), lines, timezone)
    customer = np.append(lines["customer_id"].to_numpy(np.int64) if len(lines) else [], -1).astype(np.int64)
    account = np.take(customer, row, mode="wrap")  # no line (-1): the extra slot, -1
    return np.where(account >= 0, account, calls["cdr_id"].to_numpy(np.int64)) % partitions


def _same(value):
    """A value as a task of the graph: kept by the scheduler and computed again if the worker
    holding it dies (scattered data would be lost with it)."""
    return value


def _combine(calls: pd.DataFrame, results: list[RatingResult]) -> RatingResult:
    """The partitions' results as one: rated calls in the order of ``calls`` (as
    :func:`~workbench.rating.rate` returns them), errors by ``cdr_id``."""
    rated = pd.concat([r.rated for r in results if len(r.rated)] or [results[0].rated], ignore_index=True)
    position = pd.Index(calls["cdr_id"].to_numpy(np.int64)).get_indexer(rated["cdr_id"].to_numpy(np.int64))
    rated = rated.iloc[np.argsort(position, kind="stable")].reset_index(drop=True)
    errors = [r.errors for r in results if len(r.errors)]
    errors = (pd.concat(errors, ignore_index=True).sort_values("cdr_id", kind="stable", ignore_index=True)
              if errors else pd.DataFrame(columns=ERROR_COLUMNS))
    return RatingResult(rated, errors)


def _gather(on: Cluster, futures: list, progress: Progress | None) -> list:
    """The results of ``futures`` once all are done, ``progress`` told after each.
    :class:`~workbench.errors.UnavailableError` when the cluster fails them: a task whose workers
    died too often (``KilledWorker``), a scheduler gone or unreachable (what the tasks raise
    themselves is raised as it is)."""
    from concurrent.futures import CancelledError

    from distributed import as_completed
    from distributed.comm import CommClosedError
    from distributed.scheduler import KilledWorker

    try:
        if progress is not None:
            for done, _ in enumerate(as_completed(futures), 1):
                progress(done, len(futures))
        return on.client.gather(futures)
    except (KilledWorker, CancelledError, CommClosedError, OSError, TimeoutError) as exc:
        said = " ".join(str(exc).split())  # Dask's messages run over several lines
        raise UnavailableError(f"the Dask cluster at {on.address} failed ({type(exc).__name__}: {said}): nothing "
                               "stored, run the command again", source=_SOURCE, code="cluster_failed") from None


def partitioned_rater(on: Cluster, partitions: int | None = None, progress: Progress | None = None) -> Rater:
    """A rater (the signature and result of :func:`workbench.rating.rate`) that rates the calls on
    the workers of ``on``, in partitions by account (see the module).

    ``partitions``: how many (default: twice the workers, or more so that none holds more than
    :data:`PARTITION_CALLS` calls); the result does not depend on it. ``progress(done, total)``
    is called on the client as partitions are rated. Raises what the rating raises, or Dask's
    error when the cluster fails (a task whose workers died too often: ``KilledWorker``)."""

    def rater(calls: pd.DataFrame, lines: pd.DataFrame, plans: dict, period: Period | str,
              buckets: pd.DataFrame | None = None, consumed: pd.DataFrame | None = None,
              timezone: str = "Europe/Paris") -> RatingResult:
        period = Period.parse(period)
        compiled = {pid: compile_plan(p) for pid, p in plans.items()}  # here: a bad plan stops the job at once
        calls = calls.reset_index(drop=True)
        count = partitions or max(2 * on.workers, math.ceil(len(calls) / PARTITION_CALLS))
        key = partition_keys(calls, lines, timezone, count)
        parts = [calls.iloc[rows] for rows in pd.Series(np.arange(len(calls))).groupby(key).indices.values()]
        client = on.client
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*[Ll]arge (graph|object)")  # the calls travel in the graph
            shared = [client.submit(_same, value, pure=False) for value in (lines, compiled, buckets, consumed)]
            futures = [client.submit(rate, part, shared[0], shared[1], str(period), buckets=shared[2],
                                     consumed=shared[3], timezone=timezone, pure=False)
                       for part in parts or [calls]]
            try:
                results = _gather(on, futures, progress)
            finally:
                client.cancel([*futures, *shared])
        return _combine(calls, results)

    return rater


def render_on_cluster(on: Cluster, models: list[dict], operator: dict, draft: bool,
                      templates: str | None = None, progress: Progress | None = None) -> dict[str, bytes]:
    """PDFs of many invoices, by number, laid out in batches on the workers of ``on``
    (:func:`workbench.documents.pdf.render_batch`, as the local process pool does)."""
    from workbench.documents.pdf import batches, render_batch

    chunks = batches(models, on.workers)
    if not chunks:
        return {}
    futures = on.client.map(render_batch, chunks, operator=operator, draft=draft, templates=templates or None,
                            pure=False)
    out: dict[str, bytes] = {}
    try:
        for result in _gather(on, futures, progress):
            out.update(result)
    finally:
        on.client.cancel(futures)
    return out
