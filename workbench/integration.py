"""CDR integration: files into the database, every record accepted or rejected with a reason.

A file is stored in one transaction (its ``cdr_files`` row, its accepted calls, its rejects), so
a failure leaves the database as it was. A file whose bytes were already loaded is skipped; a
call already stored (from any file) is rejected as a duplicate, so overlapping files store no
call twice.

A record rejected for a reason a reference fix can cure (:data:`CURABLE`: ``unknown_line``, no
customer's line holding the calling number on the call's date) is kept ``pending`` with the
call as read; :func:`reprocess_rejects` checks the pending records again against the reference
data of the day and stores those now accepted as calls (the reject, ``accepted``, names its
call), so that loading the file again, which is skipped, is never needed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Engine, bindparam, func, insert, select

from workbench.cdr.formats import check, file_error, parse
from workbench.cdr.mapping import CsvMapping, parse_mapping
from workbench.config import Settings
from workbench.db import schema as s
from workbench.db.bulk import insert_frame
from workbench.db.frames import read_frame
from workbench.errors import InputError
from workbench.phone_numbers import from_digits, to_digits
from workbench.rating.classify import epoch_seconds, resolve_lines
from workbench.reads import calls as stored_calls

#: the reject reasons a reference fix can cure: such rejects are kept pending and re-processed
CURABLE = ("unknown_line",)
#: the columns of a stored call, as in ``cdrs`` (and in a pending reject)
CALL_COLUMNS = ["start_utc", "calling", "called", "duration_s", "switch_id"]


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


def read_mapping(path: str | Path) -> CsvMapping:
    """The CSV mapping of a TOML file (:mod:`workbench.cdr.mapping`); an
    :class:`~workbench.errors.InputError` (``bad_mapping``) names the file and the key at fault."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot be read ({getattr(exc, 'strerror', None) or exc})", source=str(path),
                         code="bad_mapping") from None
    return parse_mapping(text, str(path))


REJECT_ROW_COLUMNS = ["line_no", "reason", "message", "raw", "status", *CALL_COLUMNS]


def _reject_rows(rejects: pd.DataFrame) -> pd.DataFrame:
    """Rejects as stored: ``final`` and without the call's fields unless set (pending ones)."""
    rows = rejects.reset_index(drop=True)
    if "status" not in rows:
        rows["status"] = "final"
    rows["status"] = rows["status"].fillna("final")
    for column, dtype in (("start_utc", "datetime64[s]"), ("calling", "Int64"), ("called", "Int64"),
                          ("duration_s", "Int64"), ("switch_id", "string")):
        values = rows[column] if column in rows else pd.Series(pd.NA, index=rows.index)
        rows[column] = values.astype(dtype)
    return rows


def load_cdr_file(
    engine: Engine,
    path: str | Path,
    settings: Settings,
    now: datetime,
    fmt: str = "auto",
    mapping: CsvMapping | None = None,
    asterisk_times: str | None = None,
) -> LoadReport:
    """Load one CDR file (native, Asterisk, or read with a CSV ``mapping``; plain or gzip).

    ``asterisk_times``: ``local`` or ``utc``, how Master.csv times are read (default: the
    setting ``asterisk_times``). Raises :class:`~workbench.errors.InputError` for a malformed
    file, storing nothing of it. Records rejected as ``unknown_line`` are stored ``pending``
    with the call as read (see :func:`reprocess_rejects`), the others ``final``."""
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
    parsed = parse(path.name, data, fmt, mapping)
    cand, rejects = check(parsed, settings.timezone, settings.home_country_code,
                          asterisk_times or settings.asterisk_times)
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
                "status": "pending",
                **{column: bad[column].to_numpy() for column in CALL_COLUMNS},
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
        rejects = _reject_rows(rejects).sort_values("line_no").assign(file_id=file_id)
        insert_frame(connection, "cdr_rejects", rejects[["file_id", *REJECT_ROW_COLUMNS]])
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
    mapping: CsvMapping | None = None,
    asterisk_times: str | None = None,
) -> list[LoadReport]:
    """Load several files, each in its own transaction (a bad file stops the batch with its
    error; the files before it stay loaded)."""
    from tqdm.auto import tqdm

    paths = list(paths)
    reports = []
    for path in tqdm(paths, desc="CDR files", unit="file", disable=not progress):
        reports.append(load_cdr_file(engine, path, settings, now(), fmt, mapping, asterisk_times))
    return reports


