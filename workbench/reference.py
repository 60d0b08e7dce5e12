"""Reference data (rate plans, catalogue, customers...) from the CSV files of ``data/README.md``.

A load checks every row of every file and reports all the problems together: one
:class:`~workbench.errors.InputError` whose ``problems`` name each bad row (file, line, column,
reason; a single problem is the error itself, with its ``source``, ``line`` and ``column``),
and nothing of the load is stored (one transaction). A row that refers to a row refused in the
same load (a zone of a refused plan) is not checked further: its own problems show once that row
is fixed. Rows are matched to stored ones by their natural key and updated, or inserted; nothing
is deleted, except that the time bands of a plan and the intervals of a rate are replaced by
those of the files that list them.

What is checked, besides the format of each value (dates, amounts, yes/no, known codes):

* rate plans: the currency is EUR; the time zone is one of the IANA database
  (:mod:`zoneinfo`, e.g. ``Europe/Paris``); the holiday country is one that :mod:`holidays` knows;
* rates: per-minute prices and connect fees from 0 to 1,000 EUR (:data:`MAX_RATE_MICROS`,
  :data:`MAX_CONNECT_FEE_UNITS`), exact to 1/1,000,000 and 1/10,000;
* products: a price from 0 to 1,000,000.00 EUR (:data:`MAX_PRICE_CENTS`: a credit is a credit
  note, not a product); a VAT rate of the French list
  (:data:`~workbench.invoicing.build.FRENCH_VAT_RATES`, 0 included);
* customers: a VAT number, when given, valid for its country (python-stdnum, ``stdnum.eu.vat``:
  check digits included);
* lines: a number held by two customers on overlapping dates (in the file, or the file and
  the stored lines) is refused, naming the other holder;
* subscriptions and one-off charges: a quantity from 1 to 100,000 (:data:`MAX_QUANTITY`), a
  price override from 0 to 1,000,000.00 EUR;
* mandates: the checks of the SEPA file (:func:`workbench.sepa.mandate_problems`): the IBAN
  (schwifty: length, check digits, national structure, SEPA zone), the BIC (8 or 11 characters of
  the SWIFT structure), the reference (a SEPA identifier), and a signature date not after the
  day of the load (the operator's date).
"""

from __future__ import annotations

import csv
import shutil
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
import pandas as pd
from sqlalchemy import Connection, Engine, String, bindparam, delete, insert, select, update
from stdnum.eu import vat as eu_vat
from stdnum.exceptions import ValidationError
from stdnum.util import get_cc_module

from workbench.db import schema as s
from workbench.db.engine import make_engine
from workbench.errors import InputError, Problem
from workbench.invoicing.build import FRENCH_VAT_RATES, vat_basis_points
from workbench.money import CENT_SCALE, PRICE_SCALE, RATE_SCALE, parse_amount
from workbench.period import local_date
from workbench.phone_numbers import normalise
from workbench.rating import RatePlan
from workbench.reads.calls import rate_plans
from workbench.sepa import mandate_problems
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


#: the most units of a subscription or a one-off charge
MAX_QUANTITY = 100_000
#: the dearest product price or price override, in cents (1,000,000.00 EUR): with at most
#: :data:`MAX_QUANTITY` units, an invoice line stays below 10**13 cents and its VAT in basis
#: points below 10**13 x 2,000 = 2 x 10**16 < 2**63: no integer overflow
MAX_PRICE_CENTS = 1_000_000 * CENT_SCALE
#: the dearest connect fee, in units of 1/10,000 (1,000 EUR a call)
MAX_CONNECT_FEE_UNITS = 1_000 * PRICE_SCALE


def row_error(file: str, line: int | None, problem: str, column: str | None = None,
              code: str = "bad_reference_row") -> InputError:
    """The error of a reference row (or file) that cannot be loaded; nothing of the load is stored."""
    return InputError(problem, source=file, line=line, column=column, code=code)


@dataclass(frozen=True)
class _Issue:
    """A problem of a reference file: where (file, line, column) and what (code, message)."""

    file: str
    line: int | None
    column: str | None
    code: str
    message: str

    @property
    def problem(self) -> Problem:
        key = self.line if self.column is None else (
            f"line {self.line}, column {self.column}" if self.line is not None else f"column {self.column}")
        return Problem(self.file, key, self.code, self.message)

    @property
    def error(self) -> InputError:
        return row_error(self.file, self.line, self.message, self.column, self.code)


class _Refused(Exception):
    """A row's problem that stops its checks (the problem is in the row's ``issues``)."""


class _Skip(Exception):
    """A row that refers to a row refused in the same load: not checked further."""


