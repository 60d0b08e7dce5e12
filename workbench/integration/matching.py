"""Finding a call again: the records of a file that repeat a call stored before it, or a call
of the file's earlier chunks, by hash joins on the call key (:data:`~workbench.cdr.formats.CALL_KEY`:
calling, called, start second, duration)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
from sqlalchemy import select

from workbench.cdr.formats import CALL_KEY
from workbench.db import schema as s
from workbench.db.frames import read_columns


def _seconds(frame: pd.DataFrame) -> np.ndarray:
    """The start of each call of ``frame``, in seconds since the epoch (int64)."""
    return frame["start_utc"].to_numpy().astype("datetime64[s]").view(np.int64)


def _match(cand: pd.DataFrame, known: pd.DataFrame, value: str) -> pd.Series:
    """For each candidate, the ``value`` (an integer column) of the row of ``known`` with the
    same :data:`CALL_KEY` (each key at most once in ``known``), or <NA>: a hash join (Arrow's,
    on all cores) of the candidates on the known calls. Only the calls of the seconds both sides
    span can match (the start is in the key), so each side is cut to those first: a file read in
    time order meets the calls of its chunk's stretch only, and its previous chunk at one
    boundary second."""
    missing = pd.Series(pd.NA, index=cand.index, dtype="Int64")
    if known.empty or cand.empty:
        return missing
    cand_s, known_s = _seconds(cand), _seconds(known)
    low, high = max(cand_s.min(), known_s.min()), min(cand_s.max(), known_s.max())
    rows = np.flatnonzero((cand_s >= low) & (cand_s <= high))
    kept = np.flatnonzero((known_s >= low) & (known_s <= high))
    if not len(rows) or not len(kept):
        return missing

    def key(frame: pd.DataFrame, at: np.ndarray, seconds: np.ndarray) -> dict[str, np.ndarray]:  # int64 columns
        return {c: seconds[at] if c == "start_utc" else frame[c].to_numpy(dtype=np.int64)[at] for c in CALL_KEY}

    left = pa.table({**key(cand, rows, cand_s), "_row": rows})
    right = pa.table({**key(known, kept, known_s), value: known[value].to_numpy(dtype=np.int64)[kept]})
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


def stored_duplicates(connection, cand: pd.DataFrame) -> pd.Series:
    """For each candidate, the id of the identical stored call, or <NA>."""
    return StoredCalls().duplicates(connection, cand)


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
