"""Engines and schema migrations, for SQLite and PostgreSQL alike."""

from __future__ import annotations

import os
import socket
import sqlite3
from contextlib import closing
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url

from workbench.errors import UnavailableError

MIGRATIONS = Path(__file__).parent / "migrations"
#: seconds a SQLite write waits for the transaction of another connection (setting ``sqlite_busy_timeout``)
BUSY_TIMEOUT = 30.0
#: the page cache of a SQLite connection, in KiB (used as it fills)
SQLITE_CACHE_KIB = 256 * 1024
#: the code of the :class:`~workbench.errors.UnavailableError` of a SQLite database busy too long
DATABASE_BUSY = "database_busy"


def _jobs_in_progress(database: str) -> list[str]:
    """The job locks held in the SQLite file ``database`` by other processes than this one
    (read on a connection of its own: a reader passes a writer in WAL mode), described; empty
    when there are none or they cannot be read."""
    mine = f"{socket.gethostname()}:{os.getpid()}:"
    try:
        uri = f"{Path(database).resolve().as_uri()}?mode=ro"
        with closing(sqlite3.connect(uri, uri=True, timeout=1)) as connection:
            rows = connection.execute("SELECT name, holder, acquired_at, heartbeat_at FROM job_locks "
                                      "ORDER BY acquired_at").fetchall()
    except sqlite3.Error:
        return []
    return [f"{name} (run {holder.partition('@')[0]}, started {str(acquired)[:19]} UTC, last active "
            f"{str(beat)[:19]} UTC)" for name, holder, acquired, beat in rows if not holder.startswith(mine)]


def busy_error(database: str, timeout: float) -> UnavailableError:
    """The error of a SQLite write that waited ``timeout`` seconds for another transaction:
    which jobs hold a job lock (:mod:`workbench.db.locks`), if any."""
    jobs = _jobs_in_progress(database)
    held = (f"job in progress: {'; '.join(jobs)}" if jobs else
            "no workbench job holds a job lock: another command or program (a SQLite shell, a backup) is writing")
    return UnavailableError(
        f"the database is busy: another transaction has held its write lock for more than {timeout:g} s (setting "
        f"sqlite_busy_timeout); {held}. Nothing was changed by this command: run it again when that has finished",
        source=f"database {database}", code=DATABASE_BUSY)


def make_engine(url: str, busy_timeout: float = BUSY_TIMEOUT) -> Engine:
    """An engine for ``url``; a SQLite file's folder is created, and SQLite is set up for
    foreign keys, WAL and bulk loads. A SQLite write waits ``busy_timeout`` seconds for another
    connection's transaction, then raises :class:`~workbench.errors.UnavailableError` (code
    ``database_busy``, see :func:`busy_error`) instead of SQLite's "database is locked"."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection, _record):  # pragma: no cover - trivial
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            # a page cache of up to 256 MiB (default 2 MiB): a month of calls stored with its
            # indexes without re-reading their pages (about a third less time per row)
            cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            cursor.close()

        @event.listens_for(engine, "handle_error")
        def _busy(context):
            original = context.original_exception
            if (isinstance(original, sqlite3.OperationalError) and "database is locked" in str(original)
                    and parsed.database and parsed.database != ":memory:"):
                raise busy_error(parsed.database, busy_timeout) from original

        return engine
    return create_engine(url, pool_pre_ping=True)


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database schema to ``revision`` (creating it on an empty database); by default
    every head, so migrations written side by side on branches apply before they are chained."""
    command.upgrade(alembic_config(engine), revision)


def is_current(engine: Engine) -> bool:
    """Whether the schema exists (has the migrations table)."""
    return inspect(engine).has_table("alembic_version")
