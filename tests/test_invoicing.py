"""Invoice building on a hand-worked October 2026 (31 days), amounts computed by hand."""

from datetime import date, timedelta
from decimal import Decimal

import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from workbench.errors import InputError
from workbench.invoicing import BillingInputs, BillingOptions, build_invoices, control_report
from workbench.invoicing.build import ITEM_COLUMNS
from workbench.invoicing.report import REPORT_COLUMNS, compare_invoices
from workbench.money import round_half_up
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


# ---------------------------------------------------------------------------- subscriptions: each day once
#
# A subscription is billed by calendar month, each day once, whatever the sequence of runs in
# advance and in arrears, credit notes and re-invoicing: a run bills the days of its target not
# yet billed (``BillingInputs.billed``: the lines of the issued invoices of other periods that
# no reopening credit note cancels) and gives back the billed days no longer active.

BILLED_COLUMNS = ["subscription_id", "period_from", "period_to", "quantity", "unit_price_cents", "amount_cents"]
ONE_CUSTOMER = CUSTOMERS.iloc[:1]


def line_product(price_cents: int) -> pd.DataFrame:
    return pd.DataFrame([(1, "LINE", "LINE", "recurring", "service", price_cents, Decimal("20"))],
                        columns=PRODUCTS.columns)


def subscription(start: date, end: date | None = None, quantity: int = 1, subscription_id: int = 7) -> pd.DataFrame:
    return pd.DataFrame([(subscription_id, 1, 1, quantity, start, end, None)],
                        columns=["subscription_id", "customer_id", "product_id", "quantity", "start_date",
                                 "end_date", "price_override_cents"])


class Ledger:
    """Issued invoices of one customer, as production keeps them: a run of a period for which
    the customer has an invoice (not reopened) issues nothing; ``billed`` is what the next run
    reads (the subscription lines of the other periods' invoices, not reopened, in order)."""

    def __init__(self, products: pd.DataFrame):
        self.products = products
        self.invoices: list[dict] = []  # period, lines, reopened

    def billed(self, period: Period) -> pd.DataFrame:
        lines = [i["lines"] for i in self.invoices if i["period"] != period and not i["reopened"]]
        return (pd.concat(lines, ignore_index=True)[BILLED_COLUMNS] if lines
                else pd.DataFrame(columns=BILLED_COLUMNS))

    def run(self, period: str, subs: pd.DataFrame, advance: bool) -> pd.DataFrame:
        """Build and issue the period's invoice; returns its subscription lines."""
        p = Period.parse(period)
        if any(i["period"] == p and not i["reopened"] for i in self.invoices):
            return pd.DataFrame(columns=ITEM_COLUMNS)
        options = BillingOptions(p, p.end, p.end, advance=advance)
        # the service history: the first day any invoice billed, a reopened one included
        first_days = [d for i in self.invoices for d in i["lines"]["period_from"]]
        items = build_invoices(BillingInputs(ONE_CUSTOMER, self.products, subs, billed=self.billed(p),
                                             history_from=min(first_days, default=None)), options).items
        lines = items[items["subscription_id"].notna()].reset_index(drop=True)
        if len(items):
            self.invoices.append({"period": p, "lines": lines, "reopened": False,
                                  "target_end": (p.next() if advance else p).end})
        return lines

    def reopen_last(self, index: int = -1) -> Period:
        """A credit note that cancels the last invoice (or the one at ``index``) and reopens its
        period."""
        self.invoices[index]["reopened"] = True
        return self.invoices[index]["period"]

    def by_month(self) -> dict[str, int]:
        """Net amount billed per month of service, over the invoices not cancelled."""
        lines = [i["lines"] for i in self.invoices if not i["reopened"]]
        if not lines:
            return {}
        rows = pd.concat(lines, ignore_index=True)
        months = rows["period_from"].map(lambda d: str(Period.of(d)))
        return {m: int(v) for m, v in rows.groupby(months)["amount_cents"].sum().items()}


def lines_of(lines: pd.DataFrame) -> list[tuple]:
    """Subscription lines by service period: type, from, to, quantity, amount."""
    return sorted((r.type, r.period_from, r.period_to, r.quantity, int(r.amount_cents))
                  for r in lines.itertuples())


