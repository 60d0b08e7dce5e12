"""CDR integration: files into the database, every record accepted or rejected with a reason.

A file is stored in one transaction (its ``cdr_files`` row, its accepted calls, its rejects), so
a failure leaves the database as it was. A file whose bytes were already loaded is skipped; a
call already stored (from any file) is rejected as a duplicate, so overlapping files store no
call twice, even loaded at the same time (a file's transaction holds off the other writers of
``cdrs`` from its start). A file is read and stored a chunk of records at a time within its
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
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from sqlalchemy import Connection, Engine, bindparam, func, insert, select, text, update
from sqlalchemy.exc import OperationalError

from workbench.cdr.formats import CALL_KEY, CHUNK_RECORDS, ParsedFile, check, file_error, parse, read_chunks
from workbench.cdr.mapping import CsvMapping, parse_mapping
from workbench.config import Settings
from workbench.db import schema as s
from workbench.db.bulk import FrameWriter, insert_frame
from workbench.db.frames import read_columns, read_frame
from workbench.db.locks import LOCK_NOT_AVAILABLE, lock_table
from workbench.errors import InputError, Problem
from workbench.phone_numbers import from_digits
from workbench.rating.classify import LineIndex, epoch_seconds
from workbench.reads import calls as stored_calls

#: the reject reasons a reference fix can cure: such rejects are kept pending and re-processed
CURABLE = ("unknown_line",)
#: the columns of a stored call, as in ``cdrs`` (and in a pending reject)
CALL_COLUMNS = ["start_utc", "calling", "called", "duration_s", "switch_id"]
#: the columns of ``cdrs`` a load writes (the id is the database's)
CDR_ROW_COLUMNS = ["file_id", "line_no", *CALL_COLUMNS]


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


def _seconds(frame: pd.DataFrame) -> np.ndarray:
    """The start of each call of ``frame``, in seconds since the epoch (int64)."""
    return frame["start_utc"].to_numpy().astype("datetime64[s]").view(np.int64)


def _within(known: pd.DataFrame, cand: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``known`` that start within the first and last start of ``cand`` (a file read
    in time order meets only the calls of its chunk's stretch: each chunk joins on those, not on
    all the calls known so far)."""
    start, times = _seconds(known), _seconds(cand)
    low, high = times.min(), times.max()
    inside = (start >= low) & (start <= high)
    return known if inside.all() else known[inside]


def _match(cand: pd.DataFrame, known: pd.DataFrame, value: str) -> pd.Series:
    """For each candidate, the ``value`` (an integer column) of the row of ``known`` with the
    same :data:`CALL_KEY` (each key at most once in ``known``), or <NA>: a hash join (Arrow's,
    on all cores) of the candidates on the known calls."""
    if known.empty or cand.empty:
        return pd.Series(pd.NA, index=cand.index, dtype="Int64")
    known = _within(known, cand)  # only the known calls of the candidates' times can match
    if known.empty:
        return pd.Series(pd.NA, index=cand.index, dtype="Int64")
    # and only the candidates of the known calls' times (a file in time order: the chunk's first
    # seconds, which the chunk before may end with)
    start, low, high = _seconds(cand), _seconds(known).min(), _seconds(known).max()
    rows = np.flatnonzero((start >= low) & (start <= high))
    probe = cand.iloc[rows]

    def key(frame: pd.DataFrame) -> dict[str, np.ndarray]:  # int64 columns; the start in seconds
        return {c: _seconds(frame) if c == "start_utc" else frame[c].to_numpy().astype(np.int64) for c in CALL_KEY}

    left = pa.table({**key(probe), "_row": rows})
    right = pa.table({**key(known), value: known[value].to_numpy(dtype=np.int64)})
    joined = left.join(right, keys=CALL_KEY, join_type="inner", use_threads=True)
    found = np.full(len(cand), -1, dtype=np.int64)
    found[joined.column("_row").to_numpy()] = joined.column(value).to_numpy()
    out = pd.Series(found, index=cand.index).astype("Int64")
    return out.mask(found < 0)


