"""The month at volume: ``load-cdrs``, ``rate`` and a pre-production run with its report, on SQLite
and on PostgreSQL, against a hand-written DuckDB pipeline doing the same (``duckdb_peer.py``).

    python benchmarks/month.py                                # 10,000 accounts, 1 million calls
    python benchmarks/month.py --calls 10000000               # 10 million calls
    python benchmarks/month.py --customers 500 --calls 50000 --rounds 1 --backends sqlite,duckdb

The operator is generated once (the sample generator, ``workbench.sample.generate_operator``)
into ``benchmarks/out/``. Each round runs every back-end in turn (alternating, so that a noisy
neighbour weighs on all of them), each in a process of its own on a new database, and prints
for each step the seconds and calls/s, and the process's peak memory (at the end, and after
``load-cdrs`` + ``rate``: the storage measure reads all rated calls again). PostgreSQL runs on a
throwaway server (``initdb``/``pg_ctl``, fsync off) started for the benchmark. Then it prints,
per back-end, the best load + rate of the rounds against the peer's best (targets: <= 1.0 on
SQLite, <= 1.5 on PostgreSQL) and the storage speed of the rated calls (target >= 300,000 rows/s).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import new_postgres_database, peak_rss_gib, postgres_server  # noqa: E402

OUT = HERE / "out"
PERIOD = "2026-10"
NOW = datetime(2026, 11, 2, 6, 0)


def operator(args) -> Path:
    from workbench.sample import generate_operator

    data = args.out / f"operator-{args.customers}-{args.calls}-{args.seed}"
    if not (data / "cdrs").exists():
        t0 = time.perf_counter()
        generate_operator(data, seed=args.seed, customers=args.customers, calls=args.calls)
        print(f"generated the operator in {time.perf_counter() - t0:.1f} s: {data}", flush=True)
    return data


def ours(data: Path, url: str, folder: str, preprod: bool = True) -> dict:
    """``load-cdrs``, ``rate`` and ``preprod`` (with its report) of the jobs layer, timed."""
    from workbench import jobs
    from workbench.config import Settings
    from workbench.period import Period
    from workbench.rated_calls import rated_calls, store_period

    settings = Settings(database_url=url, output_dir=f"{folder}/out", storage_url=f"{folder}/ftp")
    engine = jobs.open_database(settings)
    steps: dict[str, float] = {}
    cpu: dict[str, float] = {}

    def step(name, func, *args, **kwargs):
        t0, c0 = time.perf_counter(), time.process_time()
        result = func(*args, **kwargs)
        steps[name] = time.perf_counter() - t0
        cpu[name] = time.process_time() - c0
        return result

    step("reference", jobs.load_reference, engine, settings, data / "reference", clock=lambda: NOW)
    load = step("load-cdrs", jobs.load_cdrs, engine, settings, jobs.cdr_files(data / "cdrs"), clock=lambda: NOW)
    summary = step("rate", jobs.rate, engine, settings, PERIOD, NOW)
    peak_job = peak_rss_gib()  # load-cdrs + rate, before the steps below read more
    options = jobs.run_options(settings, PERIOD, today=NOW.date())
    invoices = None
    if not preprod:
        result = None
    else:
        result = step("preprod + report", jobs.preprod, engine, settings, options, NOW, "bench")
        invoices = result.run.invoices
    # storage alone: the period's rated calls stored again as rating stores them (the period's
    # blocks of unbilled ratings replaced), in a transaction rolled back
    rated = rated_calls(engine, PERIOD).drop(columns=["id", "rated_at", "invoice_id"], errors="ignore")
    with engine.connect() as connection:
        transaction = connection.begin()
        connection.exec_driver_sql("DELETE FROM rated_calls")
        t0 = time.perf_counter()
        store_period(connection, Period.parse(PERIOD), rated, rated.iloc[:0, :0], NOW)
        store_s = time.perf_counter() - t0
        transaction.rollback()
    engine.dispose()
    return {"steps": steps, "cpu": cpu, "calls": load.accepted, "rejected": load.rejected, "rated": summary.rated,
            "amount_units": summary.amount_units, "invoices": invoices,
            "store_rows_per_s": len(rated) / store_s if store_s else 0.0, "peak_job_gib": peak_job,
            "peak_gib": peak_rss_gib()}


def peer(data: Path, folder: str) -> dict:
    import duckdb_peer

    files = {p.name: p for p in (data / "cdrs").iterdir()}
    native = next(p for n, p in files.items() if n.startswith("switch"))
    asterisk = next(p for n, p in files.items() if n.startswith("asterisk"))
    con = duckdb_peer.connect(Path(folder) / "peer.duckdb", data / "reference")
    steps: dict[str, float] = {}
    cpu: dict[str, float] = {}
    t0, c0 = time.perf_counter(), time.process_time()
    loaded = duckdb_peer.load(con, native, asterisk)
    steps["load-cdrs"], cpu["load-cdrs"] = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    rated = duckdb_peer.rate(con, PERIOD)
    steps["rate"], cpu["rate"] = time.perf_counter() - t0, time.process_time() - c0
    con.close()
    return {"steps": steps, "cpu": cpu, "calls": loaded["calls"], "rejected": loaded["rejects"],
            "rated": rated["rated"],
            "amount_units": rated["amount_units"], "peak_gib": peak_rss_gib()}


def one(args) -> None:
    """One back-end in this process (called by :func:`main` in a child process): a JSON line."""
    data = operator(args)
    with tempfile.TemporaryDirectory() as folder:
        if args.one == "duckdb":
            result = peer(data, folder)
        elif args.one == "sqlite":
            result = ours(data, f"sqlite:///{folder}/bench.sqlite", folder, not args.no_preprod)
        else:
            result = ours(data, args.one, folder, not args.no_preprod)
    print("RESULT " + json.dumps(result), flush=True)


def run_child(args, backend: str) -> dict:
    command = [sys.executable, __file__, "--customers", str(args.customers), "--calls", str(args.calls),
               "--seed", str(args.seed), "--out", str(args.out), "--one", backend,
               *(["--no-preprod"] if args.no_preprod else [])]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        print(done.stdout[-2000:], done.stderr[-4000:], file=sys.stderr)
        raise SystemExit(f"{backend}: failed")
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=1_000_000, help="1000000 (default) or 10000000, or any")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--backends", default="duckdb,sqlite,postgresql")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--no-preprod", action="store_true",
                        help="leave out the pre-production run and its report (load-cdrs and rate only)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        one(args)
        return 0
    print(f"machine: {platform.machine()}, {platform.processor() or ''} Python {platform.python_version()}; "
          f"{args.customers:,} accounts, {args.calls:,} calls generated", flush=True)
    operator(args)
    backends = args.backends.split(",")
    results: dict[str, list[dict]] = {b: [] for b in backends}
    server = postgres_server() if "postgresql" in backends else None
    url = server.__enter__() if server else None
    try:
        for round_ in range(1, args.rounds + 1):
            for number, backend in enumerate(backends):
                target = backend
                if backend == "postgresql":
                    target = new_postgres_database(url, f"bench_{round_}_{number}")
                result = run_child(args, target)
                results[backend].append(result)
                steps = result["steps"]
                shown = ", ".join(f"{name} {seconds:.2f} s (cpu {result['cpu'][name]:.2f} s)"
                                  for name, seconds in steps.items())
                through = steps["load-cdrs"] + steps["rate"]
                extra = (f", storage {result['store_rows_per_s']:,.0f} rated calls/s"
                         if "store_rows_per_s" in result else "")
                print(f"round {round_} {backend:<10} {shown}; load + rate {through:.2f} s, "
                      f"{result['calls'] / through:,.0f} calls/s; {result['calls']:,} calls, "
                      f"{result['rejected']:,} rejects, {result['rated']:,} rated "
                      f"({result['amount_units']:,} units){extra}; peak {result['peak_gib']:.2f} GiB"
                      + (f" (after load + rate {result['peak_job_gib']:.2f} GiB)" if "peak_job_gib" in result else ""),
                      flush=True)
    finally:
        if server:
            server.__exit__(None, None, None)
    if "duckdb" in results and results["duckdb"]:
        for what in ("steps", "cpu"):
            best_peer = min(r[what]["load-cdrs"] + r[what]["rate"] for r in results["duckdb"])
            for backend, runs in results.items():
                if backend == "duckdb" or not runs:
                    continue
                best = min(r[what]["load-cdrs"] + r[what]["rate"] for r in runs)
                target = 1.0 if backend == "sqlite" else 1.5
                label = "seconds" if what == "steps" else "cpu seconds (all threads)"
                print(f"ratio load + rate, {backend} / DuckDB, {label} (best of {len(runs)}): {best:.2f} / "
                      f"{best_peer:.2f} = {best / best_peer:.2f} (target <= {target})")
    for backend, runs in results.items():
        if runs and "store_rows_per_s" in runs[0]:
            print(f"rated calls stored on {backend}: {max(r['store_rows_per_s'] for r in runs):,.0f} rows/s "
                  "(target >= 300,000)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
