"""SEPA direct debits: pain.008 files of the issued invoices of customers paying by direct debit.

**Pure part** (frames in, frames and bytes out; no database, no clock):

* :func:`validate_iban`, :func:`validate_bic` (schwifty) and :func:`validate_creditor_id` (ISO 7064
  mod 97-10 over the national identifier, the country code and the check digits; the 3-character
  business code is not part of the check, e.g. ``FR72ZZZ123456``) return the compact upper-case
  value or raise :class:`SepaError` saying what is wrong;
* :func:`sepa_text` cleans a name or a remittance text to the SEPA Latin character set (letters
  ``a-z A-Z``, digits, ``/ - ? : ( ) . , ' +`` and space): accents are transliterated (``é`` ->
  ``e``, ``ß`` -> ``ss``, ``Ł`` -> ``L``...), ``&`` becomes ``+``, any other character becomes a
  space, runs of spaces are collapsed, a leading ``+`` or ``-`` is dropped (so that no spreadsheet
  the bank's tools export to reads a formula), and the text is cut to its maximum (70 for a name,
  140 for the remittance text);
* :func:`collection_date`: the requested collection date is the invoice's due date when it is
  after ``today``; a due date of today or earlier cannot be honoured any more (a CORE debit must
  reach the bank the business day before), so it becomes the first TARGET business day after
  ``today`` (Monday to Friday, without the TARGET closing days: 1 January, Good Friday, Easter
  Monday, 1 May, 25 and 26 December). A future due date on a non-business day is kept: the
  rulebook settles it on the next business day;
* :func:`prepare_debits` checks a frame of debits to make and splits it into good debits and
  rejected ones, each with its reason (missing or revoked mandate, invalid IBAN, BIC or mandate
  reference, zero or negative amount, not in EUR, ...); it gives each good debit its cleaned
  debtor name, remittance text, collection date and sequence type: ``FRST`` for the first
  collection of a mandate (the earliest debit of the frame for a mandate not already collected),
  ``RCUR`` for every other one (since the 2016 rulebook a RCUR may follow a FRST in the same file);
* :func:`build_pain008` writes the pain.008 XML with sepaxml (``pain.008.001.02``, the default, or
  ``pain.008.001.08``): one transaction per invoice, end-to-end id = invoice number, amounts in
  exact integer cents, one payment information block per sequence type and collection date with
  its count and control sum, validated against the XSD on export (:class:`SepaError` otherwise);
* :func:`direct_debit_file` does both.

**Edge**: :func:`generate_direct_debits` selects the issued invoices (``kind`` invoice) with a
positive net payable of the customers paying by ``direct_debit`` that have no ``sepa_debits`` row
yet, takes each customer's latest active mandate, builds the file, stores it in the FTP space
(:mod:`workbench.storage`) under ``sepa/<year>/<month>/<message id>.xml`` and then records it in
``sepa_files`` and ``sepa_debits``, in one transaction that holds a lock so two runs at once never
debit the same invoices. An invoice is never debited twice unless ``force``: then the invoices of
the selection (a period or a list of invoice numbers is required) are debited again in a new file
and their earlier ``sepa_debits`` rows are kept, marked ``replaced_by_file_id`` (the new file), so
the history of every collection attempt stays.

Money is integer cents throughout; no float ever holds an amount.
"""

from __future__ import annotations

import math
import re
import secrets
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import holidays
import numpy as np
import pandas as pd
from schwifty import BIC, IBAN
from schwifty.exceptions import SchwiftyException
from sepaxml import SepaDD
from sepaxml.validation import ValidationError
from sqlalchemy import Connection, Engine, insert, select, update

from workbench import repository
from workbench.config import Settings
from workbench.db import schema as s
from workbench.db.locks import lock_table
from workbench.money import CENT_SCALE, to_decimal
from workbench.period import Period
from workbench.storage import Storage

SEPA_VERSIONS = ("pain.008.001.02", "pain.008.001.08")
DEFAULT_VERSION = "pain.008.001.02"
NAME_MAX, REMITTANCE_MAX, ID_MAX = 70, 140, 35
MAX_AMOUNT_CENTS = 99_999_999_999  # 999,999,999.99 EUR, the rulebook's largest amount
FIRST, RECURRING = "FRST", "RCUR"