@dataclass
class StoredCalls:
    """The keys of the calls stored before a file (``id`` and :data:`CALL_KEY`), read from the
    database once per stretch of time as the file's chunks need them, and kept for the file's
    transaction (which holds off the other writers of ``cdrs``, so they do not change): a file
    of a month in several chunks reads the month's stored calls once, not once per chunk.
    The calls of the file itself (``file_id``) are left out: they are found as earlier lines of
    the file. Memory: about 40 bytes per stored call of the stretch read."""

    file_id: int | None = None
    keys: pd.DataFrame | None = None
    low: pd.Timestamp | None = None
    high: pd.Timestamp | None = None

    def _read(self, connection, low, high, low_open: bool, high_open: bool) -> pd.DataFrame:
        start = s.Cdr.start_utc
        stmt = select(s.Cdr.id, s.Cdr.calling, s.Cdr.called, s.Cdr.start_utc, s.Cdr.duration_s).where(
            start > low.to_pydatetime() if low_open else start >= low.to_pydatetime(),
            start < high.to_pydatetime() if high_open else start <= high.to_pydatetime())
        if self.file_id is not None:
            stmt = stmt.where(s.Cdr.file_id != self.file_id)
        return read_columns(connection, stmt, integers=("id", "calling", "called", "duration_s"),
                            datetimes=("start_utc",))

    def duplicates(self, connection, cand: pd.DataFrame) -> pd.Series:
        """For each candidate, the id of the identical stored call, or <NA>."""
        if cand.empty:
            return pd.Series(dtype="Int64")
        low, high = cand["start_utc"].min(), cand["start_utc"].max()
        if self.keys is None:
            self.keys, self.low, self.high = self._read(connection, low, high, False, False), low, high
        else:
            parts = [self.keys]
            if low < self.low:
                parts.append(self._read(connection, low, self.low, False, True))
                self.low = low
            if high > self.high:
                parts.append(self._read(connection, self.high, high, True, False))
                self.high = high
            if len(parts) > 1:
                self.keys = pd.concat(parts, ignore_index=True)
        return _match(cand, self.keys, "id")


def _stored_duplicates(connection, cand: pd.DataFrame) -> pd.Series:
    """For each candidate, the id of the identical stored call, or <NA>."""
    return StoredCalls().duplicates(connection, cand)


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


#: the reasons that make a file malformed as a whole when too many of its records have them
#: (:class:`RejectThreshold`): all those of :func:`~workbench.cdr.formats.check` but ``excluded``
#: (a mapping's filter, on purpose), and ``duplicate`` within the file. Not counted:
#: ``unknown_line`` (pending, cured by a reference fix) and ``duplicate`` of a call already stored
#: from another file (an overlapping or re-delivered file is not a bad one).
MALFORMED = ("bad_date", "ambiguous_time", "bad_calling_number", "bad_called_number", "bad_duration",
             "negative_duration", "bad_call_id", "duplicate")
#: how many rejected records a refusal quotes
EXAMPLES = 3


