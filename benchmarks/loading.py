"""Loading CDR files: time and peak memory of ``load-cdrs`` on the sample's files (or any).

    .venv/bin/python benchmarks/loading.py                      # data/sample: reference, then its CDR files
    .venv/bin/python benchmarks/loading.py --files big.csv.gz   # other files, after the sample's reference

A fresh SQLite database in a temporary folder; prints the load time, the records accepted and
rejected, and the process's peak resident memory.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import peak_rss_gib, timed  # noqa: E402

from workbench import jobs  # noqa: E402
from workbench.config import Settings  # noqa: E402

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", nargs="*", help="CDR files (default: the sample's)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(database_url=f"sqlite:///{folder}/bench.sqlite")
        engine = jobs.open_database(settings)
        timed("reference", jobs.load_reference, engine, settings, SAMPLE / "reference")
        files = args.files or jobs.cdr_files(SAMPLE / "cdrs")
        rss = peak_rss_gib()
        load, _ = timed("CDR files", jobs.load_cdrs, engine, settings, files, clock=lambda: datetime(2026, 11, 2))
        print(f"records accepted {load.accepted:,}, rejected {load.rejected:,}")
        print(f"peak memory {peak_rss_gib():.2f} GiB (before the CDR files: {rss:.2f} GiB)")


if __name__ == "__main__":
    main()
