"""Billing runs in the database: pre-production (drafts), production (issued invoices), credit
notes, comparison of runs and the customer profile.

A **pre-production run** reads the period's inputs for its customers, builds the invoices
(:mod:`workbench.invoicing`), and stores them as drafts numbered ``PRE-<run>-0001``... with a
fingerprint of the inputs. It writes nothing else: no legal number, no call or charge marked
billed, no credit used.

A **production run** promotes a reviewed pre-production run: in one transaction it takes the
numbering lock, checks that the inputs still have the fingerprint that was reviewed (else it
refuses, saying which inputs changed), skips the customers already invoiced for the period,
and issues the drafts with legal numbers ``F<year>-000001``..., gap-free and sequential per year,
marking the calls, one-off charges and credit they bill. Issued documents are never changed;
a correction is a credit note (``A<year>-000001``), whose amount becomes account credit.

A credit note may **reopen the period** of the invoice it cancels (``reinvoice``): the calls and
one-off charges that invoice billed become unbilled again, and the customer counts as not yet
invoiced for that period, so the next pre-production and production runs of the period invoice
it again, with whatever was corrected meanwhile (a re-rating after a tariff fix, say). The credit
note's amount is account credit as always, which the new invoice uses first.
"""

from __future__ import annotations

import getpass
import hashlib
import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, and_, bindparam, delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from workbench import repository
from workbench.config import Settings
from workbench.db import schema as s
from workbench.db.bulk import insert_frame
from workbench.db.locks import lock_table
from workbench.invoicing import BillingInputs, BillingOptions, Invoices, build_invoices, compare_invoices
from workbench.invoicing.build import item_totals
from workbench.invoicing.report import control_report
from workbench.period import Period

INVOICE_SERIES, CREDIT_NOTE_SERIES = "F", "A"


class BillingError(ValueError):
    """A billing request that cannot be carried out (says why); nothing is changed."""


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


def parse_customers(text: str) -> str:
    """Check a customer selection: ``all``, ``group:NAME`` or ``accounts:C1,C2,...``."""
    text = (text or "all").strip()
    if text == "all" or (text.startswith("group:") and text[6:].strip()) or (
            text.startswith("accounts:") and any(a.strip() for a in text[9:].split(","))):
        return text
    raise BillingError(f"customer selection {text!r}: expected all, group:NAME or accounts:C1,C2")


def default_dates(period: Period, settings: Settings) -> tuple[date, date]:
    """Invoice date: the first day after the period; due date: ``payment_days`` later."""
    invoice_date = period.end
    return invoice_date, invoice_date + timedelta(days=int(settings.payment_days))


# ---------------------------------------------------------------------------- inputs

def selected_customers(connection: Connection, selection: str) -> pd.DataFrame:
    """The customers of a selection, with whether they have an active mandate."""
    selection = parse_customers(selection)
    active = select(s.Mandate.customer_id).where(s.Mandate.status == "active")
    stmt = select(
        s.Customer.id.label("customer_id"), s.Customer.account_number, s.Customer.name,
        s.Customer.address_line1, s.Customer.address_line2, s.Customer.postcode, s.Customer.city,
        s.Customer.country, s.Customer.vat_number, s.Customer.language, s.Customer.payment_method,
        s.Customer.billing_group, s.Customer.rate_plan_id,
        s.Customer.id.in_(active).label("has_mandate"),
    ).order_by(s.Customer.account_number)
    if selection.startswith("group:"):
        stmt = stmt.where(s.Customer.billing_group == selection[6:].strip())
    elif selection.startswith("accounts:"):
        wanted = [a.strip() for a in selection[9:].split(",") if a.strip()]
        stmt = stmt.where(s.Customer.account_number.in_(wanted))
    customers = repository.read_frame(connection, stmt)
    if selection.startswith("accounts:"):
        unknown = sorted(set(wanted) - set(customers["account_number"]))
        if unknown:
            raise BillingError(f"unknown account numbers: {', '.join(unknown)}")
    if customers.empty:
        raise BillingError(f"no customer matches {selection!r}")
    customers["has_mandate"] = customers["has_mandate"].astype(bool)
    return customers