#: the columns :func:`prepare_debits` needs (``mandate_status``, ``currency`` and ``remittance``
#: are optional: ``active``, ``EUR`` and ``Facture <invoice number>`` when absent)
DEBIT_COLUMNS = ["invoice_number", "customer_name", "net_payable_cents", "due_date", "mandate_reference",
                 "signature_date", "iban", "bic", "already_collected"]


class SepaError(ValueError):
    """A value, a setting or a file that cannot go to the bank (says why)."""


# ---------------------------------------------------------------------------- text and identifiers

_ALLOWED = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/-?:().,'+ ")
# Latin letters that Unicode does not decompose into a base letter and an accent
_LATIN = str.maketrans({
    "ß": "ss", "ẞ": "SS", "Æ": "AE", "æ": "ae", "Œ": "OE", "œ": "oe", "Ø": "O", "ø": "o", "Ł": "L", "ł": "l",
    "Đ": "D", "đ": "d", "Ð": "D", "ð": "d", "Þ": "TH", "þ": "th", "ı": "i", "Ħ": "H", "ħ": "h",
    "‘": "'", "’": "'", "‚": ",", "‐": "-", "‑": "-", "–": "-", "—": "-", "&": "+",
})


def sepa_text(value, max_length: int = NAME_MAX) -> str:
    """``value`` in the SEPA Latin character set, at most ``max_length`` characters (see the
    module docstring); ``""`` for nothing.

    >>> sepa_text("Société Générale & Fils <b>")
    'Societe Generale + Fils b'
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    decomposed = unicodedata.normalize("NFKD", str(value)).translate(_LATIN)
    kept = "".join(c if c in _ALLOWED else ("" if unicodedata.combining(c) else " ") for c in decomposed)
    cleaned = " ".join(kept.split()).lstrip("+- ")
    return cleaned[:max_length].rstrip()


def _identifier_problem(value: str) -> str | None:
    """Why ``value`` cannot be a SEPA identifier (end-to-end id, mandate reference, message id)."""
    if not value:
        return "it is empty"
    if len(value) > ID_MAX:
        return f"it has {len(value)} characters, more than {ID_MAX}"
    bad = sorted({c for c in value if c not in _ALLOWED})
    if bad:
        return f"it contains characters outside the SEPA set: {''.join(bad)!r}"
    if value.startswith("/") or value.endswith("/") or "//" in value:
        return "it starts or ends with '/' or contains '//'"
    return None


def _compact(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return re.sub(r"\s+", "", str(value)).upper()


def validate_iban(value) -> str:
    """The compact IBAN (``FR76 3000 ...`` -> ``FR7630006...``), checked with schwifty (length,
    check digits, national structure and checksum) and in the SEPA zone; else :class:`SepaError`."""
    compact = _compact(value)
    if not compact:
        raise SepaError("IBAN is missing")
    try:
        iban = IBAN(compact, validate_bban=True)
    except SchwiftyException as exc:
        raise SepaError(f"invalid IBAN {compact}: {exc}") from None
    if not iban.in_sepa_zone:
        raise SepaError(f"invalid IBAN {compact}: country {iban.country_code} is not in the SEPA zone")
    return str(iban.compact)


def validate_bic(value) -> str:
    """The compact BIC (8 or 11 characters), checked with schwifty (SWIFT structure, country);
    else :class:`SepaError`."""
    compact = _compact(value)
    if not compact:
        raise SepaError("BIC is missing")
    try:
        bic = BIC(compact, enforce_swift_compliance=True)
    except SchwiftyException as exc:
        raise SepaError(f"invalid BIC {compact}: {exc}") from None
    return str(bic.compact)


_CREDITOR_ID = re.compile(r"([A-Z]{2})(\d{2})([A-Z0-9]{3})([A-Z0-9]{1,28})")


def validate_creditor_id(value) -> str:
    """The compact SEPA creditor identifier: country code, 2 check digits, a 3-character business
    code and the national identifier; the check digits are ISO 7064 mod 97-10 of the national
    identifier followed by the country code (letters as 10..35), as for an IBAN; else
    :class:`SepaError`.

    >>> validate_creditor_id("FR72 ZZZ 123456")
    'FR72ZZZ123456'
    """
    compact = _compact(value)
    if not compact:
        raise SepaError("creditor identifier is missing")
    match = _CREDITOR_ID.fullmatch(compact)
    if not match:
        raise SepaError(f"invalid creditor identifier {compact}: expected a country code, 2 check digits, a "
                        "3-character business code and the national identifier, e.g. FR72ZZZ123456")
    country, check, _business, national = match.groups()
    digits = "".join(str(int(c, 36)) for c in national + country + check)
    if int(digits) % 97 != 1:
        raise SepaError(f"invalid creditor identifier {compact}: check digits {check} do not match "
                        "(ISO 7064 mod 97-10)")
    return compact


def validate_version(value) -> str:
    """A supported pain.008 version (``pain.008.001.02`` or ``pain.008.001.08``)."""
    version = str(value or "").strip()
    if version not in SEPA_VERSIONS:
        raise SepaError(f"SEPA version {version!r} is not supported; use one of {', '.join(SEPA_VERSIONS)}")
    return version


@dataclass(frozen=True)
class Creditor:
    """The creditor (the operator), validated: name cleaned, IBAN, BIC (may be empty for
    pain.008.001.08) and creditor identifier compact."""

    name: str
    iban: str
    bic: str
    identifier: str

    @classmethod
    def of(cls, name, iban, bic, identifier) -> Creditor:
        problems = []
        clean_name = sepa_text(name, NAME_MAX)
        if not clean_name:
            problems.append("creditor name is empty")
        checked = {}
        for key, check, raw in (("iban", validate_iban, iban), ("bic", validate_bic, bic),
                                ("identifier", validate_creditor_id, identifier)):
            if key == "bic" and not _compact(raw):
                checked[key] = ""
                continue
            try:
                checked[key] = check(raw)
            except SepaError as exc:
                problems.append(f"creditor {exc}")
        if problems:
            raise SepaError("; ".join(problems))
        return cls(clean_name, checked["iban"], checked["bic"], checked["identifier"])

    @classmethod
    def from_settings(cls, settings: Settings) -> Creditor:
        """The creditor of the settings ``sepa_creditor_name``, ``_iban``, ``_bic`` and ``_id``."""
        try:
            return cls.of(settings.sepa_creditor_name, settings.sepa_creditor_iban, settings.sepa_creditor_bic,
                          settings.sepa_creditor_id)
        except SepaError as exc:
            raise SepaError(f"SEPA settings: {exc}") from None


# ---------------------------------------------------------------------------- dates and amounts

_TARGET = holidays.financial_holidays("ECB")


def is_business_day(day: date) -> bool:
    """A TARGET business day: Monday to Friday and not a TARGET closing day."""
    return day.weekday() < 5 and day not in _TARGET


def next_business_day(day: date) -> date:
    """The first TARGET business day after ``day``."""
    day += timedelta(days=1)
    while not is_business_day(day):
        day += timedelta(days=1)
    return day


def collection_date(due_date: date, today: date) -> date:
    """The requested collection date of an invoice due on ``due_date`` (see the module docstring)."""
    return due_date if due_date > today else next_business_day(today)


def _as_date(value) -> date | None:
    """A date from a date, datetime, timestamp or ISO text; None for nothing; else :class:`SepaError`."""
    if value is None or value is pd.NaT or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, np.datetime64):
        return pd.Timestamp(value).date()
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise SepaError(f"{value!r} is not a date") from None


def _as_cents(value) -> int | None:
    """Integer cents, or None for anything that is not a whole number of cents (a float never is)."""
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return int(value)
    return None


def euros(cents: int) -> str:
    """``12345`` -> ``'123.45'`` (exact)."""
    return str(to_decimal(cents, CENT_SCALE))


# ---------------------------------------------------------------------------- checking debits

def _get(row: dict, key: str, default=None):
    value = row.get(key, default)
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA or value is pd.NaT:
        return default
    return value


def _date_field(row: dict, key: str, label: str, reasons: list[str]) -> date | None:
    """The date of ``row[key]``; adds a reason to ``reasons`` when it is missing or not a date."""
    try:
        value = _as_date(_get(row, key))
    except SepaError as exc:
        reasons.append(f"{label}: {exc}")
        return None
    if value is None:
        reasons.append(f"{label} is missing")
    return value


def prepare_debits(debits: pd.DataFrame, today: date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Check the debits to make; returns ``(good, rejected)``.

    ``debits`` has the :data:`DEBIT_COLUMNS` (one row per invoice; ``mandate_reference`` empty when
    the customer has no mandate) and may have ``mandate_status``, ``currency``, ``remittance`` and any
    other column, which is passed through. ``good`` has the input columns (``iban`` and ``bic``
    compact, ``bic`` ``""`` when none) plus ``amount_cents``, ``debtor_name``, ``remittance``,
    ``collection_date`` and ``sequence_type``, sorted by invoice number; ``rejected`` has the input
    columns plus ``reason`` (every problem found, separated by ``; ``).
    """
    missing = [c for c in DEBIT_COLUMNS if c not in debits.columns]
    if missing:
        raise SepaError(f"debits frame without the columns {', '.join(missing)}")
    good: list[dict] = []
    rejected: list[dict] = []
    seen: set[str] = set()
    for row in debits.to_dict("records"):
        number = str(_get(row, "invoice_number", "")).strip()
        reasons = []
        problem = _identifier_problem(number)
        if problem:
            reasons.append(f"invoice number {number!r} cannot be an end-to-end id: {problem}")
        elif number in seen:
            reasons.append(f"invoice {number} is listed twice")
        seen.add(number)
        amount = _as_cents(_get(row, "net_payable_cents"))
        if amount is None:
            reasons.append(f"amount {row.get('net_payable_cents')!r} is not a whole number of cents")
        elif amount <= 0:
            reasons.append(f"nothing to debit: amount {euros(amount)} is zero or negative")
        elif amount > MAX_AMOUNT_CENTS:
            reasons.append(f"amount {euros(amount)} is more than a SEPA debit allows ({euros(MAX_AMOUNT_CENTS)})")
        currency = str(_get(row, "currency", "EUR")).strip().upper()
        if currency != "EUR":
            reasons.append(f"currency {currency} is not EUR")
        due = _date_field(row, "due_date", "the due date of the invoice", reasons)
        collect = collection_date(due, today) if due is not None else None
        name = sepa_text(_get(row, "customer_name", ""), NAME_MAX)
        if not name:
            reasons.append(f"debtor name {_get(row, 'customer_name', '')!r} is empty in the SEPA character set")
        remittance = sepa_text(_get(row, "remittance") or f"Facture {number}", REMITTANCE_MAX)
        reference = str(_get(row, "mandate_reference", "")).strip()
        status = str(_get(row, "mandate_status", "active")).strip() or "active"
        iban = bic = ""
        if not reference:
            reasons.append("no mandate: the customer has no active SEPA mandate")
        elif status != "active":
            reasons.append(f"mandate {reference} is {status}")
        else:
            problem = _identifier_problem(reference)
            if problem:
                reasons.append(f"invalid mandate reference {reference!r}: {problem}")
            signed = _date_field(row, "signature_date", f"the signature date of mandate {reference}", reasons)
            if signed is not None and signed > today:
                reasons.append(f"mandate {reference} is signed on {signed}, in the future")
            try:
                iban = validate_iban(_get(row, "iban"))
            except SepaError as exc:
                reasons.append(f"mandate {reference}: {exc}")
            if _compact(_get(row, "bic")):
                try:
                    bic = validate_bic(_get(row, "bic"))
                except SepaError as exc:
                    reasons.append(f"mandate {reference}: {exc}")
        if reasons:
            rejected.append({**row, "reason": "; ".join(reasons)})
            continue
        good.append({**row, "invoice_number": number, "mandate_reference": reference, "iban": iban, "bic": bic,
                     "signature_date": _as_date(row["signature_date"]), "due_date": due, "amount_cents": amount,
                     "debtor_name": name, "remittance": remittance, "collection_date": collect})
    # the first collection of a mandate not collected before is FRST, every other one RCUR
    collected = set()
    for debit in sorted(good, key=lambda d: (d["collection_date"], d["invoice_number"])):
        ref = debit["mandate_reference"]
        before = bool(_get(debit, "already_collected", False)) or ref in collected
        debit["sequence_type"] = RECURRING if before else FIRST
        collected.add(ref)
    extra = ["amount_cents", "debtor_name", "remittance", "collection_date", "sequence_type"]
    columns = list(debits.columns) + [c for c in extra if c not in debits.columns]
    good_frame = pd.DataFrame(sorted(good, key=lambda d: d["invoice_number"]), columns=columns)
    good_frame["amount_cents"] = good_frame["amount_cents"].astype("int64")
    rejected_frame = pd.DataFrame(rejected, columns=list(debits.columns) + ["reason"])
    return good_frame.reset_index(drop=True), rejected_frame


