"""The credit note job: cancel an issued invoice, and store the credit note's PDF."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from workbench.billing import issue_credit_note
from workbench.config import Settings
from workbench.jobs.documents import PublishReport, publish_invoices
from workbench.jobs.workspace import utc_now


@dataclass(frozen=True)
class CreditNoteResult:
    number: str
    invoice_number: str
    reopened: bool
    documents: PublishReport


def credit_note(engine: Engine, settings: Settings, invoice_number: str, reason: str, reinvoice: bool = False,
                now: datetime | None = None) -> CreditNoteResult:
    """Issue a credit note for ``invoice_number`` (see :mod:`workbench.billing.credit_notes`;
    ``reinvoice`` reopens its period) and store its PDF; :class:`~workbench.errors.RefusedError`
    when the invoice is not issued or already credited."""
    number = issue_credit_note(engine, invoice_number, reason, now or utc_now(), reinvoice=reinvoice)
    return CreditNoteResult(number, invoice_number, reinvoice, publish_invoices(engine, settings, [number]))