@dataclass
class RejectThreshold:
    """The malformed records of a file as it is read, and the rule that refuses it as a whole.

    A file is refused (:class:`~workbench.errors.InputError`, code ``too_many_rejects``) when its
    first ``records`` records are all malformed (checked as soon as they are read), or when it
    has at least ``records`` records and more than ``percent`` % of them are malformed (checked at
    its end). A file of fewer records is never refused for its rejects. Malformed: a reason of
    :data:`MALFORMED`, within the file (a ``duplicate`` of an earlier line of the same file)."""

    file: str
    percent: Decimal
    records: int
    read: int = 0
    malformed: int = 0
    head_malformed: int = 0  # among the first ``records`` records
    by_reason: dict[str, int] = field(default_factory=dict)
    examples: list[Problem] = field(default_factory=list)

    @classmethod
    def of(cls, file: str, settings: Settings) -> RejectThreshold:
        return cls(file, Decimal(settings.reject_threshold_percent), int(settings.reject_threshold_records))

    def add(self, line_nos: pd.Series, malformed: pd.DataFrame) -> None:
        """Count a chunk: the line numbers of its records (in file order) and its malformed
        rejects (``line_no``, ``reason``, ``message``); refuses the file when its first
        ``records`` records are all malformed."""
        head = min(max(self.records - self.read, 0), len(line_nos))
        if head:
            last_head_line = int(line_nos.iloc[head - 1])
            self.head_malformed += int((malformed["line_no"] <= last_head_line).sum())
        self.read += len(line_nos)
        self.malformed += len(malformed)
        for reason, count in malformed["reason"].value_counts().items():
            self.by_reason[str(reason)] = self.by_reason.get(str(reason), 0) + int(count)
        if len(self.examples) < EXAMPLES and len(malformed):
            first = malformed.sort_values("line_no").head(EXAMPLES - len(self.examples))
            self.examples += [Problem(self.file, int(r.line_no), str(r.reason), str(r.message))
                              for r in first.itertuples(index=False)]
        if head and self.read >= self.records and self.head_malformed == self.records:
            self.refuse(f"its first {self.records:,} records are all malformed (setting reject_threshold_records)")

    def finish(self) -> None:
        """At the end of the file: refuses it when it has at least ``records`` records and more
        than ``percent`` % of them are malformed."""
        if self.read >= self.records and self.malformed * 100 > self.percent * self.read:
            self.refuse(f"{self.malformed:,} of its {self.read:,} records are malformed, more than "
                        f"{self.percent} % (setting reject_threshold_percent)")

    def refuse(self, why: str) -> None:
        counts = ", ".join(f"{reason} {count:,}" for reason, count in sorted(self.by_reason.items()))
        examples = "; ".join(f"line {p.key}: {p.code}: {p.message}" for p in self.examples)
        raise InputError(f"refused as a whole: {why}. Malformed records among the {self.read:,} read: {counts}. "
                         f"For example {examples}. Nothing of the file is stored: correct it, or ask for it "
                         "again, and load it again", source=self.file, code="too_many_rejects", problems=self.examples)


@dataclass
class FileCalls:
    """The records of a file stored so far (the ``line_no`` and :data:`CALL_KEY` of each chunk's
    calls and pending records), kept in memory for the file's transaction, about 40 bytes a
    record, with each chunk's first and last start: the duplicates within a file read in
    several chunks."""

    parts: list[tuple[pd.Timestamp, pd.Timestamp, pd.DataFrame]] = field(default_factory=list)

    def add(self, part: pd.DataFrame) -> None:
        if len(part):
            self.parts.append((part["start_utc"].min(), part["start_utc"].max(), part))

    def lines(self, cand: pd.DataFrame) -> pd.Series:
        """For each candidate, the line of the same call among the records stored so far, or <NA>.
        Joined on the chunks whose times meet the candidates' only (a file in time order: the
        last one or two), not on every chunk so far, which would grow as the square of the file;
        each key is there once: a chunk's own duplicates and those of earlier chunks are rejects."""
        if cand.empty:
            return pd.Series(dtype="Int64")
        low, high = cand["start_utc"].min(), cand["start_utc"].max()
        meeting = [part for first, last, part in self.parts if first <= high and last >= low]
        if not meeting:
            return pd.Series(pd.NA, index=cand.index, dtype="Int64")
        return _match(cand, pd.concat(meeting, ignore_index=True) if len(meeting) > 1 else meeting[0], "line_no")


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


#: the records of a file's first chunk, at most (the database waits for it to be checked)
FIRST_CHUNK_RECORDS = 20_000


