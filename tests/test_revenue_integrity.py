"""Every call billed once, in the right period: calls never rated, late calls, what a run's
fingerprint holds, and the period balance (SQLite and PostgreSQL).

The operator and October's calls are those of ``test_billing`` (its module docstring has the
hand calculation of each call and invoice); the amounts below are worked out from them.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date
from decimal import Decimal

import pandas as pd
import pytest
from factories import BILLING_LINES, BILLING_MANDATES, approved, billing_reference_folder, native_cdrs
from sqlalchemy import select, update
from test_billing import (
    CREDITS,
    NOVEMBER,
    NOW,
    OCTOBER_CALLS,
    OPTIONS,
    TOTAL_INCL,
    Scenario,
    add_credit,
    call_invoices,
    frame,
    load_october,
    stored_invoices,
)

from workbench import jobs
from workbench.billing import issue_credit_note, preprod, production
from workbench.db import calls as call_store
from workbench.db import schema as s
from workbench.errors import RefusedError
from workbench.integration import load_cdr_file
from workbench.rated_calls import rate_period
from workbench.reads.runs import period_balance, run_report
from workbench.reference import load_reference

LATER = NOW.replace(day=20)


def _load(scenario: Scenario, name: str, rows: list[list[str]]):
    path = scenario.folder / name
    path.write_bytes(native_cdrs(rows))
    return load_cdr_file(scenario.engine, path, scenario.settings, LATER)


def _balance(scenario: Scenario, run_id: int) -> dict[tuple[str, str], tuple]:
    """The balance's lines by (section number, line): (calls, seconds or None, amount or None)."""
    lines = period_balance(scenario.engine, run_id, scenario.settings).lines
    return {(r["Section"][:1], r["Line"]): (int(r["Calls"]), None if pd.isna(r["Seconds"]) else int(r["Seconds"]),
                                           r["Amount (EUR)"]) for _, r in lines.iterrows()}


# ---------------------------------------------------------------------------- 1. calls never rated

def test_preprod_rates_calls_loaded_but_not_rated(engine, settings, tmp_path):
    """October's calls loaded, ``rate`` skipped: the pre-production job rates them first, so its
    drafts carry them (the run totals of the hand-worked month, 300.34 EUR)."""
    load_reference(engine, billing_reference_folder(tmp_path / "reference"))
    path = tmp_path / "switch.csv"
    path.write_bytes(native_cdrs(OCTOBER_CALLS))
    load_cdr_file(engine, path, settings, NOW)
    ids = {a: int(i) for a, i in frame(engine, select(s.Customer.account_number, s.Customer.id)).values}
    for account, cents in CREDITS.items():
        add_credit(engine, ids[account], cents)

    result = jobs.preprod(engine, settings, jobs.run_options(settings, "2026-10"), now=NOW)
    assert [(r.period, r.rated) for r in result.rated_first] == [("2026-10", 7)]
    assert result.run.total_incl_cents == TOTAL_INCL  # 300.34 EUR, consumption included
    # C1: 13 + 42 cents of calls
    assert stored_invoices(engine, result.run.run_id).loc["C1", "consumption"] == 55


@pytest.fixture
def october(engine, settings, tmp_path) -> Scenario:
    return load_october(engine, settings, tmp_path)


def test_a_call_loaded_after_the_review_is_an_anomaly_and_blocks_production(october):
    engine, settings = october.engine, october.settings
    run = preprod(engine, OPTIONS, settings, NOW)
    # C4 W1 Tue 20 Oct 10:00 FIX peak 60 s: 60 x 600 / 60 = 600 units = 6 cents; loaded, not rated
    assert _load(october, "more.csv", [["W1", "2026-10-20T10:00:00+02:00", "+33145000004", "+33155000000",
                                        "60"]]).accepted == 1
    anomalies = run_report(engine, run.run_id, settings)["Anomalies"]
    unrated = anomalies[anomalies["Problem"] == "unrated_calls"]
    assert unrated["Detail"].tolist() == [
        "1 calls of 2026-10 loaded but never rated: not billed by this run (rate them with `workbench rate "
        "--period 2026-10`, then run the billing again)"]
    # the balance shows it as the line that moves: 1 call of 60 s never rated
    assert _balance(october, run.run_id)[("2", "never rated (loaded after the last rating of the period)")][:2] == (
        1, 60)
    with pytest.raises(RefusedError, match=re.escape("calls (7 rows reviewed, 8 now)")):
        production(engine, run.run_id, settings, LATER)
    again = jobs.preprod(engine, settings, OPTIONS, now=LATER)
    assert [r.period for r in again.rated_first] == ["2026-10"]
    # C4: 4500 + 6 = 4506, VAT 901.2 -> 901, incl. 5407
    assert stored_invoices(engine, again.run.run_id).loc["C4", "total_incl_cents"] == 5407


