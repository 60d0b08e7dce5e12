"""Reference data (rate plans, catalogue, customers...) from the CSV files of ``data/README.md``.

A load checks every row first and stops at the first bad one with its file, line and problem;
then writes everything in one transaction. Rows are matched to stored ones by their natural key
and updated, or inserted; nothing is deleted, except that the time bands of a plan and the
intervals of a rate are replaced by those of the files that list them.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pandas as pd
from sqlalchemy import Connection, Engine, String, bindparam, delete, insert, select, update

from workbench.db import schema as s
from workbench.errors import InputError
from workbench.money import CENT_SCALE, PRICE_SCALE, RATE_SCALE, parse_amount
from workbench.phone_numbers import normalise
from workbench.text import strip_bidi

WEEKDAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}
TRUE, FALSE = {"yes", "true", "1", "y", "oui"}, {"no", "false", "0", "n", "non", ""}
ORDER = [
    "rate_plans", "zones", "destinations", "time_bands", "rates", "products", "allowances",
    "customers", "contacts", "lines", "subscriptions", "one_off_charges", "mandates",
]
COLUMNS = {
    "rate_plans": ["code", "name", "currency", "timezone", "holiday_country", "default_band"],
    "zones": ["plan", "code", "name"],
    "destinations": ["plan", "prefix", "name", "zone"],
    "time_bands": ["plan", "band", "weekdays", "start", "end"],
    "rates": ["plan", "zone", "band", "connect_fee", "charge_unanswered", "intervals"],
    "products": ["code", "name", "kind", "category", "price", "vat_rate"],
    "allowances": ["product", "zone", "minutes"],
    "customers": ["account_number", "name", "address_line1", "address_line2", "postcode", "city",
                  "country", "vat_number", "language", "payment_method", "billing_group",
                  "rate_plan"],
    "contacts": ["account_number", "name", "email", "invoice_recipient"],
    "lines": ["account_number", "number", "valid_from", "valid_to"],
    "subscriptions": ["account_number", "product", "quantity", "start_date", "end_date",
                      "price_override"],
    "one_off_charges": ["account_number", "product", "date", "quantity", "price_override",
                        "description"],
    "mandates": ["account_number", "reference", "signature_date", "iban", "bic", "status"],
}


def row_error(file: str, line: int | None, problem: str) -> InputError:
    """The error of a reference row (or file) that cannot be loaded; nothing of the load is stored."""
    return InputError(problem, source=file, line=line, code="bad_reference_row")


@dataclass
class _Row:
    file: str
    line: int
    values: dict

    def fail(self, problem: str):
        raise row_error(self.file, self.line, problem)

    def text(self, column: str, required: bool = True) -> str:
        value = strip_bidi(self.values.get(column) or "").strip()  # workbench.text: no direction override
        if required and not value:
            self.fail(f"{column} is empty")
        return value

    def choice(self, column: str, allowed: set[str]) -> str:
        value = self.text(column)
        if value not in allowed:
            self.fail(f"{column} {value!r} is not one of {sorted(allowed)}")
        return value

    def day(self, column: str, required: bool = True) -> date | None:
        value = self.text(column, required)
        if not value:
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            self.fail(f"{column} {value!r} is not a date (YYYY-MM-DD)")

    def amount(self, column: str, scale: int, required: bool = True) -> int | None:
        value = self.text(column, required)
        if not value:
            return None
        try:
            return parse_amount(value, scale)
        except InputError as exc:
            self.fail(f"{column}: {exc}")

    def integer(self, column: str, minimum: int = 0, required: bool = True) -> int | None:
        value = self.text(column, required)
        if not value:
            return None
        if not value.lstrip("-").isdigit() or int(value) < minimum:
            self.fail(f"{column} {value!r} is not a whole number >= {minimum}")
        return int(value)

    def flag(self, column: str) -> bool:
        value = self.text(column, required=False).lower()
        if value not in TRUE | FALSE:
            self.fail(f"{column} {value!r} is not yes or no")
        return value in TRUE

    def minute(self, column: str) -> int:
        value = self.text(column)
        hh, _, mm = value.partition(":")
        if not (hh.isdigit() and mm.isdigit() and len(mm) == 2) or not (
            0 <= int(hh) * 60 + int(mm) <= 1440 and int(mm) < 60
        ):
            self.fail(f"{column} {value!r} is not a time HH:MM")
        return int(hh) * 60 + int(mm)


def _rows(folder: Path, name: str) -> list[_Row]:
    """The rows of ``name``.csv with their physical line numbers (blank lines skipped)."""
    path = folder / f"{name}.csv"
    if not path.exists():
        return []
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh, strict=True)
            header = [c.strip() for c in next(reader, [])]
            missing = [c for c in COLUMNS[name] if c not in header]
            if missing:
                raise row_error(path.name, 1, f"missing columns {missing}")
            rows, previous = [], reader.line_num
            for fields in reader:
                line = previous + 1
                previous = reader.line_num
                if not fields or fields == [""]:
                    continue
                if len(fields) != len(header):
                    raise row_error(path.name, line, f"{len(fields)} fields where the header has {len(header)}")
                rows.append(_Row(path.name, line, dict(zip(header, fields, strict=True))))
            return rows
    except (UnicodeDecodeError, csv.Error) as exc:
        raise row_error(path.name, None, f"cannot be read as UTF-8 CSV ({exc})") from None


#: the currency the operator bills in: invoices, VAT and SEPA debits are in euros
BILLING_CURRENCY = "EUR"


def _currency(row: _Row) -> str:
    """A rate plan's currency: the billing currency, else the row is refused (its prices would be
    billed and debited as euros)."""
    currency = row.text("currency").upper()
    if currency != BILLING_CURRENCY:
        row.fail(f"currency {currency!r} is not the currency the operator bills in ({BILLING_CURRENCY}): "
                 "convert the plan's prices to it")
    return currency


#: the dearest per-minute rate accepted, in micro units (1,000 EUR/min): with call durations
#: below 2**31 s (the ``duration_s`` column), seconds x rate stays below 2**31 x 10**9 ~ 2.1e18,
#: and its double in :func:`workbench.money.round_half_up` below 4.3e18 < 2**63 ~ 9.2e18: the
#: integer pricing of any call cannot overflow int64
MAX_RATE_MICROS = 1_000 * RATE_SCALE


def _intervals(row: _Row) -> list[tuple[int, int, int]]:
    """``"0:0.40/60 60:0.20/10"`` -> [(0, 400000, 60), (60, 200000, 10)]: per-minute prices in
    micro units (``RATE_SCALE``), exact to 6 decimals; a finer price is refused, naming it."""
    out = []
    for part in row.text("intervals").split():
        try:
            start, rest = part.split(":")
            price, increment = rest.split("/")
            start_s, increment_s = int(start), int(increment)
            if not price.strip():
                raise ValueError(price)
        except ValueError:
            row.fail(f"intervals: {part!r} is not FROM:PRICE/INCREMENT, e.g. 0:0.40/60")
        try:
            micros = parse_amount(price, RATE_SCALE)
        except InputError:
            exact = _decimal_or_none(price)
            if exact is not None:
                row.fail(f"intervals: {part!r}: price {price.strip()} has more than 6 decimals "
                         "(per-minute prices are exact to 1/1,000,000)")
            row.fail(f"intervals: {part!r}: price {price.strip()!r} is not an amount")
        if micros < 0 or micros > MAX_RATE_MICROS:
            row.fail(f"intervals: {part!r}: price {price.strip()} per minute is not between 0 and "
                     f"{MAX_RATE_MICROS // RATE_SCALE}")
        item = (start_s, micros, increment_s)
        if item[2] <= 0:
            row.fail(f"interval {part!r} has a non-positive increment")
        out.append(item)
    starts = [i[0] for i in out]
    if not out or starts[0] != 0 or starts != sorted(set(starts)):
        row.fail("intervals must start at second 0 and go up")
    # the intervals tile the call: an interval's increments end where the next one starts, so
    # no second is charged by two intervals (0:0.40/60 30:0.20/1 would charge seconds 30-59 twice)
    for (start, _, increment), (following, _, _) in zip(out, out[1:], strict=False):
        if (following - start) % increment:
            row.fail(f"interval from second {start} in steps of {increment} s does not end where the next one "
                     f"starts (second {following}): its length must be a multiple of its increment")
    return out


def _decimal_or_none(text: str) -> Decimal | None:
    """``text`` as a finite ``Decimal``, or None when it is not a number."""
    try:
        value = Decimal(text.strip().replace(",", "."))
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def _check_records(model, key_columns: tuple[str, ...], records: list[dict], source: list[_Row]) -> None:
    """Refuse a text longer than its column and a natural key given twice, naming the row."""
    limits = {c.name: c.type.length for c in model.__table__.columns
              if isinstance(c.type, String) and c.type.length}
    seen: dict[tuple, int] = {}
    for rec, row in zip(records, source, strict=True):
        for column, limit in limits.items():
            value = rec.get(column)
            if isinstance(value, str) and len(value) > limit:
                row.fail(f"{column} is {len(value)} characters long, more than {limit}")
        key = tuple(rec[k] for k in key_columns)
        if key in seen:
            row.fail(f"the same {'/'.join(key_columns)} as line {seen[key]}")
        seen[key] = row.line


class _Loader:
    def __init__(self, connection: Connection):
        self.c = connection
        self.counts: dict[str, int] = {}

    def ids(self, model, *key_columns) -> dict:
        cols = [getattr(model, k) for k in key_columns]
        rows = self.c.execute(select(model.id, *cols)).all()
        return {tuple(r[1:]) if len(cols) > 1 else r[1]: r[0] for r in rows}

    def upsert(self, model, key_columns: tuple[str, ...], records: list[dict], source: list[_Row]) -> None:
        """Insert or update ``records`` (made from the rows ``source``, in the same order)."""
        _check_records(model, key_columns, records, source)
        existing = self.ids(model, *key_columns)
        new, changed = [], []
        for rec in records:
            key = tuple(rec[k] for k in key_columns) if len(key_columns) > 1 else rec[key_columns[0]]
            if key in existing:
                changed.append({**{f"b_{k}": v for k, v in rec.items()}, "b_id": existing[key]})
            else:
                new.append(rec)
        if new:
            self.c.execute(insert(model), new)
        if changed:
            table = model.__table__
            stmt = update(table).where(table.c.id == bindparam("b_id")).values(
                {k: bindparam(f"b_{k}") for k in records[0]}
            )
            self.c.execute(stmt, changed)
        self.counts[model.__tablename__] = self.counts.get(model.__tablename__, 0) + len(records)


def load_reference(engine: Engine, folder: str | Path, home_country_code: str = "33") -> dict[str, int]:
    """Load every reference CSV present in ``folder``; returns rows loaded per table."""
    folder = Path(folder)
    rows = {name: _rows(folder, name) for name in ORDER}
    if not any(rows.values()):
        raise row_error(str(folder), None, "no reference CSV file found")
    with engine.begin() as connection:
        loader = _Loader(connection)
        _load_plans(loader, rows)
        _load_catalogue(loader, rows)
        _load_customers(loader, rows, home_country_code)
        return loader.counts


def _ref(row: _Row, mapping: dict, column: str, what: str, key=None):
    value = row.text(column)
    found = mapping.get(key if key is not None else value)
    if found is None:
        row.fail(f"{what} {value!r} is unknown")
    return found


def _load_plans(loader: _Loader, rows: dict) -> None:
    loader.upsert(s.RatePlan, ("code",), [
        {"code": r.text("code"), "name": r.text("name"), "currency": _currency(r),
         "timezone": r.text("timezone"), "holiday_country": r.text("holiday_country"),
         "default_band": r.text("default_band")} for r in rows["rate_plans"]
    ], rows["rate_plans"])
    plans = loader.ids(s.RatePlan, "code")
    loader.upsert(s.Zone, ("plan_id", "code"), [
        {"plan_id": _ref(r, plans, "plan", "plan"), "code": r.text("code"), "name": r.text("name")}
        for r in rows["zones"]
    ], rows["zones"])
    zones = set(loader.ids(s.Zone, "plan_id", "code"))

    def zone(r: _Row, plan_id: int) -> str:
        code = r.text("zone")
        if (plan_id, code) not in zones:
            r.fail(f"zone {code!r} is not a zone of plan {r.text('plan')!r}")
        return code

    dest = []
    for r in rows["destinations"]:
        pid = _ref(r, plans, "plan", "plan")
        prefix = r.text("prefix").lstrip("+")
        if not prefix.isdigit() or prefix.startswith("0") or len(prefix) > 15:
            r.fail(f"prefix {prefix!r} is not E.164 digits (e.g. 33, 447)")
        dest.append({"plan_id": pid, "prefix": prefix, "name": r.text("name"), "zone_code": zone(r, pid)})
    loader.upsert(s.Destination, ("plan_id", "prefix"), dest, rows["destinations"])

    bands = []
    for r in rows["time_bands"]:
        pid = _ref(r, plans, "plan", "plan")
        days = []
        for d in r.text("weekdays").lower().replace(" ", "").split(","):
            if d in WEEKDAYS or (d.isdigit() and int(d) < 7):
                days.append(WEEKDAYS.get(d, int(d) if d.isdigit() else 0))
            else:
                r.fail(f"weekday {d!r} is not mon..sun or 0..6")
        start, end = r.minute("start"), r.minute("end")
        if start >= end:
            r.fail("start must be before end")
        bands.append({"plan_id": pid, "band": r.text("band"), "weekdays": ",".join(map(str, days)),
                      "start_minute": start, "end_minute": end})
    for pid in {b["plan_id"] for b in bands}:
        loader.c.execute(delete(s.TimeBand).where(s.TimeBand.plan_id == pid))
    if bands:
        loader.c.execute(insert(s.TimeBand), bands)
        loader.counts["time_bands"] = len(bands)

    rates, intervals = [], {}
    for r in rows["rates"]:
        pid = _ref(r, plans, "plan", "plan")
        rec = {"plan_id": pid, "zone_code": zone(r, pid), "band": r.text("band"),
               "connect_fee_units": r.amount("connect_fee", PRICE_SCALE, required=False) or 0,
               "charge_unanswered": r.flag("charge_unanswered")}
        rates.append(rec)
        intervals[(pid, rec["zone_code"], rec["band"])] = _intervals(r)
    loader.upsert(s.Rate, ("plan_id", "zone_code", "band"), rates, rows["rates"])
    rate_ids = loader.ids(s.Rate, "plan_id", "zone_code", "band")
    for key, items in intervals.items():
        rid = rate_ids[key]
        loader.c.execute(delete(s.RateInterval).where(s.RateInterval.rate_id == rid))
        loader.c.execute(insert(s.RateInterval), [
            {"rate_id": rid, "from_second": a, "price_per_minute_micros": p, "increment_s": i}
            for a, p, i in items
        ])


def _load_catalogue(loader: _Loader, rows: dict) -> None:
    products = []
    for r in rows["products"]:
        try:
            vat = Decimal(r.text("vat_rate"))
        except InvalidOperation:
            r.fail(f"vat_rate {r.text('vat_rate')!r} is not a percentage")
        if not Decimal(0) <= vat <= Decimal(100):
            r.fail(f"vat_rate {vat} is not between 0 and 100")
        products.append({"code": r.text("code"), "name": r.text("name"),
                         "kind": r.choice("kind", {"one_off", "recurring"}),
                         "category": r.text("category"), "price_cents": r.amount("price", CENT_SCALE),
                         "vat_rate": vat})
    loader.upsert(s.Product, ("code",), products, rows["products"])
    product_ids = loader.ids(s.Product, "code")
    loader.upsert(s.Allowance, ("product_id", "zone_code"), [
        {"product_id": _ref(r, product_ids, "product", "product"), "zone_code": r.text("zone"),
         "seconds": None if not r.text("minutes", False) else r.integer("minutes", 1) * 60}
        for r in rows["allowances"]
    ], rows["allowances"])


def _load_customers(loader: _Loader, rows: dict, home_country_code: str) -> None:
    plans = loader.ids(s.RatePlan, "code")
    loader.upsert(s.Customer, ("account_number",), [
        {"account_number": r.text("account_number"), "name": r.text("name"),
         "address_line1": r.text("address_line1", False), "address_line2": r.text("address_line2", False),
         "postcode": r.text("postcode", False), "city": r.text("city", False),
         "country": r.text("country", False) or "FR", "vat_number": r.text("vat_number", False) or None,
         "language": r.choice("language", {"fr", "en"}),
         "payment_method": r.choice("payment_method", {"direct_debit", "transfer"}),
         "billing_group": r.text("billing_group", False) or "default",
         "rate_plan_id": _ref(r, plans, "rate_plan", "rate plan")}
        for r in rows["customers"]
    ], rows["customers"])
    customers = loader.ids(s.Customer, "account_number")
    products = loader.ids(s.Product, "code")

    def customer(r: _Row) -> int:
        return _ref(r, customers, "account_number", "account")

    contacts = []
    for r in rows["contacts"]:
        email = r.text("email")
        if email.count("@") != 1 or "." not in email.split("@")[1] or any(c in email for c in " <>,;"):
            r.fail(f"email {email!r} is not an email address")
        contacts.append({"customer_id": customer(r), "name": r.text("name", False), "email": email,
                         "invoice_recipient": r.flag("invoice_recipient")})
    loader.upsert(s.Contact, ("customer_id", "email"), contacts, rows["contacts"])

    lines = []
    normalised = normalise(pd.Series([r.text("number", False) for r in rows["lines"]], dtype="string"),
                           home_country_code)
    for r, number in zip(rows["lines"], normalised.tolist(), strict=True):
        r.text("number")
        if number is None or pd.isna(number):
            r.fail(f"number {r.text('number')!r} is not a phone number")
        start, end = r.day("valid_from"), r.day("valid_to", False)
        if end is not None and end < start:
            r.fail("valid_to is before valid_from")
        lines.append({"customer_id": customer(r), "number": number, "valid_from": start, "valid_to": end})
    loader.upsert(s.Line, ("customer_id", "number", "valid_from"), lines, rows["lines"])

    subs = []
    for r in rows["subscriptions"]:
        start, end = r.day("start_date"), r.day("end_date", False)
        if end is not None and end < start:
            r.fail("end_date is before start_date")
        subs.append({"customer_id": customer(r), "product_id": _ref(r, products, "product", "product"),
                     "quantity": r.integer("quantity", 1), "start_date": start, "end_date": end,
                     "price_override_cents": r.amount("price_override", CENT_SCALE, required=False)})
    loader.upsert(s.Subscription, ("customer_id", "product_id", "start_date"), subs, rows["subscriptions"])

    loader.upsert(s.OneOffCharge, ("customer_id", "product_id", "charge_date", "description"), [
        {"customer_id": customer(r), "product_id": _ref(r, products, "product", "product"),
         "charge_date": r.day("date"), "quantity": r.integer("quantity", 1),
         "price_override_cents": r.amount("price_override", CENT_SCALE, required=False),
         "description": r.text("description", False)}
        for r in rows["one_off_charges"]
    ], rows["one_off_charges"])
    loader.upsert(s.Mandate, ("reference",), [
        {"customer_id": customer(r), "reference": r.text("reference"),
         "signature_date": r.day("signature_date"), "iban": r.text("iban").replace(" ", "").upper(),
         "bic": r.text("bic").upper(), "status": r.choice("status", {"active", "revoked"})}
        for r in rows["mandates"]
    ], rows["mandates"])
