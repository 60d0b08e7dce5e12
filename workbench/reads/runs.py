"""Billing runs as stored: their options, list, invoices, control report and comparison.

The control report and the comparison are built by the pure :mod:`workbench.invoicing` from the
frames read here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, func, select

from workbench.config import Settings
from workbench.db import calls as call_store
from workbench.db import schema as s
from workbench.db.frames import read_frame
from workbench.errors import InputError
from workbench.invoicing import Invoices, compare_invoices
from workbench.invoicing.build import item_totals
from workbench.invoicing.report import control_report
from workbench.money import integer_series
from workbench.period import Period, local_date
from workbench.reads.balance import PeriodBalance, balance_anomalies, balance_of
from workbench.reads.calls import pending_rejects, unrated_calls
from workbench.reads.selection import invoiced_customers, selected_customers
from workbench.sepa import mandate_problems


@dataclass(frozen=True)
class RunOptions:
    """The options of a run, as stored with it."""

    period: str
    invoice_date: date
    due_date: date
    customers: str = "all"  # "all", "group:NAME" or "accounts:C1,C2"
    advance: bool = False
    pdfs: bool = False

    def to_json(self) -> str:
        return json.dumps({"customers": self.customers, "advance": self.advance, "pdfs": self.pdfs})


def run_row(connection: Connection, run_id: int) -> dict:
    row = connection.execute(select(s.BillingRun.__table__).where(s.BillingRun.id == run_id)).mappings().first()
    if row is None:
        raise InputError(f"there is no billing run {run_id}", code="unknown_run")
    return dict(row)


def options_of(run: dict) -> RunOptions:
    extra = json.loads(run["options"])
    return RunOptions(run["period"], run["invoice_date"], run["due_date"], extra["customers"], extra["advance"],
                      extra["pdfs"])


def list_runs(engine: Engine, period: str | None = None) -> pd.DataFrame:
    """The billing runs (newest first) with their invoice count and totals."""
    stmt = select(
        s.BillingRun.id, s.BillingRun.kind, s.BillingRun.period, s.BillingRun.status, s.BillingRun.invoice_date,
        s.BillingRun.due_date, s.BillingRun.options, s.BillingRun.created_by, s.BillingRun.created_at,
        s.BillingRun.source_run_id, func.count(s.Invoice.id).label("invoices"),
        func.coalesce(func.sum(s.Invoice.total_incl_cents), 0).label("total_incl_cents"),
    ).outerjoin(s.Invoice, s.Invoice.run_id == s.BillingRun.id).group_by(s.BillingRun.id).order_by(
        s.BillingRun.id.desc())
    if period:
        stmt = stmt.where(s.BillingRun.period == str(Period.parse(period)))
    with engine.connect() as connection:
        return read_frame(connection, stmt)


def run_invoices(connection: Connection, run_id: int) -> Invoices:
    """A stored run's invoices (with ``number``), items and VAT, keyed by customer id."""
    invoices = read_frame(connection, select(
        s.Invoice.id.label("invoice_id"), s.Invoice.number, s.Invoice.customer_id, s.Customer.account_number,
        s.Customer.name, s.Invoice.total_excl_cents, s.Invoice.total_vat_cents, s.Invoice.total_incl_cents,
        s.Invoice.credit_applied_cents, s.Invoice.net_payable_cents, s.Invoice.previous_amount_cents,
        s.Invoice.vat_category,
    ).join(s.Customer, s.Customer.id == s.Invoice.customer_id).where(s.Invoice.run_id == run_id)
        .order_by(s.Invoice.number))
    items = read_frame(connection, select(
        s.Invoice.customer_id, s.InvoiceItem.position, s.InvoiceItem.type, s.InvoiceItem.description,
        s.InvoiceItem.product_code, s.InvoiceItem.zone_code, s.InvoiceItem.quantity,
        s.InvoiceItem.unit_price_cents, s.InvoiceItem.amount_cents, s.InvoiceItem.vat_rate,
        s.InvoiceItem.period_from, s.InvoiceItem.period_to, s.InvoiceItem.calls, s.InvoiceItem.seconds,
        s.InvoiceItem.one_off_id,
    ).join(s.Invoice, s.Invoice.id == s.InvoiceItem.invoice_id).where(s.Invoice.run_id == run_id)
        .order_by(s.Invoice.customer_id, s.InvoiceItem.position))
    vat = read_frame(connection, select(
        s.Invoice.customer_id, s.InvoiceVat.vat_rate, s.InvoiceVat.base_cents, s.InvoiceVat.vat_cents,
        s.InvoiceVat.vat_category,
    ).join(s.Invoice, s.Invoice.id == s.InvoiceVat.invoice_id).where(s.Invoice.run_id == run_id))
    totals = item_totals(items)
    for column in ("one_off_cents", "recurring_cents", "prorated_cents", "consumption_cents", "calls", "seconds"):
        invoices[column] = (integer_series(totals[column]).reindex(invoices["customer_id"].to_numpy())
                            .fillna(0).to_numpy(np.int64))
    invoices["previous_amount_cents"] = integer_series(invoices["previous_amount_cents"])
    return Invoices(invoices, items, vat)


