"""Billing runs: pre-production (drafts) and production (issued invoices).

A **pre-production run** reads the period's inputs for its customers, builds the invoices
(:mod:`workbench.invoicing`), and stores them as drafts numbered ``PRE-<run>-0001``... with a
fingerprint of the inputs (:mod:`workbench.billing.inputs`). It writes nothing else: no legal
number, no call or charge marked billed, no credit used.

A **production run** promotes a reviewed pre-production run: in one transaction it takes the
numbering lock, checks that the inputs still have the fingerprint that was reviewed (else it
refuses, saying which inputs changed), skips the customers already invoiced for the period,
refuses an invoice date before the last issued invoice of its year (numbers follow the dates:
:func:`~workbench.billing.invoice_numbers.check_chronology`), and issues the drafts with legal
numbers (:mod:`workbench.billing.invoice_numbers`), marking the calls, one-off charges and credit
they bill (a negative total, days given back, becomes account credit). Issued documents are never changed; a correction
is a credit note (:mod:`workbench.billing.credit_notes`).
"""

from __future__ import annotations

import getpass
import json
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

import pandas as pd
from sqlalchemy import ColumnElement, Connection, Engine, and_, bindparam, case, delete, insert, literal, select, update

from workbench.billing.inputs import build_run, fingerprint, fingerprint_changes
from workbench.billing.invoice_numbers import (
    INVOICE_SERIES,
    check_chronology,
    draft_numbers,
    lock_numbering,
    take_numbers,
)
from workbench.config import Settings
from workbench.db import ratings as rating_store
from workbench.db import schema as s
from workbench.db.bulk import insert_frame
from workbench.db.locks import lock_table
from workbench.db.partitions import lock_partitions
from workbench.errors import InputError, RefusedError
from workbench.invoicing import Invoices
from workbench.period import Period
from workbench.reads.runs import RunOptions, options_of, run_row
from workbench.reads.selection import invoiced_customers, parse_customers


@dataclass
class RunSummary:
    run_id: int
    kind: str
    period: str
    invoices: int
    total_incl_cents: int
    net_payable_cents: int
    skipped: list[str] = field(default_factory=list)
    message: str = ""
    numbers: tuple[str, str] | None = None


def store_invoices(connection: Connection, run_id: int, built: Invoices, numbers: list[str], status: str,
                    options: RunOptions, period: Period, issued_at: datetime | None) -> dict[int, int]:
    """Insert invoices (in ``built.invoices`` order, numbered ``numbers``), their items and VAT;
    returns customer id -> invoice id."""
    if built.invoices.empty:
        return {}
    inv = built.invoices
    rows = [{
        "run_id": run_id, "number": number, "kind": "invoice", "status": status,
        "customer_id": int(r.customer_id), "period": str(period), "invoice_date": options.invoice_date,
        "due_date": options.due_date, "total_excl_cents": int(r.total_excl_cents),
        "total_vat_cents": int(r.total_vat_cents), "total_incl_cents": int(r.total_incl_cents),
        "credit_applied_cents": int(r.credit_applied_cents), "net_payable_cents": int(r.net_payable_cents),
        "previous_amount_cents": None if pd.isna(r.previous_amount_cents) else int(r.previous_amount_cents),
        "issued_at": issued_at, "vat_category": r.vat_category, "vat_on_debits": bool(r.vat_on_debits),
    } for r, number in zip(inv.itertuples(index=False), numbers, strict=True)]
    result = connection.execute(
        insert(s.Invoice).returning(s.Invoice.id, s.Invoice.customer_id, sort_by_parameter_order=True), rows)
    ids = {int(c): int(i) for i, c in result.all()}
    items = built.items.copy()
    items["invoice_id"] = items.pop("customer_id").map(ids)
    items["quantity"] = items["quantity"].map(lambda q: Decimal(str(q)))
    items["vat_rate"] = items["vat_rate"].map(lambda r: None if r is None or pd.isna(r) else Decimal(str(r)))
    insert_frame(connection, "invoice_items", items)
    vat = built.vat.copy()
    vat["invoice_id"] = vat.pop("customer_id").map(ids)
    insert_frame(connection, "invoice_vat", vat[["invoice_id", "vat_rate", "base_cents", "vat_cents", "vat_category",
                                                 "exemption_reason_code"]])
    return ids