@dataclass
class _Row:
    file: str
    line: int
    values: dict
    issues: list[_Issue] = field(default_factory=list)

    def note(self, problem: str, column: str | None = None, code: str = "bad_reference_row") -> None:
        """Record a problem of the row and go on checking it (the row is refused)."""
        self.issues.append(_Issue(self.file, self.line, column, code, problem))

    def fail(self, problem: str, column: str | None = None, code: str = "bad_reference_row"):
        """Record a problem of the row and stop checking it."""
        self.note(problem, column, code)
        raise _Refused

    def text(self, column: str, required: bool = True) -> str:
        value = strip_bidi(self.values.get(column) or "").strip()  # workbench.text: no direction override
        if required and not value:
            self.fail(f"{column} is empty", column, "missing_value")
        return value

    def choice(self, column: str, allowed: set[str]) -> str:
        value = self.text(column)
        if value not in allowed:
            self.fail(f"{column} {value!r} is not one of {sorted(allowed)}", column)
        return value

    def day(self, column: str, required: bool = True) -> date | None:
        value = self.text(column, required)
        if not value:
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            self.fail(f"{column} {value!r} is not a date (YYYY-MM-DD)", column, "bad_date")

    def amount(self, column: str, scale: int, required: bool = True, maximum: int | None = None) -> int | None:
        """An exact amount in units of ``1/scale``, from 0 to ``maximum`` units (None: no bound)."""
        value = self.text(column, required)
        if not value:
            return None
        try:
            units = parse_amount(value, scale)
        except InputError as exc:
            self.fail(f"{column}: {exc}", column, "bad_amount")
        if units < 0:
            self.fail(f"{column} {value} is negative", column, "negative_amount")
        if maximum is not None and units > maximum:
            self.fail(f"{column} {value} is more than {maximum // scale:,}", column, "amount_too_large")
        return units

    def integer(self, column: str, minimum: int = 0, required: bool = True,
                maximum: int | None = None) -> int | None:
        value = self.text(column, required)
        if not value:
            return None
        if not value.lstrip("-").isdigit() or int(value) < minimum:
            self.fail(f"{column} {value!r} is not a whole number >= {minimum}", column)
        if maximum is not None and int(value) > maximum:
            self.fail(f"{column} {int(value):,} is more than {maximum:,}", column, "too_large")
        return int(value)

    def flag(self, column: str) -> bool:
        value = self.text(column, required=False).lower()
        if value not in TRUE | FALSE:
            self.fail(f"{column} {value!r} is not yes or no", column)
        return value in TRUE

    def minute(self, column: str) -> int:
        value = self.text(column)
        hh, _, mm = value.partition(":")
        if not (hh.isdigit() and mm.isdigit() and len(mm) == 2) or not (
            0 <= int(hh) * 60 + int(mm) <= 1440 and int(mm) < 60
        ):
            self.fail(f"{column} {value!r} is not a time HH:MM", column)
        return int(hh) * 60 + int(mm)


def _rows(folder: Path, name: str) -> list[_Row]:
    """The rows of ``name``.csv with their physical line numbers (blank lines skipped); a row
    with too many or too few fields has the problem in its ``issues``."""
    path = folder / f"{name}.csv"
    if not path.exists():
        return []
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh, strict=True)
            header = [c.strip() for c in next(reader, [])]
            missing = [c for c in COLUMNS[name] if c not in header]
            if missing:
                raise row_error(path.name, 1, f"missing columns {missing}", code="missing_columns")
            rows, previous = [], reader.line_num
            for fields in reader:
                line = previous + 1
                previous = reader.line_num
                if not fields or fields == [""]:
                    continue
                row = _Row(path.name, line, dict(zip(header, fields, strict=False)))
                if len(fields) != len(header):
                    row.note(f"{len(fields)} fields where the header has {len(header)}", code="bad_field_count")
                rows.append(row)
            return rows
    except (UnicodeDecodeError, csv.Error) as exc:
        raise row_error(path.name, None, f"cannot be read as UTF-8 CSV ({exc})", code="unreadable_file") from None


#: the currency the operator bills in: invoices, VAT and SEPA debits are in euros
BILLING_CURRENCY = "EUR"


def _currency(row: _Row) -> str:
    """A rate plan's currency: the billing currency, else the row is refused (its prices would be
    billed and debited as euros)."""
    currency = row.text("currency").upper()
    if currency != BILLING_CURRENCY:
        row.note(f"currency {currency!r} is not the currency the operator bills in ({BILLING_CURRENCY}): "
                 "convert the plan's prices to it", "currency", "bad_currency")
    return currency


