"""Benchmark data: a 50,000-prefix plan, lines, and millions of CDRs."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import phonenumbers

from workbench.money import RATE_PER_PRICE
from workbench.period import Period
from workbench.rating.plan import RatePlan
from workbench.sample.calls import _digits, _durations
from workbench.sample.plan import PERIOD, TIMEZONE


def benchmark_plan(rng: np.random.Generator, prefixes: int = 50_000, zones: int = 40) -> RatePlan:
    """A plan of ``prefixes`` destinations under real country codes, nested up to 8 digits."""
    codes = np.array(sorted(str(c) for c in phonenumbers.COUNTRY_CODE_TO_REGION_CODE), dtype=object)
    chosen = set(codes.tolist())
    while len(chosen) < prefixes:
        m = prefixes - len(chosen)
        heads = codes[rng.integers(0, len(codes), m)]
        extra = rng.integers(1, 6, m)
        tails = _digits(rng, m, 5)
        chosen.update(h + t[:e] for h, t, e in zip(heads, tails, extra, strict=True))
    prefix = np.array(sorted(chosen)[:prefixes], dtype=object)
    zone_codes = [f"Z{z:02d}" for z in range(zones)]
    destinations = pd.DataFrame({"prefix": prefix, "name": "dest " + prefix,
                                 "zone_code": np.array(zone_codes, dtype=object)[rng.integers(0, zones, len(prefix))]})
    rates, intervals = [], []
    for z, zone in enumerate(zone_codes):
        for b, band in enumerate(("peak", "offpeak")):
            rid = 2 * z + b + 1
            rates.append((rid, zone, band, int(rng.integers(0, 3)) * 500, z % 10 == 0))
            price = int(rng.integers(100, 60_000))  # 1/10,000 per minute, stored in micro units
            intervals.append((rid, 0, price * RATE_PER_PRICE, 60))
            if z % 2:
                intervals.append((rid, 60, price // 2 * RATE_PER_PRICE, 1))
            if z % 5 == 0:
                intervals.append((rid, 600, price // 4 * RATE_PER_PRICE, 10))
    return RatePlan(
        code="BENCH", destinations=destinations,
        time_bands=pd.DataFrame([("peak", "0,1,2,3,4", 480, 1200)],
                                columns=["band", "weekdays", "start_minute", "end_minute"]),
        rates=pd.DataFrame(rates, columns=["rate_id", "zone_code", "band", "connect_fee_units",
                                           "charge_unanswered"]),
        intervals=pd.DataFrame(intervals, columns=["rate_id", "from_second", "price_per_minute_micros",
                                                   "increment_s"]),
    )


def benchmark_lines(rng: np.random.Generator, count: int = 20_000, customers: int = 5_000) -> pd.DataFrame:
    numbers = 33_100_000_000 + rng.choice(400_000_000, size=count, replace=False)
    return pd.DataFrame({
        "number": "+" + pd.Series(numbers).astype(str),
        "customer_id": rng.integers(1, customers + 1, count),
        "rate_plan_id": 1,
        "valid_from": date(2020, 1, 1),
        "valid_to": None,
    })


def write_benchmark_cdrs(path: str | Path, plan: RatePlan, lines: pd.DataFrame, calls: int,
                         seed: int, period: str = PERIOD, chunk: int = 1_000_000) -> None:
    """A native CDR file of ``calls`` records (UTC starts with ``Z``), written in chunks."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    month = Period.parse(period)
    lo, hi = (int(pd.Timestamp(b).value // 10**9) for b in month.utc_bounds(TIMEZONE))
    prefixes = plan.destinations["prefix"].to_numpy(dtype=object)
    numbers = lines["number"].to_numpy(dtype=object)
    schema = pa.schema([(c, pa.string()) for c in ("call_id", "start_time", "calling", "called")]
                       + [("duration_s", pa.int64())])
    options = pacsv.WriteOptions(quoting_style="none")
    with pacsv.CSVWriter(str(path), schema, write_options=options) as writer:
        for first in range(0, calls, chunk):
            m = min(chunk, calls - first)
            start = np.sort(rng.integers(lo, hi, m)).astype("datetime64[s]")
            pre = prefixes[rng.integers(0, len(prefixes), m)]
            tails = _digits(rng, m, 12)
            called = [p + t[: max(0, 12 - len(p))] for p, t in zip(pre, tails, strict=True)]
            table = pa.table({
                "call_id": pa.array(np.char.add("B", np.arange(first, first + m).astype(str))),
                "start_time": pa.array(np.char.add(np.datetime_as_string(start, unit="s"), "Z")),
                "calling": pa.array(numbers[rng.integers(0, len(numbers), m)].astype(str)),
                "called": pa.array(np.char.add("+", np.array(called, dtype=str))),
                "duration_s": pa.array(_durations(rng, m)),
            }, schema=schema)
            writer.write_table(table)

