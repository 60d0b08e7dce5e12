"""What a reviewer looks at beside a run's control report: the runs with their review status,
the anomalies counted by kind, and the run against what was billed for the previous period (by
item type, by zone, and the accounts that moved most).

Amounts are exact ``Decimal`` euros made from integer cents; a change in percent is rounded to
one decimal half away from zero (:func:`workbench.money.round_half_up`, the one rounding point
here), ``None`` when the previous amount is 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, select

from workbench.db import schema as s
from workbench.db.frames import read_frame
from workbench.invoicing import Invoices, compare_invoices
from workbench.invoicing.report import TYPE_LABELS
from workbench.money import CENT_SCALE, round_half_up, to_decimal
from workbench.period import Period
from workbench.reads.runs import list_runs, run_invoices, run_row
from workbench.reads.selection import reopened

#: a run's review status: a draft to review, issued in production, or replaced by a newer run
DRAFT, PROMOTED, SUPERSEDED, ISSUED = "draft", "promoted", "superseded", "issued"


def review_runs(engine: Engine) -> pd.DataFrame:
    """The runs (newest first) as :func:`~workbench.reads.runs.list_runs` gives them, with
    ``customers`` (the selection: ``all``, ``group:NAME``, ``accounts:...``) and ``review_status``:

    * ``issued`` for a production run;
    * ``promoted`` for a pre-production run issued in production (status ``promoting`` or
      ``promoted``);
    * ``superseded`` for a pre-production run of the same period and customer selection as a
      newer one, or as a promoted one;
    * ``draft`` otherwise: the one to review.
    """
    import json

    runs = list_runs(engine)
    runs["customers"] = runs["options"].map(lambda text: json.loads(text).get("customers", "all"))
    preprod = runs[runs["kind"] == "preprod"]
    promoted = preprod["status"].isin(["promoting", "promoted"])
    status = pd.Series(np.where(runs["kind"] == "production", ISSUED, DRAFT), index=runs.index, dtype=object)
    status[promoted[promoted].index] = PROMOTED
    for index, run in preprod[~promoted].iterrows():
        same = preprod[(preprod["period"] == run["period"]) & (preprod["customers"] == run["customers"])]
        if (same["id"] > run["id"]).any() or promoted[same.index].any():
            status[index] = SUPERSEDED
    runs["review_status"] = status
    return runs


def anomaly_counts(anomalies: pd.DataFrame) -> pd.DataFrame:
    """The control report's ``Anomalies`` sheet counted by kind: ``Problem``, ``Anomalies``
    (int64), most frequent first (then by kind)."""
    counts = anomalies.groupby("Problem").size().rename("Anomalies").reset_index()
    counts["Anomalies"] = counts["Anomalies"].astype(np.int64)
    return counts.sort_values(["Anomalies", "Problem"], ascending=[False, True], ignore_index=True)


def percent_change(previous_cents: int, current_cents: int) -> Decimal | None:
    """``(current - previous) / |previous|`` in percent with one decimal, rounded half away from
    zero (:func:`~workbench.money.round_half_up`); ``None`` when ``previous_cents`` is 0.

    >>> percent_change(3000, 3450), percent_change(3000, 2000), percent_change(0, 10)
    (Decimal('15.0'), Decimal('-33.3'), None)
    """
    if previous_cents == 0:
        return None
    tenths = round_half_up((int(current_cents) - int(previous_cents)) * 1000, abs(int(previous_cents)))
    return Decimal(int(tenths)).scaleb(-1)


ITEM_COLUMNS = (s.Invoice.customer_id, s.InvoiceItem.position, s.InvoiceItem.type, s.InvoiceItem.description,
                s.InvoiceItem.product_code, s.InvoiceItem.zone_code, s.InvoiceItem.quantity,
                s.InvoiceItem.unit_price_cents, s.InvoiceItem.amount_cents, s.InvoiceItem.vat_rate,
                s.InvoiceItem.period_from, s.InvoiceItem.period_to, s.InvoiceItem.calls, s.InvoiceItem.seconds,
                s.InvoiceItem.one_off_id)


def billed_invoices(connection: Connection, period: str) -> Invoices:
    """What was billed for ``period``: its issued invoices that no reopening credit note cancels
    (credit notes left out), in the frames of :func:`~workbench.reads.runs.run_invoices`
    (one invoice per customer: the newest when there are more)."""
    billed = (s.Invoice.status == "issued", s.Invoice.kind == "invoice", s.Invoice.period == period, ~reopened())
    invoices = read_frame(connection, select(
        s.Invoice.id.label("invoice_id"), s.Invoice.number, s.Invoice.customer_id, s.Customer.account_number,
        s.Customer.name, s.Invoice.total_excl_cents, s.Invoice.total_vat_cents, s.Invoice.total_incl_cents,
        s.Invoice.credit_applied_cents, s.Invoice.net_payable_cents, s.Invoice.previous_amount_cents,
    ).join(s.Customer, s.Customer.id == s.Invoice.customer_id).where(*billed).order_by(s.Invoice.id))
    invoices = invoices.drop_duplicates("customer_id", keep="last").reset_index(drop=True)
    items = read_frame(connection, select(*ITEM_COLUMNS).join(s.Invoice, s.Invoice.id == s.InvoiceItem.invoice_id)
                       .where(*billed, s.Invoice.id.in_([int(i) for i in invoices["invoice_id"]]))
                       .order_by(s.Invoice.customer_id, s.InvoiceItem.position))
    return Invoices(invoices, items, pd.DataFrame())


@dataclass(frozen=True)
class PeriodComparison:
    """A run against what was billed for the period before (see :func:`previous_period_comparison`).

    ``previous``: what the comparison is made with, in words (``""`` when there is nothing);
    ``by_type``: ``Item type``, ``Previous``, ``This run``, ``Change`` (``Decimal`` EUR excl. VAT),
    ``Change (%)`` (``Decimal``, one decimal, ``None`` from 0); ``by_zone``: the same by ``Zone``
    (consumption lines); ``accounts``: the accounts whose total incl. VAT moved most
    (:func:`~workbench.invoicing.compare_invoices` columns, largest absolute change first)."""

    previous: str
    by_type: pd.DataFrame
    by_zone: pd.DataFrame
    accounts: pd.DataFrame


def _changes(previous: pd.Series, current: pd.Series, label: str, names: dict | None = None) -> pd.DataFrame:
    """Two sums of cents by key side by side: the amounts in euros, the change and its percent."""
    keys = list(dict.fromkeys([*previous.index, *current.index]))
    before = previous.reindex(keys).fillna(0).astype(np.int64)
    after = current.reindex(keys).fillna(0).astype(np.int64)
    return pd.DataFrame({
        label: [(names or {}).get(k, k) for k in keys],
        "Previous": [to_decimal(int(v), CENT_SCALE) for v in before],
        "This run": [to_decimal(int(v), CENT_SCALE) for v in after],
        "Change": [to_decimal(int(a - b), CENT_SCALE) for a, b in zip(after, before, strict=True)],
        "Change (%)": pd.Series([percent_change(int(b), int(a)) for a, b in zip(after, before, strict=True)],
                                dtype=object),
    })


def previous_period_comparison(engine: Engine, run_id: int, top: int = 10) -> PeriodComparison:
    """Run ``run_id`` against the previous period: its issued invoices (:func:`billed_invoices`),
    or when none is issued its newest pre-production run. Amounts excl. VAT by item type
    (in :data:`~workbench.invoicing.report.TYPE_LABELS` order) and by zone, and the ``top``
    accounts whose total moved most. :class:`~workbench.errors.InputError` for an unknown run."""
    with engine.connect() as connection:
        run = run_row(connection, run_id)
        current = run_invoices(connection, run_id)
        period = str(Period.parse(run["period"]).previous())
        previous = billed_invoices(connection, period)
        what = f"invoices issued for {period}" if len(previous.invoices) else ""
        if not what:
            earlier = read_frame(connection, select(s.BillingRun.id).where(
                s.BillingRun.period == period, s.BillingRun.kind == "preprod").order_by(s.BillingRun.id.desc()))
            if len(earlier):
                previous = run_invoices(connection, int(earlier["id"].iloc[0]))
                what = f"pre-production run {int(earlier['id'].iloc[0])} of {period}"
    if not what:
        empty = pd.DataFrame()
        return PeriodComparison("", empty, empty, empty)

    def by(items: pd.DataFrame, key: str) -> pd.Series:
        return items.groupby(key)["amount_cents"].sum() if len(items) else pd.Series(dtype=np.int64)

    by_type = _changes(by(previous.items, "type"), by(current.items, "type"), "Item type", TYPE_LABELS)
    order = {label: n for n, label in enumerate(TYPE_LABELS.values())}
    by_type = by_type.sort_values("Item type", key=lambda c: c.map(order), ignore_index=True)

    def calls(items: pd.DataFrame) -> pd.DataFrame:
        return items[items["type"] == "consumption"] if len(items) else items

    by_zone = _changes(by(calls(previous.items), "zone_code"), by(calls(current.items), "zone_code"), "Zone")
    by_zone = by_zone.sort_values("Zone", ignore_index=True)
    accounts = compare_invoices(previous.invoices, previous.items, current.invoices, current.items)
    moved = accounts["Change"].map(abs)
    accounts = accounts.assign(_moved=moved).sort_values(["_moved", "Account number"], ascending=[False, True])
    accounts = accounts[accounts["_moved"] > 0].drop(columns="_moved").head(top).reset_index(drop=True)
    return PeriodComparison(what, by_type, by_zone, accounts)
