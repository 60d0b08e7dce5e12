"""Credit notes: an issued invoice cancelled in full, or in part.

The credit note (numbered ``A<year>-000001``) of a full cancellation carries the invoice's lines
and VAT with the opposite sign; a **partial** one (``amount_cents``, including VAT, less than the
invoice's total) carries one line of that amount, split into its amount excluding VAT and its
VAT at the invoice's one VAT rate (see :func:`partial_amounts`). Several partial notes may
credit one invoice, up to its total; a full note after them credits the rest (and cannot reopen
the period: the invoice would be credited twice).

What the note's amount (including VAT) becomes:

* **against an invoice still to be collected by direct debit** (its customer pays by
  ``direct_debit`` and no SEPA debit is recorded for it yet): the note is set against that
  collection first, up to what the invoice still has to collect (its net payable less the
  earlier notes set against it), recorded as the note's ``collection_offset_cents``; the SEPA job
  debits the invoice that much less (a full cancellation: not at all). Only the rest, if any,
  becomes account credit: the account credit the invoice had used, given back. So an invoice
  of 36.00 cancelled before collection is not debited and leaves no account credit; a partial
  note of 12.00 leaves a debit of 24.00 and no account credit;
* **otherwise** (the invoice was debited already, or the customer pays by transfer, which the
  workbench does not follow): the whole amount becomes account credit, which the customer's
  next invoices use first.

Either way each cent of the note is counted once: collected less, or credit to use.

The note of an invoice whose total is **negative** (an ended subscription's days given back: the
invoice recorded its negative total as account credit at issue, net payable 0) sets nothing
against any collection (``collection_offset_cents`` is never negative); it takes that credit
back by a negative credit entry of the same amount. An invoice of -12.32 cancelled: a credit
entry of -12.32, no debit.

A full credit note may **reopen the period** of the invoice it cancels (``reinvoice``): the calls
and one-off charges that invoice billed become unbilled again, and the customer counts as not yet
invoiced for that period, so the next pre-production and production runs of the period invoice
it again, with whatever was corrected meanwhile (a re-rating after a tariff fix, say).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Connection, Engine, func, insert, select, update

from workbench.billing.invoice_numbers import CREDIT_NOTE_SERIES, check_chronology, take_numbers
from workbench.billing.runs import keep_identity, lock_invoices
from workbench.db import ratings as rating_store
from workbench.db import schema as s
from workbench.db.bulk import insert_frame
from workbench.db.frames import read_frame
from workbench.db.locks import lock_table
from workbench.errors import InputError, RefusedError
from workbench.invoicing.build import vat_basis_points
from workbench.money import format_money, integer_series, round_half_up
from workbench.period import local_date


def partial_amounts(amount_cents: int, vat_basis_points: int) -> tuple[int, int]:
    """``(excl, vat)`` cents of a partial credit of ``amount_cents`` including VAT at a rate of
    ``vat_basis_points`` (1/100 percent: 20 % is 2000): ``excl`` = round half up(amount x 10,000 /
    (10,000 + rate)), the one rounding point; ``vat`` = amount - excl, so the two add up to the
    amount exactly. 12.00 at 20 %: 1200 x 10000 / 12000 = 1000, VAT 200."""
    excl = round_half_up(amount_cents * 10_000, 10_000 + vat_basis_points)
    return excl, amount_cents - excl


def _still_to_collect(connection: Connection, invoice: dict) -> int:
    """What the SEPA job would still debit for ``invoice``: its net payable less what credit notes
    were set against it; 0 when it was not issued payable by direct debit or was debited already."""
    means = connection.execute(select(s.Invoice.payment_means).where(s.Invoice.id == invoice["id"])).scalar_one()
    debited = connection.execute(select(s.SepaDebit.id).where(s.SepaDebit.invoice_id == invoice["id"])).first()
    if means != "direct_debit" or debited is not None:
        return 0
    offset = connection.execute(select(func.coalesce(func.sum(s.Invoice.collection_offset_cents), 0)).where(
        s.Invoice.corrects_invoice_id == invoice["id"], s.Invoice.kind == "credit_note")).scalar_one()
    return max(0, int(invoice["net_payable_cents"]) - int(offset))


def issue_credit_note(engine: Engine, invoice_number: str, reason: str, now: datetime,
                      reinvoice: bool = False, timezone: str = "Europe/Paris",
                      amount_cents: int | None = None) -> str:
    """Cancel an issued invoice by a credit note of its full amount, or of ``amount_cents``
    (including VAT; a partial note, see the module docstring); the amount is set against the
    invoice's collection when it is still to be debited, else it becomes account credit (module
    docstring). ``now`` is naive UTC; the note is dated and numbered by the operator's date in
    ``timezone`` (the ``timezone`` setting) and keeps the customer's identity of that moment.
    With ``reinvoice`` (full notes only), the note reopens the invoice's period: its calls and
    one-off charges are unbilled again and the customer is invoiced again by the period's next
    runs. Returns the credit note's number.

    :class:`~workbench.errors.InputError` for an amount that is not positive, is more than the
    invoice's total, or a partial note that reopens the period;
    :class:`~workbench.errors.RefusedError` when the invoice is not issued, is credited in full
    already, has partial notes and would be reopened, has several VAT rates (partial note), or
    when the note would be dated before the last credit note of its year.

    Several partial notes may credit one invoice, up to its total; a note without an amount after
    partial ones credits the rest (a partial note of that amount)."""
    if amount_cents is not None:
        if int(amount_cents) != amount_cents or amount_cents <= 0:
            raise InputError(f"the amount of a credit note must be positive, not {format_money(amount_cents)}",
                             code="bad_amount")
        if reinvoice:
            raise InputError("a partial credit note cannot reopen the period: cancel the invoice in full",
                             code="bad_amount")
    with engine.begin() as connection:
        lock_invoices(connection)  # before the checks: two notes for one invoice wait for each other
        # and a SEPA run under way (it holds this lock) records its debits before the note asks
        # whether its invoice is debited; a SEPA run after the note sees what the note set off
        lock_table(connection, s.SepaDebit.__table__)
        original = connection.execute(select(s.Invoice.__table__).where(s.Invoice.number == invoice_number)
                                      ).mappings().first()
        if original is None or original["status"] != "issued" or original["kind"] != "invoice":
            raise RefusedError(f"{invoice_number} is not an issued invoice", code="not_issued")
        total = int(original["total_incl_cents"])
        notes, noted = connection.execute(select(func.count(), func.coalesce(func.sum(s.Invoice.total_incl_cents), 0))
                                          .where(s.Invoice.corrects_invoice_id == original["id"])).one()
        already = -int(noted)  # what earlier (partial) notes credited, including VAT
        rest = total - already
        if notes and (rest <= 0 or total < 0):
            raise RefusedError(f"{invoice_number} already has a credit note", code="already_credited")
        if notes and reinvoice:
            raise RefusedError(f"{invoice_number} already has partial credit notes of {format_money(already)}: "
                               "reopening its period would credit them twice; credit the rest "
                               f"({format_money(rest)}) without reopening", code="already_credited")
        vat = read_frame(connection, select(s.InvoiceVat.__table__).where(
            s.InvoiceVat.invoice_id == original["id"]))
        if amount_cents is not None and amount_cents > rest:
            left = f" left to credit ({format_money(already)} credited already)" if notes else ""
            raise InputError(f"a credit note of {format_money(amount_cents)} is more than {invoice_number}'s total"
                             f"{left} {format_money(rest)}", code="bad_amount")
        # partial: less than the total, or the rest after earlier partial notes
        partial = (amount_cents is not None and amount_cents < total) or bool(notes)
        if partial and len(vat) != 1:
            raise RefusedError(f"{invoice_number} has {len(vat)} VAT rates: a partial credit note needs one; "
                               "cancel it in full and invoice again", code="several_vat_rates")
        credited = (amount_cents if amount_cents is not None else rest) if partial else total
        today = local_date(now, timezone)  # the operator's date: it dates and numbers the note
        number = take_numbers(connection, CREDIT_NOTE_SERIES, today.year, 1)[0]  # locks the series
        check_chronology(connection, CREDIT_NOTE_SERIES, today, f"a credit note for {invoice_number}")
        # never below 0: the note of a negative invoice (days given back) collects nothing more, it
        # takes back the account credit that invoice recorded (a negative credit entry below)
        offset = max(0, min(credited, _still_to_collect(connection, original)))
        if partial:
            rate = Decimal(str(vat["vat_rate"].iloc[0]))
            excl, tax = partial_amounts(credited, vat_basis_points(rate))
        else:
            excl, tax = int(original["total_excl_cents"]), int(original["total_vat_cents"])
        note_id = connection.execute(insert(s.Invoice).values(
            run_id=None, number=number, kind="credit_note", status="issued", customer_id=original["customer_id"],
            period=original["period"], invoice_date=today, due_date=today,
            total_excl_cents=-excl, total_vat_cents=-tax, total_incl_cents=-credited, credit_applied_cents=0,
            net_payable_cents=0, previous_amount_cents=None, corrects_invoice_id=original["id"], issued_at=now,
            reopens_period=reinvoice, collection_offset_cents=offset,
            # the VAT category and mentions of the invoice it cancels (workbench.invoicing.vat)
            vat_category=original["vat_category"], vat_on_debits=original["vat_on_debits"],
        ).returning(s.Invoice.id)).scalar_one()
        keep_identity(connection, s.Invoice.id == note_id)
        if reinvoice:
            rating_store.unbill(connection, int(original["id"]))
            connection.execute(update(s.OneOffCharge).where(s.OneOffCharge.invoice_id == original["id"])
                               .values(invoice_id=None))
        if partial:
            connection.execute(insert(s.InvoiceItem).values(
                invoice_id=note_id, position=1, type="adjustment", description=f"{reason}: {invoice_number}",
                quantity=Decimal(1), unit_price_cents=-excl, amount_cents=-excl, vat_rate=rate,
                vat_category=vat["vat_category"].iloc[0]))
            connection.execute(insert(s.InvoiceVat).values(
                invoice_id=note_id, vat_rate=rate, base_cents=-excl, vat_cents=-tax,
                vat_category=vat["vat_category"].iloc[0],
                exemption_reason_code=code if isinstance(code := vat["exemption_reason_code"].iloc[0], str) else None))
        else:
            items = read_frame(connection, select(s.InvoiceItem.__table__).where(
                s.InvoiceItem.invoice_id == original["id"], s.InvoiceItem.type != "credit"))
            if len(items):
                for column in ("position", "unit_price_cents", "amount_cents", "calls", "seconds", "one_off_id",
                               "subscription_id"):
                    items[column] = integer_series(items[column])
                items = items.drop(columns=["id"]).assign(invoice_id=note_id, amount_cents=-items["amount_cents"],
                                                          description=reason + ": " + items["description"])
                insert_frame(connection, "invoice_items", items)
            if len(vat):
                vat = vat.drop(columns=["id"]).assign(invoice_id=note_id, base_cents=-vat["base_cents"],
                                                      vat_cents=-vat["vat_cents"])
                insert_frame(connection, "invoice_vat", vat)
        if credited != offset:
            set_off = f", {format_money(offset)} set against its collection" if offset else ""
            connection.execute(insert(s.CreditEntry).values(
                customer_id=original["customer_id"], entry_date=today, amount_cents=credited - offset,
                description=f"credit note {number} for {invoice_number}{set_off}: {reason}"[:200], invoice_id=None))
    return number
