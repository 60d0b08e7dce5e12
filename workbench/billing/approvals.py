"""Approvals of pre-production runs: a reviewer signs a run off before production issues it.

Four eyes: the person who launched a run (``billing_runs.created_by``: the logged-in user in the
notebooks and dashboards, the system user on the command line) cannot approve it, unless the
setting ``allow_self_approval`` says ``yes``. Production issues an approved run; a run without an
approval is issued only when forced, the reason kept as a ``forced`` row of ``run_approvals``
(see :class:`workbench.db.schema.RunApproval`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd
from sqlalchemy import Connection, Engine, insert, select

from workbench.db import schema as s
from workbench.db.frames import read_frame
from workbench.errors import InputError, RefusedError
from workbench.period import Period
from workbench.reads.runs import run_row

#: the longest name or comment kept (the column's size for names; comments are cut)
NAME_LENGTH, COMMENT_LENGTH = 100, 2000


@dataclass(frozen=True)
class Approval:
    """A run's approval: ``run_id``, ``approved_by``, ``approved_at`` (naive UTC), ``comment``."""

    run_id: int
    approved_by: str
    approved_at: datetime
    comment: str


def _clean(text: str | None, length: int) -> str:
    return " ".join(str(text or "").split())[:length]


def approve(engine: Engine, run_id: int, reviewer: str | None, comment: str, now: datetime,
            allow_self_approval: bool = False) -> Approval:
    """Record ``reviewer``'s approval of pre-production run ``run_id`` with ``comment``.

    :class:`~workbench.errors.RefusedError` when nobody is logged in (``reviewer`` empty,
    code ``not_logged_in``), when the run is a production run or already issued (``not_approvable``),
    or when ``reviewer`` launched the run and ``allow_self_approval`` is false (``four_eyes``);
    :class:`~workbench.errors.InputError` for an unknown run."""
    reviewer = _clean(reviewer, NAME_LENGTH)
    if not reviewer:
        raise RefusedError("log in to approve a run: the approver is the logged-in reviewer", code="not_logged_in")
    with engine.begin() as connection:
        run = run_row(connection, run_id)
        if run["kind"] != "preprod":
            raise RefusedError(f"run {run_id} is a production run: approve the pre-production run it issues",
                               code="not_approvable")
        if run["status"] != "done":
            raise RefusedError(f"run {run_id} is already issued in production: there is nothing left to approve",
                               code="not_approvable")
        if not allow_self_approval and reviewer == run["created_by"]:
            raise RefusedError(f"run {run_id} was launched by {reviewer}: another reviewer must approve it "
                               "(four eyes; the setting allow_self_approval lifts this rule)", code="four_eyes")
        comment = _clean(comment, COMMENT_LENGTH)
        connection.execute(insert(s.RunApproval).values(run_id=run_id, approved_by=reviewer, approved_at=now,
                                                        comment=comment, forced=False))
    return Approval(run_id, reviewer, now, comment)


def approval_of(connection: Connection, run_id: int) -> Approval | None:
    """The approval of run ``run_id`` (its latest one), or ``None``."""
    row = connection.execute(select(s.RunApproval.__table__).where(
        s.RunApproval.run_id == run_id, s.RunApproval.forced.is_(False))
        .order_by(s.RunApproval.approved_at.desc(), s.RunApproval.id.desc()).limit(1)).mappings().first()
    return None if row is None else Approval(row["run_id"], row["approved_by"], row["approved_at"], row["comment"])


def approvals(engine: Engine, run_id: int | None = None) -> pd.DataFrame:
    """The approvals (and forced productions) recorded, newest first: run_id, approved_by,
    approved_at (naive UTC), comment, forced; of run ``run_id`` only when given."""
    stmt = select(s.RunApproval.run_id, s.RunApproval.approved_by, s.RunApproval.approved_at,
                  s.RunApproval.comment, s.RunApproval.forced).order_by(
        s.RunApproval.approved_at.desc(), s.RunApproval.id.desc())
    if run_id is not None:
        stmt = stmt.where(s.RunApproval.run_id == run_id)
    with engine.connect() as connection:
        return read_frame(connection, stmt)


def approved_run(engine: Engine, period: str) -> int:
    """The approved pre-production run of ``period``: of the runs approved, the one approved last
    among those not issued yet, else (all issued) the one approved last, so that the scheduled
    job run again says it was already issued. :class:`~workbench.errors.RefusedError`
    (``not_approved``) when no run of the period is approved."""
    period = str(Period.parse(str(period)))
    with engine.connect() as connection:
        rows = connection.execute(select(s.BillingRun.id, s.BillingRun.status).join(
            s.RunApproval, s.RunApproval.run_id == s.BillingRun.id).where(
            s.BillingRun.period == period, s.BillingRun.kind == "preprod", s.RunApproval.forced.is_(False))
            .order_by(s.RunApproval.approved_at.desc(), s.RunApproval.id.desc())).all()
    if not rows:
        raise RefusedError(f"no pre-production run of {period} is approved: a reviewer approves one in the review "
                           "dashboard", code="not_approved")
    waiting = [run_id for run_id, status in rows if status == "done"]
    return int(waiting[0] if waiting else rows[0][0])


def check_approved(connection: Connection, run_id: int, launched_by: str, now: datetime,
                   force_reason: str | None = None) -> Approval | None:
    """Before production issues run ``run_id``: its approval; or, with no approval, ``None`` once
    the ``force_reason`` is recorded (a ``forced`` row, by ``launched_by``).
    :class:`~workbench.errors.RefusedError` (``not_approved``) when the run has no approval and no
    reason is given; :class:`~workbench.errors.InputError` for an unknown run."""
    run = run_row(connection, run_id)
    approval = approval_of(connection, run_id)
    if approval is not None or run["kind"] != "preprod" or run["status"] != "done":
        return approval  # a production run or one already issued: production says so itself
    reason = _clean(force_reason, COMMENT_LENGTH)
    if not reason:
        raise RefusedError(f"run {run_id} is not approved: a reviewer other than {run['created_by']} approves it in "
                           "the review dashboard (or issue it anyway with --force REASON, the reason kept with the "
                           "run)", code="not_approved")
    connection.execute(insert(s.RunApproval).values(run_id=run_id, approved_by=_clean(launched_by, NAME_LENGTH),
                                                    approved_at=now, comment=reason, forced=True))
    return None


def check_reviewer_name(name: str) -> str:
    """A reviewer's login name: 1 to 100 letters, digits, ``.``, ``_``, ``-`` or ``@``;
    else :class:`~workbench.errors.InputError`."""
    import re

    if not re.fullmatch(r"[\w.@-]{1,100}", name or ""):
        raise InputError(f"{name!r} is not a login name (letters, digits, '.', '_', '-', '@'; at most 100)",
                         code="bad_name")
    return name
