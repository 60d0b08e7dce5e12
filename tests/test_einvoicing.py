"""Factur-X invoices and credit notes (EN 16931, CII XML in a PDF/A-3) and the export for the
approved platform.

Every XML generated here is checked three ways: the Factur-X XSD of its profile (the factur-x
library's), the EN 16931 CII validation rules and the French rules (BR-FR, Flux 2), both compiled
Schematron run with Saxon-HE (saxonche). The rule files are vendored under ``tests/data/``:

* ``en16931/EN16931-CII-validation.xslt``: ConnectingEurope/eInvoicing-EN16931, validation
  1.3.16 (``cii/xslt/``, commit b6c9e06a), EUPL 1.2 (``en16931/LICENSE.txt``);
* ``br-fr/BR-FR-Flux2-Schematron-CII_V1.4.0.03.xslt``: the FNFE-MPE French CTC Schematron
  (20260804, v1.4.0.03, EUPL), compiled as published in phax/phive-rules
  (``phive-rules-france/src/main/resources/external/schematron/ctc/1.4.0.03/xslt/``).

The scenario is the October billing operator of ``test_billing.py`` (amounts worked out there),
with identities an e-invoice needs: C1 a French company (SIREN 303265045, VAT number FR40303265045,
served at another address), C2 a consumer in London with an email, C3 a Swiss company (outside
the scope of French VAT: category O, no VAT), C4 a Belgian company (BE0403170701: reverse charge,
category AE, no VAT). C1 and C2 keep the amounts of ``test_billing.py``; C3: 12.84 prorated +
0.13 of calls = 12.97, no VAT, 12.97; C4: 3 x 15.00 = 45.00, no VAT, 45.00, all paid by its
100.00 of account credit (net 0).
"""

from __future__ import annotations

import csv
import hashlib
import io
from datetime import date
from decimal import Decimal
from functools import cache
from pathlib import Path

import pikepdf
import pytest
from factories import (
    BILLING_CONTACTS,
    BILLING_CUSTOMERS,
    approved,
    billing_reference_folder,
    csv_text,
    native_cdrs,
)
from lxml import etree
from sqlalchemy import select
from test_billing import CREDITS, LATER, NOW, OCTOBER_CALLS, OPTIONS, PERIOD, Scenario, add_credit, frame

from workbench.billing import preprod
from workbench.config import Settings, check
from workbench.db import schema as s
from workbench.documents.facturx import einvoices, operator_party
from workbench.errors import ConfigError, InputError
from workbench.integration import load_cdr_file
from workbench.invoicing.einvoice import check_number, cii_xml, ereporting_rows, line_price, profile, summary
from workbench.jobs import credit_note, production
from workbench.jobs.einvoicing import export_einvoices
from workbench.rated_calls import rate_period
from workbench.reference import load_reference
from workbench.storage import Storage

DATA = Path(__file__).parent / "data"
EN16931_XSLT = DATA / "en16931" / "EN16931-CII-validation.xslt"
BR_FR_XSLT = DATA / "br-fr" / "BR-FR-Flux2-Schematron-CII_V1.4.0.03.xslt"
SVRL = "{http://purl.oclc.org/dsdl/svrl}"
NS = {"rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
      "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
      "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100",
      "qdt": "urn:un:unece:uncefact:data:standard:QualifiedDataType:100"}

CUSTOMER_COLUMNS = ["account_number", "name", "address_line1", "address_line2", "postcode", "city", "country",
                    "vat_number", "language", "payment_method", "billing_group", "rate_plan", "siren", "business",
                    "service_address_line1", "service_address_line2", "service_postcode", "service_city",
                    "service_country", "mask_called_numbers"]
CUSTOMERS = [row[:] + [""] * 8 for row in BILLING_CUSTOMERS]
# C1: a French company, SIREN 303265045 (VAT FR40303265045), served at another address
CUSTOMERS[0][7] = "FR40303265045"
CUSTOMERS[0][12:19] = ["303265045", "yes", "8 rue B", "", "75002", "Paris", "FR"]
CUSTOMERS[1][13] = "no"  # C2: a consumer in London
CUSTOMERS[2][2:7] = ["3 rue du Rhône", "", "1204", "Genève", "CH"]  # C3: a Swiss company
CUSTOMERS[2][13] = "yes"
CUSTOMERS[3][6:8] = ["BE", "BE0403170701"]  # C4: a Belgian company
CUSTOMERS[3][13] = "yes"
CUSTOMERS_CSV = csv_text(CUSTOMER_COLUMNS, CUSTOMERS)
CONTACTS = BILLING_CONTACTS + [["C3", "Home", "gamma@example.fr", "yes"], ["C4", "AP", "ap@delta.example.be", "yes"]]