def _timezone(row: _Row) -> str:
    """A rate plan's time zone: a name of the IANA database that :mod:`zoneinfo` finds."""
    name = row.text("timezone")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        row.note(f"time zone {name!r} is not one of the IANA time zone database (e.g. Europe/Paris)",
                 "timezone", "bad_timezone")
    return name


def _holiday_country(row: _Row) -> str:
    """A rate plan's holiday country: an ISO 3166 code that :mod:`holidays` has public holidays for."""
    code = row.text("holiday_country").upper()
    if code not in holidays.list_supported_countries():
        row.note(f"holiday country {code!r} is not a country code whose public holidays are known (e.g. FR)",
                 "holiday_country", "bad_holiday_country")
    return code


def _vat_rate(row: _Row) -> Decimal:
    """A product's VAT rate in percent: a number of the French list (:data:`FRENCH_VAT_RATES`)."""
    text = row.text("vat_rate")
    try:
        rate = Decimal(vat_basis_points(text)) / 100
    except InputError as exc:
        row.fail(exc.message, "vat_rate", "bad_vat_rate")
    if rate not in FRENCH_VAT_RATES:
        row.fail(f"VAT rate {text!r} is not a French VAT rate ({', '.join(str(r) for r in FRENCH_VAT_RATES)}; "
                 "0 for exempt, reverse-charge and out-of-scope items)", "vat_rate", "bad_vat_rate")
    return rate


def _vat_number(row: _Row) -> str | None:
    """A customer's VAT number, checked with python-stdnum; None when empty. A number with the
    prefix of an EU member state (``FR``, ``DE``, ``EL``, ``XI``...) is checked by
    ``stdnum.eu.vat`` (the state's format and check digits) and stored compact (``FR 46 428929905``
    -> ``FR46428929905``); another is checked by the VAT module of the customer's ``country``
    (``stdnum.ch.vat``, ``stdnum.gb.vat``...), when python-stdnum has one, and stored as given."""
    text = row.text("vat_number", False)
    if not text:
        return None
    prefix = text.replace(" ", "")[:2].lower()
    try:
        if prefix in eu_vat.MEMBER_STATES or prefix == "el":
            return eu_vat.validate(text)
        module = get_cc_module((row.text("country", False) or "FR").lower(), "vat")
        if module is not None:
            module.validate(text)
    except ValidationError as exc:
        row.note(f"VAT number {text!r} is not valid: {exc}", "vat_number", "bad_vat_number")
    return text


#: the dearest per-minute rate accepted, in micro units (1,000 EUR/min): with call durations
#: below 2**31 s (the ``duration_s`` column), seconds x rate stays below 2**31 x 10**9 ~ 2.1e18,
#: and its double in :func:`workbench.money.round_half_up` below 4.3e18 < 2**63 ~ 9.2e18: the
#: integer pricing of any call cannot overflow int64
MAX_RATE_MICROS = 1_000 * RATE_SCALE


def _intervals(row: _Row) -> list[tuple[int, int, int]]:
    """``"0:0.40/60 60:0.20/10"`` -> [(0, 400000, 60), (60, 200000, 10)]: per-minute prices in
    micro units (``RATE_SCALE``), exact to 6 decimals; a finer price is refused, naming it."""
    out = []

    def fail(problem: str):
        row.fail(problem, "intervals", "bad_intervals")

    for part in row.text("intervals").split():
        try:
            start, rest = part.split(":")
            price, increment = rest.split("/")
            start_s, increment_s = int(start), int(increment)
            if not price.strip():
                raise ValueError(price)
        except ValueError:
            fail(f"intervals: {part!r} is not FROM:PRICE/INCREMENT, e.g. 0:0.40/60")
        try:
            micros = parse_amount(price, RATE_SCALE)
        except InputError:
            exact = _decimal_or_none(price)
            if exact is not None:
                fail(f"intervals: {part!r}: price {price.strip()} has more than 6 decimals "
                     "(per-minute prices are exact to 1/1,000,000)")
            fail(f"intervals: {part!r}: price {price.strip()!r} is not an amount")
        if micros < 0 or micros > MAX_RATE_MICROS:
            fail(f"intervals: {part!r}: price {price.strip()} per minute is not between 0 and "
                 f"{MAX_RATE_MICROS // RATE_SCALE}")
        item = (start_s, micros, increment_s)
        if item[2] <= 0:
            fail(f"interval {part!r} has a non-positive increment")
        out.append(item)
    starts = [i[0] for i in out]
    if not out or starts[0] != 0 or starts != sorted(set(starts)):
        fail("intervals must start at second 0 and go up")
    # the intervals tile the call: an interval's increments end where the next one starts, so
    # no second is charged by two intervals (0:0.40/60 30:0.20/1 would charge seconds 30-59 twice)
    for (start, _, increment), (following, _, _) in zip(out, out[1:], strict=False):
        if (following - start) % increment:
            fail(f"interval from second {start} in steps of {increment} s does not end where the next one "
                 f"starts (second {following}): its length must be a multiple of its increment")
    return out


