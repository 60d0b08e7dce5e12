"""How a load works on two cores: the next chunks of a file read and checked in a thread while
the current one is stored."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pandas as pd

from workbench.cdr.formats import ParsedFile, check, read_chunks
from workbench.cdr.mapping import CsvMapping
from workbench.config import Settings

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