def test_in_advance_a_new_subscription_s_first_partial_month_is_billed_once():
    """LINE at 30.00, from 10 October 2026: September in advance, then October in advance."""
    ledger, subs = Ledger(line_product(3000)), subscription(date(2026, 10, 10))
    september = ledger.run("2026-09", subs, advance=True)
    # 10 to 31 October: 22 of 31 days, 3000 x 22 / 31 = 2129.03 -> 2129 (0.7097 of a month)
    assert lines_of(september) == [("prorated", date(2026, 10, 10), date(2026, 10, 31), "0.7097", 2129)]
    assert september["subscription_id"].tolist() == [7]
    october = ledger.run("2026-10", subs, advance=True)
    # November only: October's days are billed already
    assert lines_of(october) == [("recurring", date(2026, 11, 1), date(2026, 11, 30), "1", 3000)]
    assert ledger.by_month() == {"2026-10": 2129, "2026-11": 3000}


def test_a_subscription_billed_in_advance_and_ended_mid_period_gets_its_unused_days_back():
    """LINE at 19.90 billed in advance for October; the end date, 15 October, is loaded after."""
    ledger = Ledger(line_product(1990))
    september = ledger.run("2026-09", subscription(date(2025, 1, 1)), advance=True)
    assert lines_of(september) == [("recurring", date(2026, 10, 1), date(2026, 10, 31), "1", 1990)]
    october = ledger.run("2026-10", subscription(date(2025, 1, 1), date(2026, 10, 15)), advance=True)
    # 15 of 31 days kept: 1990 x 15 / 31 = 962.90 -> 963; given back 1990 - 963 = 1027 for the
    # 16 unused days (16/31 = 0.5161); nothing for November
    assert lines_of(october) == [("prorated", date(2026, 10, 16), date(2026, 10, 31), "-0.5161", -1027)]
    assert october["description"].tolist() == ["LINE – unused days 16–31 Oct 2026 returned"]
    assert int(october["unit_price_cents"].iloc[0]) == 1990
    assert ledger.by_month() == {"2026-10": 963}  # 1990 - 1027: the customer pays 9.63 for October


def test_the_end_date_loaded_after_is_given_back_in_arrears_too():
    ledger = Ledger(line_product(1990))
    ledger.run("2026-09", subscription(date(2025, 1, 1)), advance=True)  # October: 1990
    ended = subscription(date(2025, 1, 1), date(2026, 10, 15))
    assert lines_of(ledger.run("2026-10", ended, advance=False)) == [
        ("prorated", date(2026, 10, 16), date(2026, 10, 31), "-0.5161", -1027)]  # as above
    assert lines_of(ledger.run("2026-11", ended, advance=False)) == []  # nothing left to bill
    assert ledger.by_month() == {"2026-10": 963}


def test_switching_from_arrears_to_advance_skips_no_month():
    ledger, subs = Ledger(line_product(1990)), subscription(date(2025, 1, 1))
    assert lines_of(ledger.run("2026-09", subs, advance=False)) == [
        ("recurring", date(2026, 9, 1), date(2026, 9, 30), "1", 1990)]
    # October (not billed yet) and November, in advance
    assert lines_of(ledger.run("2026-10", subs, advance=True)) == [
        ("recurring", date(2026, 10, 1), date(2026, 10, 31), "1", 1990),
        ("recurring", date(2026, 11, 1), date(2026, 11, 30), "1", 1990)]
    assert lines_of(ledger.run("2026-11", subs, advance=True)) == [
        ("recurring", date(2026, 12, 1), date(2026, 12, 31), "1", 1990)]
    assert ledger.by_month() == {"2026-09": 1990, "2026-10": 1990, "2026-11": 1990, "2026-12": 1990}


