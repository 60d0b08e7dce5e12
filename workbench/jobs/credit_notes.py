"""The credit note job: cancel an issued invoice, and store the credit note's PDF."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Engine

from workbench.billing import issue_credit_note
from workbench.config import Settings
from workbench.errors import InputError
from workbench.jobs.documents import PublishReport, publish_invoices, storing_issued
from workbench.jobs.workspace import utc_now
from workbench.money import CENT_SCALE, parse_amount
from workbench.storage import Storage


@dataclass(frozen=True)
class CreditNoteResult:
    number: str
    invoice_number: str
    reopened: bool
    documents: PublishReport


def credit_note(engine: Engine, settings: Settings, invoice_number: str, reason: str, reinvoice: bool = False,
                now: datetime | None = None, amount: str | Decimal | None = None) -> CreditNoteResult:
    """Issue a credit note for ``invoice_number`` (see :mod:`workbench.billing.credit_notes`;
    ``reinvoice`` reopens its period; ``amount``, in euros including VAT such as ``"12.00"``, makes
    a partial note) and store its PDF; :class:`~workbench.errors.InputError` for an amount that is
    not whole cents, not positive or more than the invoice; :class:`~workbench.errors.RefusedError`
    when the invoice is not issued or already credited, :class:`~workbench.errors.ConfigError` for
    a storage URL that cannot be used (nothing is issued), :class:`~workbench.errors.UnavailableError`
    when the PDF cannot be stored (the note is issued; the message says how to store it)."""
    cents = None
    if amount is not None:
        try:
            cents = parse_amount(amount, CENT_SCALE)
        except InputError as exc:
            raise InputError(exc.message, source="credit note amount", code="bad_amount") from None
    Storage(settings.storage_url)  # a storage URL that cannot be used stops here, before any number is taken
    number = issue_credit_note(engine, invoice_number, reason, now or utc_now(), reinvoice=reinvoice,
                               timezone=settings.timezone, amount_cents=cents)
    with storing_issued(f"Credit note {number} is issued for {invoice_number}",
                        f"its PDF with `workbench documents --invoice {number}`"):
        documents = publish_invoices(engine, settings, [number])
    return CreditNoteResult(number, invoice_number, reinvoice, documents)
