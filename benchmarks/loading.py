"""Loading CDR files: time and peak memory of ``load-cdrs`` on the sample's files (or any).

    .venv/bin/python benchmarks/loading.py                      # data/sample: reference, then its CDR files
    .venv/bin/python benchmarks/loading.py --files big.csv.gz   # other files, after the sample's reference
    .venv/bin/python benchmarks/loading.py --operator benchmarks/out/operator-10000-1000000-2026 --shuffle

A fresh SQLite database in a temporary folder; prints the load time, the records accepted and
rejected, and the process's peak resident memory. ``--operator`` loads a generated operator's
reference data and CDR files (``benchmarks/month.py`` makes them); ``--shuffle`` loads copies of
the CDR files with their records in a random order (seeded; a native file keeps its header
first), as a switch that writes its calls out of time order would: each chunk of such a file
spans the whole month.
"""

from __future__ import annotations

import argparse
import gzip
import random
import sys
import tempfile
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import peak_rss_gib, timed  # noqa: E402

from workbench import jobs  # noqa: E402
from workbench.config import Settings  # noqa: E402

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"


def shuffled(path: Path, folder: Path, seed: int) -> Path:
    """A copy of the CDR file ``path`` (plain or gzip) in ``folder`` with its records in a random
    order; a first line that is a header (no digit in it) stays first."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="") as stream:
        lines = stream.readlines()
    header = [lines.pop(0)] if lines and not any(c.isdigit() for c in lines[0]) else []
    random.Random(seed).shuffle(lines)
    copy = folder / path.name
    with opener(copy, "wt", encoding="utf-8", newline="") as stream:
        stream.writelines(header + lines)
    return copy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", nargs="*", help="CDR files (default: the sample's)")
    parser.add_argument("--operator", type=Path, help="a generated operator's folder (reference/, cdrs/)")
    parser.add_argument("--shuffle", action="store_true", help="load the files with their records shuffled")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    source = args.operator or SAMPLE
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(database_url=f"sqlite:///{folder}/bench.sqlite")
        engine = jobs.open_database(settings)
        timed("reference", jobs.load_reference, engine, settings, source / "reference")
        files = [Path(f) for f in args.files] if args.files else jobs.cdr_files(source / "cdrs")
        if args.shuffle:
            (Path(folder) / "shuffled").mkdir()
            files = [shuffled(f, Path(folder) / "shuffled", args.seed) for f in files]
        rss = peak_rss_gib()
        load, _ = timed("CDR files", jobs.load_cdrs, engine, settings, files, clock=lambda: datetime(2026, 11, 2))
        print(f"records accepted {load.accepted:,}, rejected {load.rejected:,}")
        print(f"peak memory {peak_rss_gib():.2f} GiB (before the CDR files: {rss:.2f} GiB)")


if __name__ == "__main__":
    main()