def _decimal_or_none(text: str) -> Decimal | None:
    """``text`` as a finite ``Decimal``, or None when it is not a number."""
    try:
        value = Decimal(text.strip().replace(",", "."))
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def _check_records(model, key_columns: tuple[str, ...], pairs: list[tuple[dict, _Row]]) -> list[tuple[dict, _Row]]:
    """The records without a text longer than its column nor a natural key given twice; the
    others' rows get the problem."""
    limits = {c.name: c.type.length for c in model.__table__.columns
              if isinstance(c.type, String) and c.type.length}
    seen: dict[tuple, int] = {}
    kept = []
    for rec, row in pairs:
        long = [(column, limit) for column, limit in limits.items()
                if isinstance(rec.get(column), str) and len(rec[column]) > limit]
        for column, limit in long:
            row.note(f"{column} is {len(rec[column])} characters long, more than {limit}",
                     column if column in row.values else None, "too_long")
        key = tuple(rec[k] for k in key_columns)
        if key in seen:
            row.note(f"the same {'/'.join(key_columns)} as line {seen[key]}", code="repeated_key")
            continue
        seen[key] = row.line
        if not long:
            kept.append((rec, row))
    return kept


class _Loader:
    def __init__(self, connection: Connection):
        self.c = connection
        self.counts: dict[str, int] = {}
        #: the keys of rows refused by this load, by file (``rate_plans``...), and the files refused whole
        self.refused: dict[str, set[str]] = defaultdict(set)
        self.broken: set[str] = set()

    def ids(self, model, *key_columns) -> dict:
        cols = [getattr(model, k) for k in key_columns]
        rows = self.c.execute(select(model.id, *cols)).all()
        return {tuple(r[1:]) if len(cols) > 1 else r[1]: r[0] for r in rows}

    def checked(self, rows: list[_Row], make, name: str | None = None,
                key_column: str | None = None) -> list[tuple[dict, _Row]]:
        """``(make(row), row)`` for each row without a problem; the ``key_column`` of a row refused
        or skipped is remembered (rows of later files that refer to it are skipped, :meth:`ref`)."""
        out = []
        for row in rows:
            try:
                rec = None if row.issues else make(row)  # a row of the wrong width is not read further
            except (_Skip, _Refused):
                rec = None
            if rec is None or row.issues:  # refused, or skipped: its dependants are skipped too
                if name is not None:
                    self.refused[name].add((row.values.get(key_column) or "").strip())
                continue
            out.append((rec, row))
        return out

    def ref(self, row: _Row, name: str, mapping: dict, column: str, what: str, key=None):
        """The id that ``row``'s ``column`` refers to in ``mapping`` (rows of file ``name``);
        :class:`_Skip` when it names a row refused by this load."""
        value = row.text(column)
        found = mapping.get(key if key is not None else value)
        if found is None:
            if name in self.broken or value in self.refused[name]:
                raise _Skip
            row.fail(f"{what} {value!r} is unknown", column, "unknown_reference")
        return found

    def upsert(self, model, key_columns: tuple[str, ...], pairs: list[tuple[dict, _Row]],
               name: str | None = None, key_column: str | None = None) -> list[tuple[dict, _Row]]:
        """Insert or update the records of ``pairs`` (each with its row); returns the pairs stored
        (not those with a text too long or a key given twice, :func:`_check_records`)."""
        kept = _check_records(model, key_columns, pairs)
        if name is not None:
            stored = {id(row) for _, row in kept}
            self.refused[name].update((row.values.get(key_column) or "").strip()
                                      for _, row in pairs if id(row) not in stored and row.issues)
        records = [rec for rec, _ in kept]
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
        return kept


#: how many problems the message of a refused load quotes (the error's ``problems`` has them all)
QUOTED_PROBLEMS = 3


