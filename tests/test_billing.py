"""Billing runs end to end through the database (SQLite and PostgreSQL): pre-production,
production, credit notes, comparison, the control report, the customer profile and the CLI.

The operator is the billing operator of :mod:`factories` (plan ``TEST``). Every amount below is
worked out by hand for October 2026 (31 days; Paris is UTC+2 until 25 October, then UTC+1).

Rates (per minute, in 1/10,000 EUR "units"): FIX peak 0.06 per second (Mon-Fri 08:00-20:00),
off-peak 0.03 per second; MOB connect 0.10, 0.12/min, first minute one 60 s step, then per
second; INT connect 0.20, 0.60/min for the first minute (one 60 s step), then 0.30/min in 30 s
steps. MOBMIN includes 10 minutes (600 s) to MOB per month; a call that crosses the allowance
pays its remaining seconds as a call of that length, without connect fee.

Calls (price units; a consumption line is the sum of its calls, rounded half up to the cent):

* C1 X1 Wed 07 Oct 10:00 FIX peak 125 s: 125 x 600 / 60 = 1250 (0.1250)
* C1 X2 Thu 08 Oct 10:00 MOB 500 s: all in the allowance (500 of 600 s): 0
* C1 X3 Fri 09 Oct 10:00 MOB 200 s: 100 s covered, 100 s over, no connect fee:
  60 s step at 0.12/min (0.1200) + 40 s at 0.12/min (0.0800) = 2000
* C1 X4 Sat 10 Oct 11:00 MOB 30 s, allowance used up: 0.10 + one 60 s step at 0.12/min = 2200
  -> C1: FIX 1250 units = 12.5 cents -> 13; MOB 0 + 2000 + 2200 = 4200 units -> 42 cents
* C2 Y1 Mon 12 Oct 21:00 FIX off-peak 90 s: 90 x 300 / 60 = 450 -> 4.5 cents -> 5
* C2 Y2 Tue 27 Oct 15:00 (UTC+1) INT 100 s: 0.20 + 0.60 + 40 s in 30 s steps = 60 s at 0.30
  (0.30) = 11000 -> 110 cents
* C3 Z1 Wed 14 Oct 09:30 FIX peak 125 s: 1250 -> 13 cents

Invoices of October, in arrears (cents; VAT per rate on the sum of its lines, half up):

* C1: LINE 2 x 19.90 = 3980 + MOBMIN 500 = recurring 4480; consumption 13 + 42 = 55;
  excl. 4535; VAT 20% 907.0 -> 907; incl. 5442; account credit 20.00 -> applied 2000 (partly
  used: it is all there is, less than the total); net 3442
* C2: one-offs INSTALL 4900 (20%) + DEPOSIT 10000 (0%) = 14900; LINE from 11 Oct: 21 of 31
  days, 1990 x 21 / 31 = 1348.06 -> 1348 prorated; consumption 5 + 110 = 115;
  excl. 16363; VAT 20% on 4900 + 1348 + 115 = 6363 -> 1272.6 -> 1273, 0% on 10000 -> 0;
  incl. 17636; net 17636
* C3: LINE to 20 Oct: 20 of 31 days, 1990 x 20 / 31 = 1283.87 -> 1284 prorated; consumption
  13; excl. 1297; VAT 259.4 -> 259; incl. 1556; net 1556
* C4: LINE 3 x 15.00 (override) = 4500 recurring; VAT 900; incl. 5400; account credit 100.00
  -> applied 5400 (fully covers the invoice, 46.00 carried over); net 0

Run totals: incl. 5442 + 17636 + 1556 + 5400 = 30034; net 3442 + 17636 + 1556 + 0 = 22634.
"""

from __future__ import annotations

import io
import itertools
import os
import re
import threading
import time
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
import sqlalchemy
from factories import (
    BILLING_CUSTOMERS,
    BILLING_PRODUCTS,
    BILLING_SUBSCRIPTIONS,
    all_calls,
    all_ratings,
    approved,
    billing_reference_folder,
    native_cdrs,
    table_counts,
)
from sqlalchemy import Date, Engine, bindparam, select, text, update

from workbench import cli
from workbench.billing import delete_run, issue_credit_note, preprod, production
from workbench.config import Settings
from workbench.db import schema as s
from workbench.db.engine import make_engine, upgrade
from workbench.db.frames import read_frame
from workbench.documents.models import invoice_models
from workbench.errors import InputError, RefusedError
from workbench.integration import load_cdr_file
from workbench.jobs.sepa import generate_direct_debits
from workbench.period import Period
from workbench.rated_calls import rate_period
from workbench.reads.calls import monthly_consumption
from workbench.reads.customers import customer_profile
from workbench.reads.runs import RunOptions, compare_runs, list_runs, run_report
from workbench.reference import load_reference
from workbench.reports.excel import write_control_report

PERIOD = "2026-10"
OPTIONS = RunOptions(PERIOD, date(2026, 11, 1), date(2026, 12, 1))
NOVEMBER = RunOptions("2026-11", date(2026, 12, 1), date(2026, 12, 31))
NOW = datetime(2026, 11, 2, 6, 0, 0)
LATER = datetime(2026, 11, 3, 9, 0, 0)

OCTOBER_CALLS = [
    ["X1", "2026-10-07T10:00:00+02:00", "+33145000001", "+33155000000", "125"],
    ["X2", "2026-10-08T10:00:00+02:00", "+33145000001", "+33612345678", "500"],
    ["X3", "2026-10-09T10:00:00+02:00", "+33145000001", "+33612345678", "200"],
    ["X4", "2026-10-10T11:00:00+02:00", "+33145000001", "+33798765432", "30"],
    ["Y1", "2026-10-12T21:00:00+02:00", "+33145000002", "+33155000001", "90"],
    ["Y2", "2026-10-27T15:00:00+01:00", "+33145000002", "+442079460958", "100"],
    ["Z1", "2026-10-14T09:30:00+02:00", "+33145000003", "+33155000002", "125"],
]
#: price units of each call (module docstring)
CALL_PRICES = {"X1": 1250, "X2": 0, "X3": 2000, "X4": 2200, "Y1": 450, "Y2": 11000, "Z1": 1250}
#: account credit given before the run (cents)
CREDITS = {"C1": 2000, "C4": 10000}

AMOUNTS = ["one_off", "recurring", "prorated", "consumption", "excl", "vat", "incl", "credit", "net"]
#: each October invoice (module docstring), in the order of AMOUNTS
EXPECTED = {
    "C1": (0, 4480, 0, 55, 4535, 907, 5442, 2000, 3442),
    "C2": (14900, 0, 1348, 115, 16363, 1273, 17636, 0, 17636),
    "C3": (0, 0, 1284, 13, 1297, 259, 1556, 0, 1556),
    "C4": (0, 4500, 0, 0, 4500, 900, 5400, 5400, 0),
}
#: VAT by rate: (rate, base, VAT)
EXPECTED_VAT = {
    "C1": [(Decimal("20"), 4535, 907)],
    "C2": [(Decimal("0"), 10000, 0), (Decimal("20"), 6363, 1273)],
    "C3": [(Decimal("20"), 1297, 259)],
    "C4": [(Decimal("20"), 4500, 900)],
}
TOTAL_INCL, TOTAL_NET = 30034, 22634


# ---------------------------------------------------------------------------- helpers

@dataclass
class Scenario:
    engine: Engine
    settings: Settings
    folder: Path
    ids: dict[str, int]  # account number -> customer id


def frame(engine: Engine, statement, **params) -> pd.DataFrame:
    with engine.connect() as connection:
        return read_frame(connection, statement, **params)


def add_credit(engine: Engine, customer_id: int, cents: int, day: date = date(2026, 10, 15)) -> None:
    """An account credit entry, written with plain SQL."""
    stmt = text("INSERT INTO credit_entries (customer_id, entry_date, amount_cents, description) "
                "VALUES (:customer, :day, :cents, 'goodwill')").bindparams(bindparam("day", type_=Date))
    with engine.begin() as connection:
        connection.execute(stmt, {"customer": customer_id, "day": day, "cents": cents})


def load_october(engine: Engine, settings: Settings, folder: Path) -> Scenario:
    """Reference data, October's calls (all accepted), the account credits, then rating."""
    load_reference(engine, billing_reference_folder(folder / "reference"))
    path = folder / "switch-2026-10.csv"
    path.write_bytes(native_cdrs(OCTOBER_CALLS))
    report = load_cdr_file(engine, path, settings, NOW)
    assert (report.accepted, report.rejected) == (7, 0)
    ids = {a: int(i) for a, i in frame(engine, select(s.Customer.account_number, s.Customer.id)).values}
    for account, cents in CREDITS.items():
        add_credit(engine, ids[account], cents)
    summary = rate_period(engine, PERIOD, settings, NOW)
    assert (summary.rated, summary.errors) == (7, 0)
    return Scenario(engine, settings, folder, ids)


@pytest.fixture
def october(engine, settings, tmp_path) -> Scenario:
    """The October scenario, loaded and rated."""
    return load_october(engine, settings, tmp_path)


def stored_invoices(engine: Engine, run_id: int) -> pd.DataFrame:
    """The invoices of a run by account number, with their item amounts summed by type from
    ``invoice_items`` (0 where none)."""
    inv = frame(engine, select(s.Invoice.__table__, s.Customer.account_number)
                .join(s.Customer, s.Customer.id == s.Invoice.customer_id)
                .where(s.Invoice.run_id == run_id).order_by(s.Invoice.number))
    items = frame(engine, select(s.InvoiceItem.invoice_id, s.InvoiceItem.type, s.InvoiceItem.amount_cents)
                  .join(s.Invoice, s.Invoice.id == s.InvoiceItem.invoice_id).where(s.Invoice.run_id == run_id))
    for kind in ("one_off", "recurring", "prorated", "consumption", "credit"):
        sums = items[items["type"] == kind].groupby("invoice_id")["amount_cents"].sum()
        inv[kind] = inv["id"].map(sums).fillna(0).astype(int)
    return inv.set_index("account_number")


def amounts(row) -> tuple[int, ...]:
    """An invoice row's amounts in the order of AMOUNTS."""
    return tuple(int(row[c]) for c in (
        "one_off", "recurring", "prorated", "consumption", "total_excl_cents", "total_vat_cents",
        "total_incl_cents", "credit_applied_cents", "net_payable_cents"))


def sequences(engine: Engine) -> list[tuple]:
    return [tuple(r) for r in frame(engine, select(s.NumberSequence.series, s.NumberSequence.year,
                                                   s.NumberSequence.last_number)
                                    .order_by(s.NumberSequence.series)).itertuples(index=False)]


def issued_numbers(engine: Engine) -> list[str]:
    return frame(engine, select(s.Invoice.number).where(s.Invoice.status == "issued", s.Invoice.kind == "invoice")
                 .order_by(s.Invoice.number))["number"].tolist()


def credit_entries(engine: Engine) -> pd.DataFrame:
    return frame(engine, select(s.CreditEntry.__table__).order_by(s.CreditEntry.id))


def records(rows: pd.DataFrame) -> list[tuple]:
    """A frame's rows as tuples, missing values as None (whatever the column's dtype)."""
    return [tuple(None if pd.isna(v) else v for v in row) for row in rows.astype(object).itertuples(index=False)]


def invoice_ids(engine: Engine, run_id: int) -> dict[str, int]:
    return {a: int(i) for a, i in frame(engine, select(s.Customer.account_number, s.Invoice.id)
                                        .join(s.Invoice, s.Invoice.customer_id == s.Customer.id)
                                        .where(s.Invoice.run_id == run_id)).values}


def call_invoices(engine: Engine) -> dict[str, object]:
    """The ``invoice_id`` of each rated call, by switch call id (None: not billed)."""
    rows = with_switch_ids(engine, all_ratings(engine))
    return {k: (None if pd.isna(v) else int(v)) for k, v in rows[["switch_id", "invoice_id"]].values}


def with_switch_ids(engine: Engine, rated: pd.DataFrame) -> pd.DataFrame:
    """Ratings (with ``cdr_id``) with the ``switch_id`` of their call."""
    return rated.assign(switch_id=rated["cdr_id"].astype("int64").map(all_calls(engine).set_index("id")["switch_id"]))


# ---------------------------------------------------------------------------- 1. the hand-worked month