# ---------------------------------------------------------------------------- validators

@cache
def _processor():
    from saxonche import PySaxonProcessor

    return PySaxonProcessor(license=False)


@cache
def _stylesheet(path: Path):
    return _processor().new_xslt30_processor().compile_stylesheet(stylesheet_file=str(path))


def schematron_failures(xml: bytes, path: Path) -> list[str]:
    """The fatal failed assertions of a compiled Schematron on ``xml``: ``id: text``."""
    document = _processor().parse_xml(xml_text=xml.decode("utf-8"))
    report = etree.fromstring(_stylesheet(path).transform_to_string(xdm_node=document).encode("utf-8"))
    return [f"{f.get('id')}: {' '.join(f.findtext(f'{SVRL}text', '').split())}"
            for f in report.iter(f"{SVRL}failed-assert") if f.get("flag", "fatal") in ("fatal", "error")]


def check_xml(xml: bytes, level: str = "en16931") -> list[str]:
    """Every problem of ``xml``: the Factur-X XSD, EN 16931, BR-FR (empty: valid)."""
    from facturx import xml_check_xsd

    problems = []
    try:
        xml_check_xsd(xml, flavor="factur-x", level=level)
    except Exception as exc:  # noqa: BLE001 - the library raises bare exceptions
        problems.append(f"XSD: {exc}")
    return problems + schematron_failures(xml, EN16931_XSLT) + schematron_failures(xml, BR_FR_XSLT)


def pdfa3_problems(pdf: bytes) -> list[str]:
    """What makes ``pdf`` not a Factur-X PDF/A-3 (pikepdf checks; veraPDF is not packaged): XMP
    ``pdfaid:part`` 3 and the Factur-X extension schema, an output intent with an ICC profile,
    ``factur-x.xml`` embedded with ``/AFRelationship /Data`` and listed in the catalog's ``/AF``."""
    problems = []
    with pikepdf.open(io.BytesIO(pdf)) as document:
        meta = document.open_metadata()
        if meta.get("pdfaid:part") != "3" or meta.get("pdfaid:conformance") not in ("B", "U", "A"):
            problems.append(f"XMP pdfaid {meta.get('pdfaid:part')}/{meta.get('pdfaid:conformance')}")
        xmp = bytes(document.Root.Metadata.read_bytes()).decode("utf-8")
        for needed in ("urn:factur-x:pdfa:CrossIndustryDocument:invoice:1p0#", "DocumentFileName",
                       "factur-x.xml", "pdfaExtension:schemas"):
            if needed not in xmp:
                problems.append(f"XMP lacks {needed}")
        intents = document.Root.get("/OutputIntents")
        if not intents or intents[0].get("/S") != "/GTS_PDFA1" or "/DestOutputProfile" not in intents[0]:
            problems.append("no PDF/A output intent with an ICC profile")
        files = document.attachments
        if "factur-x.xml" not in files:
            problems.append("factur-x.xml not embedded")
        else:
            spec = files["factur-x.xml"].obj
            if spec.get("/AFRelationship") != "/Data":
                problems.append(f"AFRelationship {spec.get('/AFRelationship')}")
            if spec.objgen not in [a.objgen for a in document.Root.get("/AF", [])]:
                problems.append("factur-x.xml not in the catalog's /AF")
    return problems


def embedded_xml(pdf: bytes) -> bytes:
    with pikepdf.open(io.BytesIO(pdf)) as document:
        return document.attachments["factur-x.xml"].get_file().read_bytes()


def xpath(xml: bytes, path: str) -> list[str]:
    return [str(v) for v in etree.fromstring(xml).xpath(path, namespaces=NS)]


# ---------------------------------------------------------------------------- scenario