# ---------------------------------------------------------------------------- the pain.008 file

class _SepaDD(SepaDD):
    """sepaxml's direct debit with our message id and creation time in the group header."""

    def __init__(self, config: dict, schema: str, message_id: str, created_at: datetime):
        self._header = (message_id, created_at)
        super().__init__(config, schema=schema, clean=False)
        self.msg_id = message_id

    def _create_header(self):
        super()._create_header()
        header = self._xml.find("CstmrDrctDbtInitn/GrpHdr")
        header.find("MsgId").text = self._header[0]
        header.find("CreDtTm").text = self._header[1].strftime("%Y-%m-%dT%H:%M:%S")


def new_message_id(now: datetime) -> str:
    """A unique message id: ``SDD-<yyyymmdd>-<hhmmss>-<8 random hex digits>`` (28 characters)."""
    return f"SDD-{now:%Y%m%d-%H%M%S}-{secrets.token_hex(4).upper()}"


def build_pain008(good: pd.DataFrame, creditor: Creditor, version: str = DEFAULT_VERSION,
                  message_id: str | None = None, created_at: datetime | None = None) -> bytes:
    """The pain.008 XML (UTF-8 bytes) of the good debits of :func:`prepare_debits`, validated
    against the version's XSD on export; raises :class:`SepaError` when there is nothing to put
    in it or it does not validate. ``created_at`` (default now) is written as given, local time."""
    version = validate_version(version)
    if good.empty:
        raise SepaError("no debit to put in a SEPA file")
    created_at = created_at or datetime.now()
    message_id = message_id or new_message_id(created_at)
    problem = _identifier_problem(message_id)
    if problem:
        raise SepaError(f"message id {message_id!r}: {problem}")
    config = {"name": creditor.name, "IBAN": creditor.iban, "batch": True, "creditor_id": creditor.identifier,
              "currency": "EUR"}
    if creditor.bic:
        config["BIC"] = creditor.bic
    elif version == "pain.008.001.02":
        raise SepaError("a creditor BIC is required for pain.008.001.02")
    document = _SepaDD(config, version, message_id, created_at)
    for debit in good.to_dict("records"):
        amount = _as_cents(debit["amount_cents"])
        if amount is None or amount <= 0:
            raise SepaError(f"invoice {debit['invoice_number']}: amount {debit['amount_cents']!r} is not positive "
                            "integer cents")
        payment = {
            "name": debit["debtor_name"], "IBAN": debit["iban"], "amount": amount,
            "type": debit["sequence_type"], "collection_date": _as_date(debit["collection_date"]),
            "mandate_id": debit["mandate_reference"], "mandate_date": _as_date(debit["signature_date"]),
            "description": debit["remittance"], "endtoend_id": debit["invoice_number"],
        }
        if debit.get("bic"):
            payment["BIC"] = debit["bic"]
        document.add_payment(payment)
    try:
        return document.export(validate=True)
    except ValidationError as exc:
        raise SepaError(f"the SEPA file does not validate against {version}: {exc.__cause__ or exc}") from exc