# ---------------------------------------------------------------------------- 2. late calls

def test_late_calls_are_billed_once_on_the_next_invoice(october):
    engine, settings = october.engine, october.settings
    jobs.promote(engine, settings, approved(engine, preprod(engine, OPTIONS, settings, NOW).run_id), NOW)
    # a carrier's late file: C1 Tue 20 Oct 10:00 FIX peak 60 s = 600 units = 6 cents
    _load(october, "late.csv", [["L1", "2026-10-20T10:00:00+02:00", "+33145000001", "+33155000000", "60"]])
    rate_period(engine, "2026-10", settings, LATER)
    assert call_invoices(engine)["L1"] is None

    november = jobs.preprod(engine, settings, NOVEMBER, now=LATER)
    items = frame(engine, select(s.InvoiceItem.__table__).join(s.Invoice, s.Invoice.id == s.InvoiceItem.invoice_id)
                  .where(s.Invoice.run_id == november.run.run_id, s.Invoice.customer_id == october.ids["C1"],
                         s.InvoiceItem.type == "consumption"))
    assert len(items) == 1
    late = items.iloc[0]
    # C1 is French: its late line says so in French, with the calls' own period
    assert late["description"] == "France fixed - appels de 2026-10 reçus en retard"
    assert (late["period_from"], late["period_to"]) == (date(2026, 10, 1), date(2026, 10, 31))
    assert (int(late["calls"]), int(late["seconds"]), int(late["amount_cents"])) == (1, 60, 6)
    # C1 in November: INSTALL 4900 + LINE 2 x 1990 + MOBMIN 500 + late calls 6 = 9386;
    # VAT 1877.2 -> 1877; incl. 11263; its October credit is used up: net 11263
    c1 = stored_invoices(engine, november.run.run_id).loc["C1"]
    assert (int(c1["consumption"]), int(c1["total_excl_cents"]), int(c1["total_incl_cents"]),
            int(c1["net_payable_cents"])) == (6, 9386, 11263, 11263)

    report = run_report(engine, november.run.run_id, settings)
    invoices = report["Invoices"].set_index("Account number")
    assert (invoices.loc["C1", "Late calls"], invoices.loc["C1", "Late calls amount"]) == (1, Decimal("0.06"))
    assert invoices.loc["C1", "Consumption amount"] == Decimal("0.06")
    assert invoices.loc["C2", "Late calls"] == 0
    late_rows = report["Anomalies"][report["Anomalies"]["Problem"] == "late_calls"]
    assert late_rows["Line or key"].tolist() == ["C1"]
    assert late_rows["Detail"].iloc[0].startswith("1 calls of 2026-10 received late, billed on this invoice: ")

    # October's balance, before and after November's production: pending, then billed later
    october_run = int(frame(engine, select(s.BillingRun.id).where(
        s.BillingRun.period == "2026-10", s.BillingRun.kind == "preprod"))["id"].iloc[0])
    pending = "pending: rated after this run (billed as late calls on the customer's next invoice)"
    assert _balance(october, october_run)[("3", pending)] == (1, 60, Decimal("0.0600"))
    # November's balance reconciles its late line in money: L1's 600 units = one line of 6 cents
    late = {line: value for (section, line), value in _balance(october, november.run.run_id).items()
            if section == "5"}
    assert late == {"rated calls of earlier periods billed in this run": (1, 60, Decimal("0.0600")),
                    "late-call lines on the run's invoices (1 lines)": (1, 60, Decimal("0.06")),
                    "rounding of those lines to the cent": (0, 0, Decimal("0.0000")),
                    "difference (must be 0)": (0, 0, Decimal("0.0000"))}
    assert _balance(october, october_run)[("5", "rated calls of earlier periods billed in this run")] == (
        0, 0, Decimal("0.0000"))
    jobs.promote(engine, settings, approved(engine, november.run.run_id), LATER)
    assert {line: value for (section, line), value in _balance(october, november.run.run_id).items()
            if section == "5"} == late
    assert call_invoices(engine)["L1"] is not None
    balance = _balance(october, october_run)
    assert balance[("3", "billed later, as late calls")] == (1, 60, Decimal("0.0600"))
    assert ("3", pending) not in balance
    # billed once: a new November run has no late line left for C1 (and C1 is invoiced already)
    again = preprod(engine, replace(NOVEMBER, customers="accounts:C1"), settings, LATER)
    assert stored_invoices(engine, again.run_id).loc["C1", "consumption"] == 0


