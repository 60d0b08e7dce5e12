"""The pain.008 message (pure: frames in, bytes out).

:func:`build_pain008` writes the pain.008 XML with sepaxml (``pain.008.001.02``, the default, or
``pain.008.001.08``): one transaction per invoice, end-to-end id = invoice number, amounts in
exact integer cents, one payment information block per sequence type and collection date with its
count and control sum, validated against the XSD on export (:class:`~workbench.errors.InputError`
otherwise); :func:`direct_debit_file` checks the debits (:func:`~workbench.sepa.debits.prepare_debits`)
and builds the file of the good ones.
"""

from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import pandas as pd
from lxml import etree
from sepaxml import SepaDD

from workbench.errors import InputError
from workbench.sepa.debits import SAME_MANDATE_NEW_AGENT, _as_cents, _as_date, prepare_debits
from workbench.sepa.identifiers import Creditor, PostalAddress, _identifier_problem, validate_version

SCHEMAS = Path(__file__).parent / "schemas"


@functools.cache
def schema(version: str) -> etree.XMLSchema:
    """The XSD of a pain.008 ``version`` (``workbench/sepa/schemas/<version>.xsd``, the ISO 20022
    message definitions as published)."""
    return etree.XMLSchema(etree.parse(str(SCHEMAS / f"{validate_version(version)}.xsd")))


def validate_pain008(xml: bytes, version: str) -> None:
    """Raise :class:`InputError` naming the first problems when ``xml`` does not validate against
    the XSD of ``version``."""
    checker = schema(version)
    try:
        document = etree.fromstring(xml)
    except etree.XMLSyntaxError as exc:
        raise InputError(f"the SEPA file does not validate against {version}: {exc}") from None
    if not checker.validate(document):
        errors = "; ".join(f"line {e.line}: {e.message}" for e in list(checker.error_log)[:3])
        raise InputError(f"the SEPA file does not validate against {version}: {errors}")


class _SepaDD(SepaDD):
    """sepaxml's direct debit with our message id and creation time in the group header."""

    def __init__(self, config: dict, schema: str, message_id: str, created_at: datetime):
        self._header = (message_id, created_at)
        super().__init__(config, schema=schema, clean=False)
        self.msg_id = message_id

    def _create_header(self):
        super()._create_header()
        header = self._xml.find("CstmrDrctDbtInitn/GrpHdr")
        header.find("MsgId").text = self._header[0]
        header.find("CreDtTm").text = self._header[1].strftime("%Y-%m-%dT%H:%M:%S")


def new_message_id(now: datetime) -> str:
    """A unique message id: ``SDD-<yyyymmdd>-<hhmmss>-<8 random hex digits>`` (28 characters)."""
    return f"SDD-{now:%Y%m%d-%H%M%S}-{secrets.token_hex(4).upper()}"


def build_pain008(good: pd.DataFrame, creditor: Creditor, version: str, message_id: str,
                  created_at: datetime) -> bytes:
    """The pain.008 XML (UTF-8 bytes) of the good debits of :func:`prepare_debits`, validated
    against the version's XSD on export; raises :class:`InputError` when there is nothing to put
    in it or it does not validate. ``message_id`` (:func:`new_message_id`) and ``created_at`` (written
    as given, local time) are required: nothing here reads the clock."""
    version = validate_version(version)
    if good.empty:
        raise InputError("no debit to put in a SEPA file")
    problem = _identifier_problem(message_id)
    if problem:
        raise InputError(f"message id {message_id!r}: {problem}")
    config = {"name": creditor.name, "IBAN": creditor.iban, "batch": True, "creditor_id": creditor.identifier,
              "currency": "EUR"}
    if creditor.bic:
        config["BIC"] = creditor.bic
    elif version == "pain.008.001.02":
        raise InputError("a creditor BIC is required for pain.008.001.02")
    document = _SepaDD(config, version, message_id, created_at)
    for debit in good.to_dict("records"):
        amount = _as_cents(debit["amount_cents"])
        if amount is None or amount <= 0:
            raise InputError(f"invoice {debit['invoice_number']}: amount {debit['amount_cents']!r} is not positive "
                            "integer cents")
        payment = {
            "name": debit["debtor_name"], "IBAN": debit["iban"], "amount": amount,
            "type": debit["sequence_type"], "collection_date": _as_date(debit["collection_date"]),
            "mandate_id": debit["mandate_reference"], "mandate_date": _as_date(debit["signature_date"]),
            "description": debit["remittance"], "endtoend_id": debit["invoice_number"],
        }
        if debit.get("bic"):
            payment["BIC"] = debit["bic"]
        document.add_payment(payment)
    xml = _complete(document.export(validate=False), good, creditor)
    validate_pain008(xml, version)
    return xml