@pytest.fixture
def issued(engine, settings, tmp_path) -> Scenario:
    """October billed and issued by the production job (four invoices F2026-000001 to 4, C1 to
    C4), PDFs stored, the platform export written."""
    load_reference(engine, billing_reference_folder(tmp_path / "reference", customers=CUSTOMERS_CSV,
                                                       contacts=CONTACTS))
    path = tmp_path / "switch-2026-10.csv"
    path.write_bytes(native_cdrs(OCTOBER_CALLS))
    load_cdr_file(engine, path, settings, NOW)
    ids = {a: int(i) for a, i in frame(engine, select(s.Customer.account_number, s.Customer.id)).values}
    for account, cents in CREDITS.items():
        add_credit(engine, ids[account], cents)
    rate_period(engine, PERIOD, settings, NOW)
    settings = Settings(database_url=settings.database_url, storage_url=str(tmp_path / "ftp"))
    run = preprod(engine, OPTIONS, settings, NOW)
    # the production job: issue, store the PDFs, debit, and export for the platform
    result = production(engine, settings, approved(engine, run.run_id), PERIOD, deliver_invoices=False, now=NOW)
    assert result.promotion.run.invoices == 4 and not result.promotion.documents.failed
    summary = result.report()
    assert (summary.einvoicing_folder, summary.einvoiced, summary.ereported) == ("einvoicing/2026-10", 1, 3)
    assert summary.einvoicing_left_out == ()  # none left out, none not stored
    # C3 pays by direct debit but has no mandate: its invoice was issued payable by transfer, it is
    # not debited and nothing is left out of the SEPA file
    assert summary.left_undone == () and summary.sepa_left_out == ()
    return Scenario(engine, settings, tmp_path, ids)


def stored_pdf(scenario: Scenario, number: str) -> bytes:
    with scenario.engine.connect() as connection:
        path = connection.execute(select(s.Invoice.document).where(s.Invoice.number == number)).scalar_one()
    return Storage(scenario.settings.storage_url).get(path)


# ---------------------------------------------------------------------------- tests

def test_every_issued_invoice_is_a_valid_factur_x(issued):
    for number in ("F2026-000001", "F2026-000002", "F2026-000003", "F2026-000004"):
        pdf = stored_pdf(issued, number)
        assert pdfa3_problems(pdf) == [], number
        xml = embedded_xml(pdf)
        assert check_xml(xml) == [], number
        assert xpath(xml, "/rsm:CrossIndustryInvoice/rsm:ExchangedDocument/ram:ID/text()") == [number]


def header(xml: bytes, path: str) -> list[str]:
    """Values under the header settlement (``S/``), agreement (``A/``) or document (``D/``)."""
    prefixes = {"S/": "/rsm:CrossIndustryInvoice/rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeSettlement/",
                "A/": "/rsm:CrossIndustryInvoice/rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeAgreement/",
                "D/": "/rsm:CrossIndustryInvoice/rsm:ExchangedDocument/"}
    if path[:2] in prefixes:
        path = prefixes[path[:2]] + path[2:]
    return xpath(xml, path)


TOTALS = "S/ram:SpecifiedTradeSettlementHeaderMonetarySummation/ram:"