def load_reference(engine: Engine, folder: str | Path, home_country_code: str = "33",
                   today: date | None = None, timezone: str = "Europe/Paris") -> dict[str, int]:
    """Load every reference CSV present in ``folder``; returns rows loaded per table.

    ``today``: the day of the load, after which no mandate can be signed (default: the
    operator's date now in ``timezone``). Raises :class:`~workbench.errors.InputError` when
    any row has a problem: one problem is the error itself (``source`` the file, ``line``,
    ``column``); several are its ``problems`` (``source`` the file, ``key`` ``line N, column
    C``), its message counting them and quoting the first :data:`QUOTED_PROBLEMS`. Nothing of
    the load is stored then.
    """
    folder = Path(folder)
    today = today or local_date(datetime.now(UTC), timezone)
    rows: dict[str, list[_Row]] = {}
    broken: dict[str, _Issue] = {}  # the files that cannot be read at all, with their problem
    for name in ORDER:
        try:
            rows[name] = _rows(folder, name)
        except InputError as exc:
            broken[name] = _Issue(exc.source, exc.line, exc.column, exc.code, exc.message)
            rows[name] = []
    if not any(rows.values()) and not broken:
        raise row_error(str(folder), None, "no reference CSV file found", code="no_reference_file")
    with engine.begin() as connection:
        loader = _Loader(connection)
        loader.broken = set(broken)
        _load_plans(loader, rows)
        _load_catalogue(loader, rows)
        _load_customers(loader, rows, home_country_code, today)
        issues = [issue for name in ORDER
                  for issue in ([broken[name]] if name in broken else [i for row in rows[name] for i in row.issues])]
        if issues:  # leaving the transaction by an error rolls it back: nothing is stored
            raise _refusal(issues, folder)
        return loader.counts


def _refusal(issues: list[_Issue], folder: Path) -> InputError:
    """The error of a load with these problems (see :func:`load_reference`)."""
    if len(issues) == 1:
        return issues[0].error
    problems = [issue.problem for issue in issues]
    quoted = "; ".join(str(p) for p in problems[:QUOTED_PROBLEMS])
    more = f"; and {len(problems) - QUOTED_PROBLEMS} more" if len(problems) > QUOTED_PROBLEMS else ""
    return InputError(f"{len(problems)} problems in the reference data; nothing loaded: {quoted}{more}",
                      source=str(folder), code="bad_reference_data", problems=problems)


def _load_plans(loader: _Loader, rows: dict) -> None:
    loader.upsert(s.RatePlan, ("code",), loader.checked(rows["rate_plans"], lambda r: {
        "code": r.text("code"), "name": r.text("name"), "currency": _currency(r), "timezone": _timezone(r),
        "holiday_country": _holiday_country(r), "default_band": r.text("default_band"),
    }, "rate_plans", "code"), "rate_plans", "code")
    plans = loader.ids(s.RatePlan, "code")

    def plan(r: _Row) -> int:
        return loader.ref(r, "rate_plans", plans, "plan", "plan")

    loader.upsert(s.Zone, ("plan_id", "code"), loader.checked(rows["zones"], lambda r: {
        "plan_id": plan(r), "code": r.text("code"), "name": r.text("name")}, "zones", "code"), "zones", "code")
    zones = set(loader.ids(s.Zone, "plan_id", "code"))

    def zone(r: _Row, plan_id: int) -> str:
        code = r.text("zone")
        if (plan_id, code) not in zones:
            if "zones" in loader.broken or code in loader.refused["zones"]:
                raise _Skip
            r.fail(f"zone {code!r} is not a zone of plan {r.text('plan')!r}", "zone", "unknown_reference")
        return code

    def destination(r: _Row) -> dict:
        pid = plan(r)
        prefix = r.text("prefix").lstrip("+")
        if not prefix.isdigit() or prefix.startswith("0") or len(prefix) > 15:
            r.fail(f"prefix {prefix!r} is not E.164 digits (e.g. 33, 447)", "prefix")
        return {"plan_id": pid, "prefix": prefix, "name": r.text("name"), "zone_code": zone(r, pid)}

    loader.upsert(s.Destination, ("plan_id", "prefix"), loader.checked(rows["destinations"], destination))

    def band(r: _Row) -> dict:
        pid = plan(r)
        days = []
        for d in r.text("weekdays").lower().replace(" ", "").split(","):
            if d in WEEKDAYS or (d.isdigit() and int(d) < 7):
                days.append(WEEKDAYS.get(d, int(d) if d.isdigit() else 0))
            else:
                r.fail(f"weekday {d!r} is not mon..sun or 0..6", "weekdays")
        start, end = r.minute("start"), r.minute("end")
        if start >= end:
            r.fail("start must be before end", "end")
        return {"plan_id": pid, "band": r.text("band"), "weekdays": ",".join(map(str, days)),
                "start_minute": start, "end_minute": end}

    bands = [rec for rec, _ in loader.checked(rows["time_bands"], band)]
    for pid in {b["plan_id"] for b in bands}:
        loader.c.execute(delete(s.TimeBand).where(s.TimeBand.plan_id == pid))
    if bands:
        loader.c.execute(insert(s.TimeBand), bands)
        loader.counts["time_bands"] = len(bands)

    intervals = {}

    def rate(r: _Row) -> dict:
        pid = plan(r)
        rec = {"plan_id": pid, "zone_code": zone(r, pid), "band": r.text("band"),
               "connect_fee_units": r.amount("connect_fee", PRICE_SCALE, required=False,
                                             maximum=MAX_CONNECT_FEE_UNITS) or 0,
               "charge_unanswered": r.flag("charge_unanswered")}
        intervals[id(r)] = _intervals(r)
        return rec

    stored = loader.upsert(s.Rate, ("plan_id", "zone_code", "band"), loader.checked(rows["rates"], rate))
    rate_ids = loader.ids(s.Rate, "plan_id", "zone_code", "band")
    for rec, r in stored:
        rid = rate_ids[(rec["plan_id"], rec["zone_code"], rec["band"])]
        loader.c.execute(delete(s.RateInterval).where(s.RateInterval.rate_id == rid))
        loader.c.execute(insert(s.RateInterval), [
            {"rate_id": rid, "from_second": a, "price_per_minute_micros": p, "increment_s": i}
            for a, p, i in intervals[id(r)]
        ])


