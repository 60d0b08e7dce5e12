"""What the reviewers' dashboards read and show, on runs built by hand in the database (the
billing operator of :mod:`factories`: C1 to C4), with every expected value worked out below:
the runs' review status, the run against the previous period, the anomalies by kind, a
customer's documents with their delivery and debit, the months billed by item type, and the
interactive tables (amounts in euros, sorted exactly, customer text escaped)."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal

import pandas as pd
import pytest
from factories import billing_reference_folder
from sqlalchemy import insert, select

from workbench.db import schema as s
from workbench.reads.customers import customer_documents, customer_lines, mask_iban, monthly_billed
from workbench.reads.review import anomaly_counts, percent_change, previous_period_comparison, review_runs
from workbench.reads.runs import run_report
from workbench.reference import load_reference

NOW = datetime(2026, 11, 2, 9, 0)


def add_run(engine, kind: str, period: str, status: str = "done", source: int | None = None,
            customers: str = "all") -> int:
    with engine.begin() as connection:
        return connection.execute(insert(s.BillingRun).values(
            kind=kind, period=period, invoice_date=date(2026, 11, 1), due_date=date(2026, 12, 1),
            options=json.dumps({"customers": customers, "advance": False, "pdfs": False}), fingerprint="{}",
            created_by="analyst", created_at=NOW, source_run_id=source, status=status,
        ).returning(s.BillingRun.id)).scalar_one()


def add_invoice(engine, run_id: int | None, number: str, account: str, period: str, items: list[tuple],
                status: str = "draft", kind: str = "invoice") -> int:
    """An invoice without VAT (incl. = excl. = the sum of its items); ``items``: (type, zone, cents)."""
    total = sum(cents for _, _, cents in items)
    with engine.begin() as connection:
        customer = connection.execute(select(s.Customer.id).where(s.Customer.account_number == account)).scalar_one()
        invoice = connection.execute(insert(s.Invoice).values(
            run_id=run_id, number=number, kind=kind, status=status, customer_id=customer, period=period,
            invoice_date=date(2026, 11, 1), due_date=date(2026, 12, 1), total_excl_cents=total, total_vat_cents=0,
            total_incl_cents=total, credit_applied_cents=0, net_payable_cents=total,
        ).returning(s.Invoice.id)).scalar_one()
        for position, (kind_, zone, cents) in enumerate(items, start=1):
            connection.execute(insert(s.InvoiceItem).values(
                invoice_id=invoice, position=position, type=kind_, description=f"{kind_} {zone or ''}",
                zone_code=zone, quantity=Decimal(1), amount_cents=cents, calls=1 if zone else None,
                seconds=60 if zone else None))
    return invoice


#: what was billed (cents, no VAT) in September and what the October run bills
SEPTEMBER = {"C1": [("recurring", None, 3000), ("consumption", "FIX", 1000)],
             "C2": [("recurring", None, 2000)],
             "C3": [("recurring", None, 1000)]}
OCTOBER = {"C1": [("recurring", None, 3000), ("consumption", "FIX", 1500), ("consumption", "MOB", 200)],
           "C2": [("recurring", None, 1000), ("one_off", None, 4900)]}


@pytest.fixture
def two_periods(engine, tmp_path):
    """Run 1: September's pre-production run, promoted; run 2: its production run (the invoices
    issued for September); runs 3 and 4: two pre-production runs of October for all customers
    (3 older, so superseded); run 5: October for C1 alone."""
    load_reference(engine, billing_reference_folder(tmp_path / "reference"))
    promoted = add_run(engine, "preprod", "2026-09", status="promoted")
    production = add_run(engine, "production", "2026-09", source=promoted)
    for n, (account, items) in enumerate(SEPTEMBER.items(), start=1):
        add_invoice(engine, promoted, f"PRE-{promoted}-{n:04d}", account, "2026-09", items)
        add_invoice(engine, production, f"F2026-{n:06d}", account, "2026-09", items, status="issued")
    runs = [add_run(engine, "preprod", "2026-10") for _ in range(2)]
    for run in runs:
        for n, (account, items) in enumerate(OCTOBER.items(), start=1):
            add_invoice(engine, run, f"PRE-{run}-{n:04d}", account, "2026-10", items)
    alone = add_run(engine, "preprod", "2026-10", customers="accounts:C1")
    add_invoice(engine, alone, f"PRE-{alone}-0001", "C1", "2026-10", OCTOBER["C1"])
    return {"promoted": promoted, "production": production, "older": runs[0], "latest": runs[1], "alone": alone}


def test_runs_are_listed_with_their_review_status(two_periods, engine):
    runs = review_runs(engine).set_index("id")
    assert runs.loc[two_periods["promoted"], "review_status"] == "promoted"
    assert runs.loc[two_periods["production"], "review_status"] == "issued"
    # a newer run of the same period and customers replaces the older one; another selection does not
    assert runs.loc[two_periods["older"], "review_status"] == "superseded"
    assert runs.loc[two_periods["latest"], "review_status"] == "draft"
    assert runs.loc[two_periods["alone"], "review_status"] == "draft"
    # totals: October for all = C1 3000 + 1500 + 200 = 4700, C2 1000 + 4900 = 5900 -> 10600
    assert (int(runs.loc[two_periods["latest"], "invoices"]),
            int(runs.loc[two_periods["latest"], "total_incl_cents"])) == (2, 10600)


def test_percent_change_rounds_half_away_from_zero_to_one_decimal():
    assert percent_change(6000, 4000) == Decimal("-33.3")  # -2000 / 6000 = -33.33..%
    assert percent_change(3000, 2000) == Decimal("-33.3")
    assert percent_change(800, 801) == Decimal("0.1")  # 1 / 800 = 0.125% -> 0.1
    assert percent_change(400, 401) == Decimal("0.3")  # 1 / 400 = 0.25% -> 0.3 (half away from zero)
    assert percent_change(400, 399) == Decimal("-0.3")
    assert percent_change(-1000, -500) == Decimal("50.0")  # a credit halved: +500 on |-1000|
    assert percent_change(0, 100) is None


def test_a_run_against_the_previous_period(two_periods, engine):
    comparison = previous_period_comparison(engine, two_periods["latest"])
    assert comparison.previous == "invoices issued for 2026-09"
    rows = {r["Item type"]: (r["Previous"], r["This run"], r["Change"], r["Change (%)"])
            for r in comparison.by_type.to_dict("records")}
    assert list(comparison.by_type["Item type"]) == ["Initial (one-off)", "Recurring", "Consumption"]
    # one-off: 0 -> 49.00 (no percent from 0); recurring: 30 + 20 + 10 = 60.00 -> 30 + 10 = 40.00,
    # -20.00 = -33.3%; consumption: 10.00 -> 15.00 + 2.00 = 17.00, +7.00 = +70.0%
    assert rows == {
        "Initial (one-off)": (Decimal("0.00"), Decimal("49.00"), Decimal("49.00"), None),
        "Recurring": (Decimal("60.00"), Decimal("40.00"), Decimal("-20.00"), Decimal("-33.3")),
        "Consumption": (Decimal("10.00"), Decimal("17.00"), Decimal("7.00"), Decimal("70.0")),
    }
    zones = {r["Zone"]: (r["Previous"], r["This run"], r["Change (%)"]) for r in comparison.by_zone.to_dict("records")}
    # FIX 10.00 -> 15.00 (+50.0%), MOB 0 -> 2.00
    assert zones == {"FIX": (Decimal("10.00"), Decimal("15.00"), Decimal("50.0")),
                     "MOB": (Decimal("0.00"), Decimal("2.00"), None)}
    # totals: C1 40.00 -> 47.00 (+7.00), C2 20.00 -> 59.00 (+39.00), C3 10.00 -> none (-10.00)
    moved = comparison.accounts
    assert list(moved["Account number"]) == ["C2", "C3", "C1"]
    assert list(moved["Change"]) == [Decimal("39.00"), Decimal("-10.00"), Decimal("7.00")]
    assert list(moved["Status"]) == ["changed", "removed", "changed"]


def test_without_a_previous_period_there_is_nothing_to_compare(two_periods, engine):
    assert previous_period_comparison(engine, two_periods["promoted"]).previous == ""


def test_a_promoted_runs_own_invoices_are_not_anomalies_of_it(two_periods, engine):
    # C1, C2, C3 are invoiced for September by run 2, which issued run 1 itself
    sheets = run_report(engine, two_periods["promoted"], today=date(2026, 11, 2))
    assert "already_invoiced" not in set(sheets["Anomalies"]["Problem"])
    # another run of September would bill them twice: there they are anomalies, one per invoice
    other = add_run(engine, "preprod", "2026-09")
    for n, (account, items) in enumerate(SEPTEMBER.items(), start=1):
        add_invoice(engine, other, f"PRE-{other}-{n:04d}", account, "2026-09", items)
    anomalies = run_report(engine, other, today=date(2026, 11, 2))["Anomalies"]
    flagged = anomalies[anomalies["Problem"] == "already_invoiced"]
    assert sorted(flagged["Line or key"]) == ["C1", "C2", "C3"]


def test_anomalies_are_counted_by_kind():
    anomalies = pd.DataFrame({"Problem": ["already_invoiced", "late_calls", "already_invoiced", "b_kind", "late_calls",
                                          "already_invoiced"]})
    counts = anomaly_counts(anomalies)
    # 3 already invoiced, 2 late calls, 1 b_kind: most first
    assert list(zip(counts["Problem"], counts["Anomalies"], strict=True)) == [
        ("already_invoiced", 3), ("late_calls", 2), ("b_kind", 1)]


def test_a_customers_documents_say_whom_they_were_emailed_to_and_which_file_debits_them(two_periods, engine):
    with engine.begin() as connection:
        ids = dict(connection.execute(select(s.Invoice.number, s.Invoice.id).where(s.Invoice.status == "issued")).all())
        connection.execute(insert(s.Delivery).values(
            invoice_id=ids["F2026-000001"], recipient="compta@alpha.example.fr", state="sent", attempts=1,
            sent_at=datetime(2026, 10, 2, 6, 5)))
        connection.execute(insert(s.Delivery).values(invoice_id=ids["F2026-000002"], recipient="boss@beta.example",
                                                     state="failed", attempts=2, last_error="550 mailbox unknown"))
        file_id = connection.execute(insert(s.SepaFile).values(
            message_id="WB-20261003-1", version="pain.008.001.02", path="sepa/2026-10/debits-1.xml",
            created_at=datetime(2026, 10, 3), transactions=1, total_cents=4000).returning(s.SepaFile.id)).scalar_one()
        connection.execute(insert(s.SepaDebit).values(
            file_id=file_id, invoice_id=ids["F2026-000001"], mandate_reference="MANDATE-C1-01", sequence_type="FRST",
            amount_cents=4000, collection_date=date(2026, 10, 10)))
    c1 = customer_documents(engine, "C1").set_index("number")
    assert list(c1.index) == ["F2026-000001"]  # drafts are not the customer's documents
    assert c1.loc["F2026-000001", "emailed"] == "compta@alpha.example.fr (sent 2026-10-02 06:05 UTC)"
    assert c1.loc["F2026-000001", "direct_debit"] == (
        "sepa/2026-10/debits-1.xml (WB-20261003-1, collected on 2026-10-10)")
    c2 = customer_documents(engine, "C2").set_index("number")
    assert c2.loc["F2026-000002", "emailed"] == "boss@beta.example (failed: 550 mailbox unknown)"
    assert c2.loc["F2026-000002", "direct_debit"] == "not debited: pays by transfer"
    # C3 has no contact flagged invoice recipient, and pays by direct debit without a file yet
    c3 = customer_documents(engine, "C3").set_index("number")
    assert c3.loc["F2026-000003", "emailed"] == "not emailed: no contact flagged invoice recipient"
    assert c3.loc["F2026-000003", "direct_debit"] == "not in a SEPA file yet"


def test_months_billed_by_item_type_over_twelve_months(two_periods, engine):
    # C1 was issued September only (recurring 3000, consumption 1000): the window ends there
    months = monthly_billed(engine, "C1")
    assert list(months["period"]) == [f"2025-{m:02d}" for m in range(10, 13)] + [f"2026-{m:02d}" for m in range(1, 10)]
    september = months.set_index("period").loc["2026-09"]
    assert (september["recurring"], september["consumption"], september["one_off"]) == (3000, 1000, 0)
    assert int(months[["recurring", "consumption"]].to_numpy().sum()) == 4000  # nothing else issued
    assert monthly_billed(engine, "C4").empty  # never invoiced


def test_lines_and_masked_ibans(two_periods, engine):
    lines = customer_lines(engine, "C1")
    assert list(zip(lines["number"], lines["valid_from"], lines["valid_to"].map(
        lambda v: None if pd.isna(v) else v), strict=True)) == [("+33145000001", date(2026, 1, 1), None)]
    assert mask_iban("FR76 3000 6000 0112 3456 7890 189") == "FR76 •••• 0189"
    assert mask_iban(None) == "" and mask_iban("FR76") == "••••"


# ---------------------------------------------------------------------------- the interactive tables

def dt_args(markup: str) -> dict:
    """The DataTables arguments a table's HTML gives the browser (in its ``data-dt-args``)."""
    import html

    return json.loads(html.unescape(markup.split('data-dt-args="', 1)[1].split('"', 1)[0]))