def _checked_chunks(name: str, stream, fmt: str, mapping: CsvMapping | None, chunk_records: int,
                    settings: Settings, times: str) -> Iterator[tuple[ParsedFile, pd.DataFrame, pd.DataFrame]]:
    """The chunks of a file read (:func:`~workbench.cdr.formats.read_chunks`) and checked
    (:func:`~workbench.cdr.formats.check`, the numbers as digits): ``(parsed, candidates,
    rejects)``. The next chunk is read and checked in a worker thread while the caller stores
    this one (the database works meanwhile): at most three chunks are held (the caller's, the
    next one and the one being made). What reading or checking raises is raised here, for the
    chunk it concerns."""
    # a small first chunk: the database starts on it while the next ones are checked
    chunks = read_chunks(name, stream, fmt, mapping, chunk_records, min(chunk_records, FIRST_CHUNK_RECORDS))

    def next_chunk():
        parsed = next(chunks, None)
        if parsed is None:
            return None
        cand, rejects = check(parsed, settings.timezone, settings.home_country_code, times, digits=True)
        return parsed, cand, rejects

    worker = ThreadPoolExecutor(1, thread_name_prefix="cdr-check")
    try:
        ahead = worker.submit(next_chunk)
        while (chunk := ahead.result()) is not None:
            ahead = worker.submit(next_chunk)
            yield chunk
    finally:  # closed early (an error, Ctrl-C): the chunk being checked is finished, then dropped
        worker.shutdown(wait=True, cancel_futures=True)


