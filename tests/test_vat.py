"""VAT territoriality of telecommunication services (CGI art. 259-1°, 242 nonies A, 283-2;
Directive 2006/112/EC art. 44, 196, 226 (11a)), the customer's e-invoicing identity (SIREN,
service address, business or consumer) and what invoices show of them.

Amounts are worked out by hand. The VAT numbers are real check-digit-valid numbers:
``BE0403019261`` (Belgium, mod 97), ``CHE-116.281.710 MWST`` (Switzerland, mod 11),
``FR46428929905`` (France: key 46 of SIREN 428929905).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pandas as pd
import pytest
from factories import billing_reference_folder, csv_text, native_cdrs, reference_folder
from sqlalchemy import select

from workbench.billing import issue_credit_note, preprod, production
from workbench.db import schema as s
from workbench.db.frames import read_frame
from workbench.documents import render_batch
from workbench.documents.models import invoice_models
from workbench.errors import InputError
from workbench.integration import load_cdr_file
from workbench.invoicing import BillingInputs, BillingOptions, build_invoices, control_report
from workbench.invoicing.vat import vat_category
from workbench.period import Period
from workbench.rated_calls import rate_period
from workbench.reads.runs import RunOptions, run_report
from workbench.reference import COLUMNS, CUSTOMER_EXTRA_COLUMNS, load_reference

BE_VAT, CH_VAT, FR_VAT, FR_SIREN = "BE0403019261", "CHE-116.281.710 MWST", "FR46428929905", "428929905"


# ---------------------------------------------------------------------------- the rule

@pytest.mark.parametrize(("country", "business", "number", "category"), [
    ("BE", True, BE_VAT, "AE"),  # a company of another member state, valid number: reverse charge
    ("BE", None, BE_VAT, "AE"),  # business left empty: its VAT number shows it is a company
    ("BE", True, "BE0403019262", "S"),  # wrong check digits: not shown to be a taxable person
    ("BE", True, "", "S"),
    ("BE", False, BE_VAT, "S"),  # a consumer: French VAT
    ("GR", None, "EL094259216", "AE"),  # Greece: country GR, VAT prefix EL
    ("DE", True, FR_VAT, "S"),  # a French number is no reverse charge
    ("CH", True, CH_VAT, "O"),  # a company outside the EU: outside the scope
    ("CH", None, CH_VAT, "O"),
    ("GB", True, "", "O"),  # said to be a company
    ("GB", None, "", "S"),  # nothing says it is a company: a consumer, French VAT as before
    ("FR", True, FR_VAT, "S"),
    ("FR", False, "", "S"),
    ("MC", True, "", "S"),  # Monaco is in the French VAT territory
])
def test_the_vat_category_of_a_customer(country, business, number, category):
    assert vat_category(country, business, number) == category


PRODUCTS = pd.DataFrame(
    [(1, "SVC", "Service", "one_off", "service", 10000, Decimal("20")),
     (2, "DEPOSIT", "Deposit", "one_off", "deposit", 10000, Decimal("0"))],
    columns=["product_id", "code", "name", "kind", "category", "price_cents", "vat_rate"])
CUSTOMERS = pd.DataFrame(
    [(1, "B1", "Belgian BV", "BE", True, BE_VAT), (2, "S1", "Swiss AG", "CH", True, CH_VAT),
     (3, "F1", "French consumer", "FR", False, None), (4, "F2", "French company", "FR", True, FR_VAT)],
    columns=["customer_id", "account_number", "name", "country", "business", "vat_number"])
ONE_OFFS = pd.DataFrame(
    [(1, 1, 1, date(2026, 10, 5), 1, None, ""), (2, 2, 1, date(2026, 10, 5), 1, None, ""),
     (3, 3, 1, date(2026, 10, 5), 1, None, ""),
     (4, 4, 1, date(2026, 10, 5), 1, 3333, ""), (5, 4, 2, date(2026, 10, 5), 1, None, "")],
    columns=["one_off_id", "customer_id", "product_id", "charge_date", "quantity", "price_override_cents",
             "description"])
OPTIONS = BillingOptions(Period.parse("2026-10"), date(2026, 11, 1), date(2026, 12, 1))


def test_invoices_get_their_vat_category_and_exact_amounts():
    built = build_invoices(BillingInputs(CUSTOMERS, PRODUCTS, one_offs=ONE_OFFS), OPTIONS)
    inv = built.invoices.set_index("account_number")
    # B1: 100.00 excl. VAT, reverse charge: VAT 0.00, total 100.00
    # S1: 100.00, outside the scope: VAT 0.00, total 100.00
    # F1: 100.00 at 20 %: VAT 20.00, total 120.00
    # F2: 33.33 at 20 %: 3333 x 2000 / 10000 = 666.6 -> 667 (half up); deposit 100.00 at 0 % (E):
    #     excl. 3333 + 10000 = 13333, VAT 667, total 14000
    assert [tuple(inv.loc[a, ["total_excl_cents", "total_vat_cents", "total_incl_cents", "vat_category"]])
            for a in ("B1", "S1", "F1", "F2")] == [
        (10000, 0, 10000, "AE"), (10000, 0, 10000, "O"), (10000, 2000, 12000, "S"), (13333, 667, 14000, "S")]
    vat = built.vat.sort_values(["customer_id", "vat_rate"])
    assert [(int(r.customer_id), r.vat_rate, int(r.base_cents), int(r.vat_cents), r.vat_category,
             r.exemption_reason_code) for r in vat.itertuples()] == [
        (1, Decimal("0"), 10000, 0, "AE", "VATEX-EU-AE"),
        (2, Decimal("0"), 10000, 0, "O", "VATEX-EU-O"),
        (3, Decimal("20"), 10000, 2000, "S", None),
        (4, Decimal("0"), 10000, 0, "E", None),
        (4, Decimal("20"), 3333, 667, "S", None)]
    items = built.items.set_index("customer_id")
    # the Belgian's service line is at 0 % in category AE (its product is at 20 % for French customers)
    assert (items.loc[1, "vat_rate"], items.loc[1, "vat_category"]) == (Decimal("0"), "AE")
    assert (items.loc[2, "vat_rate"], items.loc[2, "vat_category"]) == (Decimal("0"), "O")


def test_the_control_report_shows_vat_by_category():
    built = build_invoices(BillingInputs(CUSTOMERS, PRODUCTS, one_offs=ONE_OFFS), OPTIONS)
    invoices = built.invoices.assign(number=[f"PRE-1-000{i}" for i in range(1, 5)])
    sheets = control_report(invoices, built.items, CUSTOMERS, vat=built.vat)
    rows = [tuple(r) for r in sheets["VAT by category"][["Category", "VAT rate (%)", "Invoices", "Taxable amount",
                                                          "VAT"]].itertuples(index=False)]
    # S 20 %: F1 100.00 + F2 33.33 = 133.33, VAT 20.00 + 6.67 = 26.67; E: F2's deposit;
    # AE: B1; O: S1
    assert rows == [("S", Decimal("20"), 2, Decimal("133.33"), Decimal("26.67")),
                    ("E", Decimal("0"), 1, Decimal("100.00"), Decimal("0.00")),
                    ("AE", Decimal("0"), 1, Decimal("100.00"), Decimal("0.00")),
                    ("O", Decimal("0"), 1, Decimal("100.00"), Decimal("0.00"))]
    assert dict(zip(sheets["Invoices"]["Account number"], sheets["Invoices"]["VAT category"], strict=True)) == {
        "B1": "AE", "S1": "O", "F1": "S", "F2": "S"}


def test_a_company_of_another_member_state_without_a_valid_number_is_an_anomaly():
    # B1's check digits are wrong; F1 becomes a Belgian consumer with a valid number: French VAT, no anomaly
    customers = CUSTOMERS.assign(vat_number=["BE0403019262", CH_VAT, BE_VAT, FR_VAT], country=["BE", "CH", "BE", "FR"])
    built = build_invoices(BillingInputs(customers, PRODUCTS, one_offs=ONE_OFFS), OPTIONS)
    assert built.invoices.set_index("account_number").loc["B1", "total_vat_cents"] == 2000  # French VAT
    invoices = built.invoices.assign(number=[f"PRE-1-000{i}" for i in range(1, 5)])
    anomalies = control_report(invoices, built.items, customers, vat=built.vat)["Anomalies"]
    found = anomalies[anomalies["Problem"] == "vat_number_invalid"]
    assert list(found["Line or key"]) == ["B1"]


# ---------------------------------------------------------------------------- reference data

def customers_csv(rows: list[list[str]]) -> str:
    return csv_text(COLUMNS["customers"] + CUSTOMER_EXTRA_COLUMNS, rows)


BASE = ["C1", "Alpha SARL", "1 rue A", "", "75001", "Paris", "FR", FR_VAT, "fr", "transfer", "standard", "TEST"]


@pytest.mark.parametrize(("extras", "column", "problem"), [
    ([f"{FR_SIREN}00017", "", "", "", "", "", "", ""], "siren", "a SIRET; the SIREN is its first 9 (428929905)"),
    (["428929906", "", "", "", "", "", "", ""], "siren", "is not valid"),
    (["732829320", "", "", "", "", "", "", ""], "siren", "does not match the VAT number FR46428929905"),
    (["", "maybe", "", "", "", "", "", ""], "business", "'maybe' is not yes or no"),
    (["", "", "", "", "", "", "France", ""], "service_country", "not a country code of two letters"),
    (["", "", "", "", "", "", "", "sometimes"], "mask_called_numbers", "not yes or no"),
])
def test_bad_customer_identity_columns_are_refused_with_their_column(engine, tmp_path, extras, column, problem):
    folder = reference_folder(tmp_path / "ref", customers=customers_csv([BASE + extras]))
    with pytest.raises(InputError) as caught:
        load_reference(engine, folder)
    assert problem in str(caught.value) and f"column {column}" in str(caught.value)


def test_customer_identity_columns_are_loaded(engine, tmp_path):
    folder = reference_folder(tmp_path / "ref", customers=customers_csv([
        BASE + ["428 929 905", "yes", "Entrepôt 4", "", "93200", "Saint-Denis", "fr", "no"],
        ["C2", "Beta Ltd", "2 High Street", "", "SW1A 1AA", "London", "GB", "", "en", "transfer", "standard",
         "TEST", "", "", "", "", "", "", "", ""]]))
    load_reference(engine, folder)
    with engine.connect() as connection:
        rows = read_frame(connection, select(
            s.Customer.account_number, s.Customer.siren, s.Customer.business, s.Customer.service_city,
            s.Customer.service_country, s.Customer.mask_called_numbers).order_by(s.Customer.account_number))
    assert [tuple(None if pd.isna(v) else v for v in r) for r in rows.itertuples(index=False)] == [
        ("C1", FR_SIREN, True, "Saint-Denis", "FR", False),
        ("C2", None, None, None, None, True)]  # empty: unknown business, same address, numbers masked


# ---------------------------------------------------------------------------- through the database

NOW, LATER = datetime(2026, 11, 2, 6, 0, 0), datetime(2026, 11, 3, 9, 0, 0)
RUN = RunOptions("2026-10", date(2026, 11, 1), date(2026, 12, 1))
#: the billing operator (tests/factories.py) with C1 a French company with SIREN and a service
#: address, C2 a Belgian company, C3 a Swiss company, C4 a French consumer
VAT_CUSTOMERS = [
    ["C1", "Alpha SARL", "1 rue A", "", "75001", "Paris", "FR", FR_VAT, "fr", "direct_debit", "A", "TEST",
     FR_SIREN, "yes", "Entrepôt 4", "", "93200", "Saint-Denis", "", "yes"],
    ["C2", "Beta BV", "Rue Royale 2", "", "1000", "Bruxelles", "BE", BE_VAT, "en", "transfer", "A", "TEST",
     "", "yes", "", "", "", "", "", "no"],
    ["C3", "Gamma AG", "Bahnhofstrasse 3", "", "8001", "Zürich", "CH", CH_VAT, "fr", "transfer", "B", "TEST",
     "", "yes", "", "", "", "", "", "yes"],
    ["C4", "Delta Dupont", "4 rue D", "", "13001", "Marseille", "FR", "", "fr", "transfer", "B", "TEST",
     "", "no", "", "", "", "", "", "yes"],
]
CALLS = [
    ["X1", "2026-10-07T10:00:00+02:00", "+33145000001", "+33155000000", "125"],
    ["X2", "2026-10-08T10:00:00+02:00", "+33145000001", "+33612345678", "500"],
    ["X3", "2026-10-09T10:00:00+02:00", "+33145000001", "+33612345678", "200"],
    ["X4", "2026-10-10T11:00:00+02:00", "+33145000001", "+33798765432", "30"],
    ["Y1", "2026-10-12T21:00:00+02:00", "+33145000002", "+33155000001", "90"],
    ["Y2", "2026-10-27T15:00:00+01:00", "+33145000002", "+442079460958", "100"],
    ["Z1", "2026-10-14T09:30:00+02:00", "+33145000003", "+33155000002", "125"],
]


@pytest.fixture
def issued(engine, settings, tmp_path):
    """October of the billing operator (tests/test_billing.py has the hand calculation of each
    invoice's lines) with the customers of VAT_CUSTOMERS, issued."""
    load_reference(engine, billing_reference_folder(tmp_path / "ref", customers=customers_csv(VAT_CUSTOMERS)))
    (tmp_path / "calls.csv").write_bytes(native_cdrs(CALLS))
    load_cdr_file(engine, tmp_path / "calls.csv", settings, NOW)
    rate_period(engine, "2026-10", settings, NOW)
    run = production(engine, preprod(engine, RUN, settings, NOW).run_id, settings, NOW)
    return run


def _invoices(engine) -> dict[str, dict]:
    with engine.connect() as connection:
        rows = read_frame(connection, select(s.Invoice.__table__, s.Customer.account_number)
                          .join(s.Customer, s.Customer.id == s.Invoice.customer_id).order_by(s.Invoice.number))
    return {r["number"]: r for r in rows.to_dict("records") if r["status"] == "issued"}


def test_issued_invoices_keep_their_category_and_show_its_mention(engine, settings, issued, tmp_path):
    invoices = _invoices(engine)
    by_account = {r["account_number"]: r for r in invoices.values() if r["kind"] == "invoice"}
    # C1 45.35 + 20 % 9.07 = 54.42 (as in test_billing); C2 163.63, reverse charge: no VAT;
    # C3 12.97, outside the scope: no VAT; C4 3 x 15.00 = 45.00 + 9.00 = 54.00
    assert {a: (r["total_excl_cents"], r["total_vat_cents"], r["total_incl_cents"], r["vat_category"])
            for a, r in by_account.items()} == {
        "C1": (4535, 907, 5442, "S"), "C2": (16363, 0, 16363, "AE"), "C3": (1297, 0, 1297, "O"),
        "C4": (4500, 900, 5400, "S")}
    with engine.connect() as connection:
        vat = read_frame(connection, select(s.InvoiceVat.invoice_id, s.InvoiceVat.vat_rate, s.InvoiceVat.base_cents,
                                            s.InvoiceVat.vat_cents, s.InvoiceVat.vat_category,
                                            s.InvoiceVat.exemption_reason_code)
                         .where(s.InvoiceVat.invoice_id == int(by_account["C2"]["id"])))
    # INSTALL (20 % in France) and DEPOSIT (0 %) are one reverse-charged base: 4900 + 10000 + 1348 + 115
    assert [tuple(r)[1:] for r in vat.itertuples(index=False)] == [(Decimal("0"), 16363, 0, "AE", "VATEX-EU-AE")]

    ids = [int(by_account[a]["id"]) for a in ("C1", "C2", "C3", "C4")]
    with engine.connect() as connection:
        models = {m["account_number"]: m for m in invoice_models(connection, ids, annex=True)}
    c1, c2, c3 = models["C1"], models["C2"], models["C3"]
    assert (c1["buyer_siren"], c1["operation_nature"], c1["vat_on_debits"]) == (FR_SIREN, "services", False)
    assert c1["service_address"] == {"line1": "Entrepôt 4", "line2": "", "postcode": "93200",
                                     "city": "Saint-Denis", "country": "FR"}
    assert c2["service_address"] is None and c2["vat_category"] == "AE"
    assert c2["vat"][0]["category"] == "AE" and c2["vat"][0]["base_cents"] == 16363
    assert c2["cents"] == {"total_excl": 16363, "total_vat": 0, "total_incl": 16363, "credit_applied": 0,
                           "net_payable": 16363}
    assert {i["vat_category"] for g in c2["groups"] for i in g["items"]} == {"AE"}
    assert c2["vat_mentions"] == ["Reverse charge (Article 196 of Council Directive 2006/112/EC)"]
    assert c3["vat_mentions"] == ["TVA non applicable, art. 259-1° du CGI"]
    assert models["C4"]["vat_mentions"] == []

    pdfs = render_batch(list(models.values()), {"name": "Op", "address": "x", "siren": "123 456 782", "vat": "FR",
                                                "capital": "", "email": "", "iban": "", "bic": "",
                                                "penalty_rate": ""}, draft=False)
    text = {m["account_number"]: _text(pdfs[m["number"]]) for m in models.values()}
    assert "Reverse charge" in text["C2"] and BE_VAT in text["C2"]
    assert "TVA non applicable, art. 259-1° du CGI" in text["C3"]
    assert "Autoliquidation" not in text["C1"] and "SIREN 428929905" in text["C1"]
    assert "Adresse de service" in text["C1"] and "Saint-Denis" in text["C1"]
    assert "Nature de l'opération Prestations de services" in text["C1"]
    # amounts in the customer's language, through workbench.money.format_money:
    # French 54,42 € (no-break spaces), English €163.63
    assert "54,42 €" in text["C1"] and "€163.63" in text["C2"]
    assert "40,00 €" in text["C1"] and "€40.00" in text["C2"]  # the recovery indemnity
    # calls with their unit: C1's MOB line is 500 + 200 + 30 = 730 s = 12 min 10 s
    assert "12 min 10 s" in text["C1"]
    # the call detail annex: C1's numbers masked (+33155000000 -> +3315500XXXX), C2 asked for them in full
    assert "+3315500XXXX" in text["C1"] and "+33155000000" not in text["C1"]
    assert "+442079460958" in text["C2"]
    assert "page 1 sur 2" in text["C1"] and "page 2 sur 2" in text["C1"]  # the annex is a page of its own
    assert "page 1 of 2" in text["C2"]


def test_what_an_issued_invoice_shows_does_not_follow_the_customers_record(engine, settings, issued, tmp_path):
    # the customers move: C1 gets another SIREN (and VAT number), C2 becomes a consumer
    changed = [list(r) for r in VAT_CUSTOMERS]
    changed[0][7], changed[0][12] = "FR83404833048", "404833048"
    changed[1][13] = "no"
    load_reference(engine, billing_reference_folder(tmp_path / "ref2", customers=customers_csv(changed)))
    by_account = {r["account_number"]: r for r in _invoices(engine).values()}
    with engine.connect() as connection:
        models = {m["account_number"]: m for m in invoice_models(
            connection, [int(by_account[a]["id"]) for a in ("C1", "C2")])}
    assert models["C1"]["buyer_siren"] == FR_SIREN and models["C1"]["customer"]["vat_number"] == FR_VAT
    assert models["C2"]["vat_category"] == "AE" and models["C2"]["vat"][0]["category"] == "AE"


def test_a_credit_note_names_the_invoice_it_cancels_and_keeps_its_category(engine, settings, issued):
    number = issue_credit_note(engine, "F2026-000002", "wrong address", LATER)  # C2's invoice
    note = _invoices(engine)[number]
    assert (note["vat_category"], note["total_incl_cents"]) == ("AE", -16363)
    with engine.connect() as connection:
        model = invoice_models(connection, [int(note["id"])])[0]
    assert (model["corrects"], model["corrects_date"]) == ("F2026-000002", "2026-11-01")
    assert model["vat"][0]["category"] == "AE" and model["vat_mentions"][0].startswith("Reverse charge")
    pdf = render_batch([model], {"name": "Op", "address": "x", "siren": "1", "vat": "FR", "capital": "",
                                 "email": "", "iban": "", "bic": "", "penalty_rate": ""}, draft=False)[number]
    text = _text(pdf)
    assert "Cancelled invoice F2026-000002 of 2026-11-01" in text
    assert "Credit note for invoice F2026-000002 of 2026-11-01" in text


def test_the_run_report_has_the_vat_by_category(engine, settings, issued):
    sheet = run_report(engine, issued.run_id, settings)["VAT by category"]
    rows = [tuple(r) for r in sheet[["Category", "VAT rate (%)", "Invoices", "Taxable amount", "VAT"]]
            .itertuples(index=False)]
    # S 20 %: C1 45.35 + C4 45.00 = 90.35, VAT 9.07 + 9.00 = 18.07; AE: C2 163.63; O: C3 12.97
    assert rows == [("S", Decimal("20"), 2, Decimal("90.35"), Decimal("18.07")),
                    ("AE", Decimal("0"), 1, Decimal("163.63"), Decimal("0.00")),
                    ("O", Decimal("0"), 1, Decimal("12.97"), Decimal("0.00"))]


def test_the_vat_on_debits_option_is_kept_with_the_invoice_and_printed(engine, settings, tmp_path):
    from dataclasses import replace

    opted = replace(settings, vat_on_debits="yes")
    load_reference(engine, billing_reference_folder(tmp_path / "ref", customers=customers_csv(VAT_CUSTOMERS)))
    run = production(engine, preprod(engine, RUN, opted, NOW).run_id, opted, NOW)
    invoices = [r for r in _invoices(engine).values() if r["run_id"] == run.run_id]
    assert invoices and all(bool(r["vat_on_debits"]) for r in invoices)
    with engine.connect() as connection:
        model = invoice_models(connection, [int(invoices[0]["id"])])[0]
    assert model["vat_on_debits"] is True
    text = _text(render_batch([model], {"name": "Op", "address": "x", "siren": "1", "vat": "FR", "capital": "",
                                        "email": "", "iban": "", "bic": "", "penalty_rate": ""},
                              draft=False)[model["number"]])
    assert "Option pour le paiement de la taxe d'après les débits" in text


def _text(pdf: bytes) -> str:
    """The text of a PDF on one line: line ends and no-break spaces (Babel's, around amounts and
    units) as single spaces."""
    import io
    import re

    from pypdf import PdfReader

    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    return re.sub(r"[\s\u202f\u00a0]+", " ", text)


def test_the_migration_keeps_existing_documents_as_they_were_built(database_url):
    """Upgrading a database of the previous revision: issued invoices are ``S`` (French VAT, as
    they were built), their 0 % rows and lines ``E``; customers have no SIREN, an empty
    ``business`` and masked numbers; the downgrade takes the columns away again."""
    from alembic import command
    from sqlalchemy import text

    from workbench.db.engine import alembic_config, make_engine, upgrade

    engine = make_engine(database_url)
    upgrade(engine, "0014_faults")
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO rate_plans (id, code, name, currency, timezone, holiday_country, "
                                "default_band) VALUES (1, 'P', 'Plan', 'EUR', 'Europe/Paris', 'FR', 'offpeak')"))
        connection.execute(text(
            "INSERT INTO customers (id, account_number, name, address_line1, address_line2, postcode, city, country, "
            "vat_number, language, payment_method, billing_group, rate_plan_id) VALUES (1, 'C1', 'Alpha SARL', "
            "'1 rue A', '', '75001', 'Paris', 'FR', 'FR83404833048', 'fr', 'transfer', 'A', 1)"))
        connection.execute(text(
            "INSERT INTO invoices (id, number, kind, status, customer_id, period, invoice_date, due_date, currency, "
            "total_excl_cents, total_vat_cents, total_incl_cents, credit_applied_cents, net_payable_cents, "
            "reopens_period, collection_offset_cents) VALUES (1, 'F2026-000001', 'invoice', 'issued', 1, '2026-10', "
            "'2026-11-01', '2026-12-01', 'EUR', 200, 20, 220, 0, 220, false, 0)"))
        for rate, base, vat in (("0", 100, 0), ("20", 100, 20)):
            connection.execute(text("INSERT INTO invoice_vat (invoice_id, vat_rate, base_cents, vat_cents) "
                                    "VALUES (1, :r, :b, :v)"), {"r": int(rate), "b": base, "v": vat})
            connection.execute(text(
                "INSERT INTO invoice_items (invoice_id, position, type, description, quantity, amount_cents, vat_rate) "
                "VALUES (1, :p, 'one_off', 'x', 1, :b, :r)"), {"p": 1 if rate == "0" else 2, "r": int(rate),
                                                               "b": base})
    upgrade(engine)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT vat_category, vat_on_debits, customer_siren FROM invoices")).one() \
            == ("S", False, None)
        assert connection.execute(text("SELECT vat_category, exemption_reason_code FROM invoice_vat "
                                       "ORDER BY vat_rate")).all() == [("E", None), ("S", None)]
        assert [r[0] for r in connection.execute(text("SELECT vat_category FROM invoice_items ORDER BY position"))] \
            == ["E", "S"]
        assert connection.execute(text("SELECT siren, business, mask_called_numbers FROM customers")).one() == (
            None, None, True)
    command.downgrade(alembic_config(engine), "0014_faults")
    with engine.connect() as connection:
        columns = [r[1] for r in connection.execute(text("PRAGMA table_info(customers)"))] \
            if engine.dialect.name == "sqlite" else [r[0] for r in connection.execute(text(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'customers'"))]
    engine.dispose()
    assert "siren" not in columns and "mask_called_numbers" not in columns


def test_the_sample_operator_has_customers_of_each_category():
    import csv
    from collections import Counter
    from pathlib import Path

    from workbench import customer_fields

    path = Path(__file__).resolve().parent.parent / "data" / "sample" / "reference" / "customers.csv"
    with path.open(encoding="utf-8") as fh:
        customers = list(csv.DictReader(fh))
    categories = Counter(vat_category(c["country"], customer_fields.yes_no(c["business"], None), c["vat_number"])
                         for c in customers)
    # 200 customers: every 23rd from the 12th is foreign (i = 11, 34, ..., 195: 9), the 58th of
    # them Swiss; the other 191 French
    assert categories == {"S": 191, "AE": 8, "O": 1}
    swiss = [c for c in customers if c["country"] == "CH"]
    assert [c["account_number"] for c in swiss] == ["C100058"]
    sirens = [(c["siren"], c["vat_number"]) for c in customers if c["siren"]]
    assert sirens and all(customer_fields.siren(s, v) == s for s, v in sirens)
    assert any(c["service_city"] for c in customers) and any(c["mask_called_numbers"] == "no" for c in customers)


def test_called_numbers_are_masked_and_call_quantities_have_their_unit():
    from workbench.documents.models import called_number
    from workbench.money import format_duration

    assert called_number(33612345678, masked=True) == "+3361234XXXX"  # the last four digits
    assert called_number(33612345678, masked=False) == "+33612345678"
    assert called_number(1234, masked=True) == "+XXXX"
    # 730 s = 12 x 60 + 10; 123456 s = 2057 x 60 + 36: exact, no rounding
    assert format_duration(730, "fr").replace("\u00a0", " ") == "12 min 10 s"
    assert format_duration(123456, "fr").replace("\u00a0", " ").replace("\u202f", " ") == "2 057 min 36 s"
    assert format_duration(123456, "en").replace("\u00a0", " ") == "2,057 min 36 s"
    assert format_duration(59, "en").replace("\u00a0", " ") == "0 min 59 s"