def test_the_xml_states_the_invoice_as_the_database_has_it(issued):
    c1 = embedded_xml(stored_pdf(issued, "F2026-000001"))
    assert header(c1, "D/ram:TypeCode/text()") == ["380"]
    assert header(c1, "D/ram:IssueDateTime/udt:DateTimeString/text()") == ["20261101"]
    assert header(c1, "S/ram:SpecifiedTradePaymentTerms/ram:DueDateDateTime/udt:DateTimeString/text()") == [
        "20261201"]
    # the billing period BT-73/74: October
    assert header(c1, "S/ram:BillingSpecifiedPeriod/*/udt:DateTimeString/text()") == ["20261001", "20261031"]
    # lines: LINE 2 x 19.90 = 39.80, MOBMIN 1 x 5.00, calls FIX 0.13 and MOB 0.42 (1 x the amount);
    # the account credit applied is the paid amount, not a line
    lines = xpath(c1, "//ram:IncludedSupplyChainTradeLineItem")
    assert len(lines) == 4
    assert xpath(c1, "//ram:BilledQuantity/text()") == ["2", "1", "1", "1"]
    assert xpath(c1, "//ram:NetPriceProductTradePrice/ram:ChargeAmount/text()") == ["19.90", "5.00", "0.13", "0.42"]
    assert xpath(c1, "//ram:SpecifiedTradeSettlementLineMonetarySummation/ram:LineTotalAmount/text()") == [
        "39.80", "5.00", "0.13", "0.42"]
    # totals (test_billing: C1 excl. 45.35, VAT 9.07, incl. 54.42, 20.00 credit applied, net 34.42)
    assert [header(c1, f"{TOTALS}{t}/text()")[0] for t in (
        "LineTotalAmount", "TaxBasisTotalAmount", "TaxTotalAmount", "GrandTotalAmount", "TotalPrepaidAmount",
        "DuePayableAmount")] == ["45.35", "45.35", "9.07", "54.42", "20.00", "34.42"]
    assert header(c1, "S/ram:ApplicableTradeTax/ram:CategoryCode/text()") == ["S"]
    assert header(c1, "S/ram:ApplicableTradeTax/ram:RateApplicablePercent/text()") == ["20"]
    # parties: the operator's SIREN 123 456 782 and C1's, from its VAT number FR40 303265045
    assert header(c1, "A/ram:SellerTradeParty/ram:SpecifiedLegalOrganization/ram:ID[@schemeID='0002']/text()") == [
        "123456782"]
    assert header(c1, "A/ram:SellerTradeParty/ram:SpecifiedTaxRegistration/ram:ID/text()") == ["FR40123456782"]
    assert header(c1, "A/ram:SellerTradeParty/ram:PostalTradeAddress/*/text()") == [
        "75002", "12 rue de la Paix", "Paris", "FR"]
    assert header(c1, "A/ram:BuyerTradeParty/ram:Name/text()") == ["Alpha SARL"]
    assert header(c1, "A/ram:BuyerTradeParty/ram:SpecifiedLegalOrganization/ram:ID[@schemeID='0002']/text()") == [
        "303265045"]
    assert header(c1, "A/ram:BuyerTradeParty/ram:URIUniversalCommunication/ram:URIID[@schemeID='0225']/text()") == [
        "303265045"]
    assert header(c1, "A/ram:BuyerTradeParty/ram:SpecifiedTaxRegistration/ram:ID/text()") == ["FR40303265045"]
    # C1 is served at 8 rue B, 75002 Paris: the deliver-to address (BG-15)
    assert xpath(c1, "//ram:ApplicableHeaderTradeDelivery/ram:ShipToTradeParty/ram:PostalTradeAddress/*/text()") == [
        "75002", "8 rue B", "Paris", "FR"]
    # C1 pays by direct debit: 59, its mandate, the creditor identifier, the debited IBAN
    assert header(c1, "S/ram:SpecifiedTradeSettlementPaymentMeans/ram:TypeCode/text()") == ["59"]
    assert header(c1, "S/ram:SpecifiedTradePaymentTerms/ram:DirectDebitMandateID/text()") == ["MANDATE-C1-01"]
    assert header(c1, "S/ram:CreditorReferenceID/text()") == ["FR72ZZZ123456"]
    assert header(c1, "S/ram:SpecifiedTradeSettlementPaymentMeans/ram:PayerPartyDebtorFinancialAccount/"
                      "ram:IBANID/text()") == ["FR7630006000011234567890189"]
    # the notes French rules require, each once, and the treatment B2B
    assert header(c1, "D/ram:IncludedNote/ram:SubjectCode/text()") == ["BAR", "PMT", "PMD", "AAB"]
    assert header(c1, "D/ram:IncludedNote[ram:SubjectCode='BAR']/ram:Content/text()") == ["B2B"]
    assert "40 EUR" in header(c1, "D/ram:IncludedNote[ram:SubjectCode='PMT']/ram:Content/text()")[0]
    assert "trois fois le taux d'intérêt légal" in header(
        c1, "D/ram:IncludedNote[ram:SubjectCode='PMD']/ram:Content/text()")[0]

    # C2, a consumer in London paying by transfer: 58 to the operator's IBAN; the deposit at 0 %
    # is exempt (E, with its reason); 49.00 + 13.48 + 0.05 + 1.10 = 63.63 at 20 % -> 12.726 -> 12.73
    c2 = embedded_xml(stored_pdf(issued, "F2026-000002"))
    assert header(c2, "S/ram:SpecifiedTradeSettlementPaymentMeans/ram:TypeCode/text()") == ["58"]
    assert header(c2, "S/ram:SpecifiedTradeSettlementPaymentMeans/ram:PayeePartyCreditorFinancialAccount/"
                      "ram:IBANID/text()") == ["FR7630006000011234567890189"]
    assert header(c2, "S/ram:SpecifiedTradeSettlementPaymentMeans/ram:PayeeSpecifiedCreditorFinancialInstitution/"
                      "ram:BICID/text()") == ["AGRIFRPP"]
    assert [(t.findtext(f"{{{NS['ram']}}}CategoryCode"), t.findtext(f"{{{NS['ram']}}}RateApplicablePercent"),
             t.findtext(f"{{{NS['ram']}}}BasisAmount"), t.findtext(f"{{{NS['ram']}}}CalculatedAmount"))
            for t in etree.fromstring(c2).iterfind(".//ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax",
                                                   NS)] == [("E", "0", "100.00", "0.00"), ("S", "20", "63.63", "12.73")]
    assert [header(c2, f"{TOTALS}{t}/text()") for t in ("TaxBasisTotalAmount", "GrandTotalAmount",
                                                         "TotalPrepaidAmount", "DuePayableAmount")] == [
        ["163.63"], ["176.36"], [], ["176.36"]]
    assert header(c2, "A/ram:BuyerTradeParty/ram:URIUniversalCommunication/ram:URIID[@schemeID='EM']/text()") == [
        "boss@beta.example.co.uk"]
    assert header(c2, "D/ram:IncludedNote[ram:SubjectCode='BAR']/ram:Content/text()") == ["B2C"]
    assert header(c2, "A/ram:BuyerTradeParty/ram:SpecifiedLegalOrganization") == []
    # in English for an English-speaking customer
    assert header(c2, "D/ram:IncludedNote[ram:SubjectCode='AAB']/ram:Content/text()") == [
        "No discount for early payment."]

    # C3, a Swiss company: outside the scope of French VAT (O, no rate), no VAT identifier at all
    # (BR-O-02); 12.84 + 0.13 = 12.97, no VAT
    c3 = embedded_xml(stored_pdf(issued, "F2026-000003"))
    assert header(c3, "S/ram:ApplicableTradeTax/ram:CategoryCode/text()") == ["O"]
    assert header(c3, "S/ram:ApplicableTradeTax/ram:RateApplicablePercent/text()") == []
    assert header(c3, "S/ram:ApplicableTradeTax/ram:ExemptionReasonCode/text()") == ["VATEX-EU-O"]
    assert header(c3, "S/ram:ApplicableTradeTax/ram:ExemptionReason/text()") == [
        "TVA non applicable, art. 259-1° du CGI"]
    assert xpath(c3, "//ram:SpecifiedTaxRegistration") == []
    assert [header(c3, f"{TOTALS}{t}/text()")[0] for t in ("TaxBasisTotalAmount", "TaxTotalAmount",
                                                            "GrandTotalAmount")] == ["12.97", "0.00", "12.97"]
    assert header(c3, "D/ram:IncludedNote[ram:SubjectCode='BAR']/ram:Content/text()") == ["B2BINT"]
    # C4, a Belgian company: reverse charge (AE at 0), both VAT numbers; 45.00 paid by its credit
    c4 = embedded_xml(stored_pdf(issued, "F2026-000004"))
    assert header(c4, "S/ram:ApplicableTradeTax/ram:CategoryCode/text()") == ["AE"]
    assert header(c4, "S/ram:ApplicableTradeTax/ram:RateApplicablePercent/text()") == ["0"]
    assert header(c4, "S/ram:ApplicableTradeTax/ram:ExemptionReasonCode/text()") == ["VATEX-EU-AE"]
    assert header(c4, "A/ram:BuyerTradeParty/ram:SpecifiedTaxRegistration/ram:ID/text()") == ["BE0403170701"]
    assert [header(c4, f"{TOTALS}{t}/text()")[0] for t in ("TaxBasisTotalAmount", "TaxTotalAmount",
                                                            "GrandTotalAmount", "TotalPrepaidAmount",
                                                            "DuePayableAmount")] == [
        "45.00", "0.00", "45.00", "45.00", "0.00"]