def preprod(engine: Engine, options: RunOptions, settings: Settings, now: datetime,
            created_by: str | None = None) -> RunSummary:
    """Run a pre-production billing; store its drafts. Changes nothing production depends on."""
    period = Period.parse(options.period)
    parse_customers(options.customers)
    if options.due_date < options.invoice_date:
        raise InputError(f"the due date {options.due_date} is before the invoice date {options.invoice_date}",
                         code="bad_date")
    with engine.begin() as connection:
        customers, frames, built = build_run(connection, options, settings)
        run_id = connection.execute(insert(s.BillingRun).values(
            kind="preprod", period=str(period), invoice_date=options.invoice_date, due_date=options.due_date,
            options=options.to_json(), fingerprint=json.dumps(fingerprint(frames)),
            created_by=created_by or getpass.getuser(), created_at=now, status="done",
        ).returning(s.BillingRun.id)).scalar_one()
        numbers = draft_numbers(run_id, len(built.invoices))
        store_invoices(connection, run_id, built, numbers, "draft", options, period, None)
    inv = built.invoices
    return RunSummary(run_id, "preprod", str(period), len(inv), int(inv["total_incl_cents"].sum()),
                      int(inv["net_payable_cents"].sum()), numbers=(numbers[0], numbers[-1]) if numbers else None)


def delete_run(engine: Engine, run_id: int) -> int:
    """Delete a pre-production run and its drafts; returns the number of drafts deleted."""
    with engine.begin() as connection:
        run = run_row(connection, run_id)
        if run["kind"] != "preprod":
            raise RefusedError(f"run {run_id} is a production run: issued invoices are never deleted")
        if run["status"] == "promoted":
            raise RefusedError(f"run {run_id} was issued in production; it is kept as its review record")
        ids = select(s.Invoice.id).where(s.Invoice.run_id == run_id)
        connection.execute(delete(s.InvoiceItem).where(s.InvoiceItem.invoice_id.in_(ids)))
        connection.execute(delete(s.InvoiceVat).where(s.InvoiceVat.invoice_id.in_(ids)))
        count = connection.execute(delete(s.Invoice).where(s.Invoice.run_id == run_id)).rowcount
        connection.execute(delete(s.RunApproval).where(s.RunApproval.run_id == run_id))
        connection.execute(delete(s.ReportDelivery).where(s.ReportDelivery.run_id == run_id))
        connection.execute(delete(s.BillingRun).where(s.BillingRun.id == run_id))
    return count


def production(engine: Engine, run_id: int, settings: Settings, now: datetime,
               created_by: str | None = None, balance_note: str | None = None) -> RunSummary:
    """Issue the invoices of the reviewed pre-production run ``run_id`` (see module docstring)."""
    with engine.begin() as connection:
        run = run_row(connection, run_id)
        if run["kind"] != "preprod":
            raise RefusedError(f"run {run_id} is a production run; promote a pre-production run")
        claimed = connection.execute(update(s.BillingRun).where(
            s.BillingRun.id == run_id, s.BillingRun.status == "done").values(status="promoting")).rowcount
        if not claimed:
            done = connection.execute(select(s.BillingRun.id).where(s.BillingRun.source_run_id == run_id)).scalar()
            return RunSummary(done or 0, "production", run["period"], 0, 0, 0,
                              message=f"run {run_id} was already issued (production run {done}): nothing issued")
        options = options_of(run)
        lock_numbering(connection, options.invoice_date.year)
        lock_invoices(connection)
        customers, frames, built = build_run(connection, options, settings)
        changed = fingerprint_changes(json.loads(run["fingerprint"]), fingerprint(frames))
        if changed:
            raise RefusedError(
                f"run {run_id} no longer matches the data it was reviewed on; changed since: "
                + "; ".join(changed) + ". Run a new pre-production billing and review it.")
        issued_before = invoiced_customers(connection, run["period"], parse_customers(options.customers))
        keep = ~built.invoices["customer_id"].isin(issued_before)
        skipped = built.invoices.loc[~keep, "account_number"].tolist()
        todo = Invoices(built.invoices[keep].reset_index(drop=True),
                        built.items[~built.items["customer_id"].isin(issued_before)],
                        built.vat[~built.vat["customer_id"].isin(issued_before)])
        if len(todo.invoices):
            check_chronology(connection, INVOICE_SERIES, options.invoice_date, f"the invoices of run {run_id}",
                             " (a new pre-production billing with --invoice-date)", plural=True)
        prod_id = connection.execute(insert(s.BillingRun).values(
            kind="production", period=run["period"], invoice_date=options.invoice_date, due_date=options.due_date,
            options=_with_note(run["options"], balance_note), fingerprint=run["fingerprint"],
            created_by=created_by or getpass.getuser(),
            created_at=now, source_run_id=run_id, status="done",
        ).returning(s.BillingRun.id)).scalar_one()
        numbers = take_numbers(connection, INVOICE_SERIES, options.invoice_date.year, len(todo.invoices))
        ids = store_invoices(connection, prod_id, todo, numbers, "issued", options, Period.parse(run["period"]),
                              now)
        keep_identity(connection, s.Invoice.run_id == prod_id)
        _mark_billed(connection, run["period"], todo, ids, options.invoice_date)
        connection.execute(update(s.BillingRun).where(s.BillingRun.id == run_id).values(status="promoted"))
    inv = todo.invoices
    message = f"{len(inv)} invoices issued" + (f", {numbers[0]} to {numbers[-1]}" if numbers else "")
    if skipped:
        message += f"; {len(skipped)} customers already invoiced for {run['period']} skipped"
    return RunSummary(prod_id, "production", run["period"], len(inv), int(inv["total_incl_cents"].sum()),
                      int(inv["net_payable_cents"].sum()), skipped, message,
                      (numbers[0], numbers[-1]) if numbers else None)


