"""Rating benchmark: 10 million generated CDRs against a 50,000-prefix plan.

    python benchmarks/rating.py [--calls N] [--prefixes N] [--seed S] [--store N]

Prints, for one run:

* the time pyarrow takes to parse the CDR CSV (the baseline);
* the rating time (classification + pricing, from frames, without storage), calls/s and the
  ratio rating / parse (target <= 1.0);
* the process's peak memory (target <= 8 GiB);
* the rate of storing rated calls in a fresh SQLite database (rows/s, target >= 300,000).

The CDR file is generated once into ``benchmarks/out/`` and reused while its parameters stay.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from workbench.db.bulk import insert_frame
from workbench.db.engine import make_engine, upgrade
from workbench.period import Period
from workbench.phone_numbers import to_digits
from workbench.rating import allowance_buckets, compile_plan, rate
from workbench.sample import benchmark_lines, benchmark_plan, write_benchmark_cdrs

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import peak_rss_gib, timed  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"


def parse(path: Path):
    """The baseline: pyarrow reads the CSV into typed columns (numbers stay text)."""
    types = {"call_id": pa.string(), "start_time": pa.timestamp("s", tz="UTC"), "calling": pa.string(),
             "called": pa.string(), "duration_s": pa.int64()}
    return pacsv.read_csv(str(path), convert_options=pacsv.ConvertOptions(column_types=types))


def calls_frame(table, digits: bool) -> pd.DataFrame:
    """The rating input (cdr_id, start_utc, calling, called, duration_s) from the parsed file;
    numbers as E.164 text, or as their int64 digits (``digits``)."""
    def number(name):
        column = table.column(name)
        return to_digits(column) if digits else column.to_pandas()

    return pd.DataFrame({
        "cdr_id": np.arange(1, table.num_rows + 1, dtype=np.int64),
        "start_utc": table.column("start_time").cast(pa.timestamp("s")).to_numpy(),
        "calling": number("calling"),
        "called": number("called"),
        "duration_s": table.column("duration_s").to_numpy(),
    })


def buckets_for(lines: pd.DataFrame) -> pd.DataFrame:
    """Every customer has unlimited calls to zone Z00 and 30 minutes to zone Z01."""
    customers = np.unique(lines["customer_id"])
    subs = pd.DataFrame({"customer_id": customers, "product_id": 1, "quantity": 1,
                         "start_date": date(2026, 1, 1), "end_date": None})
    allowances = pd.DataFrame({"product_id": [1, 1], "zone_code": ["Z00", "Z01"],
                               "seconds": [None, 1_800]})
    return allowance_buckets(subs, allowances, Period.parse("2026-10"), "Europe/Paris")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=10_000_000)
    parser.add_argument("--prefixes", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--store", type=int, default=2_000_000, help="rated calls stored in SQLite")
    parser.add_argument("--out", type=Path, default=OUT, help="folder for the generated CDR file")
    args = parser.parse_args(argv)

    print(f"machine: {platform.machine()}, {platform.processor() or '?'}, Python {platform.python_version()}, "
          f"pandas {pd.__version__}")
    rng = np.random.default_rng(args.seed)
    plan, _ = timed("generate plan", benchmark_plan, rng, args.prefixes)
    lines = benchmark_lines(rng)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"cdrs-{args.calls}-{args.prefixes}-{args.seed}.csv"
    if not path.exists():
        tmp = path.with_suffix(".part")
        timed(f"generate {args.calls:,} CDRs", write_benchmark_cdrs, tmp, plan, lines, args.calls, args.seed)
        tmp.rename(path)
    print(f"CDR file: {path} ({path.stat().st_size / 2**20:,.0f} MiB)")

    table, parse_cold = timed("pyarrow parse (baseline), first", parse, path)
    parse_warm = min(timed("pyarrow parse (baseline), again", parse, path)[1] for _ in range(2))
    compiled, _ = timed("compile plan", compile_plan, plan)
    buckets = buckets_for(lines)
    calls, _ = timed("calls frame, numbers as digits", calls_frame, table, True)
    result, rate_cold = timed("rating, first in the process", rate, calls, lines, {1: compiled}, "2026-10", buckets)
    rate_warm = min(
        timed("rating, again", rate, calls, lines, {1: compiled}, "2026-10", buckets)[1] for _ in range(2)
    )
    rated = result.rated
    text_calls, _ = timed("calls frame, numbers as text", calls_frame, table, False)
    del table
    _, text_s = timed("rating from E.164 text", rate, text_calls, lines, {1: compiled}, "2026-10", buckets)
    del text_calls
    print(f"rated {len(rated):,} calls, {len(result.errors):,} errors; {len(calls) / rate_warm:,.0f} calls/s")
    print(f"rules: {rated['rule'].value_counts().to_dict()}")
    print(f"ratio rating / parse: {rate_warm / parse_warm:.2f} warm (best of repeated runs), "
          f"{rate_cold / parse_cold:.2f} first runs; {text_s / parse_warm:.2f} from E.164 text (target <= 1.0)")
    print(f"peak memory so far: {peak_rss_gib():.2f} GiB (target <= 8)")

    store = rated.iloc[: args.store].copy()
    store["rated_at"] = pd.Timestamp(datetime(2026, 11, 1))
    store["rate_id"] = store["rate_id"].astype("Int64")
    del calls, result
    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite:///{folder}/bench.sqlite")
        upgrade(engine)

        def insert():
            with engine.begin() as connection:
                insert_frame(connection, "rated_calls", store)

        _, store_s = timed(f"store {len(store):,} rated calls (SQLite)", insert)
        engine.dispose()
    print(f"SQLite storage: {len(store) / store_s:,.0f} rows/s (target >= 300,000)")
    print(f"peak memory: {peak_rss_gib():.2f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