def _load_catalogue(loader: _Loader, rows: dict) -> None:
    loader.upsert(s.Product, ("code",), loader.checked(rows["products"], lambda r: {
        "code": r.text("code"), "name": r.text("name"), "kind": r.choice("kind", {"one_off", "recurring"}),
        "category": r.text("category"), "price_cents": r.amount("price", CENT_SCALE, maximum=MAX_PRICE_CENTS),
        "vat_rate": _vat_rate(r),
    }, "products", "code"), "products", "code")
    product_ids = loader.ids(s.Product, "code")
    loader.upsert(s.Allowance, ("product_id", "zone_code"), loader.checked(rows["allowances"], lambda r: {
        "product_id": loader.ref(r, "products", product_ids, "product", "product"), "zone_code": r.text("zone"),
        "seconds": None if not r.text("minutes", False) else r.integer("minutes", 1) * 60,
    }))


def _load_customers(loader: _Loader, rows: dict, home_country_code: str, today: date) -> None:
    plans = loader.ids(s.RatePlan, "code")
    loader.upsert(s.Customer, ("account_number",), loader.checked(rows["customers"], lambda r: {
        "account_number": r.text("account_number"), "name": r.text("name"),
        "address_line1": r.text("address_line1", False), "address_line2": r.text("address_line2", False),
        "postcode": r.text("postcode", False), "city": r.text("city", False),
        "country": r.text("country", False) or "FR", "vat_number": _vat_number(r),
        "language": r.choice("language", {"fr", "en"}),
        "payment_method": r.choice("payment_method", {"direct_debit", "transfer"}),
        "billing_group": r.text("billing_group", False) or "default",
        "rate_plan_id": loader.ref(r, "rate_plans", plans, "rate_plan", "rate plan"),
    }, "customers", "account_number"), "customers", "account_number")
    customers = loader.ids(s.Customer, "account_number")
    products = loader.ids(s.Product, "code")

    def customer(r: _Row) -> int:
        return loader.ref(r, "customers", customers, "account_number", "account")

    def product(r: _Row) -> int:
        return loader.ref(r, "products", products, "product", "product")

    def contact(r: _Row) -> dict:
        email = r.text("email")
        if email.count("@") != 1 or "." not in email.split("@")[1] or any(c in email for c in " <>,;"):
            r.fail(f"email {email!r} is not an email address", "email", "bad_email")
        return {"customer_id": customer(r), "name": r.text("name", False), "email": email,
                "invoice_recipient": r.flag("invoice_recipient")}

    loader.upsert(s.Contact, ("customer_id", "email"), loader.checked(rows["contacts"], contact))

    normalised = normalise(pd.Series([(r.values.get("number") or "").strip() for r in rows["lines"]],
                                     dtype="string"), home_country_code)
    numbers = {id(r): n for r, n in zip(rows["lines"], normalised.tolist(), strict=True)}

    def line(r: _Row) -> dict:
        r.text("number")
        number = numbers[id(r)]
        if number is None or pd.isna(number):
            r.fail(f"number {r.text('number')!r} is not a phone number", "number", "bad_number")
        start, end = r.day("valid_from"), r.day("valid_to", False)
        if end is not None and end < start:
            r.fail("valid_to is before valid_from", "valid_to")
        return {"customer_id": customer(r), "number": number, "valid_from": start, "valid_to": end}

    lines = loader.upsert(s.Line, ("customer_id", "number", "valid_from"), loader.checked(rows["lines"], line))
    _check_line_holders(loader, lines)

    def subscription(r: _Row) -> dict:
        start, end = r.day("start_date"), r.day("end_date", False)
        if end is not None and end < start:
            r.fail("end_date is before start_date", "end_date")
        return {"customer_id": customer(r), "product_id": product(r),
                "quantity": r.integer("quantity", 1, maximum=MAX_QUANTITY), "start_date": start, "end_date": end,
                "price_override_cents": r.amount("price_override", CENT_SCALE, required=False,
                                                 maximum=MAX_PRICE_CENTS)}

    loader.upsert(s.Subscription, ("customer_id", "product_id", "start_date"),
                  loader.checked(rows["subscriptions"], subscription))

    loader.upsert(s.OneOffCharge, ("customer_id", "product_id", "charge_date", "description"),
                  loader.checked(rows["one_off_charges"], lambda r: {
                      "customer_id": customer(r), "product_id": product(r), "charge_date": r.day("date"),
                      "quantity": r.integer("quantity", 1, maximum=MAX_QUANTITY),
                      "price_override_cents": r.amount("price_override", CENT_SCALE, required=False,
                                                       maximum=MAX_PRICE_CENTS),
                      "description": r.text("description", False)}))

    def mandate(r: _Row) -> dict:
        reference, signed = r.text("reference"), r.day("signature_date")
        found, iban, bic = mandate_problems(reference, signed, r.text("iban"), r.text("bic"), today)
        for code, reason in found:
            r.note(reason, _MANDATE_COLUMNS[code], code)
        return {"customer_id": customer(r), "reference": reference, "signature_date": signed,
                "iban": iban, "bic": bic, "status": r.choice("status", {"active", "revoked"})}

    loader.upsert(s.Mandate, ("reference",), loader.checked(rows["mandates"], mandate))


