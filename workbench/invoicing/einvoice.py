"""The electronic invoice: an invoice or credit note as Cross Industry Invoice XML (UN/CEFACT CII
D16B), the syntax Factur-X embeds in its PDF/A-3, at the EN 16931 profile.

Pure: :class:`EInvoice` holds what the document says (amounts in integer cents, rates and
quantities as :class:`~decimal.Decimal`), :func:`cii_xml` writes it. Reading the database and
embedding the XML in the PDF are :mod:`workbench.documents.facturx`'s.

Field names follow EN 16931-1 (business terms ``BT-n`` and groups ``BG-n``); the element order is
the Factur-X 1.0 EN16931 XSD's. Rules this module keeps, by source:

* EN 16931-1 BR-CO-10/13/15/16: line total (BT-106) = sum of the line net amounts (BT-131); tax
  basis (BT-109) = BT-106 (the invoices have no document-level allowances or charges); grand
  total (BT-112) = BT-109 + BT-110; amount due (BT-115) = BT-112 - paid (BT-113, the account
  credit applied).
* A credit note (type 381) states positive amounts: the database keeps a credit note's amounts
  negative, :class:`EInvoice` takes them as the document states them (see
  :mod:`workbench.documents.facturx`).
* French rules (XP Z12-012, BR-FR-01/02): an invoice number (BT-1, and BT-25) has at most 35
  characters, letters, digits and ``+-_/`` (:func:`check_number`); BR-FR-05/06: the notes PMT
  (recovery indemnity), PMD (late-payment penalties) and AAB (early-payment discount), each once;
  BR-FR-10: the seller's SIREN (BT-30, scheme 0002); BR-FR-12/13/21: the electronic addresses of
  buyer and seller (BT-49, BT-34; scheme 0225 with the SIREN for a French business, EM an email
  otherwise); BR-FR-08: the billing framework (BT-23) ``S1``, services invoiced.
* Profiles: ``EN16931`` (default) and ``EXTENDED`` (the same XML with the extended guideline);
  MINIMUM and BASIC WL are not invoices in France (they lack the lines and the VAT breakdown)
  and are refused, as is BASIC, whose XSD has no room for some EN 16931 terms written here.

Raises :class:`~workbench.errors.InputError` (code ``bad_invoice_number``) for a number the French
rules refuse, :class:`~workbench.errors.ConfigError` for a refused profile.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from lxml import etree

from workbench.errors import ConfigError, InputError

RSM = "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
RAM = "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"
QDT = "urn:un:unece:uncefact:data:standard:QualifiedDataType:100"
UDT = "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100"
NSMAP = {"rsm": RSM, "ram": RAM, "qdt": QDT, "udt": UDT}

#: BT-24 of each profile accepted (Factur-X 1.0.07 and later)
GUIDELINES = {
    "en16931": "urn:cen.eu:en16931:2017",
    "extended": "urn:cen.eu:en16931:2017#conformant#urn:factur-x.eu:1p0:extended",
}
REFUSED_PROFILES = {
    "minimum": "MINIMUM is not an invoice in France (no lines, no VAT breakdown)",
    "basicwl": "BASIC WL is not an invoice in France (no lines)",
    "basic": "BASIC cannot carry every EN 16931 term these invoices state (use EN16931)",
}
INVOICE, CREDIT_NOTE = "380", "381"  # UNTDID 1001
#: BR-FR-01/02: at most 35 characters, letters, digits and + - _ /
NUMBER = re.compile(r"[A-Za-z0-9+\-_/]{1,35}")
BUSINESS_PROCESS = "S1"  # BT-23, French billing framework: an invoice of services, not yet paid


def profile(name: str) -> str:
    """The Factur-X profile ``name`` (case and spaces ignored: ``EN 16931``, ``en16931``) as the
    factur-x library's level name; :class:`~workbench.errors.ConfigError` for a refused one."""
    key = re.sub(r"[\s_-]", "", (name or "").lower())
    if key in GUIDELINES:
        return key
    reason = REFUSED_PROFILES.get(key, f"{name!r} is not a Factur-X profile (EN16931 or EXTENDED)")
    raise ConfigError(reason, source="setting facturx_profile (WORKBENCH_FACTURX_PROFILE)", code="bad_profile")


