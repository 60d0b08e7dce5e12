"""Loading reference CSVs (:func:`workbench.reference.load_reference`), on SQLite and PostgreSQL.

The folder is the minimal operator of :mod:`factories`; line numbers count the header as 1.
"""

from __future__ import annotations

import csv
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from factories import (
    CONTACTS,
    CUSTOMERS,
    DESTINATIONS,
    HEADERS,
    LINES,
    MANDATES,
    ONE_OFF_CHARGES,
    PRODUCTS,
    RATE_PLANS,
    RATES,
    SUBSCRIPTIONS,
    csv_text,
    reference_folder,
    table_counts,
)
from sqlalchemy import select

from workbench.db import schema as s
from workbench.db.engine import make_engine, upgrade
from workbench.errors import InputError
from workbench.reference import load_reference

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample" / "reference"

#: rows of each table once the minimal operator is loaded (rate_intervals: 1 + 1 + 2 + 2)
EXPECTED_ROWS = {
    "rate_plans": 1, "zones": 3, "destinations": 4, "time_bands": 1, "rates": 4,
    "rate_intervals": 6, "products": 3, "allowances": 1, "customers": 2, "contacts": 2,
    "lines": 3, "subscriptions": 2, "one_off_charges": 1, "mandates": 1,
    "cdr_files": 0, "call_blocks": 0, "calls": 0, "cdr_rejects": 0, "rated_calls": 0, "rating_blocks": 0,
    "ratings": 0, "rating_errors": 0,
    "billing_runs": 0, "invoices": 0, "invoice_items": 0, "invoice_vat": 0, "number_sequences": 0,
    "credit_entries": 0, "deliveries": 0, "sepa_files": 0, "sepa_debits": 0, "job_locks": 0,
    "run_approvals": 0, "report_deliveries": 0,
}


def rows(engine, statement) -> list[tuple]:
    with engine.connect() as connection:
        return [tuple(r) for r in connection.execute(statement).all()]


def snapshot(engine) -> dict[str, list[tuple]]:
    """Every row of every reference table, to compare before and after a failed load."""
    with engine.connect() as connection:
        return {
            table.name: [tuple(r) for r in connection.execute(
                select(table).order_by(*table.primary_key.columns))]
            for table in s.Base.metadata.sorted_tables
        }