def test_tables_write_money_for_people_and_sort_it_exactly():
    from workbench.ui.tables import table_html

    frame = pd.DataFrame({"account_number": ["C1", "C2", "C3"],
                          "total_incl_cents": pd.array([826300, -5, None], dtype="Int64"),
                          "Change": [Decimal("1.5"), None, Decimal("0.1333")],
                          "calls": pd.array([3, None, 12], dtype="Int64")})
    html = table_html(frame)
    args = dt_args(html)
    rows = json.loads(args["data_json"])
    headers = args["table_html"]
    for name in ("Account number", "Total incl. VAT", "Change", "Calls"):
        assert f"<th>{name}</th>" in headers
    # 826300 cents = €8,263.00; -5 cents = -€0.05; 1.5 EUR = €1.50; 0.1333 EUR keeps its 4 decimals
    assert [row[1] for row in rows] == ["€8,263.00", "-€0.05", ""]
    assert [row[2] for row in rows] == ["€1.50", "", "€0.1333"]
    assert [row[3] for row in rows] == ["3", "", "12"]  # a missing count is empty, never <NA>
    # the hidden sort columns: integer 1/10,000 EUR (8263.00 -> 82630000, -0.05 -> -500)
    assert [row[4] for row in rows] == ["82630000", "-500", ""]
    assert [row[5] for row in rows] == ["15000", "", "1333"]
    defs = {d["targets"] if isinstance(d["targets"], int) else tuple(d["targets"]): d for d in args["columnDefs"]}
    assert defs[(4, 5)]["visible"] is False and defs[1]["orderData"] == [4] and defs[2]["orderData"] == [5]
    # whole values, every control shown, a filter under each column
    assert args["layout"]["topEnd"] == "search" and args["column_filters"] == "footer"
    assert "downsampling_warning" not in args
    assert "unpkg" not in html and "https://www" not in html.split("_fallback")[-1]  # nothing from the internet


def test_tables_escape_customer_text():
    from workbench.ui.tables import table_html

    frame = pd.DataFrame({"name": ['<img src="http://attacker.example/p.png" onerror=alert(1)>', "Acme \u202eLtd",
                                   "</script><script>alert(2)</script>"]})
    html = table_html(frame)
    data = dt_args(html)["data_json"]
    assert "<img" not in html and "<script>alert" not in html and "&lt;img src=" in data
    assert "</script><script>" not in html  # the data cannot close the script it is in
    # customer text is in cells and an attribute, never in a script's text
    scripts = html.split("<script")[1:]
    assert not any("attacker" in script.split("</script>")[0] or "alert" in script.split("</script>")[0]
                   for script in scripts)
    assert "\u202e" not in json.loads(data)[1][0] and json.loads(data)[1][0] == "Acme Ltd"
    with pytest.raises(TypeError, match="never a float"):
        table_html(pd.DataFrame({"total_incl_cents": [pd.NA, 1.5]}, dtype=object))