# ---------------------------------------------------------------------------- 15. settings and mandates

def test_production_refuses_another_calls_vat_rate_naming_the_setting(october):
    engine, settings = october.engine, october.settings
    run = preprod(engine, OPTIONS, settings, NOW)
    with pytest.raises(RefusedError) as refused:
        production(engine, run.run_id, replace(settings, consumption_vat_rate="10"), NOW)
    assert "changed since: setting consumption_vat_rate (20 reviewed, 10 now)." in str(refused.value)
    with pytest.raises(RefusedError, match=re.escape("setting timezone (Europe/Paris reviewed, Europe/London now)")):
        production(engine, run.run_id, replace(settings, timezone="Europe/London"), NOW)
    assert production(engine, run.run_id, settings, NOW).invoices == 4


def test_a_rate_written_another_way_is_not_a_change_of_settings(october):
    """``20``, ``20.0`` and ``20.00`` are the same VAT rate: the amounts are the same, so the
    fingerprint is (numbers are compared in their shortest form)."""
    engine, settings = october.engine, october.settings
    run = preprod(engine, OPTIONS, replace(settings, consumption_vat_rate="20.0"), NOW)
    with pytest.raises(RefusedError, match=re.escape("setting consumption_vat_rate (20 reviewed, 5.5 now)")):
        production(engine, run.run_id, replace(settings, consumption_vat_rate="5.50"), NOW)
    assert production(engine, run.run_id, replace(settings, consumption_vat_rate="20.00"), NOW).invoices == 4


def test_production_refuses_a_mandate_whose_iban_changed_since_the_review(october):
    engine, settings = october.engine, october.settings
    run = preprod(engine, OPTIONS, settings, NOW)
    moved = [[*BILLING_MANDATES[0][:3], "FR14 2004 1010 0505 0001 3M02 606", "PSSTFRPPPAR", "active"]]
    load_reference(engine, billing_reference_folder(october.folder / "mandates", only=["mandates"], mandates=moved))
    with pytest.raises(RefusedError) as refused:
        production(engine, run.run_id, settings, NOW)
    assert "the bank account (IBAN/BIC) of mandate MANDATE-C1-01 changed" in str(refused.value)
    assert "FR14" not in str(refused.value)  # the IBAN itself is not repeated


# ---------------------------------------------------------------------------- 20. the period balance

