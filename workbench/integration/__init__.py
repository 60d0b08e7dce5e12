"""CDR integration: files into the database, every record accepted or rejected with a reason.

A file is stored in one transaction (its ``cdr_files`` row, its accepted calls, its rejects), so
a failure leaves the database as it was. A file whose bytes were already loaded is skipped; a
call already stored (from any file) is rejected as a duplicate, so overlapping files store no
call twice, even loaded at the same time (a file's transaction holds off the other writers of
calls from its start, :func:`workbench.db.calls.lock`). Calls are stored a block at a time
(:mod:`workbench.db.calls`). A file is read and stored a chunk of records at a time within its
transaction, so memory is bounded by a chunk; a file with too many malformed records is refused
as a whole (:class:`RejectThreshold`).

A record rejected for a reason a reference fix can cure (:data:`CURABLE`: ``unknown_line``, no
customer's line holding the calling number on the call's date) is kept ``pending`` with the
call as read; :func:`reprocess_rejects` checks the pending records again against the reference
data of the day and stores those now accepted as calls (the reject, ``accepted``, names its
call), so that loading the file again, which is skipped, is never needed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Engine, bindparam, func, insert, select, update

from workbench.cdr.formats import CALL_KEY, CHUNK_RECORDS, check, file_error, parse
from workbench.cdr.mapping import CsvMapping, parse_mapping
from workbench.config import Settings
from workbench.db import calls as call_store
from workbench.db import schema as s
from workbench.db.bulk import insert_frame
from workbench.db.frames import read_frame
from workbench.errors import InputError
from workbench.integration.matching import CallIndex, StoredCalls
from workbench.integration.pipeline import checked_chunks
from workbench.integration.threshold import EXAMPLES, MALFORMED, RejectThreshold
from workbench.phone_numbers import from_digits
from workbench.rating.classify import LineIndex, epoch_seconds
from workbench.reads import calls as stored_calls

__all__ = [
    "CALL_COLUMNS", "CURABLE", "EXAMPLES", "MALFORMED", "LoadReport", "RejectThreshold", "Reprocessing",
    "file_sha256", "load_cdr_file", "load_cdr_files", "read_mapping", "reprocess_rejects", "restore_pending",
]

#: the reject reasons a reference fix can cure: such rejects are kept pending and re-processed
CURABLE = ("unknown_line",)
#: the columns of a stored call (:mod:`workbench.db.calls`; and of a pending reject)
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


def _unknown_lines(cand: pd.DataFrame, lines: LineIndex) -> np.ndarray:
    """For each candidate, whether its calling number is no customer's line at its start."""
    if cand.empty:
        return np.zeros(0, dtype=bool)
    return lines.lookup(cand["calling"], epoch_seconds(cand["start_utc"])) < 0


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


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, read a block at a time; an
    :class:`~workbench.errors.InputError` when it cannot be read."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as stream:
            while block := stream.read(1 << 20):
                digest.update(block)
    except OSError as exc:
        raise file_error(str(path), None, f"cannot be read ({exc.strerror})") from None
    return digest.hexdigest()