def test_the_xml_totals_are_the_databases_for_every_document(issued):
    credit_note(issued.engine, issued.settings, "F2026-000003", "wrong rate", now=LATER)
    credit_note(issued.engine, issued.settings, "F2026-000001", "goodwill", now=LATER, amount="12.00")
    with issued.engine.connect() as connection:
        rows = connection.execute(select(
            s.Invoice.id, s.Invoice.number, s.Invoice.kind, s.Invoice.total_excl_cents, s.Invoice.total_vat_cents,
            s.Invoice.total_incl_cents, s.Invoice.credit_applied_cents, s.Invoice.net_payable_cents)
            .where(s.Invoice.status == "issued")).all()
    assert len(rows) == 6
    for row in rows:
        xml = embedded_xml(stored_pdf(issued, row.number))
        assert check_xml(xml) == [], row.number
        doc = summary(xml)
        sign = -1 if row.kind == "credit_note" else 1
        assert (doc["excl"], doc["vat"], doc["incl"]) == (
            sign * row.total_excl_cents, sign * row.total_vat_cents, sign * row.total_incl_cents), row.number
        if row.kind == "invoice":  # what is left to pay is the net payable
            assert doc["due"] == row.net_payable_cents, row.number


def test_a_credit_note_is_a_381_naming_the_invoice_it_credits(issued):
    full = credit_note(issued.engine, issued.settings, "F2026-000003", "wrong rate", now=LATER)
    partial = credit_note(issued.engine, issued.settings, "F2026-000001", "goodwill", now=LATER, amount="12.00")
    note = embedded_xml(stored_pdf(issued, full.number))
    assert pdfa3_problems(stored_pdf(issued, full.number)) == []
    assert check_xml(note) == []
    assert header(note, "D/ram:TypeCode/text()") == ["381"]
    assert header(note, "S/ram:InvoiceReferencedDocument/ram:IssuerAssignedID/text()") == ["F2026-000003"]
    assert header(note, "S/ram:InvoiceReferencedDocument/ram:FormattedIssueDateTime/qdt:DateTimeString/text()") == [
        "20261101"]
    # the amounts stated positive: C3's 12.97, outside the scope of VAT as its invoice; no payment
    # means, no due date
    assert [header(note, f"{TOTALS}{t}/text()")[0] for t in (
        "TaxBasisTotalAmount", "TaxTotalAmount", "GrandTotalAmount", "DuePayableAmount")] == [
        "12.97", "0.00", "12.97", "12.97"]
    assert header(note, "S/ram:ApplicableTradeTax/ram:CategoryCode/text()") == ["O"]
    assert header(note, "S/ram:SpecifiedTradeSettlementPaymentMeans") == []
    # the partial note of 12.00 incl. VAT at 20 %: 12.00 / 1.2 = 10.00 excl., 2.00 VAT, one line
    part = embedded_xml(stored_pdf(issued, partial.number))
    assert check_xml(part) == []
    assert header(part, "S/ram:InvoiceReferencedDocument/ram:IssuerAssignedID/text()") == ["F2026-000001"]
    assert xpath(part, "//ram:LineTotalAmount/text()") == ["10.00", "10.00"]
    assert [header(part, f"{TOTALS}{t}/text()")[0] for t in ("TaxTotalAmount", "GrandTotalAmount")] == [
        "2.00", "12.00"]


