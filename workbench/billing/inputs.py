"""The inputs of a billing run: read for its customers, fingerprinted, built into invoices.

A run's **inputs** are the rows its invoices are built from (customers, mandates, products,
subscriptions, one-off charges, rated calls, credit, previous invoices, rate plans, the
subscriptions' service periods already billed). Their
**fingerprint** (a hash and a row count per part) is stored with a pre-production run, and
production refuses a run whose inputs changed since it was reviewed, naming the parts.
"""

from __future__ import annotations

import hashlib
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation

import pandas as pd
from sqlalchemy import Connection, func, select

from workbench.config import Settings
from workbench.db import calls as call_store
from workbench.db import ratings as rating_store
from workbench.db import schema as s
from workbench.db.frames import read_frame
from workbench.invoicing import BillingInputs, BillingOptions, build_invoices
from workbench.period import Period
from workbench.reads.runs import RunOptions
from workbench.reads.selection import of_selection, parse_customers, reopened, selected_customers


def default_dates(period: Period, settings: Settings) -> tuple[date, date]:
    """Invoice date: the first day after the period; due date: ``payment_days`` later."""
    invoice_date = period.end
    return invoice_date, invoice_date + timedelta(days=int(settings.payment_days))


#: the settings that change what a run bills: the VAT rate of calls, the operator's time zone
#: (which period and time band a call falls in), and the VAT-on-debits option its invoices mention
AMOUNT_SETTINGS = ("consumption_vat_rate", "timezone", "vat_on_debits")


def setting_text(value) -> str:
    """A setting as fingerprinted: a number in its shortest plain form (``"20.0"``, ``"20.00"``
    and ``"20"`` are the same rate: ``"20"``; ``"5.50"`` is ``"5.5"``), any other text as it is.
    A rate written differently bills the same amounts, so it is no change."""
    text = str(value).strip()
    try:
        number = Decimal(text)
    except InvalidOperation:
        return str(value)
    if not number.is_finite():
        return str(value)
    return format(number.normalize(), "f")


