"""Small builders shared by the tests: reference CSV folders and CDR files, written by hand.

The reference data is a minimal operator with one rate plan ``TEST`` (Europe/Paris, peak
Monday to Friday 08:00-20:00, everything else off-peak) and two customers:

===========  ==============  ===========================
customer     number          valid
===========  ==============  ===========================
``C1``       +33145000001    2026-01-01 onwards
``C2``       +33145000002    2026-01-01 to 2026-10-14
``C1``       +33145000003    2026-10-15 onwards
===========  ==============  ===========================

Rates (prices per minute; see ``RATES`` for their exact text):

* ``FIX`` (``33``): peak 0.06/min per second, off-peak 0.03/min per second, no connect fee;
* ``MOB`` (``336``, ``337``): connect 0.10, 0.12/min, first minute in one 60 s step, then per
  second;
* ``INT`` (``44``): connect 0.20 (also charged on unanswered calls), 0.60/min for the first
  minute in one 60 s step, then 0.30/min in 30 s steps.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine, func, select

from workbench.db import schema as s

NATIVE_HEADER = ["call_id", "start_time", "calling", "called", "duration_s"]

RATE_PLANS = [["TEST", "Test plan", "EUR", "Europe/Paris", "FR", "offpeak"]]
ZONES = [["TEST", "FIX", "France fixed"], ["TEST", "MOB", "France mobile"],
         ["TEST", "INT", "United Kingdom"]]
DESTINATIONS = [["TEST", "33", "France", "FIX"], ["TEST", "336", "France mobile 06", "MOB"],
                ["TEST", "337", "France mobile 07", "MOB"], ["TEST", "44", "United Kingdom", "INT"]]
TIME_BANDS = [["TEST", "peak", "mon,tue,wed,thu,fri", "08:00", "20:00"]]
RATES = [
    ["TEST", "FIX", "peak", "0", "no", "0:0.06/1"],
    ["TEST", "FIX", "offpeak", "0", "no", "0:0.03/1"],
    ["TEST", "MOB", "*", "0.10", "no", "0:0.12/60 60:0.12/1"],
    ["TEST", "INT", "*", "0.20", "yes", "0:0.60/60 60:0.30/30"],
]
PRODUCTS = [["LINE", "Fixed line", "recurring", "service", "19.90", "20"],
            ["MOBMIN", "Mobile minutes", "recurring", "service", "5.00", "20"],
            ["INSTALL", "Installation", "one_off", "installation", "49.00", "20"]]
ALLOWANCES = [["MOBMIN", "MOB", "100"]]
CUSTOMERS = [
    ["C1", "Alpha SARL", "1 rue A", "", "75001", "Paris", "FR", "", "fr", "direct_debit",
     "standard", "TEST"],
    ["C2", "Beta Ltd", "2 High Street", "Floor 2", "SW1A 1AA", "London", "GB", "", "en",
     "transfer", "standard", "TEST"],
]
CONTACTS = [["C1", "Accounts", "compta@alpha.example.fr", "yes"],
            ["C2", "Boss", "boss@beta.example.co.uk", "no"]]
LINES = [["C1", "+33145000001", "2026-01-01", ""],
         ["C2", "01 45 00 00 02", "2026-01-01", "2026-10-14"],
         ["C1", "0145000003", "2026-10-15", ""]]
SUBSCRIPTIONS = [["C1", "LINE", "1", "2026-01-01", "", ""], ["C2", "LINE", "2", "2026-01-01", "",
                                                            "15.00"]]
ONE_OFF_CHARGES = [["C2", "INSTALL", "2026-10-03", "1", "", "Set-up"]]
MANDATES = [["C1", "MANDATE-C1-01", "2025-12-20", "FR76 3000 6000 0112 3456 7890 189",
             "agrifrpp", "active"]]

#: rows of each reference file of the minimal operator (files in load order)
REFERENCE = {
    "rate_plans": RATE_PLANS,
    "zones": ZONES,
    "destinations": DESTINATIONS,
    "time_bands": TIME_BANDS,
    "rates": RATES,
    "products": PRODUCTS,
    "allowances": ALLOWANCES,
    "customers": CUSTOMERS,
    "contacts": CONTACTS,
    "lines": LINES,
    "subscriptions": SUBSCRIPTIONS,
    "one_off_charges": ONE_OFF_CHARGES,
    "mandates": MANDATES,
}
HEADERS = {
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


def csv_text(header: list[str] | None, rows: list[list[str]], quote_all: bool = False) -> str:
    """CSV text with ``\\n`` line ends (``header`` None: no header row)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n",
                        quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL)
    if header is not None:
        writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def write_csv(path: Path, header: list[str] | None, rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(csv_text(header, rows), encoding="utf-8")
    return path


def reference_folder(folder: Path, only: list[str] | None = None, reference: dict | None = None,
                     **overrides) -> Path:
    """Write the minimal operator's reference CSVs into ``folder``.

    ``only``: write just these files; ``reference``: another operator's rows by file (default
    :data:`REFERENCE`); ``overrides``: replace a file's rows (``lines=[[...], ...]``), or its
    whole text when given a ``str``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in (REFERENCE if reference is None else reference).items():
        if only is not None and name not in only:
            continue
        content = overrides.get(name, rows)
        if isinstance(content, str):
            (folder / f"{name}.csv").write_text(content, encoding="utf-8")
        else:
            write_csv(folder / f"{name}.csv", HEADERS[name], content)
    return folder


# ---------------------------------------------------------------------------- billing operator

#: The billing operator (plan ``TEST`` as above; see ``tests/test_billing.py`` for the hand
#: calculations): four customers in two billing groups, one line each.
BILLING_PRODUCTS = [
    ["LINE", "Fixed line", "recurring", "service", "19.90", "20"],
    ["MOBMIN", "Mobile minutes", "recurring", "service", "5.00", "20"],
    ["INSTALL", "Installation", "one_off", "installation", "49.00", "20"],
    ["DEPOSIT", "Router deposit", "one_off", "deposit", "100.00", "0"],
]
BILLING_ALLOWANCES = [["MOBMIN", "MOB", "10"]]  # 10 minutes to mobiles per unit and month
BILLING_CUSTOMERS = [
    ["C1", "Alpha SARL", "1 rue A", "", "75001", "Paris", "FR", "", "fr", "direct_debit", "A", "TEST"],
    ["C2", "Beta Ltd", "2 High Street", "", "SW1A 1AA", "London", "GB", "", "en", "transfer", "A", "TEST"],
    ["C3", "Gamma SAS", "3 rue C", "", "69001", "Lyon", "FR", "", "fr", "direct_debit", "B", "TEST"],
    ["C4", "Delta EURL", "4 rue D", "", "13001", "Marseille", "FR", "", "fr", "transfer", "B", "TEST"],
]
BILLING_CONTACTS = [["C1", "Accounts", "compta@alpha.example.fr", "yes"],
                    ["C2", "Boss", "boss@beta.example.co.uk", "no"]]
BILLING_LINES = [[f"C{i}", f"+3314500000{i}", "2026-01-01", ""] for i in range(1, 5)]
BILLING_SUBSCRIPTIONS = [
    ["C1", "LINE", "2", "2025-01-01", "", ""],
    ["C1", "MOBMIN", "1", "2025-01-01", "", ""],
    ["C2", "LINE", "1", "2026-10-11", "", ""],  # starts mid-month
    ["C3", "LINE", "1", "2025-06-01", "2026-10-20", ""],  # ends mid-month
    ["C4", "LINE", "3", "2025-01-01", "", "15.00"],  # price override
]
BILLING_ONE_OFFS = [
    ["C2", "INSTALL", "2026-10-11", "1", "", "Set-up"],
    ["C2", "DEPOSIT", "2026-10-11", "1", "", ""],
    ["C1", "INSTALL", "2026-11-02", "1", "", "Extra socket"],  # November: not billed in October
]
BILLING_MANDATES = [["C1", "MANDATE-C1-01", "2025-12-20", "FR76 3000 6000 0112 3456 7890 189", "agrifrpp",
                     "active"]]
BILLING_REFERENCE = {
    **REFERENCE,
    "products": BILLING_PRODUCTS,
    "allowances": BILLING_ALLOWANCES,
    "customers": BILLING_CUSTOMERS,
    "contacts": BILLING_CONTACTS,
    "lines": BILLING_LINES,
    "subscriptions": BILLING_SUBSCRIPTIONS,
    "one_off_charges": BILLING_ONE_OFFS,
    "mandates": BILLING_MANDATES,
}


def billing_reference_folder(folder: Path, only: list[str] | None = None, **overrides) -> Path:
    """Write the billing operator's reference CSVs into ``folder`` (as :func:`reference_folder`)."""
    return reference_folder(folder, only, BILLING_REFERENCE, **overrides)


def native_cdrs(rows: list[list[str]], header: list[str] = NATIVE_HEADER) -> bytes:
    """A Workbench CDR file's bytes."""
    return csv_text(header, rows).encode("utf-8")


def asterisk_row(src: str, dst: str, start: str, billsec: str, duration: str | None = None,
                 uniqueid: str = "1790000000.1", fields: int = 18) -> list[str]:
    """One Master.csv record (``fields`` 18, 17 or 16); ``duration`` (ring + talk) defaults
    to ``billsec`` + 7 so a test can tell which one was used."""
    answered = billsec not in ("", "0")
    if duration is None:
        duration = str(int(billsec) + 7) if billsec.isdigit() else "0"
    row = [
        "C100001", src, dst, "from-internal", f'"{src}" <{src}>', f"PJSIP/{src}-00000001",
        "PJSIP/trunk-00000002" if answered else "", "Dial", f"PJSIP/{dst}@trunk,60", start,
        start if answered else "", start, duration, billsec,
        "ANSWERED" if answered else "NO ANSWER", "DOCUMENTATION", uniqueid, "",
    ]
    return row[:fields]


def asterisk_cdrs(rows: list[list[str]]) -> bytes:
    """A Master.csv's bytes: no header, every field quoted, as Asterisk writes it."""
    return csv_text(None, rows, quote_all=True).encode("utf-8")


#: every table of the schema, for before/after comparisons
TABLES = [table for table in s.Base.metadata.sorted_tables]


def table_counts(engine: Engine) -> dict[str, int]:
    """Number of rows of every table, under ``calls`` the number of calls stored (in the blocks
    of ``call_blocks``) and under ``ratings`` the number of ratings (billed rows of
    ``rated_calls`` and unbilled ones in the blocks of ``rating_blocks``)."""
    with engine.connect() as connection:
        counts = {
            t.name: connection.execute(select(func.count()).select_from(t)).scalar_one()
            for t in TABLES
        }
        counts["calls"] = int(connection.execute(select(func.coalesce(func.sum(s.CallBlock.calls), 0))).scalar_one())
        counts["ratings"] = counts["rated_calls"] + int(connection.execute(
            select(func.coalesce(func.sum(s.RatingBlock.ratings), 0))).scalar_one())
    return counts


def all_calls(engine: Engine) -> pd.DataFrame:
    """Every stored call (:mod:`workbench.db.calls`), with its ``file_id``, by file and line."""
    from workbench.db import calls as call_store

    with engine.connect() as connection:
        calls = call_store.read(connection, with_file=True)
    return calls.sort_values(["file_id", "line_no"], ignore_index=True)


def approved(engine: Engine, run_id: int, reviewer: str = "reviewer") -> int:
    """Run ``run_id`` approved by ``reviewer`` (someone other than its launcher), as a reviewer does
    in the review dashboard; returns the run."""
    from datetime import datetime

    from workbench.billing.approvals import approve

    approve(engine, run_id, reviewer, "checked", datetime(2026, 11, 1, 7, 0))
    return run_id


def all_ratings(engine: Engine) -> pd.DataFrame:
    """Every stored rating, billed or not (:func:`workbench.db.ratings.every`), by call."""
    from workbench.db import ratings

    with engine.connect() as connection:
        return ratings.every(connection)


def bill_calls(connection, cdr_ids, invoice_id: int, **changes) -> None:
    """Mark the ratings of the calls ``cdr_ids`` billed by ``invoice_id`` (a bare number will
    do), as a production run would for their customers' ratings; ``changes``: column -> value
    to set on them as well (what a test needs to tell them apart)."""
    import numpy as np

    from workbench.db import ratings
    from workbench.db.bulk import insert_frame

    ids = np.asarray(list(cdr_ids), dtype=np.int64)
    rows = ratings.take(connection, [], lambda block: np.isin(block["cdr_id"].to_numpy(), ids))
    insert_frame(connection, "rated_calls", rows.assign(invoice_id=int(invoice_id), **changes)[ratings.COLUMNS])
