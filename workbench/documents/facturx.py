"""Factur-X: the issued invoices and credit notes as EN 16931 electronic invoices, their CII XML
embedded in the PDF as a PDF/A-3 file (the ``factur-x`` library, which checks the XML against the
Factur-X XSD of its profile).

:func:`einvoices` reads what each document says (the document models of
:mod:`workbench.documents.models`, the amounts as stored) into
:class:`~workbench.invoicing.einvoice.EInvoice` records; :func:`facturx_pdf` embeds the XML of one
in its PDF. What the French rules and the payment make of a document is read in one place each:

* :func:`vat_category` and :func:`exemption_reason`: the VAT category (BT-118: S, AE, O, E) and its
  reason (BT-120/121) of a VAT breakdown of the document model;
* :func:`buyer_siren`: the customer's SIREN (BT-47): the document model's ``siren``, else the
  SIREN inside a French VAT number (``FRkk`` + SIREN);
* :func:`payment_means`: 59 (SEPA direct debit: mandate BT-89, creditor identifier BT-90,
  debited account BT-91) or 58 (credit transfer to the operator's IBAN, BT-84);
* :func:`notes`: the notes the French rules require (BR-FR-05/06), each once.

The amounts are the database's (cents): a credit note, stored with negative amounts, states them
positive (type 381); the account credit an invoice used is its paid amount (BT-113), so its amount
due (BT-115) is its net payable, or its negative total for an invoice whose total is negative.
"""

from __future__ import annotations

import io
import re
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pandas as pd
from sqlalchemy import Connection, select

from workbench.config import Settings
from workbench.db import schema as s
from workbench.db.frames import read_frame
from workbench.documents.models import invoice_models
from workbench.documents.pdf import LABELS
from workbench.errors import ConfigError
from workbench.invoicing.einvoice import (
    CREDIT_NOTE,
    INVOICE,
    EInvoice,
    Line,
    Party,
    PaymentMeans,
    VatBreakdown,
    cii_xml,
    line_price,
    profile,
)
from workbench.period import Period

#: the notes BR-FR-05 requires (UNTDID 4451 subject codes), in the document's language
NOTES = {
    "fr": {
        "PMT": "Indemnité forfaitaire pour frais de recouvrement en cas de retard de paiement : 40 EUR "
               "(art. L441-10 et D441-5 du Code de commerce).",
        "AAB": "Pas d'escompte pour paiement anticipé.",
    },
    "en": {
        "PMT": "Fixed indemnity for recovery costs in case of late payment: 40 EUR "
               "(French Commercial Code, art. L441-10 and D441-5).",
        "AAB": "No discount for early payment.",
    },
}
EXEMPT = {"fr": "Non soumis à la TVA", "en": "Not subject to VAT"}
COUNTRIES = {"france": "FR", "belgique": "BE", "belgium": "BE"}
ICC_PROFILE = None  # the sRGB profile of the output intent, read once


def siren_of(value) -> str | None:
    """A SIREN as 9 digits (spaces removed), or None when ``value`` is not one."""
    digits = re.sub(r"\s", "", str(value or ""))
    return digits if re.fullmatch(r"[0-9]{9}", digits) else None


def buyer_siren(model: dict) -> str | None:
    """The customer's SIREN (BT-47): the document model's ``buyer_siren`` (the customer's, kept at
    issue) when it has one, else the SIREN a French VAT number holds (``FR`` + 2 check characters
    + SIREN); None for a consumer or a foreign customer."""
    customer = model["customer"]
    explicit = siren_of(model.get("buyer_siren") or customer.get("siren"))
    if explicit:
        return explicit
    vat = re.sub(r"\s", "", str(customer.get("vat_number") or "")).upper()
    match = re.fullmatch(r"FR[0-9A-Z]{2}([0-9]{9})", vat)
    return match.group(1) if match else None


def vat_category(vat: dict) -> str:
    """The VAT category code (UNCL 5305, BT-118) of a VAT breakdown of the document model: its
    ``category`` (S, E, AE reverse charge, O outside the scope: :mod:`workbench.invoicing.vat`),
    else S for a positive rate and E (exempt: a deposit) for 0."""
    if vat.get("category"):
        return str(vat["category"])
    return "S" if Decimal(str(vat["rate_value"])) > 0 else "E"


