"""Job locks: at most one run of a job at a time, across the processes and machines that share
the database (an analyst's run and a scheduled one, say).

A lock is a ``job_locks`` row named after the job. :func:`job_lock` inserts it (the primary key
lets only one run succeed) and deletes it at the end; meanwhile the run calls
:meth:`JobLock.beat` as it progresses, which proves it is alive. A run that finds the lock held:

* takes it over when its holder is dead: a process that no longer exists on this very machine
  (same host, same boot, same process namespace: a container sharing the host name does not
  count), or a holder silent for longer than ``stale_after`` (a run killed elsewhere);
* else stops at once with :class:`~workbench.errors.UnavailableError` (code ``job_locked``), naming
  the holder and its last sign of life.

A run whose lock was taken over (it was silent too long) learns it at its next beat
(:class:`~workbench.errors.UnavailableError`, code ``job_lock_lost``) and must stop there.

Times are the database server's (UTC) on PostgreSQL, so runs on machines whose clocks disagree
still agree on who is silent; SQLite is a local file, read with the local clock.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Connection, Engine, Table, delete, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from workbench.db import schema as s
from workbench.errors import UnavailableError

#: a holder silent for this long is taken for dead
STALE_AFTER = timedelta(minutes=10)
#: PostgreSQL's SQLSTATE for a lock not had within ``lock_timeout`` (or with ``NOWAIT``)
LOCK_NOT_AVAILABLE = "55P03"


#: the codes of the :class:`~workbench.errors.UnavailableError` raised here
LOCKED, LOCK_LOST = "job_locked", "job_lock_lost"


def lock_table(connection: Connection, table: Table) -> None:
    """Hold off the other writers of ``table`` until the end of the transaction (PostgreSQL: a
    ``SHARE ROW EXCLUSIVE`` lock, which readers pass; SQLite: a write statement, which takes the
    whole database's write lock)."""
    if connection.dialect.name == "postgresql":
        connection.execute(text(f"LOCK TABLE {table.name} IN SHARE ROW EXCLUSIVE MODE"))
    else:
        key = next(iter(table.primary_key.columns))
        connection.execute(delete(table).where(key < 0))  # deletes nothing


def _now(connection: Connection) -> datetime:
    """Naive UTC: the database server's clock on PostgreSQL, else this machine's."""
    if connection.dialect.name == "postgresql":
        return connection.execute(select(func.timezone("UTC", func.clock_timestamp()))).scalar_one()
    return datetime.now(UTC).replace(tzinfo=None)


def this_machine() -> str:
    """What tells this machine and process namespace from others sharing its host name: the boot
    id and the process namespace (empty where they cannot be read: then no holder is taken for
    dead by its process id)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
        return f"{boot}.{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return ""


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}@{this_machine()}"


def _dead_here(holder: str) -> bool:
    """Whether ``holder`` was a process of this machine (see :func:`this_machine`) that no
    longer exists."""
    name, _, machine = holder.rpartition("@")
    host, _, rest = name.partition(":")
    pid = rest.partition(":")[0]
    if not machine or machine != this_machine() or host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # exists, under another user
        return False
    return False


@dataclass
class JobLock:
    """A held lock; ``taken_over`` describes the dead holder it replaced, if any."""

    engine: Engine
    name: str
    holder: str
    clock: Callable[[], datetime] | None = None  # default: see _now
    taken_over: str | None = None

    def now(self, connection: Connection) -> datetime:
        return self.clock() if self.clock is not None else _now(connection)

    def beat(self) -> None:
        """Record a sign of life; :class:`~workbench.errors.UnavailableError` (code ``job_lock_lost``)
        if another run has taken the lock."""
        t = s.JobLock
        with self.engine.begin() as connection:
            moved = connection.execute(update(t).where(t.name == self.name, t.holder == self.holder)
                                       .values(heartbeat_at=self.now(connection))).rowcount
        if moved != 1:
            raise UnavailableError(f"the {self.name} lock was taken over by another run while this one was silent",
                                   code=LOCK_LOST)

    def release(self) -> None:
        t = s.JobLock
        with self.engine.begin() as connection:
            connection.execute(delete(t).where(t.name == self.name, t.holder == self.holder))


def acquire(engine: Engine, name: str, *, stale_after: timedelta = STALE_AFTER,
            clock: Callable[[], datetime] | None = None, holder: str | None = None) -> JobLock:
    """Take the lock of job ``name`` (see the module docstring);
    :class:`~workbench.errors.UnavailableError` (code ``job_locked``) if a live
    run holds it. ``clock`` (naive UTC) replaces the database's clock, for tests."""
    t = s.JobLock
    lock = JobLock(engine, name, holder or _holder(), clock)
    for _ in range(3):  # the holder may release between our insert and our read
        try:
            with engine.begin() as connection:
                now = lock.now(connection)
                connection.execute(insert(t).values(name=name, holder=lock.holder, acquired_at=now, heartbeat_at=now))
            return lock
        except IntegrityError:
            pass
        with engine.begin() as connection:
            now = lock.now(connection)
            held = connection.execute(select(t.holder, t.acquired_at, t.heartbeat_at).where(t.name == name)).first()
            if held is None:
                continue
            silent = now - held.heartbeat_at
            if silent < stale_after and not _dead_here(held.holder):
                raise UnavailableError(
                    f"another {name} run is in progress: {held.holder}, started {held.acquired_at:%Y-%m-%d %H:%M:%S} "
                    f"UTC, last active {held.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC; try again when it has finished "
                    f"(a run silent for {int(stale_after.total_seconds() // 60)} minutes is taken for dead)",
                    code=LOCKED)
            moved = connection.execute(
                update(t).where(t.name == name, t.holder == held.holder, t.heartbeat_at == held.heartbeat_at)
                .values(holder=lock.holder, acquired_at=now, heartbeat_at=now)).rowcount
        if moved == 1:
            lock.taken_over = (f"took over the {name} lock of {held.holder}, "
                               f"silent since {held.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC")
            return lock
    raise UnavailableError(f"the {name} lock keeps changing hands: try again", code=LOCKED)


@contextmanager
def job_lock(engine: Engine, name: str, **options) -> Iterator[JobLock]:
    """:func:`acquire` the lock for the ``with`` block, released at its end (even on error)."""
    lock = acquire(engine, name, **options)
    try:
        yield lock
    finally:
        lock.release()