def test_switching_from_advance_to_arrears_doubles_no_month():
    ledger, subs = Ledger(line_product(3000)), subscription(date(2026, 10, 10))
    assert lines_of(ledger.run("2026-10", subs, advance=True)) == [
        ("prorated", date(2026, 10, 10), date(2026, 10, 31), "0.7097", 2129),  # 3000 x 22 / 31
        ("recurring", date(2026, 11, 1), date(2026, 11, 30), "1", 3000)]
    assert lines_of(ledger.run("2026-11", subs, advance=False)) == []  # November was billed in advance
    assert len(ledger.invoices) == 1  # nothing to bill, no invoice
    assert lines_of(ledger.run("2026-12", subs, advance=False)) == [
        ("recurring", date(2026, 12, 1), date(2026, 12, 31), "1", 3000)]
    assert ledger.by_month() == {"2026-10": 2129, "2026-11": 3000, "2026-12": 3000}


def test_a_start_moved_later_or_earlier_is_given_back_or_billed_by_difference():
    ledger = Ledger(line_product(3000))
    ledger.run("2026-09", subscription(date(2026, 10, 10)), advance=True)  # 10-31 Oct: 2129
    # the start moves to 20 October: 12 days kept, 3000 x 12 / 31 = 1161.29 -> 1161; given back
    # 1161 - 2129 = -968 for 10-19 October (10/31 = 0.3226)
    later = ledger.run("2026-10", subscription(date(2026, 10, 20)), advance=True)
    assert lines_of(later) == [("prorated", date(2026, 10, 10), date(2026, 10, 19), "-0.3226", -968),
                               ("recurring", date(2026, 11, 1), date(2026, 11, 30), "1", 3000)]
    assert later.loc[later["amount_cents"] < 0, "description"].tolist() == [
        "LINE – unused days 10–19 Oct 2026 returned"]

    ledger = Ledger(line_product(3000))
    ledger.run("2026-09", subscription(date(2026, 10, 10)), advance=True)  # 10-31 Oct: 2129
    # the start moves to 5 October: 27 days, 3000 x 27 / 31 = 2612.90 -> 2613; 5-9 October cost
    # 2613 - 2129 = 484 (3000 x 5 / 31 = 483.87 would be 484 too; the difference is the rule)
    earlier = ledger.run("2026-10", subscription(date(2026, 10, 5)), advance=True)
    assert lines_of(earlier) == [("prorated", date(2026, 10, 5), date(2026, 10, 9), "0.1613", 484),
                                 ("recurring", date(2026, 11, 1), date(2026, 11, 30), "1", 3000)]
    assert ledger.by_month() == {"2026-10": 2613, "2026-11": 3000}


def test_a_month_billed_in_two_parts_adds_up_to_the_month_not_to_the_parts():
    """Rounding point 3: 1.00 a month, 30 November days billed in two parts of 15 days."""
    ledger = Ledger(line_product(100))
    # 16-30 November in advance: 100 x 15 / 30 = 50 exactly
    ledger.run("2026-10", subscription(date(2026, 11, 16)), advance=True)
    assert ledger.by_month() == {"2026-11": 50}
    # the start moved to 1 November: 1-15 November costs amount(30 days) - amount(15) = 100 - 50
    moved = ledger.run("2026-11", subscription(date(2026, 11, 1)), advance=False)
    assert lines_of(moved) == [("prorated", date(2026, 11, 1), date(2026, 11, 15), "0.5000", 50)]
    assert ledger.by_month() == {"2026-11": 100}
    # a price of 0.10 a month, 3 days of 31 then the 28 others: round(10 x 3 / 31) = round(0.97)
    # = 1, then 10 - 1 = 9, whereas round(10 x 28 / 31) = round(9.03) = 9: the month is 10, exactly
    ledger = Ledger(line_product(10))
    ledger.run("2026-09", subscription(date(2026, 10, 29)), advance=True)
    ledger.run("2026-10", subscription(date(2026, 10, 1)), advance=False)
    assert ledger.by_month() == {"2026-10": 10}