def exemption_reason(vat: dict, lang: str) -> tuple[str | None, str | None]:
    """``(text, code)`` of the exemption reason (BT-120, BT-121) of a VAT breakdown not taxed at
    the standard rate: the document model's ``exemption_reason`` and ``exemption_reason_code``
    (:func:`workbench.invoicing.vat.exemption_reason`) when given; else ``VATEX-EU-AE`` for
    reverse charge (BR-AE-10), ``VATEX-EU-O`` outside the scope, and a text for each."""
    category = vat_category(vat)
    if category == "S":
        return None, None
    code = vat.get("exemption_reason_code") or {"AE": "VATEX-EU-AE", "O": "VATEX-EU-O"}.get(category)
    text = vat.get("exemption_reason") or ({"AE": "Autoliquidation" if lang == "fr" else "Reverse charge"}.get(
        category) or EXEMPT[lang])
    return text, code


def service_party(model: dict) -> Party | None:
    """Where the services are delivered (BG-13 and BG-15: BT-70, BT-75 to BT-80), when the
    document model has a ``service_address`` that differs from the billing address; else None."""
    address = model.get("service_address")
    if not address:
        return None
    return Party(name=model["customer"]["name"], line1=address.get("line1") or "", line2=address.get("line2") or "",
                 postcode=address.get("postcode") or "", city=address.get("city") or "",
                 country=address.get("country") or model["customer"].get("country") or "FR")


def payment_means(model: dict, settings: Settings) -> PaymentMeans | None:
    """How the document is paid (BG-16): None for a credit note; 59, SEPA direct debit, for an
    invoice payable by direct debit under a mandate (its reference BT-89, the operator's creditor
    identifier BT-90, the debited IBAN BT-91); else 58, SEPA credit transfer to the operator's
    IBAN (BT-84) and BIC (BT-86). The invoice's payment means as kept at issue, when the model
    has them (``payment_means``), else the customer's payment method."""
    if model["kind"] == "credit_note":
        return None
    method = model.get("payment_means") or model.get("payment_method")
    mandate = model.get("mandate")
    if method == "direct_debit" and mandate and mandate.get("iban"):
        return PaymentMeans("59", mandate_reference=mandate["reference"],
                            creditor_id=re.sub(r"\s", "", settings.sepa_creditor_id),
                            debtor_iban=re.sub(r"\s", "", mandate["iban"]))
    return PaymentMeans("58", iban=re.sub(r"\s", "", settings.sepa_creditor_iban),
                        bic=settings.sepa_creditor_bic or None)


def transaction_category(model: dict, siren: str | None) -> str:
    """The French treatment of the document (note BAR): B2B for a customer with a SIREN (sent
    through the approved platform); B2BINT for a business abroad (an invoice in reverse charge
    or outside the scope of French VAT, or a VAT number of another country); B2C otherwise (the
    consumers). B2BINT and B2C documents are e-reported."""
    if siren:
        return "B2B"
    vat = str(model["customer"].get("vat_number") or "")
    if model.get("vat_category") in ("AE", "O") or (vat and not vat.upper().startswith("FR")):
        return "B2BINT"
    return "B2C"


def notes(model: dict, settings: Settings, category: str) -> list[tuple[str, str]]:
    """The document's notes (BG-1), each subject once: BAR (the French treatment), PMT (the 40 EUR
    recovery indemnity), PMD (late-payment penalties at ``late_penalty_rate`` or three times the
    legal interest rate), AAB (no early-payment discount); in the document's language."""
    lang = model["lang"]
    labels = LABELS[lang]
    penalties = labels["penalties"].format(rate=settings.late_penalty_rate or labels["penalty_rate"])
    return [("BAR", category), ("PMT", NOTES[lang]["PMT"]), ("PMD", penalties), ("AAB", NOTES[lang]["AAB"])]