def _of_selection(column, selection: str):
    """A condition on a customer id column for a selection (a subquery: no long lists)."""
    if selection == "all":
        return column.is_not(None)
    if selection.startswith("group:"):
        return column.in_(select(s.Customer.id).where(s.Customer.billing_group == selection[6:].strip()))
    wanted = [a.strip() for a in selection[9:].split(",") if a.strip()]
    return column.in_(select(s.Customer.id).where(s.Customer.account_number.in_(wanted)))


def _frames(connection: Connection, period: Period, customers: pd.DataFrame,
            selection: str) -> dict[str, pd.DataFrame]:
    """The raw input rows of a run (also what its fingerprint is made of)."""
    read = repository.read_frame
    frames = {"customers": customers.drop(columns=["has_mandate"])}
    frames["mandates"] = read(connection, select(s.Mandate.customer_id, s.Mandate.reference, s.Mandate.status)
                              .where(_of_selection(s.Mandate.customer_id, selection)).order_by(s.Mandate.id))
    frames["products"] = read(connection, select(
        s.Product.id.label("product_id"), s.Product.code, s.Product.name, s.Product.kind, s.Product.category,
        s.Product.price_cents, s.Product.vat_rate).order_by(s.Product.id))
    frames["subscriptions"] = read(connection, select(
        s.Subscription.id, s.Subscription.customer_id, s.Subscription.product_id, s.Subscription.quantity,
        s.Subscription.start_date, s.Subscription.end_date, s.Subscription.price_override_cents,
    ).where(_of_selection(s.Subscription.customer_id, selection)).order_by(s.Subscription.id))
    frames["one_offs"] = read(connection, select(
        s.OneOffCharge.id.label("one_off_id"), s.OneOffCharge.customer_id, s.OneOffCharge.product_id,
        s.OneOffCharge.charge_date, s.OneOffCharge.quantity, s.OneOffCharge.price_override_cents,
        s.OneOffCharge.description,
    ).where(_of_selection(s.OneOffCharge.customer_id, selection), s.OneOffCharge.invoice_id.is_(None),
            s.OneOffCharge.charge_date < period.end).order_by(s.OneOffCharge.id))
    # the period's unbilled ratings are read once: kept whole for the fingerprint, summed for the invoices
    rated = read(connection, select(
        s.RatedCall.cdr_id, s.RatedCall.customer_id, s.RatedCall.zone_code, s.RatedCall.duration_s,
        s.RatedCall.price_units, s.RatedCall.allowance_s,
    ).where(s.RatedCall.period == str(period), s.RatedCall.invoice_id.is_(None),
            _of_selection(s.RatedCall.customer_id, selection)).order_by(s.RatedCall.cdr_id))
    frames["rated_calls"] = rated
    calls = rated.groupby(["customer_id", "zone_code"], as_index=False, sort=True).agg(
        calls=("cdr_id", "size"), seconds=("duration_s", "sum"), amount_units=("price_units", "sum"))
    zones = read(connection, select(s.Zone.plan_id, s.Zone.code.label("zone_code"), s.Zone.name.label("zone_name")))
    plan_of = customers.set_index("customer_id")["rate_plan_id"]
    calls = calls.assign(plan_id=calls["customer_id"].map(plan_of)).merge(
        zones, on=["plan_id", "zone_code"], how="left").drop(columns=["plan_id"])
    frames["consumption"] = calls.reset_index(drop=True)
    frames["credits"] = read(connection, select(
        s.CreditEntry.customer_id, func.sum(s.CreditEntry.amount_cents).label("available_cents"),
    ).where(_of_selection(s.CreditEntry.customer_id, selection)).group_by(s.CreditEntry.customer_id)
        .order_by(s.CreditEntry.customer_id))
    # the previous invoice: the latest issued one of an earlier period (a re-issued invoice is
    # later than the invoices of the periods after it), leaving out those a credit note reopened
    earlier = read(connection, select(
        s.Invoice.customer_id, s.Invoice.id.label("invoice_id"), s.Invoice.period,
        s.Invoice.total_incl_cents.label("previous_amount_cents"),
    ).where(s.Invoice.status == "issued", s.Invoice.kind == "invoice", s.Invoice.period < str(period),
            ~_reopened(), _of_selection(s.Invoice.customer_id, selection)))
    frames["previous"] = (earlier.sort_values(["customer_id", "period", "invoice_id"])
                          .drop_duplicates("customer_id", keep="last")
                          [["customer_id", "invoice_id", "previous_amount_cents"]].reset_index(drop=True))
    plan_ids = sorted(set(customers["rate_plan_id"].astype(int)))
    frames["rate_plans"] = pd.concat([
        read(connection, select(s.Destination.plan_id, s.Destination.prefix, s.Destination.zone_code)
             .where(s.Destination.plan_id.in_(plan_ids)).order_by(s.Destination.plan_id, s.Destination.prefix))
        .astype(str).agg("|".join, axis=1),
        read(connection, select(s.Rate.id, s.Rate.plan_id, s.Rate.zone_code, s.Rate.band, s.Rate.connect_fee_units,
                                s.Rate.charge_unanswered, s.RateInterval.from_second,
                                s.RateInterval.price_per_minute_units, s.RateInterval.increment_s)
             .join(s.RateInterval, s.RateInterval.rate_id == s.Rate.id)
             .where(s.Rate.plan_id.in_(plan_ids)).order_by(s.Rate.id, s.RateInterval.from_second))
        .astype(str).agg("|".join, axis=1),
        read(connection, select(s.TimeBand.plan_id, s.TimeBand.band, s.TimeBand.weekdays, s.TimeBand.start_minute,
                                s.TimeBand.end_minute).where(s.TimeBand.plan_id.in_(plan_ids))
             .order_by(s.TimeBand.id)).astype(str).agg("|".join, axis=1),
    ], ignore_index=True).to_frame("row")
    return frames


