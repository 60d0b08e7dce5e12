"""Finding a call again: the records of a file that repeat a call stored before it
(:class:`StoredCalls`), or a call of the file's earlier chunks (a :class:`CallIndex` of their
``line_no``), by the call key (:data:`~workbench.cdr.formats.CALL_KEY`: calling, called, start
second, duration), looked up in a :class:`CallIndex`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from workbench.cdr.formats import CALL_KEY
from workbench.db import calls as call_store
from workbench.rating.classify import epoch_seconds

#: odd 64-bit multipliers, one per column of the call key, and the multiplier of the mixing
#: step between them (those of splitmix64's finaliser and of the golden ratio)
_MULTIPLIERS = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93],
                        dtype=np.uint64)
_MIX = np.uint64(0x94D049BB133111EB)


def _key_columns(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The :data:`CALL_KEY` of each row of ``frame`` as int64 arrays (the start in epoch seconds)."""
    return {c: epoch_seconds(frame[c]) if c == "start_utc" else frame[c].to_numpy(dtype=np.int64)
            for c in CALL_KEY}


def key_hash(columns: dict[str, np.ndarray]) -> np.ndarray:
    """A 64-bit hash (uint64) of each call key of ``columns`` (:func:`_key_columns`): each
    column multiplied by its odd constant, added into the hash and mixed (xor-shift, multiply,
    modulo 2**64). Equal keys hash equal; distinct keys may too (about one pair in 2**64), so a
    match by hash is always checked on the key itself."""
    h = np.zeros(len(columns[CALL_KEY[0]]), dtype=np.uint64)
    for column, multiplier in zip(CALL_KEY, _MULTIPLIERS, strict=True):
        h += columns[column].view(np.uint64) * multiplier
        h ^= h >> np.uint64(31)
        h *= _MIX
    return h ^ (h >> np.uint64(29))