def operator_party(settings: Settings) -> Party:
    """The seller (BG-4) from the operator's settings; its address (``operator_address``) read as
    ``street, postcode city, country`` (``12 rue de la Paix, 75002 Paris, France``)."""
    parts = [p.strip() for p in settings.operator_address.split(",") if p.strip()]
    country = "FR"
    if len(parts) > 1 and (parts[-1].lower() in COUNTRIES or re.fullmatch(r"[A-Z]{2}", parts[-1])):
        last = parts.pop()
        country = COUNTRIES.get(last.lower(), last)
    postcode = city = ""
    if parts:
        match = re.fullmatch(r"([0-9]{4,5})\s+(.+)", parts[-1])
        if match:
            parts.pop()
            postcode, city = match.groups()
    siren = siren_of(settings.operator_siren)
    return Party(name=settings.operator_name, line1=", ".join(parts[:1]), line2=", ".join(parts[1:]),
                 postcode=postcode, city=city, country=country, siren=siren,
                 vat_number=re.sub(r"\s", "", settings.operator_vat) or None,
                 address=("0225", siren) if siren else None)


def _day(value) -> date | None:
    return None if value is None or pd.isna(value) else pd.Timestamp(value).date()


def einvoices(connection: Connection, invoice_ids: list[int], settings: Settings) -> dict[int, EInvoice]:
    """The electronic invoice of each issued invoice or credit note of ``invoice_ids``, by id."""
    ids = [int(i) for i in invoice_ids]
    if not ids:
        return {}
    models = {m["number"]: m for m in invoice_models(connection, ids, timezone=settings.timezone)}
    invoices = read_frame(connection, select(
        s.Invoice.id, s.Invoice.number, s.Invoice.kind, s.Invoice.period, s.Invoice.invoice_date,
        s.Invoice.due_date, s.Invoice.currency, s.Invoice.total_excl_cents, s.Invoice.total_vat_cents,
        s.Invoice.total_incl_cents, s.Invoice.credit_applied_cents, s.Invoice.corrects_invoice_id,
        s.Invoice.customer_id, s.Customer.account_number).join(s.Customer, s.Customer.id == s.Invoice.customer_id)
        .where(s.Invoice.id.in_(ids)))
    items = read_frame(connection, select(s.InvoiceItem.__table__).where(s.InvoiceItem.invoice_id.in_(ids))
                       .order_by(s.InvoiceItem.invoice_id, s.InvoiceItem.position))
    vat = read_frame(connection, select(s.InvoiceVat.__table__).where(s.InvoiceVat.invoice_id.in_(ids))
                     .order_by(s.InvoiceVat.invoice_id, s.InvoiceVat.vat_rate))
    corrected = sorted({int(c) for c in invoices["corrects_invoice_id"].dropna()})
    preceding = {int(r.id): (r.number, r.invoice_date) for r in connection.execute(select(
        s.Invoice.id, s.Invoice.number, s.Invoice.invoice_date).where(s.Invoice.id.in_(corrected or [-1])))}
    customer_ids = sorted({int(c) for c in invoices["customer_id"]})
    contacts = read_frame(connection, select(s.Contact.customer_id, s.Contact.email, s.Contact.invoice_recipient)
                          .where(s.Contact.customer_id.in_(customer_ids)).order_by(s.Contact.id))
    email_of: dict[int, str] = {}
    for c in contacts.sort_values("invoice_recipient", ascending=False, kind="stable").itertuples(index=False):
        if c.email and int(c.customer_id) not in email_of:
            email_of[int(c.customer_id)] = c.email
    mandates = read_frame(connection, select(s.Mandate.customer_id, s.Mandate.reference, s.Mandate.iban)
                          .where(s.Mandate.customer_id.in_(customer_ids), s.Mandate.status == "active")
                          .order_by(s.Mandate.signature_date))
    iban_of = {m.reference: m.iban for m in mandates.itertuples(index=False)}
    items_of = {k: g for k, g in items.groupby("invoice_id")}
    vat_of = {k: g for k, g in vat.groupby("invoice_id")}
    seller = operator_party(settings)
    out = {}
    for inv in invoices.itertuples(index=False):
        model = models[inv.number]
        if model.get("mandate") and not model["mandate"].get("iban"):
            model = {**model, "mandate": {**model["mandate"], "iban": iban_of.get(model["mandate"]["reference"])}}
        lang = model["lang"]
        sign = -1 if inv.kind == "credit_note" else 1
        # the VAT breakdowns: the model's rows (category, reason, exact amounts), else the stored rows
        rows = [v for v in model["vat"] if "base_cents" in v] or [
            {"rate_value": Decimal(str(v.vat_rate)), "base_cents": int(v.base_cents), "vat_cents": int(v.vat_cents)}
            for v in vat_of.get(inv.id, vat.iloc[0:0]).itertuples(index=False)]
        breakdowns, category_of = [], {}
        for entry in rows:
            rate = Decimal(str(entry["rate_value"]))
            category = vat_category(entry)
            reason, code = exemption_reason(entry, lang)
            category_of.setdefault(rate, category)
            breakdowns.append(VatBreakdown(category, None if category == "O" else rate, sign * int(entry["base_cents"]),
                                           sign * int(entry["vat_cents"]), reason, code))
        lines = []
        for r in items_of.get(inv.id, items.iloc[0:0]).itertuples(index=False):
            if r.type == "credit" or pd.isna(r.vat_rate):  # account credit applied: the paid amount, not a line
                continue
            rate = Decimal(str(r.vat_rate))
            cents = sign * int(r.amount_cents)
            unit = None if pd.isna(r.unit_price_cents) else sign * int(r.unit_price_cents)
            quantity, price = line_price(None if pd.isna(r.quantity) else Decimal(str(r.quantity)), unit, cents)
            start, end = _day(r.period_from), _day(r.period_to)
            detail = None
            if not pd.isna(r.calls) and not pd.isna(r.seconds):
                detail = (f"{int(r.calls)} appels, {int(r.seconds)} s" if lang == "fr"
                          else f"{int(r.calls)} calls, {int(r.seconds)} s")
            own = getattr(r, "vat_category", None)
            category = own if isinstance(own, str) and own else category_of.get(rate, "S" if rate > 0 else "E")
            lines.append(Line(str(int(r.position)), r.description, cents, quantity, price, category,
                              None if category == "O" else rate,
                              product_code=None if pd.isna(r.product_code) else (r.product_code or None),
                              period=(start, end or start) if start else None, note=detail))
        period = Period.parse(inv.period)
        starts = [p.period[0] for p in lines if p.period] + [period.start]
        ends = [p.period[1] for p in lines if p.period] + [period.end - timedelta(days=1)]
        customer = model["customer"]
        siren = buyer_siren(model)
        category = transaction_category(model, siren)
        email = email_of.get(int(inv.customer_id))
        buyer = Party(name=customer["name"], line1=customer.get("address_line1") or "",
                      line2=customer.get("address_line2") or "", postcode=customer.get("postcode") or "",
                      city=customer.get("city") or "", country=customer.get("country") or "FR", siren=siren,
                      vat_number=customer.get("vat_number") or None,
                      address=("0225", siren) if siren else (("EM", email) if email else None))
        credit_note = inv.kind == "credit_note"
        before = preceding.get(int(inv.corrects_invoice_id)) if credit_note and not pd.isna(
            inv.corrects_invoice_id) else None
        terms = None
        if credit_note:
            terms = ("Avoir déduit du prélèvement de la facture ou porté au crédit du compte client" if lang == "fr"
                     else "Credit note taken off the invoice's direct debit or credited to the customer's account")
        out[int(inv.id)] = EInvoice(
            number=inv.number, type_code=CREDIT_NOTE if credit_note else INVOICE,
            issue_date=_day(inv.invoice_date), due_date=None if credit_note else _day(inv.due_date),
            seller=seller, buyer=buyer, lines=lines, vat=breakdowns,
            total_excl_cents=sign * int(inv.total_excl_cents), total_vat_cents=sign * int(inv.total_vat_cents),
            total_incl_cents=sign * int(inv.total_incl_cents), paid_cents=int(inv.credit_applied_cents or 0),
            currency=inv.currency or "EUR", period=(min(starts), max(ends)),
            preceding=(before[0], _day(before[1])) if before else None,
            payment=payment_means(model, settings), payment_terms=terms,
            notes=notes(model, settings, category), buyer_reference=inv.account_number,
            vat_due_date_code=vat_due_date_code(model, settings), delivery=service_party(model))
    return out


