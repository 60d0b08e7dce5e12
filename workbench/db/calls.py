"""The call store: accepted calls as immutable blocks of columns, in the database itself.

A call never changes once accepted, and what reads calls reads many at a time: a month to
rate, a period to balance, a stretch of time to find repeats in. So calls are not stored a row
per call but a block at a time: each row of ``call_blocks`` holds up to a chunk of a file's
calls of one UTC month as a Parquet file (zstd) in a binary column, with the block's file, the
range of its call ids and of its start times. The blocks are written and read by this module
only; the rest of the package sees frames.

Why in the database and not beside it: one store, one transaction. A load's calls land with its
``cdr_files`` row and its rejects, or none of them does (an error, Ctrl-C, a killed process);
the run fingerprint, the period balance and the rating read the same calls; a backup of the
database holds them; machines that share the database share the calls. What it costs: the
database cannot query inside a block (no SQL over single calls: readers take frames from here
and join in memory), and the key of a call (calling, called, start second, duration) is no
longer a unique index: the loads check it, one at a time (:func:`lock`), against the stored
calls (:mod:`workbench.integration.matching`).

Frames (in and out): ``id`` int64 (the call id: ``rated_calls.cdr_id``, ``rating_errors.cdr_id``,
``cdr_rejects.cdr_id``), ``line_no`` int64 (the call's record in its file), ``start_utc``
datetime64[s] (naive UTC), ``calling`` and ``called`` int64 (E.164 digits), ``duration_s``
int64 (seconds), ``switch_id`` str; and ``file_id`` int64, the block's, on request.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Connection, func, insert, select

from workbench.db import schema as s
from workbench.db.locks import lock_table

#: the columns of a block, as stored
SCHEMA = pa.schema([
    ("id", pa.int64()), ("line_no", pa.int64()), ("start_utc", pa.timestamp("s")),
    ("calling", pa.int64()), ("called", pa.int64()), ("duration_s", pa.int64()), ("switch_id", pa.string()),
])
#: the columns of a call in the frames of this module (``file_id`` is the block's)
COLUMNS = SCHEMA.names
#: the calls of a block, at most (a load writes a block per chunk of its file and UTC month)
BLOCK_CALLS = 200_000


def lock(connection: Connection) -> None:
    """Hold off the other writers of calls until the end of the transaction (readers pass):
    a load and a re-processing of rejects check the call key against the stored calls, then
    store theirs, under this lock."""
    lock_table(connection, s.CallBlock.__table__)


#: how a block's columns are written: the ids, lines and times (in order within a block) as
#: deltas, no dictionaries (the numbers are mostly distinct), zstd; 200,000 calls take about
#: 2 MB and 45 ms to write (Parquet's defaults: 3.8 MB and 125 ms)
_PARQUET = {"compression": "zstd", "use_dictionary": False, "write_statistics": False,
            "column_encoding": {"id": "DELTA_BINARY_PACKED", "line_no": "DELTA_BINARY_PACKED",
                                "start_utc": "DELTA_BINARY_PACKED"}}


def encode(calls: pd.DataFrame) -> bytes:
    """A block's bytes: ``calls`` (the columns of :data:`COLUMNS`) as one Parquet file."""
    table = pa.Table.from_pandas(calls[COLUMNS], schema=SCHEMA, preserve_index=False)
    out = io.BytesIO()
    pq.write_table(table, out, row_group_size=len(calls) or 1, **_PARQUET)
    return out.getvalue()


def decode(data: bytes, columns: Sequence[str] = COLUMNS) -> pd.DataFrame:
    """The calls of a block's bytes, ``columns`` of them (see the module's docstring)."""
    table = pq.read_table(io.BytesIO(data), columns=list(columns))
    frame = table.to_pandas(types_mapper={pa.string(): pd.ArrowDtype(pa.string())}.get)
    if "switch_id" in frame:
        frame["switch_id"] = frame["switch_id"].astype(object)
    if "start_utc" in frame:
        frame["start_utc"] = frame["start_utc"].astype("datetime64[s]")
    return frame


def next_id(connection: Connection) -> int:
    """The id the next call stored gets (under :func:`lock`)."""
    return int(connection.execute(select(func.coalesce(func.max(s.CallBlock.last_id), 0))).scalar_one()) + 1