@dataclass
class DebitFile:
    """A direct debit file made of a frame of debits: ``xml`` is None when no debit is good."""

    message_id: str
    version: str
    xml: bytes | None
    debits: pd.DataFrame
    rejected: pd.DataFrame

    @property
    def transactions(self) -> int:
        return len(self.debits)

    @property
    def total_cents(self) -> int:
        return int(sum(int(a) for a in self.debits["amount_cents"]))

    def by_sequence(self) -> dict[str, tuple[int, int]]:
        """Sequence type -> (transactions, total cents)."""
        return {seq: (int(len(group)), int(sum(int(a) for a in group["amount_cents"])))
                for seq, group in self.debits.groupby("sequence_type", sort=True)}


def direct_debit_file(debits: pd.DataFrame, creditor: Creditor, today: date, version: str = DEFAULT_VERSION,
                      message_id: str | None = None, created_at: datetime | None = None) -> DebitFile:
    """Check ``debits`` (:func:`prepare_debits`) and build the file of the good ones
    (:func:`build_pain008`)."""
    version = validate_version(version)
    good, rejected = prepare_debits(debits, today)
    created_at = created_at or datetime.now()
    message_id = message_id or new_message_id(created_at)
    xml = build_pain008(good, creditor, version, message_id, created_at) if len(good) else None
    return DebitFile(message_id, version, xml, good, rejected)