def test_the_period_balance_accounts_for_every_record(october):
    """Every class of record and call present at once (hand-counted):

    * file A (October's 7 calls, all accepted); C1's 4 calls billed by a first production;
    * file B, 6 records: X1 again (duplicate), W1 (C4, 60 s FIX peak, 600 units), G1 (C2, 45 s to
      Germany: no destination), S1 (C1, 30 September: another period), U1 (no customer's line),
      M1 (duration ``abc``);
    * file C, 1 record: N1 (C2, Mon 26 Oct 10:00 FIX peak 60 s), loaded after the rating;
    * the run bills group A (C1, C2); C3 and C4 are in group B.
    """
    engine, settings = october.engine, october.settings
    production(engine, preprod(engine, replace(OPTIONS, customers="accounts:C1"), settings, NOW).run_id,
               settings, NOW)
    b = _load(october, "switch-b.csv", [
        ["X1", "2026-10-07T10:00:00+02:00", "+33145000001", "+33155000000", "125"],
        ["W1", "2026-10-20T10:00:00+02:00", "+33145000004", "+33155000000", "60"],
        ["G1", "2026-10-21T10:00:00+02:00", "+33145000002", "+4930123456", "45"],
        ["S1", "2026-09-30T10:00:00+02:00", "+33145000001", "+33155000000", "60"],
        ["U1", "2026-10-22T10:00:00+02:00", "+33199999999", "+33155000000", "30"],
        ["M1", "2026-10-23T10:00:00+02:00", "+33145000002", "+33155000000", "abc"],
    ])
    assert (b.records, b.accepted, b.rejected) == (6, 3, 3)
    rate_period(engine, "2026-10", settings, LATER)
    _load(october, "switch-c.csv", [["N1", "2026-10-26T10:00:00+01:00", "+33145000002", "+33155000000", "60"]])
    run = preprod(engine, replace(OPTIONS, customers="group:A"), settings, LATER)

    got = _balance(october, run.run_id)
    # 1. records: 7 + 6 + 1 = 14 = 3 rejected + 1 of September + 10 of October
    assert got[("1", "records received in the files with records of 2026-10 (3 files)")][0] == 14
    assert got[("1", "duplicates (already loaded)")][0] == 1
    assert got[("1", "rejected: unknown_line (pending a reference fix)")][0] == 1
    assert got[("1", "rejected: bad_duration")][0] == 1
    assert got[("1", "accepted: calls of other periods")][0] == 1
    assert got[("1", "accepted: calls of 2026-10")][0] == 10
    # 2. calls: 10 of 1170 + 60 + 45 + 60 = 1335 s = 8 rated (1230 s) + G1 (45 s) + N1 (60 s)
    assert got[("2", "calls of 2026-10")][:2] == (10, 1335)
    assert got[("2", "rated")][:2] == (8, 1230)
    assert got[("2", "not rated: no_destination")][:2] == (1, 45)
    assert got[("2", "never rated (loaded after the last rating of the period)")][:2] == (1, 60)
    # 3. rated: 8 calls, 18150 + 600 = 18750 units = C1's 4 billed earlier (855 s, 5450) + C2's
    # Y1 and Y2 in this run (190 s, 450 + 11000 = 11450) + C3's Z1 and C4's W1 not in group A
    # (185 s, 1250 + 600 = 1850)
    assert got[("3", "rated calls of 2026-10")] == (8, 1230, Decimal("1.8750"))
    assert got[("3", "billed earlier")] == (4, 855, Decimal("0.5450"))
    assert got[("3", f"billed in this run (run {run.run_id})")] == (2, 190, Decimal("1.1450"))
    assert got[("3", "billed later, as late calls")] == (0, 0, Decimal("0.0000"))
    assert got[("3", "pending: customer not in this run's selection")] == (2, 185, Decimal("0.1850"))
    # 4. money: C2's lines 5 + 110 = 115 cents; rounding 11450 - 11500 = -50 units
    assert got[("4", "consumption lines of 2026-10 on the run's invoices (2 lines)")] == (2, 190, Decimal("1.15"))
    assert got[("4", "rounding of those lines to the cent")][2] == Decimal("-0.0050")
    assert all(v[0] == 0 and (v[1] or 0) == 0 and (v[2] or 0) == 0 for k, v in got.items()
               if k[1] == "difference (must be 0)")
    assert period_balance(engine, run.run_id, settings).closed
    sheet = run_report(engine, run.run_id, settings)["Period balance"]
    assert len(sheet) == len(got)

    # the same file loaded again under another name (one byte changed): the duplicates line moves
    # (+4: X1, W1, G1 and S1 are stored calls), the rejects by their reasons (U1, M1), and the
    # balance still closes
    path = october.folder / "switch-b-again.csv"
    path.write_bytes((october.folder / "switch-b.csv").read_bytes() + b"\n")
    assert load_cdr_file(engine, path, settings, LATER).rejected == 6
    again = _balance(october, run.run_id)
    assert again[("1", "records received in the files with records of 2026-10 (4 files)")][0] == 20
    assert again[("1", "duplicates (already loaded)")][0] == 1 + 4
    assert again[("1", "rejected: unknown_line (pending a reference fix)")][0] == 2
    assert period_balance(engine, run.run_id, settings).closed

    # U1's line entered afterwards: its two records are cured (one into a call, the other a
    # duplicate of it), not rated yet
    lines = [*BILLING_LINES, ["C2", "+33199999999", "2026-01-01", ""]]
    jobs.load_reference(engine, settings, billing_reference_folder(october.folder / "lines", only=["lines"],
                                                                   lines=lines))
    cured = _balance(october, run.run_id)
    assert ("1", "rejected: unknown_line (pending a reference fix)") not in cured
    assert cured[("1", "duplicates (already loaded)")][0] == 1 + 4 + 1
    assert cured[("1", "accepted: calls of 2026-10")][0] == 10 + 1
    assert cured[("2", "never rated (loaded after the last rating of the period)")][:2] == (2, 60 + 30)
    assert period_balance(engine, run.run_id, settings).closed
    # the next pre-production rates them first: U1 Thu 22 Oct 10:00 FIX peak 30 s = 300 units;
    # C2 is billed Y1 450 + Y2 11000 + N1 600 + U1 300 = 12350 units in 4 calls of 280 s
    fresh = jobs.preprod(engine, settings, replace(OPTIONS, customers="group:A"), now=LATER).run
    now = _balance(october, fresh.run_id)
    assert now[("2", "rated")][:2] == (10, 1230 + 60 + 30)
    assert now[("3", f"billed in this run (run {fresh.run_id})")] == (4, 280, Decimal("1.2350"))
    assert period_balance(engine, fresh.run_id, settings).closed
    # the first run is stale now: its drafts bill 2 of C2's 4 rated calls, and its balance says so
    stale = period_balance(engine, run.run_id, settings)
    assert stale.open_sections == ("4. Calls billed in this run, in money",)
    assert _balance(october, run.run_id)[("4", "difference (must be 0)")][:2] == (2, 60 + 30)