def vat_due_date_code(model: dict, settings: Settings) -> str | None:
    """The VAT point date code (BT-8, UNTDID 2475) of the document: ``5`` (the issue date) when the
    operator opted to pay VAT on debits (the document's ``vat_on_debits``, kept at issue; else the
    setting), else None (services: VAT due on payment, the French default, not stated)."""
    option = model.get("vat_on_debits", getattr(settings, "vat_on_debits", None))
    return "5" if str(option).lower() in ("yes", "true", "1") else None


def facturx_level(settings: Settings) -> str:
    """The Factur-X profile of the settings (``facturx_profile``), checked
    (:func:`workbench.invoicing.einvoice.profile`)."""
    return profile(getattr(settings, "facturx_profile", "en16931"))


def _icc_profile() -> bytes:
    global ICC_PROFILE
    if ICC_PROFILE is None:
        import weasyprint

        ICC_PROFILE = (Path(weasyprint.__file__).parent / "pdf" / "sRGB2014.icc").read_bytes()
    return ICC_PROFILE


def _with_output_intent(pdf: bytes) -> bytes:
    """``pdf`` with an sRGB output intent (PDF/A: ``/OutputIntents`` with ``GTS_PDFA1``), the
    sRGB IEC 61966-2.1 profile WeasyPrint ships."""
    from pypdf import PdfReader, PdfWriter
    from pypdf.generic import (
        ArrayObject,
        DecodedStreamObject,
        DictionaryObject,
        NameObject,
        NumberObject,
        TextStringObject,
    )

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    if "/OutputIntents" not in writer._root_object:
        icc = DecodedStreamObject()
        icc.set_data(_icc_profile())
        icc[NameObject("/N")] = NumberObject(3)
        intent = DictionaryObject({
            NameObject("/Type"): NameObject("/OutputIntent"), NameObject("/S"): NameObject("/GTS_PDFA1"),
            NameObject("/OutputConditionIdentifier"): TextStringObject("sRGB IEC61966-2.1"),
            NameObject("/Info"): TextStringObject("sRGB IEC61966-2.1"),
            NameObject("/DestOutputProfile"): writer._add_object(icc)})
        writer._root_object[NameObject("/OutputIntents")] = ArrayObject([writer._add_object(intent)])
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def facturx_pdf(pdf: bytes, xml: bytes, level: str, title: str, author: str, lang: str = "fr") -> bytes:
    """The Factur-X PDF/A-3 of ``pdf`` with ``xml`` embedded as ``factur-x.xml`` (relationship
    ``Data``), its XMP metadata (``pdfaid`` part 3, the Factur-X extension schema) and an sRGB
    output intent. The factur-x library checks the XML against the XSD of ``level`` first:
    :class:`~workbench.errors.ConfigError` naming the document if it does not pass (a bug to report,
    not an input to fix)."""
    from facturx import generate_from_binary

    try:
        out = generate_from_binary(_with_output_intent(pdf), xml, flavor="factur-x", level=level, check_xsd=True,
                                   pdf_metadata={"author": author, "keywords": "Factur-X", "title": title,
                                                 "subject": title},
                                   lang="fr-FR" if lang == "fr" else "en-GB", afrelationship="data")
    except Exception as exc:  # noqa: BLE001 - the library raises bare exceptions for an XSD failure
        raise ConfigError(f"{title}: the Factur-X XML does not pass the {level} XSD ({exc})",
                          source="Factur-X", code="facturx_xsd") from None
    return out


def facturx_documents(connection: Connection, invoice_ids: list[int], pdfs: dict[str, bytes],
                      settings: Settings) -> dict[str, bytes]:
    """The Factur-X PDFs of the issued documents ``invoice_ids`` from their rendered ``pdfs`` (by
    number)."""
    level = facturx_level(settings)
    out = {}
    for invoice in einvoices(connection, invoice_ids, settings).values():
        if invoice.number in pdfs:
            out[invoice.number] = facturx_pdf(pdfs[invoice.number], cii_xml(invoice, level), level,
                                              invoice.number, settings.operator_name)
    return out