# ---------------------------------------------------------------------------- the database edge

@dataclass
class DirectDebitRun:
    """What :func:`generate_direct_debits` did. ``path`` is relative to the storage space (None
    when no file was written); ``debits`` has one row per debit written (invoice_number,
    account_number, amount_cents, mandate_reference, sequence_type, collection_date); ``rejected``
    one row per invoice left out (invoice_number, account_number, net_payable_cents, reason)."""

    message: str
    version: str
    path: str | None = None
    location: str | None = None
    message_id: str | None = None
    file_id: int | None = None
    transactions: int = 0
    total_cents: int = 0
    by_sequence: dict[str, tuple[int, int]] = field(default_factory=dict)
    debits: pd.DataFrame = field(default_factory=pd.DataFrame)
    rejected: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def written(self) -> bool:
        return self.path is not None


REJECTED_COLUMNS = ["invoice_number", "account_number", "net_payable_cents", "reason"]
WRITTEN_COLUMNS = ["invoice_number", "account_number", "amount_cents", "mandate_reference", "sequence_type",
                   "collection_date"]


def _local(now: datetime, timezone: str) -> datetime:
    aware = now if now.tzinfo else now.replace(tzinfo=UTC)
    return aware.astimezone(ZoneInfo(timezone)).replace(tzinfo=None)


