"""Scale-out benchmark: rating and invoice PDFs on this machine and on Dask clusters of 1 and 2 workers.

    python benchmarks/cluster.py [--customers 1000] [--calls 200000] [--invoices 200] [--workers 1,2]
    python benchmarks/cluster.py --scheduler tcp://host:8786      # a running cluster instead of LocalClusters

Set-up (not timed): a sample operator of ``--customers`` accounts and ``--calls`` calls is
generated (once, into ``benchmarks/out/``), loaded into a fresh SQLite database, rated and billed
in pre-production (drafts, no PDFs). Then, for this machine and for a ``LocalCluster`` of each
number of ``--workers`` worker processes on 127.0.0.1 (started before the clock starts), it times,
best of ``--repeat`` after one warm-up run:

* **rating**: the partitioned rating of the period's calls (:func:`workbench.jobs.cluster.partitioned_rater`:
  accounts resolved at call time, partitions by account, :func:`workbench.rating.rate` on the
  workers, results back), from the frames read from the database, without storage; on this
  machine, :func:`workbench.rating.rate` itself; calls/s;
* **the rate job**: ``workbench rate`` as a user runs it (read, rate, store in one transaction), calls/s;
* **PDFs**: ``--invoices`` draft invoices rendered (on this machine by the process pool on all cores,
  on the cluster by :func:`workbench.jobs.cluster.render_on_cluster`), invoices/s.

Every cluster's rated calls are checked equal, call for call, to this machine's.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pandas as pd
from sqlalchemy import select

from workbench import jobs
from workbench.config import Settings
from workbench.db import schema as s
from workbench.documents import invoice_models, operator_identity, render_invoices
from workbench.jobs.cluster import cluster, partitioned_rater, render_on_cluster
from workbench.period import Period
from workbench.rating import allowance_buckets, rate
from workbench.reads import calls as stored_calls
from workbench.sample import generate_operator

OUT = Path(__file__).resolve().parent / "out"
NOW = datetime(2026, 11, 1, 6, 0)
PERIOD = Period.parse("2026-10")


def best(repeat: int, func, *args, **kwargs):
    """One warm-up run, then the best of ``repeat``: (result, seconds)."""
    result = func(*args, **kwargs)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = func(*args, **kwargs)
        times.append(time.perf_counter() - t0)
    return result, min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000)
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--invoices", type=int, default=200, help="draft invoices rendered as PDFs")
    parser.add_argument("--workers", default="1,2", help="LocalCluster sizes, comma-separated")
    parser.add_argument("--scheduler", default="", help="a running scheduler (tcp://host:port) instead")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")

    data = args.out / f"cluster-operator-{args.customers}-{args.calls}"
    if not (data / "cdrs").exists():
        generate_operator(data, seed=11, customers=args.customers, calls=args.calls)
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(database_url=f"sqlite:///{folder}/bench.sqlite", output_dir=folder,
                            storage_url=f"{folder}/ftp", outbox_dir=f"{folder}/outbox")
        engine = jobs.open_database(settings)
        jobs.load_reference(engine, settings, data / "reference")
        jobs.load_cdrs(engine, settings, jobs.cdr_files(data / "cdrs"), clock=lambda: NOW)
        jobs.rate(engine, settings, PERIOD, NOW)
        run = jobs.preprod(engine, settings, jobs.run_options(settings, PERIOD), NOW).run
        with engine.connect() as connection:
            inputs = dict(calls=stored_calls.period_calls(connection, PERIOD, settings.timezone, billed=False),
                          lines=stored_calls.lines(connection), plans=stored_calls.rate_plans(connection))
            subs, allowances = stored_calls.subscriptions_with_allowances(connection)
            ids = [r[0] for r in connection.execute(select(s.Invoice.id).where(s.Invoice.run_id == run.run_id)
                                                    .order_by(s.Invoice.number).limit(args.invoices))]
            models = invoice_models(connection, ids)
        inputs["buckets"] = allowance_buckets(subs, allowances, PERIOD, settings.timezone)
        operator = operator_identity(settings)
        calls = len(inputs["calls"])
        print(f"operator: {args.customers:,} accounts, {calls:,} calls in {PERIOD}; {len(models)} invoices rendered")

        rows = []

        def show(row) -> None:
            """Print a row of the table as soon as it is measured."""
            if not rows:
                print(f"\n{'where':<56} {'rating calls/s':>15} {'rate job calls/s':>17} {'PDFs invoices/s':>16}")
            rows.append(row)
            where, _workers, seconds, job, pdf = row
            print(f"{where:<56} {calls / seconds:>15,.0f} {calls / job:>17,.0f} {len(models) / pdf:>16.2f}",
                  flush=True)

        expected, seconds = best(args.repeat, rate, **inputs, period=PERIOD, timezone=settings.timezone)
        _, job = best(args.repeat, jobs.rate, engine, settings, PERIOD, NOW)
        _, pdf = best(args.repeat, render_invoices, models, operator, True)
        show(("this machine", os.cpu_count(), seconds, job, pdf))
        expected = expected.rated.sort_values("cdr_id", ignore_index=True)
        for setting in [args.scheduler] if args.scheduler else [f"local:{n}" for n in args.workers.split(",")]:
            t0 = time.perf_counter()
            with cluster(setting) as there:
                print(f"{there.where}: started in {time.perf_counter() - t0:.1f} s", flush=True)
                rater = partitioned_rater(there)
                got, seconds = best(args.repeat, rater, **inputs, period=PERIOD, timezone=settings.timezone)
                pd.testing.assert_frame_equal(got.rated.sort_values("cdr_id", ignore_index=True), expected)
                # the job connects to the running cluster by its address, as to a remote scheduler
                on = replace(settings, dask_scheduler=there.address)
                _, job = best(args.repeat, jobs.rate, engine, on, PERIOD, NOW)
                _, pdf = best(args.repeat, render_on_cluster, there, models, operator, True)
                show((there.where.removeprefix("on "), there.workers, seconds, job, pdf))
        engine.dispose()

    return 0


if __name__ == "__main__":
    logging.getLogger("distributed").setLevel(logging.ERROR)
    sys.exit(main())
