"""What every job starts from: the database of the settings, migrated, and the clock."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError

from workbench.config import Settings, redacted
from workbench.db.engine import make_engine, upgrade
from workbench.errors import RefusedError, UnavailableError


def open_database(settings: Settings) -> Engine:
    """The engine of ``settings.database_url``, its schema created or migrated (Alembic);
    :class:`~workbench.errors.UnavailableError` when the database cannot be reached (the message
    shows the URL without its password)."""
    engine = make_engine(settings.database_url)
    try:
        upgrade(engine)
    except (OperationalError, InterfaceError) as exc:
        engine.dispose()
        cause = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise UnavailableError(f"cannot be reached ({cause})", source=f"database {redacted(settings.database_url)}",
                               code="database") from None
    return engine


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