def _merged(older: dict[str, np.ndarray], newer: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Two levels of a :class:`CallIndex` (arrays sorted by ``key``) as one, in linear time: each
    key of ``newer`` after the keys of ``older`` not larger than it."""
    size = len(older["key"]) + len(newer["key"])
    to_newer = np.searchsorted(older["key"], newer["key"], side="right") + np.arange(len(newer["key"]))
    to_older = np.ones(size, dtype=bool)
    to_older[to_newer] = False
    merged = {}
    for name, array in older.items():
        merged[name] = np.empty(size, dtype=array.dtype)
        merged[name][to_older] = array
        merged[name][to_newer] = newer[name]
    return merged


def _sort_key(columns: dict[str, np.ndarray], hashes: np.ndarray) -> np.ndarray:
    """What a :class:`CallIndex` sorts its keys by (uint64): the start second (its low 32 bits,
    the years 1970-2105 in order; other times wrap, which only orders them differently) above the
    high 32 bits of :func:`key_hash`. Calls of one start second are in the order of their hashes,
    and the chunks of a file read in time order hold keys of stretches apart, which stay levels
    of their own, each looked up only by the candidates of its stretch."""
    return (columns["start_utc"].view(np.uint64) << np.uint64(32)) | (hashes >> np.uint64(32))


@dataclass
class CallIndex:
    """The keys of known calls (:data:`CALL_KEY`), each with an integer ``value`` (a call's
    ``id``, a record's ``line_no``), to find the known call of a candidate with the same key.

    The keys are kept sorted (by start second, then hash: :func:`_sort_key`) in levels (a
    log-structured merge): what is added becomes a level of its own, and merges with the newest
    level while that one is no larger and their keys overlap (two sorted runs, in linear time,
    :func:`_merged`). When most of the older level's keys come before the new ones (a file in time
    order, whose chunks meet at a boundary second), only its keys from the first new one on are
    merged; the rest stays a level (a view of its arrays). So the levels whose keys overlap
    decrease in size, about log2(n / chunk) of them, each key merged about that many times; the
    levels of stretches apart (one per chunk of a file in time order) are looked up only by the
    candidates within their keys (a check of their first and last key, in Python). Adding a
    file's chunks costs n log n in all, and looking up a chunk its size times log n per level it
    meets, in time order or not. (Joining each chunk on all the earlier ones whose times meet it
    grew as the square of the number of chunks for a file out of time order, whose every chunk
    spans the month: 37.9 s for the lookups of 10 million calls in 50 chunks, against 8 s now.)
    A match is by the key's hash, as a hash join's, checked on the key's four columns; the known
    keys are kept sorted rather than in a hash table, which costs a random memory access per key
    added (a NumPy hash table with open addressing, tried: 6 s to add 10 million keys in time
    order, against 1 s here).

    Each key must be added once (the caller adds only calls not found). Memory: 48 bytes per
    key (six int64 arrays); twice that of the two largest levels while they merge; a level kept
    as a view holds the arrays it was cut from until they merge."""

    value: str
    levels: list[dict[str, np.ndarray]] = field(default_factory=list)

    def __len__(self) -> int:
        return sum(len(level["key"]) for level in self.levels)

    def add(self, frame: pd.DataFrame) -> None:
        """Add the rows of ``frame`` (the :data:`CALL_KEY` columns, ``start_utc`` naive UTC
        datetimes, and ``value``), none of whose keys is known yet."""
        if frame.empty:
            return
        columns = _key_columns(frame)
        columns[self.value] = frame[self.value].to_numpy(dtype=np.int64)
        columns["key"] = _sort_key(columns, key_hash(columns))
        order = np.argsort(columns["key"], kind="stable")  # a chunk in time order is nearly sorted
        level = {name: array[order] for name, array in columns.items()}
        while self.levels:
            older = self.levels[-1]
            cut = int(np.searchsorted(older["key"], level["key"][0], side="right"))
            if cut == len(older["key"]) or len(older["key"]) > len(level["key"]):
                break  # the older level's keys are all before the new ones, or it is the larger
            self.levels.pop()
            if 2 * cut >= len(older["key"]):  # mostly before the new keys (a file in time order)
                self.levels.append({name: array[:cut] for name, array in older.items()})  # a view
                level = _merged({name: array[cut:] for name, array in older.items()}, level)
                break  # the rest merged: after the part kept, which is before it
            level = _merged(older, level)
        self.levels.append(level)

    def find(self, cand: pd.DataFrame) -> pd.Series:
        """For each row of ``cand`` (the :data:`CALL_KEY` columns), the ``value`` of the known
        call with the same key, or <NA> (an ``Int64`` Series on ``cand``'s index)."""
        found = np.full(len(cand), -1, dtype=np.int64)
        if len(cand) and self.levels:
            columns = _key_columns(cand)
            keys = _sort_key(columns, key_hash(columns))
            order = np.argsort(keys, kind="stable")  # searched in order: each search starts near the last one
            keys, columns = keys[order], {c: values[order] for c, values in columns.items()}
            first_key, last_key = int(keys[0]), int(keys[-1])
            for level in self.levels:
                known = level["key"]
                if int(known[-1]) < first_key or int(known[0]) > last_key:
                    continue  # a stretch apart (in time order: every level but the last one or two)
                # the candidates within the level's keys (in time order: those of its stretch)
                low = int(np.searchsorted(keys, known[0], side="left"))
                high = int(np.searchsorted(keys, known[-1], side="right"))
                first = np.searchsorted(known, keys[low:high])
                # each candidate against the known keys of its sort key in turn (almost always one)
                rows, step = np.arange(low, high), 0
                while len(rows):
                    at = first[rows - low] + step
                    inside = at < len(known)
                    rows, at = rows[inside], at[inside]
                    hit = known[at] == keys[rows]
                    rows, at = rows[hit], at[hit]
                    same = np.logical_and.reduce([level[c][at] == columns[c][rows] for c in CALL_KEY])
                    found[order[rows[same]]] = level[self.value][at[same]]
                    rows, step = rows[~same], step + 1
        return pd.Series(found, index=cand.index).astype("Int64").mask(found < 0)


@dataclass
class StoredCalls:
    """The keys of the calls stored before a file (:data:`CALL_KEY` and ``id``), read from the
    call store a block at a time as the file's chunks need them (the blocks whose times meet a
    chunk's) and kept in a :class:`CallIndex` for the file's transaction (which holds off the
    other writers of calls, :func:`workbench.db.calls.lock`, so they do not change): each block
    is decoded once for the file, however many of its chunks meet it. The calls of the file
    itself (``file_id``) are left out: they are found as earlier lines of the file. Memory: about
    48 bytes per stored call of the blocks read (all of a block's calls, those outside the
    file's times too)."""

    file_id: int | None = None
    index: CallIndex = field(default_factory=lambda: CallIndex("id"))
    blocks: set[int] = field(default_factory=set)

    def duplicates(self, connection, cand: pd.DataFrame) -> pd.Series:
        """For each candidate, the id of the identical stored call, or <NA>."""
        if cand.empty:
            return pd.Series(dtype="Int64")
        low, high = cand["start_utc"].min().to_pydatetime(), cand["start_utc"].max().to_pydatetime()
        for block, calls in call_store.blocks_meeting(connection, low, high, ["id", *CALL_KEY], self.file_id,
                                                      self.blocks):
            self.index.add(calls)
            self.blocks.add(block)
        return self.index.find(cand)
