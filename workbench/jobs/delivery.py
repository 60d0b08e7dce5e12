"""The delivery job: email issued invoices and credit notes to their customers' recipients."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine

from workbench.config import Settings, redacted
from workbench.errors import InputError
from workbench.jobs.workspace import utc_now
from workbench.mail import DeliveryReport, PlanReport, plan_deliveries, release, send_pending
from workbench.reads.runs import run_row


@dataclass(frozen=True)
class DeliveryResult:
    """What was planned (``None`` for a retry of what is pending), the deliveries made due again at
    the operator's request (``released``: invoice number, recipient, former state: ``given up``,
    ``uncertain``, ``failed`` or ``pending``) and what was sent."""

    planned: PlanReport | None
    sent: DeliveryReport
    transport: str
    released: list[tuple[str, str, str]] = field(default_factory=list)


def deliver(engine: Engine, settings: Settings, run_id: int | None = None, period: str | None = None,
            retry: bool = False, now: datetime | None = None, resend: list[str] | None = None,
            given_up: bool = False, uncertain: bool = False) -> DeliveryResult:
    """Plan the deliveries of a production run's (or a period's) documents, then send everything
    pending (see :mod:`workbench.mail.ledger` and :mod:`workbench.mail.sending`); with ``retry``
    only send what is pending. First, at the operator's request, make due again the unsent
    deliveries of the documents numbered ``resend``, every delivery given up (``given_up``) and
    every delivery possibly sent (``uncertain``) (:func:`workbench.mail.ledger.release`); those
    alone need no run, period or ``retry``.

    Raises :class:`~workbench.errors.InputError` when nothing is named or the run is not a
    production run,
    :class:`~workbench.errors.ConfigError` for an unusable mail set-up and
    :class:`~workbench.errors.UnavailableError` when another mail run is in progress; a server
    that stops answering halfway is reported in ``sent.stopped`` (run the job again to finish)."""
    released_only = bool(resend) or given_up or uncertain
    if run_id is None and period is None and not retry and not released_only:
        raise InputError("give a production run or a period (or retry to send what is pending)",
                         code="nothing_named")
    if run_id is not None and not retry:
        with engine.connect() as connection:
            run = run_row(connection, run_id)
        if run["kind"] != "production":
            raise InputError(f"run {run_id} is a pre-production run: its drafts are not emailed", code="not_issued")
    released = release(engine, resend, given_up=given_up, uncertain=uncertain) if released_only else []
    planned = None
    if not retry and (run_id is not None or period is not None):
        planned = plan_deliveries(engine, run_id=run_id, period=period)
    report = send_pending(engine, settings, now or utc_now())
    return DeliveryResult(planned, report, redacted(settings.smtp_url) or settings.outbox_dir, released)