def input_frames(connection: Connection, period: Period, customers: pd.DataFrame,
                 selection: str, settings: Settings | None = None) -> dict[str, pd.DataFrame]:
    """The raw input rows of a run (also what its fingerprint is made of).

    ``rated_calls`` holds the selected customers' unbilled ratings of ``period`` **and of the
    periods before it** (calls that arrived after their period was invoiced, or whose period was
    never invoiced for the customer): a run bills them once, as late calls. ``calls`` is every
    call stored for ``period`` (rated or not: a call loaded after the review changes it)."""
    read = read_frame
    settings = settings or Settings()
    frames = {"customers": customers.drop(columns=["has_mandate"])}
    frames["settings"] = pd.DataFrame({"setting": list(AMOUNT_SETTINGS),
                                       "value": [setting_text(getattr(settings, n)) for n in AMOUNT_SETTINGS]})
    frames["mandates"] = read(connection, select(
        s.Mandate.customer_id, s.Mandate.reference, s.Mandate.status, s.Mandate.iban, s.Mandate.bic)
        .where(of_selection(s.Mandate.customer_id, selection)).order_by(s.Mandate.id))
    frames["products"] = read(connection, select(
        s.Product.id.label("product_id"), s.Product.code, s.Product.name, s.Product.kind, s.Product.category,
        s.Product.price_cents, s.Product.vat_rate).order_by(s.Product.id))
    frames["subscriptions"] = read(connection, select(
        s.Subscription.id, s.Subscription.customer_id, s.Subscription.product_id, s.Subscription.quantity,
        s.Subscription.start_date, s.Subscription.end_date, s.Subscription.price_override_cents,
    ).where(of_selection(s.Subscription.customer_id, selection)).order_by(s.Subscription.id))
    frames["one_offs"] = read(connection, select(
        s.OneOffCharge.id.label("one_off_id"), s.OneOffCharge.customer_id, s.OneOffCharge.product_id,
        s.OneOffCharge.charge_date, s.OneOffCharge.quantity, s.OneOffCharge.price_override_cents,
        s.OneOffCharge.description,
    ).where(of_selection(s.OneOffCharge.customer_id, selection), s.OneOffCharge.invoice_id.is_(None),
            s.OneOffCharge.charge_date < period.end).order_by(s.OneOffCharge.id))
    # the unbilled ratings (of the period, and late ones of earlier periods) are read once: kept
    # whole for the fingerprint, summed for the invoices
    rated = rating_store.unbilled(connection, upto=str(period), customers=customers["customer_id"].astype(int))[
        ["cdr_id", "customer_id", "period", "zone_code", "duration_s", "price_units", "allowance_s"]
    ].sort_values("cdr_id", ignore_index=True)
    frames["rated_calls"] = rated
    lo, hi = period.utc_bounds(settings.timezone)
    frames["calls"] = call_store.read(connection, lo, hi, ["id", "duration_s"]).sort_values("id", ignore_index=True)
    calls = rated.groupby(["customer_id", "zone_code", "period"], as_index=False, sort=True).agg(
        calls=("cdr_id", "size"), seconds=("duration_s", "sum"), amount_units=("price_units", "sum"))
    zones = read(connection, select(s.Zone.plan_id, s.Zone.code.label("zone_code"), s.Zone.name.label("zone_name")))
    plan_of = customers.set_index("customer_id")["rate_plan_id"]
    calls = calls.assign(plan_id=calls["customer_id"].map(plan_of)).merge(
        zones, on=["plan_id", "zone_code"], how="left").drop(columns=["plan_id"])
    frames["consumption"] = calls.reset_index(drop=True)
    frames["credits"] = read(connection, select(
        s.CreditEntry.customer_id, func.sum(s.CreditEntry.amount_cents).label("available_cents"),
    ).where(of_selection(s.CreditEntry.customer_id, selection)).group_by(s.CreditEntry.customer_id)
        .order_by(s.CreditEntry.customer_id))
    # the previous invoice: the latest issued one of an earlier period (a re-issued invoice is
    # later than the invoices of the periods after it), leaving out those a credit note reopened
    earlier = read(connection, select(
        s.Invoice.customer_id, s.Invoice.id.label("invoice_id"), s.Invoice.period,
        s.Invoice.total_incl_cents.label("previous_amount_cents"),
    ).where(s.Invoice.status == "issued", s.Invoice.kind == "invoice", s.Invoice.period < str(period),
            ~reopened(), of_selection(s.Invoice.customer_id, selection)))
    frames["previous"] = (earlier.sort_values(["customer_id", "period", "invoice_id"])
                          .drop_duplicates("customer_id", keep="last")
                          [["customer_id", "invoice_id", "previous_amount_cents"]].reset_index(drop=True))
    frames["billed_service_periods"] = billed_service_periods(connection, period, selection)
    frames["service_history"] = service_history(connection, selection, period)
    plan_ids = sorted(set(customers["rate_plan_id"].astype(int)))
    frames["rate_plans"] = pd.concat([
        read(connection, select(s.Destination.plan_id, s.Destination.prefix, s.Destination.zone_code)
             .where(s.Destination.plan_id.in_(plan_ids)).order_by(s.Destination.plan_id, s.Destination.prefix))
        .astype(str).agg("|".join, axis=1),
        read(connection, select(s.Rate.id, s.Rate.plan_id, s.Rate.zone_code, s.Rate.band, s.Rate.connect_fee_units,
                                s.Rate.charge_unanswered, s.RateInterval.from_second,
                                s.RateInterval.price_per_minute_micros, s.RateInterval.increment_s)
             .join(s.RateInterval, s.RateInterval.rate_id == s.Rate.id)
             .where(s.Rate.plan_id.in_(plan_ids)).order_by(s.Rate.id, s.RateInterval.from_second))
        .astype(str).agg("|".join, axis=1),
        read(connection, select(s.TimeBand.plan_id, s.TimeBand.band, s.TimeBand.weekdays, s.TimeBand.start_minute,
                                s.TimeBand.end_minute).where(s.TimeBand.plan_id.in_(plan_ids))
             .order_by(s.TimeBand.id)).astype(str).agg("|".join, axis=1),
    ], ignore_index=True).to_frame("row")
    return frames


FINGERPRINT_PARTS = ["settings", "customers", "mandates", "products", "subscriptions", "one_offs", "calls",
                     "rated_calls", "credits", "previous", "rate_plans", "billed_service_periods",
                     "service_history"]


def _digest(frame: pd.DataFrame) -> str:
    if frame.empty:
        return hashlib.sha256(b"").hexdigest()[:16]
    text = frame.astype(str)
    hashes = pd.util.hash_pandas_object(text, index=False).to_numpy()
    return hashlib.sha256(hashes.tobytes() + "|".join(frame.columns).encode()).hexdigest()[:16]


def _short_hash(*values) -> str:
    return hashlib.sha256("|".join("" if v is None else str(v) for v in values).encode()).hexdigest()[:12]


def fingerprint(frames: dict[str, pd.DataFrame]) -> dict[str, dict]:
    """A hash and a row count of each input part of a run; with, so that a refusal can name them,
    the values of the settings that change amounts and a hash of each mandate's bank account
    (never the IBAN itself)."""
    out = {part: {"hash": _digest(frames[part]), "rows": len(frames[part])} for part in FINGERPRINT_PARTS}
    out["settings"]["values"] = dict(zip(frames["settings"]["setting"], frames["settings"]["value"], strict=True))
    mandates = frames["mandates"]
    out["mandates"]["accounts"] = {str(r): _short_hash(i, b) for r, i, b in zip(
        mandates["reference"], mandates["iban"], mandates["bic"], strict=True)}
    return out