def _with_note(options: str, balance_note: str | None) -> str:
    """A run's options, with the note that explains a period balance that did not close."""
    if not balance_note:
        return options
    return json.dumps({**json.loads(options), "balance_note": balance_note.strip()})


def keep_identity(connection: Connection, where) -> None:
    """Copy the customer's billing identity (``schema.ISSUED_IDENTITY``: name, address, country, VAT
    number, SIREN, service address) onto the documents of ``where`` (a condition on
    ``invoices``) as it is now, in the issuing transaction: what their PDFs and emails print from
    then on, whatever the customer's record says later. Also fixes their ``payment_means``
    (:func:`payment_means_now`)."""
    customer = s.Customer.__table__.c
    connection.execute(update(s.Invoice).where(where).values({
        **{column: select(customer[source]).where(customer.id == s.Invoice.customer_id).scalar_subquery()
           for column, source in s.ISSUED_IDENTITY.items()},
        "payment_means": payment_means_now(s.Invoice.customer_id)}))


def payment_means_now(customer_id) -> ColumnElement[str]:
    """The payment means a document issued now to ``customer_id`` (a column or value) says:
    ``direct_debit`` when the customer pays by direct debit and has an active mandate (what the PDF
    prints: the mandate's reference and account), else ``transfer``. One SQL expression, for the
    issuing ``UPDATE``; the SEPA file debits only invoices issued ``direct_debit``."""
    debit = (select(s.Customer.id).where(s.Customer.id == customer_id, s.Customer.payment_method == "direct_debit")
             .exists())
    mandate = select(s.Mandate.id).where(s.Mandate.customer_id == customer_id, s.Mandate.status == "active").exists()
    return case((and_(debit, mandate), literal("direct_debit")), else_=literal("transfer"))


def lock_invoices(connection: Connection) -> None:
    """Serialise what issues documents: a production run and a credit note wait for each other,
    so a credit note that reopens a period is never half seen by a production of that period.
    On PostgreSQL both also wait for a rating under way, and keep new ones waiting: they change
    which ratings are billed, which a rating keeps as it read them
    (:func:`workbench.db.partitions.lock_partitions`)."""
    lock_table(connection, s.Invoice.__table__)
    lock_partitions(connection, "rated_calls")


def _mark_billed(connection: Connection, period: str, built: Invoices, ids: dict[int, int], day: date) -> None:
    if not ids:
        return
    # the calls the invoices bill: those the run read (its fingerprint was checked in this
    # transaction), the period's and the late ones of earlier periods
    rating_store.bill(connection, period, ids)
    one_offs = built.items.dropna(subset=["one_off_id"])
    if len(one_offs):
        connection.execute(
            update(s.OneOffCharge).where(s.OneOffCharge.id == bindparam("o")).values(invoice_id=bindparam("i")),
            [{"o": int(o), "i": ids[int(c)]} for o, c in zip(one_offs["one_off_id"], one_offs["customer_id"],
                                                              strict=True)])
    applied = built.invoices[built.invoices["credit_applied_cents"] > 0]
    if len(applied):
        connection.execute(insert(s.CreditEntry), [
            {"customer_id": int(r.customer_id), "entry_date": day, "amount_cents": -int(r.credit_applied_cents),
             "description": "applied to invoice", "invoice_id": ids[int(r.customer_id)]}
            for r in applied.itertuples(index=False)])
    # an invoice that gives back more than it bills (unused subscription days) is account
    # credit for the next ones (a credit note of it takes it back: its credit is the negative total)
    negative = built.invoices[built.invoices["total_incl_cents"] < 0]
    if len(negative):
        connection.execute(insert(s.CreditEntry), [
            {"customer_id": int(r.customer_id), "entry_date": day, "amount_cents": -int(r.total_incl_cents),
             "description": "negative invoice total (days given back)", "invoice_id": ids[int(r.customer_id)]}
            for r in negative.itertuples(index=False)])

