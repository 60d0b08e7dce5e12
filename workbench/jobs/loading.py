"""Loading jobs: the reference data, the month's CDR files, and the rejects a reference fix cured."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine

from workbench.config import Settings
from workbench.db.locks import LOCKED, acquire
from workbench.errors import InputError, UnavailableError
from workbench.integration import LoadReport, Reprocessing, load_cdr_files, read_mapping, restore_pending
from workbench.integration import reprocess_rejects as _reprocess_rejects
from workbench.jobs.progress import Progress, progress_of
from workbench.jobs.workspace import objects_before_frozen, utc_now
from workbench.period import local_date
from workbench.reference import load_reference as _load_reference

#: the job lock of CDR loads
LOAD_CDRS = "load-cdrs"


@dataclass(frozen=True)
class ReferenceLoad:
    """What a reference load stored: rows loaded per table, in load order; and what became of
    the CDR records pending a reference fix (:class:`~workbench.integration.Reprocessing`)."""

    folder: str
    counts: dict[str, int] = field(default_factory=dict)
    reprocessed: Reprocessing = field(default_factory=Reprocessing)


@dataclass(frozen=True)
class CdrLoad:
    """What became of each CDR file (:class:`~workbench.integration.LoadReport`)."""

    files: list[LoadReport] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return sum(f.accepted for f in self.files)

    @property
    def rejected(self) -> int:
        return sum(f.rejected for f in self.files)


def load_reference(engine: Engine, settings: Settings, folder: str | Path,
                   clock: Callable[[], datetime] = utc_now) -> ReferenceLoad:
    """Load every reference CSV of ``folder`` in one transaction (see :mod:`workbench.reference`);
    :class:`~workbench.errors.InputError` names every problem (file, line, column, reason), and
    nothing is stored. No mandate may be signed after the operator's date at ``clock()``.
    Then the CDR records pending a reference fix are re-processed (:func:`reprocess_rejects`,
    its own transaction: if it fails, the reference data stays loaded and it can be run again)."""
    counts = _load_reference(engine, folder, settings.home_country_code, local_date(clock(), settings.timezone))
    return ReferenceLoad(str(folder), counts, reprocess_rejects(engine, settings, clock))


def reprocess_rejects(engine: Engine, settings: Settings, clock: Callable[[], datetime] = utc_now,
                      files: Iterable[str | Path] = (), mapping: str | Path | None = None,
                      times: str | None = None) -> Reprocessing:
    """Check the CDR records pending a reference fix (``unknown_line``) again and store as calls
    those now accepted, never a call twice (see :func:`workbench.integration.reprocess_rejects`).
    The calls cured are rated by the next rating of their period (``workbench rate``, or the next
    pre-production run, which rates the calls never rated first).

    ``files``: files loaded before rejects kept the call as read, read again (with ``mapping``;
    Asterisk times as ``times``) so that their ``unknown_line`` rejects are pending again first
    (:func:`workbench.integration.restore_pending`)."""
    csv_mapping = read_mapping(mapping) if mapping is not None else None
    for path in files:
        restore_pending(engine, path, settings, csv_mapping, times)
    return _reprocess_rejects(engine, settings, clock())


def cdr_files(folder: str | Path) -> list[Path]:
    """The files of a folder of CDR files, by name."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file())


def load_cdrs(engine: Engine, settings: Settings, files: Iterable[str | Path], fmt: str = "auto",
              progress: bool | Progress | None = None, clock: Callable[[], datetime] = utc_now,
              mapping: str | Path | None = None, times: str | None = None) -> CdrLoad:
    """Load CDR files, each in its own transaction (see :mod:`workbench.integration`): a file
    already loaded is skipped, a bad file stops the batch with an
    :class:`~workbench.errors.InputError` naming it, and the files before it stay loaded.

    One load at a time: the job holds the job lock ``load-cdrs`` (:mod:`workbench.db.locks`), and
    a load started meanwhile stops at once with :class:`~workbench.errors.UnavailableError` (code
    ``job_locked``) naming the run in progress, storing nothing.

    ``mapping``: a TOML CSV mapping file (:mod:`workbench.cdr.mapping`) to read every file with
    (``fmt`` is then ignored); ``times``: ``local`` or ``utc``, how Asterisk's times are read
    for this load (default: the setting ``asterisk_times``).

    ``progress``: called with the records of each chunk stored (:mod:`workbench.jobs.progress`),
    or ``True`` for a progress bar in records/s. Ctrl-C rolls back the file being loaded (the
    files before it stay loaded) and frees the job lock."""
    csv_mapping = read_mapping(mapping) if mapping is not None else None
    if times is not None and times not in ("local", "utc"):
        raise InputError(f"times {times!r} is neither local nor utc", source="load-cdrs --times", code="bad_option")
    try:
        lock = acquire(engine, LOAD_CDRS)
    except UnavailableError as exc:
        if exc.code != LOCKED:  # the database busy: its own message
            raise
        raise UnavailableError(f"not loading: {exc}", code=exc.code) from exc
    try:
        with progress_of(progress, "load-cdrs", unit="records") as on_records, objects_before_frozen():
            return CdrLoad(load_cdr_files(engine, files, settings, clock, fmt, mapping=csv_mapping,
                                          asterisk_times=times, before_each=lock.beat, on_records=on_records))
    finally:
        lock.release()