def load_cdr_file(
    engine: Engine,
    path: str | Path,
    settings: Settings,
    now: datetime,
    fmt: str = "auto",
    mapping: CsvMapping | None = None,
    asterisk_times: str | None = None,
    chunk_records: int = CHUNK_RECORDS,
    on_records: Callable[[int], None] | None = None,
) -> LoadReport:
    """Load one CDR file (native, Asterisk, or read with a CSV ``mapping``; plain or gzip).

    ``asterisk_times``: ``local`` or ``utc``, how Master.csv times are read (default: the
    setting ``asterisk_times``). The file is read ``chunk_records`` records at a time (the first
    chunk smaller), the next chunk read and checked in a worker thread while one is stored
    (:func:`~workbench.integration.pipeline.checked_chunks`), all in the file's one transaction:
    memory is bounded by three chunks whatever the size of the file, and the result is that of
    the whole file at once (a record repeating a call of an earlier chunk is a ``duplicate`` of
    its line).

    Loads of calls wait for each other (the transaction holds off the other writers of calls
    from its start), so that overlapping files loaded at the same time store each call once.
    The customers' lines are read once, when the file's transaction starts: a line added by
    another session during the load counts for the next load (or for :func:`reprocess_rejects`).

    Raises :class:`~workbench.errors.InputError`, storing nothing of the file: for a malformed
    file (``bad_cdr_file``), or one with too many malformed records (``too_many_rejects``, see
    :class:`RejectThreshold`: the count per reason and the first few). Records rejected as
    ``unknown_line`` are stored ``pending`` with the call as read (see :func:`reprocess_rejects`),
    the others ``final``. An interruption (Ctrl-C) or any other exception rolls the file's
    transaction back: nothing of it is stored.

    Each chunk's calls are stored as blocks (:func:`workbench.db.calls.append`); its rejects are
    written a chunk's worth at a time.

    ``on_records`` is called with the number of records of each chunk once it is handed to the
    database (in the file's transaction: they are committed with the file)."""
    path = Path(path)
    digest = file_sha256(path)
    with engine.connect() as connection:
        known = connection.execute(select(s.CdrFile.name).where(s.CdrFile.sha256 == digest)).first()
    if known:
        return LoadReport(str(path), "skipped")
    threshold = RejectThreshold.of(str(path), settings)
    times = asterisk_times or settings.asterisk_times
    file_id, file_format, records, accepted, rejected = None, "", 0, 0, 0
    by_reason: dict[str, int] = {}
    with (engine.begin() as connection, path.open("rb") as stream,
          closing(checked_chunks(path.name, stream, fmt, mapping, chunk_records, settings, times)) as chunks):
        call_store.lock(connection)
        if connection.execute(select(s.CdrFile.id).where(s.CdrFile.sha256 == digest)).first():
            return LoadReport(str(path), "skipped")  # loaded by another run while this one waited
        lines = LineIndex(stored_calls.lines(connection), settings.timezone)  # built once for the file
        # the calls stored before the file; the line_no of each call and pending record of the file's
        # chunks so far (each key once: a chunk's own repeats and those of earlier chunks are rejects)
        stored_before, earlier = StoredCalls(), CallIndex("line_no")
        held: list[pd.DataFrame] = []  # rejects, written a chunk's worth at a time
        for parsed, cand, rejects in chunks:
            raw = parsed.records.set_index("line_no")["raw"]
            if file_id is None:
                file_format = parsed.format
                file_id = connection.execute(
                    insert(s.CdrFile).values(name=path.name, sha256=digest, format=parsed.format, loaded_at=now,
                                             records=0, accepted=0, rejected=0).returning(s.CdrFile.id)
                ).scalar_one()
                stored_before.file_id = file_id
            else:  # the same call on a line of an earlier chunk
                line = earlier.find(cand)
                dup = line.notna().to_numpy()
                if dup.any():
                    bad = cand[dup]
                    rejects = pd.concat([rejects, pd.DataFrame({
                        "line_no": bad["line_no"], "reason": "duplicate",
                        "message": "the same call is on line " + line[dup].astype(str),
                        "raw": raw.loc[bad["line_no"]].to_numpy(),
                    })], ignore_index=True)
                    cand = cand[~dup]
            threshold.add(parsed.records["line_no"], rejects[rejects["reason"].isin(MALFORMED)])
            unknown = _unknown_lines(cand, lines)
            if unknown.any():
                bad = cand[unknown]
                rejects = pd.concat([rejects, pd.DataFrame({
                    "line_no": bad["line_no"],
                    "reason": "unknown_line",
                    "message": "calling number " + from_digits(bad["calling"]).to_numpy(dtype=object)
                    + " is no customer's line on " + bad["start_utc"].dt.strftime("%Y-%m-%d %H:%M:%S")
                    + " UTC",
                    "raw": raw.loc[bad["line_no"]].to_numpy(),
                    "status": "pending",
                    **{column: bad[column].to_numpy() for column in CALL_COLUMNS},
                })])
                cand = cand[~unknown]
            stored = stored_before.duplicates(connection, cand)
            dup = stored.notna().to_numpy()
            if dup.any():
                bad = cand[dup]
                rejects = pd.concat([rejects, pd.DataFrame({
                    "line_no": bad["line_no"],
                    "reason": "duplicate",
                    "message": "the same call is already loaded (call " + stored[dup].astype(str) + ")",
                    "raw": raw.loc[bad["line_no"]].to_numpy(),
                    "start_utc": bad["start_utc"].to_numpy(),
                })])
                cand = cand[~dup]
            calls = call_store.append(connection, file_id, cand[["line_no", *CALL_COLUMNS]])
            rejects = _reject_rows(rejects).sort_values("line_no").assign(file_id=file_id)
            pending = rejects[rejects["status"] == "pending"]
            integers = {c: np.int64 for c in ("calling", "called", "duration_s")}
            earlier.add(calls[["line_no", *CALL_KEY]])
            earlier.add(pending[["line_no", *CALL_KEY]].astype(integers))
            held.append(rejects[["file_id", *REJECT_ROW_COLUMNS]])
            if sum(map(len, held)) >= chunk_records:  # memory: a chunk of rejects at most
                insert_frame(connection, "cdr_rejects", pd.concat(held, ignore_index=True))
                held.clear()
            records, accepted = records + len(parsed.records), accepted + len(cand)
            rejected += len(rejects)
            for reason, count in rejects["reason"].value_counts().items():
                by_reason[str(reason)] = by_reason.get(str(reason), 0) + int(count)
            if on_records is not None:
                on_records(len(parsed.records))
        threshold.finish()
        if held:
            insert_frame(connection, "cdr_rejects", pd.concat(held, ignore_index=True))
        connection.execute(update(s.CdrFile).where(s.CdrFile.id == file_id).values(
            records=records, accepted=accepted, rejected=rejected))
    return LoadReport(str(path), "loaded", file_format, records, accepted, rejected, dict(sorted(by_reason.items())),
                      file_id)