def billed_service_periods(connection: Connection, period: Period, selection: str) -> pd.DataFrame:
    """The subscription lines already billed, as :class:`~workbench.invoicing.BillingInputs`
    ``billed`` wants them (plus the invoice id), in the order they were issued: the lines of
    issued invoices (drafts never count) that no reopening credit note cancels. A credit note
    that does not reopen its period writes the invoice off: its days stay billed, as its calls
    do. The invoices of ``period`` itself are left out: a customer invoiced for the period is
    skipped by production, and one that is not has none."""
    return read_frame(connection, select(
        s.InvoiceItem.invoice_id, s.InvoiceItem.subscription_id, s.InvoiceItem.period_from,
        s.InvoiceItem.period_to, s.InvoiceItem.quantity, s.InvoiceItem.unit_price_cents,
        s.InvoiceItem.amount_cents,
    ).join(s.Invoice, s.Invoice.id == s.InvoiceItem.invoice_id).where(
        s.InvoiceItem.subscription_id.is_not(None), s.Invoice.status == "issued", s.Invoice.kind == "invoice",
        s.Invoice.period != str(period), ~reopened(), of_selection(s.Invoice.customer_id, selection),
    ).order_by(s.Invoice.id, s.InvoiceItem.position))


def service_history(connection: Connection, selection: str, period: Period | None = None) -> pd.DataFrame:
    """Where the workbench's subscription history starts, as :class:`~workbench.invoicing.BillingInputs`
    ``history`` and ``history_from`` want it: customer_id, first_day (``datetime.date``), the first
    day of subscription service an issued invoice billed to each customer of ``selection``
    (invoices cancelled by a reopening credit note included: their days were in the workbench's
    history), plus one row of customer_id 0: the first such day of any customer on an invoice of
    a period before ``period`` (absent when there is none: so that the production of one group of
    customers does not change what the run of another group of the same period was reviewed on)."""
    issued = (s.InvoiceItem.subscription_id.is_not(None), s.Invoice.status == "issued", s.Invoice.kind == "invoice")
    rows = read_frame(connection, select(s.Invoice.customer_id, func.min(s.InvoiceItem.period_from).label("first_day"))
                      .join(s.Invoice, s.Invoice.id == s.InvoiceItem.invoice_id)
                      .where(*issued, of_selection(s.Invoice.customer_id, selection))
                      .group_by(s.Invoice.customer_id).order_by(s.Invoice.customer_id))
    first = connection.execute(select(func.min(s.InvoiceItem.period_from))
                               .join(s.Invoice, s.Invoice.id == s.InvoiceItem.invoice_id).where(
                                   *issued, *([s.Invoice.period < str(period)] if period is not None else [])
                               )).scalar()
    if first is not None:
        rows = pd.concat([pd.DataFrame({"customer_id": [0], "first_day": [first]}), rows], ignore_index=True)
    rows["first_day"] = [pd.Timestamp(d).date() for d in rows["first_day"]]
    return rows[["customer_id", "first_day"]]


def billing_inputs(frames: dict[str, pd.DataFrame], customers: pd.DataFrame) -> BillingInputs:
    return BillingInputs(
        customers=customers, products=frames["products"],
        subscriptions=frames["subscriptions"].rename(columns={"id": "subscription_id"}),
        billed=frames["billed_service_periods"],
        history=(history := frames["service_history"])[history["customer_id"] != 0].reset_index(drop=True),
        history_from=next(iter(history.loc[history["customer_id"] == 0, "first_day"]), None),
        one_offs=frames["one_offs"], consumption=frames["consumption"], credits=frames["credits"],
        previous=frames["previous"][["customer_id", "previous_amount_cents"]],
    )


def build_run(connection: Connection, options: RunOptions, settings: Settings):
    period = Period.parse(options.period)
    customers = selected_customers(connection, options.customers)
    frames = input_frames(connection, period, customers, parse_customers(options.customers), settings)
    built = build_invoices(billing_inputs(frames, customers), BillingOptions(
        period, options.invoice_date, options.due_date, options.advance,
        Decimal(settings.consumption_vat_rate), settings.vat_on_debits_opted))
    return customers, frames, built


def fingerprint_changes(reviewed: dict, now: dict) -> list[str]:
    """What changed between the fingerprint a run was reviewed on and the inputs now, for people:
    each part with its row counts; a setting by name with both values; a mandate whose bank
    account (IBAN or BIC) changed by its reference."""
    out = []
    for part in FINGERPRINT_PARTS:
        before, after = reviewed.get(part, {}), now[part]
        if before.get("hash") == after["hash"]:
            continue
        if part == "settings" and "values" in before:
            out.extend(f"setting {name} ({before['values'].get(name, '?')!s} reviewed, {value} now)"
                       for name, value in after["values"].items() if before["values"].get(name) != value)
            continue
        text = f"{part.replace('_', ' ')} ({before.get('rows', '?')} rows reviewed, {after['rows']} now)"
        if part == "mandates" and "accounts" in before:
            moved = sorted(r for r, h in after["accounts"].items() if r in before["accounts"]
                           and before["accounts"][r] != h)
            if moved:
                text += f"; the bank account (IBAN/BIC) of mandate {', '.join(moved)} changed"
        out.append(text)
    return out