def _element(parent, tag: str, text: str | None = None):
    child = etree.SubElement(parent, f"{{{etree.QName(parent).namespace}}}{tag}")
    if text is not None:
        child.text = text
    return child


def _address(party, address: PostalAddress | None) -> None:
    """The hybrid postal address of ``address`` written after the ``Nm`` of ``party`` (``Cdtr`` or
    ``Dbtr``): ``PstCd``, ``TwnNm``, ``Ctry``, then at most 2 ``AdrLine`` (the XSD's order)."""
    if not isinstance(address, PostalAddress) or not address.usable:  # none (or NaN in a frame)
        return
    ns = etree.QName(party).namespace
    node = etree.Element(f"{{{ns}}}PstlAdr")
    if address.postcode:
        _element(node, "PstCd", address.postcode)
    _element(node, "TwnNm", address.town)
    _element(node, "Ctry", address.country)
    for line in address.lines[:2]:
        _element(node, "AdrLine", line)
    party.find(f"{{{ns}}}Nm").addnext(node)


def _amendment(mandate, original_reference: str, original_account: str) -> None:
    """``AmdmntInd`` true and the ``AmdmntInfDtls`` after the ``DtOfSgntr`` of ``mandate``
    (``MndtRltdInf``)."""
    if not (original_reference or original_account):
        return
    ns = etree.QName(mandate).namespace
    indicator = etree.Element(f"{{{ns}}}AmdmntInd")
    indicator.text = "true"
    details = etree.Element(f"{{{ns}}}AmdmntInfDtls")
    if original_reference:
        _element(details, "OrgnlMndtId", original_reference)
    if original_account:
        identifier = _element(_element(details, "OrgnlDbtrAcct"), "Id")
        if original_account == SAME_MANDATE_NEW_AGENT:
            _element(_element(identifier, "Othr"), "Id", SAME_MANDATE_NEW_AGENT)
        else:
            _element(identifier, "IBAN", original_account)
    signed = mandate.find(f"{{{ns}}}DtOfSgntr")
    signed.addnext(indicator)
    indicator.addnext(details)


def _complete(xml: bytes, good: pd.DataFrame, creditor: Creditor) -> bytes:
    """sepaxml's message with what it cannot write: the addresses and the amendments."""
    root = etree.fromstring(xml)
    ns = {"p": root.nsmap[None]}
    for party in root.findall(".//p:PmtInf/p:Cdtr", ns):
        _address(party, creditor.address)
    by_number = {str(d["invoice_number"]): d for d in good.to_dict("records")}
    for tx in root.findall(".//p:DrctDbtTxInf", ns):
        debit = by_number[tx.findtext("p:PmtId/p:EndToEndId", namespaces=ns)]
        _address(tx.find("p:Dbtr", ns), debit.get("debtor_address"))
        _amendment(tx.find("p:DrctDbtTx/p:MndtRltdInf", ns), str(debit.get("original_mandate_reference") or ""),
                   str(debit.get("original_debtor_account") or ""))
    return b'<?xml version="1.0" encoding="UTF-8"?>' + etree.tostring(root, encoding="UTF-8", xml_declaration=False)


@dataclass
class DebitFile:
    """A direct debit file made of a frame of debits: ``xml`` is None when no debit is good."""

    message_id: str
    version: str
    xml: bytes | None
    debits: pd.DataFrame
    rejected: pd.DataFrame

    @property
    def transactions(self) -> int:
        return len(self.debits)

    @property
    def total_cents(self) -> int:
        return int(sum(int(a) for a in self.debits["amount_cents"]))

    def by_sequence(self) -> dict[str, tuple[int, int]]:
        """Sequence type -> (transactions, total cents)."""
        return {seq: (int(len(group)), int(sum(int(a) for a in group["amount_cents"])))
                for seq, group in self.debits.groupby("sequence_type", sort=True)}


def direct_debit_file(debits: pd.DataFrame, creditor: Creditor, today: date, version: str, message_id: str,
                      created_at: datetime) -> DebitFile:
    """Check ``debits`` (:func:`prepare_debits`) and build the file of the good ones
    (:func:`build_pain008`)."""
    version = validate_version(version)
    good, rejected = prepare_debits(debits, today)
    xml = build_pain008(good, creditor, version, message_id, created_at) if len(good) else None
    return DebitFile(message_id, version, xml, good, rejected)

