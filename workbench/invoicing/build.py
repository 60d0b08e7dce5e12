"""Building invoices from frames (see the package docstring for the rounding points)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation

import numpy as np
import pandas as pd

from workbench.errors import InputError
from workbench.money import round_half_up
from workbench.period import Period

#: invoice item types, in the order they are shown
ITEM_TYPES = ["one_off", "recurring", "prorated", "consumption", "credit"]
ITEM_COLUMNS = [
    "customer_id", "position", "type", "description", "product_code", "zone_code", "quantity",
    "unit_price_cents", "amount_cents", "vat_rate", "period_from", "period_to", "calls", "seconds",
    "one_off_id", "subscription_id",
]
INVOICE_COLUMNS = [
    "customer_id", "account_number", "name", "total_excl_cents", "total_vat_cents", "total_incl_cents",
    "credit_applied_cents", "net_payable_cents", "previous_amount_cents", "one_off_cents",
    "recurring_cents", "prorated_cents", "consumption_cents", "calls", "seconds",
]
VAT_COLUMNS = ["customer_id", "vat_rate", "base_cents", "vat_cents"]
_UNITS_PER_CENT = 100  # call prices are in 1/10,000, invoices in 1/100


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
    """How a period is billed: recurring (subscription) items in arrears by default, in advance
    with ``advance``.

    Each day of a subscription's service is billed once, whatever the sequence of runs in
    advance and in arrears, credit notes and re-invoicing. A run's **target** for a subscription
    is its active days (``start_date`` to ``end_date``) up to the end of the period (arrears) or
    of the next month (advance), from the first month the subscription was billed (or the
    period, when that is earlier); a subscription never billed is billed from the period, or, in
    advance and started before the period, from the next month (the period was billed before,
    in advance). The run bills the target's days not yet billed (``BillingInputs.billed``) and
    gives back, as negative prorated lines, the billed days no longer active (an end date
    loaded after the days were billed, a start moved later). Every line stays within one
    calendar month (rounding point 3 of the package docstring)."""

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
      empty = open), price_override_cents, and subscription_id (optional when nothing was
      billed: rows are then numbered from 1);
    * ``one_offs``: unbilled one-off charges: one_off_id, customer_id, product_id, charge_date,
      quantity, price_override_cents, description;
    * ``consumption``: unbilled rated calls of the period summed by customer and zone:
      customer_id, zone_code, zone_name, calls, seconds, amount_units;
    * ``credits``: customer_id, available_cents (account credit not yet applied);
    * ``previous``: customer_id, previous_amount_cents (the latest production invoice's total);
    * ``billed``: the subscription lines already billed (issued invoices of other periods that
      no reopening credit note cancels), in the order they were issued: subscription_id,
      period_from, period_to (within one month), quantity (the line's, e.g. ``0.7097`` for 22
      of 31 days of 1; negative for days given back), unit_price_cents, amount_cents.
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
    billed: pd.DataFrame = field(default_factory=lambda: _empty(
        ["subscription_id", "period_from", "period_to", "quantity", "unit_price_cents", "amount_cents"]))


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
    override = pd.to_numeric(merged["price_override_cents"], errors="coerce")
    merged["unit_price_cents"] = override.fillna(merged["price_cents"]).astype(np.int64)
    merged["quantity"] = merged["quantity"].astype(np.int64)
    return merged


_MONTH_ABBREVIATIONS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def _month_amount(gross: int, days: int, month_days: int) -> int:
    """What a month of a subscription costs for ``days`` of its ``month_days`` days, in cents:
    ``gross`` (quantity x unit price) for the whole month, else ``gross x days / month_days``
    rounded half up to the cent (rounding point 3); 0 for no day."""
    if days == month_days:
        return gross
    return round_half_up(gross * days, month_days) if days else 0


def _day_mask(first: date, last: date, month: Period) -> int:
    """The days ``first`` to ``last`` (inclusive) that fall in ``month``, as bits (bit 0 = day 1)."""
    first, last = max(first, month.start), min(last, month.end - timedelta(days=1))
    if last < first:
        return 0
    return ((1 << (last.day - first.day + 1)) - 1) << (first.day - 1)


def _day_runs(mask: int) -> list[tuple[int, int]]:
    """The runs of consecutive days of a mask, as (first day, last day), in order."""
    runs, day = [], 1
    while mask:
        if mask & 1:
            first = day
            while mask & 1:
                mask, day = mask >> 1, day + 1
            runs.append((first, day - 1))
        else:
            mask, day = mask >> 1, day + 1
    return runs


def _quantity_text(quantity: int, days: int, month_days: int, sign: int = 1) -> str:
    if days == month_days:
        return str(sign * quantity)
    return str((Decimal(sign * quantity) * days / month_days).quantize(Decimal("0.0001")))


@dataclass
class _Billed:
    """One month of a subscription's billed service: the days (bits), the net amount billed
    for them (cents) and the quantity and unit price they were billed at."""

    days: int = 0
    amount_cents: int = 0
    quantity: int | None = None
    unit_price_cents: int | None = None


def _billed_months(billed: pd.DataFrame) -> dict[int, dict[Period, _Billed]]:
    """The billed coverage by subscription id and month (see :class:`BillingInputs`): a charge
    line adds its days, a return line (negative amount) removes them, in the order given."""
    out: dict[int, dict[Period, _Billed]] = {}
    for row in billed.itertuples(index=False):
        first, last = pd.Timestamp(row.period_from).date(), pd.Timestamp(row.period_to).date()
        month = Period.of(first)
        days = (last - first).days + 1
        entry = out.setdefault(int(row.subscription_id), {}).setdefault(month, _Billed())
        mask = _day_mask(first, last, month)
        quantity = Decimal(str(row.quantity))  # negative: days given back (their amount may round to 0)
        entry.days = entry.days | mask if quantity >= 0 else entry.days & ~mask
        entry.amount_cents += int(row.amount_cents)
        # the line's quantity is quantity x days / days in the month, to 4 decimals: the
        # subscription's (whole) quantity is found again by rounding back
        entry.quantity = abs(int((quantity * month.days / days).to_integral_value()))
        entry.unit_price_cents = int(row.unit_price_cents)
    return out


def _service_lines(sub, billed: dict[Period, _Billed], options: BillingOptions) -> list[dict]:
    """The lines of one subscription for a run: the days of its target coverage not yet billed,
    and the billed days outside its active range given back (see :class:`BillingOptions`)."""
    period = options.period
    start = pd.Timestamp(sub.start).date()
    end = date.max - timedelta(days=62) if pd.isna(sub.end) else pd.Timestamp(sub.end).date()
    target_end = (period.next() if options.advance else period).end - timedelta(days=1)
    if billed:
        since = min(period.start, min(billed).start)
    elif options.advance and start < period.start:
        since = period.next().start  # never billed here: billed before up to the period's end
    else:
        since = period.start
    first, last = max(start, since), min(end, target_end)
    months = set(billed)
    if first <= last:
        month = Period.of(first)
        while month.start <= last:
            months.add(month)
            month = month.next()
    gross_now = int(sub.quantity) * int(sub.unit_price_cents)
    lines = []
    for month in sorted(months, key=lambda m: m.start):
        done = billed.get(month, _Billed())
        active = _day_mask(start, end, month)
        wanted = _day_mask(first, last, month) if first <= last else 0
        quantity = done.quantity if done.quantity is not None else int(sub.quantity)
        unit_price = done.unit_price_cents if done.unit_price_cents is not None else int(sub.unit_price_cents)
        gross = quantity * unit_price
        # given back: billed days no longer active; each line brings the month's net amount to
        # what the days kept cost (so the month adds up to them exactly)
        kept, amount = done.days, done.amount_cents
        for a, b in _day_runs(done.days & ~active):
            kept &= ~_day_mask(month.start.replace(day=a), month.start.replace(day=b), month)
            after = _month_amount(gross, kept.bit_count(), month.days)
            lines.append(_service_line(sub, month, a, b, quantity, unit_price, after - amount, -1))
            amount = after
        # billed now: target days not billed yet, at today's price
        covered = kept
        for a, b in _day_runs(wanted & ~kept):
            before = _month_amount(gross_now, covered.bit_count(), month.days)
            covered |= _day_mask(month.start.replace(day=a), month.start.replace(day=b), month)
            after = _month_amount(gross_now, covered.bit_count(), month.days)
            lines.append(_service_line(sub, month, a, b, int(sub.quantity), int(sub.unit_price_cents),
                                       after - before, 1))
    return lines


def _service_line(sub, month: Period, first: int, last: int, quantity: int, unit_price: int, amount: int,
                  sign: int) -> dict:
    days = last - first + 1
    whole = days == month.days
    if sign > 0:
        description = sub.name
    else:
        when = (f"{first}" if days == 1 else f"{first}–{last}") + \
            f" {_MONTH_ABBREVIATIONS[month.month - 1]} {month.year}"
        description = f"{sub.name} – unused day{'' if days == 1 else 's'} {when} returned"
    return {
        "customer_id": int(sub.customer_id), "subscription_id": int(sub.subscription_id),
        "type": "recurring" if whole and sign > 0 else "prorated",
        "description": description, "product_code": sub.code,
        "quantity": _quantity_text(quantity, days, month.days, sign), "unit_price_cents": unit_price,
        "amount_cents": amount, "vat_rate": Decimal(str(sub.vat_rate)),
        "period_from": month.start.replace(day=first), "period_to": month.start.replace(day=last),
    }


def _subscription_items(inputs: BillingInputs, options: BillingOptions) -> pd.DataFrame:
    """Each subscription's days of service to bill now and billed days to give back (see
    :class:`BillingOptions` and rounding point 3 of the package docstring)."""
    subs = inputs.subscriptions
    if len(subs) == 0:
        return _empty(ITEM_COLUMNS)
    subs = subs.copy()
    if "subscription_id" not in subs:
        subs["subscription_id"] = np.arange(1, len(subs) + 1)
    subs = _unit_prices(subs, inputs.products)
    subs["start"] = pd.to_datetime(subs["start_date"])
    subs["end"] = pd.to_datetime(subs["end_date"])
    billed = _billed_months(inputs.billed[inputs.billed["subscription_id"].isin(subs["subscription_id"])])
    rows = [line for sub in subs.itertuples(index=False)
            for line in _service_lines(sub, billed.get(int(sub.subscription_id), {}), options)]
    if not rows:
        return _empty(ITEM_COLUMNS)
    parts = pd.DataFrame(rows)
    return parts.assign(zone_code=None, calls=None, seconds=None, one_off_id=None,
                        amount_cents=parts["amount_cents"].astype(np.int64))


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


def _consumption_items(inputs: BillingInputs, options: BillingOptions) -> pd.DataFrame:
    calls = inputs.consumption
    if len(calls) == 0:
        return _empty(ITEM_COLUMNS)
    calls = calls.sort_values(["customer_id", "zone_code"])
    return pd.DataFrame({
        "customer_id": calls["customer_id"].to_numpy(np.int64),
        "type": "consumption",
        "description": calls["zone_name"].fillna(calls["zone_code"]).astype(str).to_numpy(),
        "product_code": None,
        "zone_code": calls["zone_code"].astype(str).to_numpy(),
        "quantity": (calls["seconds"].astype(np.int64).map(lambda s: str((Decimal(int(s)) / 60).quantize(
            Decimal("0.0001"))))).to_numpy(),
        "unit_price_cents": None,
        "amount_cents": round_half_up(calls["amount_units"].to_numpy(np.int64), _UNITS_PER_CENT),
        "vat_rate": options.consumption_vat_rate,
        "period_from": options.period.start,
        "period_to": options.period.end - timedelta(days=1),
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
    usage = items.groupby("customer_id")[["calls", "seconds"]].sum(min_count=1)
    for column in ("calls", "seconds"):
        out[column] = pd.to_numeric(usage[column]).reindex(out.index).fillna(0).astype(np.int64)
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

    credit = inputs.credits.groupby("customer_id")["available_cents"].sum() if len(inputs.credits) else None
    available = (credit.reindex(invoices.index).fillna(0).astype(np.int64) if credit is not None
                 else pd.Series(0, index=invoices.index, dtype=np.int64))
    applied = np.minimum(available.clip(lower=0), invoices["total_incl_cents"].clip(lower=0))
    invoices["credit_applied_cents"] = applied
    invoices["net_payable_cents"] = invoices["total_incl_cents"] - applied
    previous = (inputs.previous.set_index("customer_id")["previous_amount_cents"] if len(inputs.previous)
                else pd.Series(dtype="Int64"))
    invoices["previous_amount_cents"] = previous.reindex(invoices.index).astype("Int64")
    invoices = invoices.reset_index()

    credit_rows = invoices[invoices["credit_applied_cents"] > 0]
    if len(credit_rows):
        credit_items = pd.DataFrame({
            "customer_id": credit_rows["customer_id"].to_numpy(np.int64), "type": "credit",
            "description": "Account credit applied", "product_code": None, "zone_code": None,
            "quantity": "1", "unit_price_cents": None,
            "amount_cents": -credit_rows["credit_applied_cents"].to_numpy(np.int64), "vat_rate": None,
            "period_from": None, "period_to": None, "calls": None, "seconds": None, "one_off_id": None,
            "subscription_id": None, "type_order": ITEM_TYPES.index("credit"), "vat_bp": None,
        })
        items = pd.concat([items, credit_items], ignore_index=True).sort_values(
            ["customer_id", "type_order"], kind="stable")
    items["position"] = items.groupby("customer_id").cumcount() + 1
    if "subscription_id" not in items:  # only the subscription lines have one
        items["subscription_id"] = None
    for column in ("unit_price_cents", "calls", "seconds", "one_off_id", "subscription_id"):
        items[column] = pd.array(pd.to_numeric(items[column]), dtype="Int64")
    invoices = invoices.sort_values("account_number", kind="stable").reset_index(drop=True)
    return Invoices(invoices[INVOICE_COLUMNS], items[ITEM_COLUMNS].reset_index(drop=True),
                    vat[VAT_COLUMNS].reset_index(drop=True))
