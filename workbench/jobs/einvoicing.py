"""The export for the approved platform (plateforme agréée): a period's electronic invoices and
its e-reporting summary, in a folder of the FTP space the operator's platform collects.

:func:`export_einvoices` takes the issued invoices and credit notes of a billing period (their
stored Factur-X PDFs, the XML read back from each) and writes, under ``einvoicing/<period>/``:

* ``factur-x/<number>.pdf`` and ``xml/<number>.xml``: the documents of customers with a SIREN
  (B2B, to be sent through the platform), the PDF/A-3 and its CII XML alone;
* ``manifest.csv``: one row per document sent: number, type code (380 invoice, 381 credit
  note), issue date, account, customer name and SIREN, totals excluding VAT, VAT, including VAT
  and due (amounts in euros with a point, as the document states them), currency, and each
  file with its SHA-256;
* ``e-reporting.csv``: the documents of customers without a SIREN (consumers B2C, businesses
  abroad B2BINT), which are not e-invoiced but reported: per issue day, treatment, VAT category
  and rate, the number of documents, total excluding VAT and VAT (credit notes negative).

Running it again writes the folder again (documents issued since, credit notes of the period,
are added); nothing is sent to the platform: the operator's platform, or its transfer, takes the
folder. A document whose PDF is not stored, or is not a Factur-X (issued before), is left out and
named in :attr:`PlatformExport.left_out`.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import Engine, select

from workbench.config import Settings
from workbench.db import schema as s
from workbench.db.frames import read_frame
from workbench.errors import WorkbenchError
from workbench.invoicing.einvoice import ereporting_rows, summary
from workbench.period import Period
from workbench.storage import Storage

MANIFEST_COLUMNS = ["number", "type_code", "issue_date", "account", "customer_name", "customer_siren",
                    "total_excl", "total_vat", "total_incl", "amount_due", "currency", "pdf_file", "pdf_sha256",
                    "xml_file", "xml_sha256"]
EREPORTING_COLUMNS = ["date", "treatment", "currency", "vat_category", "vat_rate", "documents", "total_excl",
                      "total_vat"]


@dataclass
class PlatformExport:
    """What :func:`export_einvoices` wrote: ``folder`` (relative to the FTP space), the numbers
    sent (``einvoiced``) and reported (``ereported``), ``left_out`` (number -> reason) and the
    files not stored (``failed``: path -> error)."""

    period: str
    folder: str
    einvoiced: list[str] = field(default_factory=list)
    ereported: list[str] = field(default_factory=list)
    left_out: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


def euros(cents: int) -> str:
    """Cents as euros with a point and 2 decimals: ``-4535`` -> ``-45.35`` (exact)."""
    return f"{Decimal(cents) / 100:.2f}"


def _csv(columns: list[str], rows: list[dict]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def export_einvoices(engine: Engine, settings: Settings, period: str) -> PlatformExport:
    """Write the platform export of ``period`` (see the module docstring).
    :class:`~workbench.errors.InputError` for a bad period, :class:`~workbench.errors.UnavailableError`
    when the FTP space cannot be reached."""
    from facturx import get_facturx_xml_from_pdf

    period = str(Period.parse(period))
    folder = f"einvoicing/{period}"
    storage = Storage(settings.storage_url)
    with engine.connect() as connection:
        documents = read_frame(connection, select(s.Invoice.number, s.Invoice.document).where(
            s.Invoice.period == period, s.Invoice.status == "issued").order_by(s.Invoice.number))
    result = PlatformExport(period, folder)
    files: dict[str, bytes] = {}
    manifest, reported = [], []
    for number, path in documents.itertuples(index=False):
        if not isinstance(path, str) or not path:
            result.left_out[number] = "its PDF is not stored (run `workbench documents`)"
            continue
        try:
            pdf = storage.get(path)
        except WorkbenchError as exc:
            result.left_out[number] = f"its PDF cannot be read: {exc}"
            continue
        try:
            _name, xml = get_facturx_xml_from_pdf(pdf, check_xsd=False)
        except Exception:  # noqa: BLE001 - the library raises bare exceptions
            xml = None
        if not xml:
            result.left_out[number] = f"{path} is not a Factur-X PDF (issued before e-invoicing)"
            continue
        doc = summary(xml)
        if not doc["buyer_siren"]:
            reported.append(doc)
            result.ereported.append(number)
            continue
        pdf_file, xml_file = f"factur-x/{number}.pdf", f"xml/{number}.xml"
        files[f"{folder}/{pdf_file}"], files[f"{folder}/{xml_file}"] = pdf, xml
        manifest.append({
            "number": number, "type_code": doc["type_code"], "issue_date": doc["issue_date"].isoformat(),
            "account": doc["buyer_reference"] or "", "customer_name": doc["buyer_name"] or "",
            "customer_siren": doc["buyer_siren"], "total_excl": euros(doc["excl"]), "total_vat": euros(doc["vat"]),
            "total_incl": euros(doc["incl"]), "amount_due": euros(doc["due"]), "currency": doc["currency"],
            "pdf_file": pdf_file, "pdf_sha256": hashlib.sha256(pdf).hexdigest(),
            "xml_file": xml_file, "xml_sha256": hashlib.sha256(xml).hexdigest()})
        result.einvoiced.append(number)
    files[f"{folder}/manifest.csv"] = _csv(MANIFEST_COLUMNS, manifest)
    files[f"{folder}/e-reporting.csv"] = _csv(EREPORTING_COLUMNS, [{
        "date": r["date"].isoformat(), "treatment": r["treatment"], "currency": r["currency"],
        "vat_category": r["vat_category"], "vat_rate": "" if r["vat_rate"] is None else format(r["vat_rate"], "f"),
        "documents": r["documents"], "total_excl": euros(r["excl_cents"]), "total_vat": euros(r["vat_cents"]),
    } for r in ereporting_rows(reported)])
    result.failed = storage.put_many(files, replace=True).failed
    return result
