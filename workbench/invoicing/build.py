"""Building invoices from frames (see the package docstring for the rounding points)."""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache

import numpy as np
import pandas as pd

from workbench.errors import InputError
from workbench.invoicing.vat import STANDARD, customer_categories, exemption_reason, item_category
from workbench.money import integer_series, minutes, round_half_up
from workbench.period import Period

#: invoice item types, in the order they are shown
ITEM_TYPES = ["one_off", "recurring", "prorated", "consumption", "credit"]
ITEM_COLUMNS = [
    "customer_id", "position", "type", "description", "product_code", "zone_code", "quantity",
    "unit_price_cents", "amount_cents", "vat_rate", "period_from", "period_to", "calls", "seconds",
    "one_off_id", "subscription_id", "vat_category",
]
INVOICE_COLUMNS = [
    "customer_id", "account_number", "name", "total_excl_cents", "total_vat_cents", "total_incl_cents",
    "credit_applied_cents", "net_payable_cents", "previous_amount_cents", "one_off_cents",
    "recurring_cents", "prorated_cents", "consumption_cents", "calls", "seconds", "vat_category",
    "vat_on_debits",
]
VAT_COLUMNS = ["customer_id", "vat_rate", "base_cents", "vat_cents", "vat_category", "exemption_reason_code"]
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
    """How a period is billed: recurring (subscription) items in arrears by default, in advance
    with ``advance``.

    Each day of a subscription's service is billed once, whatever the sequence of runs in
    advance and in arrears, credit notes and re-invoicing. A run's **target** for a subscription
    is its active days (``start_date`` to ``end_date``) up to the end of the period (arrears) or
    of the next month (advance), from the start of the customer's **service history**
    (``BillingInputs.history``: the first day of subscription service any issued invoice of the
    workbench billed to the customer, a reopened one included; for a customer never billed a
    subscription, the first such day of any customer, ``BillingInputs.history_from``). With no
    history at all (the workbench's first run), from the period, or, in advance and started
    before the period, from the next month (the period was billed before, in advance). So a
    subscription entered after its first days were invoiced is caught up from its start, but
    never before the workbench's history (an installed-base subscription started years ago is
    not billed back to its start, nor a month re-run in arrears after it was billed before in
    advance), and the days billed depend on the runs made,
    not on their order. The run bills the target's days not yet billed (``BillingInputs.billed``) and
    gives back, as negative prorated lines, the billed days no longer active (an end date
    loaded after the days were billed, a start moved later). Every line stays within one
    calendar month (rounding point 3 of the package docstring)."""

    period: Period
    invoice_date: date
    due_date: date
    advance: bool = False
    consumption_vat_rate: Decimal = Decimal("20")
    #: the operator opted for paying VAT on debits (CGI art. 269-2-c): a mention on its invoices
    vat_on_debits: bool = False


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
    * ``consumption``: unbilled rated calls summed by customer, zone and call period: customer_id,
      zone_code, zone_name, period (``YYYY-MM``; earlier than the billed period for late calls;
      absent = the billed period), calls, seconds, amount_units;
    * ``credits``: customer_id, available_cents (account credit not yet applied);
    * ``previous``: customer_id, previous_amount_cents (the latest production invoice's total);
    * ``billed``: the subscription lines already billed (issued invoices of other periods that
      no reopening credit note cancels), in the order they were issued: subscription_id,
      period_from, period_to (within one month), quantity (the line's, e.g. ``0.7097`` for 22
      of 31 days of 1; negative for days given back), unit_price_cents, amount_cents;
    * ``history``: customer_id, first_day (``datetime.date``): the first day of subscription
      service an issued invoice billed to the customer, reopened invoices included (absent: none);
      ``history_from``: the first such day of any customer, ``None`` when the workbench has
      billed none (see :class:`BillingOptions` for how both bound a run's target).
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
    history: pd.DataFrame = field(default_factory=lambda: _empty(["customer_id", "first_day"]))
    history_from: date | None = None


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


_MONTH_ABBREVIATIONS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


@lru_cache(maxsize=4096)
def _month(index: int) -> tuple[date, date, int]:
    """Month number ``index`` (year x 12 + month - 1): its first day, last day and days."""
    year, month = divmod(index, 12)
    days = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, 1), date(year, month + 1, days), days


def _month_index(day: date) -> int:
    return day.year * 12 + day.month - 1


def _month_amount(gross: int, days: int, month_days: int) -> int:
    """What a month of a subscription costs for ``days`` of its ``month_days`` days, in cents:
    ``gross`` (quantity x unit price) for the whole month, else ``gross x days / month_days``
    rounded half up to the cent (rounding point 3); 0 for no day."""
    if days == month_days:
        return gross
    return round_half_up(gross * days, month_days) if days else 0


def _day_mask(first: date, last: date, month: int) -> int:
    """The days ``first`` to ``last`` (inclusive) that fall in month ``month``, as bits (bit 0 =
    day 1)."""
    m_first, m_last, _ = _month(month)
    if first > m_last or last < m_first or first > last:  # (a start moved after the end: no day)
        return 0
    a = first.day if first >= m_first else 1
    b = last.day if last <= m_last else m_last.day
    return ((1 << (b - a + 1)) - 1) << (a - 1)


def _day_runs(mask: int) -> list[tuple[int, int]]:
    """The runs of consecutive days of a mask, as (first day, last day), in order."""
    runs, day = [], 1
    while mask:
        skip = (mask & -mask).bit_length() - 1  # the days before the next run
        mask >>= skip
        day += skip
        length = (~mask & (mask + 1)).bit_length() - 1  # the run's days
        runs.append((day, day + length - 1))
        mask >>= length
        day += length
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
    quantity: int = 0
    unit_price_cents: int = 0


def _billed_months(billed: pd.DataFrame, subs: pd.DataFrame) -> tuple[dict, dict, dict]:
    """The billed coverage (see :class:`BillingInputs`) of subscriptions ``subs`` (with
    subscription_id, start and end), by subscription id: the first month billed (month index);
    the months billed whole by one line while active all month (nothing to do there); the other
    months billed, as :class:`_Billed`: a charge line adds its days, a return line (negative
    quantity) removes them, in the order given."""
    if billed.empty:
        return {}, {}, {}
    first, last = pd.to_datetime(billed["period_from"]), pd.to_datetime(billed["period_to"])
    ids = billed["subscription_id"].astype(np.int64).to_numpy()
    month = (first.dt.year * 12 + first.dt.month - 1).to_numpy(np.int64)
    a, b, month_days = first.dt.day.to_numpy(), last.dt.day.to_numpy(), first.dt.days_in_month.to_numpy()
    frame = pd.DataFrame({"sid": ids, "month": month})
    earliest = frame.groupby("sid")["month"].min().to_dict()
    quantity = billed["quantity"].astype(str).to_numpy(object)
    charge = ~np.char.startswith(quantity.astype(str), "-")  # returns: negative quantity
    amount, unit_price = billed["amount_cents"].to_numpy(np.int64), billed["unit_price_cents"].to_numpy(np.int64)
    alone = ~frame.duplicated(["sid", "month"], keep=False).to_numpy()
    span = subs.set_index("subscription_id")[["start", "end"]].reindex(ids)
    active_all_month = ((span["start"] <= first.dt.to_period("M").dt.start_time.to_numpy()).to_numpy()
                        & (span["end"].isna() | (span["end"] >= last.to_numpy())).to_numpy())
    whole = alone & charge & (a == 1) & (b == month_days) & active_all_month
    full: dict[int, set[int]] = {}
    for sid, m in zip(ids[whole].tolist(), month[whole].tolist(), strict=True):
        full.setdefault(sid, set()).add(m)
    partial: dict[int, dict[int, _Billed]] = {}
    rest = np.flatnonzero(~whole)
    for i in rest.tolist():
        entry = partial.setdefault(int(ids[i]), {}).setdefault(int(month[i]), _Billed())
        mask = ((1 << int(b[i] - a[i] + 1)) - 1) << int(a[i] - 1)
        entry.days = entry.days | mask if charge[i] else entry.days & ~mask
        entry.amount_cents += int(amount[i])
        # the line's quantity is quantity x days / days in the month, to 4 decimals: the
        # subscription's (whole) quantity is found again by rounding back
        entry.quantity = abs(int((Decimal(quantity[i]) * int(month_days[i]) / int(b[i] - a[i] + 1))
                                 .to_integral_value()))
        entry.unit_price_cents = int(unit_price[i])
    return earliest, full, partial


def _service_lines(start: date, end: date | None, quantity: int, unit_price: int, history: date | None,
                   earliest: int | None, full: set[int], billed: dict[int, _Billed],
                   run: tuple[date, date, date, bool]) -> list[tuple]:
    """The lines of one subscription for a run (``run``: the period's first day, the next
    month's, the target's last day, in advance or not; ``history``: its customer's service
    history start, see :class:`BillingOptions`; ``earliest``, ``full``, ``billed``: its coverage, see
    :func:`_billed_months`): the days of its target not yet billed, and the billed
    days outside its active range given back (see :class:`BillingOptions`), as tuples (month
    index, first day, last day, quantity, unit price, amount, sign)."""
    period_start, next_start, target_end, advance = run
    end = end or date.max
    known = [d for d in (history, None if earliest is None else _month(earliest)[0]) if d is not None]
    if known:
        since = min(known)  # the days since the service history starts, caught up; none before
    elif advance and start < period_start:
        since = next_start  # no history: in advance, the period was billed before
    else:
        since = period_start
    first, last = max(start, since), min(end, target_end)
    months = set(billed)
    if first <= last:
        months.update(range(_month_index(first), _month_index(last) + 1))
    lines = []
    months -= full
    for month in sorted(months):
        done = billed.get(month)
        wanted = _day_mask(first, last, month) if first <= last else 0
        month_days = _month(month)[2]
        kept = 0
        if done is not None:
            # given back: billed days no longer active; each line brings the month's net amount
            # to what the days kept cost (so the month adds up to them exactly)
            kept, amount = done.days, done.amount_cents
            gross = done.quantity * done.unit_price_cents
            for a, b in _day_runs(done.days & ~_day_mask(start, end, month)):
                kept &= ~(((1 << (b - a + 1)) - 1) << (a - 1))
                after = _month_amount(gross, kept.bit_count(), month_days)
                lines.append((month, a, b, done.quantity, done.unit_price_cents, after - amount, -1))
                amount = after
        # billed now: target days not billed yet, at today's price
        gross, covered = quantity * unit_price, kept
        for a, b in _day_runs(wanted & ~kept):
            before = _month_amount(gross, covered.bit_count(), month_days)
            covered |= ((1 << (b - a + 1)) - 1) << (a - 1)
            lines.append((month, a, b, quantity, unit_price,
                          _month_amount(gross, covered.bit_count(), month_days) - before, 1))
    return lines


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
    subs["subscription_id"] = ids = subs["subscription_id"].astype(np.int64)
    subs["start"], subs["end"] = pd.to_datetime(subs["start_date"]), pd.to_datetime(subs["end_date"])
    earliest, full, billed = _billed_months(inputs.billed[inputs.billed["subscription_id"].isin(ids)], subs)
    starts = subs["start"].dt.date.tolist()
    ends = [None if pd.isna(e) else e for e in subs["end"].dt.date.tolist()]
    period = options.period
    target_end = (period.next() if options.advance else period).end - timedelta(days=1)
    run = (period.start, period.end, target_end, options.advance)
    rows, of = [], []
    history = {int(c): pd.Timestamp(d).date() for c, d in zip(
        inputs.history["customer_id"].tolist(), inputs.history["first_day"].tolist(), strict=True)}
    for i, (sid, customer, start, end, quantity, unit_price) in enumerate(zip(
            ids.tolist(), subs["customer_id"].astype(np.int64).tolist(), starts, ends, subs["quantity"].tolist(),
            subs["unit_price_cents"].tolist(), strict=True)):
        found = _service_lines(start, end, int(quantity), int(unit_price), history.get(customer, inputs.history_from),
                               earliest.get(sid), full.get(sid, set()), billed.get(sid, {}), run)
        rows += found
        of += [i] * len(found)
    if not rows:
        return _empty(ITEM_COLUMNS)
    month, first, last, quantity, unit_price, amount, sign = (list(c) for c in zip(*rows, strict=True))
    at = subs.iloc[of]
    starts_of = [_month(m)[0] for m in month]
    days = [b - a + 1 for a, b in zip(first, last, strict=True)]
    month_days = [_month(m)[2] for m in month]
    names = at["name"].astype(str).tolist()
    description = [
        name if s > 0 else f"{name} – unused day{'' if d == 1 else 's'} {a if d == 1 else f'{a}–{b}'} "
                           f"{_MONTH_ABBREVIATIONS[m0.month - 1]} {m0.year} returned"
        for name, s, d, a, b, m0 in zip(names, sign, days, first, last, starts_of, strict=True)]
    vat = {r: Decimal(str(r)) for r in set(at["vat_rate"].astype(str))}
    return pd.DataFrame({
        "customer_id": at["customer_id"].to_numpy(np.int64),
        "subscription_id": at["subscription_id"].to_numpy(np.int64),
        "type": ["recurring" if s > 0 and d == n else "prorated" for s, d, n in zip(sign, days, month_days,
                                                                                      strict=True)],
        "description": description, "product_code": at["code"].to_numpy(), "zone_code": None,
        "quantity": [_quantity_text(q, d, n, s) for q, d, n, s in zip(quantity, days, month_days, sign,
                                                                       strict=True)],
        "unit_price_cents": unit_price, "amount_cents": np.array(amount, dtype=np.int64),
        "vat_rate": [vat[r] for r in at["vat_rate"].astype(str)],
        "period_from": [m0.replace(day=a) for m0, a in zip(starts_of, first, strict=True)],
        "period_to": [m0.replace(day=b) for m0, b in zip(starts_of, last, strict=True)],
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

    # the invoice's VAT category (workbench.invoicing.vat): reverse charge (AE) and outside the
    # scope (O) bear no French VAT, their lines are at rate 0
    categories = customer_categories(inputs.customers)
    invoice_category = items["customer_id"].map(categories).fillna(STANDARD)
    items["vat_bp"] = items["vat_rate"].map(vat_basis_points).where(invoice_category == STANDARD, 0)
    items["vat_rate"] = items["vat_rate"].where(invoice_category == STANDARD, Decimal(0))
    items["vat_category"] = [item_category(c, bp) for c, bp in zip(invoice_category, items["vat_bp"], strict=True)]
    # VAT per invoice, rate and category, on the sum of that rate's lines
    vat = items.groupby(["customer_id", "vat_bp", "vat_category"], as_index=False)["amount_cents"].sum()
    vat["vat_cents"] = round_half_up(vat["amount_cents"].to_numpy(np.int64) * vat["vat_bp"].to_numpy(),
                                         10_000)
    vat = vat.rename(columns={"amount_cents": "base_cents"})
    vat["vat_rate"] = vat["vat_bp"].map(lambda bp: Decimal(int(bp)) / 100)
    vat["exemption_reason_code"] = pd.Series([exemption_reason(c)[0] for c in vat["vat_category"]], index=vat.index,
                                             dtype=object)

    by_type = item_totals(items)
    invoices = inputs.customers[inputs.customers["customer_id"].isin(by_type.index)][
        ["customer_id", "account_number", "name"]].set_index("customer_id")
    for column in ("one_off_cents", "recurring_cents", "prorated_cents", "consumption_cents", "calls", "seconds"):
        invoices[column] = by_type[column]
    totals = vat.groupby("customer_id")[["base_cents", "vat_cents"]].sum()
    invoices["total_excl_cents"] = totals["base_cents"]
    invoices["total_vat_cents"] = totals["vat_cents"]
    invoices["total_incl_cents"] = invoices["total_excl_cents"] + invoices["total_vat_cents"]
    invoices["vat_category"] = invoices.index.map(categories).fillna(STANDARD)
    invoices["vat_on_debits"] = bool(options.vat_on_debits)

    credit = (integer_series(inputs.credits["available_cents"]).groupby(inputs.credits["customer_id"].to_numpy())
              .sum() if len(inputs.credits) else None)
    available = (credit.reindex(invoices.index).fillna(0).astype(np.int64) if credit is not None
                 else pd.Series(0, index=invoices.index, dtype=np.int64))
    applied = np.minimum(available.clip(lower=0), invoices["total_incl_cents"].clip(lower=0))
    invoices["credit_applied_cents"] = applied
    # a negative total (days given back) leaves nothing payable; production makes it account credit
    invoices["net_payable_cents"] = (invoices["total_incl_cents"] - applied).clip(lower=0)
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
            "subscription_id": None, "type_order": ITEM_TYPES.index("credit"), "vat_bp": None,
            "vat_category": None,
        })
        items = pd.concat([items, credit_items], ignore_index=True).sort_values(
            ["customer_id", "type_order"], kind="stable")
    items["position"] = items.groupby("customer_id").cumcount() + 1
    if "subscription_id" not in items:  # only the subscription lines have one
        items["subscription_id"] = None
    for column in ("unit_price_cents", "calls", "seconds", "one_off_id", "subscription_id"):
        items[column] = integer_series(items[column])
    invoices = invoices.sort_values("account_number", kind="stable").reset_index(drop=True)
    return Invoices(invoices[INVOICE_COLUMNS], items[ITEM_COLUMNS].reset_index(drop=True),
                    vat[VAT_COLUMNS].reset_index(drop=True))