def test_invoice_numbers_the_french_rules_refuse():
    assert check_number("F2026-000001") == "F2026-000001"
    assert check_number("A+_/-" + "9" * 30) == "A+_/-" + "9" * 30  # 35 characters
    for wrong in ("F2026 000001", "F2026-00000é", "", "F" * 36, "F2026.1"):
        with pytest.raises(InputError, match="BR-FR-01 and BR-FR-02"):
            check_number(wrong)


def test_the_profile_is_en16931_by_default_and_minimum_or_basic_wl_are_refused():
    assert Settings().facturx_profile == "en16931"
    assert check(Settings(facturx_profile="EXTENDED")).facturx_profile == "EXTENDED"
    for refused, reason in (("minimum", "MINIMUM"), ("basic wl", "BASIC WL"), ("BASICWL", "BASIC WL"),
                            ("zugferd", "use en16931")):
        with pytest.raises(ConfigError, match=reason):
            check(Settings(facturx_profile=refused))
    # the XML builder takes the same names, and refuses the same
    assert (profile("EN 16931"), profile("Extended")) == ("en16931", "extended")
    for refused in ("MINIMUM", "BASIC WL", "basic"):
        with pytest.raises(ConfigError, match="not an invoice in France|cannot carry"):
            profile(refused)


def test_line_quantity_and_price_make_the_line_amount():
    # 2 x 19.90 = 39.80: kept
    assert line_price(Decimal("2"), 1990, 3980) == (Decimal("2"), Decimal("1990"))
    # a prorated line 0.6774 x 19.90 = 13.48... is not 13.48 exactly: 1 x 13.48
    assert line_price(Decimal("0.6774"), 1990, 1348) == (Decimal("1"), Decimal("1348"))
    # days given back, -10.27 without a unit price: -1 x 10.27 (the price is never negative)
    assert line_price(None, None, -1027) == (Decimal("-1"), Decimal("1027"))
    # a partial credit note's line, 1 x -10.00 in the database: -1 x 10.00
    assert line_price(Decimal("1"), -1000, -1000) == (Decimal("-1"), Decimal("1000"))


