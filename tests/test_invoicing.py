"""Invoice building on a hand-worked October 2026 (31 days), amounts computed by hand."""

from datetime import date
from decimal import Decimal

import pandas as pd
import pytest

from workbench.errors import InputError
from workbench.invoicing import BillingInputs, BillingOptions, build_invoices, control_report
from workbench.invoicing.report import REPORT_COLUMNS, compare_invoices
from workbench.period import Period

PRODUCTS = pd.DataFrame(
    [(1, "LINE", "Ligne pro", "recurring", "service", 2000, Decimal("20")),
     (2, "OPT", "Option mobiles", "recurring", "service", 990, Decimal("20")),
     (3, "MAG", "Magazine", "recurring", "press", 310, Decimal("5.5")),
     (4, "INSTALL", "Installation", "one_off", "installation", 15000, Decimal("20")),
     (5, "DEPOSIT", "Dépôt de garantie", "one_off", "deposit", 10000, Decimal("0"))],
    columns=["product_id", "code", "name", "kind", "category", "price_cents", "vat_rate"],
)
CUSTOMERS = pd.DataFrame(
    [(1, "C1", "=HYPERLINK(\"http://x\")"), (2, "C2", "Deux"), (3, "C3", "Trois"), (4, "C4", "Quatre")],
    columns=["customer_id", "account_number", "name"],
)
SUBS = pd.DataFrame(
    [(1, 1, 2, date(2025, 1, 1), None, None),
     (1, 2, 1, date(2026, 10, 11), None, None),  # 21 days of 31
     (1, 3, 1, date(2025, 1, 1), None, None),
     (2, 1, 1, date(2025, 6, 1), date(2026, 10, 20), None)],  # 20 days of 31
    columns=["customer_id", "product_id", "quantity", "start_date", "end_date", "price_override_cents"],
)
ONE_OFFS = pd.DataFrame(
    [(10, 1, 4, date(2026, 10, 11), 1, None, ""),
     (11, 2, 5, date(2026, 10, 5), 1, None, "Box"),
     (12, 2, 4, date(2026, 11, 2), 1, None, "")],  # next period: not billed now
    columns=["one_off_id", "customer_id", "product_id", "charge_date", "quantity", "price_override_cents",
             "description"],
)
CALLS = pd.DataFrame(
    [(1, "MOB", "France mobile", 12, 1800, 54321),  # 5.4321 -> 5.43
     (1, "FIX", "France fixe", 3, 240, 4950),  # 0.495 -> 0.50 (half up)
     (3, "INT", "International", 1, 60, 12345)],  # 1.2345 -> 1.23
    columns=["customer_id", "zone_code", "zone_name", "calls", "seconds", "amount_units"],
)
INPUTS = BillingInputs(
    customers=CUSTOMERS, products=PRODUCTS, subscriptions=SUBS, one_offs=ONE_OFFS, consumption=CALLS,
    credits=pd.DataFrame({"customer_id": [1, 2], "available_cents": [3000, 50000]}),
    previous=pd.DataFrame({"customer_id": [1], "previous_amount_cents": [8000]}),
)
OPTIONS = BillingOptions(Period.parse("2026-10"), date(2026, 11, 2), date(2026, 11, 30))


def by_account(invoices):
    return invoices.set_index("account_number")


