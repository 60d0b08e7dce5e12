"""CDR integration: files into the database, every record accepted or rejected with a reason.

A file is stored in one transaction (its ``cdr_files`` row, its accepted calls, its rejects), so
a failure leaves the database as it was. A file whose bytes were already loaded is skipped; a
call already stored (from any file) is rejected as a duplicate, so overlapping files store no
call twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Engine, insert, select

from workbench.cdr.formats import check, file_error, parse
from workbench.config import Settings
from workbench.db import schema as s
from workbench.db.bulk import insert_frame
from workbench.db.frames import read_frame
from workbench.phone_numbers import from_digits, to_digits
from workbench.rating.classify import epoch_seconds, resolve_lines
from workbench.reads import calls as stored_calls


@dataclass(frozen=True)
class LoadReport:
    """What became of one file."""

    file: str
    status: str  # "loaded" or "skipped" (already loaded)
    format: str = ""
    records: int = 0
    accepted: int = 0
    rejected: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    file_id: int | None = None


def _unknown_lines(cand: pd.DataFrame, lines: pd.DataFrame, timezone: str) -> np.ndarray:
    if cand.empty:
        return np.zeros(0, dtype=bool)
    row = resolve_lines(cand["calling"], epoch_seconds(cand["start_utc"]), lines, timezone)
    return row < 0


def _stored_duplicates(connection, cand: pd.DataFrame) -> pd.Series:
    """For each candidate, the id of the identical stored call, or <NA>."""
    if cand.empty:
        return pd.Series(dtype="Int64")
    key = ["calling", "called", "start_utc", "duration_s"]
    stmt = select(s.Cdr.id, s.Cdr.calling, s.Cdr.called, s.Cdr.start_utc, s.Cdr.duration_s).where(
        s.Cdr.start_utc >= cand["start_utc"].min().to_pydatetime(),
        s.Cdr.start_utc <= cand["start_utc"].max().to_pydatetime(),
    )
    stored = read_frame(connection, stmt)
    if stored.empty:
        return pd.Series(pd.NA, index=cand.index, dtype="Int64")
    stored["start_utc"] = pd.to_datetime(stored["start_utc"]).astype("datetime64[s]")
    for column in ("calling", "called", "duration_s"):
        stored[column] = stored[column].astype(np.int64)
    merged = cand[key].merge(stored, on=key, how="left")
    return pd.Series(merged["id"].to_numpy(), index=cand.index, dtype="Int64")


def load_cdr_file(
    engine: Engine,
    path: str | Path,
    settings: Settings,
    now: datetime,
    fmt: str = "auto",
) -> LoadReport:
    """Load one CDR file (native or Asterisk, plain or gzip). Raises :class:`~workbench.errors.InputError` for a
    malformed file, storing nothing of it."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise file_error(str(path), None, f"cannot be read ({exc.strerror})") from None
    digest = hashlib.sha256(data).hexdigest()
    with engine.connect() as connection:
        known = connection.execute(select(s.CdrFile.name).where(s.CdrFile.sha256 == digest)).first()
    if known:
        return LoadReport(str(path), "skipped")
    parsed = parse(path.name, data, fmt)
    cand, rejects = check(parsed, settings.timezone, settings.home_country_code)
    cand = cand.assign(calling=to_digits(cand["calling"]), called=to_digits(cand["called"]))
    with engine.begin() as connection:
        unknown = _unknown_lines(cand, stored_calls.lines(connection), settings.timezone)
        if unknown.any():
            bad = cand[unknown]
            rejects = pd.concat([rejects, pd.DataFrame({
                "line_no": bad["line_no"],
                "reason": "unknown_line",
                "message": "calling number " + from_digits(bad["calling"]).to_numpy(dtype=object)
                + " is no customer's line on " + bad["start_utc"].dt.strftime("%Y-%m-%d %H:%M:%S")
                + " UTC",
                "raw": parsed.records.set_index("line_no").loc[bad["line_no"], "raw"].to_numpy(),
                "start_utc": bad["start_utc"].to_numpy(),
            })])
            cand = cand[~unknown]
        stored = _stored_duplicates(connection, cand)
        dup = stored.notna().to_numpy()
        if dup.any():
            bad = cand[dup]
            rejects = pd.concat([rejects, pd.DataFrame({
                "line_no": bad["line_no"],
                "reason": "duplicate",
                "message": "the same call is already loaded (call " + stored[dup].astype(str) + ")",
                "raw": parsed.records.set_index("line_no").loc[bad["line_no"], "raw"].to_numpy(),
                "start_utc": bad["start_utc"].to_numpy(),
            })])
            cand = cand[~dup]
        file_id = connection.execute(
            insert(s.CdrFile).values(
                name=path.name, sha256=digest, format=parsed.format, loaded_at=now,
                records=len(parsed.records), accepted=len(cand), rejected=len(rejects),
            ).returning(s.CdrFile.id)
        ).scalar_one()
        calls = cand.assign(file_id=file_id)[
            ["file_id", "line_no", "start_utc", "calling", "called", "duration_s", "switch_id"]
        ]
        insert_frame(connection, "cdrs", calls)
        rejects = rejects.sort_values("line_no").assign(file_id=file_id)
        if "start_utc" not in rejects:
            rejects["start_utc"] = pd.NaT
        rejects["start_utc"] = pd.to_datetime(rejects["start_utc"])
        insert_frame(connection, "cdr_rejects",
                     rejects[["file_id", "line_no", "reason", "message", "raw", "start_utc"]])
    by_reason = rejects["reason"].value_counts().sort_index()
    return LoadReport(
        str(path), "loaded", parsed.format, len(parsed.records), len(cand), len(rejects),
        {str(k): int(v) for k, v in by_reason.items()}, file_id,
    )


def load_cdr_files(
    engine: Engine,
    paths: Iterable[str | Path],
    settings: Settings,
    now: Callable[[], datetime],
    fmt: str = "auto",
    progress: bool = False,
) -> list[LoadReport]:
    """Load several files, each in its own transaction (a bad file stops the batch with its
    error; the files before it stay loaded)."""
    from tqdm.auto import tqdm

    paths = list(paths)
    reports = []
    for path in tqdm(paths, desc="CDR files", unit="file", disable=not progress):
        reports.append(load_cdr_file(engine, path, settings, now(), fmt))
    return reports