def _candidates(connection: Connection, period: str | None, numbers: list[str] | None,
                force: bool) -> tuple[pd.DataFrame, list[dict]]:
    """The invoices to debit (with their customer), and the named invoices that cannot be."""
    debited = (select(s.SepaDebit.invoice_id, s.SepaFile.message_id)  # current debits only
               .join(s.SepaFile, s.SepaFile.id == s.SepaDebit.file_id)
               .where(s.SepaDebit.replaced_by_file_id.is_(None)).subquery())
    stmt = select(
        s.Invoice.id.label("invoice_id"), s.Invoice.number.label("invoice_number"), s.Invoice.customer_id,
        s.Customer.account_number, s.Customer.name.label("customer_name"), s.Invoice.net_payable_cents,
        s.Invoice.due_date, s.Invoice.currency, s.Invoice.status, s.Invoice.kind, s.Customer.payment_method,
        debited.c.message_id.label("debited_in"),
    ).join(s.Customer, s.Customer.id == s.Invoice.customer_id).outerjoin(
        debited, debited.c.invoice_id == s.Invoice.id).order_by(s.Invoice.number)
    if period is not None:
        stmt = stmt.where(s.Invoice.period == period)
    if numbers is not None:
        stmt = stmt.where(s.Invoice.number.in_(numbers))
    else:
        stmt = stmt.where(s.Invoice.status == "issued", s.Invoice.kind == "invoice",
                          s.Customer.payment_method == "direct_debit", s.Invoice.net_payable_cents > 0)
        if not force:
            stmt = stmt.where(debited.c.message_id.is_(None))
    found = repository.read_frame(connection, stmt)
    if numbers is None:
        return found, []
    rejected = [{"invoice_number": n, "account_number": None, "net_payable_cents": None,
                 "reason": "unknown invoice" + (f" in period {period}" if period else "")}
                for n in numbers if n not in set(found["invoice_number"])]
    keep = []
    for row in found.to_dict("records"):
        reason = None
        if row["status"] != "issued" or row["kind"] != "invoice":
            reason = f"not an issued invoice ({row['status']} {row['kind'].replace('_', ' ')})"
        elif row["payment_method"] != "direct_debit":
            reason = f"the customer pays by {row['payment_method']}, not by direct debit"
        elif int(row["net_payable_cents"]) <= 0:
            reason = f"nothing to debit: net payable {euros(int(row['net_payable_cents']))}"
        elif row["debited_in"] is not None and not pd.isna(row["debited_in"]) and not force:
            reason = f"already debited in SEPA file {row['debited_in']} (use force to debit it again)"
        if reason:
            rejected.append({"invoice_number": row["invoice_number"], "account_number": row["account_number"],
                             "net_payable_cents": int(row["net_payable_cents"]), "reason": reason})
        else:
            keep.append(row)
    return pd.DataFrame(keep, columns=found.columns), rejected


