"""The debits to make: checked, dated and sequenced (pure: frames in, frames out; no database, no clock).

* :func:`collection_date`: the requested collection date is the invoice's due date when it is
  after ``today``; a due date of today or earlier cannot be honoured any more (a CORE debit must
  reach the bank the business day before), so it becomes the first TARGET business day after
  ``today`` (Monday to Friday, without the TARGET closing days: 1 January, Good Friday, Easter
  Monday, 1 May, 25 and 26 December). A future due date on a non-business day is kept: the
  rulebook settles it on the next business day;
* the amount of a debit is the invoice's net payable less ``credited_cents``: what credit notes
  issued before its collection set against it (:mod:`workbench.billing.credit_notes`); an
  invoice credited in full has nothing to debit; a negative ``credited_cents`` is refused
  (``bad_amount``): a credit note never adds to a debit;
* :func:`prepare_debits` checks a frame of debits to make and splits it into good debits and
  rejected ones, each with its reason and its problem code (missing or revoked mandate, invalid
  IBAN, BIC or mandate reference, zero or negative amount, not in EUR, ...); it gives each good
  debit its cleaned debtor name, remittance text, collection date and sequence type: ``FRST`` for
  the first collection of a mandate (the earliest debit of the frame for a mandate not already
  collected), ``RCUR`` for every other one (since the 2016 rulebook a RCUR may follow a FRST in
  the same file).

Money is integer cents throughout; no float ever holds an amount.
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from decimal import Decimal

import holidays
import numpy as np
import pandas as pd

from workbench.errors import InputError
from workbench.money import format_money
from workbench.sepa.identifiers import (
    NAME_MAX,
    REMITTANCE_MAX,
    _compact,
    _identifier_problem,
    sepa_text,
    validate_bic,
    validate_iban,
)

MAX_AMOUNT_CENTS = 99_999_999_999  # 999,999,999.99 EUR, the rulebook's largest amount


FIRST, RECURRING = "FRST", "RCUR"


#: the columns :func:`prepare_debits` needs (``mandate_status``, ``currency``, ``remittance`` and
#: ``credited_cents`` are optional: ``active``, ``EUR``, ``Facture <invoice number>`` and 0 when absent)
DEBIT_COLUMNS = ["invoice_number", "customer_name", "net_payable_cents", "due_date", "mandate_reference",
                 "signature_date", "iban", "bic", "already_collected"]


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
    """A date from a date, datetime, timestamp or ISO text; None for nothing; else :class:`InputError`."""
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
        raise InputError(f"{value!r} is not a date") from None


def _as_cents(value) -> int | None:
    """Integer cents, or None for anything that is not a whole number of cents (a float never is)."""
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return int(value)
    return None


def _get(row: dict, key: str, default=None):
    value = row.get(key, default)
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA or value is pd.NaT:
        return default
    return value


def _date_field(row: dict, key: str, label: str, reasons: list[tuple[str, str]]) -> date | None:
    """The date of ``row[key]``; adds a (code, reason) to ``reasons`` when it is missing or not a date."""
    try:
        value = _as_date(_get(row, key))
    except InputError as exc:
        reasons.append(("bad_date", f"{label}: {exc}"))
        return None
    if value is None:
        reasons.append(("bad_date", f"{label} is missing"))
    return value


def mandate_problems(reference: str, signature_date: date | None, iban, bic,
                     today: date) -> tuple[list[tuple[str, str]], str, str]:
    """What is wrong with a mandate for a debit requested on ``today``: ``(problems, iban, bic)``
    with each problem a ``(code, reason)`` pair, and the IBAN and BIC compact (``""`` when
    invalid or, for the BIC, absent). The checks of :func:`prepare_debits`, also run when the
    mandates are loaded and by the control report:

    * ``bad_mandate_reference``: not a SEPA identifier (at most 35 characters of the SEPA set);
    * ``mandate_signed_in_future``: ``signature_date`` after ``today`` (None: not checked here);
    * ``bad_iban``: :func:`~workbench.sepa.identifiers.validate_iban` (length, check digits,
      national structure, SEPA zone);
    * ``bad_bic``: a BIC given but not 8 or 11 characters of the SWIFT structure
      (:func:`~workbench.sepa.identifiers.validate_bic`).
    """
    problems: list[tuple[str, str]] = []
    problem = _identifier_problem(reference)
    if problem:
        problems.append(("bad_mandate_reference", f"invalid mandate reference {reference!r}: {problem}"))
    if signature_date is not None and signature_date > today:
        problems.append(("mandate_signed_in_future",
                         f"mandate {reference} is signed on {signature_date}, in the future"))
    checked_iban = checked_bic = ""
    try:
        checked_iban = validate_iban(iban)
    except InputError as exc:
        problems.append(("bad_iban", f"mandate {reference}: {exc}"))
    if _compact(bic):
        try:
            checked_bic = validate_bic(bic)
        except InputError as exc:
            problems.append(("bad_bic", f"mandate {reference}: {exc}"))
    return problems, checked_iban, checked_bic


def prepare_debits(debits: pd.DataFrame, today: date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Check the debits to make; returns ``(good, rejected)``.

    ``debits`` has the :data:`DEBIT_COLUMNS` (one row per invoice; ``mandate_reference`` empty when
    the customer has no mandate) and may have ``mandate_status``, ``currency``, ``remittance``,
    ``credited_cents`` (what credit notes set against the invoice before its collection: debited
    less) and any other column, which is passed through. ``good`` has the input columns (``iban`` and ``bic``
    compact, ``bic`` ``""`` when none) plus ``amount_cents``, ``debtor_name``, ``remittance``,
    ``collection_date`` and ``sequence_type``, sorted by invoice number; ``rejected`` has the input
    columns plus ``code`` (the first problem's, e.g. ``no_mandate``, ``bad_iban``) and ``reason``
    (every problem found, separated by ``; ``).
    """
    missing = [c for c in DEBIT_COLUMNS if c not in debits.columns]
    if missing:
        raise InputError(f"debits frame without the columns {', '.join(missing)}")
    good: list[dict] = []
    rejected: list[dict] = []
    seen: set[str] = set()
    for row in debits.to_dict("records"):
        number = str(_get(row, "invoice_number", "")).strip()
        reasons = []
        problem = _identifier_problem(number)
        if problem:
            reasons.append(("bad_invoice_number",
                            f"invoice number {number!r} cannot be an end-to-end id: {problem}"))
        elif number in seen:
            reasons.append(("duplicate_invoice", f"invoice {number} is listed twice"))
        seen.add(number)
        net, credited = _as_cents(_get(row, "net_payable_cents")), _as_cents(_get(row, "credited_cents", 0))
        amount = None if net is None or credited is None else net - credited
        if net is None:
            reasons.append(("bad_amount",
                            f"amount {row.get('net_payable_cents')!r} is not a whole number of cents"))
        elif credited is None:
            reasons.append(("bad_amount",
                            f"credited amount {row.get('credited_cents')!r} is not a whole number of cents"))
        elif credited < 0:
            reasons.append(("bad_amount", f"credited amount {format_money(credited)} is negative: what credit "
                                          "notes set against a collection is never more to debit"))
        elif amount <= 0 and credited:
            reasons.append(("nothing_to_debit", f"nothing to debit: net payable {format_money(net)}, "
                                                f"{format_money(credited)} credited before collection"))
        elif amount <= 0:
            reasons.append(("nothing_to_debit",
                            f"nothing to debit: amount {format_money(amount)} is zero or negative"))
        elif amount > MAX_AMOUNT_CENTS:
            reasons.append(("amount_too_large", f"amount {format_money(amount)} is more than a SEPA debit allows "
                           f"({format_money(MAX_AMOUNT_CENTS)})"))
        currency = str(_get(row, "currency", "EUR")).strip().upper()
        if currency != "EUR":
            reasons.append(("not_eur", f"currency {currency} is not EUR"))
        due = _date_field(row, "due_date", "the due date of the invoice", reasons)
        collect = collection_date(due, today) if due is not None else None
        name = sepa_text(_get(row, "customer_name", ""), NAME_MAX)
        if not name:
            reasons.append(("no_debtor_name",
                            f"debtor name {_get(row, 'customer_name', '')!r} is empty in the SEPA character set"))
        remittance = sepa_text(_get(row, "remittance") or f"Facture {number}", REMITTANCE_MAX)
        reference = str(_get(row, "mandate_reference", "")).strip()
        status = str(_get(row, "mandate_status", "active")).strip() or "active"
        iban = bic = ""
        if not reference:
            reasons.append(("no_mandate", "no mandate: the customer has no active SEPA mandate"))
        elif status != "active":
            reasons.append(("mandate_not_active", f"mandate {reference} is {status}"))
        else:
            signed = _date_field(row, "signature_date", f"the signature date of mandate {reference}", reasons)
            found, iban, bic = mandate_problems(reference, signed, _get(row, "iban"), _get(row, "bic"), today)
            reasons.extend(found)
        if reasons:  # the first problem's code, every problem's text
            rejected.append({**row, "code": reasons[0][0], "reason": "; ".join(text for _, text in reasons)})
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
    rejected_frame = pd.DataFrame(rejected, columns=list(debits.columns) + ["code", "reason"])
    return good_frame.reset_index(drop=True), rejected_frame

