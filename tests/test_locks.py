"""Job locks (workbench.db.locks) on SQLite and PostgreSQL, with a controlled clock."""

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from workbench.db import schema as s
from workbench.db.locks import acquire, job_lock
from workbench.errors import UnavailableError

T0 = datetime(2026, 11, 2, 9, 0)


class Clock:
    def __init__(self):
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def holders(engine) -> dict[str, str]:
    with engine.connect() as c:
        return dict(c.execute(select(s.JobLock.name, s.JobLock.holder)).all())


def test_one_holder_per_job_beats_keep_it_and_silence_loses_it(engine):
    clock = Clock()
    first = acquire(engine, "mail", clock=clock, holder="host-a:1:aaaa")
    other_job = acquire(engine, "export", clock=clock, holder="host-b:2:bbbb")  # another job: independent
    clock.now = T0 + timedelta(minutes=9)
    with pytest.raises(UnavailableError, match="another mail run is in progress: host-a:1:aaaa"):
        acquire(engine, "mail", clock=clock, holder="host-b:3:cccc")
    first.beat()  # at 9 minutes: alive again
    clock.now = T0 + timedelta(minutes=18)
    with pytest.raises(UnavailableError) as alive:  # 9 minutes after its beat: still alive
        acquire(engine, "mail", clock=clock, holder="host-b:3:cccc")
    assert alive.value.code == "job_locked"
    clock.now = T0 + timedelta(minutes=19, seconds=1)  # silent for 10 minutes and 1 second
    second = acquire(engine, "mail", clock=clock, holder="host-b:3:cccc")
    assert second.taken_over and "host-a:1:aaaa" in second.taken_over
    with pytest.raises(UnavailableError, match="taken over by another run") as lost:
        first.beat()
    assert lost.value.code == "job_lock_lost"
    first.release()  # releases nothing of the new holder's
    assert holders(engine) == {"mail": "host-b:3:cccc", "export": "host-b:2:bbbb"}
    second.release()
    other_job.release()
    assert holders(engine) == {}


def test_the_lock_is_released_when_the_block_fails(engine):
    with pytest.raises(RuntimeError, match="the job failed"), job_lock(engine, "mail"):
        assert list(holders(engine)) == ["mail"]
        raise RuntimeError("the job failed")
    assert holders(engine) == {}
    with job_lock(engine, "mail") as lock:
        assert lock.taken_over is None