def test_a_valid_folder_loads(engine, tmp_path):
    counts = load_reference(engine, reference_folder(tmp_path / "ref"))
    assert counts == {name: n for name, n in EXPECTED_ROWS.items()
                      if name not in ("rate_intervals", "cdr_files", "call_blocks", "calls", "cdr_rejects",
                                      "rating_blocks", "ratings",
                                      "rated_calls", "rating_errors", "billing_runs", "invoices",
                                      "invoice_items", "invoice_vat", "number_sequences", "credit_entries",
                                      "deliveries", "sepa_files", "sepa_debits", "job_locks", "run_approvals",
                                      "report_deliveries")}
    assert table_counts(engine) == EXPECTED_ROWS

    assert rows(engine, select(s.RatePlan.code, s.RatePlan.timezone, s.RatePlan.default_band)) == [
        ("TEST", "Europe/Paris", "offpeak")]
    assert rows(engine, select(s.TimeBand.band, s.TimeBand.weekdays, s.TimeBand.start_minute,
                               s.TimeBand.end_minute)) == [("peak", "0,1,2,3,4", 480, 1200)]
    rates = rows(engine, select(s.Rate.zone_code, s.Rate.band, s.Rate.connect_fee_units,
                                s.Rate.charge_unanswered).order_by(s.Rate.id))
    assert rates == [("FIX", "peak", 0, False), ("FIX", "offpeak", 0, False),
                     ("MOB", "*", 1000, False), ("INT", "*", 2000, True)]
    intervals = rows(engine, select(s.Rate.zone_code, s.RateInterval.from_second,
                                    s.RateInterval.price_per_minute_micros,
                                    s.RateInterval.increment_s)
                     .join(s.Rate, s.Rate.id == s.RateInterval.rate_id)
                     .where(s.Rate.zone_code.in_(["MOB", "INT"]))
                     .order_by(s.Rate.zone_code, s.RateInterval.from_second))
    assert intervals == [("INT", 0, 600_000, 60), ("INT", 60, 300_000, 30),  # micro units: 0.60/min, 0.30/min
                         ("MOB", 0, 120_000, 60), ("MOB", 60, 120_000, 1)]
    assert rows(engine, select(s.Product.code, s.Product.price_cents, s.Product.vat_rate)
                .order_by(s.Product.code)) == [("INSTALL", 4900, Decimal("20.00")),
                                               ("LINE", 1990, Decimal("20.00")),
                                               ("MOBMIN", 500, Decimal("20.00"))]
    assert rows(engine, select(s.Allowance.zone_code, s.Allowance.seconds)) == [("MOB", 6000)]

    c2 = rows(engine, select(s.Customer.name, s.Customer.address_line2, s.Customer.country,
                             s.Customer.vat_number, s.Customer.language, s.Customer.payment_method)
              .where(s.Customer.account_number == "C2"))
    assert c2 == [("Beta Ltd", "Floor 2", "GB", None, "en", "transfer")]
    assert rows(engine, select(s.Contact.email, s.Contact.invoice_recipient)
                .order_by(s.Contact.email)) == [("boss@beta.example.co.uk", False),
                                                ("compta@alpha.example.fr", True)]
    lines = rows(engine, select(s.Customer.account_number, s.Line.number, s.Line.valid_from,
                                s.Line.valid_to)
                 .join(s.Customer, s.Customer.id == s.Line.customer_id).order_by(s.Line.number))
    assert [(a, n, str(f), t and str(t)) for a, n, f, t in lines] == [
        ("C1", "+33145000001", "2026-01-01", None),
        ("C2", "+33145000002", "2026-01-01", "2026-10-14"),  # written "01 45 00 00 02"
        ("C1", "+33145000003", "2026-10-15", None),  # written "0145000003"
    ]
    assert rows(engine, select(s.Subscription.quantity, s.Subscription.price_override_cents)
                .order_by(s.Subscription.quantity)) == [(1, None), (2, 1500)]
    assert rows(engine, select(s.Mandate.reference, s.Mandate.iban, s.Mandate.bic,
                               s.Mandate.status)) == [
        ("MANDATE-C1-01", "FR7630006000011234567890189", "AGRIFRPP", "active")]


def test_loading_twice_upserts(engine, tmp_path):
    folder = reference_folder(tmp_path / "ref")
    load_reference(engine, folder)
    first = snapshot(engine)
    load_reference(engine, folder)
    assert table_counts(engine) == EXPECTED_ROWS
    # only the time bands and rate intervals are replaced (new ids); every other row is the same
    second = snapshot(engine)
    for name in first:
        if name not in ("time_bands", "rate_intervals"):
            assert second[name] == first[name], name

    # a corrected file updates in place: C1 renamed, C2 moves to direct debit
    customers = [CUSTOMERS[0][:1] + ["Alpha SAS"] + CUSTOMERS[0][2:],
                 CUSTOMERS[1][:9] + ["direct_debit"] + CUSTOMERS[1][10:]]
    load_reference(engine, reference_folder(tmp_path / "fix", only=["customers"],
                                            customers=customers))
    assert table_counts(engine) == EXPECTED_ROWS
    assert rows(engine, select(s.Customer.id, s.Customer.account_number, s.Customer.name,
                               s.Customer.payment_method).order_by(s.Customer.id)) == [
        (first["customers"][0][0], "C1", "Alpha SAS", "direct_debit"),
        (first["customers"][1][0], "C2", "Beta Ltd", "direct_debit"),
    ]


