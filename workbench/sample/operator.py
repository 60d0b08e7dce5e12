"""The sample operator written as the documented CSV files (``reference/``, ``cdrs/``)."""

from __future__ import annotations

import csv
import gzip
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.period import Period
from workbench.reference import COLUMNS, CUSTOMER_EXTRA_COLUMNS
from workbench.sample.calls import _asterisk_bytes, _calls, _native_bytes, _spoil
from workbench.sample.customers import _customers
from workbench.sample.plan import PERIOD, plan_rows


def _write_csv(path: Path, header: list[str], rows) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        count = 0
        for row in rows:
            writer.writerow(["" if v is None else v.isoformat() if isinstance(v, date) else v for v in row])
            count += 1
    return count


def generate_operator(out: str | Path, seed: int = 2026, customers: int = 200, calls: int = 200_000,
                      period: str = PERIOD) -> dict[str, int]:
    """Write the sample operator (``reference/*.csv``, ``cdrs/*``) to ``out``; returns row counts."""
    out = Path(out)
    rng = np.random.default_rng(seed)
    month = Period.parse(period)
    tables = plan_rows()
    op = _customers(rng, customers, month)
    tables.update(
        customers=op.customers, contacts=op.contacts, lines=[row[:4] for row in op.lines],
        subscriptions=op.subscriptions, one_off_charges=op.one_offs, mandates=op.mandates,
    )
    counts = {name: _write_csv(out / "reference" / f"{name}.csv",
                               COLUMNS[name] + (CUSTOMER_EXTRA_COLUMNS if name == "customers" else []), rows)
              for name, rows in tables.items()}

    frame = _calls(rng, op, calls, month)
    text = _spoil(rng, frame)
    # the customers behind an Asterisk PBX send their calls in its Master.csv; the switch's
    # export repeats the first 500 of them (the overlap must not be stored twice)
    pbx = text["account"].isin({c[0] for i, c in enumerate(op.customers) if i % 10 == 3}).to_numpy()
    pbx_rows = text[pbx]
    native_rows = pd.concat([text[~pbx], pbx_rows.iloc[:500]]).sort_values("local_ts", kind="stable")
    cdrs = out / "cdrs"
    cdrs.mkdir(parents=True, exist_ok=True)
    name = f"switch-{period}.csv.gz"
    with gzip.GzipFile(cdrs / name, "wb", mtime=0) as fh:
        fh.write(_native_bytes(native_rows, 1))
    with gzip.GzipFile(cdrs / "asterisk-Master.csv.gz", "wb", mtime=0) as fh:
        fh.write(_asterisk_bytes(pbx_rows, rng))
    counts["cdrs_native"] = len(native_rows)
    counts["cdrs_asterisk"] = len(pbx_rows)
    return counts

