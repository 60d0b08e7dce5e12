"""Credit notes: an issued invoice cancelled in full.

The credit note (numbered ``A<year>-000001``) carries the invoice's lines and VAT with the
opposite sign; its amount including VAT becomes account credit, which the customer's next
invoices use first. A credit note may **reopen the period** of the invoice it cancels
(``reinvoice``): the calls and one-off charges that invoice billed become unbilled again, and the
customer counts as not yet invoiced for that period, so the next pre-production and production
runs of the period invoice it again, with whatever was corrected meanwhile (a re-rating after a
tariff fix, say).
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from sqlalchemy import Engine, insert, select, update

from workbench.billing.invoice_numbers import CREDIT_NOTE_SERIES, take_numbers
from workbench.billing.runs import lock_invoices
from workbench.db import schema as s
from workbench.db.bulk import insert_frame
from workbench.db.frames import read_frame
from workbench.errors import RefusedError
from workbench.period import local_date


def issue_credit_note(engine: Engine, invoice_number: str, reason: str, now: datetime,
                      reinvoice: bool = False, timezone: str = "Europe/Paris") -> str:
    """Cancel an issued invoice by a credit note of its full amount; the amount including VAT
    becomes account credit. ``now`` is naive UTC; the note is dated and numbered by the operator's
    date in ``timezone`` (the ``timezone`` setting). With ``reinvoice``, the note reopens the
    invoice's period: its calls and one-off charges are unbilled again and the customer is
    invoiced again by the period's next runs. Returns the credit note's number."""
    with engine.begin() as connection:
        lock_invoices(connection)  # before the checks: two notes for one invoice wait for each other
        original = connection.execute(select(s.Invoice.__table__).where(s.Invoice.number == invoice_number)
                                      ).mappings().first()
        if original is None or original["status"] != "issued" or original["kind"] != "invoice":
            raise RefusedError(f"{invoice_number} is not an issued invoice", code="not_issued")
        if connection.execute(select(s.Invoice.id).where(s.Invoice.corrects_invoice_id == original["id"])).first():
            raise RefusedError(f"{invoice_number} already has a credit note", code="already_credited")
        today = local_date(now, timezone)  # the operator's date: it dates and numbers the note
        number = take_numbers(connection, CREDIT_NOTE_SERIES, today.year, 1)[0]
        note_id = connection.execute(insert(s.Invoice).values(
            run_id=None, number=number, kind="credit_note", status="issued", customer_id=original["customer_id"],
            period=original["period"], invoice_date=today, due_date=today,
            total_excl_cents=-original["total_excl_cents"], total_vat_cents=-original["total_vat_cents"],
            total_incl_cents=-original["total_incl_cents"], credit_applied_cents=0, net_payable_cents=0,
            previous_amount_cents=None, corrects_invoice_id=original["id"], issued_at=now,
            reopens_period=reinvoice,
        ).returning(s.Invoice.id)).scalar_one()
        if reinvoice:
            for table in (s.RatedCall, s.OneOffCharge):
                connection.execute(update(table).where(table.invoice_id == original["id"]).values(invoice_id=None))
        items = read_frame(connection, select(s.InvoiceItem.__table__).where(
            s.InvoiceItem.invoice_id == original["id"], s.InvoiceItem.type != "credit"))
        if len(items):
            for column in ("position", "unit_price_cents", "amount_cents", "calls", "seconds", "one_off_id",
                           "subscription_id"):
                items[column] = pd.array(pd.to_numeric(items[column]), dtype="Int64")
            items = items.drop(columns=["id"]).assign(invoice_id=note_id, amount_cents=-items["amount_cents"],
                                                      description=reason + ": " + items["description"])
            insert_frame(connection, "invoice_items", items)
        vat = read_frame(connection, select(s.InvoiceVat.__table__).where(
            s.InvoiceVat.invoice_id == original["id"]))
        if len(vat):
            vat = vat.drop(columns=["id"]).assign(invoice_id=note_id, base_cents=-vat["base_cents"],
                                                  vat_cents=-vat["vat_cents"])
            insert_frame(connection, "invoice_vat", vat)
        connection.execute(insert(s.CreditEntry).values(
            customer_id=original["customer_id"], entry_date=today, amount_cents=original["total_incl_cents"],
            description=f"credit note {number} for {invoice_number}: {reason}", invoice_id=None))
    return number