BAD_ROWS = [
    # (file, its rows, line of the bad row, words of the problem)
    pytest.param("destinations", [*DESTINATIONS, ["TEST", "39", "Italy", "EU"]], 6, "'EU'",
                 id="unknown-zone"),
    pytest.param("rates", [*RATES[:2], ["TEST", "MOB", "*", "0.10", "no", "0:0.12"], *RATES[3:]],
                 4, "0:0.12", id="interval-without-increment"),
    pytest.param("rates",
                 [*RATES[:3], ["TEST", "INT", "*", "0.20", "yes", "0:0.60/60 0,30:0.30/30"]],
                 5, "interval", id="interval-garbled"),
    pytest.param("rates", [["TEST", "FIX", "peak", "0", "no", "60:0.06/1"], *RATES[1:]], 2,
                 "second 0", id="interval-not-from-0"),
    # 0:0.40/60 then 30:...: a 60 s first step would overlap the second interval's seconds 30-59
    pytest.param("rates", [*RATES[:2], ["TEST", "MOB", "*", "0", "no", "0:0.40/60 30:0.20/1"], *RATES[3:]], 4,
                 "interval from second 0 in steps of 60 s does not end where the next one starts (second 30)",
                 id="intervals-that-overlap"),
    # a per-minute price is exact to 1/1,000,000: a 7th decimal is refused, naming the price
    pytest.param("rates", [*RATES[:2], ["TEST", "MOB", "*", "0", "no", "0:0.0000001/1"], *RATES[3:]], 4,
                 "intervals: '0:0.0000001/1': price 0.0000001 has more than 6 decimals",
                 id="price-finer-than-a-millionth"),
    pytest.param("rates", [*RATES[:2], ["TEST", "MOB", "*", "0", "no", "0:abc/1"], *RATES[3:]], 4,
                 "price 'abc' is not an amount", id="price-not-an-amount"),
    pytest.param("rate_plans", [["TEST", "Test plan", "USD", "Europe/Paris", "FR", "offpeak"]], 2,
                 "currency 'USD' is not the currency the operator bills in (EUR)", id="plan-in-dollars"),
    pytest.param("lines", [*LINES, ["C2", "+33145000004", "2026-02-30", ""]], 5, "2026-02-30",
                 id="impossible-date"),
    pytest.param("lines", [LINES[0], ["C2", "+33145000002", "15/10/2026", ""], LINES[2]], 3,
                 "15/10/2026", id="french-date"),
    pytest.param("contacts", [CONTACTS[0], ["C9", "Nobody", "nobody@example.fr", "no"]], 3, "'C9'",
                 id="unknown-account"),
    pytest.param("lines", [["C3", "+33145000001", "2026-01-01", ""]], 2, "'C3'",
                 id="unknown-account-of-a-line"),
    pytest.param("contacts", [CONTACTS[0], ["C2", "Boss", "boss.beta.example.co.uk", "no"]], 3,
                 "email", id="email-without-at"),
    pytest.param("contacts", [["C1", "A", "compta@alpha", "yes"], CONTACTS[1]], 2, "email",
                 id="email-without-domain"),
    pytest.param("customers", [CUSTOMERS[0], CUSTOMERS[1][:9] + ["cheque"] + CUSTOMERS[1][10:]],
                 3, "payment_method", id="payment-method"),
    pytest.param("mandates", [["C1", "MANDATE-C1-02", "2026-13-01", "FR7630006000011234567890189",
                               "AGRIFRPP", "active"]], 2, "signature_date", id="mandate-date"),
]


@pytest.mark.parametrize(("name", "bad_rows", "line", "problem"), BAD_ROWS)
def test_a_bad_row_names_file_and_line_and_stores_nothing(engine, tmp_path, name, bad_rows, line,
                                                          problem):
    with pytest.raises(InputError) as caught:
        load_reference(engine, reference_folder(tmp_path / "bad", **{name: bad_rows}))
    error = caught.value
    assert (error.source, error.line) == (f"{name}.csv", line)
    where = f"{name}.csv, line {line}" + (f", column {error.column}" if error.column else "")
    assert str(error).startswith(f"{where}: ")
    assert problem in error.message
    assert set(table_counts(engine).values()) == {0}