def check_number(number: str, what: str = "invoice number") -> str:
    """``number`` if the French rules take it as an invoice number (BR-FR-01/02: 1 to 35 letters,
    digits and ``+-_/``); else :class:`~workbench.errors.InputError` naming it."""
    if not isinstance(number, str) or not NUMBER.fullmatch(number):
        raise InputError(f"{what} {number!r} cannot be sent electronically: at most 35 characters, letters, digits "
                         "and + - _ / (French rules BR-FR-01 and BR-FR-02)", code="bad_invoice_number")
    return number


@dataclass(frozen=True)
class Party:
    """A seller (BG-4) or buyer (BG-7). ``siren``: the French registration number (BT-30/BT-47,
    scheme 0002), 9 digits or None; ``vat_number``: BT-31/BT-48; ``country``: ISO 3166-1 alpha-2;
    ``address``: the electronic address (BT-34/BT-49) as ``(scheme, value)`` or None."""

    name: str
    line1: str = ""
    line2: str = ""
    postcode: str = ""
    city: str = ""
    country: str = "FR"
    siren: str | None = None
    vat_number: str | None = None
    address: tuple[str, str] | None = None


@dataclass(frozen=True)
class Line:
    """An invoice line (BG-25): ``amount_cents`` its net amount (BT-131), ``quantity`` (BT-129)
    and ``price_cents`` (BT-146, never negative: a negative line has a negative quantity) chosen
    by :func:`line_price`; ``category`` and ``rate`` its VAT (BT-151, BT-152; rate None for O)."""

    line_id: str
    name: str
    amount_cents: int
    quantity: Decimal
    price_cents: Decimal
    category: str
    rate: Decimal | None
    product_code: str | None = None
    period: tuple[date, date] | None = None
    note: str | None = None


@dataclass(frozen=True)
class VatBreakdown:
    """A VAT breakdown (BG-23): base (BT-116) and tax (BT-117) in cents, category (BT-118: S, AE,
    O...), rate (BT-119, None for O), exemption reason text and code (BT-120, BT-121)."""

    category: str
    rate: Decimal | None
    base_cents: int
    vat_cents: int
    exemption_reason: str | None = None
    exemption_code: str | None = None


@dataclass(frozen=True)
class PaymentMeans:
    """How the invoice is paid (BG-16): ``code`` 59 (SEPA direct debit: ``mandate_reference``
    BT-89, ``creditor_id`` BT-90, ``debtor_iban`` BT-91) or 58 (SEPA credit transfer to ``iban``
    BT-84, ``bic`` BT-86)."""

    code: str
    iban: str | None = None
    bic: str | None = None
    mandate_reference: str | None = None
    creditor_id: str | None = None
    debtor_iban: str | None = None


@dataclass(frozen=True)
class EInvoice:
    """What an invoice or credit note says, as EN 16931 has it. Amounts in cents as the document
    states them (a credit note's positive); ``notes`` as ``(subject code, text)`` pairs (UNTDID
    4451: PMT, PMD, AAB, BAR...); ``preceding``: the invoice a credit note corrects, ``(number,
    issue date)`` (BT-25, BT-26); ``period``: the invoicing period (BT-73, BT-74); ``delivery``:
    where the services are delivered, when not at the buyer's address (BG-13, BG-15);
    ``vat_due_date_code``: BT-8 (``5``, the issue date: VAT on debits)."""

    number: str
    type_code: str
    issue_date: date
    due_date: date | None
    seller: Party
    buyer: Party
    lines: list[Line]
    vat: list[VatBreakdown]
    total_excl_cents: int
    total_vat_cents: int
    total_incl_cents: int
    paid_cents: int = 0
    currency: str = "EUR"
    period: tuple[date, date] | None = None
    preceding: tuple[str, date] | None = None
    payment: PaymentMeans | None = None
    payment_terms: str | None = None
    notes: list[tuple[str, str]] = field(default_factory=list)
    buyer_reference: str | None = None
    vat_due_date_code: str | None = None
    delivery: Party | None = None

    @property
    def due_cents(self) -> int:
        """BT-115 = BT-112 - BT-113 (BR-CO-16; no rounding amount)."""
        return self.total_incl_cents - self.paid_cents