#: the column of mandates.csv each problem of :func:`~workbench.sepa.mandate_problems` is about
_MANDATE_COLUMNS = {"bad_mandate_reference": "reference", "mandate_signed_in_future": "signature_date",
                    "bad_iban": "iban", "bad_bic": "bic"}


def _check_line_holders(loader: _Loader, loaded: list[tuple[dict, _Row]]) -> None:
    """Refuse a number held by two customers on overlapping dates: two rows of lines.csv, or a
    row and a stored line (its calls would go to either customer). The row is named, with the
    other holder (and its line in the file, when it is one)."""
    if not loaded:
        return
    at = {(rec["customer_id"], rec["number"], rec["valid_from"]): row for rec, row in loaded}
    numbers = sorted({rec["number"] for rec, _ in loaded})
    held = loader.c.execute(
        select(s.Line.customer_id, s.Customer.account_number, s.Line.number, s.Line.valid_from, s.Line.valid_to)
        .join(s.Customer, s.Customer.id == s.Line.customer_id)
        .where(s.Line.number.in_(numbers)).order_by(s.Line.number, s.Line.valid_from, s.Customer.account_number)
    ).all()
    by_number = defaultdict(list)
    for customer_id, account, number, start, end in held:
        by_number[number].append((customer_id, account, start, end, at.get((customer_id, number, start))))
    for number, spans in by_number.items():
        for i, (cid_a, acc_a, start_a, end_a, row_a) in enumerate(spans):
            for cid_b, acc_b, start_b, end_b, row_b in spans[i + 1:]:
                if cid_a == cid_b or not _overlap(start_a, end_a, start_b, end_b):
                    continue
                if row_a is None and row_b is None:
                    continue  # both stored before this load: not this file's problem
                # the problem goes to the later row of the file; the other holder is named
                if row_b is None or (row_a is not None and row_a.line > row_b.line):
                    row, other = row_a, (acc_b, start_b, end_b, row_b)
                else:
                    row, other = row_b, (acc_a, start_a, end_a, row_a)
                account, start, end, where = other
                held_by = f"line {where.line}" if where is not None else "already loaded"
                row.note(f"number {number} is also held by customer {account} from {start} to {end or 'no end'} "
                         f"({held_by}): a number has one holder at a time", "number", "number_held_twice")


def _overlap(start_a: date, end_a: date | None, start_b: date, end_b: date | None) -> bool:
    """Whether two validity intervals (first and last day, None: no end) share a day."""
    return (end_b is None or start_a <= end_b) and (end_a is None or start_b <= end_a)


# ---------------------------------------------------------------------------- candidate plans

#: the reference files a rate plan is made of, in load order: what a candidate plan of a what-if
#: (:mod:`workbench.rating.whatif`) is read from
PLAN_FILES = ["rate_plans", "zones", "destinations", "time_bands", "rates"]
_PLAN_TABLES = [s.RatePlan.__table__, s.Zone.__table__, s.Destination.__table__, s.TimeBand.__table__,
                s.Rate.__table__, s.RateInterval.__table__]