def test_a_bad_row_leaves_a_loaded_database_as_it_was(engine, tmp_path):
    load_reference(engine, reference_folder(tmp_path / "ref"))
    before = snapshot(engine)
    # good changes in the earlier files, then a bad mandate: none of it is kept
    folder = reference_folder(
        tmp_path / "bad",
        customers=[CUSTOMERS[0][:1] + ["Renamed"] + CUSTOMERS[0][2:], CUSTOMERS[1],
                   ["C3", "Gamma", "", "", "", "", "", "", "fr", "transfer", "", "TEST"]],
        rates=[["TEST", "FIX", "peak", "0", "no", "0:0.99/1"], *RATES[1:]],
        time_bands=[["TEST", "peak", "mon,tue", "09:00", "18:00"]],
        mandates=[*MANDATES, ["C3", "MANDATE-C3-01", "2026-10-01", "FR76 1", "BIC", "suspended"]],
    )
    with pytest.raises(InputError) as caught:
        load_reference(engine, folder)
    # the mandate's three problems, each named by its line and column
    assert [(p.source, p.key, p.code) for p in caught.value.problems] == [
        ("mandates.csv", "line 3, column iban", "bad_iban"),
        ("mandates.csv", "line 3, column bic", "bad_bic"),
        ("mandates.csv", "line 3, column status", "bad_reference_row"),
    ]
    assert "status 'suspended'" in caught.value.problems[2].message
    assert snapshot(engine) == before


def test_bad_mandate_after_good_customers_stores_no_customer(engine, tmp_path):
    folder = reference_folder(
        tmp_path / "bad", only=["rate_plans", "customers", "mandates"],
        mandates=[MANDATES[0], ["C9", "MANDATE-C9-01", "2026-01-01", "FR76", "BIC", "active"]],
    )
    with pytest.raises(InputError) as caught:
        load_reference(engine, folder)
    assert str(caught.value.problems[-1]) == "mandates.csv, line 3, column account_number: account 'C9' is unknown"
    assert set(table_counts(engine).values()) == {0}


def test_a_missing_column_is_line_1(engine, tmp_path):
    header = [c for c in HEADERS["customers"] if c != "payment_method"]
    text = csv_text(header, [[v for c, v in zip(HEADERS["customers"], row, strict=True)
                              if c != "payment_method"] for row in CUSTOMERS])
    with pytest.raises(InputError) as caught:
        load_reference(engine, reference_folder(tmp_path / "bad", customers=text))
    assert (caught.value.source, caught.value.line) == ("customers.csv", 1)
    assert "payment_method" in str(caught.value)
    assert set(table_counts(engine).values()) == {0}