def test_hand_worked_invoices_in_arrears():
    result = build_invoices(INPUTS, OPTIONS)
    inv = by_account(result.invoices)
    assert sorted(inv.index) == ["C1", "C2", "C3"]  # C4 has nothing to bill
    c1 = inv.loc["C1"]
    # 20%: 40.00 + 6.71 + 150.00 + 5.43 + 0.50 = 202.64 -> VAT 40.528 -> 40.53; 5.5%: 3.10 -> 0.1705 -> 0.17
    assert (c1["one_off_cents"], c1["recurring_cents"], c1["prorated_cents"], c1["consumption_cents"]) == (
        15000, 4310, 671, 593)
    assert (c1["total_excl_cents"], c1["total_vat_cents"], c1["total_incl_cents"]) == (20574, 4070, 24644)
    assert (c1["credit_applied_cents"], c1["net_payable_cents"], c1["previous_amount_cents"]) == (3000, 21644, 8000)
    c2 = inv.loc["C2"]
    # 20%: 12.90 (20.00 x 20/31 = 12.903) -> VAT 2.58; 0%: 100.00; credit 500.00 covers all of 115.48
    assert (c2["prorated_cents"], c2["one_off_cents"], c2["total_excl_cents"], c2["total_vat_cents"]) == (
        1290, 10000, 11290, 258)
    assert (c2["total_incl_cents"], c2["credit_applied_cents"], c2["net_payable_cents"]) == (11548, 11548, 0)
    assert pd.isna(c2["previous_amount_cents"])
    c3 = inv.loc["C3"]
    assert (c3["consumption_cents"], c3["total_vat_cents"], c3["total_incl_cents"]) == (123, 25, 148)

    vat = result.vat.set_index(["customer_id", "vat_rate"])
    assert vat.loc[(1, Decimal("5.5")), ["base_cents", "vat_cents"]].tolist() == [310, 17]
    assert vat.loc[(2, Decimal("0")), ["base_cents", "vat_cents"]].tolist() == [10000, 0]

    items = result.items[result.items["customer_id"] == 1]
    assert items["type"].tolist() == ["one_off", "recurring", "recurring", "prorated", "consumption",
                                      "consumption", "credit"]
    assert items["position"].tolist() == list(range(1, 8))
    prorated = items[items["type"] == "prorated"].iloc[0]
    assert (prorated["period_from"], prorated["period_to"], prorated["quantity"]) == (
        date(2026, 10, 11), date(2026, 10, 31), "0.6774")
    assert items[items["type"] == "credit"]["amount_cents"].tolist() == [-3000]
    # totals are sums of rounded parts
    for _, row in result.invoices.iterrows():
        lines = result.items[(result.items["customer_id"] == row["customer_id"]) & (result.items["type"] != "credit")]
        assert lines["amount_cents"].sum() == row["total_excl_cents"]


def test_in_advance_the_first_invoice_carries_the_prorated_start_and_next_month():
    options = BillingOptions(Period.parse("2026-10"), date(2026, 10, 1), date(2026, 10, 31), advance=True)
    items = build_invoices(INPUTS, options).items
    c1 = items[(items["customer_id"] == 1) & items["type"].isin(["recurring", "prorated"])]
    got = sorted(zip(c1["product_code"], c1["type"], c1["amount_cents"], c1["period_from"], strict=True))
    assert got == [
        ("LINE", "recurring", 4000, date(2026, 11, 1)),  # November, in advance
        ("MAG", "recurring", 310, date(2026, 11, 1)),
        ("OPT", "prorated", 671, date(2026, 10, 11)),  # its start, 21/31 of October
        ("OPT", "recurring", 990, date(2026, 11, 1)),
    ]
    # C2's line ended on 20 October: nothing in advance for November
    assert items[(items["customer_id"] == 2) & items["type"].isin(["recurring", "prorated"])].empty


def test_price_override_replaces_the_catalogue_price():
    subs = SUBS.copy()
    subs.loc[0, "price_override_cents"] = 1750
    result = build_invoices(BillingInputs(CUSTOMERS, PRODUCTS, subs), OPTIONS)
    line = result.items[(result.items["customer_id"] == 1) & (result.items["product_code"] == "LINE")].iloc[0]
    assert (line["unit_price_cents"], line["amount_cents"]) == (1750, 3500)


def test_control_report_columns_and_amounts():
    result = build_invoices(INPUTS, OPTIONS)
    invoices = result.invoices.assign(number=["PRE-1-0001", "PRE-1-0002", "PRE-1-0003"])
    customers = CUSTOMERS.assign(payment_method=["direct_debit", "transfer", "transfer", "direct_debit"],
                                 billing_group="standard", has_mandate=[False, False, False, True])
    sheets = control_report(invoices, result.items, customers,
                            unrated=pd.DataFrame({"reason": ["no_line"], "calls": [4]}))
    sheet = sheets["Invoices"]
    assert list(sheet.columns[: len(REPORT_COLUMNS)]) == REPORT_COLUMNS
    first = sheet.iloc[0]
    assert first["Customer name"] == '=HYPERLINK("http://x")'
    assert first["Total amount billed"] == Decimal("246.44") and first["Net payable amount"] == Decimal("216.44")
    assert first["Initial billing items amount"] == Decimal("150.00")
    assert first["Previous invoice amount"] == Decimal("80.00")
    anomalies = sheets["Anomalies"]
    # as every problem is shown, then the customer's name
    assert list(anomalies.columns) == ["Source", "Line or key", "Problem", "Detail", "Customer name"]
    kinds = set(zip(anomalies["Problem"], anomalies["Line or key"], strict=True))
    assert ("calls_without_subscription", "C3") in kinds
    assert ("no_mandate_for_direct_debit", "C1") in kinds
    assert ("change_vs_previous_invoice", "C1") in kinds  # 80.00 -> 246.44
    change = anomalies[anomalies["Problem"] == "change_vs_previous_invoice"]["Detail"].iloc[0]
    assert change == "€80.00 -> €246.44 (+€166.44)"
    assert "rating" in set(anomalies["Source"])  # calls not rated
    summary = sheets["Summary"].set_index("Item type")
    assert summary.loc["Initial (one-off)", "Amount excl. VAT"] == Decimal("250.00")