def amount(cents: int | Decimal) -> str:
    """Cents as an amount of the XML, exact: ``1234`` -> ``12.34``, ``-5`` -> ``-0.05``."""
    value = Decimal(cents) / 100
    return f"{value:.2f}" if value == value.quantize(Decimal("0.01")) else format(value.normalize(), "f")


def decimal_text(value: Decimal) -> str:
    """A quantity or rate without exponent nor trailing zeros: ``Decimal('20.00')`` -> ``20``."""
    return format(Decimal(value).normalize(), "f")


def line_price(quantity: Decimal | None, unit_price_cents: int | None, amount_cents: int) -> tuple[Decimal, Decimal]:
    """``(quantity, net price in cents)`` of a line (BT-129, BT-146) such that quantity x price =
    the line's net amount exactly and the price is not negative (French rule BR-FR-DEC-03): the
    line's own quantity and unit price when they make its amount, with both signs turned for a
    negative price; else 1 (or -1 for a negative amount) at the amount's absolute value (a
    consumption line: its calls and minutes are in its description)."""
    if quantity is not None and unit_price_cents is not None:
        q, p = Decimal(quantity), Decimal(int(unit_price_cents))
        if q != 0 and q * p == amount_cents and abs(q.as_tuple().exponent) <= 4:
            return (-q, -p) if p < 0 else (q, p)
    return (Decimal(1) if amount_cents >= 0 else Decimal(-1)), Decimal(abs(amount_cents))


def _date(parent, tag: str, value: date, ns: str = UDT) -> None:
    holder = etree.SubElement(parent, f"{{{RAM}}}{tag}")
    text = etree.SubElement(holder, f"{{{ns}}}DateTimeString", format="102")
    text.text = value.strftime("%Y%m%d")


def _text(parent, tag: str, value, **attrs):
    element = etree.SubElement(parent, f"{{{RAM}}}{tag}", **attrs)
    element.text = str(value)
    return element


def _period(parent, period: tuple[date, date]) -> None:
    holder = etree.SubElement(parent, f"{{{RAM}}}BillingSpecifiedPeriod")
    _date(holder, "StartDateTime", period[0])
    _date(holder, "EndDateTime", period[1])


def _party(parent, tag: str, party: Party, with_vat: bool) -> None:
    element = etree.SubElement(parent, f"{{{RAM}}}{tag}")
    _text(element, "Name", party.name)
    if party.siren:
        legal = etree.SubElement(element, f"{{{RAM}}}SpecifiedLegalOrganization")
        _text(legal, "ID", party.siren, schemeID="0002")
    address = etree.SubElement(element, f"{{{RAM}}}PostalTradeAddress")
    if party.postcode:
        _text(address, "PostcodeCode", party.postcode)
    if party.line1:
        _text(address, "LineOne", party.line1)
    if party.line2:
        _text(address, "LineTwo", party.line2)
    if party.city:
        _text(address, "CityName", party.city)
    _text(address, "CountryID", party.country)
    if party.address:
        uri = etree.SubElement(element, f"{{{RAM}}}URIUniversalCommunication")
        _text(uri, "URIID", party.address[1], schemeID=party.address[0])
    if with_vat and party.vat_number:
        registration = etree.SubElement(element, f"{{{RAM}}}SpecifiedTaxRegistration")
        _text(registration, "ID", party.vat_number, schemeID="VA")


def _tax(parent, tag: str, category: str, rate: Decimal | None) -> etree._Element:
    tax = etree.SubElement(parent, f"{{{RAM}}}{tag}")
    _text(tax, "TypeCode", "VAT")
    _text(tax, "CategoryCode", category)
    if rate is not None:
        _text(tax, "RateApplicablePercent", decimal_text(rate))
    return tax