def test_an_empty_folder_is_an_error(engine, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no reference CSV"):
        load_reference(engine, tmp_path / "empty")


@pytest.mark.parametrize("separator", ["blank-line", "multi-line-field"])
def test_line_numbers_are_physical_lines(engine, tmp_path, separator):
    if separator == "blank-line":
        # header 1, C1 2, blank 3, the bad contact 4
        text = (csv_text(HEADERS["contacts"], CONTACTS[:1]) + "\n"
                + csv_text(None, [["C2", "Boss", "not-an-email", "no"]]))
    else:
        # header 1, C1's contact on lines 2-3 (its name holds a line break), the bad contact 4
        text = csv_text(HEADERS["contacts"], [["C1", "Service\ncomptabilité",
                                               "compta@alpha.example.fr", "yes"],
                                              ["C2", "Boss", "not-an-email", "no"]])
    with pytest.raises(InputError) as caught:
        load_reference(engine, reference_folder(tmp_path / "bad", contacts=text))
    assert (caught.value.source, caught.value.line) == ("contacts.csv", 4)


@pytest.mark.parametrize("name", ["customers", "subscriptions"])
def test_a_natural_key_repeated_in_a_file(engine, tmp_path, name):
    repeated = {"customers": [*CUSTOMERS, CUSTOMERS[0]],
                "subscriptions": [*SUBSCRIPTIONS, SUBSCRIPTIONS[0]]}[name]
    folder = reference_folder(tmp_path / "dup", **{name: repeated})
    # a data error, not an update: the repeat (header 1, the two rows 2-3, the repeat 4) is named
    # with the line it repeats, and nothing of the load is stored
    with pytest.raises(InputError) as caught:
        load_reference(engine, folder)
    assert (caught.value.source, caught.value.line) == (f"{name}.csv", 4)
    assert "as line 2" in caught.value.message
    assert set(table_counts(engine).values()) == {0}


def test_a_value_longer_than_its_column_is_a_bad_row(engine, tmp_path):
    mandate = ["C1", "M" * 36, "2026-01-01", "FR7630006000011234567890189", "AGRIFRPP", "active"]
    with pytest.raises(InputError) as caught:
        load_reference(engine, reference_folder(tmp_path / "long", mandates=[mandate]))
    assert (caught.value.source, caught.value.line) == ("mandates.csv", 2)


def test_the_bundled_sample_on_sqlite(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'sample.sqlite'}")
    try:
        upgrade(engine)
        counts = load_reference(engine, SAMPLE)
        assert counts["customers"] == 200
        stored = dict(rows(engine, select(s.Customer.account_number, s.Customer.name)))
        assert len(stored) == 200
        with open(SAMPLE / "customers.csv", encoding="utf-8", newline="") as handle:
            written = {r["account_number"]: r["name"] for r in csv.DictReader(handle)}
        assert stored == written
        assert stored["C100008"] == '=HYPERLINK("http://attacker.example/x","Cliquez ici")'
        assert stored["C100034"] == "+33 Conseil & Associés"
        assert stored["C100047"] == "@SUM(1+1)*cmd|' /C calc'!A0"
        assert stored["C100073"] == "-2+3 Transports"
        assert stored["C100060"] == "L'Étoile du Nord <SARL> & Fils"
        assert table_counts(engine)["customers"] == 200
    finally:
        engine.dispose()


def test_bidirectional_controls_are_stripped_from_customer_text_at_load(engine, tmp_path):
    # U+202E (right-to-left override) would print "Alpha SARL" as "LRAS ahplA" on the invoice;
    # U+2066/U+2069 (left-to-right isolate, pop) and U+200F (right-to-left mark) change the order too
    customers = [CUSTOMERS[0][:1] + ["Alpha \u202eSARL\u202c"] + ["1 rue \u2066A\u2069\u200f"] + CUSTOMERS[0][3:],
                 *CUSTOMERS[1:]]
    load_reference(engine, reference_folder(tmp_path / "ref", customers=customers))
    assert rows(engine, select(s.Customer.name, s.Customer.address_line1).where(s.Customer.account_number == "C1")) \
        == [("Alpha SARL", "1 rue A")]


# ------------------------------------------------------------------ every problem of a load at once

#: the day of the loads below (the operator's date): a mandate signed after it is refused
TODAY = date(2026, 12, 1)

#: every kind of bad reference value, one per row, each with where it is and what it is; lines
#: count the header as 1, so the first row added after the minimal operator's rows of a file is
#: line len(rows) + 2
ALL_BAD = {
    "rate_plans": [*RATE_PLANS, ["MARS", "Mars plan", "EUR", "Mars/Olympus", "FR", "offpeak"]],  # line 3
    "rates": [*RATES[:2],
              ["TEST", "MOB", "*", "0.10", "no", "0:-0.12/60 60:0.12/1"],  # line 4: a negative rate
              ["TEST", "INT", "*", "-0.20", "yes", "0:0.60/60 60:0.30/30"]],  # line 5: a negative connect fee
    "products": [*PRODUCTS,
                 ["NEG", "Remise", "one_off", "service", "-29.00", "20"],  # line 5
                 ["NANVAT", "Option", "recurring", "service", "1.00", "NaN"],  # line 6
                 ["ODDVAT", "Option", "recurring", "service", "1.00", "5.555"],  # line 7
                 ["SEVEN", "Option", "recurring", "service", "1.00", "7"]],  # line 8: not a French rate
    "customers": [*CUSTOMERS, ["C3", "Gamma SAS", "3 rue C", "", "69001", "Lyon", "FR", "FR12345678901", "fr",
                               "transfer", "standard", "TEST"]],  # line 4: check digits 12 do not match
    "lines": [*LINES, ["C2", "+33145000001", "2026-06-01", ""]],  # line 5: C1's number since 2026-01-01 (line 2)
    "subscriptions": [*SUBSCRIPTIONS, ["C1", "MOBMIN", "99999999999", "2026-01-01", "", ""]],  # line 4
    "one_off_charges": [*ONE_OFF_CHARGES, ["C2", "INSTALL", "2026-10-04", "1", "-5.00", "Refund"]],  # line 3
    "mandates": [*MANDATES,
                 # line 3: the IBAN of line 2 with its last digit changed (mod 97 no longer 1)
                 ["C1", "MANDATE-C1-02", "2025-12-20", "FR76 3000 6000 0112 3456 7890 188", "AGRIFRPP", "active"],
                 ["C1", "MANDATE-C1-03", "2025-12-20", "FR7630006000011234567890189", "AGRIFRPPX",
                  "active"],  # line 4: 9 characters
                 ["C1", "MANDATE-C1-04", "2026-12-02", "FR7630006000011234567890189", "AGRIFRPP",
                  "active"]],  # line 5: the day after the load
}

#: (file, line and column, code) of each problem, in file order (the load order) then line order
ALL_PROBLEMS = [
    ("rate_plans.csv", "line 3, column timezone", "bad_timezone"),
    ("rates.csv", "line 4, column intervals", "bad_intervals"),
    ("rates.csv", "line 5, column connect_fee", "negative_amount"),
    ("products.csv", "line 5, column price", "negative_amount"),
    ("products.csv", "line 6, column vat_rate", "bad_vat_rate"),
    ("products.csv", "line 7, column vat_rate", "bad_vat_rate"),
    ("products.csv", "line 8, column vat_rate", "bad_vat_rate"),
    ("customers.csv", "line 4, column vat_number", "bad_vat_number"),
    ("lines.csv", "line 5, column number", "number_held_twice"),
    ("subscriptions.csv", "line 4, column quantity", "too_large"),
    ("one_off_charges.csv", "line 3, column price_override", "negative_amount"),
    ("mandates.csv", "line 3, column iban", "bad_iban"),
    ("mandates.csv", "line 4, column bic", "bad_bic"),
    ("mandates.csv", "line 5, column signature_date", "mandate_signed_in_future"),
]


def test_every_bad_value_of_a_load_is_reported_at_once_and_nothing_is_stored(engine, tmp_path):
    load_reference(engine, reference_folder(tmp_path / "ref"), today=TODAY)
    before, counts = snapshot(engine), table_counts(engine)
    with pytest.raises(InputError) as caught:
        load_reference(engine, reference_folder(tmp_path / "bad", **ALL_BAD), today=TODAY)
    error = caught.value
    assert [(p.source, p.key, p.code) for p in error.problems] == ALL_PROBLEMS
    assert error.code == "bad_reference_data"
    assert error.message.startswith("14 problems in the reference data; nothing loaded: rate_plans.csv, line 3, "
                                    "column timezone: time zone 'Mars/Olympus' is not one of the IANA time zone")
    assert error.message.endswith("; and 11 more")  # 3 quoted, 14 - 3 more
    messages = [p.message for p in error.problems]
    assert "price -0.12 per minute is not between 0 and 1000" in messages[1]
    assert messages[2] == "connect_fee -0.20 is negative"
    assert messages[3] == "price -29.00 is negative"
    assert messages[4] == "VAT rate 'NaN' is not a number"
    assert messages[5] == "VAT rate '5.555' has more than two decimals"
    assert messages[6].startswith("VAT rate '7' is not a French VAT rate (0, 0.9, 1.05, 1.75, 2.1, 5.5, 8.5, 10, "
                                  "13, 20; ")
    assert messages[7].startswith("VAT number 'FR12345678901' is not valid")
    assert messages[8] == ("number +33145000001 is also held by customer C1 from 2026-01-01 to no end (line 2): "
                           "a number has one holder at a time")
    assert messages[9] == "quantity 99,999,999,999 is more than 100,000"
    assert messages[10] == "price_override -5.00 is negative"
    assert messages[11].startswith("mandate MANDATE-C1-02: invalid IBAN FR7630006000011234567890188")
    assert messages[12].startswith("mandate MANDATE-C1-03: invalid BIC AGRIFRPPX")
    assert messages[13] == "mandate MANDATE-C1-04 is signed on 2026-12-02, in the future"
    assert snapshot(engine) == before
    assert table_counts(engine) == counts


def test_the_command_line_names_every_problem(tmp_path, capsys):
    from workbench.cli import main

    # the command reads the clock: its future mandate is signed two days after today, wherever the
    # operator's day (Europe/Paris) stands against the machine's
    future = (date.today() + timedelta(days=2)).isoformat()
    mandates = [row[:2] + [future] + row[3:] if row[1] == "MANDATE-C1-04" else row for row in ALL_BAD["mandates"]]
    folder = reference_folder(tmp_path / "bad", **{**ALL_BAD, "mandates": mandates})
    url = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    assert main(["--database-url", url, "load-reference", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "error: " in err and "14 problems in the reference data; nothing loaded" in err
    assert "  mandates.csv, line 4, column bic: mandate MANDATE-C1-03: invalid BIC AGRIFRPPX" in err
    assert "  lines.csv, line 5, column number: number +33145000001 is also held by customer C1" in err


GOOD_EDGES = [
    # the bounds themselves are accepted
    pytest.param("products", [*PRODUCTS, ["EXEMPT", "Exempt item", "one_off", "service", "0.00", "0"],
                              ["DOM", "DOM item", "recurring", "service", "1000000.00", "8.5"]], id="vat-0-and-8.5"),
    pytest.param("subscriptions", [*SUBSCRIPTIONS, ["C1", "MOBMIN", "100000", "2026-01-01", "", "1000000.00"]],
                 id="quantity-100000"),
    pytest.param("mandates", [["C1", "MANDATE-C1-01", "2026-12-01", "FR7630006000011234567890189", "AGRIFRPPXXX",
                               "active"]], id="signed-on-the-day-11-character-bic"),
    # C2 holds C1's number up to the day before C1's line starts
    pytest.param("lines", [["C2", "+33145000001", "2025-06-01", "2025-12-31"], *LINES], id="number-handed-over"),
    pytest.param("customers", [CUSTOMERS[0][:7] + ["FR 46 428929905"] + CUSTOMERS[0][8:], CUSTOMERS[1]],
                 id="vat-number-with-spaces"),
]


@pytest.mark.parametrize(("name", "good_rows"), GOOD_EDGES)
def test_values_at_the_bounds_load(engine, tmp_path, name, good_rows):
    load_reference(engine, reference_folder(tmp_path / "ok", **{name: good_rows}), today=TODAY)
    if name == "customers":  # stored compact
        assert rows(engine, select(s.Customer.vat_number).where(s.Customer.account_number == "C1")) == [
            ("FR46428929905",)]


def test_a_number_already_held_by_another_customer_is_refused(engine, tmp_path):
    load_reference(engine, reference_folder(tmp_path / "ref"), today=TODAY)
    before = snapshot(engine)
    # C2's number (stored, 2026-01-01 to 2026-10-14) given to C1 from 2026-10-01: 14 days held twice
    folder = reference_folder(tmp_path / "bad", only=["lines"], lines=[["C1", "01 45 00 00 02", "2026-10-01", ""]])
    with pytest.raises(InputError) as caught:
        load_reference(engine, folder, today=TODAY)
    assert (caught.value.source, caught.value.line, caught.value.column) == ("lines.csv", 2, "number")
    assert caught.value.message == ("number +33145000002 is also held by customer C2 from 2026-01-01 to 2026-10-14 "
                                    "(already loaded): a number has one holder at a time")
    assert snapshot(engine) == before


def test_rows_that_refer_to_a_refused_row_are_not_reported_again(engine, tmp_path):
    # the plan is refused: its zones, destinations, rates, customers and their rows are skipped,
    # not reported as referring to an unknown plan or account
    folder = reference_folder(tmp_path / "bad", rate_plans=[["TEST", "Test plan", "EUR", "Mars/Olympus", "FR",
                                                             "offpeak"]])
    with pytest.raises(InputError) as caught:
        load_reference(engine, folder, today=TODAY)
    assert (caught.value.source, caught.value.line, caught.value.column, caught.value.code) == (
        "rate_plans.csv", 2, "timezone", "bad_timezone")
    assert caught.value.problems == []


def test_the_load_job_dates_mandates_with_the_operators_day(engine, settings, tmp_path):
    from datetime import datetime

    from workbench import jobs

    folder = reference_folder(tmp_path / "ref", mandates=[["C1", "MANDATE-C1-01", "2026-12-01",
                                                           "FR7630006000011234567890189", "AGRIFRPP", "active"]])
    # 30 November 23:30 UTC is 1 December 00:30 in Paris: signed today, accepted
    jobs.load_reference(engine, settings, folder, clock=lambda: datetime(2026, 11, 30, 23, 30))
    # 30 November 22:30 UTC is 23:30 in Paris: signed tomorrow, refused
    with pytest.raises(InputError, match="signed on 2026-12-01, in the future"):
        jobs.load_reference(engine, settings, folder, clock=lambda: datetime(2026, 11, 30, 22, 30))


def test_a_file_that_cannot_be_read_is_reported_with_the_problems_of_the_others(engine, tmp_path):
    header = [c for c in HEADERS["customers"] if c != "payment_method"]
    customers = csv_text(header, [[v for c, v in zip(HEADERS["customers"], row, strict=True)
                                   if c != "payment_method"] for row in CUSTOMERS])
    # products line 3 has 5 fields where the header has 6: not read further (its values would be
    # in the wrong columns); the rows of the customers' files are skipped, not "unknown account"
    products = csv_text(HEADERS["products"], PRODUCTS[:1]) + "MOBMIN,Mobile minutes,recurring,service,5.00\n"
    folder = reference_folder(tmp_path / "bad", customers=customers, products=products)
    with pytest.raises(InputError) as caught:
        load_reference(engine, folder, today=TODAY)
    assert [(p.source, p.key, p.code) for p in caught.value.problems] == [
        ("products.csv", 3, "bad_field_count"),
        ("customers.csv", 1, "missing_columns"),
    ]
    assert set(table_counts(engine).values()) == {0}


@pytest.mark.parametrize(("country", "number", "valid"), [
    ("GB", "GB980780684", True),  # outside the EU: checked by stdnum.gb.vat (mod 97 weighted digits)
    ("CH", "CHE-116.281.710 MWST", True),  # stdnum.ch.vat (UID mod 11)
    ("GB", "GB980780685", False),  # the last digit changed
    ("GB", "DE123456789", False),  # an EU prefix: stdnum.eu.vat, whose German check digit is 8, not 9
])
def test_vat_numbers_outside_france(engine, tmp_path, country, number, valid):
    c2 = CUSTOMERS[1][:6] + [country, number] + CUSTOMERS[1][8:]
    folder = reference_folder(tmp_path / "ref", customers=[CUSTOMERS[0], c2])
    if valid:
        load_reference(engine, folder, today=TODAY)
        assert rows(engine, select(s.Customer.vat_number).where(s.Customer.account_number == "C2")) == [(number,)]
    else:
        with pytest.raises(InputError) as caught:
            load_reference(engine, folder, today=TODAY)
        assert (caught.value.source, caught.value.line, caught.value.column, caught.value.code) == (
            "customers.csv", 3, "vat_number", "bad_vat_number")