FINGERPRINT_PARTS = ["customers", "mandates", "products", "subscriptions", "one_offs", "rated_calls", "credits",
                     "previous", "rate_plans"]


def _digest(frame: pd.DataFrame) -> str:
    if frame.empty:
        return hashlib.sha256(b"").hexdigest()[:16]
    text = frame.astype(str)
    hashes = pd.util.hash_pandas_object(text, index=False).to_numpy()
    return hashlib.sha256(hashes.tobytes() + "|".join(frame.columns).encode()).hexdigest()[:16]


def fingerprint(frames: dict[str, pd.DataFrame]) -> dict[str, dict]:
    """A hash and a row count of each input part of a run."""
    return {part: {"hash": _digest(frames[part]), "rows": len(frames[part])} for part in FINGERPRINT_PARTS}


def _inputs(frames: dict[str, pd.DataFrame], customers: pd.DataFrame) -> BillingInputs:
    return BillingInputs(
        customers=customers, products=frames["products"], subscriptions=frames["subscriptions"],
        one_offs=frames["one_offs"], consumption=frames["consumption"], credits=frames["credits"],
        previous=frames["previous"][["customer_id", "previous_amount_cents"]],
    )


# ---------------------------------------------------------------------------- storing invoices

def _store_invoices(connection: Connection, run_id: int, built: Invoices, numbers: list[str], status: str,
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
        "issued_at": issued_at,
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
    insert_frame(connection, "invoice_vat", vat[["invoice_id", "vat_rate", "base_cents", "vat_cents"]])
    return ids


def _run_row(connection: Connection, run_id: int) -> dict:
    row = connection.execute(select(s.BillingRun.__table__).where(s.BillingRun.id == run_id)).mappings().first()
    if row is None:
        raise BillingError(f"there is no billing run {run_id}")
    return dict(row)


def _options_of(run: dict) -> RunOptions:
    extra = json.loads(run["options"])
    return RunOptions(run["period"], run["invoice_date"], run["due_date"], extra["customers"], extra["advance"],
                      extra["pdfs"])


def _build(connection: Connection, options: RunOptions, settings: Settings):
    period = Period.parse(options.period)
    customers = selected_customers(connection, options.customers)
    frames = _frames(connection, period, customers, parse_customers(options.customers))
    built = build_invoices(_inputs(frames, customers), BillingOptions(
        period, options.invoice_date, options.due_date, options.advance,
        Decimal(settings.consumption_vat_rate)))
    return customers, frames, built


def preprod(engine: Engine, options: RunOptions, settings: Settings, now: datetime,
            created_by: str | None = None) -> RunSummary:
    """Run a pre-production billing; store its drafts. Changes nothing production depends on."""
    period = Period.parse(options.period)
    parse_customers(options.customers)
    if options.due_date < options.invoice_date:
        raise BillingError(f"due date {options.due_date} is before invoice date {options.invoice_date}")
    with engine.begin() as connection:
        customers, frames, built = _build(connection, options, settings)
        run_id = connection.execute(insert(s.BillingRun).values(
            kind="preprod", period=str(period), invoice_date=options.invoice_date, due_date=options.due_date,
            options=options.to_json(), fingerprint=json.dumps(fingerprint(frames)),
            created_by=created_by or getpass.getuser(), created_at=now, status="done",
        ).returning(s.BillingRun.id)).scalar_one()
        numbers = [f"PRE-{run_id}-{i:04d}" for i in range(1, len(built.invoices) + 1)]
        _store_invoices(connection, run_id, built, numbers, "draft", options, period, None)
    inv = built.invoices
    return RunSummary(run_id, "preprod", str(period), len(inv), int(inv["total_incl_cents"].sum()),
                      int(inv["net_payable_cents"].sum()), numbers=(numbers[0], numbers[-1]) if numbers else None)


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
        return repository.read_frame(connection, stmt)


def delete_run(engine: Engine, run_id: int) -> int:
    """Delete a pre-production run and its drafts; returns the number of drafts deleted."""
    with engine.begin() as connection:
        run = _run_row(connection, run_id)
        if run["kind"] != "preprod":
            raise BillingError(f"run {run_id} is a production run: issued invoices are never deleted")
        if run["status"] == "promoted":
            raise BillingError(f"run {run_id} was issued in production; it is kept as its review record")
        ids = select(s.Invoice.id).where(s.Invoice.run_id == run_id)
        connection.execute(delete(s.InvoiceItem).where(s.InvoiceItem.invoice_id.in_(ids)))
        connection.execute(delete(s.InvoiceVat).where(s.InvoiceVat.invoice_id.in_(ids)))
        count = connection.execute(delete(s.Invoice).where(s.Invoice.run_id == run_id)).rowcount
        connection.execute(delete(s.BillingRun).where(s.BillingRun.id == run_id))
    return count


def run_invoices(connection: Connection, run_id: int) -> Invoices:
    """A stored run's invoices (with ``number``), items and VAT, keyed by customer id."""
    invoices = repository.read_frame(connection, select(
        s.Invoice.id.label("invoice_id"), s.Invoice.number, s.Invoice.customer_id, s.Customer.account_number,
        s.Customer.name, s.Invoice.total_excl_cents, s.Invoice.total_vat_cents, s.Invoice.total_incl_cents,
        s.Invoice.credit_applied_cents, s.Invoice.net_payable_cents, s.Invoice.previous_amount_cents,
    ).join(s.Customer, s.Customer.id == s.Invoice.customer_id).where(s.Invoice.run_id == run_id)
        .order_by(s.Invoice.number))
    items = repository.read_frame(connection, select(
        s.Invoice.customer_id, s.InvoiceItem.position, s.InvoiceItem.type, s.InvoiceItem.description,
        s.InvoiceItem.product_code, s.InvoiceItem.zone_code, s.InvoiceItem.quantity,
        s.InvoiceItem.unit_price_cents, s.InvoiceItem.amount_cents, s.InvoiceItem.vat_rate,
        s.InvoiceItem.period_from, s.InvoiceItem.period_to, s.InvoiceItem.calls, s.InvoiceItem.seconds,
        s.InvoiceItem.one_off_id,
    ).join(s.Invoice, s.Invoice.id == s.InvoiceItem.invoice_id).where(s.Invoice.run_id == run_id)
        .order_by(s.Invoice.customer_id, s.InvoiceItem.position))
    vat = repository.read_frame(connection, select(
        s.Invoice.customer_id, s.InvoiceVat.vat_rate, s.InvoiceVat.base_cents, s.InvoiceVat.vat_cents,
    ).join(s.Invoice, s.Invoice.id == s.InvoiceVat.invoice_id).where(s.Invoice.run_id == run_id))
    totals = item_totals(items)
    for column in ("one_off_cents", "recurring_cents", "prorated_cents", "consumption_cents", "calls", "seconds"):
        invoices[column] = invoices["customer_id"].map(totals[column]).fillna(0).astype(np.int64)
    invoices["previous_amount_cents"] = invoices["previous_amount_cents"].astype("Int64")
    return Invoices(invoices, items, vat)


def run_report(engine: Engine, run_id: int, settings: Settings | None = None) -> dict[str, pd.DataFrame]:
    """The control report of a stored run, as DataFrames (see :func:`~workbench.invoicing.control_report`)."""
    with engine.connect() as connection:
        run = _run_row(connection, run_id)
        options = _options_of(run)
        stored = run_invoices(connection, run_id)
        customers = selected_customers(connection, options.customers)
        period = Period.parse(run["period"])
        issued = _invoiced(connection, str(period))
        if run["kind"] == "preprod":
            customers["already_invoiced"] = customers["customer_id"].isin(issued)
        unrated = repository.read_frame(connection, select(
            s.RatingError.reason, func.count().label("calls")).where(s.RatingError.period == str(period))
            .group_by(s.RatingError.reason).order_by(s.RatingError.reason))
        lo, hi = period.utc_bounds((settings or Settings()).timezone)
        files = select(s.Cdr.file_id).where(s.Cdr.start_utc >= lo, s.Cdr.start_utc < hi).distinct()
        rejected = repository.read_frame(connection, select(
            s.CdrFile.name.label("file"), s.CdrReject.reason, func.count().label("records"),
        ).join(s.CdrFile, s.CdrFile.id == s.CdrReject.file_id).where(s.CdrReject.file_id.in_(files))
            .group_by(s.CdrFile.name, s.CdrReject.reason).order_by(s.CdrFile.name, s.CdrReject.reason))
    return control_report(stored.invoices, stored.items, customers, unrated, rejected)


def compare_runs(engine: Engine, run_a: int, run_b: int) -> pd.DataFrame:
    """Two runs compared account by account (see :func:`~workbench.invoicing.compare_invoices`)."""
    with engine.connect() as connection:
        _run_row(connection, run_a), _run_row(connection, run_b)
        a, b = run_invoices(connection, run_a), run_invoices(connection, run_b)
    return compare_invoices(a.invoices, a.items, b.invoices, b.items)


# ---------------------------------------------------------------------------- production

def _take_numbers(connection: Connection, series: str, year: int, count: int) -> list[str]:
    """``count`` consecutive legal numbers of ``series`` and ``year``. The sequence row stays
    locked until the transaction ends, so concurrent runs wait and never skip or repeat."""
    dialect_insert = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
    connection.execute(dialect_insert(s.NumberSequence).values(series=series, year=year, last_number=0)
                       .on_conflict_do_nothing(index_elements=["series", "year"]))
    last = connection.execute(
        update(s.NumberSequence).where(s.NumberSequence.series == series, s.NumberSequence.year == year)
        .values(last_number=s.NumberSequence.last_number + count).returning(s.NumberSequence.last_number)
    ).scalar_one()
    return [f"{series}{year}-{n:06d}" for n in range(last - count + 1, last + 1)]


def _lock_numbering(connection: Connection, year: int) -> None:
    _take_numbers(connection, INVOICE_SERIES, year, 0)


def _changes(reviewed: dict, now: dict) -> list[str]:
    out = []
    for part in FINGERPRINT_PARTS:
        before, after = reviewed.get(part, {}), now[part]
        if before.get("hash") != after["hash"]:
            out.append(f"{part.replace('_', ' ')} ({before.get('rows', '?')} rows reviewed, {after['rows']} now)")
    return out


def production(engine: Engine, run_id: int, settings: Settings, now: datetime,
               created_by: str | None = None) -> RunSummary:
    """Issue the invoices of the reviewed pre-production run ``run_id`` (see module docstring)."""
    with engine.begin() as connection:
        run = _run_row(connection, run_id)
        if run["kind"] != "preprod":
            raise BillingError(f"run {run_id} is a production run; promote a pre-production run")
        claimed = connection.execute(update(s.BillingRun).where(
            s.BillingRun.id == run_id, s.BillingRun.status == "done").values(status="promoting")).rowcount
        if not claimed:
            done = connection.execute(select(s.BillingRun.id).where(s.BillingRun.source_run_id == run_id)).scalar()
            return RunSummary(done or 0, "production", run["period"], 0, 0, 0,
                              message=f"run {run_id} was already issued (production run {done}): nothing issued")
        options = _options_of(run)
        _lock_numbering(connection, options.invoice_date.year)
        _lock_invoices(connection)
        customers, frames, built = _build(connection, options, settings)
        changed = _changes(json.loads(run["fingerprint"]), fingerprint(frames))
        if changed:
            raise BillingError(
                f"run {run_id} no longer matches the data it was reviewed on; changed since: "
                + "; ".join(changed) + ". Run a new pre-production billing and review it.")
        issued_before = _invoiced(connection, run["period"], parse_customers(options.customers))
        keep = ~built.invoices["customer_id"].isin(issued_before)
        skipped = built.invoices.loc[~keep, "account_number"].tolist()
        todo = Invoices(built.invoices[keep].reset_index(drop=True),
                        built.items[~built.items["customer_id"].isin(issued_before)],
                        built.vat[~built.vat["customer_id"].isin(issued_before)])
        prod_id = connection.execute(insert(s.BillingRun).values(
            kind="production", period=run["period"], invoice_date=options.invoice_date, due_date=options.due_date,
            options=run["options"], fingerprint=run["fingerprint"], created_by=created_by or getpass.getuser(),
            created_at=now, source_run_id=run_id, status="done",
        ).returning(s.BillingRun.id)).scalar_one()
        numbers = _take_numbers(connection, INVOICE_SERIES, options.invoice_date.year, len(todo.invoices))
        ids = _store_invoices(connection, prod_id, todo, numbers, "issued", options, Period.parse(run["period"]),
                              now)
        _mark_billed(connection, run["period"], todo, ids, options.invoice_date)
        connection.execute(update(s.BillingRun).where(s.BillingRun.id == run_id).values(status="promoted"))
    inv = todo.invoices
    message = f"{len(inv)} invoices issued" + (f", {numbers[0]} to {numbers[-1]}" if numbers else "")
    if skipped:
        message += f"; {len(skipped)} customers already invoiced for {run['period']} skipped"
    return RunSummary(prod_id, "production", run["period"], len(inv), int(inv["total_incl_cents"].sum()),
                      int(inv["net_payable_cents"].sum()), skipped, message,
                      (numbers[0], numbers[-1]) if numbers else None)


def _reopened():
    """Whether an invoice (``s.Invoice``) is cancelled by a credit note that reopens its period."""
    note = s.Invoice.__table__.alias("note")
    return select(note.c.id).where(note.c.corrects_invoice_id == s.Invoice.id,
                                   note.c.reopens_period.is_(True)).exists()


def _lock_invoices(connection: Connection) -> None:
    """Serialise what issues documents: a production run and a credit note wait for each other,
    so a credit note that reopens a period is never half seen by a production of that period."""
    lock_table(connection, s.Invoice.__table__)


def _invoiced(connection: Connection, period: str, selection: str | None = None) -> set[int]:
    """The customers invoiced for ``period``: an issued invoice that no reopening credit note
    cancels."""
    query = select(s.Invoice.customer_id).where(
        s.Invoice.status == "issued", s.Invoice.kind == "invoice", s.Invoice.period == period, ~_reopened())
    if selection is not None:
        query = query.where(_of_selection(s.Invoice.customer_id, selection))
    return set(connection.execute(query).scalars())


def _mark_billed(connection: Connection, period: str, built: Invoices, ids: dict[int, int], day: date) -> None:
    if not ids:
        return
    connection.execute(
        update(s.RatedCall).where(and_(
            s.RatedCall.customer_id == bindparam("c"), s.RatedCall.period == period, s.RatedCall.invoice_id.is_(None)))
        .values(invoice_id=bindparam("i")), [{"c": c, "i": i} for c, i in ids.items()])
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


def issue_credit_note(engine: Engine, invoice_number: str, reason: str, now: datetime,
                      reinvoice: bool = False) -> str:
    """Cancel an issued invoice by a credit note of its full amount; the amount including VAT
    becomes account credit. With ``reinvoice``, the note reopens the invoice's period: its calls
    and one-off charges are unbilled again and the customer is invoiced again by the period's
    next runs. Returns the credit note's number."""
    with engine.begin() as connection:
        _lock_invoices(connection)  # before the checks: two notes for one invoice wait for each other
        original = connection.execute(select(s.Invoice.__table__).where(s.Invoice.number == invoice_number)
                                      ).mappings().first()
        if original is None or original["status"] != "issued" or original["kind"] != "invoice":
            raise BillingError(f"{invoice_number} is not an issued invoice")
        if connection.execute(select(s.Invoice.id).where(s.Invoice.corrects_invoice_id == original["id"])).first():
            raise BillingError(f"{invoice_number} already has a credit note")
        today = now.date()
        number = _take_numbers(connection, CREDIT_NOTE_SERIES, today.year, 1)[0]
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
        items = repository.read_frame(connection, select(s.InvoiceItem.__table__).where(
            s.InvoiceItem.invoice_id == original["id"], s.InvoiceItem.type != "credit"))
        if len(items):
            for column in ("position", "unit_price_cents", "amount_cents", "calls", "seconds", "one_off_id"):
                items[column] = pd.array(pd.to_numeric(items[column]), dtype="Int64")
            items = items.drop(columns=["id"]).assign(invoice_id=note_id, amount_cents=-items["amount_cents"],
                                                      description=reason + ": " + items["description"])
            insert_frame(connection, "invoice_items", items)
        vat = repository.read_frame(connection, select(s.InvoiceVat.__table__).where(
            s.InvoiceVat.invoice_id == original["id"]))
        if len(vat):
            vat = vat.drop(columns=["id"]).assign(invoice_id=note_id, base_cents=-vat["base_cents"],
                                                  vat_cents=-vat["vat_cents"])
            insert_frame(connection, "invoice_vat", vat)
        connection.execute(insert(s.CreditEntry).values(
            customer_id=original["customer_id"], entry_date=today, amount_cents=original["total_incl_cents"],
            description=f"credit note {number} for {invoice_number}: {reason}", invoice_id=None))
    return number


# ---------------------------------------------------------------------------- profile

def customer_profile(engine: Engine, account_number: str, settings: Settings | None = None) -> dict[str, pd.DataFrame]:
    """A customer's details, contacts, subscriptions, mandates, issued invoices and credit notes
    (with their document in the FTP space and a ``link`` to it), and account credit."""
    profile = _profile(engine, account_number)
    if settings is not None:
        from workbench.storage import Storage

        storage = Storage(settings.storage_url)
        profile["invoices"]["link"] = profile["invoices"]["document"].map(
            lambda d: storage.location(d) if isinstance(d, str) and d else None)
    return profile


def _profile(engine: Engine, account_number: str) -> dict[str, pd.DataFrame]:
    read = repository.read_frame
    with engine.connect() as connection:
        details = read(connection, select(s.Customer.__table__).where(s.Customer.account_number == account_number))
        if details.empty:
            raise BillingError(f"unknown account number {account_number!r}")
        cid = int(details["id"].iloc[0])
        return {
            "details": details,
            "contacts": read(connection, select(s.Contact.name, s.Contact.email, s.Contact.invoice_recipient)
                             .where(s.Contact.customer_id == cid).order_by(s.Contact.id)),
            "subscriptions": read(connection, select(
                s.Product.code, s.Product.name, s.Subscription.quantity, s.Subscription.start_date,
                s.Subscription.end_date, s.Subscription.price_override_cents, s.Product.price_cents,
            ).join(s.Product, s.Product.id == s.Subscription.product_id).where(s.Subscription.customer_id == cid)
                .order_by(s.Subscription.start_date, s.Product.code)),
            "mandates": read(connection, select(s.Mandate.reference, s.Mandate.signature_date, s.Mandate.iban,
                                                s.Mandate.bic, s.Mandate.status)
                             .where(s.Mandate.customer_id == cid).order_by(s.Mandate.signature_date)),
            "invoices": read(connection, select(
                s.Invoice.number, s.Invoice.kind, s.Invoice.period, s.Invoice.invoice_date, s.Invoice.due_date,
                s.Invoice.total_excl_cents, s.Invoice.total_vat_cents, s.Invoice.total_incl_cents,
                s.Invoice.credit_applied_cents, s.Invoice.net_payable_cents, s.Invoice.document,
            ).where(s.Invoice.customer_id == cid, s.Invoice.status == "issued").order_by(s.Invoice.id)),
            "credit": read(connection, select(s.CreditEntry.entry_date, s.CreditEntry.amount_cents,
                                              s.CreditEntry.description)
                           .where(s.CreditEntry.customer_id == cid).order_by(s.CreditEntry.id)),
        }
