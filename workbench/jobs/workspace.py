"""What every job starts from: the database of the settings, migrated, and the clock."""

from __future__ import annotations

import gc
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, inspect, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from workbench.config import Settings, redacted
from workbench.db.engine import make_engine, upgrade
from workbench.errors import ConfigError, RefusedError, UnavailableError


def open_database(settings: Settings, create: bool = True) -> Engine:
    """The engine of ``settings.database_url``, its schema created or migrated (Alembic);
    :class:`~workbench.errors.UnavailableError` when the database cannot be reached (the message
    shows the URL without its password); :class:`~workbench.errors.ConfigError` for a URL that
    cannot be used (an unknown driver, a malformed URL), and, unless ``create``, for a SQLite
    file that does not exist or a database without the workbench's schema (an empty file, another
    PostgreSQL database: no ``alembic_version`` table), code ``no_database``: a command that reads
    or bills an existing workspace refuses a mistyped URL instead of creating an empty database
    there (the commands that start a workspace, ``db-upgrade``, ``load-reference`` and ``demo``,
    create it)."""
    url = settings.database_url
    where = f"database {redacted(url)}"
    if not create and (missing := _missing_sqlite_file(url)) is not None:
        raise ConfigError(f"there is no database file {missing}: check the setting database_url "
                          f"(WORKBENCH_DATABASE_URL), or create the database with `workbench db-upgrade`",
                          source=where, code="no_database")

    def cause(exc: BaseException) -> str:
        text = (str(getattr(exc, "orig", None) or exc).splitlines() or [type(exc).__name__])[0]
        return text.replace(url, redacted(url))

    try:
        engine = make_engine(url, float(settings.sqlite_busy_timeout))
    except (ImportError, ValueError, ArgumentError) as exc:
        raise ConfigError(f"cannot be used ({cause(exc)})", source=where, code="database") from None
    except (OSError, SQLAlchemyError) as exc:
        raise UnavailableError(f"cannot be opened ({cause(exc)})", source=where, code="database") from None
    try:
        if not create and not inspect(engine).has_table("alembic_version"):
            engine.dispose()
            raise ConfigError("it holds no workbench database (no schema version): check the setting database_url "
                              "(WORKBENCH_DATABASE_URL), or create the database with `workbench db-upgrade`",
                              source=where, code="no_database")
        upgrade(engine)
    except (OSError, SQLAlchemyError) as exc:  # unreachable, refused, not a database...
        engine.dispose()
        raise UnavailableError(f"cannot be reached ({cause(exc)})", source=where, code="database") from None
    return engine


def _missing_sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL when it does not exist (None for any other URL, an in-memory
    database, or a URL that cannot be parsed: :func:`open_database` reports that)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:") or database.startswith("file:"):
        return None
    path = Path(database)
    return None if path.exists() else path


@contextmanager
def objects_before_frozen() -> Iterator[None]:
    """For a bulk step (a load, a rating): the objects alive before it (the imported modules,
    the reference data, a notebook's variables) are left out of the garbage collector's full
    collections until it ends (:func:`gc.freeze`, then :func:`gc.unfreeze`). The step makes and
    drops many objects, each full collection otherwise walking every one alive: measured, 0.3 to
    0.8 s of the load and rating of a month of a million calls. Memory is unchanged: only
    reference cycles among the objects before the step wait for its end to be collected."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def utc_now() -> datetime:
    """Now, naive UTC: how the database stores times."""
    return datetime.now(UTC).replace(tzinfo=None)


def clear_demo(settings: Settings) -> list[str]:
    """Delete the embedded SQLite database and the demo's own outputs, when they are the embedded
    defaults (a configured FTP space, outbox or output folder is never touched); returns what was
    deleted. :class:`~workbench.errors.RefusedError` for a configured database: it is never
    deleted by the workbench."""
    deleted = []
    defaults = Settings()
    if settings.database_url != defaults.database_url:
        raise RefusedError(f"a fresh demo deletes only the embedded database ({defaults.database_url}), never a "
                           f"configured one ({redacted(settings.database_url)}): delete it yourself if that is "
                           "what you want", code="configured_database")
    if settings.database_url.startswith("sqlite:///"):
        database = Path(settings.database_url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm"):
            path = Path(f"{database}{suffix}")
            if path.exists():
                path.unlink()
                deleted.append(str(path))
    for mine, default in ((settings.storage_url, defaults.storage_url), (settings.outbox_dir, defaults.outbox_dir),
                          (str(Path(settings.output_dir) / "reports"), str(Path(defaults.output_dir) / "reports"))):
        if mine == default and Path(mine).is_dir():
            shutil.rmtree(mine)
            deleted.append(mine)
    return deleted
