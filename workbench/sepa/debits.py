"""The debits to make: checked, dated and sequenced (pure: frames in, frames out; no database, no clock).

* :func:`collection_date`: the requested collection date is the invoice's due date, moved to the
  next TARGET business day when it is not one (Monday to Friday, without the TARGET closing days
  of the ECB calendar: 1 January, Good Friday, Easter Monday, 1 May, 25 and 26 December), and
  never before :func:`earliest_collection_date`: :data:`LEAD_DAYS` (one) TARGET business day after
  the day the file can reach the bank (:func:`sending_day`), the rulebook's D-1;
* :func:`mandate_expiry`: a mandate unused for 36 months has expired (its debits are rejected);
* the amount of a debit is the invoice's net payable less ``credited_cents``: what credit notes
  issued before its collection set against it (:mod:`workbench.billing.credit_notes`); an
  invoice credited in full has nothing to debit; a negative ``credited_cents`` is refused
  (``bad_amount``): a credit note never adds to a debit;
* :func:`prepare_debits` checks a frame of debits to make and splits it into good debits and
  rejected ones, each with its reason and its problem code (missing or revoked mandate, invalid
  IBAN, BIC or mandate reference, expired mandate, a debtor outside the EEA without town, zero or
  negative amount, not in EUR, ...); it gives each good debit its cleaned debtor name and postal
  address, remittance text, collection date, amendment details and sequence type: ``FRST`` for
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
    PostalAddress,
    _compact,
    _identifier_problem,
    debtor_address_problem,
    same_bank,
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


#: TARGET business days between the day a file reaches the bank and its collection date: the EPC
#: SDD Core Rulebook (since version 9.0, November 2016) asks every collection, FRST or RCUR alike,
#: to reach the debtor's bank at the latest one inter-bank business day before it (D-1; the
#: D-5/D-2 of FRST and RCUR before 2016 is gone)
LEAD_DAYS = 1


def sending_day(today: date) -> date:
    """The day a file made on ``today`` can reach the bank: ``today`` when it is a TARGET business
    day, else the next one (a file made on Saturday is sent on Monday)."""
    return today if is_business_day(today) else next_business_day(today)


def earliest_collection_date(today: date) -> date:
    """The earliest collection date a file made on ``today`` can ask for: :data:`LEAD_DAYS` TARGET
    business days after its :func:`sending_day`. Made on Saturday 26 December 2026 (25 and 26
    December are TARGET holidays): sent on Monday 28, collected on Tuesday 29 at the earliest."""
    day = sending_day(today)
    for _ in range(LEAD_DAYS):
        day = next_business_day(day)
    return day


def collection_date(due_date: date, today: date) -> date:
    """The requested collection date of an invoice due on ``due_date`` in a file made on ``today``:
    the due date, moved to the next TARGET business day when it is not one, and never before
    :func:`earliest_collection_date` (a due date too close or already past is collected then)."""
    if not is_business_day(due_date):
        due_date = next_business_day(due_date)
    return max(due_date, earliest_collection_date(today))


#: a mandate with no collection for this many months has expired (EPC SDD Core Rulebook, section
#: 4.7.2 (4): "If no Collection has been presented under a Mandate for a period of 36 months
#: (starting from the date of the latest Collection presented, even if rejected, returned or
#: refunded), the Creditor must cancel the Mandate"); a mandate never used counts from its
#: signature date
MANDATE_EXPIRY_MONTHS = 36


def add_months(day: date, months: int) -> date:
    """``day`` ``months`` later, on the last day of the month when it has no such day (31 January
    plus one month: 28 or 29 February)."""
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    for last in (31, 30, 29, 28):
        try:
            return date(year, month, min(day.day, last))
        except ValueError:
            continue
    raise AssertionError("unreachable")


def mandate_expiry(signature_date: date, last_collection: date | None) -> date:
    """The day a mandate expires: :data:`MANDATE_EXPIRY_MONTHS` after its latest collection, or
    after its signature date when it was never used."""
    return add_months(last_collection or signature_date, MANDATE_EXPIRY_MONTHS)


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


def mandate_problems(reference: str, signature_date: date | None, iban, bic, today: date, expiry: bool = False,
                     last_collection: date | None = None) -> tuple[list[tuple[str, str]], str, str]:
    """What is wrong with a mandate for a debit requested on ``today``: ``(problems, iban, bic)``
    with each problem a ``(code, reason)`` pair, and the IBAN and BIC compact (``""`` when
    invalid or, for the BIC, absent). The checks of :func:`prepare_debits`, also run when the
    mandates are loaded and by the control report:

    * ``bad_mandate_reference``: not a SEPA identifier (at most 35 characters of the SEPA set);
    * ``mandate_signed_in_future``: ``signature_date`` after ``today`` (None: not checked here);
    * ``bad_iban``: :func:`~workbench.sepa.identifiers.validate_iban` (length, check digits,
      national structure, SEPA zone);
    * ``bad_bic``: a BIC given but not 8 or 11 characters of the SWIFT structure
      (:func:`~workbench.sepa.identifiers.validate_bic`); no BIC is no problem (the IBAN alone
      identifies the debtor's bank since February 2016: the file says ``NOTPROVIDED``);
    * ``mandate_expired`` (only with ``expiry``: the SEPA file and the control report, not the
      reference load): ``today`` is on or after :func:`mandate_expiry` of the signature date and
      ``last_collection`` (the latest collection date under the mandate, None for never).
    """
    problems: list[tuple[str, str]] = []
    problem = _identifier_problem(reference)
    if problem:
        problems.append(("bad_mandate_reference", f"invalid mandate reference {reference!r}: {problem}"))
    if signature_date is not None and signature_date > today:
        problems.append(("mandate_signed_in_future",
                         f"mandate {reference} is signed on {signature_date}, in the future"))
    if expiry and signature_date is not None and today >= mandate_expiry(signature_date, last_collection):
        since = (f"its latest collection on {last_collection}" if last_collection
                 else f"its signature on {signature_date}, never used")
        problems.append(("mandate_expired", f"mandate {reference} expired on "
                         f"{mandate_expiry(signature_date, last_collection)}: no collection for "
                         f"{MANDATE_EXPIRY_MONTHS} months since {since} (SDD Core Rulebook 4.7.2); "
                         "a new mandate must be signed"))
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
    """Check the debits to make in a file made on ``today``; returns ``(good, rejected)``.

    ``debits`` has the :data:`DEBIT_COLUMNS` (one row per invoice; ``mandate_reference`` empty when
    the customer has no mandate) and may have

    * ``mandate_status``, ``currency``, ``remittance``, ``credited_cents`` (what credit notes set
      against the invoice before its collection: debited less), ``account_number``;
    * the debtor's postal address, the customer's columns ``address_line1``, ``address_line2``,
      ``postcode``, ``city``, ``country`` (when ``country`` is there: a debtor outside the EEA
      without its town is rejected, ``bad_debtor_address``);
    * the mandate's history: ``last_collection_date`` (its latest collection, for
      :func:`mandate_expiry`; absent or empty: never collected), ``previous_reference`` and
      ``previous_iban`` (the mandate reference and IBAN of the latest collection of this mandate or
      of the one it replaces; empty: none);

    and any other column, which is passed through. ``good`` has the input columns (``iban`` and ``bic``
    compact, ``bic`` ``""`` when none) plus ``amount_cents``, ``debtor_name``, ``remittance``,
    ``collection_date``, ``sequence_type``, ``debtor_address``
    (:class:`~workbench.sepa.identifiers.PostalAddress`), ``original_mandate_reference`` and
    ``original_debtor_account`` (the amendment details, ``""`` for none: see below), sorted by
    invoice number; ``rejected`` has the input columns plus ``code`` (the first problem's, e.g.
    ``no_mandate``, ``bad_iban``) and ``reason`` (every problem found, separated by ``; ``).

    Amendments (EPC SDD Core Implementation Guidelines, AT-24): the first debit of a mandate in the
    file whose previous collection was under another reference carries that reference
    (``original_mandate_reference``); one whose previous collection was from another IBAN carries
    that IBAN when the bank is the same, or ``SMNDA`` ("same mandate, new debtor agent") when the
    debtor moved to another bank (``original_debtor_account``). Either keeps the sequence ``RCUR``.
    """
    missing = [c for c in DEBIT_COLUMNS if c not in debits.columns]
    if missing:
        raise InputError(f"debits frame without the columns {', '.join(missing)}")
    good: list[dict] = []
    rejected: list[dict] = []
    seen: set[str] = set()
    with_address = "country" in debits.columns
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
        raw_name = _get(row, "customer_name", "")
        name = sepa_text(raw_name, NAME_MAX)
        if not name:
            reasons.append(("no_debtor_name", f"debtor name {raw_name!r} is empty in the SEPA character set"))
        address = PostalAddress()
        if with_address:
            address = PostalAddress.of(_get(row, "address_line1"), _get(row, "address_line2"),
                                       _get(row, "postcode"), _get(row, "city"), _get(row, "country"))
            problem = debtor_address_problem(address)
            if problem:
                reasons.append(("bad_debtor_address", problem))
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
            last = None
            try:
                last = _as_date(_get(row, "last_collection_date"))
            except InputError as exc:
                reasons.append(("bad_date", f"the latest collection of mandate {reference}: {exc}"))
            found, iban, bic = mandate_problems(reference, signed, _get(row, "iban"), _get(row, "bic"), today,
                                                expiry=True, last_collection=last)
            reasons.extend(found)
        if reasons:  # the first problem's code, every problem's text
            rejected.append({**row, "code": reasons[0][0], "reason": "; ".join(text for _, text in reasons)})
            continue
        good.append({**row, "invoice_number": number, "mandate_reference": reference, "iban": iban, "bic": bic,
                     "signature_date": _as_date(row["signature_date"]), "due_date": due, "amount_cents": amount,
                     "debtor_name": name, "remittance": remittance, "collection_date": collect,
                     "debtor_address": address if address.usable else None})
    # the first collection of a mandate not collected before is FRST, every other one RCUR; the
    # first one of the file after a change of reference or account carries the amendment
    collected = set()
    for debit in sorted(good, key=lambda d: (d["collection_date"], d["invoice_number"])):
        ref = debit["mandate_reference"]
        previous_reference = str(_get(debit, "previous_reference", "") or "").strip()
        previous_iban = _compact(_get(debit, "previous_iban", ""))
        before = bool(_get(debit, "already_collected", False)) or bool(previous_reference) or ref in collected
        debit["sequence_type"] = RECURRING if before else FIRST
        debit["original_mandate_reference"] = debit["original_debtor_account"] = ""
        if ref not in collected:
            if previous_reference and previous_reference != ref:
                debit["original_mandate_reference"] = previous_reference
            if previous_iban and previous_iban != debit["iban"]:
                debit["original_debtor_account"] = (previous_iban if _same_bank(previous_iban, debit["iban"])
                                                    else SAME_MANDATE_NEW_AGENT)
        collected.add(ref)
    extra = ["amount_cents", "debtor_name", "remittance", "collection_date", "sequence_type", "debtor_address",
             "original_mandate_reference", "original_debtor_account"]
    columns = list(debits.columns) + [c for c in extra if c not in debits.columns]
    good_frame = pd.DataFrame(sorted(good, key=lambda d: d["invoice_number"]), columns=columns)
    good_frame["amount_cents"] = good_frame["amount_cents"].astype("int64")
    rejected_frame = pd.DataFrame(rejected, columns=list(debits.columns) + ["code", "reason"])
    return good_frame.reset_index(drop=True), rejected_frame


#: the original debtor account of an amendment when the debtor moved to another bank under the same
#: mandate ("same mandate, new debtor agent", EPC SDD Core Implementation Guidelines since 2016:
#: written in ``OrgnlDbtrAcct/Id/Othr/Id``, with the sequence type RCUR)
SAME_MANDATE_NEW_AGENT = "SMNDA"


def _same_bank(previous: str, current: str) -> bool:
    """:func:`~workbench.sepa.identifiers.same_bank`, False when the earlier IBAN is not valid."""
    try:
        return same_bank(validate_iban(previous), current)
    except InputError:
        return False