@contextmanager
def _stored_calls_reader(engine: Engine, connection: Connection) -> Iterator[Connection]:
    """The connection that reads the calls stored before a file while ``connection`` (the
    load's, which holds its lock on ``cdrs``) is busy with its ``COPY``: on PostgreSQL a second
    connection, at ``READ COMMITTED`` whatever the database's default (it reads the calls
    committed by the loads the lock waited for), which takes its locks on ``cdrs`` and its
    indexes at once and keeps them to its end, so that it never waits for a lock afterwards.
    If it cannot have them at once (another session is queued for ``cdrs`` behind the load,
    an ``ALTER TABLE`` say: waiting would wait for the load, which waits for its reader, a
    deadlock PostgreSQL cannot see, the two connections being one process), ``connection``
    itself (the load then ends its ``COPY`` before each read). On SQLite ``connection``."""
    if engine.dialect.name != "postgresql":
        yield connection
        return
    # a query planned on the key locks the table's indexes: the load's connection first, so that
    # a session queued for an index behind the reader is queued behind the load too (a wait
    # PostgreSQL sees), and the load's own later requests for them go ahead of it
    on_the_key = select(s.Cdr.id).where(s.Cdr.start_utc == datetime(1970, 1, 1)).limit(1)
    connection.execute(on_the_key).all()
    with engine.connect().execution_options(isolation_level="READ COMMITTED") as reader:
        locked = True
        try:
            with reader.begin_nested():
                reader.execute(text("SET LOCAL lock_timeout = '100ms'"))
                reader.execute(text(f"LOCK TABLE {s.Cdr.__tablename__} IN ACCESS SHARE MODE"))
                reader.execute(on_the_key).all()
        except OperationalError as error:
            if getattr(error.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
                raise
            reader.rollback()
            locked = False
        # (its lock_timeout kept: a wait for a lock would be a fault, raised at once)
        yield reader if locked else connection


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
    setting ``asterisk_times``). The file is read ``chunk_records`` records at a time, the next
    chunk read and checked in a worker thread while one is stored (:func:`_checked_chunks`), all
    in the file's one transaction: memory is bounded by three chunks whatever the size of the
    file, and the result is that of the whole file at once (a record repeating a call of an
    earlier chunk is a ``duplicate`` of its line).

    Loads of calls wait for each other (the transaction holds off the other writers of ``cdrs``
    from its start), so that overlapping files loaded at the same time store each call once.

    Raises :class:`~workbench.errors.InputError`, storing nothing of the file: for a malformed
    file (``bad_cdr_file``), or one with too many malformed records (``too_many_rejects``, see
    :class:`RejectThreshold`: the count per reason and the first few). Records rejected as
    ``unknown_line`` are stored ``pending`` with the call as read (see :func:`reprocess_rejects`),
    the others ``final``. An interruption (Ctrl-C) or any other exception rolls the file's
    transaction back: nothing of it is stored.

    On PostgreSQL the file's calls go into ``cdrs`` by one ``COPY`` that the server works
    through while the next chunks are checked (:class:`~workbench.db.bulk.FrameWriter`; the
    rejects are written when it pauses: at the end, or when a chunk's worth of them is held; an
    error of the server, such as a constraint, is raised then), and the calls stored before are
    read meanwhile by a second connection (:func:`_stored_calls_reader`): a load holds two
    connections.

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
          closing(_checked_chunks(path.name, stream, fmt, mapping, chunk_records, settings, times)) as chunks):
        lock_table(connection, s.Cdr.__table__)
        if connection.execute(select(s.CdrFile.id).where(s.CdrFile.sha256 == digest)).first():
            return LoadReport(str(path), "skipped")  # loaded by another run while this one waited
        lines = LineIndex(stored_calls.lines(connection), settings.timezone)  # built once for the file
        stored_before, earlier = StoredCalls(), FileCalls()
        # calls go in one COPY on PostgreSQL (stored while the next chunk is made), the calls
        # stored before read by the reader's connection meanwhile; rejects are written when the
        # COPY pauses (when they are many, and at the end)
        with (_stored_calls_reader(engine, connection) as calls_before,
              FrameWriter(connection, "cdrs", CDR_ROW_COLUMNS) as calls_out):
            held: list[pd.DataFrame] = []

            def write_held_rejects() -> None:  # the COPY of the calls ended first
                calls_out.pause()
                if held:
                    insert_frame(connection, "cdr_rejects", pd.concat(held, ignore_index=True))
                    held.clear()

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
                    line = earlier.lines(cand)
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
                if calls_before is connection:  # no reader of its own: the COPY ends first
                    calls_out.pause()
                stored = stored_before.duplicates(calls_before, cand)
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
                calls = cand.assign(file_id=file_id)[CDR_ROW_COLUMNS].sort_values(
                    "start_utc", kind="stable")  # the call key, led by the start, written in order
                calls_out.write(calls)
                rejects = _reject_rows(rejects).sort_values("line_no").assign(file_id=file_id)
                pending = rejects[rejects["status"] == "pending"]
                integers = {c: np.int64 for c in ("calling", "called", "duration_s")}
                earlier.add(calls[["line_no", *CALL_KEY]])
                earlier.add(pending[["line_no", *CALL_KEY]].astype(integers))
                held.append(rejects[["file_id", *REJECT_ROW_COLUMNS]])
                if sum(map(len, held)) >= chunk_records:  # memory: a chunk of rejects at most
                    write_held_rejects()
                records, accepted = records + len(parsed.records), accepted + len(cand)
                rejected += len(rejects)
                for reason, count in rejects["reason"].value_counts().items():
                    by_reason[str(reason)] = by_reason.get(str(reason), 0) + int(count)
                if on_records is not None:
                    on_records(len(parsed.records))
            threshold.finish()
            write_held_rejects()
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
    (``cdrs``, with its file and line) and its reject becomes ``accepted`` with ``cdr_id`` that
    call and ``resolved_at`` ``now``; if the same call (calling, called, start second, duration)
    is already stored, or is accepted from an earlier pending record, the reject becomes
    ``duplicate`` with ``cdr_id`` the stored call: no call is stored twice. The others stay
    pending. The calls stored are rated by the next rating of their period. Running it again
    changes nothing."""
    columns = [s.CdrReject.id, s.CdrReject.file_id, s.CdrReject.line_no,
               *(getattr(s.CdrReject, c) for c in CALL_COLUMNS)]
    with engine.begin() as connection:
        lock_table(connection, s.Cdr.__table__)  # a file being loaded stores its calls first
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
        already = _stored_duplicates(connection, cured).notna().to_numpy()
        new = cured[~already]
        first = ~new.duplicated(CALL_KEY, keep="first").to_numpy()
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