def test_a_balance_that_does_not_close_blocks_production_until_explained(october):
    engine, settings = october.engine, october.settings
    run = preprod(engine, OPTIONS, settings, NOW)
    # a record lost after loading: the file says 7 records, 6 calls remain stored
    with engine.begin() as connection:
        for block_id, data in connection.execute(select(s.CallBlock.id, s.CallBlock.data)).all():
            calls = call_store.decode(data)
            lost = calls[calls["switch_id"] == "Z1"]
            if len(lost):
                connection.execute(s.RatedCall.__table__.delete().where(s.RatedCall.cdr_id.in_(lost["id"].tolist())))
                kept = calls[calls["switch_id"] != "Z1"]
                connection.execute(update(s.CallBlock).where(s.CallBlock.id == block_id).values(
                    calls=len(kept), data=call_store.encode(kept)))
    balance = period_balance(engine, run.run_id, settings)
    assert balance.open_sections[0] == "1. CDR records"
    anomalies = run_report(engine, run.run_id, settings)["Anomalies"]
    assert "balance_not_closed" in set(anomalies["Problem"])
    with pytest.raises(RefusedError, match="period balance of 2026-10 does not close: 1. CDR records does not "
                                           "close: 1 calls"):
        jobs.promote(engine, settings, approved(engine, run.run_id), NOW)
    assert frame(engine, select(s.Invoice.id).where(s.Invoice.status == "issued")).empty