def test_reinvoicing_after_a_reopening_credit_note_bills_the_days_again_once():
    ledger, subs = Ledger(line_product(3000)), subscription(date(2026, 10, 10))
    ledger.run("2026-09", subs, advance=True)  # 10-31 Oct: 2129
    ledger.run("2026-10", subs, advance=True)  # November: 3000
    assert ledger.reopen_last() == Period(2026, 10)
    # October again, now in arrears: November is no longer billed, October is
    assert lines_of(ledger.run("2026-10", subs, advance=False)) == []
    assert ledger.by_month() == {"2026-10": 2129}
    assert lines_of(ledger.run("2026-11", subs, advance=False)) == [
        ("recurring", date(2026, 11, 1), date(2026, 11, 30), "1", 3000)]
    assert ledger.by_month() == {"2026-10": 2129, "2026-11": 3000}
    # the September invoice cancelled and re-run: October's days billed again, once
    ledger = Ledger(line_product(3000))
    ledger.run("2026-09", subs, advance=True)
    ledger.reopen_last()
    assert lines_of(ledger.run("2026-09", subs, advance=True)) == [
        ("prorated", date(2026, 10, 10), date(2026, 10, 31), "0.7097", 2129)]
    assert ledger.by_month() == {"2026-10": 2129}


def test_a_give_back_whose_charge_is_cancelled_is_charged_back():
    """LINE at 30.00 from 15 January 2026, billed in arrears; the start moves to 16 January after
    March was billed, then the January invoice is reopened by a credit note and January billed
    again: day 15 was given back once by April's invoice and again by the credit note."""
    ledger = Ledger(line_product(3000))
    january = ledger.run("2026-01", subscription(date(2026, 1, 15)), advance=False)
    # 15-31 January: 17 of 31 days, 3000 x 17 / 31 = 1645.16 -> 1645
    assert lines_of(january) == [("prorated", date(2026, 1, 15), date(2026, 1, 31), "0.5484", 1645)]
    ledger.run("2026-02", subscription(date(2026, 1, 15)), advance=False)
    ledger.run("2026-03", subscription(date(2026, 1, 15)), advance=False)
    moved = subscription(date(2026, 1, 16))
    april = ledger.run("2026-04", moved, advance=False)
    # 16 days kept: 3000 x 16 / 31 = 1548.39 -> 1548; day 15 given back: 1548 - 1645 = -97
    assert lines_of(april) == [("prorated", date(2026, 1, 15), date(2026, 1, 15), "-0.0323", -97),
                               ("recurring", date(2026, 4, 1), date(2026, 4, 30), "1", 3000)]
    assert ledger.reopen_last(0) == Period(2026, 1)  # January's 1645 credited in full
    again = ledger.run("2026-01", moved, advance=False)
    # day 15 stands returned twice (-97 on April's invoice, and by the credit note): charged
    # back, 0 - (-97) = 97; then 16-31 January, 1548 - 0 = 1548 (16/31 = 0.5161)
    assert lines_of(again) == [("prorated", date(2026, 1, 15), date(2026, 1, 15), "0.0323", 97),
                               ("prorated", date(2026, 1, 16), date(2026, 1, 31), "0.5161", 1548)]
    assert again.loc[again["period_to"] == date(2026, 1, 15), "description"].tolist() == [
        "LINE – unused day 15 Jan 2026 returned twice, charged back"]
    # January: -97 + 97 + 1548 = 1548, the 16 days once; nothing else moves
    assert ledger.by_month() == {"2026-01": 1548, "2026-02": 3000, "2026-03": 3000, "2026-04": 3000}
    assert lines_of(ledger.run("2026-05", moved, advance=False)) == [
        ("recurring", date(2026, 5, 1), date(2026, 5, 31), "1", 3000)]


@st.composite
def histories(draw):
    """A subscription (price, quantity, start, end) and a sequence of monthly runs from January
    2026, each in advance or in arrears; it may have started before the first run (an
    installed-base subscription); its end date (and a start moved later) are known from a given
    run on; after some runs, a credit note reopens the last invoice issued and its period is
    billed again (in either mode), at once or after the next run (``which``: the invoice
    reopened, counted back from the last one still standing)."""
    start = date(2025, 10, 1) + timedelta(days=draw(st.integers(0, 455)))
    end = draw(st.none() | st.integers(0, 500).map(lambda n: start + timedelta(days=n)))
    moved = start + timedelta(days=draw(st.integers(0, 1) .flatmap(
        lambda moves: st.just(0) if not moves else st.integers(1, 90))))
    months = draw(st.integers(1, 12))
    return {
        "price": draw(st.integers(1, 9999)), "quantity": draw(st.integers(1, 3)),
        "start": start, "end": end, "moved": moved,
        "end_known": draw(st.integers(0, months - 1)), "move_known": draw(st.integers(0, months - 1)),
        # advance, then reopen and bill again, in advance, which invoice, after the next run
        "runs": draw(st.lists(st.tuples(st.booleans(), st.booleans(), st.booleans(), st.integers(0, 11),
                                        st.booleans()), min_size=months, max_size=months)),
    }


