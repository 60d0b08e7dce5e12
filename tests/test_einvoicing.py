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
with identities an e-invoice needs: C1 a French company (VAT number FR40 303 265 045, so SIREN
303265045), C2 a consumer in London with an email, C3 a French consumer with an email, C4 a
Belgian company (BE0403170701).
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
from factories import BILLING_CONTACTS, BILLING_CUSTOMERS, billing_reference_folder, native_cdrs
from lxml import etree
from sqlalchemy import select
from test_billing import CREDITS, NOW, OCTOBER_CALLS, OPTIONS, PERIOD, Scenario, add_credit, frame

from workbench.billing import issue_credit_note, preprod
from workbench.config import Settings, check
from workbench.db import schema as s
from workbench.documents.facturx import einvoices, operator_party
from workbench.errors import ConfigError, InputError
from workbench.integration import load_cdr_file
from workbench.invoicing.einvoice import EInvoice, Line, Party, VatBreakdown, check_number, cii_xml, line_price
from workbench.jobs import promote
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

CUSTOMERS = [row[:] for row in BILLING_CUSTOMERS]
CUSTOMERS[0][7] = "FR40303265045"  # C1: a French company, SIREN 303265045
CUSTOMERS[3][6:8] = ["BE", "BE0403170701"]  # C4: a Belgian company
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
    """October billed and issued (four invoices F2026-000001 to 4, C1 to C4), PDFs stored."""
    load_reference(engine, billing_reference_folder(tmp_path / "reference", customers=CUSTOMERS, contacts=CONTACTS))
    path = tmp_path / "switch-2026-10.csv"
    path.write_bytes(native_cdrs(OCTOBER_CALLS))
    load_cdr_file(engine, path, settings, NOW)
    ids = {a: int(i) for a, i in frame(engine, select(s.Customer.account_number, s.Customer.id)).values}
    for account, cents in CREDITS.items():
        add_credit(engine, ids[account], cents)
    rate_period(engine, PERIOD, settings, NOW)
    settings = Settings(database_url=settings.database_url, storage_url=str(tmp_path / "ftp"))
    run = preprod(engine, OPTIONS, settings, NOW)
    promotion = promote(engine, settings, run.run_id, now=NOW)
    assert promotion.run.invoices == 4 and not promotion.documents.failed
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
