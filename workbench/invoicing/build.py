"""Building invoices from frames (see the package docstring for the rounding points)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation

import numpy as np
import pandas as pd

from workbench.errors import InputError
from workbench.money import integer_series, minutes, round_half_up
from workbench.period import Period

#: invoice item types, in the order they are shown
ITEM_TYPES = ["one_off", "recurring", "prorated", "consumption", "credit"]
ITEM_COLUMNS = [
    "customer_id", "position", "type", "description", "product_code", "zone_code", "quantity",
    "unit_price_cents", "amount_cents", "vat_rate", "period_from", "period_to", "calls", "seconds",
    "one_off_id",
]
INVOICE_COLUMNS = [
    "customer_id", "account_number", "name", "total_excl_cents", "total_vat_cents", "total_incl_cents",
    "credit_applied_cents", "net_payable_cents", "previous_amount_cents", "one_off_cents",
    "recurring_cents", "prorated_cents", "consumption_cents", "calls", "seconds",
]
VAT_COLUMNS = ["customer_id", "vat_rate", "base_cents", "vat_cents"]
_UNITS_PER_CENT = 100  # call prices are in 1/10,000, invoices in 1/100


#: the VAT rates of France, in percent: 20 (normal rate, CGI art. 278), 10 (art. 279), 5.5 (art.
#: 278-0 bis to 278 bis), 2.1 (art. 281 quater to 281 nonies); Guadeloupe, Martinique and La
#: Réunion (art. 296): 8.5, 2.1, 1.75 and 1.05; Corsica (art. 297): 13, 10, 2.1 and 0.9; and 0 for
#: items without French VAT (exempt, reverse charge, out of scope: the invoice says which)
FRENCH_VAT_RATES = tuple(Decimal(r) for r in ("0", "0.9", "1.05", "1.75", "2.1", "5.5", "8.5", "10", "13", "20"))


def vat_basis_points(rate, source: str | None = None) -> int:
    """A VAT percentage (``Decimal("5.5")``, ``"20"``) as an integer of 1/100 percent;
    :class:`~workbench.errors.InputError` (code ``bad_vat_rate``, ``source`` as given, e.g. the
    product) for a rate that is not a number or has more than two decimals."""
    def bad(problem: str) -> InputError:
        return InputError(f"VAT rate {str(rate)!r} {problem}", source=source, code="bad_vat_rate")

    try:
        value = Decimal(str(rate)) * 100
    except InvalidOperation:
        raise bad("is not a number") from None
    if not value.is_finite():
        raise bad("is not a number")
    if value != value.to_integral_value():
        raise bad("has more than two decimals")
    return int(value)


@dataclass(frozen=True)
class BillingOptions:
    """How a period is billed. ``advance``: recurring items for the next month (the first invoice
    of a subscription also carries its prorated start); default in arrears."""

    period: Period
    invoice_date: date
    due_date: date
    advance: bool = False
    consumption_vat_rate: Decimal = Decimal("20")


def _empty(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})


@dataclass
class BillingInputs:
    """The frames an invoice run reads (all for the selected customers only).

    * ``customers``: customer_id, account_number, name (and any other columns);
    * ``products``: product_id, code, name, kind, category, price_cents, vat_rate;
    * ``subscriptions``: customer_id, product_id, quantity, start_date, end_date (inclusive,
      empty = open), price_override_cents;
    * ``one_offs``: unbilled one-off charges: one_off_id, customer_id, product_id, charge_date,
      quantity, price_override_cents, description;
    * ``consumption``: unbilled rated calls summed by customer, zone and call period: customer_id,
      zone_code, zone_name, period (``YYYY-MM``; earlier than the billed period for late calls;
      absent = the billed period), calls, seconds, amount_units;
    * ``credits``: customer_id, available_cents (account credit not yet applied);
    * ``previous``: customer_id, previous_amount_cents (the latest production invoice's total).
    """

    customers: pd.DataFrame
    products: pd.DataFrame
    subscriptions: pd.DataFrame = field(default_factory=lambda: _empty(
        ["customer_id", "product_id", "quantity", "start_date", "end_date", "price_override_cents"]))
    one_offs: pd.DataFrame = field(default_factory=lambda: _empty(
        ["one_off_id", "customer_id", "product_id", "charge_date", "quantity", "price_override_cents",
         "description"]))
    consumption: pd.DataFrame = field(default_factory=lambda: _empty(
        ["customer_id", "zone_code", "zone_name", "calls", "seconds", "amount_units"]))
    credits: pd.DataFrame = field(default_factory=lambda: _empty(["customer_id", "available_cents"]))
    previous: pd.DataFrame = field(default_factory=lambda: _empty(["customer_id", "previous_amount_cents"]))


@dataclass(frozen=True)
class Invoices:
    """One row per invoice (``INVOICE_COLUMNS``), their items (``ITEM_COLUMNS``) and VAT by rate
    (``VAT_COLUMNS``), all keyed by ``customer_id`` (one invoice per customer and run)."""

    invoices: pd.DataFrame
    items: pd.DataFrame
    vat: pd.DataFrame


def _days(start: pd.Series, end: pd.Series) -> np.ndarray:
    return ((end - start).dt.days + 1).clip(lower=0).to_numpy(np.int64)


def _unit_prices(frame: pd.DataFrame, products: pd.DataFrame) -> pd.DataFrame:
    merged = frame.merge(products, on="product_id", how="left", validate="many_to_one")
    missing = merged["code"].isna()
    if missing.any():
        raise ValueError(f"unknown product ids {sorted(merged.loc[missing, 'product_id'].unique())[:5]}")
    override = integer_series(merged["price_override_cents"])
    merged["unit_price_cents"] = override.fillna(integer_series(merged["price_cents"])).astype(np.int64)
    merged["quantity"] = merged["quantity"].astype(np.int64)
    return merged


def _month_items(subs: pd.DataFrame, month: Period, full_type: str = "recurring") -> pd.DataFrame:
    """Recurring (whole month) or prorated (part of it) items of ``month`` for subscriptions."""
    m_start, m_end = pd.Timestamp(month.start), pd.Timestamp(month.end - timedelta(days=1))
    start = subs["start"].clip(lower=m_start)
    end = subs["end"].fillna(m_end).clip(upper=m_end)
    days = _days(start, end)
    active = days > 0
    out = subs[active].copy()
    days, start, end = days[active], start[active], end[active]
    whole = days == month.days
    gross = out["quantity"].to_numpy(np.int64) * out["unit_price_cents"].to_numpy(np.int64)
    out["amount_cents"] = np.where(whole, gross, round_half_up(gross * days, month.days))
    out["type"] = np.where(whole, full_type, "prorated")
    out["quantity_text"] = np.where(
        whole, out["quantity"].astype(str),
        [str((Decimal(int(q)) * d / month.days).quantize(Decimal("0.0001")))
         for q, d in zip(out["quantity"], days, strict=True)],
    )
    out["period_from"] = start.dt.date.to_numpy()
    out["period_to"] = end.dt.date.to_numpy()
    return out


def _subscription_items(inputs: BillingInputs, options: BillingOptions) -> pd.DataFrame:
    subs = inputs.subscriptions
    if len(subs) == 0:
        return _empty(ITEM_COLUMNS)
    subs = _unit_prices(subs, inputs.products)
    subs["start"] = pd.to_datetime(subs["start_date"])
    subs["end"] = pd.to_datetime(subs["end_date"])
    period = options.period
    if options.advance:
        following = _month_items(subs, period.next())
        started = subs[(subs["start"] >= pd.Timestamp(period.start))]
        first = _month_items(started, period)  # a subscription's first invoice: its start too
        parts = pd.concat([first, following], ignore_index=True)
    else:
        parts = _month_items(subs, period)
    if parts.empty:
        return _empty(ITEM_COLUMNS)
    return pd.DataFrame({
        "customer_id": parts["customer_id"].to_numpy(np.int64),
        "type": parts["type"],
        "description": parts["name"],
        "product_code": parts["code"],
        "zone_code": None,
        "quantity": parts["quantity_text"],
        "unit_price_cents": parts["unit_price_cents"],
        "amount_cents": parts["amount_cents"].astype(np.int64),
        "vat_rate": parts["vat_rate"].map(lambda r: Decimal(str(r))),
        "period_from": parts["period_from"],
        "period_to": parts["period_to"],
        "calls": None, "seconds": None, "one_off_id": None,
    })


def _one_off_items(inputs: BillingInputs, options: BillingOptions) -> pd.DataFrame:
    """Unbilled one-off charges dated up to the end of the period (late ones are caught up)."""
    one_offs = inputs.one_offs
    if len(one_offs) == 0:
        return _empty(ITEM_COLUMNS)
    charge = pd.to_datetime(one_offs["charge_date"])
    one_offs = one_offs[(charge < pd.Timestamp(options.period.end)).to_numpy()]
    if one_offs.empty:
        return _empty(ITEM_COLUMNS)
    rows = _unit_prices(one_offs, inputs.products)
    text = rows["description"].fillna("").astype(str)
    return pd.DataFrame({
        "customer_id": rows["customer_id"].to_numpy(np.int64),
        "type": "one_off",
        "description": np.where(text.str.strip() != "", rows["name"] + " - " + text, rows["name"]),
        "product_code": rows["code"],
        "zone_code": None,
        "quantity": rows["quantity"].astype(str),
        "unit_price_cents": rows["unit_price_cents"],
        "amount_cents": (rows["quantity"] * rows["unit_price_cents"]).astype(np.int64),
        "vat_rate": rows["vat_rate"].map(lambda r: Decimal(str(r))),
        "period_from": pd.to_datetime(rows["charge_date"]).dt.date.to_numpy(),
        "period_to": pd.to_datetime(rows["charge_date"]).dt.date.to_numpy(),
        "calls": None, "seconds": None, "one_off_id": rows["one_off_id"].to_numpy(np.int64),
    })


#: how a line of late calls is labelled, by the customer's language
LATE_LABELS = {"fr": "{zone} - appels de {period} reçus en retard", "en": "{zone} - calls of {period} received late"}


def _consumption_items(inputs: BillingInputs, options: BillingOptions) -> pd.DataFrame:
    """One line per customer, zone and call period: the period's calls, and, as lines of their
    own labelled with their period (:data:`LATE_LABELS`), calls of earlier periods not billed yet
    (received after their period was invoiced). Each line is rounded once, half up to the cent."""
    calls = inputs.consumption
    if len(calls) == 0:
        return _empty(ITEM_COLUMNS)
    if "period" not in calls:
        calls = calls.assign(period=str(options.period))
    calls = calls.sort_values(["customer_id", "period", "zone_code"])
    periods = calls["period"].astype(str)
    late = (periods != str(options.period)).to_numpy()
    zone = calls["zone_name"].fillna(calls["zone_code"]).astype(str)
    if late.any():
        language = calls["customer_id"].map(
            inputs.customers.set_index("customer_id")["language"] if "language" in inputs.customers
            else pd.Series(dtype=object)).fillna("en")
        label = [LATE_LABELS.get(lang, LATE_LABELS["en"]).format(zone=z, period=p)
                 for z, p, lang in zip(zone[late], periods[late], language[late], strict=True)]
        zone = zone.to_numpy(dtype=object)
        zone[late] = label
    starts = [Period.parse(p) for p in periods]
    return pd.DataFrame({
        "customer_id": calls["customer_id"].to_numpy(np.int64),
        "type": "consumption",
        "description": np.asarray(zone, dtype=object),
        "product_code": None,
        "zone_code": calls["zone_code"].astype(str).to_numpy(),
        "quantity": calls["seconds"].astype(np.int64).map(lambda s: str(minutes(s))).to_numpy(),
        "unit_price_cents": None,
        "amount_cents": round_half_up(calls["amount_units"].to_numpy(np.int64), _UNITS_PER_CENT),
        "vat_rate": options.consumption_vat_rate,
        "period_from": [p.start for p in starts],
        "period_to": [p.end - timedelta(days=1) for p in starts],
        "calls": calls["calls"].to_numpy(np.int64),
        "seconds": calls["seconds"].to_numpy(np.int64),
        "one_off_id": None,
    })


def item_totals(items: pd.DataFrame) -> pd.DataFrame:
    """Per customer (index ``customer_id``): the amount of each item type (``<type>_cents`` for
    every one of ``ITEM_TYPES``) and the calls and seconds of its consumption items."""
    sums = items.pivot_table(index="customer_id", columns="type", values="amount_cents", aggfunc="sum",
                             fill_value=0)
    out = pd.DataFrame(index=sums.index)
    for kind in ITEM_TYPES:
        out[f"{kind}_cents"] = sums[kind].astype(np.int64) if kind in sums else 0
    for column in ("calls", "seconds"):  # Int64: no float on the way (items without calls have none)
        usage = integer_series(items[column]).groupby(items["customer_id"].to_numpy()).sum()
        out[column] = usage.reindex(out.index).fillna(0).astype(np.int64)
    return out


def build_invoices(inputs: BillingInputs, options: BillingOptions) -> Invoices:
    """One invoice per customer of ``inputs.customers`` that has something to bill."""
    for code, rate in zip(inputs.products["code"], inputs.products["vat_rate"], strict=True):
        vat_basis_points(rate, f"product {code}")
    parts = [_one_off_items(inputs, options), _subscription_items(inputs, options),
             _consumption_items(inputs, options)]
    parts = [p for p in parts if len(p)]
    if not parts:
        return Invoices(_empty(INVOICE_COLUMNS), _empty(ITEM_COLUMNS), _empty(VAT_COLUMNS))
    items = pd.concat(parts, ignore_index=True)
    items = items[items["customer_id"].isin(inputs.customers["customer_id"])]
    items["type_order"] = items["type"].map({t: i for i, t in enumerate(ITEM_TYPES)})
    items = items.sort_values(["customer_id", "type_order", "description"], kind="stable")

    # VAT per invoice and rate, on the sum of that rate's lines
    items["vat_bp"] = items["vat_rate"].map(vat_basis_points)
    vat = items.groupby(["customer_id", "vat_bp"], as_index=False)["amount_cents"].sum()
    vat["vat_cents"] = round_half_up(vat["amount_cents"].to_numpy(np.int64) * vat["vat_bp"].to_numpy(),
                                         10_000)
    vat = vat.rename(columns={"amount_cents": "base_cents"})
    vat["vat_rate"] = vat["vat_bp"].map(lambda bp: Decimal(int(bp)) / 100)

    by_type = item_totals(items)
    invoices = inputs.customers[inputs.customers["customer_id"].isin(by_type.index)][
        ["customer_id", "account_number", "name"]].set_index("customer_id")
    for column in ("one_off_cents", "recurring_cents", "prorated_cents", "consumption_cents", "calls", "seconds"):
        invoices[column] = by_type[column]
    totals = vat.groupby("customer_id")[["base_cents", "vat_cents"]].sum()
    invoices["total_excl_cents"] = totals["base_cents"]
    invoices["total_vat_cents"] = totals["vat_cents"]
    invoices["total_incl_cents"] = invoices["total_excl_cents"] + invoices["total_vat_cents"]

    credit = (integer_series(inputs.credits["available_cents"]).groupby(inputs.credits["customer_id"].to_numpy())
              .sum() if len(inputs.credits) else None)
    available = (credit.reindex(invoices.index).fillna(0).astype(np.int64) if credit is not None
                 else pd.Series(0, index=invoices.index, dtype=np.int64))
    applied = np.minimum(available.clip(lower=0), invoices["total_incl_cents"].clip(lower=0))
    invoices["credit_applied_cents"] = applied
    invoices["net_payable_cents"] = invoices["total_incl_cents"] - applied
    previous = (inputs.previous.set_index("customer_id")["previous_amount_cents"] if len(inputs.previous)
                else pd.Series(dtype="Int64"))
    invoices["previous_amount_cents"] = integer_series(previous).reindex(invoices.index)
    invoices = invoices.reset_index()

    credit_rows = invoices[invoices["credit_applied_cents"] > 0]
    if len(credit_rows):
        credit_items = pd.DataFrame({
            "customer_id": credit_rows["customer_id"].to_numpy(np.int64), "type": "credit",
            "description": "Account credit applied", "product_code": None, "zone_code": None,
            "quantity": "1", "unit_price_cents": None,
            "amount_cents": -credit_rows["credit_applied_cents"].to_numpy(np.int64), "vat_rate": None,
            "period_from": None, "period_to": None, "calls": None, "seconds": None, "one_off_id": None,
            "type_order": ITEM_TYPES.index("credit"), "vat_bp": None,
        })
        items = pd.concat([items, credit_items], ignore_index=True).sort_values(
            ["customer_id", "type_order"], kind="stable")
    items["position"] = items.groupby("customer_id").cumcount() + 1
    for column in ("unit_price_cents", "calls", "seconds", "one_off_id"):
        items[column] = integer_series(items[column])
    invoices = invoices.sort_values("account_number", kind="stable").reset_index(drop=True)
    return Invoices(invoices[INVOICE_COLUMNS], items[ITEM_COLUMNS].reset_index(drop=True),
                    vat[VAT_COLUMNS].reset_index(drop=True))