def test_the_balance_after_a_credit_note_that_reopens_the_period(october):
    """C1's invoice cancelled by a reopening credit note, then C1 invoiced again by a later run.

    October's 7 rated calls: C1's 4 (855 s, 5450 units), C2's Y1 and Y2 (190 s, 450 + 11000 =
    11450 units), C3's Z1 (125 s, 1250 units); C2 and C3: 3 calls, 190 + 125 = 315 s, 11450 + 1250
    = 12700 units, on 3 lines of 5 + 110 + 13 = 128 cents (Z1's 12.5 cents rounded half up): the
    rounding is 12700 - 12800 = -100 units.
    """
    engine, settings = october.engine, october.settings
    first = preprod(engine, OPTIONS, settings, NOW)
    done = production(engine, first.run_id, settings, NOW)
    issue_credit_note(engine, stored_invoices(engine, done.run_id).loc["C1", "number"], "wrong address", LATER,
                      reinvoice=True)
    cancelled = "pending: its invoice was cancelled by a credit note that reopened the period"
    got = _balance(october, first.run_id)
    assert got[("3", "billed earlier")] == (0, 0, Decimal("0.0000"))
    assert got[("3", f"billed in this run (run {done.run_id})")] == (3, 315, Decimal("1.2700"))
    assert got[("3", cancelled)] == (4, 855, Decimal("0.5450"))
    # the cancelled invoice's lines bill nothing any more: the run's 3 lines of C2 and C3 remain
    assert got[("4", "consumption lines of 2026-10 on the run's invoices (3 lines)")] == (3, 315, Decimal("1.28"))
    assert got[("4", "rounding of those lines to the cent")][2] == Decimal("-0.0100")
    assert period_balance(engine, first.run_id, settings).closed

    again = preprod(engine, replace(OPTIONS, customers="accounts:C1"), settings, LATER)
    assert period_balance(engine, again.run_id, settings).closed
    billed_again = production(engine, again.run_id, settings, LATER)
    got = _balance(october, first.run_id)
    # C1's 4 calls are billed by the later run now (same period, run made after this one), not
    # as late calls
    assert got[("3", "billed later, by a later run of the period (after a reopening credit note)")] == (
        4, 855, Decimal("0.5450"))
    assert got[("3", "billed later, as late calls")] == (0, 0, Decimal("0.0000"))
    assert got[("3", "billed earlier")] == (0, 0, Decimal("0.0000"))
    assert ("3", cancelled) not in got
    assert period_balance(engine, first.run_id, settings).closed
    # and from the later run, C2's and C3's calls were billed earlier
    now = _balance(october, again.run_id)
    assert now[("3", "billed earlier")] == (3, 315, Decimal("1.2700"))
    assert now[("3", f"billed in this run (run {billed_again.run_id})")] == (4, 855, Decimal("0.5450"))
    assert period_balance(engine, again.run_id, settings).closed


def test_a_review_of_customers_already_invoiced_bills_them_nothing_in_its_balance(october):
    """Group A (C1, C2) invoiced, then a late call L1 of C1 (Tue 20 Oct 10:00 FIX peak 60 s:
    60 x 600 / 60 = 600 units) and a review of all customers: its draft for C1 carries L1, but
    production skips C1 (already invoiced for October), so L1 is pending, not billed in this run.

    Rated: 7 + 1 = 8 calls, 1170 + 60 = 1230 s, 18150 + 600 = 18750 units = billed earlier C1's 4
    (855 s, 5450) + C2's 2 (190 s, 11450) = 6 calls, 1045 s, 16900 units + in this run C3's Z1
    (125 s, 1250 units; one line of 13 cents: rounding 1250 - 1300 = -50 units) + L1.
    """
    engine, settings = october.engine, october.settings
    production(engine, preprod(engine, replace(OPTIONS, customers="group:A"), settings, NOW).run_id, settings, NOW)
    _load(october, "late.csv", [["L1", "2026-10-20T10:00:00+02:00", "+33145000001", "+33155000009", "60"]])
    rate_period(engine, "2026-10", settings, LATER)
    run = preprod(engine, OPTIONS, settings, LATER)
    invoiced = "pending: customer already invoiced for the period (billed as late calls on its next invoice)"
    got = _balance(october, run.run_id)
    assert got[("3", "rated calls of 2026-10")] == (8, 1230, Decimal("1.8750"))
    assert got[("3", "billed earlier")] == (6, 1045, Decimal("1.6900"))
    assert got[("3", f"billed in this run (run {run.run_id})")] == (1, 125, Decimal("0.1250"))
    assert got[("3", invoiced)] == (1, 60, Decimal("0.0600"))
    assert got[("4", "consumption lines of 2026-10 on the run's invoices (1 lines)")] == (1, 125, Decimal("0.13"))
    assert got[("4", "rounding of those lines to the cent")][2] == Decimal("-0.0050")
    assert period_balance(engine, run.run_id, settings).closed
    # promoted: the same lines (production skipped C1 and C2)
    done = production(engine, run.run_id, settings, LATER)
    after = _balance(october, run.run_id)
    assert after[("3", f"billed in this run (run {done.run_id})")] == (1, 125, Decimal("0.1250"))
    assert after[("3", invoiced)] == (1, 60, Decimal("0.0600"))
    # a customer both outside the selection and already invoiced is "not in this run's selection"
    group_b = preprod(engine, replace(OPTIONS, customers="group:B"), settings, LATER)
    b = _balance(october, group_b.run_id)
    assert b[("3", "pending: customer not in this run's selection")] == (1, 60, Decimal("0.0600"))
    assert ("3", invoiced) not in b