def period_balance(engine: Engine, run_id: int, settings: Settings | None = None) -> PeriodBalance:
    """The period balance of run ``run_id`` (:mod:`workbench.reads.balance`);
    :class:`~workbench.errors.InputError` for an unknown run."""
    with engine.connect() as connection:
        run = run_row(connection, run_id)
        if run["kind"] == "production":  # a production run is balanced as the run it issued
            run = run_row(connection, run["source_run_id"])
        return balance_of(connection, run, options_of(run).customers, settings or Settings())


def mandate_issues(connection: Connection, customers: pd.DataFrame, today: date) -> pd.Series:
    """What is wrong with the mandate each customer of ``customers`` paying by direct debit would be
    debited under (the latest active one, as the SEPA file takes it), by the checks of the SEPA
    file (:func:`~workbench.sepa.mandate_problems`, signature date against ``today``, and the
    mandate's 36-month expiry from its latest collection in ``sepa_debits``): the reasons
    joined by ``; ``, ``""`` when nothing is (or no mandate: ``no_mandate_for_direct_debit``).
    Index as ``customers``."""
    issues = pd.Series("", index=customers.index, dtype=object)
    debit = customers.loc[customers["payment_method"] == "direct_debit", "customer_id"]
    if debit.empty:
        return issues
    mandates = read_frame(connection, select(
        s.Mandate.customer_id, s.Mandate.reference, s.Mandate.signature_date, s.Mandate.iban, s.Mandate.bic,
        s.Mandate.original_reference, s.Mandate.last_collection_date,
    ).where(s.Mandate.status == "active", s.Mandate.customer_id.in_([int(c) for c in debit]))
        .order_by(s.Mandate.customer_id, s.Mandate.signature_date, s.Mandate.id))
    latest = mandates.drop_duplicates("customer_id", keep="last").set_index("customer_id")
    # the latest collection of each mandate (or of the reference it replaces): its expiry
    references = sorted({r for r in latest["reference"]} | {r for r in latest["original_reference"]
                                                             if isinstance(r, str) and r})
    collected = dict(connection.execute(
        select(s.SepaDebit.mandate_reference, func.max(s.SepaDebit.collection_date))
        .where(s.SepaDebit.mandate_reference.in_(references)).group_by(s.SepaDebit.mandate_reference)).all()
    ) if references else {}
    for index, customer_id in debit.items():
        if customer_id not in latest.index:
            continue
        m = latest.loc[customer_id]
        signed = m["signature_date"]
        signed = None if pd.isna(signed) else pd.Timestamp(signed).date()
        uses = [collected.get(r) for r in (m["reference"], m["original_reference"]) if isinstance(r, str)]
        uses = [pd.Timestamp(u).date() for u in [*uses, m["last_collection_date"]] if u is not None and not pd.isna(u)]
        found, _, _ = mandate_problems(m["reference"], signed, m["iban"], m["bic"], today, expiry=True,
                                       last_collection=max(uses) if uses else None)
        issues[index] = "; ".join(reason for _, reason in found)
    return issues