def append(connection: Connection, file_id: int, calls: pd.DataFrame) -> pd.DataFrame:
    """Store ``calls`` (``line_no``, ``start_utc``, ``calling``, ``called``, ``duration_s``,
    ``switch_id``) as calls of the file ``file_id``, in the caller's transaction, which holds
    :func:`lock`: they get the next ids in order of their start, and go into one block per
    UTC month and :data:`BLOCK_CALLS` calls. Returns them with their ``id``, in that order."""
    calls = calls.sort_values("start_utc", kind="stable").reset_index(drop=True)
    if calls.empty:
        return calls.assign(id=pd.Series(dtype=np.int64))
    calls["start_utc"] = calls["start_utc"].astype("datetime64[s]")
    first = next_id(connection)
    calls["id"] = np.arange(first, first + len(calls), dtype=np.int64)
    months = calls["start_utc"].to_numpy().astype("datetime64[M]")
    cuts = np.flatnonzero(months[1:] != months[:-1]) + 1
    bounds = sorted({0, len(calls), *cuts.tolist(), *range(0, len(calls), BLOCK_CALLS)})
    connection.execute(insert(s.CallBlock), [block_row(file_id, calls.iloc[low:high])
                                              for low, high in zip(bounds[:-1], bounds[1:], strict=True)])
    return calls


def block_row(file_id: int, calls: pd.DataFrame) -> dict:
    """The row of ``call_blocks`` of a block of ``calls`` (the columns of :data:`COLUMNS`, by
    start) of the file ``file_id``."""
    starts, ids = calls["start_utc"].to_numpy(), calls["id"].to_numpy()
    return {"file_id": int(file_id), "first_id": int(ids.min()), "last_id": int(ids.max()), "calls": len(calls),
            "start_min": pd.Timestamp(starts[0]).to_pydatetime(), "start_max": pd.Timestamp(starts[-1]).to_pydatetime(),
            "data": encode(calls)}


def _blocks(connection: Connection, where: Iterable, columns: Sequence[str]) -> Iterator[tuple[int, pd.DataFrame]]:
    """The blocks meeting ``where`` (SQLAlchemy criteria on ``call_blocks``), decoded: (file_id, calls)."""
    stmt = select(s.CallBlock.file_id, s.CallBlock.data).where(*where).order_by(s.CallBlock.id)
    for file_id, data in connection.execute(stmt):
        yield int(file_id), decode(data, columns)


def blocks_meeting(connection: Connection, low: datetime, high: datetime, columns: Sequence[str],
                   not_file: int | None = None, read: Iterable[int] = ()) -> Iterator[tuple[int, pd.DataFrame]]:
    """The blocks holding calls that may start in [``low``, ``high``] (by their range of start
    times), of every file but ``not_file``, except the blocks ``read`` (their ids): ``(block id,
    all the block's calls)``, ``columns`` of them. For a reader that keeps what it read, as the
    load's check of repeated calls does: each block is decoded once, whatever stretches of time
    the reader asks for in turn."""
    where = [s.CallBlock.start_min <= high, s.CallBlock.start_max >= low]
    if not_file is not None:
        where.append(s.CallBlock.file_id != int(not_file))
    done = {int(b) for b in read}
    wanted = [int(b) for b in connection.execute(select(s.CallBlock.id).where(*where).order_by(s.CallBlock.id))
              .scalars() if int(b) not in done]
    for start in range(0, len(wanted), _BLOCKS_A_QUERY):
        stmt = select(s.CallBlock.id, s.CallBlock.data).where(
            s.CallBlock.id.in_(wanted[start:start + _BLOCKS_A_QUERY])).order_by(s.CallBlock.id)
        for block_id, data in connection.execute(stmt):
            yield int(block_id), decode(data, columns)


#: the blocks a query of :func:`blocks_meeting` asks for by id, at most (a bound parameter each)
_BLOCKS_A_QUERY = 500


def _starting_within(calls: pd.DataFrame, low: datetime | None, high: datetime | None) -> np.ndarray:
    """Whether each of ``calls`` starts at ``low`` or later and before ``high`` (``None``: no bound)."""
    starts = calls["start_utc"].to_numpy()
    keep = np.ones(len(calls), dtype=bool)
    if low is not None:
        keep &= starts >= np.datetime64(low, "s")
    if high is not None:
        keep &= starts < np.datetime64(high, "s")
    return keep


