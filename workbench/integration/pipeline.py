"""How a load works on two cores: the next chunks of a file read and checked in a thread while
the current one is stored, and on PostgreSQL the calls stored before read by a second
connection while the load's own is busy with its ``COPY``."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime

import pandas as pd
from sqlalchemy import Connection, Engine, select, text
from sqlalchemy.exc import OperationalError

from workbench.cdr.formats import ParsedFile, check, read_chunks
from workbench.cdr.mapping import CsvMapping
from workbench.config import Settings
from workbench.db import schema as s
from workbench.db.locks import LOCK_NOT_AVAILABLE

#: the records of a file's first chunk, at most (the database waits for it to be checked)
FIRST_CHUNK_RECORDS = 20_000


def checked_chunks(name: str, stream, fmt: str, mapping: CsvMapping | None, chunk_records: int,
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
def stored_calls_reader(engine: Engine, connection: Connection) -> Iterator[Connection]:
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