def _plan_files(path: Path) -> list[Path]:
    """The rate plan files of a candidate: those of a folder, or one file named as one of them."""
    names = ", ".join(f"{name}.csv" for name in PLAN_FILES)
    if path.is_dir():
        files = [path / f"{name}.csv" for name in PLAN_FILES if (path / f"{name}.csv").is_file()]
        if not files:
            raise row_error(str(path), None, f"no rate plan file ({names}) in this folder", code="no_reference_file")
        return files
    if path.is_file():
        if path.suffix != ".csv" or path.stem not in PLAN_FILES:
            raise row_error(str(path), None, f"a candidate plan is a folder of reference files or one of {names} "
                            "(name the file so, e.g. rates.csv)", code="not_a_plan_file")
        return [path]
    raise row_error(str(path), None, "no such file or folder", code="not_found")


def candidate_plans(engine: Engine, path: str | Path, home_country_code: str = "33") -> dict[int, RatePlan]:
    """The rate plans by id as they would be once the rate plan files at ``path`` were loaded
    (:func:`load_reference`), without storing anything: the stored plans are copied into a
    throwaway in-memory database, the files loaded into it with every check of a load, and the
    plans read back. Rows are matched to the stored ones by their natural key and updated, or
    added, as a load does: a ``rates.csv`` alone replaces the rates it lists (a plan's other
    rates stay), a folder such as ``data/sample/reference`` gives its plans whole (its other
    files, customers and the rest, are not read). Stored plans keep their ids (the ids the
    customers' lines name), a new plan gets a new one.

    ``path``: a folder (its :data:`PLAN_FILES`), or one of those files. Raises
    :class:`~workbench.errors.InputError` naming each bad row (file, line, column, reason), or a
    path that is no such folder or file.
    """
    path = Path(path)
    files = _plan_files(path)
    scratch = make_engine("sqlite://")
    try:
        s.Base.metadata.create_all(scratch)
        with engine.connect() as stored, scratch.begin() as copy:
            for table in _PLAN_TABLES:
                rows = [dict(row) for row in stored.execute(select(table)).mappings()]
                if rows:
                    copy.execute(insert(table), rows)
        with tempfile.TemporaryDirectory(prefix="candidate-plan-") as folder:
            for file in files:
                shutil.copyfile(file, Path(folder) / file.name)
            try:
                load_reference(scratch, folder, home_country_code)
            except InputError as exc:
                if exc.source != str(folder):
                    raise
                raise InputError(exc.message.replace("reference data; nothing loaded", "candidate plan"),
                                 source=str(path), code=exc.code, problems=exc.problems) from None
        with scratch.connect() as connection:
            return rate_plans(connection)
    finally:
        scratch.dispose()


def _price_text(units: int, scale: int) -> str:
    """An exact amount of ``1/scale`` units as reference files write it, with 2 decimals or more:
    ``30000`` micro units is ``0.03``, ``6250`` is ``0.00625``, ``0`` is ``0.00``."""
    value = (Decimal(int(units)) / scale).normalize()
    return f"{value.quantize(Decimal('0.01')) if value.as_tuple().exponent > -2 else value:f}"


def rates_rows(plans: dict[int, RatePlan]) -> pd.DataFrame:
    """The rates of ``plans`` as rows of ``rates.csv`` (:data:`COLUMNS`, text, as the reference
    files write them: ``0:0.03/60 60:0.03/1``), by plan, zone and band: what a candidate
    ``rates.csv`` edits."""
    rows = []
    for plan in plans.values():
        intervals = plan.intervals.sort_values(["rate_id", "from_second"])
        by_rate = {rid: group for rid, group in intervals.groupby("rate_id")}
        for rate in plan.rates.itertuples(index=False):
            group = by_rate.get(rate.rate_id, intervals.iloc[:0])
            rows.append({
                "plan": plan.code, "zone": rate.zone_code, "band": rate.band,
                "connect_fee": _price_text(rate.connect_fee_units, PRICE_SCALE),
                "charge_unanswered": "yes" if bool(rate.charge_unanswered) else "no",
                "intervals": " ".join(f"{int(i.from_second)}:{_price_text(i.price_per_minute_micros, RATE_SCALE)}"
                                      f"/{int(i.increment_s)}" for i in group.itertuples(index=False)),
            })
    frame = pd.DataFrame(rows, columns=COLUMNS["rates"])
    return frame.sort_values(["plan", "zone", "band"], ignore_index=True)