def cii_xml(invoice: EInvoice, level: str = "en16931") -> bytes:
    """The CII XML of ``invoice`` (UTF-8 bytes) at Factur-X ``level`` (:func:`profile`).
    :class:`~workbench.errors.InputError` for a number the French rules refuse."""
    level = profile(level)
    check_number(invoice.number)
    if invoice.preceding:
        check_number(invoice.preceding[0], "preceding invoice number")
    cur = invoice.currency
    # BR-O-02..04: an invoice outside the scope of VAT names no VAT identifier
    with_vat = not any(v.category == "O" for v in invoice.vat)

    root = etree.Element(f"{{{RSM}}}CrossIndustryInvoice", nsmap=NSMAP)
    context = etree.SubElement(root, f"{{{RSM}}}ExchangedDocumentContext")
    _text(etree.SubElement(context, f"{{{RAM}}}BusinessProcessSpecifiedDocumentContextParameter"), "ID",
          BUSINESS_PROCESS)
    _text(etree.SubElement(context, f"{{{RAM}}}GuidelineSpecifiedDocumentContextParameter"), "ID", GUIDELINES[level])

    document = etree.SubElement(root, f"{{{RSM}}}ExchangedDocument")
    _text(document, "ID", invoice.number)
    _text(document, "TypeCode", invoice.type_code)
    _date(document, "IssueDateTime", invoice.issue_date)
    for subject, content in invoice.notes:
        note = etree.SubElement(document, f"{{{RAM}}}IncludedNote")
        _text(note, "Content", content)
        _text(note, "SubjectCode", subject)

    transaction = etree.SubElement(root, f"{{{RSM}}}SupplyChainTradeTransaction")
    for line in invoice.lines:
        item = etree.SubElement(transaction, f"{{{RAM}}}IncludedSupplyChainTradeLineItem")
        line_document = etree.SubElement(item, f"{{{RAM}}}AssociatedDocumentLineDocument")
        _text(line_document, "LineID", line.line_id)
        if line.note:
            _text(etree.SubElement(line_document, f"{{{RAM}}}IncludedNote"), "Content", line.note)
        product = etree.SubElement(item, f"{{{RAM}}}SpecifiedTradeProduct")
        if line.product_code:
            _text(product, "SellerAssignedID", line.product_code)
        _text(product, "Name", line.name)
        agreement = etree.SubElement(item, f"{{{RAM}}}SpecifiedLineTradeAgreement")
        _text(etree.SubElement(agreement, f"{{{RAM}}}NetPriceProductTradePrice"), "ChargeAmount",
              amount(line.price_cents))
        delivery = etree.SubElement(item, f"{{{RAM}}}SpecifiedLineTradeDelivery")
        _text(delivery, "BilledQuantity", decimal_text(line.quantity), unitCode="C62")
        settlement = etree.SubElement(item, f"{{{RAM}}}SpecifiedLineTradeSettlement")
        _tax(settlement, "ApplicableTradeTax", line.category, line.rate)
        if line.period:
            _period(settlement, line.period)
        _text(etree.SubElement(settlement, f"{{{RAM}}}SpecifiedTradeSettlementLineMonetarySummation"),
              "LineTotalAmount", amount(line.amount_cents))

    agreement = etree.SubElement(transaction, f"{{{RAM}}}ApplicableHeaderTradeAgreement")
    if invoice.buyer_reference:
        _text(agreement, "BuyerReference", invoice.buyer_reference)
    _party(agreement, "SellerTradeParty", invoice.seller, with_vat)
    _party(agreement, "BuyerTradeParty", invoice.buyer, with_vat)
    delivery = etree.SubElement(transaction, f"{{{RAM}}}ApplicableHeaderTradeDelivery")
    if invoice.delivery is not None:
        ship_to = etree.SubElement(delivery, f"{{{RAM}}}ShipToTradeParty")
        _text(ship_to, "Name", invoice.delivery.name)
        address = etree.SubElement(ship_to, f"{{{RAM}}}PostalTradeAddress")
        for tag, value in (("PostcodeCode", invoice.delivery.postcode), ("LineOne", invoice.delivery.line1),
                           ("LineTwo", invoice.delivery.line2), ("CityName", invoice.delivery.city)):
            if value:
                _text(address, tag, value)
        _text(address, "CountryID", invoice.delivery.country)

    settlement = etree.SubElement(transaction, f"{{{RAM}}}ApplicableHeaderTradeSettlement")
    payment = invoice.payment
    if payment is not None and payment.code == "59" and payment.creditor_id:
        _text(settlement, "CreditorReferenceID", payment.creditor_id)
    _text(settlement, "InvoiceCurrencyCode", cur)
    if payment is not None:
        means = etree.SubElement(settlement, f"{{{RAM}}}SpecifiedTradeSettlementPaymentMeans")
        _text(means, "TypeCode", payment.code)
        if payment.code == "59" and payment.debtor_iban:
            _text(etree.SubElement(means, f"{{{RAM}}}PayerPartyDebtorFinancialAccount"), "IBANID",
                  payment.debtor_iban)
        if payment.code != "59" and payment.iban:
            _text(etree.SubElement(means, f"{{{RAM}}}PayeePartyCreditorFinancialAccount"), "IBANID", payment.iban)
            if payment.bic:
                _text(etree.SubElement(means, f"{{{RAM}}}PayeeSpecifiedCreditorFinancialInstitution"), "BICID",
                      payment.bic)
    for vat in invoice.vat:
        tax = etree.SubElement(settlement, f"{{{RAM}}}ApplicableTradeTax")
        _text(tax, "CalculatedAmount", amount(vat.vat_cents))
        _text(tax, "TypeCode", "VAT")
        if vat.exemption_reason:
            _text(tax, "ExemptionReason", vat.exemption_reason)
        _text(tax, "BasisAmount", amount(vat.base_cents))
        _text(tax, "CategoryCode", vat.category)
        if vat.exemption_code:
            _text(tax, "ExemptionReasonCode", vat.exemption_code)
        if invoice.vat_due_date_code:
            _text(tax, "DueDateTypeCode", invoice.vat_due_date_code)
        if vat.rate is not None:
            _text(tax, "RateApplicablePercent", decimal_text(vat.rate))
    if invoice.period:
        _period(settlement, invoice.period)
    if invoice.payment_terms or invoice.due_date or (payment is not None and payment.mandate_reference):
        terms = etree.SubElement(settlement, f"{{{RAM}}}SpecifiedTradePaymentTerms")
        if invoice.payment_terms:
            _text(terms, "Description", invoice.payment_terms)
        if invoice.due_date:
            _date(terms, "DueDateDateTime", invoice.due_date)
        if payment is not None and payment.code == "59" and payment.mandate_reference:
            _text(terms, "DirectDebitMandateID", payment.mandate_reference)
    totals = etree.SubElement(settlement, f"{{{RAM}}}SpecifiedTradeSettlementHeaderMonetarySummation")
    _text(totals, "LineTotalAmount", amount(sum(line.amount_cents for line in invoice.lines)))
    _text(totals, "TaxBasisTotalAmount", amount(invoice.total_excl_cents))
    _text(totals, "TaxTotalAmount", amount(invoice.total_vat_cents), currencyID=cur)
    _text(totals, "GrandTotalAmount", amount(invoice.total_incl_cents))
    if invoice.paid_cents:
        _text(totals, "TotalPrepaidAmount", amount(invoice.paid_cents))
    _text(totals, "DuePayableAmount", amount(invoice.due_cents))
    if invoice.preceding:
        reference = etree.SubElement(settlement, f"{{{RAM}}}InvoiceReferencedDocument")
        _text(reference, "IssuerAssignedID", invoice.preceding[0])
        _date(reference, "FormattedIssueDateTime", invoice.preceding[1], ns=QDT)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _cents(text: str | None) -> int:
    """An amount of the XML in cents (exact; at most 2 decimals, as written by :func:`amount`)."""
    value = Decimal(text or "0") * 100
    if value != value.to_integral_value():
        raise InputError(f"amount {text!r} has more than 2 decimals", code="bad_amount")
    return int(value)


