"""Approving a pre-production run (the review dashboard, ``workbench approve``): see
:mod:`workbench.billing.approvals` for the rules (four eyes, production refused without one)."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from sqlalchemy import Engine

from workbench.billing.approvals import Approval, approvals, approve, approved_run
from workbench.config import Settings
from workbench.jobs.workspace import utc_now
from workbench.reads.runs import run_row

__all__ = ["Approval", "approve_run", "approved_run", "run_approvals", "run_state"]


def approve_run(engine: Engine, settings: Settings, run_id: int, reviewer: str | None, comment: str = "",
                now: datetime | None = None) -> Approval:
    """``reviewer`` (the logged-in reviewer; the system user on the command line) approves run
    ``run_id``; four eyes unless ``allow_self_approval`` (:func:`workbench.billing.approvals.approve`
    says what is refused)."""
    return approve(engine, run_id, reviewer, comment, now or utc_now(), settings.self_approval)


def run_approvals(engine: Engine, run_id: int | None = None) -> pd.DataFrame:
    """The approvals recorded (of run ``run_id``), newest first (:func:`workbench.billing.approvals.approvals`)."""
    return approvals(engine, run_id)


def run_state(engine: Engine, run_id: int) -> dict:
    """What the approval panel shows of run ``run_id``: ``kind``, ``period``, ``status``,
    ``created_by`` (who launched it), ``created_at`` and ``approvals`` (a frame, newest first);
    :class:`~workbench.errors.InputError` for an unknown run."""
    with engine.connect() as connection:
        run = run_row(connection, run_id)
    return {"kind": run["kind"], "period": run["period"], "status": run["status"], "created_by": run["created_by"],
            "created_at": run["created_at"], "approvals": approvals(engine, run_id)}