def load_cdr_files(
    engine: Engine,
    paths: Iterable[str | Path],
    settings: Settings,
    now: Callable[[], datetime],
    fmt: str = "auto",
    mapping: CsvMapping | None = None,
    asterisk_times: str | None = None,
    before_each: Callable[[], None] | None = None,
    on_records: Callable[[int], None] | None = None,
) -> list[LoadReport]:
    """Load several files, each in its own transaction (a bad file stops the batch with its
    error; the files before it stay loaded, an interrupted one is rolled back). ``before_each``
    is called before each file (a job lock's sign of life, which stops the batch if the lock was
    lost); ``on_records`` with the records of each chunk stored (a progress bar's count)."""
    reports = []
    for path in paths:
        if before_each is not None:
            before_each()
        reports.append(load_cdr_file(engine, path, settings, now(), fmt, mapping, asterisk_times,
                                     on_records=on_records))
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
                        asterisk_times or settings.asterisk_times, digits=True)
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
    (:func:`workbench.db.calls.append`, with its file and line) and its reject becomes ``accepted`` with ``cdr_id`` that
    call and ``resolved_at`` ``now``; if the same call (calling, called, start second, duration)
    is already stored, or is accepted from an earlier pending record, the reject becomes
    ``duplicate`` with ``cdr_id`` the stored call: no call is stored twice. The others stay
    pending. The calls stored are rated by the next rating of their period. Running it again
    changes nothing."""
    columns = [s.CdrReject.id, s.CdrReject.file_id, s.CdrReject.line_no,
               *(getattr(s.CdrReject, c) for c in CALL_COLUMNS)]
    with engine.begin() as connection:
        call_store.lock(connection)  # a file being loaded stores its calls first
        pending = read_frame(connection, select(*columns).where(s.CdrReject.status == "pending")
                             .order_by(s.CdrReject.id))
        if pending.empty:
            return Reprocessing()
        pending["start_utc"] = pd.to_datetime(pending["start_utc"]).astype("datetime64[s]")
        for column in ("calling", "called", "duration_s"):
            pending[column] = pending[column].astype(np.int64)
        pending["switch_id"] = pending["switch_id"].fillna("").astype(str)
        unknown = _unknown_lines(pending, LineIndex(stored_calls.lines(connection), settings.timezone))
        cured = pending[~unknown]
        if cured.empty:
            return Reprocessing(len(pending), 0, 0, len(pending))
        stored = StoredCalls()
        already = stored.duplicates(connection, cured).notna().to_numpy()
        new = cured[~already]
        first = ~new.duplicated(CALL_KEY, keep="first").to_numpy()
        for file_id, calls in new[first].groupby("file_id", sort=True):
            added = call_store.append(connection, int(file_id), calls[["line_no", *CALL_COLUMNS]])
            stored.index.add(added[["id", *CALL_KEY]])  # new keys: the first record of each
        calls = stored.index.find(cured)  # now every cured record's call
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