def test_an_invoice_in_the_extended_profile_passes_its_xsd(issued):
    with issued.engine.connect() as connection:
        ids = [i for (i,) in connection.execute(select(s.Invoice.id).where(s.Invoice.number == "F2026-000001"))]
        invoice = einvoices(connection, ids, issued.settings)[ids[0]]
    xml = cii_xml(invoice, "extended")
    assert header(xml, "/rsm:CrossIndustryInvoice/rsm:ExchangedDocumentContext/"
                       "ram:GuidelineSpecifiedDocumentContextParameter/ram:ID/text()") == [
        "urn:cen.eu:en16931:2017#conformant#urn:factur-x.eu:1p0:extended"]
    assert check_xml(xml, "extended") == []


def test_the_operator_address_is_read_as_street_postcode_city_country():
    party = operator_party(Settings(operator_address="3 avenue Foch, Bâtiment 2, 69006 Lyon, France",
                                    operator_siren="552 100 554"))
    assert (party.line1, party.line2, party.postcode, party.city, party.country, party.siren) == (
        "3 avenue Foch", "Bâtiment 2", "69006", "Lyon", "FR", "552100554")
    assert party.address == ("0225", "552100554")


def read_csv(data: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"))))


def test_the_platform_export_has_the_b2b_documents_a_manifest_and_the_e_reporting(issued):
    export = export_einvoices(issued.engine, issued.settings, PERIOD)
    storage = Storage(issued.settings.storage_url)
    folder = "einvoicing/2026-10"
    assert (export.folder, export.einvoiced, export.ereported, export.left_out, export.failed) == (
        folder, ["F2026-000001"], ["F2026-000002", "F2026-000003", "F2026-000004"], {}, {})
    pdf = storage.get(f"{folder}/factur-x/F2026-000001.pdf")
    assert pdf == stored_pdf(issued, "F2026-000001")
    xml = storage.get(f"{folder}/xml/F2026-000001.xml")
    assert xml == embedded_xml(pdf)
    assert read_csv(storage.get(f"{folder}/manifest.csv")) == [{
        "number": "F2026-000001", "type_code": "380", "issue_date": "2026-11-01", "account": "C1",
        "customer_name": "Alpha SARL", "customer_siren": "303265045", "total_excl": "45.35", "total_vat": "9.07",
        "total_incl": "54.42", "amount_due": "34.42", "currency": "EUR",
        "pdf_file": "factur-x/F2026-000001.pdf", "pdf_sha256": hashlib.sha256(pdf).hexdigest(),
        "xml_file": "xml/F2026-000001.xml", "xml_sha256": hashlib.sha256(xml).hexdigest()}]
    # e-reporting of 1 November: C3 (Switzerland, O) 12.97 and C4 (Belgium, AE) 45.00, businesses
    # abroad (B2BINT), no VAT; C2 (B2C): the deposit 100.00 exempt, then 63.63 at 20 % with 12.73 VAT
    assert read_csv(storage.get(f"{folder}/e-reporting.csv")) == [
        {"date": "2026-11-01", "treatment": "B2BINT", "currency": "EUR", "vat_category": "AE", "vat_rate": "0",
         "documents": "1", "total_excl": "45.00", "total_vat": "0.00"},
        {"date": "2026-11-01", "treatment": "B2BINT", "currency": "EUR", "vat_category": "O", "vat_rate": "",
         "documents": "1", "total_excl": "12.97", "total_vat": "0.00"},
        {"date": "2026-11-01", "treatment": "B2C", "currency": "EUR", "vat_category": "E", "vat_rate": "0",
         "documents": "1", "total_excl": "100.00", "total_vat": "0.00"},
        {"date": "2026-11-01", "treatment": "B2C", "currency": "EUR", "vat_category": "S", "vat_rate": "20",
         "documents": "1", "total_excl": "63.63", "total_vat": "12.73"},
    ]

    # credit notes of the period, issued on 3 November, are added when it is run again: C3's
    # whole invoice (12.97, O) reported negative; C1's partial note (10.00 + 2.00) sent
    credit_note(issued.engine, issued.settings, "F2026-000003", "wrong rate", now=LATER)
    credit_note(issued.engine, issued.settings, "F2026-000001", "goodwill", now=LATER, amount="12.00")
    again = export_einvoices(issued.engine, issued.settings, PERIOD)
    assert again.einvoiced == ["A2026-000002", "F2026-000001"]
    manifest = read_csv(storage.get(f"{folder}/manifest.csv"))
    assert [(r["number"], r["type_code"], r["issue_date"], r["total_excl"], r["total_vat"], r["total_incl"])
            for r in manifest] == [("A2026-000002", "381", "2026-11-03", "10.00", "2.00", "12.00"),
                                   ("F2026-000001", "380", "2026-11-01", "45.35", "9.07", "54.42")]
    assert read_csv(storage.get(f"{folder}/e-reporting.csv"))[-1] == {
        "date": "2026-11-03", "treatment": "B2BINT", "currency": "EUR", "vat_category": "O", "vat_rate": "",
        "documents": "1", "total_excl": "-12.97", "total_vat": "0.00"}


def test_ereporting_rows_sum_per_day_treatment_and_rate():
    def doc(number, day, category, breakdown, sign=1):
        return {"number": number, "issue_date": day, "category": category, "currency": "EUR", "sign": sign,
                "breakdown": breakdown}

    rows = ereporting_rows([
        doc("F1", date(2026, 11, 2), "B2C", [("S", Decimal("20"), 1000, 200), ("S", Decimal("5.5"), 400, 22)]),
        doc("F2", date(2026, 11, 2), "B2C", [("S", Decimal("20"), 250, 50)]),
        doc("A1", date(2026, 11, 2), "B2C", [("S", Decimal("20"), 100, 20)], sign=-1),
        doc("F3", date(2026, 11, 1), "B2BINT", [("O", None, 5000, 0)]),
    ])
    # 2 Nov at 20 %: 10.00 + 2.50 - 1.00 = 11.50 excl., 2.00 + 0.50 - 0.20 = 2.30 VAT, 3 documents
    assert [(r["date"].day, r["treatment"], r["vat_category"], r["vat_rate"], r["documents"], r["excl_cents"],
             r["vat_cents"]) for r in rows] == [
        (1, "B2BINT", "O", None, 1, 5000, 0),
        (2, "B2C", "S", Decimal("5.5"), 1, 400, 22),
        (2, "B2C", "S", Decimal("20"), 3, 1150, 230),
    ]


def test_every_document_of_the_demo_is_a_valid_factur_x_and_is_exported(tmp_path, capsys, monkeypatch):
    """The demo on a generated operator (the sample's generator, 60 customers): every invoice is a
    Factur-X PDF/A-3 whose XML passes the XSD, EN 16931 and BR-FR, and the platform export has
    them all, sent or e-reported."""
    from workbench.cli import main
    from workbench.sample import generate_operator

    for name, folder in (("STORAGE_URL", "ftp"), ("OUTBOX_DIR", "outbox"), ("OUTPUT_DIR", "out")):
        monkeypatch.setenv(f"WORKBENCH_{name}", str(tmp_path / folder))
    generate_operator(tmp_path / "data", seed=11, customers=60, calls=3_000)
    assert main(["--database-url", f"sqlite:///{tmp_path / 'demo.sqlite'}", "demo", "--data",
                 str(tmp_path / "data")]) == 0
    assert "== e-invoicing 2026-10" in capsys.readouterr().out
    pdfs = sorted((tmp_path / "ftp" / "invoices").rglob("*.pdf"))
    assert len(pdfs) == 60
    categories = set()
    for path in pdfs:
        pdf = path.read_bytes()
        assert pdfa3_problems(pdf) == [], path.name
        xml = embedded_xml(pdf)
        assert check_xml(xml) == [], path.name
        categories.add(summary(xml)["category"])
    assert categories >= {"B2B", "B2C"}
    folder = tmp_path / "ftp" / "einvoicing" / "2026-10"
    manifest = read_csv((folder / "manifest.csv").read_bytes())
    reported = {r["documents"] for r in read_csv((folder / "e-reporting.csv").read_bytes())}
    assert manifest and reported
    for row in manifest:
        assert hashlib.sha256((folder / row["pdf_file"]).read_bytes()).hexdigest() == row["pdf_sha256"]
        assert hashlib.sha256((folder / row["xml_file"]).read_bytes()).hexdigest() == row["xml_sha256"]