def _with_mandates(connection: Connection, invoices: pd.DataFrame) -> pd.DataFrame:
    """``invoices`` with each customer's mandate (the latest active one; else the latest one, to
    say it is not active) and whether it was collected before by another invoice."""
    customer_ids = sorted({int(c) for c in invoices["customer_id"]})
    mandates = repository.read_frame(connection, select(
        s.Mandate.id, s.Mandate.customer_id, s.Mandate.reference.label("mandate_reference"),
        s.Mandate.signature_date, s.Mandate.iban, s.Mandate.bic, s.Mandate.status.label("mandate_status"),
    ).where(s.Mandate.customer_id.in_(customer_ids)))
    if len(mandates):
        mandates["_active"] = mandates["mandate_status"] == "active"
        mandates = (mandates.sort_values(["customer_id", "_active", "signature_date", "id"])
                    .drop_duplicates("customer_id", keep="last").drop(columns=["_active", "id"]))
    else:
        mandates = pd.DataFrame(columns=["customer_id", "mandate_reference", "signature_date", "iban", "bic",
                                         "mandate_status"])
    frame = invoices.merge(mandates, on="customer_id", how="left")
    references = sorted({r for r in frame["mandate_reference"] if isinstance(r, str)})
    history = repository.read_frame(connection, select(s.SepaDebit.mandate_reference, s.SepaDebit.invoice_id)
                                    .where(s.SepaDebit.mandate_reference.in_(references))) if references else None
    # a forced debit replaces the earlier debit of its own invoice, so that one does not count
    selected = {int(i) for i in frame["invoice_id"]}
    collected = set() if history is None else {
        r for r, i in zip(history["mandate_reference"], history["invoice_id"], strict=True) if int(i) not in selected}
    frame["already_collected"] = frame["mandate_reference"].map(lambda r: isinstance(r, str) and r in collected)
    frame["mandate_reference"] = frame["mandate_reference"].map(lambda r: r if isinstance(r, str) else "")
    return frame


def _record(connection: Connection, made: DebitFile, path: str, now: datetime, replace: bool) -> int:
    file_id = connection.execute(insert(s.SepaFile).values(
        message_id=made.message_id, version=made.version, path=path, created_at=now,
        transactions=made.transactions, total_cents=made.total_cents,
    ).returning(s.SepaFile.id)).scalar_one()
    ids = [int(i) for i in made.debits["invoice_id"]]
    if replace:  # the earlier debits stay, as replaced by this file
        connection.execute(update(s.SepaDebit).where(s.SepaDebit.invoice_id.in_(ids),
                                                     s.SepaDebit.replaced_by_file_id.is_(None))
                           .values(replaced_by_file_id=file_id))
    connection.execute(insert(s.SepaDebit), [
        {"file_id": file_id, "invoice_id": int(d["invoice_id"]), "mandate_reference": d["mandate_reference"],
         "sequence_type": d["sequence_type"], "amount_cents": int(d["amount_cents"]),
         "collection_date": d["collection_date"]}
        for d in made.debits.to_dict("records")])
    return file_id