def read(connection: Connection, low: datetime | None = None, high: datetime | None = None,
         columns: Sequence[str] = COLUMNS, *, with_file: bool = False, files: Sequence[int] | None = None,
         not_file: int | None = None) -> pd.DataFrame:
    """The stored calls that start at ``low`` or later and before ``high`` (naive UTC; ``None``:
    no bound), ``columns`` of them (plus ``file_id`` when ``with_file``), of the files ``files``
    only, or of every file but ``not_file``; by block, and in a block by start."""
    where = []
    if high is not None:
        where.append(s.CallBlock.start_min < high)
    if low is not None:
        where.append(s.CallBlock.start_max >= low)
    if files is not None:
        where.append(s.CallBlock.file_id.in_([int(f) for f in files]))
    if not_file is not None:
        where.append(s.CallBlock.file_id != int(not_file))
    wanted = list(dict.fromkeys([*columns, *(["start_utc"] if low is not None or high is not None else [])]))
    parts = []
    for file_id, calls in _blocks(connection, where, wanted):
        keep = _starting_within(calls, low, high)
        calls = calls[keep] if not keep.all() else calls
        parts.append(calls.assign(file_id=np.int64(file_id)) if with_file else calls)
    out = [*columns, *(["file_id"] if with_file else [])]
    if not parts:
        return _empty(out)
    return pd.concat(parts, ignore_index=True)[out]


def by_id(connection: Connection, ids: Iterable[int], columns: Sequence[str] = COLUMNS) -> pd.DataFrame:
    """The stored calls of ``ids`` (those that exist), ``id`` and ``columns`` of them, by id."""
    ids = np.unique(np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, dtype=np.int64))
    wanted = list(dict.fromkeys(["id", *columns]))
    if not len(ids):
        return _empty(wanted)
    stmt = select(s.CallBlock.id, s.CallBlock.first_id, s.CallBlock.last_id).where(
        s.CallBlock.first_id <= int(ids[-1]), s.CallBlock.last_id >= int(ids[0]))
    blocks = [row.id for row in connection.execute(stmt)
              if np.searchsorted(ids, row.last_id, side="right") > np.searchsorted(ids, row.first_id)]
    parts = []
    for _, calls in _blocks(connection, [s.CallBlock.id.in_(blocks)], wanted) if blocks else ():
        parts.append(calls[np.isin(calls["id"].to_numpy(), ids)])
    if not parts:
        return _empty(wanted)
    return pd.concat(parts, ignore_index=True).sort_values("id", ignore_index=True)


def count(connection: Connection, low: datetime, high: datetime) -> int:
    """How many stored calls start in [``low``, ``high``): the blocks within it by their counts,
    only those across a bound read."""
    inside = connection.execute(select(func.coalesce(func.sum(s.CallBlock.calls), 0)).where(
        s.CallBlock.start_min >= low, s.CallBlock.start_max < high)).scalar_one()
    across = [s.CallBlock.start_min < high, s.CallBlock.start_max >= low,
              (s.CallBlock.start_min < low) | (s.CallBlock.start_max >= high)]
    edges = 0
    for _, calls in _blocks(connection, across, ["start_utc"]):
        edges += int(_starting_within(calls, low, high).sum())
    return int(inside) + edges


def first_start(connection: Connection) -> datetime | None:
    """The start of the earliest stored call (naive UTC), or None when none is stored."""
    return connection.execute(select(func.min(s.CallBlock.start_min))).scalar()


def files_with_calls(connection: Connection, low: datetime, high: datetime) -> list[int]:
    """The ids of the files holding calls that start in [``low``, ``high``)."""
    calls = read(connection, low, high, ["start_utc"], with_file=True)
    return sorted(int(f) for f in calls["file_id"].unique())


def count_of_files(connection: Connection, files: Sequence[int]) -> int:
    """How many calls the files ``files`` brought (all their periods)."""
    if not files:
        return 0
    return int(connection.execute(select(func.coalesce(func.sum(s.CallBlock.calls), 0)).where(
        s.CallBlock.file_id.in_([int(f) for f in files]))).scalar_one())


def _empty(columns: Sequence[str]) -> pd.DataFrame:
    dtypes = {"start_utc": "datetime64[s]", "switch_id": object}
    return pd.DataFrame({c: pd.Series(dtype=dtypes.get(c, np.int64)) for c in columns})
