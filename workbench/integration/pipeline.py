"""How a load works on two cores: the next chunks of a file read and checked in worker threads
while the current one is stored."""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pandas as pd

from workbench.cdr.formats import ParsedFile, check, read_chunks
from workbench.cdr.mapping import CsvMapping
from workbench.config import Settings

#: the records of a file's first chunk, at most (the database waits for it to be checked)
FIRST_CHUNK_RECORDS = 20_000
#: the chunks read and checked at once, each in a worker thread (Arrow's kernels and the
#: decompression release the interpreter: two cores check two chunks)
CHECK_THREADS = 2


class _InTurn:
    """A file's chunks read one after the other in the order of their tickets, whichever worker
    thread asks first; :meth:`close` releases the workers still waiting for their turn."""

    def __init__(self, chunks: Iterator[ParsedFile]):
        self.chunks, self.turn, self.closed = chunks, 0, False
        self.changed = threading.Condition()

    def read(self, ticket: int) -> ParsedFile | None:
        with self.changed:
            self.changed.wait_for(lambda: self.turn == ticket or self.closed)
            if self.closed:
                return None
            try:
                return next(self.chunks, None)
            finally:
                self.turn += 1
                self.changed.notify_all()

    def close(self) -> None:
        with self.changed:
            self.closed = True
            self.changed.notify_all()


def checked_chunks(name: str, stream, fmt: str, mapping: CsvMapping | None, chunk_records: int,
                   settings: Settings, times: str) -> Iterator[tuple[ParsedFile, pd.DataFrame, pd.DataFrame]]:
    """The chunks of a file read (:func:`~workbench.cdr.formats.read_chunks`) and checked
    (:func:`~workbench.cdr.formats.check`, the numbers as digits): ``(parsed, candidates,
    rejects)``, in the file's order. The next :data:`CHECK_THREADS` chunks are read (in turn)
    and checked in worker threads while the caller stores this one: at most that many chunks
    and the caller's are held. What reading or checking raises is raised here, for the chunk it
    concerns."""
    # a small first chunk: the caller starts on it while the next ones are checked
    chunks = _InTurn(read_chunks(name, stream, fmt, mapping, chunk_records, min(chunk_records, FIRST_CHUNK_RECORDS)))

    def checked(ticket: int):
        parsed = chunks.read(ticket)
        if parsed is None:
            return None
        cand, rejects = check(parsed, settings.timezone, settings.home_country_code, times, digits=True)
        return parsed, cand, rejects

    workers = ThreadPoolExecutor(CHECK_THREADS, thread_name_prefix="cdr-check")
    tickets = itertools.count()
    try:
        ahead = deque(workers.submit(checked, next(tickets)) for _ in range(CHECK_THREADS))
        while (chunk := ahead.popleft().result()) is not None:
            ahead.append(workers.submit(checked, next(tickets)))
            yield chunk
    finally:  # closed early (an error, Ctrl-C): the chunks being checked are finished, then dropped
        chunks.close()
        workers.shutdown(wait=True, cancel_futures=True)