def test_october_invoices_match_the_hand_calculation(october):
    engine = october.engine
    rated = with_switch_ids(engine, all_ratings(engine)).set_index("switch_id")
    assert {k: int(v) for k, v in rated["price_units"].items()} == CALL_PRICES
    # the allowance: X2 all in it, X3 crosses it (100 of its 200 s covered), X4 after it
    assert {k: int(rated.loc[k, "allowance_s"]) for k in ("X2", "X3", "X4")} == {"X2": 500, "X3": 100, "X4": 0}
    assert [rated.loc[k, "rule"] for k in ("X2", "X3", "X4")] == ["allowance", "allowance_overflow", "rate"]

    summary = preprod(engine, OPTIONS, october.settings, NOW)
    assert (summary.kind, summary.period, summary.invoices) == ("preprod", PERIOD, 4)
    assert (summary.total_incl_cents, summary.net_payable_cents) == (TOTAL_INCL, TOTAL_NET)
    inv = stored_invoices(engine, summary.run_id)
    assert list(inv.index) == ["C1", "C2", "C3", "C4"]
    for account, expected in EXPECTED.items():
        assert dict(zip(AMOUNTS, amounts(inv.loc[account]), strict=True)) == dict(
            zip(AMOUNTS, expected, strict=True)), account
        # the credit applied is also a negative line of the invoice
        assert inv.loc[account, "credit"] == -expected[AMOUNTS.index("credit")]
    assert inv["previous_amount_cents"].isna().all()  # no earlier production invoice
    assert set(inv["status"]) == {"draft"} and inv["issued_at"].isna().all()
    assert set(inv["invoice_date"]) == {date(2026, 11, 1)} and set(inv["due_date"]) == {date(2026, 12, 1)}

    vat = frame(engine, select(s.Customer.account_number, s.InvoiceVat.vat_rate, s.InvoiceVat.base_cents,
                               s.InvoiceVat.vat_cents)
                .join(s.Invoice, s.Invoice.id == s.InvoiceVat.invoice_id)
                .join(s.Customer, s.Customer.id == s.Invoice.customer_id)
                .where(s.Invoice.run_id == summary.run_id))
    got = {a: sorted((Decimal(r), int(b), int(v)) for _, r, b, v in g.itertuples(index=False))
           for a, g in vat.groupby("account_number")}
    assert got == EXPECTED_VAT

    items = frame(engine, select(s.Customer.account_number, s.InvoiceItem.__table__)
                  .join(s.Invoice, s.Invoice.id == s.InvoiceItem.invoice_id)
                  .join(s.Customer, s.Customer.id == s.Invoice.customer_id)
                  .where(s.Invoice.run_id == summary.run_id)
                  .order_by(s.Customer.account_number, s.InvoiceItem.position))
    c1 = items[items["account_number"] == "C1"]
    assert c1["type"].tolist() == ["recurring", "recurring", "consumption", "consumption", "credit"]
    assert c1["position"].tolist() == [1, 2, 3, 4, 5]
    line = c1[c1["product_code"] == "LINE"].iloc[0]
    assert (Decimal(line["quantity"]), int(line["unit_price_cents"]), int(line["amount_cents"])) == (
        Decimal("2"), 1990, 3980)
    mob = c1[c1["zone_code"] == "MOB"].iloc[0]
    # 3 calls, 500 + 200 + 30 = 730 s = 12.1666.. -> 12.17 min (2 decimals, half up), 42 cents
    assert (int(mob["calls"]), int(mob["seconds"]), Decimal(mob["quantity"]), int(mob["amount_cents"])) == (
        3, 730, Decimal("12.17"), 42)
    prorated = items[items["type"] == "prorated"].set_index("account_number")
    # C2 from 11 to 31 October (21/31 = 0.6774), C3 from 1 to 20 October (20/31 = 0.6452)
    assert (prorated.loc["C2", "period_from"], prorated.loc["C2", "period_to"]) == (date(2026, 10, 11),
                                                                                    date(2026, 10, 31))
    assert (prorated.loc["C3", "period_from"], prorated.loc["C3", "period_to"]) == (date(2026, 10, 1),
                                                                                    date(2026, 10, 20))
    assert Decimal(prorated.loc["C2", "quantity"]) == Decimal("0.6774")
    assert Decimal(prorated.loc["C3", "quantity"]) == Decimal("0.6452")
    one_offs = items[items["type"] == "one_off"]
    assert sorted(zip(one_offs["product_code"], one_offs["amount_cents"].astype(int),
                      one_offs["vat_rate"].map(Decimal), strict=True)) == [
        ("DEPOSIT", 10000, Decimal("0")), ("INSTALL", 4900, Decimal("20"))]
    # C1's installation of 2 November is not October's
    assert "INSTALL" not in set(c1["product_code"].dropna())


def test_invoice_items_keep_their_empty_fields_empty(october):
    """What a line does not have is NULL in the database, whatever the back-end."""
    engine = october.engine
    run = preprod(engine, replace(OPTIONS, customers="accounts:C1"), october.settings, NOW)
    items = frame(engine, select(s.InvoiceItem.__table__).join(s.Invoice, s.Invoice.id == s.InvoiceItem.invoice_id)
                  .where(s.Invoice.run_id == run.run_id).order_by(s.InvoiceItem.position)).set_index("type")
    # C1: 2 recurring lines, 2 consumption lines, 1 credit line
    recurring, consumption, credit = items.loc["recurring"], items.loc["consumption"], items.loc[["credit"]]
    assert recurring[["zone_code", "calls", "seconds", "one_off_id"]].isna().all().all()
    assert consumption[["product_code", "unit_price_cents", "one_off_id"]].isna().all().all()
    assert credit[["product_code", "zone_code", "vat_rate", "period_from", "period_to", "calls"]].isna().all().all()
    with engine.connect() as connection:  # NULL, not an empty text
        assert connection.execute(text("SELECT count(*) FROM invoice_items WHERE product_code = ''")).scalar() == 0


# ---------------------------------------------------------------------------- 2. pre-production is harmless

def test_preprod_changes_nothing_production_depends_on(october):
    engine, settings = october.engine, october.settings
    credits_before = credit_entries(engine)
    counts_before = table_counts(engine)

    first = preprod(engine, OPTIONS, settings, NOW)
    calls = all_ratings(engine)
    assert len(calls) == 7 and calls["invoice_id"].isna().all()
    one_offs = frame(engine, select(s.OneOffCharge.invoice_id))
    assert len(one_offs) == 3 and one_offs["invoice_id"].isna().all()
    assert sequences(engine) == []
    pd.testing.assert_frame_equal(credit_entries(engine), credits_before)
    # only the run and its drafts are new: 4 invoices; items C1 5 (2 recurring, 2 zones, credit),
    # C2 5 (2 one-offs, prorated, 2 zones), C3 2, C4 2 (recurring, credit); VAT rows 1 + 2 + 1 + 1
    counts = table_counts(engine)
    grown = {t: counts[t] - counts_before[t] for t in counts if counts[t] != counts_before[t]}
    assert grown == {"billing_runs": 1, "invoices": 4, "invoice_items": 14, "invoice_vat": 5}

    inv = stored_invoices(engine, first.run_id)
    assert inv["number"].to_dict() == {f"C{i}": f"PRE-{first.run_id}-000{i}" for i in range(1, 5)}
    assert first.numbers == (f"PRE-{first.run_id}-0001", f"PRE-{first.run_id}-0004")

    second = preprod(engine, OPTIONS, settings, LATER)
    assert second.run_id != first.run_id
    runs = list_runs(engine, PERIOD)
    assert runs["id"].tolist() == [second.run_id, first.run_id]  # newest first
    assert runs["kind"].tolist() == ["preprod", "preprod"] and runs["status"].tolist() == ["done", "done"]
    assert [int(n) for n in runs["invoices"]] == [4, 4]
    assert [int(t) for t in runs["total_incl_cents"]] == [TOTAL_INCL, TOTAL_INCL]
    assert list_runs(engine, "2026-09").empty

    assert delete_run(engine, first.run_id) == 4
    assert list_runs(engine)["id"].tolist() == [second.run_id]
    assert frame(engine, select(s.Invoice.id).where(s.Invoice.run_id == first.run_id)).empty
    counts = table_counts(engine)
    assert (counts["invoices"], counts["invoice_items"], counts["invoice_vat"]) == (4, 14, 5)
    with pytest.raises(InputError, match=f"no billing run {first.run_id}"):
        delete_run(engine, first.run_id)

    issued = production(engine, second.run_id, settings, LATER)
    with pytest.raises(RefusedError, match="issued in production"):
        delete_run(engine, second.run_id)
    with pytest.raises(RefusedError, match="production run"):
        delete_run(engine, issued.run_id)
    assert len(issued_numbers(engine)) == 4 and len(list_runs(engine)) == 2


def test_a_deleted_runs_number_is_never_given_again(october):
    """Runs 1 and 2, run 2 deleted: the next run is 3 (SQLite AUTOINCREMENT, a PostgreSQL
    sequence), so run 2's control report file can never be taken for the new run's."""
    engine, settings = october.engine, october.settings
    first = preprod(engine, OPTIONS, settings, NOW)
    second = preprod(engine, OPTIONS, settings, LATER)
    assert second.run_id == first.run_id + 1
    delete_run(engine, second.run_id)
    third = preprod(engine, OPTIONS, settings, LATER)
    assert third.run_id == first.run_id + 2  # not second.run_id again
    assert third.numbers[0] == f"PRE-{first.run_id + 2}-0001"