def summary(xml: bytes) -> dict:
    """What a platform export says of one CII document, read from its XML: ``number``,
    ``type_code``, ``issue_date`` (date), ``buyer_name``, ``buyer_siren`` (BT-47 or None),
    ``buyer_reference`` (BT-10, the account), ``category`` (the BAR note: B2B, B2BINT, B2C),
    ``currency``, ``excl``, ``vat``, ``incl``, ``due`` (BT-109, BT-110, BT-112, BT-115, in cents,
    as the document states them) and ``breakdown``: ``(category, rate or None, base cents, VAT
    cents)`` per VAT breakdown. ``sign`` is -1 for a credit note (381), whose amounts reduce the
    period's, 1 otherwise."""
    root = etree.fromstring(xml)

    def one(path: str) -> str | None:
        found = root.xpath(path, namespaces=NSMAP)
        return str(found[0]) if found else None

    settlement = "/rsm:CrossIndustryInvoice/rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeSettlement"
    totals = f"{settlement}/ram:SpecifiedTradeSettlementHeaderMonetarySummation"
    buyer = ("/rsm:CrossIndustryInvoice/rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeAgreement/"
             "ram:BuyerTradeParty")
    issued = one("/rsm:CrossIndustryInvoice/rsm:ExchangedDocument/ram:IssueDateTime/udt:DateTimeString/text()")
    breakdown = []
    for tax in root.xpath(f"{settlement}/ram:ApplicableTradeTax", namespaces=NSMAP):
        rate = tax.findtext(f"{{{RAM}}}RateApplicablePercent")
        breakdown.append((tax.findtext(f"{{{RAM}}}CategoryCode"), None if rate is None else Decimal(rate),
                          _cents(tax.findtext(f"{{{RAM}}}BasisAmount")),
                          _cents(tax.findtext(f"{{{RAM}}}CalculatedAmount"))))
    type_code = one("/rsm:CrossIndustryInvoice/rsm:ExchangedDocument/ram:TypeCode/text()")
    return {
        "number": one("/rsm:CrossIndustryInvoice/rsm:ExchangedDocument/ram:ID/text()"),
        "type_code": type_code, "sign": -1 if type_code == CREDIT_NOTE else 1,
        "issue_date": date(int(issued[:4]), int(issued[4:6]), int(issued[6:8])),
        "buyer_name": one(f"{buyer}/ram:Name/text()"),
        "buyer_siren": one(f"{buyer}/ram:SpecifiedLegalOrganization/ram:ID[@schemeID='0002']/text()"),
        "buyer_reference": one("/rsm:CrossIndustryInvoice/rsm:SupplyChainTradeTransaction/"
                               "ram:ApplicableHeaderTradeAgreement/ram:BuyerReference/text()"),
        "category": one("/rsm:CrossIndustryInvoice/rsm:ExchangedDocument/ram:IncludedNote[ram:SubjectCode='BAR']/"
                        "ram:Content/text()"),
        "currency": one(f"{settlement}/ram:InvoiceCurrencyCode/text()"),
        "excl": _cents(one(f"{totals}/ram:TaxBasisTotalAmount/text()")),
        "vat": _cents(one(f"{totals}/ram:TaxTotalAmount/text()")),
        "incl": _cents(one(f"{totals}/ram:GrandTotalAmount/text()")),
        "due": _cents(one(f"{totals}/ram:DuePayableAmount/text()")),
        "breakdown": breakdown,
    }


def ereporting_rows(summaries: list[dict]) -> list[dict]:
    """The e-reporting summary of documents not e-invoiced (customers without a SIREN: consumers
    B2C, businesses abroad B2BINT): one row per issue day, treatment, currency, VAT category and
    rate, with ``documents`` (how many), ``excl_cents`` and ``vat_cents`` summed, credit notes
    counted negative; sorted by those keys (a rate None, outside the scope of VAT, first)."""
    rows: dict[tuple, dict] = {}
    for doc in summaries:
        for category, rate, base, vat in doc["breakdown"]:
            key = (doc["issue_date"], doc["category"] or "", doc["currency"], category,
                   Decimal(-1) if rate is None else rate)
            row = rows.setdefault(key, {"date": doc["issue_date"], "treatment": doc["category"] or "",
                                        "currency": doc["currency"], "vat_category": category, "vat_rate": rate,
                                        "documents": set(), "excl_cents": 0, "vat_cents": 0})
            row["documents"].add(doc["number"])
            row["excl_cents"] += doc["sign"] * base
            row["vat_cents"] += doc["sign"] * vat
    return [{**rows[k], "documents": len(rows[k]["documents"])} for k in sorted(rows)]
