"""Loading jobs: the reference data and the month's CDR files."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine

from workbench.config import Settings
from workbench.integration import LoadReport, load_cdr_files
from workbench.jobs.workspace import utc_now
from workbench.reference import load_reference as _load_reference


@dataclass(frozen=True)
class ReferenceLoad:
    """What a reference load stored: rows loaded per table, in load order."""

    folder: str
    counts: dict[str, int] = field(default_factory=dict)


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


def load_reference(engine: Engine, settings: Settings, folder: str | Path) -> ReferenceLoad:
    """Load every reference CSV of ``folder`` in one transaction (see :mod:`workbench.reference`);
    :class:`~workbench.errors.InputError` names the file, line and problem, and nothing is stored."""
    return ReferenceLoad(str(folder), _load_reference(engine, folder, settings.home_country_code))


def cdr_files(folder: str | Path) -> list[Path]:
    """The files of a folder of CDR files, by name."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file())


def load_cdrs(engine: Engine, settings: Settings, files: Iterable[str | Path], fmt: str = "auto",
              progress: bool = False, clock: Callable[[], datetime] = utc_now) -> CdrLoad:
    """Load CDR files, each in its own transaction (see :mod:`workbench.integration`): a file
    already loaded is skipped, a bad file stops the batch with an
    :class:`~workbench.errors.InputError` naming it, and the files before it stay loaded."""
    return CdrLoad(load_cdr_files(engine, files, settings, clock, fmt, progress=progress))
