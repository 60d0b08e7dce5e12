"""Pre-production billing benchmark: 10,000 accounts and 1 million rated calls, without PDFs.

    python benchmarks/billing.py [--customers N] [--calls N] [--seed S]

Set-up (not timed in the result): the sample generator makes an operator of that size into
``benchmarks/out/``; its reference data and CDRs are loaded into a fresh SQLite database and the
month is rated. Then it times a pre-production run of every account (reading the inputs,
building the invoices, storing the drafts) and the writing of its Excel control report, and
prints the seconds and the peak memory. Target: the run under 30 s on 2 cores.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
from datetime import datetime
from pathlib import Path

from workbench.billing import default_dates, preprod
from workbench.config import Settings
from workbench.db.engine import make_engine, upgrade
from workbench.integration import load_cdr_files
from workbench.period import Period
from workbench.rated_calls import rate_period
from workbench.reads.runs import RunOptions, run_report
from workbench.reference import load_reference
from workbench.reports.excel import write_control_report
from workbench.sample import generate_operator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import peak_rss_gib, timed  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
NOW = datetime(2026, 11, 1, 6, 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    print(f"machine: {platform.machine()}, Python {platform.python_version()}")

    data = args.out / f"operator-{args.customers}-{args.calls}-{args.seed}"
    if not (data / "cdrs").exists():
        timed("generate the operator", generate_operator, data, seed=args.seed, customers=args.customers,
              calls=args.calls)
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(database_url=f"sqlite:///{folder}/bench.sqlite", output_dir=folder)
        engine = make_engine(settings.database_url)
        upgrade(engine)
        timed("set-up: load reference data", load_reference, engine, data / "reference")
        files = sorted((data / "cdrs").iterdir())
        timed("set-up: load CDRs", load_cdr_files, engine, files, settings, lambda: NOW)
        summary, _ = timed("set-up: rate the month", rate_period, engine, "2026-10", settings, NOW)
        print(f"rated calls: {summary.rated:,}")
        invoice_date, due_date = default_dates(Period.parse("2026-10"), settings)
        options = RunOptions("2026-10", invoice_date, due_date)
        run, run_s = timed("pre-production run (no PDFs)", preprod, engine, options, settings, NOW, "bench")
        sheets, report_s = timed("control report as DataFrames", run_report, engine, run.run_id)
        _, excel_s = timed("control report to .xlsx", write_control_report, sheets, Path(folder) / "report.xlsx")
        print(f"invoices: {run.invoices:,}; run {run_s:.1f} s (target < 30 s), with the report "
              f"{run_s + report_s + excel_s:.1f} s; peak memory {peak_rss_gib():.2f} GiB")
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