def _discard(storage: Storage, path: str) -> str:
    try:
        storage.fs.rm(storage.location(path))
        return "it has been removed"
    except Exception as exc:  # noqa: BLE001 - say what happened, the original error matters more
        return f"it could not be removed ({exc}): delete it, do not send it"


def generate_direct_debits(engine: Engine, settings: Settings, now: datetime, period: str | None = None,
                           invoices: Iterable[str] | None = None, force: bool = False) -> DirectDebitRun:
    """Make the SEPA direct debit file of the invoices to debit (see the module docstring).

    ``now`` is naive UTC (the file's creation time; "today" for collection dates is its date in
    the operator's timezone); ``period`` (``YYYY-MM``) and ``invoices`` (invoice numbers) narrow
    the selection; a named invoice that cannot be debited is reported in ``rejected``. With
    ``force``, invoices already debited are debited again in a new file (needs ``period`` or
    ``invoices``). Nothing is written when nothing is to be debited; a rejected invoice is never
    sent. Raises :class:`SepaError` for unusable settings, :class:`~workbench.storage.StorageError`
    when the file cannot be stored (then nothing is recorded).
    """
    version = validate_version(settings.sepa_version)
    creditor = Creditor.from_settings(settings)
    period = str(Period.parse(period)) if period is not None else None
    numbers = None if invoices is None else sorted({str(n).strip() for n in invoices if str(n).strip()})
    if force and period is None and not numbers:
        raise SepaError("force debits invoices again: name a period or the invoices")
    local_now = _local(now, settings.timezone)
    today = local_now.date()
    storage = Storage(settings.storage_url)
    stored: str | None = None
    try:
        with engine.begin() as connection:
            lock_table(connection, s.SepaDebit.__table__)  # a second run waits until the first has recorded
            candidates, named_rejects = _candidates(connection, period, numbers, force)
            made = None
            if len(candidates):
                frame = _with_mandates(connection, candidates)
                made = direct_debit_file(frame, creditor, today, version, new_message_id(local_now), local_now)
            rejected = pd.DataFrame(named_rejects, columns=REJECTED_COLUMNS)
            if made is not None and len(made.rejected):
                rejected = pd.concat([rejected, made.rejected[REJECTED_COLUMNS]], ignore_index=True)
            rejected = rejected.sort_values("invoice_number", ignore_index=True)
            if made is None or made.xml is None:
                note = f"; {len(rejected)} invoices rejected" if len(rejected) else ""
                return DirectDebitRun(f"nothing to debit{note}", version, rejected=rejected,
                                      debits=pd.DataFrame(columns=WRITTEN_COLUMNS))
            path = f"sepa/{local_now.year}/{local_now.month:02d}/{made.message_id}.xml"
            storage.put(path, made.xml)
            stored = path
            created = now.astimezone(UTC).replace(tzinfo=None) if now.tzinfo else now
            file_id = _record(connection, made, path, created, force)
    except Exception as exc:
        if stored is None:
            raise
        raise SepaError(f"SEPA file {stored} was stored but could not be recorded ({exc}); "
                        + _discard(storage, stored)) from exc
    by_sequence = made.by_sequence()
    counts = ", ".join(f"{n} {seq}" for seq, (n, _) in by_sequence.items())
    message = (f"SEPA file {path}: {made.transactions} debits ({counts}), total {euros(made.total_cents)} EUR"
               + (f"; {len(rejected)} invoices rejected" if len(rejected) else ""))
    return DirectDebitRun(message, version, path, storage.location(path), made.message_id, file_id,
                          made.transactions, made.total_cents, by_sequence,
                          made.debits[WRITTEN_COLUMNS].reset_index(drop=True), rejected)