def test_the_migration_keeps_runs_and_rates(tmp_path):
    """Down to the 1/10,000 rates and runs without AUTOINCREMENT, then up again: the stored rates
    are x100 then /100, the runs and their invoices are kept (dropping the old ``billing_runs``
    would have deleted its invoices, ON DELETE CASCADE), and run numbers are not reused."""
    from alembic import command

    from workbench.db.engine import alembic_config

    url = f"sqlite:///{tmp_path / 'migrated.sqlite'}"
    settings = Settings(database_url=url)
    engine = make_engine(url)
    upgrade(engine)
    scenario = load_october(engine, settings, tmp_path)
    first = preprod(engine, OPTIONS, settings, NOW)
    second = preprod(engine, OPTIONS, settings, LATER)
    delete_run(engine, second.run_id)
    micros = frame(engine, select(s.RateInterval.price_per_minute_micros).order_by(s.RateInterval.id))
    counts = table_counts(engine)

    command.downgrade(alembic_config(engine), "0006_issued_identity")  # to the revision before the rates in micro units
    with engine.connect() as connection:
        units = [r[0] for r in connection.exec_driver_sql(
            "SELECT price_per_minute_units FROM rate_intervals ORDER BY id")]
        ddl = connection.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'billing_runs'").scalar()
        for table in ("invoices", "invoice_items", "invoice_vat"):
            assert connection.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar() == counts[table], table
    assert units == [m // 100 for m in micros["price_per_minute_micros"]]
    assert "AUTOINCREMENT" not in ddl

    upgrade(scenario.engine)
    again = frame(engine, select(s.RateInterval.price_per_minute_micros).order_by(s.RateInterval.id))
    pd.testing.assert_frame_equal(again, micros)
    assert table_counts(engine) == counts
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []
        ddl = connection.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'billing_runs'").scalar()
    assert "AUTOINCREMENT" in ddl
    third = preprod(engine, OPTIONS, settings, LATER)
    delete_run(engine, third.run_id)
    assert preprod(engine, OPTIONS, settings, LATER).run_id == third.run_id + 1
    assert first.run_id in list_runs(engine)["id"].tolist()


def test_the_service_period_migration_names_the_subscriptions_of_lines_issued_before(engine, settings, tmp_path):
    """Lines issued before invoice lines named their subscription get it back at the upgrade:
    C1 has two LINE subscriptions over October (quantities 2 and 1), C2's starts on 11 October
    (a prorated line), C3's ends on 20 October; each line finds its own."""
    from alembic import command

    from workbench.db.engine import alembic_config

    subscriptions = [*BILLING_SUBSCRIPTIONS, ["C1", "LINE", "1", "2026-03-01", "", ""]]
    load_reference(engine, billing_reference_folder(tmp_path / "reference", subscriptions=subscriptions))
    path = tmp_path / "switch-2026-10.csv"
    path.write_bytes(native_cdrs(OCTOBER_CALLS))
    load_cdr_file(engine, path, settings, NOW)
    rate_period(engine, PERIOD, settings, NOW)
    issued = production(engine, preprod(engine, OPTIONS, settings, NOW).run_id, settings, LATER)
    query = (select(s.InvoiceItem.id, s.InvoiceItem.product_code, s.InvoiceItem.quantity,
                    s.InvoiceItem.subscription_id, s.Customer.account_number)
             .join(s.Invoice, s.Invoice.id == s.InvoiceItem.invoice_id).join(s.Customer)
             .where(s.Invoice.run_id == issued.run_id, s.InvoiceItem.type.in_(["recurring", "prorated"]))
             .order_by(s.InvoiceItem.id))
    sid = {key: int(i) for key, i in frame(engine, select(
        s.Customer.account_number, s.Subscription.quantity, s.Subscription.start_date, s.Subscription.id)
        .join(s.Customer)).set_index(["account_number", "quantity", "start_date"])["id"].items()}
    # the subscription each line bills, by hand: (account, product, line quantity) -> subscription
    expected = {("C1", "LINE", "2.0000"): sid[("C1", 2, date(2025, 1, 1))],
                ("C1", "LINE", "1.0000"): sid[("C1", 1, date(2026, 3, 1))],
                ("C1", "MOBMIN", "1.0000"): sid[("C1", 1, date(2025, 1, 1))],
                ("C2", "LINE", "0.6774"): sid[("C2", 1, date(2026, 10, 11))],  # 21 / 31 days
                ("C3", "LINE", "0.6452"): sid[("C3", 1, date(2025, 6, 1))],  # 20 / 31 days
                ("C4", "LINE", "3.0000"): sid[("C4", 3, date(2025, 1, 1))]}
    before = frame(engine, query)
    named = {(r.account_number, r.product_code, f"{Decimal(r.quantity):.4f}"): int(r.subscription_id)
             for r in before.itertuples()}
    assert named == expected

    command.downgrade(alembic_config(engine), "0007_precision_and_runs")  # lines without subscription
    command.upgrade(alembic_config(engine), "head")
    after = frame(engine, query)
    assert after["id"].tolist() == before["id"].tolist()
    assert {(r.account_number, r.product_code, f"{Decimal(r.quantity):.4f}"): int(r.subscription_id)
            for r in after.itertuples()} == expected


# ---------------------------------------------------------------------------- 3. comparing runs

def test_compare_after_a_rate_correction(october):
    engine, settings = october.engine, october.settings
    before = preprod(engine, OPTIONS, settings, NOW)
    # the INT connect fee goes from 0.20 to 0.30: Y2 = 0.30 + 0.60 + 0.30 = 12000 units = 120 cents
    # C2: consumption 5 + 120 = 125 (+10); VAT on 4900 + 1348 + 125 = 6373 -> 1274.6 -> 1275;
    # incl. 16373 + 1275 = 17648 (+12)
    rates = [["TEST", "INT", "*", "0.30", "yes", "0:0.60/60 60:0.30/30"]]
    load_reference(engine, billing_reference_folder(october.folder / "fix", only=["rates"], rates=rates))
    rate_period(engine, PERIOD, settings, LATER)
    after = preprod(engine, OPTIONS, settings, LATER)

    diff = compare_runs(engine, before.run_id, after.run_id).set_index("Account number")
    assert diff["Status"].to_dict() == {"C1": "unchanged", "C2": "changed", "C3": "unchanged", "C4": "unchanged"}
    c2 = diff.loc["C2"]
    assert c2["Change consumption"] == Decimal("0.10")
    assert (c2["Total A"], c2["Total B"], c2["Change"]) == (Decimal("176.36"), Decimal("176.48"), Decimal("0.12"))
    assert c2["Change initial (one-off)"] == Decimal("0.00") and c2["Change prorated"] == Decimal("0.00")
    assert diff.loc["C1", "Change"] == Decimal("0.00")
    with pytest.raises(InputError, match="no billing run 999"):
        compare_runs(engine, before.run_id, 999)


# ---------------------------------------------------------------------------- 4. production

def test_production_issues_gap_free_numbers_and_marks_what_it_bills(october):
    engine, settings, ids = october.engine, october.settings, october.ids
    credits_before = credit_entries(engine)
    run = preprod(engine, OPTIONS, settings, NOW)
    summary = production(engine, run.run_id, settings, LATER)
    assert (summary.kind, summary.invoices, summary.skipped) == ("production", 4, [])
    assert summary.numbers == ("F2026-000001", "F2026-000004")
    assert (summary.total_incl_cents, summary.net_payable_cents) == (TOTAL_INCL, TOTAL_NET)
    assert summary.message == "4 invoices issued, F2026-000001 to F2026-000004"

    inv = stored_invoices(engine, summary.run_id)
    assert inv["number"].to_dict() == {"C1": "F2026-000001", "C2": "F2026-000002", "C3": "F2026-000003",
                                       "C4": "F2026-000004"}
    for account, expected in EXPECTED.items():
        assert amounts(inv.loc[account]) == expected, account
    assert set(inv["status"]) == {"issued"} and set(inv["kind"]) == {"invoice"}
    assert {pd.Timestamp(t) for t in inv["issued_at"]} == {pd.Timestamp(LATER)}
    assert sequences(engine) == [("F", 2026, 4)]

    runs = list_runs(engine).set_index("id")
    assert runs.loc[run.run_id, "status"] == "promoted"
    assert (runs.loc[summary.run_id, "kind"], int(runs.loc[summary.run_id, "source_run_id"])) == (
        "production", run.run_id)
    # the drafts stay as the review record
    assert len(stored_invoices(engine, run.run_id)) == 4

    billed = invoice_ids(engine, summary.run_id)
    assert call_invoices(engine) == {"X1": billed["C1"], "X2": billed["C1"], "X3": billed["C1"], "X4": billed["C1"],
                                     "Y1": billed["C2"], "Y2": billed["C2"], "Z1": billed["C3"]}
    one_offs = frame(engine, select(s.OneOffCharge.customer_id, s.OneOffCharge.charge_date,
                                    s.OneOffCharge.invoice_id).order_by(s.OneOffCharge.id))
    assert [None if pd.isna(i) else int(i) for i in one_offs["invoice_id"]] == [billed["C2"], billed["C2"], None]
    credits = credit_entries(engine)
    assert records(credits.iloc[:2]) == records(credits_before)
    new = credits.iloc[2:]
    assert sorted(zip(new["customer_id"], new["amount_cents"], new["invoice_id"], new["entry_date"], strict=True)) \
        == sorted([(ids["C1"], -2000, billed["C1"], date(2026, 11, 1)), (ids["C4"], -5400, billed["C4"],
                                                                         date(2026, 11, 1))])

    # the same run again: nothing issued, and said so
    again = production(engine, run.run_id, settings, LATER)
    assert (again.invoices, again.numbers, again.run_id) == (0, None, summary.run_id)
    assert "already issued" in again.message and "nothing issued" in again.message
    assert sequences(engine) == [("F", 2026, 4)]

    # November: the previous invoice amount is October's total; C1's installation of 2 Nov is
    # billed now (recurring 4480 + 4900 = 9380, VAT 1876, incl. 11256; no credit left);
    # C4: 5400 incl., credit left 10000 - 5400 = 4600 -> net 800; C3's line ended in October
    nov = preprod(engine, NOVEMBER, settings, LATER)
    drafts = stored_invoices(engine, nov.run_id)
    assert list(drafts.index) == ["C1", "C2", "C4"]
    assert drafts["previous_amount_cents"].astype(int).to_dict() == {"C1": 5442, "C2": 17636, "C4": 5400}
    assert amounts(drafts.loc["C1"]) == (4900, 4480, 0, 0, 9380, 1876, 11256, 0, 11256)
    assert (int(drafts.loc["C4", "credit_applied_cents"]), int(drafts.loc["C4", "net_payable_cents"])) == (4600, 800)

    # another October pre-production, promoted: everyone was invoiced for October already
    redo = preprod(engine, OPTIONS, settings, LATER)
    skipped = production(engine, redo.run_id, settings, LATER)
    assert (skipped.invoices, skipped.numbers, skipped.skipped) == (0, None, ["C1", "C2", "C3", "C4"])
    assert "4 customers already invoiced for 2026-10 skipped" in skipped.message
    assert issued_numbers(engine) == [f"F2026-00000{i}" for i in range(1, 5)]
    assert sequences(engine) == [("F", 2026, 4)]


def test_a_later_run_issues_only_the_customers_not_yet_invoiced(october):
    engine, settings = october.engine, october.settings
    first = preprod(engine, replace(OPTIONS, customers="accounts:C3,C1"), settings, NOW)
    assert first.invoices == 2
    done = production(engine, first.run_id, settings, NOW)
    assert stored_invoices(engine, done.run_id)["number"].to_dict() == {"C1": "F2026-000001", "C3": "F2026-000002"}

    everyone = preprod(engine, OPTIONS, settings, LATER)
    assert everyone.invoices == 4  # drafts for all, C1 and C3 with their subscriptions only
    rest = production(engine, everyone.run_id, settings, LATER)
    assert (rest.invoices, rest.skipped, rest.numbers) == (2, ["C1", "C3"], ("F2026-000003", "F2026-000004"))
    assert rest.message == ("2 invoices issued, F2026-000003 to F2026-000004; "
                            "2 customers already invoiced for 2026-10 skipped")
    inv = stored_invoices(engine, rest.run_id)
    assert inv["number"].to_dict() == {"C2": "F2026-000003", "C4": "F2026-000004"}
    assert amounts(inv.loc["C2"]) == EXPECTED["C2"] and amounts(inv.loc["C4"]) == EXPECTED["C4"]
    assert (rest.total_incl_cents, rest.net_payable_cents) == (17636 + 5400, 17636 + 0)
    first_ids, rest_ids = invoice_ids(engine, done.run_id), invoice_ids(engine, rest.run_id)
    calls = call_invoices(engine)
    assert {calls[k] for k in ("X1", "X2", "X3", "X4")} == {first_ids["C1"]}  # not re-marked
    assert {calls[k] for k in ("Y1", "Y2")} == {rest_ids["C2"]} and calls["Z1"] == first_ids["C3"]
    assert sequences(engine) == [("F", 2026, 4)]


# ---------------------------------------------------------------------------- 5. fingerprint

def _more_calls(scenario: Scenario) -> None:
    # C4 W1 Tue 20 Oct 10:00 FIX peak 60 s: 600 units = 6 cents
    path = scenario.folder / "late-2026-10.csv"
    path.write_bytes(native_cdrs([["W1", "2026-10-20T10:00:00+02:00", "+33145000004", "+33155000000", "60"]]))
    assert load_cdr_file(scenario.engine, path, scenario.settings, LATER).accepted == 1
    rate_period(scenario.engine, PERIOD, scenario.settings, LATER)


def _more_lines(scenario: Scenario) -> None:
    subs = [r if r[0] != "C4" else ["C4", "LINE", "4", "2025-01-01", "", "15.00"] for r in BILLING_SUBSCRIPTIONS]
    load_reference(scenario.engine, billing_reference_folder(scenario.folder / "subs", only=["subscriptions"],
                                                             subscriptions=subs))


def _more_credit(scenario: Scenario) -> None:
    add_credit(scenario.engine, scenario.ids["C2"], 1000, date(2026, 11, 2))


CHANGES = {
    # part named (C1 is issued first, so 4 of the 7 calls are billed and out of the run's inputs),
    # then C4's or C2's invoice once billed again: (account, incl., credit applied, net)
    # more calls: C4 4500 + 6 = 4506, VAT 901.2 -> 901, incl. 5407, all paid by its credit
    "calls (7 rows reviewed, 8 now); rated calls (3 rows reviewed, 4 now)": (_more_calls, ("C4", 5407, 5407, 0)),
    # C4 takes 4 lines: 6000, VAT 1200, incl. 7200, credit 100.00 covers it
    "subscriptions (5 rows reviewed, 5 now)": (_more_lines, ("C4", 7200, 7200, 0)),
    # 10.00 of credit for C2 (credits are summed by customer: C1 (0 left) and C4, then C2 too)
    "credits (2 rows reviewed, 3 now)": (_more_credit, ("C2", 17636, 1000, 16636)),
}


@pytest.mark.parametrize("change", list(CHANGES), ids=["calls", "subscriptions", "credit"])
def test_production_refuses_inputs_changed_since_review(october, change):
    engine, settings = october.engine, october.settings
    c1 = production(engine, preprod(engine, replace(OPTIONS, customers="accounts:C1"), settings, NOW).run_id,
                    settings, NOW)
    assert c1.numbers == ("F2026-000001", "F2026-000001")
    run = preprod(engine, OPTIONS, settings, NOW)
    make_change, (account, incl, applied, net) = CHANGES[change]
    make_change(october)
    credits_before = credit_entries(engine)
    counts_before = table_counts(engine)
    calls_before = call_invoices(engine)

    with pytest.raises(RefusedError) as refused:
        production(engine, run.run_id, settings, LATER)
    message = str(refused.value)
    assert f"changed since: {change}." in message
    assert f"run {run.run_id} no longer matches" in message and "new pre-production" in message
    assert table_counts(engine) == counts_before  # nothing issued, no run made
    assert sequences(engine) == [("F", 2026, 1)]  # the sequence did not move
    assert issued_numbers(engine) == ["F2026-000001"]
    assert list_runs(engine).set_index("id").loc[run.run_id, "status"] == "done"
    assert call_invoices(engine) == calls_before
    pd.testing.assert_frame_equal(credit_entries(engine), credits_before)
    with pytest.raises(RefusedError, match=re.escape(change)):  # still refused: a new preprod is needed
        production(engine, run.run_id, settings, LATER)
    assert sequences(engine) == [("F", 2026, 1)]

    fresh = preprod(engine, OPTIONS, settings, LATER)
    issued = production(engine, fresh.run_id, settings, LATER)
    assert (issued.numbers, issued.skipped) == (("F2026-000002", "F2026-000004"), ["C1"])
    row = stored_invoices(engine, issued.run_id).loc[account]
    assert (int(row["total_incl_cents"]), int(row["credit_applied_cents"]), int(row["net_payable_cents"])) == (
        incl, applied, net)


def test_reloading_the_same_data_and_rating_again_is_no_change(october):
    engine, settings = october.engine, october.settings
    run = preprod(engine, OPTIONS, settings, NOW)
    load_reference(engine, billing_reference_folder(october.folder / "again"))  # the same rows
    rate_period(engine, PERIOD, settings, LATER)  # new rated_at, the same ratings
    issued = production(engine, run.run_id, settings, LATER)
    assert (issued.invoices, issued.numbers) == (4, ("F2026-000001", "F2026-000004"))


# ---------------------------------------------------------------------------- 6. concurrency (PostgreSQL)

_databases = itertools.count()


@pytest.fixture
def pg_october(postgres_server, tmp_path, request):
    """The October scenario on a new PostgreSQL database."""
    name = f"wb_billing_{os.getpid()}_{next(_databases)}"
    admin = sqlalchemy.create_engine(f"{postgres_server}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {name}")
    admin.dispose()
    url = f"{postgres_server}/{name}"
    engine = make_engine(url)
    upgrade(engine)
    yield load_october(engine, Settings(database_url=url), tmp_path)
    engine.dispose()


def promote_together(scenario: Scenario, run_ids: list[int]) -> list:
    """Promote the runs from one thread each, released at the same moment; returns each
    thread's summary (or exception)."""
    barrier = threading.Barrier(len(run_ids))
    results: list = [None] * len(run_ids)

    def work(index: int, run_id: int) -> None:
        barrier.wait()
        try:
            results[index] = production(scenario.engine, run_id, scenario.settings, LATER)
        except Exception as exc:  # reported by the test
            results[index] = exc

    threads = [threading.Thread(target=work, args=(i, r)) for i, r in enumerate(run_ids)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a promotion is stuck"
    for result in results:
        if isinstance(result, Exception):
            raise result
    return results


def _consecutive(first: str, last: str) -> list[str]:
    a, b = int(first[-6:]), int(last[-6:])
    return [f"F2026-{n:06d}" for n in range(a, b + 1)]


@pytest.mark.postgres
def test_concurrent_productions_of_two_groups_number_without_gaps(pg_october):
    engine, settings = pg_october.engine, pg_october.settings
    # October: group A = C1, C2; group B = C3, C4
    a = preprod(engine, replace(OPTIONS, customers="group:A"), settings, NOW)
    b = preprod(engine, replace(OPTIONS, customers="group:B"), settings, NOW)
    first = promote_together(pg_october, [a.run_id, b.run_id])
    assert [r.invoices for r in first] == [2, 2]
    numbers = issued_numbers(engine)
    assert numbers == [f"F2026-00000{i}" for i in range(1, 5)]  # no gap, no duplicate
    for result in first:  # each run's numbers are one block, in account order
        inv = stored_invoices(engine, result.run_id)
        assert inv.sort_index()["number"].tolist() == _consecutive(*result.numbers)

    # November: group A = C1, C2; group B = C4 only (C3's line ended in October)
    a = preprod(engine, replace(NOVEMBER, customers="group:A"), settings, LATER)
    b = preprod(engine, replace(NOVEMBER, customers="group:B"), settings, LATER)
    second = promote_together(pg_october, [b.run_id, a.run_id])
    assert [r.invoices for r in second] == [1, 2]
    assert issued_numbers(engine) == [f"F2026-00000{i}" for i in range(1, 8)]
    assert sequences(engine) == [("F", 2026, 7)]


@pytest.mark.postgres
def test_one_run_promoted_twice_at_once_is_issued_once(pg_october):
    engine, settings = pg_october.engine, pg_october.settings
    run = preprod(engine, OPTIONS, settings, NOW)
    results = promote_together(pg_october, [run.run_id, run.run_id])
    assert sorted(r.invoices for r in results) == [0, 4]
    loser = next(r for r in results if r.invoices == 0)
    assert "already issued" in loser.message
    assert issued_numbers(engine) == [f"F2026-00000{i}" for i in range(1, 5)]
    assert sequences(engine) == [("F", 2026, 4)]
    assert (list_runs(engine)["kind"] == "production").sum() == 1
    applied = credit_entries(engine).query("amount_cents < 0")
    assert sorted(applied["amount_cents"].astype(int)) == [-5400, -2000]  # applied once each


# ---------------------------------------------------------------------------- 7. credit notes

def held_off(engine: Engine, reached, finished) -> bool:
    """Waits (at most 30 s) until another transaction has ``finished()``, or has ``reached()`` the
    lock of the invoices table that this one holds and is held there: on PostgreSQL, a session's
    lock request on ``invoices`` is waiting (pg_locks); on SQLite, the lock is the database's one
    write lock, which this transaction holds. Whether it got there, not how long it took."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if finished():
            return True
        if reached():
            if engine.dialect.name != "postgresql":
                return True
            with engine.connect() as connection:
                if connection.execute(text("SELECT count(*) FROM pg_locks WHERE NOT granted "
                                           "AND relation = 'invoices'::regclass")).scalar_one():
                    return True
        time.sleep(0.01)
    return False


def test_credit_note_cancels_an_invoice_into_account_credit(october):
    engine, settings, ids = october.engine, october.settings, october.ids
    run = preprod(engine, OPTIONS, settings, NOW)
    done = production(engine, run.run_id, settings, NOW)
    original = frame(engine, select(s.Invoice.__table__).where(s.Invoice.number == "F2026-000001"))
    original_items = frame(engine, select(s.InvoiceItem.__table__).where(
        s.InvoiceItem.invoice_id == int(original["id"].iloc[0])).order_by(s.InvoiceItem.id))

    number = issue_credit_note(engine, "F2026-000001", "wrong rate", LATER)
    assert number == "A2026-000001"
    note = frame(engine, select(s.Invoice.__table__).where(s.Invoice.number == number)).iloc[0]
    assert (note["kind"], note["status"], int(note["customer_id"]), note["period"]) == (
        "credit_note", "issued", ids["C1"], PERIOD)
    # C1's invoice negated: 45.35 + 9.07 = 54.42
    assert (int(note["total_excl_cents"]), int(note["total_vat_cents"]), int(note["total_incl_cents"])) == (
        -4535, -907, -5442)
    assert (int(note["credit_applied_cents"]), int(note["net_payable_cents"])) == (0, 0)
    assert int(note["corrects_invoice_id"]) == int(original["id"].iloc[0])
    assert pd.isna(note["run_id"]) and note["invoice_date"] == LATER.date()
    lines = frame(engine, select(s.InvoiceItem.__table__).where(s.InvoiceItem.invoice_id == int(note["id"])))
    # the lines without the credit line: -3980 - 500 - 13 - 42 = -4535
    assert sorted(lines["amount_cents"].astype(int)) == [-3980, -500, -42, -13]
    assert all(d.startswith("wrong rate: ") for d in lines["description"])
    vat = frame(engine, select(s.InvoiceVat.base_cents, s.InvoiceVat.vat_cents).where(
        s.InvoiceVat.invoice_id == int(note["id"])))
    assert [tuple(map(int, r)) for r in vat.values] == [(-4535, -907)]

    # the original is left as it was
    pd.testing.assert_frame_equal(
        frame(engine, select(s.Invoice.__table__).where(s.Invoice.number == "F2026-000001")), original)
    pd.testing.assert_frame_equal(frame(engine, select(s.InvoiceItem.__table__).where(
        s.InvoiceItem.invoice_id == int(original["id"].iloc[0])).order_by(s.InvoiceItem.id)), original_items)

    # C1 pays by direct debit and F2026-000001 is not debited yet: its net payable 34.42 is set
    # against its collection (it will not be debited); the 20.00 of account credit it used comes
    # back as account credit: 54.42 - 34.42 = 20.00
    assert int(note["collection_offset_cents"]) == 3442
    credit = credit_entries(engine)
    last = credit.iloc[-1]
    assert (int(last["customer_id"]), int(last["amount_cents"]), last["entry_date"]) == (
        ids["C1"], 2000, LATER.date())
    assert pd.isna(last["invoice_id"]) and last["description"] == (
        "credit note A2026-000001 for F2026-000001, €34.42 set against its collection: wrong rate")

    with pytest.raises(RefusedError, match="already has a credit note"):
        issue_credit_note(engine, "F2026-000001", "again", LATER)
    for wrong in ("A2026-000001", f"PRE-{run.run_id}-0001", "F2026-999999"):
        with pytest.raises(RefusedError, match="is not an issued invoice"):
            issue_credit_note(engine, wrong, "no", LATER)
    assert sequences(engine) == [("A", 2026, 1), ("F", 2026, 4)]
    assert len(credit_entries(engine)) == len(credit)
    assert done.invoices == 4

    # November applies it: C1 11256 incl. (see the production test); credit 2000 - 2000 + 2000
    # = 2000 -> net 11256 - 2000 = 9256; the previous invoice is still October's
    nov = stored_invoices(engine, preprod(engine, NOVEMBER, settings, LATER).run_id).loc["C1"]
    assert (int(nov["total_incl_cents"]), int(nov["credit_applied_cents"]), int(nov["net_payable_cents"])) == (
        11256, 2000, 9256)
    assert int(nov["previous_amount_cents"]) == 5442


def test_a_reopening_credit_note_lets_the_period_be_invoiced_again(october):
    engine, settings = october.engine, october.settings
    production(engine, preprod(engine, OPTIONS, settings, NOW).run_id, settings, NOW)

    def invoice_id(number):
        return int(frame(engine, select(s.Invoice.id).where(s.Invoice.number == number)).iloc[0, 0])

    def billed_by(invoice_id):
        calls = all_ratings(engine)
        calls = calls[calls["invoice_id"] == invoice_id]
        charges = frame(engine, select(s.OneOffCharge.id).where(s.OneOffCharge.invoice_id == invoice_id))
        return sorted(calls["cdr_id"].astype(int)), sorted(charges["id"].astype(int))

    before = {n: billed_by(invoice_id(n)) for n in ("F2026-000001", "F2026-000002")}
    assert len(before["F2026-000001"][0]) == 4 and len(before["F2026-000002"][1]) == 2  # C1's calls, C2's one-offs
    issue_credit_note(engine, "F2026-000001", "wrong rate", LATER, reinvoice=True)
    issue_credit_note(engine, "F2026-000002", "wrong address", LATER, reinvoice=True)
    assert all(billed_by(invoice_id(n)) == ([], []) for n in before)  # unbilled again
    rerun = preprod(engine, OPTIONS, settings, LATER)
    flagged = run_report(engine, rerun.run_id, settings)["Anomalies"]
    already = set(flagged.loc[flagged["Problem"] == "already_invoiced", "Line or key"])
    assert already == {"C3", "C4"}  # not C1 and C2 any more
    done = production(engine, rerun.run_id, settings, LATER)
    assert (done.invoices, done.numbers, sorted(done.skipped)) == (2, ("F2026-000005", "F2026-000006"),
                                                                   ["C3", "C4"])
    new = stored_invoices(engine, done.run_id)
    assert new["number"].to_dict() == {"C1": "F2026-000005", "C2": "F2026-000006"}
    # the same October lines as the cancelled invoices (see the module docstring). C1 pays by direct
    # debit and F2026-000001 was not debited: its net 34.42 is set against its collection, and only
    # the 20.00 of account credit it had used comes back (20.00 - 20.00 + 20.00 = 20.00), so C1
    # owes 54.42 - 20.00 = 34.42 again, once; C2 pays by transfer: its note's 176.36 is account
    # credit, all of it applied, so nothing more is due
    assert [amounts(new.loc[c]) for c in ("C1", "C2")] == [
        (0, 4480, 0, 55, 4535, 907, 5442, 2000, 3442), (14900, 0, 1348, 115, 16363, 1273, 17636, 17636, 0)]
    # their previous invoice is one of an earlier period (none here), not the cancelled October one
    assert new["previous_amount_cents"].isna().all()
    assert billed_by(invoice_id("F2026-000005")) == before["F2026-000001"]
    assert billed_by(invoice_id("F2026-000006")) == before["F2026-000002"]
    # a third run of October invoices nobody; a credit note that does not reopen leaves it closed
    issue_credit_note(engine, "F2026-000005", "goodwill", LATER)
    again = production(engine, preprod(engine, OPTIONS, settings, LATER).run_id, settings, LATER)
    assert again.invoices == 0 and sorted(again.skipped) == ["C1", "C2", "C3", "C4"]


def test_a_reopening_credit_note_waits_for_a_production_of_its_period(october, monkeypatch):
    """A credit note that reopens October, issued while a production run of October is between
    reading its inputs and marking what it bills, must not let that run bill C1 from inputs read
    before the release (it would mark C1's calls billed by an invoice without them)."""
    import workbench.billing.runs as billing

    engine, settings = october.engine, october.settings
    production(engine, preprod(engine, OPTIONS, settings, NOW).run_id, settings, NOW)
    second = preprod(engine, OPTIONS, settings, LATER)  # everyone is invoiced already
    import workbench.billing.credit_notes as notes

    real_changes, real_lock, outcome = billing.fingerprint_changes, notes.lock_invoices, []
    note_locking = threading.Event()

    def lock_invoices(connection):
        if threading.current_thread() is not threading.main_thread():
            note_locking.set()
        real_lock(connection)

    def note_meanwhile(reviewed, current):
        def issue():
            other = make_engine(engine.url.render_as_string(hide_password=False))
            try:
                outcome.append(issue_credit_note(other, "F2026-000001", "wrong rate", LATER, reinvoice=True))
            except Exception as exc:  # reported by the test
                outcome.append(exc)
            finally:
                other.dispose()
        thread = threading.Thread(target=issue)
        thread.start()
        # the run goes on once the note waits for it (or, without the lock, has committed)
        assert held_off(engine, note_locking.is_set, lambda: bool(outcome)), "the credit note is stuck"
        threads.append(thread)
        return real_changes(reviewed, current)

    threads: list[threading.Thread] = []
    monkeypatch.setattr(notes, "lock_invoices", lock_invoices)
    monkeypatch.setattr(billing, "fingerprint_changes", note_meanwhile)
    done = production(engine, second.run_id, settings, LATER)
    monkeypatch.setattr(billing, "fingerprint_changes", real_changes)
    threads[0].join(30)
    assert outcome == ["A2026-000001"] and done.invoices == 0
    c1 = october.ids["C1"]
    unbilled = all_ratings(engine)
    unbilled = unbilled[(unbilled["customer_id"] == c1) & unbilled["invoice_id"].isna()]
    assert len(unbilled) == 4  # released by the note, after the run
    again = production(engine, preprod(engine, OPTIONS, settings, LATER).run_id, settings, LATER)
    assert again.invoices == 1 and int(stored_invoices(engine, again.run_id).loc["C1", "consumption"]) == 55


def test_two_credit_notes_for_one_invoice_at_once_make_one(october, monkeypatch):
    import workbench.billing.credit_notes as billing

    engine, settings = october.engine, october.settings
    production(engine, preprod(engine, OPTIONS, settings, NOW).run_id, settings, NOW)
    real_take, real_lock = billing.take_numbers, billing.lock_invoices
    locking, taking, start, outcome = [], [], threading.Barrier(2), []

    def lock_invoices(connection):
        locking.append(threading.current_thread())
        real_lock(connection)

    def held_take(connection, series, year, count):
        # the first note past its check takes its number only once the other one waits for the
        # lock (or, without the lock, is past its check too, which would make two notes)
        taking.append(threading.current_thread())
        held_off(engine, lambda: len(locking) == 2, lambda: len(taking) == 2 or bool(outcome))
        return real_take(connection, series, year, count)

    monkeypatch.setattr(billing, "lock_invoices", lock_invoices)
    monkeypatch.setattr(billing, "take_numbers", held_take)

    def issue():
        start.wait()
        try:
            outcome.append(issue_credit_note(engine, "F2026-000001", "wrong rate", LATER, reinvoice=True))
        except RefusedError as exc:
            outcome.append(str(exc))

    threads = [threading.Thread(target=issue) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcome) == ["A2026-000001", "F2026-000001 already has a credit note"]


def test_a_credit_note_after_collection_is_account_credit_for_the_next_invoice(october):
    """F2026-000001 (C1, net 34.42) is debited, then credited 12.00: the 12.00 is account credit,
    which November's invoice uses (its debit is 12.00 less); nothing is set against the debit."""
    engine, settings, ids = october.engine, replace(october.settings, storage_url=str(october.folder / "ftp")), \
        october.ids
    production(engine, preprod(engine, OPTIONS, settings, NOW).run_id, settings, NOW)
    october_debits = generate_direct_debits(engine, settings, datetime(2026, 11, 20, 8), period=PERIOD)
    assert october_debits.debits[["invoice_number", "amount_cents"]].values.tolist() == [["F2026-000001", 3442]]
    number = issue_credit_note(engine, "F2026-000001", "one week without service", datetime(2026, 11, 21, 9),
                               amount_cents=1200)
    note = frame(engine, select(s.Invoice.__table__).where(s.Invoice.number == number)).iloc[0]
    # 12.00 at 20 %: 1000 excl. + 200 VAT
    assert [int(note[c]) for c in ("total_excl_cents", "total_vat_cents", "total_incl_cents",
                                   "collection_offset_cents")] == [-1000, -200, -1200, 0]
    assert credit_entries(engine).loc[lambda c: c["customer_id"] == ids["C1"], "amount_cents"].astype(int).tolist() \
        == [2000, -2000, 1200]
    # November: C1 11256 incl. (see the production test), credit 1200 applied -> net 10056
    nov = production(engine, preprod(engine, NOVEMBER, settings, LATER).run_id, settings, LATER)
    c1 = stored_invoices(engine, nov.run_id).loc["C1"]
    assert [int(c1[c]) for c in ("total_incl_cents", "credit_applied_cents", "net_payable_cents")] == [
        11256, 1200, 10056]
    november_debits = generate_direct_debits(engine, settings, datetime(2026, 12, 20, 8), period="2026-11")
    assert november_debits.debits[["invoice_number", "amount_cents"]].values.tolist() == [[c1["number"], 10056]]
    assert november_debits.total_cents == 10056
    assert int(credit_entries(engine).loc[lambda c: c["customer_id"] == ids["C1"], "amount_cents"].sum()) == 0


def test_a_credit_note_during_a_sepa_run_waits_for_its_debits(october, monkeypatch):
    """A SEPA run has read F2026-000001 (C1, net 34.42) as to debit and is writing its file when
    a credit note of that invoice is issued: the note waits for the run's debits, sees the
    invoice debited and makes its 54.42 account credit; it never sets off what is being debited."""
    import workbench.jobs.sepa as sepa_job

    engine = october.engine
    settings = replace(october.settings, storage_url=str(october.folder / "ftp"))
    production(engine, preprod(engine, OPTIONS, settings, NOW).run_id, settings, NOW)
    real_file, outcome, threads = sepa_job.direct_debit_file, [], []

    def note():
        outcome.append(issue_credit_note(engine, "F2026-000001", "disputed", LATER))

    def waiting_for_debits() -> bool:
        if engine.dialect.name != "postgresql":
            return True  # SQLite: the run holds the one write lock the note needs
        with engine.connect() as connection:
            return bool(connection.execute(text("SELECT count(*) FROM pg_locks WHERE NOT granted "
                                                "AND relation = 'sepa_debits'::regclass")).scalar_one())

    def file_during_a_note(*args, **kwargs):
        threads.append(threading.Thread(target=note))
        threads[0].start()
        held_off(engine, waiting_for_debits, lambda: bool(outcome))
        return real_file(*args, **kwargs)

    monkeypatch.setattr(sepa_job, "direct_debit_file", file_during_a_note)
    debits = generate_direct_debits(engine, settings, datetime(2026, 11, 20, 8), period=PERIOD)
    threads[0].join(30)
    assert outcome == ["A2026-000001"]
    assert debits.debits[["invoice_number", "amount_cents"]].values.tolist() == [["F2026-000001", 3442]]
    offset = frame(engine, select(s.Invoice.collection_offset_cents).where(s.Invoice.number == "A2026-000001"))
    assert int(offset.iloc[0, 0]) == 0
    # 20.00 given, 20.00 applied to F2026-000001, 54.42 of the note
    assert credit_entries(engine).loc[lambda c: c["customer_id"] == october.ids["C1"],
                                      "amount_cents"].astype(int).tolist() == [2000, -2000, 5442]


def test_partial_credit_notes_are_checked(october):
    engine, settings = october.engine, october.settings
    production(engine, preprod(engine, OPTIONS, settings, NOW).run_id, settings, NOW)
    before = table_counts(engine)
    with pytest.raises(InputError, match=r"^a credit note of €54.43 is more than F2026-000001's total €54.42$"):
        issue_credit_note(engine, "F2026-000001", "no", LATER, amount_cents=5443)
    with pytest.raises(InputError, match="must be positive, not €0.00"):
        issue_credit_note(engine, "F2026-000001", "no", LATER, amount_cents=0)
    with pytest.raises(InputError, match="a partial credit note cannot reopen the period"):
        issue_credit_note(engine, "F2026-000001", "no", LATER, reinvoice=True, amount_cents=1200)
    # C2's invoice has VAT at 20 % and at 0 % (its deposit)
    with pytest.raises(RefusedError, match="F2026-000002 has 2 VAT rates: a partial credit note needs one"):
        issue_credit_note(engine, "F2026-000002", "no", LATER, amount_cents=1200)
    assert table_counts(engine) == before
    # the whole total as an amount is a full credit note: the invoice's own lines
    number = issue_credit_note(engine, "F2026-000003", "closed", LATER, amount_cents=1556)
    lines = frame(engine, select(s.InvoiceItem.type, s.InvoiceItem.amount_cents).join(
        s.Invoice, s.Invoice.id == s.InvoiceItem.invoice_id).where(s.Invoice.number == number))
    assert sorted(lines["amount_cents"].astype(int)) == [-1284, -13]  # C3: prorated 1284, consumption 13


def test_several_partial_credit_notes_credit_an_invoice_up_to_its_total(october):
    """F2026-000001 (C1, 54.42 incl. VAT at 20 %, net payable 34.42 by direct debit, not debited)."""
    engine, settings = october.engine, october.settings
    production(engine, preprod(engine, OPTIONS, settings, NOW).run_id, settings, NOW)
    first = issue_credit_note(engine, "F2026-000001", "a week without service", LATER, amount_cents=1200)
    second = issue_credit_note(engine, "F2026-000001", "a second week", LATER, amount_cents=1800)
    # 54.42 - 12.00 - 18.00 = 24.42 left to credit
    with pytest.raises(InputError, match=r"^a credit note of €24.43 is more than F2026-000001's total left to "
                                         r"credit \(€30.00 credited already\) €24.42$"):
        issue_credit_note(engine, "F2026-000001", "no", LATER, amount_cents=2443)
    with pytest.raises(RefusedError, match="already has partial credit notes of €30.00"):
        issue_credit_note(engine, "F2026-000001", "no", LATER, reinvoice=True)
    rest = issue_credit_note(engine, "F2026-000001", "closed", LATER)  # the rest: 24.42
    notes = frame(engine, select(s.Invoice.number, s.Invoice.total_excl_cents, s.Invoice.total_vat_cents,
                                 s.Invoice.total_incl_cents, s.Invoice.collection_offset_cents)
                  .where(s.Invoice.kind == "credit_note").order_by(s.Invoice.id))
    # excl. = round(amount x 10000 / 12000): 1200 -> 1000; 1800 -> 1500; 2442 -> 2035 (2035.0);
    # set against the collection of 34.42: 12.00, then 18.00, then the 4.42 left; 20.00 is credit
    assert [tuple(int(v) if not isinstance(v, str) else v for v in r) for r in notes.itertuples(index=False)] == [
        (first, -1000, -200, -1200, 1200), (second, -1500, -300, -1800, 1800), (rest, -2035, -407, -2442, 442)]
    assert int(credit_entries(engine)["amount_cents"].iloc[-1]) == 2000
    with pytest.raises(RefusedError, match="^F2026-000001 already has a credit note$"):
        issue_credit_note(engine, "F2026-000001", "again", LATER, amount_cents=1)


def pdf_text(pdf: bytes) -> str:
    """The text of a PDF, by pdftotext (layout kept, one line per printed line)."""
    import subprocess

    done = subprocess.run(["pdftotext", "-layout", "-", "-"], input=pdf, capture_output=True, check=True)
    return done.stdout.decode()


def test_issued_documents_keep_the_customers_identity_at_issue(october):
    """C1 (Alpha SARL, 1 rue A, 75001 Paris) is invoiced for October, then becomes Alpha Holding,
    12 avenue Nouvelle, 69002 Lyon, VAT FR83404833048: its issued invoice still prints (PDF,
    email) what it was issued to; its November draft and a credit note issued after the move
    print the new identity."""
    from workbench import jobs

    engine = october.engine
    settings = replace(october.settings, storage_url=str(october.folder / "ftp"),
                       outbox_dir=str(october.folder / "outbox"))
    promotion = jobs.promote(engine, settings, approved(engine, preprod(engine, OPTIONS, settings, NOW).run_id), NOW)
    kept = frame(engine, select(*(s.Invoice.__table__.c[c] for c in s.ISSUED_IDENTITY))
                 .where(s.Invoice.number == "F2026-000001"))
    # no VAT number, no SIREN, the service at the billing address (no service address)
    assert records(kept) == [("Alpha SARL", "1 rue A", "", "75001", "Paris", "FR", None, None, None, None, None,
                              None, None)]

    moved = [["C1", "Alpha Holding", "12 avenue Nouvelle", "Bât. B", "69002", "Lyon", "FR", "FR83404833048", "fr",
              "direct_debit", "A", "TEST"], *BILLING_CUSTOMERS[1:]]
    load_reference(engine, billing_reference_folder(october.folder / "moved", only=["customers"], customers=moved))
    assert frame(engine, select(s.Customer.city).where(s.Customer.account_number == "C1")).iloc[0, 0] == "Lyon"

    # the stored PDF is lost: rendered again, it prints the customer as invoiced
    stored = october.folder / "ftp" / frame(engine, select(s.Invoice.document).where(
        s.Invoice.number == "F2026-000001")).iloc[0, 0]
    stored.unlink()
    assert jobs.publish_invoices(engine, settings, ["F2026-000001"]).stored == [
        str(stored.relative_to(october.folder / "ftp"))]
    for pdf in (stored.read_bytes(), jobs.invoice_pdf(engine, replace(settings, storage_url=str(october.folder / "x")),
                                                      "F2026-000001")):
        text = pdf_text(pdf)
        assert "Alpha SARL" in text and "1 rue A" in text and "75001 Paris" in text, text
        assert "Alpha Holding" not in text and "Nouvelle" not in text and "Lyon" not in text
        assert "FR83404833048" not in text

    # its email too
    delivery = jobs.deliver(engine, settings, run_id=promotion.run.run_id, now=LATER)
    assert delivery.sent.ok
    email = (october.folder / "outbox" / "F2026-000001-compta@alpha.example.fr.eml").read_text()
    assert "Subject: Facture F2026-000001 - octobre 2026 - Alpha SARL" in email and "Holding" not in email

    # a draft shows the customer as it is now
    draft = preprod(engine, NOVEMBER, settings, LATER)
    text = pdf_text(jobs.invoice_pdf(engine, settings, f"PRE-{draft.run_id}-0001"))
    assert "Alpha Holding" in text and "12 avenue Nouvelle" in text and "69002 Lyon" in text
    assert "FR83404833048" in text and "Alpha SARL" not in text

    # a credit note issued after the move is issued to the new identity
    note = jobs.credit_note(engine, settings, "F2026-000001", "wrong rate", now=LATER)
    kept = frame(engine, select(*(s.Invoice.__table__.c[c] for c in s.ISSUED_IDENTITY))
                 .where(s.Invoice.number == note.number))
    assert records(kept) == [("Alpha Holding", "12 avenue Nouvelle", "Bât. B", "69002", "Lyon", "FR",
                              "FR83404833048", None, None, None, None, None, None)]
    text = pdf_text(jobs.invoice_pdf(engine, settings, note.number))
    assert "Alpha Holding" in text and "69002 Lyon" in text and "Alpha SARL" not in text


def test_invoice_numbers_follow_their_dates(october):
    """F2026-000001 of October dated 2026-11-01, F2026-000002 of November dated 2026-12-01; October
    reopened and invoiced again dated 2026-11-01 would make F2026-000003 dated before F2026-000002:
    refused with both dates, nothing issued; dated 2026-12-01 it is issued as F2026-000003."""
    engine, settings = october.engine, october.settings
    c1 = "accounts:C1"
    october_run = production(engine, preprod(engine, replace(OPTIONS, customers=c1), settings, NOW).run_id,
                             settings, NOW)
    november_run = production(engine, preprod(engine, replace(NOVEMBER, customers=c1), settings, LATER).run_id,
                              settings, LATER)
    assert (october_run.numbers, november_run.numbers) == (("F2026-000001",) * 2, ("F2026-000002",) * 2)
    issue_credit_note(engine, "F2026-000001", "wrong rate", LATER, reinvoice=True)
    rerun = preprod(engine, replace(OPTIONS, customers=c1), settings, LATER)
    before = table_counts(engine)
    with pytest.raises(RefusedError) as refused:
        production(engine, rerun.run_id, settings, LATER)
    assert str(refused.value) == (
        f"the invoices of run {rerun.run_id} dated 2026-11-01 would follow F2026-000002 dated 2026-12-01; "
        "date them 2026-12-01 or later (a new pre-production billing with --invoice-date)")
    assert refused.value.code == "not_chronological"
    assert table_counts(engine) == before and sequences(engine) == [("A", 2026, 1), ("F", 2026, 2)]
    assert list_runs(engine).set_index("id").loc[rerun.run_id, "status"] == "done"  # can be promoted later

    # the same day as the last invoice is in order
    dated = replace(OPTIONS, customers=c1, invoice_date=date(2026, 12, 1), due_date=date(2026, 12, 31))
    done = production(engine, preprod(engine, dated, settings, LATER).run_id, settings, LATER)
    assert done.numbers == ("F2026-000003", "F2026-000003")
    issued = frame(engine, select(s.Invoice.number, s.Invoice.invoice_date).where(s.Invoice.kind == "invoice",
                                                                                  s.Invoice.status == "issued")
                   .order_by(s.Invoice.number))
    assert records(issued) == [("F2026-000001", date(2026, 11, 1)), ("F2026-000002", date(2026, 12, 1)),
                               ("F2026-000003", date(2026, 12, 1))]


def test_credit_note_numbers_follow_their_dates(october):
    """A credit note dated (by the operator's clock) before the last credit note of its year is
    refused; one of the next year starts the next year's series."""
    engine, settings = october.engine, october.settings
    production(engine, preprod(engine, OPTIONS, settings, NOW).run_id, settings, NOW)
    assert issue_credit_note(engine, "F2026-000001", "wrong rate", datetime(2026, 11, 20, 9)) == "A2026-000001"
    before = table_counts(engine)
    with pytest.raises(RefusedError, match="^a credit note for F2026-000002 dated 2026-11-10 would follow "
                       "A2026-000001 dated 2026-11-20; date it 2026-11-20 or later$"):
        issue_credit_note(engine, "F2026-000002", "wrong address", datetime(2026, 11, 10, 9))
    assert table_counts(engine) == before and sequences(engine) == [("A", 2026, 1), ("F", 2026, 4)]
    # 2027-01-02 in Paris: the 2027 series, which has nothing before it
    assert issue_credit_note(engine, "F2026-000002", "wrong address", datetime(2027, 1, 2, 9)) == "A2027-000001"


# ---------------------------------------------------------------------------- 8. the Excel report

REQUIRED_COLUMNS = [
    "Invoice number", "Account number", "Customer name", "Total amount billed", "Net payable amount",
    "Initial billing items amount", "Recurring billing items amount", "Consumption amount",
    "Prorated amount", "Previous invoice amount",
]
TRICKY_NAMES = {"C1": '=HYPERLINK("http://x","y")', "C2": "+33 x", "C3": "@SUM(1)", "C4": "-1+2"}
#: the totals row (euros): 54.42 + 176.36 + 15.56 + 54.00; 34.42 + 176.36 + 15.56 + 0;
#: one-offs 149.00; recurring 44.80 + 45.00; consumption 0.55 + 1.15 + 0.13; prorated 13.48 + 12.84;
#: excl. 45.35 + 163.63 + 12.97 + 45.00; VAT 9.07 + 12.73 + 2.59 + 9.00; credit 20.00 + 54.00
EXPECTED_TOTALS = {
    "Total amount billed": 300.34, "Net payable amount": 226.34, "Initial billing items amount": 149.00,
    "Recurring billing items amount": 89.80, "Consumption amount": 1.83, "Prorated amount": 26.32,
    "Total excl. VAT": 266.95, "VAT": 33.39, "Account credit applied": 74.00,
}


def _report(scenario: Scenario, path: Path):
    """October's run with the tricky customer names, its report written and read back."""
    customers = [[r[0], TRICKY_NAMES[r[0]], *r[2:]] for r in BILLING_CUSTOMERS]
    load_reference(scenario.engine, billing_reference_folder(scenario.folder / "names", only=["customers"],
                                                             customers=customers))
    run = preprod(scenario.engine, OPTIONS, scenario.settings, NOW)
    written = write_control_report(run_report(scenario.engine, run.run_id), path)
    assert written == path and path.exists()
    book = openpyxl.load_workbook(path)
    sheet = book.worksheets[0]
    header = [c.value for c in sheet[1]]
    return run, book, sheet, header


def _money_cell(cell) -> None:
    assert cell.data_type == "n" and isinstance(cell.value, int | float), (cell.coordinate, cell.value)
    assert "€" in cell.number_format and "0.00" in cell.number_format, (cell.coordinate, cell.number_format)


def test_excel_control_report(october, tmp_path):
    run, book, sheet, header = _report(october, tmp_path / "out" / "report.xlsx")
    assert book.sheetnames == ["Invoices", "Summary", "By zone", "VAT by category", "Anomalies", "Lines",
                               "Period balance"]
    assert header[:10] == REQUIRED_COLUMNS
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref is not None and sheet.auto_filter.ref.startswith("A1:")
    assert sheet.auto_filter.ref.endswith("5")  # header + 4 invoices
    assert sheet.max_row == 6  # header, 4 invoices, totals
    col = {name: i + 1 for i, name in enumerate(header)}

    rows = {sheet.cell(r, col["Account number"]).value: r for r in range(2, 6)}
    assert [sheet.cell(r, 1).value for r in range(2, 6)] == [f"PRE-{run.run_id}-000{i}" for i in range(1, 5)]
    for account, name in TRICKY_NAMES.items():
        cell = sheet.cell(rows[account], col["Customer name"])
        assert (cell.data_type, cell.value) == ("s", name)
    money = list(EXPECTED_TOTALS)
    for row in rows.values():
        for label in money:
            _money_cell(sheet.cell(row, col[label]))
    c2 = rows["C2"]
    for label, euros in (("Total amount billed", 176.36), ("Net payable amount", 176.36),
                         ("Initial billing items amount", 149.00), ("Consumption amount", 1.15),
                         ("Total excl. VAT", 163.63), ("VAT", 12.73)):
        cell = sheet.cell(c2, col[label])
        _money_cell(cell)
        assert cell.value == pytest.approx(euros, abs=1e-9), label
    assert sheet.cell(c2, col["Previous invoice amount"]).value is None  # no earlier invoice

    assert sheet.cell(6, 1).value == "Total"
    for label, euros in EXPECTED_TOTALS.items():
        if label == "Prorated amount":
            continue  # see test_excel_prorated_amount_is_money
        cell = sheet.cell(6, col[label])
        _money_cell(cell)
        assert cell.value == pytest.approx(euros, abs=1e-9), label
    # 4 + 2 + 1 + 0 calls; minutes per invoice to 2 decimals, half up: 855 s -> 14.25,
    # 190 -> 3.1666.. -> 3.17, 125 -> 2.0833.. -> 2.08, 0 -> 0; total 19.50
    assert sheet.cell(6, col["Calls"]).value == 7
    assert sheet.cell(6, col["Minutes"]).value == pytest.approx(19.50, abs=1e-9)
    assert sheet.cell(2, col["Minutes"]).number_format == sheet.cell(6, col["Minutes"]).number_format == "#,##0.00"

    anomalies = book["Anomalies"]
    found = [tuple(c.value for c in row) for row in anomalies.iter_rows(min_row=2)]
    no_mandate = [r for r in found if r[2] == "no_mandate_for_direct_debit"]
    assert [r[1] for r in no_mandate] == ["C3"]  # C1 has its mandate
    assert no_mandate[0][3] == "pays by direct debit but has no active SEPA mandate"
    assert no_mandate[0][4] == "@SUM(1)"  # the customer's name, as text, not a formula
    for name in ("Summary", "By zone", "Anomalies", "Lines"):
        assert book[name].freeze_panes == "A2" and book[name].auto_filter.ref is not None
    summary = {r[0]: r[1:] for r in book["Summary"].iter_rows(min_row=2, values_only=True)}
    # one-offs: 2 lines, 149.00; credit lines: C1 -20.00, C4 -54.00
    assert summary["Initial (one-off)"][0] == 2 and summary["Initial (one-off)"][1] == pytest.approx(149.00)
    assert summary["Account credit applied"][1] == pytest.approx(-74.00)
    zones = {r[0]: r for r in book["By zone"].iter_rows(min_row=2, values_only=True)}
    # FIX: C1 13 + C2 5 + C3 13 = 0.31 over 3 calls of 125 + 90 + 125 = 340 s (5.666.. -> 5.67 min)
    assert zones["FIX"][2:] == (3, 3, pytest.approx(5.67, abs=1e-9), pytest.approx(0.31))


def test_excel_prorated_amount_is_money(october, tmp_path):
    _run, _book, sheet, header = _report(october, tmp_path / "report.xlsx")
    column = header.index("Prorated amount") + 1
    rows = {sheet.cell(r, 2).value: r for r in range(2, 6)}
    _money_cell(sheet.cell(rows["C2"], column))  # 13.48
    assert sheet.cell(rows["C2"], column).value == pytest.approx(13.48)
    total = sheet.cell(6, column)
    assert total.value == pytest.approx(EXPECTED_TOTALS["Prorated amount"])  # 13.48 + 12.84
    _money_cell(total)


# ---------------------------------------------------------------------------- 9. customer profile

def _pdf_texts(scenario: Scenario, run_id: int) -> dict[str, str]:
    """The text of each draft PDF of a run, rendered in one batch, by account number."""
    from pypdf import PdfReader

    from workbench.documents import render_batch
    from workbench.documents.models import invoice_models, operator_identity

    ids = invoice_ids(scenario.engine, run_id)
    with scenario.engine.connect() as connection:
        models = invoice_models(connection, list(ids.values()))
    pdfs = render_batch(models, operator_identity(scenario.settings), draft=True)
    return {account: "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdfs[model["number"]])).pages)
            for account, model in zip(ids, models, strict=True)}


def test_the_same_call_shows_the_same_minutes_everywhere(october, tmp_path):
    """C3's one call (Z1, 125 s) is 125 / 60 = 2.0833... -> 2.08 minutes (2 decimals, half up,
    ``workbench.money.minutes``): the invoice line's quantity, the PDF (in French, C3's
    language: 2,08), the control report's invoice row and line, the customer's dashboard."""
    run = preprod(october.engine, OPTIONS, october.settings, NOW)
    items = frame(october.engine, select(s.InvoiceItem.quantity, s.InvoiceItem.seconds)
                  .join(s.Invoice, s.Invoice.id == s.InvoiceItem.invoice_id)
                  .where(s.Invoice.run_id == run.run_id, s.Invoice.customer_id == october.ids["C3"],
                         s.InvoiceItem.type == "consumption"))
    assert [(Decimal(q), int(sec)) for q, sec in items.values] == [(Decimal("2.08"), 125)]

    sheets = run_report(october.engine, run.run_id)
    invoices = sheets["Invoices"].set_index("Account number")
    assert invoices.loc["C3", "Minutes"] == Decimal("2.08")
    lines = sheets["Lines"]
    assert lines.loc[(lines["Account number"] == "C3") & (lines["Zone"] == "FIX"), "Quantity"].tolist() == [
        Decimal("2.08")]
    path = write_control_report(sheets, tmp_path / "report.xlsx")
    row = {r[1]: r for r in openpyxl.load_workbook(path).worksheets[0].iter_rows(min_row=2, values_only=True)}
    header = [c.value for c in openpyxl.load_workbook(path).worksheets[0][1]]
    assert row["C3"][header.index("Minutes")] == pytest.approx(2.08, abs=1e-9)

    text = _pdf_texts(october, run.run_id)["C3"]
    assert "2,08 min" in text and "2.08" not in text  # the decimal comma of French, as its amounts
    assert "3 min" not in text  # not rounded up to whole minutes any more
    assert monthly_consumption(october.engine, "C3")["minutes"].tolist() == [Decimal("2.08")]  # dashboards


def test_missing_values_are_never_printed_on_invoices(october):
    """C1 has a VAT number, the others none; rendered in one batch, no PDF shows ``nan``,
    ``None``, ``NaN`` or ``<NA>`` (a batch used to print ``N° TVA nan`` for the customers without
    one), and C1's number is printed."""
    customers = [list(r) for r in BILLING_CUSTOMERS]
    customers[0][7] = "FR40303265045"
    load_reference(october.engine, billing_reference_folder(october.folder / "vat", only=["customers"],
                                                            customers=customers))
    run = preprod(october.engine, OPTIONS, october.settings, NOW)
    texts = _pdf_texts(october, run.run_id)
    assert sorted(texts) == ["C1", "C2", "C3", "C4"]
    for account, written in texts.items():
        assert not re.search(r"\b(nan|NaN|None)\b|<NA>", written), (account, written)
    assert "FR40303265045" in texts["C1"]
    assert all("FR40303265045" not in texts[a] for a in ("C2", "C3", "C4"))


def test_customer_profile(october):
    engine, settings = october.engine, october.settings
    production(engine, preprod(engine, OPTIONS, settings, NOW).run_id, settings, NOW)
    issue_credit_note(engine, "F2026-000001", "wrong rate", LATER)

    profile = customer_profile(engine, "C1")
    assert set(profile) >= {"details", "contacts", "subscriptions", "mandates", "invoices", "credit"}
    details = profile["details"].iloc[0]
    assert (details["account_number"], details["name"], details["payment_method"], details["billing_group"]) == (
        "C1", "Alpha SARL", "direct_debit", "A")
    assert profile["contacts"][["email", "invoice_recipient"]].values.tolist() == [["compta@alpha.example.fr", True]]
    subs = profile["subscriptions"]
    assert list(zip(subs["code"], subs["quantity"].astype(int), strict=True)) == [("LINE", 2), ("MOBMIN", 1)]
    mandates = profile["mandates"]
    assert mandates[["reference", "iban", "bic", "status"]].values.tolist() == [
        ["MANDATE-C1-01", "FR7630006000011234567890189", "AGRIFRPP", "active"]]
    invoices = profile["invoices"]
    assert list(zip(invoices["number"], invoices["kind"], invoices["total_incl_cents"].astype(int), strict=True)) == [
        ("F2026-000001", "invoice", 5442), ("A2026-000001", "credit_note", -5442)]
    assert invoices["collection_offset_cents"].astype(int).tolist() == [0, 3442]
    # given 20.00, applied 20.00 to F2026-000001, then the credit note's 54.42 less the 34.42 set
    # against F2026-000001's collection (not debited yet): 20.00
    assert profile["credit"]["amount_cents"].astype(int).tolist() == [2000, -2000, 2000]

    quiet = customer_profile(engine, "C3")
    assert quiet["mandates"].empty and quiet["credit"].empty and quiet["contacts"].empty
    assert quiet["invoices"]["number"].tolist() == ["F2026-000003"]
    with pytest.raises(InputError, match="unknown account number 'C9'"):
        customer_profile(engine, "C9")


# ---------------------------------------------------------------------------- 10. the command line

@pytest.fixture
def run_cli(october, database_url, tmp_path, monkeypatch, capsys):
    """``workbench ...`` on the scenario's database: returns (exit status, stdout, stderr)."""
    for name in [n for n in os.environ if n.startswith("WORKBENCH_")]:  # the defaults, whatever is set
        monkeypatch.delenv(name)
    monkeypatch.setenv("WORKBENCH_OUTPUT_DIR", str(tmp_path / "out"))
    monkeypatch.chdir(tmp_path)

    def run(*args: str):
        capsys.readouterr()
        status = cli.main(["--database-url", database_url, *args])
        out = capsys.readouterr()
        return status, out.out, out.err

    return run


def _run_id(output: str) -> int:
    return int(re.search(r"run (\d+) for", output).group(1))


def test_cli_refuses_a_future_period_as_the_widget_does_and_warns_on_one_without_calls(run_cli, october):
    """One period check for the command line and the widget (``workbench.jobs.check_period``):
    the same words; a period in the past with no rated call is billed, with a warning on
    stderr and in the job's result."""
    from workbench.ui import check_run_options

    status, out, err = run_cli("preprod", "--period", "2999-01")
    with pytest.raises(InputError) as widget:
        check_run_options("2999-01", None, None, "all", "", False, False, october.settings)
    assert (status, out) == (2, "")
    assert err == f"error: {widget.value}\n" == "error: period 2999-01 is in the future\n"
    assert list_runs(october.engine).empty

    # the October scenario's calls are all in October: September has none
    status, out, err = run_cli("preprod", "--period", "2026-09", "--customers", "accounts:C1")
    assert status == 0 and "pre-production run" in out
    assert err.startswith("warning: period 2026-09 has no rated calls")
    from workbench import jobs
    result = jobs.preprod(october.engine, october.settings, jobs.run_options(october.settings, "2026-10"), LATER)
    assert result.warnings == ()
    result = jobs.preprod(october.engine, october.settings, jobs.run_options(october.settings, "2026-09"), LATER)
    assert len(result.warnings) == 1 and result.warnings[0] in err


def test_cli_billing_commands(run_cli, october, tmp_path):
    status, out, _ = run_cli("preprod", "--period", "2026-10", "--customers", "accounts:C1")
    assert status == 0
    first = _run_id(out)
    # C1 only: 54.42 incl., 34.42 net (module docstring)
    assert f"pre-production run {first} for 2026-10: 1 draft invoices (PRE-{first}-0001 to PRE-{first}-0001)" in out
    assert "total €54.42, net payable €34.42" in out
    assert (tmp_path / "out" / "reports" / f"control-report-2026-10-run{first}.xlsx").exists()
    # the default dates: invoice on 1 November, due 30 days later
    assert list_runs(october.engine).set_index("id").loc[first, ["invoice_date", "due_date"]].tolist() == [
        date(2026, 11, 1), date(2026, 12, 1)]

    status, out, _ = run_cli("preprod", "--period", "2026-10", "--customers", "accounts:C1")
    second = _run_id(out)
    status, out, _ = run_cli("runs")
    assert status == 0
    listed = [line.split() for line in out.splitlines()[1:]]
    assert [(int(r[0]), r[1], r[3]) for r in listed] == [(second, "preprod", "done"), (first, "preprod", "done")]
    assert [r[7] for r in listed] == ["-", "-"]  # no source run: "-", never NaN, None or <NA>

    status, out, _ = run_cli("compare", str(first), str(second))
    assert (status, out.strip()) == (0, f"run {first} -> run {second}: 0 of 1 accounts differ")

    # production refuses a run nobody approved; its author cannot approve it (four eyes)
    status, _, err = run_cli("production", "--run", str(second))
    assert status == 2 and f"run {second} is not approved" in err
    status, _, err = run_cli("approve", str(second), "--comment", "mine")
    assert status == 2 and "another reviewer must approve it" in err
    approved(october.engine, second, "alice")
    status, out, _ = run_cli("runs")
    assert [line.split()[-1] for line in out.splitlines()[1:]] == ["alice", "-"]
    status, out, _ = run_cli("production", "--approved", "--period", "2026-10")
    assert status == 0
    assert "1 invoices issued, F2026-000001 to F2026-000001; total €54.42, net payable €34.42" in out
    status, out, _ = run_cli("production", "--run", str(second))
    assert status == 0 and "already issued" in out and "nothing issued" in out

    status, out, _ = run_cli("report", str(first))
    assert status == 0 and "control report:" in out

    status, out, _ = run_cli("credit-note", "F2026-000001", "--reason", "wrong rate", "--amount", "12.00")
    year = datetime.now(UTC).year  # the CLI dates a credit note today
    assert (status, out.strip()) == (0, f"credit note A{year}-000001 issued for F2026-000001\n"
                                        f"   PDFs of A{year}-000001: 1 stored, 0 already stored, 0 failed, in var/ftp")
    note = frame(october.engine, select(s.Invoice.total_incl_cents, s.Invoice.collection_offset_cents)
                 .where(s.Invoice.number == f"A{year}-000001"))
    assert records(note) == [(-1200, 1200)]  # 12.00 off F2026-000001's debit still to be made (C1, 34.42)

    status, out, _ = run_cli("delete-run", str(first))
    assert (status, out.strip()) == (0, f"run {first} deleted (1 drafts)")


def test_cli_mail_stopped_by_the_server_exits_with_status_3_and_the_count_left(run_cli, october, monkeypatch):
    status, out, _ = run_cli("preprod", "--period", "2026-10", "--customers", "accounts:C1")
    status, out, _ = run_cli("production", "--run", str(_run_id(out)), "--force", "the mail server test")
    production_run = int(re.search(r"production run (\d+)", out).group(1))
    monkeypatch.setenv("WORKBENCH_SMTP_URL", "smtp://127.0.0.1:1")  # nothing listens there
    status, out, err = run_cli("mail", "--run", str(production_run))
    assert status == 3 and "STOPPED: SMTP server 127.0.0.1:1 unavailable" in out  # a cron job sees it
    assert "workbench mail --retry" in err and re.search(r"incomplete: \d+ email deliver(y|ies) left: \d+ to send", err)
    monkeypatch.delenv("WORKBENCH_SMTP_URL")  # the outbox
    status, out, _ = run_cli("mail", "--retry")
    assert status == 0 and "0 left to send" in out


@pytest.mark.parametrize(("args", "message"), [
    (["preprod", "--period", "2026-10", "--customers", "nonsense"],
     "error: customer selection 'nonsense': expected all, group:NAME or accounts:C1,C2"),
    (["preprod", "--period", "2026-10", "--customers", "accounts:C1,C9"], "error: unknown account numbers: C9"),
    (["preprod", "--period", "2026-10", "--customers", "group:nobody"], "error: no customer matches 'group:nobody'"),
    (["preprod", "--period", "2026-13"], "is not a billing period"),
    (["preprod", "--period", "2026-10", "--due-date", "2026-10-01"], "is before the invoice date"),
    (["production", "--run", "999"], "error: there is no billing run 999"),
    (["credit-note", "F2026-000009", "--reason", "x"], "error: F2026-000009 is not an issued invoice"),
    (["credit-note", "F2026-000009", "--reason", "x", "--amount", "12.005"],
     "error: credit note amount: '12.005' has more decimals than 1/100 allows"),
])
def test_cli_refusals_exit_with_status_2(run_cli, october, args, message):
    before = table_counts(october.engine)
    status, out, err = run_cli(*args)
    assert status == 2
    assert message in err and out == ""
    assert table_counts(october.engine) == before


# ---------------------------------------------------------------------------- 10. subscriptions: each day once

def subscriptions_only(engine: Engine, folder: Path, subscriptions: list[list[str]], line_price: str = "19.90") -> dict:
    """The billing operator with only ``subscriptions`` (no one-off charge, no call), its LINE at
    ``line_price``; returns account number -> customer id."""
    products = [[*p[:4], line_price, p[5]] if p[0] == "LINE" else p for p in BILLING_PRODUCTS]
    load_reference(engine, billing_reference_folder(folder, products=products, subscriptions=subscriptions,
                                                    one_off_charges=[]))
    return {a: int(i) for a, i in frame(engine, select(s.Customer.account_number, s.Customer.id)).values}


def run_options(period: str, advance: bool, accounts: str) -> RunOptions:
    p = Period.parse(period)
    return RunOptions(period, p.end, p.end + timedelta(days=30), customers=f"accounts:{accounts}", advance=advance)


def subscription_lines(engine: Engine, run_id: int) -> list[tuple]:
    """The subscription lines of a run's invoices: account, type, from, to, amount."""
    rows = frame(engine, select(s.Customer.account_number, s.InvoiceItem.type, s.InvoiceItem.period_from,
                                s.InvoiceItem.period_to, s.InvoiceItem.amount_cents)
                 .join(s.Invoice, s.Invoice.id == s.InvoiceItem.invoice_id)
                 .join(s.Customer, s.Customer.id == s.Invoice.customer_id)
                 .where(s.Invoice.run_id == run_id, s.InvoiceItem.subscription_id.is_not(None))
                 .order_by(s.Customer.account_number, s.InvoiceItem.period_from))
    return [(a, t, f, to, int(c)) for a, t, f, to, c in rows.itertuples(index=False)]


def issue(engine: Engine, settings: Settings, options: RunOptions) -> int:
    """A pre-production run promoted at once; returns the production run's id."""
    return production(engine, preprod(engine, options, settings, NOW).run_id, settings, NOW).run_id


def test_advance_runs_bill_a_new_subscription_s_first_partial_month_once(engine, settings, tmp_path):
    """LINE at 30.00 from 10 October 2026: September in advance, promoted, then October."""
    ids = subscriptions_only(engine, tmp_path / "ref", [["C2", "LINE", "1", "2026-10-10", "", ""]], "30.00")
    september = preprod(engine, run_options("2026-09", True, "C2"), settings, NOW)
    # 10-31 October: 3000 x 22 / 31 = 2129.03 -> 21.29
    assert subscription_lines(engine, september.run_id) == [
        ("C2", "prorated", date(2026, 10, 10), date(2026, 10, 31), 2129)]
    # drafts bill nothing: October reviewed before September is issued carries October too
    early = preprod(engine, run_options("2026-10", True, "C2"), settings, NOW)
    assert subscription_lines(engine, early.run_id) == [
        ("C2", "prorated", date(2026, 10, 10), date(2026, 10, 31), 2129),
        ("C2", "recurring", date(2026, 11, 1), date(2026, 11, 30), 3000)]
    issued = production(engine, september.run_id, settings, NOW)
    assert subscription_lines(engine, issued.run_id) == subscription_lines(engine, september.run_id)
    subscription_id = int(frame(engine, select(s.Subscription.id).where(s.Subscription.customer_id == ids["C2"]))
                          .iloc[0, 0])
    assert set(frame(engine, select(s.InvoiceItem.subscription_id).join(s.Invoice).where(
        s.Invoice.run_id == issued.run_id))["subscription_id"]) == {subscription_id}
    # ... and once September is issued, that review no longer holds
    with pytest.raises(RefusedError, match=re.escape(
            "changed since: previous (0 rows reviewed, 1 now); billed service periods (0 rows reviewed, 1 now); "
            "service history (0 rows reviewed, 2 now).")):  # C2's first billed day and the workbench's
        production(engine, early.run_id, settings, NOW)
    october = issue(engine, settings, run_options("2026-10", True, "C2"))
    assert subscription_lines(engine, october) == [("C2", "recurring", date(2026, 11, 1), date(2026, 11, 30), 3000)]
    # the document shows each line's service period
    with engine.connect() as connection:
        [model] = invoice_models(connection, list(invoice_ids(engine, issued.run_id).values()))
    [line] = [i for g in model["groups"] for i in g["items"]]
    assert line["period"] == "2026-10-10 - 2026-10-31"


def test_an_end_date_loaded_after_an_advance_invoice_gives_the_unused_days_back(engine, settings, tmp_path):
    """LINE at 19.90 billed in advance for October; the customer leaves on 15 October."""
    ids = subscriptions_only(engine, tmp_path / "ref", [["C1", "LINE", "1", "2025-01-01", "", ""]])
    september = issue(engine, settings, run_options("2026-09", True, "C1"))
    assert subscription_lines(engine, september) == [("C1", "recurring", date(2026, 10, 1), date(2026, 10, 31), 1990)]
    load_reference(engine, billing_reference_folder(tmp_path / "ended", only=["subscriptions"], subscriptions=[
        ["C1", "LINE", "1", "2025-01-01", "2026-10-15", ""]]))
    october = issue(engine, settings, run_options("2026-10", True, "C1"))
    # kept 15 of 31 days: 1990 x 15 / 31 = 962.90 -> 963; given back 1990 - 963 = 10.27
    assert subscription_lines(engine, october) == [("C1", "prorated", date(2026, 10, 16), date(2026, 10, 31), -1027)]
    inv = stored_invoices(engine, october).loc["C1"]
    # VAT 20% of -10.27 = -2.054 -> -2.05; -12.32 incl., nothing payable: it is account credit
    assert amounts(inv) == (0, 0, -1027, 0, -1027, -205, -1232, 0, 0)
    item = frame(engine, select(s.InvoiceItem.description, s.InvoiceItem.quantity, s.InvoiceItem.unit_price_cents)
                 .join(s.Invoice).where(s.Invoice.run_id == october)).iloc[0]
    assert (item["description"], Decimal(str(item["quantity"])), int(item["unit_price_cents"])) == (
        "Fixed line – unused days 16–31 Oct 2026 returned", Decimal("-0.5161"), 1990)
    credit = credit_entries(engine)
    assert records(credit[["customer_id", "amount_cents"]]) == [(ids["C1"], 1232)]
    # October costs the customer 19.90 - 10.27 = 9.63; November and on, nothing more
    assert preprod(engine, run_options("2026-11", True, "C1"), settings, NOW).invoices == 0


def test_switching_between_arrears_and_advance_neither_skips_nor_doubles_a_month(engine, settings, tmp_path):
    subscriptions_only(engine, tmp_path / "ref", [["C1", "LINE", "2", "2025-01-01", "", ""]])
    runs = [("2026-09", False), ("2026-10", True), ("2026-11", False), ("2026-12", False)]
    lines = [subscription_lines(engine, issue(engine, settings, run_options(p, a, "C1"))) for p, a in runs]
    month = 2 * 1990  # two lines
    assert lines == [
        [("C1", "recurring", date(2026, 9, 1), date(2026, 9, 30), month)],  # September in arrears
        [("C1", "recurring", date(2026, 10, 1), date(2026, 10, 31), month),  # October, not billed yet,
         ("C1", "recurring", date(2026, 11, 1), date(2026, 11, 30), month)],  # and November in advance
        [],  # November in arrears: billed already, no invoice
        [("C1", "recurring", date(2026, 12, 1), date(2026, 12, 31), month)],
    ]


def test_credit_notes_and_reinvoicing_bill_the_days_once(engine, settings, tmp_path):
    subscriptions_only(engine, tmp_path / "ref", [["C2", "LINE", "1", "2026-10-10", "", ""]], "30.00")
    issue(engine, settings, run_options("2026-09", True, "C2"))  # F2026-000001: 10-31 October, 21.29
    issue_credit_note(engine, "F2026-000001", "wrong address", LATER, reinvoice=True)
    again = issue(engine, settings, run_options("2026-09", True, "C2"))  # the days billed again, once
    assert subscription_lines(engine, again) == [("C2", "prorated", date(2026, 10, 10), date(2026, 10, 31), 2129)]
    # a credit note that does not reopen its period writes the invoice off: its days stay billed
    issue_credit_note(engine, "F2026-000002", "goodwill", LATER)
    october = issue(engine, settings, run_options("2026-10", True, "C2"))
    assert subscription_lines(engine, october) == [("C2", "recurring", date(2026, 11, 1), date(2026, 11, 30), 3000)]


def test_the_control_report_shows_a_mandate_the_sepa_file_would_refuse(october):
    engine, settings = october.engine, october.settings
    run = preprod(engine, OPTIONS, settings, NOW)
    anomalies = run_report(engine, run.run_id, settings, today=date(2026, 11, 2))["Anomalies"]
    assert "mandate_invalid" not in set(anomalies["Problem"])  # C1's mandate is good
    # a mandate stored before the load checked it, or changed in the database: its IBAN's last
    # digit changed (the mod-97 check fails) and signed after the day of the report
    with engine.begin() as connection:
        connection.execute(update(s.Mandate).where(s.Mandate.reference == "MANDATE-C1-01").values(
            iban="FR7630006000011234567890188", signature_date=date(2026, 11, 20)))
    run = preprod(engine, OPTIONS, settings, NOW)
    anomalies = run_report(engine, run.run_id, settings, today=date(2026, 11, 2))["Anomalies"]
    invalid = anomalies[anomalies["Problem"] == "mandate_invalid"]
    assert list(invalid["Line or key"]) == ["C1"]
    detail = invalid["Detail"].iloc[0]
    assert detail.startswith("the SEPA file would leave out its debit: mandate MANDATE-C1-01 is signed on "
                             "2026-11-20, in the future; mandate MANDATE-C1-01: invalid IBAN "
                             "FR7630006000011234567890188")
    # on the day of signature, only the IBAN is left
    anomalies = run_report(engine, run.run_id, settings, today=date(2026, 11, 20))["Anomalies"]
    detail = anomalies.loc[anomalies["Problem"] == "mandate_invalid", "Detail"].iloc[0]
    assert "in the future" not in detail and "invalid IBAN" in detail


def test_cancelling_a_negative_invoice_takes_its_account_credit_back(engine, settings, tmp_path):
    """October in advance gave back 16 unused days: total -12.32, net payable 0 and +12.32 of
    account credit at issue (see the test above). Its credit note collects nothing more: it takes
    the 12.32 back, and the next SEPA run debits nothing."""
    ids = subscriptions_only(engine, tmp_path / "ref", [["C1", "LINE", "1", "2025-01-01", "", ""]])
    issue(engine, settings, run_options("2026-09", True, "C1"))  # F2026-000001: October, 19.90 + VAT
    generate_direct_debits(engine, settings, NOW, period="2026-09")
    load_reference(engine, billing_reference_folder(tmp_path / "ended", only=["subscriptions"], subscriptions=[
        ["C1", "LINE", "1", "2025-01-01", "2026-10-15", ""]]))
    issue(engine, settings, run_options("2026-10", True, "C1"))  # F2026-000002: -10.27 - 2.05 VAT = -12.32
    number = issue_credit_note(engine, "F2026-000002", "mistake", LATER)
    note = frame(engine, select(s.Invoice.total_incl_cents, s.Invoice.collection_offset_cents)
                 .where(s.Invoice.number == number))
    assert records(note) == [(1232, 0)]  # the note of -(-12.32); nothing set against a collection
    # +12.32 at the October invoice's issue, -12.32 by its note: 0 left
    assert records(credit_entries(engine)[["customer_id", "amount_cents"]]) == [(ids["C1"], 1232), (ids["C1"], -1232)]
    debits = generate_direct_debits(engine, settings, LATER, period="2026-10")
    assert len(debits.debits) == 0


@pytest.mark.parametrize("order", [("2026-10", "2026-09"), ("2026-09", "2026-10")])
def test_after_a_reopening_credit_note_the_days_billed_do_not_depend_on_the_order_of_the_runs(
        engine, settings, tmp_path, order):
    """LINE at 30.00 billed in advance: September's invoice billed October, then was reopened.
    Whichever of October and September runs first, October and November are each billed once
    and September (billed before the workbench, in advance) never."""
    subscriptions_only(engine, tmp_path / "ref", [["C1", "LINE", "1", "2025-01-01", "", ""]], "30.00")
    issue(engine, settings, run_options("2026-09", True, "C1"))  # F2026-000001: 1-31 October
    issue_credit_note(engine, "F2026-000001", "wrong address", LATER, reinvoice=True)
    lines = []
    for period in order:
        lines += subscription_lines(engine, issue(engine, settings, run_options(period, True, "C1")))
    assert sorted(lines) == [("C1", "recurring", date(2026, 10, 1), date(2026, 10, 31), 3000),
                             ("C1", "recurring", date(2026, 11, 1), date(2026, 11, 30), 3000)]


@pytest.mark.parametrize("advance", [False, True])
def test_a_subscription_entered_after_its_first_days_were_invoiced_is_caught_up(engine, settings, tmp_path,
                                                                               advance):
    """LINE at 30.00: C1's September run is the workbench's first; C2's subscription from
    20 September is entered after it. C2 is caught up from its start, but not before the
    workbench's history: in arrears it begins on 1 September (C1's first billed day), so
    20-30 September is billed; in advance on 1 October (September was billed before, in advance)."""
    subscriptions_only(engine, tmp_path / "ref", [["C1", "LINE", "1", "2025-01-01", "", ""]], "30.00")
    issue(engine, settings, run_options("2026-09", advance, "C1,C2"))
    load_reference(engine, billing_reference_folder(tmp_path / "ref2", only=["subscriptions"], subscriptions=[
        ["C1", "LINE", "1", "2025-01-01", "", ""], ["C2", "LINE", "1", "2026-09-20", "", ""]]))
    october = [x for x in subscription_lines(engine, issue(engine, settings, run_options("2026-10", advance, "C1,C2")))
               if x[0] == "C2"]
    november = [x for x in subscription_lines(engine, issue(engine, settings, run_options("2026-11", advance,
                                                                                             "C1,C2"))) if x[0] == "C2"]
    if advance:
        assert october == [("C2", "recurring", date(2026, 10, 1), date(2026, 10, 31), 3000),
                           ("C2", "recurring", date(2026, 11, 1), date(2026, 11, 30), 3000)]
        assert november == [("C2", "recurring", date(2026, 12, 1), date(2026, 12, 31), 3000)]
    else:
        # 20-30 September: 11 of 30 days, 3000 x 11 / 30 = 1100 exactly
        assert october == [("C2", "prorated", date(2026, 9, 20), date(2026, 9, 30), 1100),
                           ("C2", "recurring", date(2026, 10, 1), date(2026, 10, 31), 3000)]
        assert november == [("C2", "recurring", date(2026, 11, 1), date(2026, 11, 30), 3000)]