# ---------------------------------------------------------------------------- 3. a start date corrected

def test_a_start_date_corrected_under_the_subscription_s_reference_gives_the_days_back(october):
    """C2's LINE (19.90) starts on 11 October; October is issued in arrears; the operator then
    corrects the start to 21 October, under the subscription's reference: the same subscription
    changes (no second one billed), and November gives back 11-20 October."""
    engine, settings = october.engine, october.settings
    header = "account_number,product,quantity,start_date,end_date,price_override,reference\n"
    load_reference(engine, billing_reference_folder(october.folder / "ref", only=["subscriptions"],
                                                    subscriptions=header + "C2,LINE,1,2026-10-11,,,S-C2\n"))
    jobs.promote(engine, settings, approved(engine, preprod(engine, OPTIONS, settings, NOW).run_id), NOW)
    # 11-31 October: 21 of 31 days, 1990 x 21 / 31 = 1348.06 -> 1348 (as without the reference)
    assert stored_invoices(engine, _issued_run(october)).loc["C2", "prorated"] == 1348

    load_reference(engine, billing_reference_folder(october.folder / "fix", only=["subscriptions"],
                                                    subscriptions=header + "C2,LINE,1,2026-10-21,,,S-C2\n"))
    c2 = frame(engine, select(s.Subscription.start_date).where(s.Subscription.customer_id == october.ids["C2"]))
    assert c2["start_date"].tolist() == [date(2026, 10, 21)]

    november = jobs.preprod(engine, settings, replace(NOVEMBER, customers="accounts:C2"), now=LATER)
    items = frame(engine, select(s.InvoiceItem.period_from, s.InvoiceItem.period_to, s.InvoiceItem.quantity,
                                 s.InvoiceItem.amount_cents)
                  .join(s.Invoice, s.Invoice.id == s.InvoiceItem.invoice_id)
                  .where(s.Invoice.run_id == november.run.run_id, s.InvoiceItem.subscription_id.isnot(None))
                  .order_by(s.InvoiceItem.period_from))
    # 21-31 October kept: 1990 x 11 / 31 = 706.13 -> 706; given back 706 - 1348 = -642 for 10 days
    # (-10/31 = -0.3226); November 1990
    assert [(r.period_from, r.period_to, f"{Decimal(r.quantity):.4f}", int(r.amount_cents))
            for r in items.itertuples()] == [
        (date(2026, 10, 11), date(2026, 10, 20), "-0.3226", -642),
        (date(2026, 11, 1), date(2026, 11, 30), "1.0000", 1990)]


def _issued_run(scenario: Scenario) -> int:
    return int(frame(scenario.engine, select(s.BillingRun.id).where(
        s.BillingRun.kind == "production").order_by(s.BillingRun.id.desc()))["id"].iloc[0])