@settings(max_examples=200, deadline=None)
@given(histories())
@example({"price": 1, "quantity": 1, "start": date(2026, 1, 1), "end": date(2026, 1, 1), "moved": date(2026, 1, 3),
          "end_known": 0, "move_known": 1, "runs": [(False, False, False, 0, False)] * 2})  # start moved after end
@example({"price": 3000, "quantity": 1, "start": date(2025, 1, 1), "end": None, "moved": date(2025, 1, 1),
          "end_known": 0, "move_known": 0,  # in advance, January's invoice reopened, February run before it
          "runs": [(True, True, True, 0, True), (True, False, False, 0, False)]})
def test_property_each_day_of_service_is_billed_once(history):
    ledger = Ledger(line_product(history["price"]))
    period, pending, subs = Period(2026, 1), [], None
    for step, (advance, reopen, again_in_advance, which, later) in enumerate(history["runs"]):
        start = history["moved"] if step >= history["move_known"] else history["start"]
        end = history["end"] if step >= history["end_known"] else None
        subs = subscription(start, end, history["quantity"])
        ledger.run(str(period), subs, advance)
        for rerun in pending:
            ledger.run(str(rerun), subs, again_in_advance)
        pending = []
        live = [i for i in ledger.invoices if not i["reopened"]]
        if reopen and live:
            # any invoice still standing, the last one or an earlier one (whose days a later
            # invoice may have given back)
            reopened = live[-1 - which % len(live)]
            reopened["reopened"] = True
            if later:
                pending.append(reopened["period"])
            else:
                ledger.run(str(reopened["period"]), subs, again_in_advance)
        period = period.next()
    for rerun in pending:
        ledger.run(str(rerun), subs, False)
    ledger.run(str(period), subs, False)  # a last run in arrears catches up what a reopening left
    live = [i for i in ledger.invoices if not i["reopened"]]
    target_end = max((i["target_end"] for i in live), default=date(2026, 1, 1))
    # the workbench's history: its first billed day, never before its first run
    first_days = [d for i in ledger.invoices for d in i["lines"]["period_from"]]
    floor = min(first_days, default=date(2026, 1, 1))
    assert floor >= date(2026, 1, 1)

    # what each month costs for its active days (from 1 January 2026 to the last run's target)
    start, end = max(history["moved"], floor), history["end"] or date(2100, 1, 1)
    gross = history["price"] * history["quantity"]
    expected, month = {}, Period(2026, 1)
    while month.start < target_end:
        first, last = max(start, month.start), min(end, month.end - timedelta(days=1), target_end - timedelta(days=1))
        days = max((last - first).days + 1, 0)
        if days:
            expected[str(month)] = gross if days == month.days else round_half_up(gross * days, month.days)
        month = month.next()
    got = ledger.by_month()
    assert {m: v for m, v in got.items() if v or m in expected} == expected
    # and each active day once: charged lines minus given back lines, day by day
    count: dict[date, int] = {}
    for invoice in ledger.invoices:
        if invoice["reopened"]:
            continue
        for r in invoice["lines"].itertuples():
            sign = -1 if Decimal(r.quantity) < 0 else 1
            for n in range((r.period_to - r.period_from).days + 1):
                day = r.period_from + timedelta(days=n)
                count[day] = count.get(day, 0) + sign
    billed_days = {d for d, c in count.items() if c}
    assert set(count.values()) <= {0, 1}
    assert billed_days == {start + timedelta(days=n) for n in range(max(
        (min(end, target_end - timedelta(days=1)) - start).days + 1, 0))}
