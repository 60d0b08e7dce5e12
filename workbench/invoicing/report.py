"""The billing control report and run comparison, as DataFrames (pure).

Amounts in these frames are ``Decimal`` euros (exact), made from the invoices' integer cents.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import pandas as pd

from workbench.errors import Problem, problems_table
from workbench.invoicing.build import item_totals
from workbench.invoicing.vat import EU_MEMBER_STATES, STANDARD, is_business, vat_category
from workbench.money import CENT_SCALE, format_money, integer_series, minutes, to_decimal

#: the first columns of the report's invoice sheet, in this order
REPORT_COLUMNS = [
    "Invoice number", "Account number", "Customer name", "Total amount billed", "Net payable amount",
    "Initial billing items amount", "Recurring billing items amount", "Consumption amount",
    "Prorated amount", "Previous invoice amount",
]
#: the VAT categories as the report names them (UNCL 5305 codes; workbench.invoicing.vat)
CATEGORY_LABELS = {"S": "Standard (French VAT)", "E": "Exempt", "AE": "Reverse charge (autoliquidation)",
                   "O": "Outside the scope of French VAT"}
TYPE_LABELS = {"one_off": "Initial (one-off)", "recurring": "Recurring", "prorated": "Prorated",
               "consumption": "Consumption", "credit": "Account credit applied"}
AMOUNT_COLUMNS = {
    "total_incl_cents": "Total amount billed", "net_payable_cents": "Net payable amount",
    "one_off_cents": "Initial billing items amount", "recurring_cents": "Recurring billing items amount",
    "consumption_cents": "Consumption amount", "prorated_cents": "Prorated amount",
    "previous_amount_cents": "Previous invoice amount",
}


def _decimal_euros(cents) -> object:
    """Integer cents to exact ``Decimal`` euros for a report cell (``None`` stays ``None``)."""
    if cents is None or (not isinstance(cents, (int, np.integer)) and pd.isna(cents)):
        return None
    return to_decimal(cents, CENT_SCALE)


def _euros(series: pd.Series) -> pd.Series:
    return series.map(_decimal_euros).astype(object)


@dataclass(frozen=True)
class AnomalyRules:
    """When a change against the previous invoice is an anomaly: more than ``ratio`` (0.5 =
    50%) up or down, and more than ``minimum_cents``."""

    ratio: Decimal = Decimal("0.5")
    minimum_cents: int = 2000


def _late_lines(items: pd.DataFrame, period: str | None) -> pd.Series:
    """Which items bill late calls: consumption lines of a period before ``period``."""
    if period is None or items.empty:
        return pd.Series(False, index=items.index)
    start = pd.Timestamp(f"{period}-01")
    return (items["type"] == "consumption") & (pd.to_datetime(items["period_from"]) < start)


def _anomalies(invoices: pd.DataFrame, items: pd.DataFrame, customers: pd.DataFrame,
               unrated: pd.DataFrame, rejected: pd.DataFrame, rules: AnomalyRules,
               period: str | None = None, never_rated: pd.DataFrame | None = None,
               unbalanced: list[str] | None = None) -> pd.DataFrame:
    """The run's anomalies as data problems (``source`` the invoice, or ``rating`` and the CDR file
    for calls not rated and records rejected; ``key`` the account number; ``code`` the kind),
    shown as every problem is (:func:`~workbench.errors.problems_table`), with the customer's name
    after them."""
    problems: list[Problem] = []
    names: list[str] = []

    def add(code, number, account, name, detail):
        problems.append(Problem(number, account, code, detail))
        names.append(name)

    for inv in invoices.itertuples(index=False):
        previous = inv.previous_amount_cents
        if inv.total_incl_cents <= 0:
            add("zero_or_negative_invoice", inv.number, inv.account_number, inv.name,
                f"total {format_money(int(inv.total_incl_cents))}")
        if previous is not None and not pd.isna(previous):
            change = int(inv.total_incl_cents) - int(previous)
            if abs(change) > rules.minimum_cents and (
                    int(previous) == 0 or Decimal(abs(change)) / Decimal(abs(int(previous))) > rules.ratio):
                add("change_vs_previous_invoice", inv.number, inv.account_number, inv.name,
                    f"{format_money(int(previous))} -> {format_money(int(inv.total_incl_cents))} "
                    f"({'+' if change > 0 else ''}{format_money(change)})")
    types = items.groupby("customer_id")["type"].agg(set)
    named = invoices.set_index("customer_id")
    for customer_id, kinds in types.items():
        if "consumption" in kinds and not kinds & {"recurring", "prorated"}:
            inv = named.loc[customer_id]
            add("calls_without_subscription", inv["number"], inv["account_number"], inv["name"],
                "the account has calls this period but no active subscription")
    number_of = dict(zip(invoices["customer_id"], invoices["number"], strict=True))
    if len(customers) and {"country", "vat_number"} <= set(customers.columns):
        # a company of another EU state charged French VAT: its VAT number is missing or not valid
        for c in customers.itertuples(index=False):
            country = str(c.country or "FR").upper()
            business = getattr(c, "business", None)
            if (country in EU_MEMBER_STATES and country != "FR" and is_business(business, c.vat_number)
                    and vat_category(c.country, business, c.vat_number) == STANDARD):
                add("vat_number_invalid", number_of.get(c.customer_id, ""), c.account_number, c.name,
                    f"a company in {country} without a valid EU VAT number ({c.vat_number or 'none'}): charged "
                    "French VAT instead of the reverse charge")
    if len(customers) and "payment_method" in customers:
        debit = customers[(customers["payment_method"] == "direct_debit") & ~customers["has_mandate"].astype(bool)]
        for c in debit.itertuples(index=False):
            add("no_mandate_for_direct_debit", number_of.get(c.customer_id, ""), c.account_number, c.name,
                "pays by direct debit but has no active SEPA mandate")
    if len(customers) and "mandate_problem" in customers:
        invalid = customers[customers["mandate_problem"].fillna("").astype(str) != ""]
        for c in invalid.itertuples(index=False):
            add("mandate_invalid", number_of.get(c.customer_id, ""), c.account_number, c.name,
                f"the SEPA file would leave out its debit: {c.mandate_problem}")
    if len(customers) and "already_invoiced" in customers:
        issued = set(customers.loc[customers["already_invoiced"].astype(bool), "customer_id"])
        for inv in invoices[invoices["customer_id"].isin(issued)].itertuples(index=False):
            add("already_invoiced", inv.number, inv.account_number, inv.name,
                "the period is already invoiced for this customer: production will skip it")
    late = items[_late_lines(items, period)]
    for customer_id, group in late.groupby("customer_id"):
        inv = named.loc[customer_id]
        periods = ", ".join(sorted({str(p)[:7] for p in group["period_from"]}))
        add("late_calls", inv["number"], inv["account_number"], inv["name"],
            f"{int(group['calls'].sum())} calls of {periods} received late, billed on this invoice: "
            f"{format_money(int(group['amount_cents'].sum()))} excl. VAT")
    for r in unrated.itertuples(index=False):
        add(str(r.reason), "rating", None, "", f"{r.calls} calls not rated: {r.reason}")
    if never_rated is not None:
        for r in never_rated.itertuples(index=False):
            add("unrated_calls", f"rating {r.period}", None, "",
                f"{r.calls} calls of {r.period} loaded but never rated: not billed by this run "
                f"(rate them with `workbench rate --period {r.period}`, then run the billing again)")
    for text in unbalanced or []:
        add("balance_not_closed", "period balance", None, "", text + ": production refuses the run until it is "
            "explained")
    for r in rejected.itertuples(index=False):
        if bool(getattr(r, "pending", False)):  # a reference fix can still cure them
            add("rejects_pending", str(r.file), None, "",
                f"{r.records} records still pending a reference fix: {r.reason}")
        else:
            add(str(r.reason), str(r.file), None, "", f"{r.records} records rejected: {r.reason}")
    return problems_table(problems).assign(**{"Customer name": names})


def control_report(
    invoices: pd.DataFrame,
    items: pd.DataFrame,
    customers: pd.DataFrame | None = None,
    unrated: pd.DataFrame | None = None,
    rejected: pd.DataFrame | None = None,
    rules: AnomalyRules | None = None,
    vat: pd.DataFrame | None = None,
    period: str | None = None,
    never_rated: pd.DataFrame | None = None,
    balance: pd.DataFrame | None = None,
    unbalanced: list[str] | None = None,
) -> dict[str, pd.DataFrame]:
    """The control report's sheets: ``Invoices`` (``REPORT_COLUMNS`` first), ``Summary`` (by item
    type), ``By zone``, ``Anomalies``, ``Lines``, and ``Period balance`` when ``balance`` is given.

    ``period`` (``YYYY-MM``): the billed period; consumption lines of earlier periods are late
    calls (``Late calls`` and ``Late calls amount`` columns, a ``late_calls`` anomaly).
    ``never_rated``: period, calls (calls loaded but never rated, an ``unrated_calls`` anomaly);
    ``balance``: the period balance's lines; ``unbalanced``: its sections that do not close, each
    a ``balance_not_closed`` anomaly. ``vat``: the invoices' VAT rows (customer_id, vat_category,
    vat_rate, base_cents, vat_cents): the ``VAT by category`` sheet, one row per category and rate
    with its invoices, taxable amount and VAT (sums of the invoices' rounded VAT, nothing rounded
    again); a company of another EU state without a valid VAT number, so charged French VAT, is a
    ``vat_number_invalid`` anomaly.

    ``invoices``: the invoice rows with ``number`` (and :data:`~workbench.invoicing.build.INVOICE_COLUMNS`);
    ``items`` with ``number``; ``customers``: customer_id, account_number, name, payment_method,
    billing_group, has_mandate (and ``mandate_problem``: what is wrong with the mandate of a
    direct-debit customer, ``""`` for nothing, a ``mandate_invalid`` anomaly); ``unrated``: reason,
    calls; ``rejected``: file, reason, records (and ``pending``: True for the records still pending a
    reference fix, reported as ``rejects_pending``).
    """
    customers = customers if customers is not None else pd.DataFrame()
    unrated = unrated if unrated is not None else pd.DataFrame(columns=["reason", "calls"])
    rejected = rejected if rejected is not None else pd.DataFrame(columns=["file", "reason", "records"])
    invoices = invoices.sort_values("number", kind="stable").reset_index(drop=True)

    sheet = pd.DataFrame({"Invoice number": invoices["number"], "Account number": invoices["account_number"],
                          "Customer name": invoices["name"]})
    for column, label in AMOUNT_COLUMNS.items():
        sheet[label] = _euros(invoices[column])
    sheet = sheet[REPORT_COLUMNS]
    sheet["Total excl. VAT"] = _euros(invoices["total_excl_cents"])
    sheet["VAT"] = _euros(invoices["total_vat_cents"])
    sheet["Account credit applied"] = _euros(invoices["credit_applied_cents"])
    sheet["Calls"] = invoices["calls"].astype(np.int64)
    sheet["Minutes"] = invoices["seconds"].astype(np.int64).map(minutes)
    late = items[_late_lines(items, period)]
    late_calls = late.groupby("customer_id")["calls"].sum()
    late_cents = late.groupby("customer_id")["amount_cents"].sum()
    sheet["Late calls"] = invoices["customer_id"].map(late_calls).fillna(0).astype(np.int64).to_numpy()
    sheet["Late calls amount"] = _euros(invoices["customer_id"].map(late_cents).fillna(0).astype(np.int64)).to_numpy()
    if "vat_category" in invoices:
        sheet["VAT category"] = invoices["vat_category"].fillna(STANDARD).to_numpy()
    if len(customers):
        extra = customers.set_index("customer_id")
        for column, label in (("billing_group", "Billing group"), ("payment_method", "Payment method")):
            if column in extra:
                sheet[label] = invoices["customer_id"].map(extra[column]).to_numpy()

    summary = items.groupby("type").agg(lines=("amount_cents", "size"), amount=("amount_cents", "sum"))
    summary = summary.reindex([t for t in TYPE_LABELS if t in summary.index])
    summary_sheet = pd.DataFrame({
        "Item type": [TYPE_LABELS[t] for t in summary.index],
        "Lines": summary["lines"].to_numpy(np.int64),
        "Amount excl. VAT": _euros(summary["amount"]).to_numpy(),
    })

    calls = items[items["type"] == "consumption"]
    zones = calls.groupby(["zone_code", "description"], as_index=False).agg(
        invoices=("customer_id", "nunique"), calls=("calls", "sum"), seconds=("seconds", "sum"),
        amount=("amount_cents", "sum"))
    zone_sheet = pd.DataFrame({
        "Zone": zones["zone_code"], "Destination": zones["description"], "Invoices": zones["invoices"],
        "Calls": zones["calls"].astype(np.int64), "Minutes": zones["seconds"].astype(np.int64).map(minutes),
        "Amount excl. VAT": _euros(zones["amount"]),
    })

    lines = items.merge(invoices[["customer_id", "number", "account_number"]], on="customer_id")
    lines = lines.sort_values(["number", "position"], kind="stable")
    line_sheet = pd.DataFrame({
        "Invoice number": lines["number"], "Account number": lines["account_number"],
        "Position": lines["position"], "Item type": lines["type"].map(TYPE_LABELS),
        "Description": lines["description"], "Product": lines["product_code"], "Zone": lines["zone_code"],
        "Quantity": lines["quantity"].map(lambda q: None if q is None or pd.isna(q) else Decimal(str(q))),
        "Unit price": _euros(lines["unit_price_cents"]), "Amount excl. VAT": _euros(lines["amount_cents"]),
        "VAT rate (%)": lines["vat_rate"].map(lambda r: None if r is None or pd.isna(r) else Decimal(str(r))),
        "From": lines["period_from"], "To": lines["period_to"], "Calls": lines["calls"],
    })
    return {
        "Invoices": sheet,
        "Summary": summary_sheet,
        "By zone": zone_sheet,
        **({"VAT by category": vat_by_category(vat)} if vat is not None else {}),
        "Anomalies": _anomalies(invoices, items, customers, unrated, rejected, rules or AnomalyRules(), period,
                                never_rated, unbalanced),
        "Lines": line_sheet.reset_index(drop=True),
        **({"Period balance": balance.reset_index(drop=True)} if balance is not None else {}),
    }


def vat_by_category(vat: pd.DataFrame) -> pd.DataFrame:
    """The VAT of a run by category and rate: ``Category`` (code), ``Category name``, ``VAT rate
    (%)``, ``Invoices``, ``Taxable amount``, ``VAT`` (exact euros: sums of the invoices' VAT rows,
    each rounded once when its invoice was built). ``vat``: customer_id, vat_rate, base_cents,
    vat_cents and vat_category (absent or empty: ``S``)."""
    columns = ["Category", "Category name", "VAT rate (%)", "Invoices", "Taxable amount", "VAT"]
    if vat.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    frame = vat.assign(
        category=vat["vat_category"].fillna(STANDARD) if "vat_category" in vat else STANDARD,
        rate=vat["vat_rate"].map(lambda r: Decimal(str(r)).normalize()).map(lambda r: format(r, "f")),
        base_cents=vat["base_cents"].astype(np.int64), vat_cents=vat["vat_cents"].astype(np.int64))
    order = {c: i for i, c in enumerate(CATEGORY_LABELS)}
    grouped = frame.groupby(["category", "rate"], as_index=False).agg(
        invoices=("customer_id", "nunique"), base=("base_cents", "sum"), tax=("vat_cents", "sum"))
    grouped = grouped.sort_values(["category", "rate"], key=lambda s: s.map(order) if s.name == "category"
                                  else s.map(Decimal), kind="stable")
    return pd.DataFrame({
        "Category": grouped["category"].to_numpy(),
        "Category name": grouped["category"].map(CATEGORY_LABELS).to_numpy(),
        "VAT rate (%)": grouped["rate"].map(Decimal).to_numpy(),
        "Invoices": grouped["invoices"].astype(np.int64).to_numpy(),
        "Taxable amount": _euros(grouped["base"]).to_numpy(), "VAT": _euros(grouped["tax"]).to_numpy(),
    })


def _per_account(invoices: pd.DataFrame, items: pd.DataFrame) -> pd.DataFrame:
    totals = item_totals(items)
    frame = invoices.set_index("account_number")[["name", "total_incl_cents", "net_payable_cents"]].copy()
    for column in ("total_incl_cents", "net_payable_cents"):  # Int64: an account missing in a run is NA
        frame[column] = integer_series(frame[column])
    for kind in TYPE_LABELS:
        frame[kind] = pd.array(integer_series(totals[f"{kind}_cents"]).reindex(invoices["customer_id"].to_numpy())
                               .fillna(0).to_numpy(np.int64), dtype="Int64")
    return frame


def compare_invoices(a_invoices: pd.DataFrame, a_items: pd.DataFrame,
                     b_invoices: pd.DataFrame, b_items: pd.DataFrame) -> pd.DataFrame:
    """Run A against run B, account by account: status (``added``, ``removed``, ``changed``,
    ``unchanged``), totals, and the change of each item type's amount (B - A), in euros
    (exact ``Decimal``, ``None`` for the total of a run without the account): integer cents
    (``Int64``) all the way, an account missing from one run counting 0 in the changes."""
    a, b = _per_account(a_invoices, a_items), _per_account(b_invoices, b_items)
    accounts = sorted(set(a.index) | set(b.index))
    a, b = a.reindex(accounts), b.reindex(accounts)
    status = np.where(a["total_incl_cents"].isna(), "added", np.where(b["total_incl_cents"].isna(), "removed", ""))
    money = ["total_incl_cents", "net_payable_cents", *TYPE_LABELS]
    changed = (a[money].fillna(0).astype(np.int64) != b[money].fillna(0).astype(np.int64)).any(axis=1)
    status = np.where(status != "", status, np.where(changed, "changed", "unchanged"))
    out = pd.DataFrame({
        "Account number": accounts,
        "Customer name": b["name"].fillna(a["name"]).to_numpy(),
        "Status": status,
        "Total A": _euros(a["total_incl_cents"]).to_numpy(),
        "Total B": _euros(b["total_incl_cents"]).to_numpy(),
        "Change": _euros(b["total_incl_cents"].fillna(0) - a["total_incl_cents"].fillna(0)).to_numpy(),
    })
    for kind, label in TYPE_LABELS.items():
        out[f"Change {label.lower()}"] = _euros(
            (b[kind].fillna(0) - a[kind].fillna(0)).astype(np.int64)).to_numpy()
    return out