def run_report(engine: Engine, run_id: int, settings: Settings | None = None,
               today: date | None = None) -> dict[str, pd.DataFrame]:
    """The control report of a stored run, as DataFrames (see :func:`~workbench.invoicing.control_report`),
    with its ``Period balance`` sheet (:func:`period_balance`); calls never rated, a balance
    that does not close and a direct-debit mandate that the SEPA file would refuse
    (:func:`mandate_issues`, on ``today``: default the operator's date now) are anomalies, and so
    is a customer already invoiced for the period (``already_invoiced``), except by the production
    run that issued this very run."""
    settings = settings or Settings()
    today = today or local_date(datetime.now(UTC), settings.timezone)
    with engine.connect() as connection:
        run = run_row(connection, run_id)
        options = options_of(run)
        stored = run_invoices(connection, run_id)
        customers = selected_customers(connection, options.customers)
        period = Period.parse(run["period"])
        issued = invoiced_customers(connection, str(period))
        if run["kind"] == "preprod":  # a promoted run's own invoices are not an anomaly of it
            issued -= set(connection.execute(select(s.Invoice.customer_id).join(
                s.BillingRun, s.BillingRun.id == s.Invoice.run_id)
                .where(s.BillingRun.source_run_id == run_id)).scalars())
            customers["already_invoiced"] = customers["customer_id"].isin(issued)
        customers["mandate_problem"] = mandate_issues(connection, customers, today)
        unrated = read_frame(connection, select(
            s.RatingError.reason, func.count().label("calls")).where(s.RatingError.period == str(period))
            .group_by(s.RatingError.reason).order_by(s.RatingError.reason))
        never_rated = unrated_calls(connection, period, settings.timezone)
        balance_run = run if run["kind"] == "preprod" else run_row(connection, run["source_run_id"])
        balance = balance_of(connection, balance_run, options_of(balance_run).customers, settings)
        lo, hi = period.utc_bounds(settings.timezone)
        files = call_store.files_with_calls(connection, lo, hi)
        rejected = read_frame(connection, select(
            s.CdrFile.name.label("file"), s.CdrReject.reason, func.count().label("records"),
        ).join(s.CdrFile, s.CdrFile.id == s.CdrReject.file_id).where(s.CdrReject.file_id.in_(files))
            .where(s.CdrReject.status != "accepted")  # a reject cured into a call is no longer one
            .group_by(s.CdrFile.name, s.CdrReject.reason).order_by(s.CdrFile.name, s.CdrReject.reason))
    pending = pending_rejects(engine, (settings or Settings()).timezone, str(period))
    if len(pending):
        rejected = pd.concat([rejected.assign(pending=False), pd.DataFrame(
            {"file": "CDR records", "reason": pending["reason"], "records": pending["rejects"], "pending": True})],
            ignore_index=True)
    return control_report(stored.invoices, stored.items, customers, unrated, rejected, period=str(period),
                          never_rated=never_rated, balance=balance.lines, unbalanced=balance_anomalies(balance),
                          vat=stored.vat)


def compare_runs(engine: Engine, run_a: int, run_b: int) -> pd.DataFrame:
    """Two runs compared account by account (see :func:`~workbench.invoicing.compare_invoices`)."""
    with engine.connect() as connection:
        run_row(connection, run_a), run_row(connection, run_b)
        a, b = run_invoices(connection, run_a), run_invoices(connection, run_b)
    return compare_invoices(a.invoices, a.items, b.invoices, b.items)