def restore_pending(engine: Engine, path: str | Path, settings: Settings, mapping: CsvMapping | None = None,
                    asterisk_times: str | None = None) -> int:
    """Make pending again the curable rejects of a file loaded before rejects kept the call as read.

    ``path``: the file as it was loaded (the same bytes; plain or gzip). It is read again (with
    ``mapping``, or the format it was loaded in; Asterisk times as ``asterisk_times``, default
    the setting) and each of its ``unknown_line`` rejects still ``final`` without call fields
    gets the call of its line and becomes ``pending``, for :func:`reprocess_rejects`. Returns
    how many. Raises :class:`~workbench.errors.InputError` for a file never loaded or malformed."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise file_error(str(path), None, f"cannot be read ({exc.strerror})") from None
    digest = hashlib.sha256(data).hexdigest()
    with engine.begin() as connection:
        known = connection.execute(select(s.CdrFile.id, s.CdrFile.format).where(s.CdrFile.sha256 == digest)).first()
        if known is None:
            raise file_error(str(path), None, "was never loaded (these bytes are no loaded file's): load it instead")
        old = read_frame(connection, select(s.CdrReject.id, s.CdrReject.line_no).where(
            s.CdrReject.file_id == known.id, s.CdrReject.reason.in_(CURABLE), s.CdrReject.status == "final",
            s.CdrReject.start_utc.is_(None)))
        if old.empty:
            return 0
        if mapping is None and known.format.startswith("mapping:"):
            raise InputError(f"was loaded with the mapping {known.format.removeprefix('mapping:')!r}: give it",
                             source=str(path), code="bad_mapping")
        parsed = parse(path.name, data, known.format if mapping is None else "auto", mapping)
        cand, _ = check(parsed, settings.timezone, settings.home_country_code,
                        asterisk_times or settings.asterisk_times)
        cand = cand.assign(calling=to_digits(cand["calling"]), called=to_digits(cand["called"]))
        found = old.merge(cand, on="line_no", how="inner")
        if found.empty:
            return 0
        connection.execute(
            s.CdrReject.__table__.update().where(s.CdrReject.id == bindparam("reject_id")).values(
                status="pending", **{c: bindparam(f"new_{c}") for c in CALL_COLUMNS}),
            [{"reject_id": int(row.id), "new_start_utc": row.start_utc.to_pydatetime(), "new_calling": int(row.calling),
              "new_called": int(row.called), "new_duration_s": int(row.duration_s), "new_switch_id": str(row.switch_id)}
             for row in found.itertuples(index=False)],
        )
    return len(found)


@dataclass(frozen=True)
class Reprocessing:
    """What re-processing the pending rejects did: ``examined`` pending before, ``accepted``
    stored as calls, ``duplicates`` (the call was already stored, or accepted from another
    pending record), ``pending`` still pending after."""

    examined: int = 0
    accepted: int = 0
    duplicates: int = 0
    pending: int = 0


def reprocess_rejects(engine: Engine, settings: Settings, now: datetime) -> Reprocessing:
    """Check the pending rejects (:data:`CURABLE`) again, in one transaction, as a file's records are.

    A record whose calling number is now a customer's line on the call's date is stored as a call
    (``cdrs``, with its file and line) and its reject becomes ``accepted`` with ``cdr_id`` that
    call and ``resolved_at`` ``now``; if the same call (calling, called, start second, duration)
    is already stored, or is accepted from an earlier pending record, the reject becomes
    ``duplicate`` with ``cdr_id`` the stored call: no call is stored twice. The others stay
    pending. The calls stored are rated by the next rating of their period. Running it again
    changes nothing."""
    columns = [s.CdrReject.id, s.CdrReject.file_id, s.CdrReject.line_no,
               *(getattr(s.CdrReject, c) for c in CALL_COLUMNS)]
    with engine.begin() as connection:
        pending = read_frame(connection, select(*columns).where(s.CdrReject.status == "pending")
                             .order_by(s.CdrReject.id))
        if pending.empty:
            return Reprocessing()
        pending["start_utc"] = pd.to_datetime(pending["start_utc"]).astype("datetime64[s]")
        for column in ("calling", "called", "duration_s"):
            pending[column] = pending[column].astype(np.int64)
        pending["switch_id"] = pending["switch_id"].fillna("").astype(str)
        unknown = _unknown_lines(pending, stored_calls.lines(connection), settings.timezone)
        cured = pending[~unknown]
        if cured.empty:
            return Reprocessing(len(pending), 0, 0, len(pending))
        already = _stored_duplicates(connection, cured).notna().to_numpy()
        key = ["calling", "called", "start_utc", "duration_s"]
        new = cured[~already]
        first = ~new.duplicated(key, keep="first").to_numpy()
        insert_frame(connection, "cdrs", new[first][["file_id", "line_no", *CALL_COLUMNS]])
        calls = _stored_duplicates(connection, cured)  # now every cured record's call
        accepted = pd.Series(False, index=cured.index)
        accepted[new.index[first]] = True
        connection.execute(
            s.CdrReject.__table__.update().where(s.CdrReject.id == bindparam("reject_id"))
            .values(status=bindparam("new_status"), cdr_id=bindparam("call_id"), resolved_at=now),
            [{"reject_id": int(r), "new_status": "accepted" if a else "duplicate", "call_id": int(c)}
             for r, a, c in zip(cured["id"], accepted, calls, strict=True)],
        )
        left = connection.execute(select(func.count()).where(s.CdrReject.status == "pending")).scalar_one()
    return Reprocessing(len(pending), int(accepted.sum()), int((~accepted).sum()), int(left))