def test_compare_two_runs():
    a = build_invoices(INPUTS, OPTIONS)
    calls = CALLS.copy()
    calls.loc[0, "amount_units"] = 64321  # a tariff fix: 5.43 -> 6.43 for C1's mobile calls
    b = build_invoices(BillingInputs(CUSTOMERS, PRODUCTS, SUBS, ONE_OFFS, calls.iloc[:2], INPUTS.credits,
                                     INPUTS.previous), OPTIONS)
    diff = compare_invoices(a.invoices, a.items, b.invoices, b.items).set_index("Account number")
    assert diff.loc["C1", "Status"] == "changed"
    assert diff.loc["C1", "Change consumption"] == Decimal("1.00")
    assert diff.loc["C1", "Change"] == Decimal("1.20")  # 1.00 + 20% VAT
    assert diff.loc["C2", "Status"] == "unchanged"
    assert diff.loc["C3", "Status"] == "removed"


@pytest.mark.parametrize(("rate", "problem"), [("20.001", "has more than two decimals"), ("abc", "is not a number"),
                                               ("NaN", "is not a number")])
def test_bad_vat_rate_is_refused(rate, problem):
    products = PRODUCTS.copy()
    products.loc[0, "vat_rate"] = rate
    with pytest.raises(InputError, match=f"^product LINE: VAT rate '{rate}' {problem}$") as refused:
        build_invoices(BillingInputs(CUSTOMERS, products, SUBS), OPTIONS)
    assert refused.value.code == "bad_vat_rate"


def test_customers_already_invoiced_are_flagged():
    result = build_invoices(INPUTS, OPTIONS)
    invoices = result.invoices.assign(number=["PRE-2-0001", "PRE-2-0002", "PRE-2-0003"])
    customers = CUSTOMERS.assign(already_invoiced=[True, False, False, False])
    anomalies = control_report(invoices, result.items, customers)["Anomalies"]
    flagged = anomalies[anomalies["Problem"] == "already_invoiced"]
    assert flagged["Line or key"].tolist() == ["C1"] and flagged["Source"].tolist() == ["PRE-2-0001"]


def test_compare_keeps_integer_cents_when_an_account_is_in_one_run_only():
    """C9 is only in run A (its total 2**53 + 1 cents, beyond float64's exact integers) and has
    no previous invoice; C8 only in run B. Through float, 90,071,992,547,409.93 would become
    ...409.92; in integer cents the changes are exact: C9 0 - 9007199254740993 cents."""
    huge = 2**53 + 1  # 9,007,199,254,740,993 cents
    a_invoices = pd.DataFrame({"customer_id": [9], "account_number": ["C9"], "name": ["Nine"],
                               "total_incl_cents": [huge], "net_payable_cents": [huge],
                               "previous_amount_cents": pd.array([None], dtype="Int64")})
    a_items = pd.DataFrame({"customer_id": [9], "type": ["recurring"], "amount_cents": [huge],
                            "calls": pd.array([None], dtype="Int64"), "seconds": pd.array([None], dtype="Int64")})
    b_invoices = pd.DataFrame({"customer_id": [8], "account_number": ["C8"], "name": ["Eight"],
                               "total_incl_cents": [100], "net_payable_cents": [100],
                               "previous_amount_cents": pd.array([None], dtype="Int64")})
    b_items = pd.DataFrame({"customer_id": [8], "type": ["consumption"], "amount_cents": [100],
                            "calls": pd.array([1], dtype="Int64"), "seconds": pd.array([60], dtype="Int64")})
    diff = compare_invoices(a_invoices, a_items, b_invoices, b_items).set_index("Account number")
    assert diff["Status"].to_dict() == {"C8": "added", "C9": "removed"}
    assert diff.loc["C9", "Total A"] == Decimal("90071992547409.93")
    assert diff.loc["C9", "Total B"] is None
    assert diff.loc["C9", "Change"] == Decimal("-90071992547409.93")
    assert diff.loc["C9", "Change recurring"] == Decimal("-90071992547409.93")
    assert diff.loc["C8", "Change"] == Decimal("1.00") and diff.loc["C8", "Total A"] is None
    for column in diff.columns:
        if column.startswith(("Total", "Change")):
            assert all(v is None or isinstance(v, Decimal) for v in diff[column]), column
