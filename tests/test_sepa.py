"""SEPA direct debits (:mod:`workbench.sepa`): validation of identifiers, cleaning of texts,
the pain.008 files (.02 and .08, checked against the XSD and read back), and the generation of
files from the database (SQLite and PostgreSQL) into a local storage folder.

Hand calculations used below:

* creditor identifier ``FR72ZZZ123456``: national id ``123456`` + ``FR`` (F=15, R=27) + ``72``
  -> 123456152772 mod 97 = 1: valid; with ``73`` the remainder is 2: invalid;
* IBAN ``FR06 3000 6000 0112 3456 7890 188``: its ISO check digits are right (98 - 30006000011234567890188
  152700 mod 97 = 06), but its French RIB key is 88 where the bank, branch and account make 89;
* 2026-11-20 is a Friday: the next TARGET business day is Monday 2026-11-23; 2026-12-04 is a
  Friday, next business day Monday 2026-12-07; after Thursday 2026-12-24 come Christmas (25th, a
  TARGET holiday), the week-end, then Monday 2026-12-28; after Thursday 2026-04-02 come Good
  Friday, the week-end and Easter Monday, then Tuesday 2026-04-07.
"""

from __future__ import annotations

import functools
import threading
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
import xmlschema
from factories import REFERENCE, reference_folder
from sqlalchemy import Engine, func, insert, select, update

from workbench import sepa
from workbench.billing import issue_credit_note
from workbench.config import Settings
from workbench.db import schema as s
from workbench.db.frames import read_frame
from workbench.errors import ConfigError, InputError, UnavailableError
from workbench.jobs import sepa as sepa_job
from workbench.jobs.sepa import creditor_of, generate_direct_debits
from workbench.reference import load_reference
from workbench.sepa import (
    Creditor,
    build_pain008,
    collection_date,
    direct_debit_file,
    prepare_debits,
    sepa_text,
    validate_bic,
    validate_creditor_id,
    validate_iban,
)
from workbench.storage import Storage

GOOD_FR = "FR76 3000 6000 0112 3456 7890 189"
GOOD_DE = "DE89 3704 0044 0532 0130 00"
BAD_RIB_KEY = "FR06 3000 6000 0112 3456 7890 188"
CREDITOR = Creditor.of("Opérateur Exemple SAS", "FR7630006000011234567890189", "AGRIFRPP", "FR72ZZZ123456")
TODAY = date(2026, 11, 20)  # a Friday
CREATED = datetime(2026, 11, 20, 9, 0)


# ---------------------------------------------------------------------------- helpers

@functools.cache
def xsd(version: str) -> xmlschema.XMLSchema:
    """The ISO 20022 XSD vendored in ``workbench/sepa/schemas/``, loaded by the test itself with
    another validator (xmlschema; the product validates with lxml)."""
    return xmlschema.XMLSchema(str(Path(sepa.__file__).parent / "schemas" / f"{version}.xsd"))


def read_back(xml: bytes) -> dict:
    """The parts of a pain.008 file the tests check."""
    root = ET.fromstring(xml)
    header = root.find("{*}CstmrDrctDbtInitn/{*}GrpHdr")
    batches, transactions = [], []
    for info in root.findall(".//{*}PmtInf"):
        seq, day = info.findtext("{*}PmtTpInf/{*}SeqTp"), info.findtext("{*}ReqdColltnDt")
        batches.append((seq, day, info.findtext("{*}NbOfTxs"), info.findtext("{*}CtrlSum")))
        for tx in info.findall("{*}DrctDbtTxInf"):
            agent = tx.find("{*}DbtrAgt/{*}FinInstnId")
            bic = [(child.tag.split("}")[1], child.text) for child in agent if child.text]
            transactions.append({
                "end_to_end": tx.findtext("{*}PmtId/{*}EndToEndId"),
                "amount": tx.findtext("{*}InstdAmt"),
                "currency": tx.find("{*}InstdAmt").get("Ccy"),
                "mandate": tx.findtext("{*}DrctDbtTx/{*}MndtRltdInf/{*}MndtId"),
                "signed": tx.findtext("{*}DrctDbtTx/{*}MndtRltdInf/{*}DtOfSgntr"),
                "bic": bic[0] if bic else agent.findtext("{*}Othr/{*}Id"),
                "name": tx.findtext("{*}Dbtr/{*}Nm"),
                "iban": tx.findtext("{*}DbtrAcct/{*}Id/{*}IBAN"),
                "remittance": tx.findtext("{*}RmtInf/{*}Ustrd"),
                "seq": seq, "date": day,
            })
    return {
        "namespace": root.tag[1:].split("}")[0],
        "message_id": header.findtext("{*}MsgId"),
        "created": header.findtext("{*}CreDtTm"),
        "count": header.findtext("{*}NbOfTxs"),
        "sum": header.findtext("{*}CtrlSum"),
        "batches": sorted(batches),
        "transactions": sorted(transactions, key=lambda t: t["end_to_end"]),
        "creditor_id": root.findtext(".//{*}CdtrSchmeId/{*}Id/{*}PrvtId/{*}Othr/{*}Id"),
        "creditor_iban": root.findtext(".//{*}CdtrAcct/{*}Id/{*}IBAN"),
    }


def debit(number: str, cents, due: date, reference: str = "M-ALPHA-1", name: str = "Alpha SARL",
          iban: str = GOOD_FR, bic: str = "agrifrpp", collected: bool = False, **extra) -> dict:
    return {"invoice_number": number, "customer_name": name, "net_payable_cents": cents, "due_date": due,
            "mandate_reference": reference, "signature_date": date(2025, 12, 20), "iban": iban, "bic": bic,
            "already_collected": collected, **extra}


#: three good debits and six bad ones (today 2026-11-20)
DEBITS = [
    debit("F2026-000001", 3442, date(2026, 12, 1)),
    debit("F2026-000002", 1, date(2026, 11, 10)),  # past due: collected Monday 2026-11-23
    debit("F2026-000003", 100_000_001, date(2026, 12, 1), "M-BETA-1", "Béta & Fils <img src=x>", GOOD_DE, "",
          collected=True),
    debit("F2026-000004", 1556, date(2026, 12, 1), "M-DELTA-1", mandate_status="revoked"),
    debit("F2026-000005", 2500, date(2026, 12, 1), ""),
    debit("F2026-000006", 1000, date(2026, 12, 1), "M-EPS-1", iban="FR7630006000011234567890188"),
    debit("F2026-000007", 1000, date(2026, 12, 1), "M-ZETA-1", bic="AGR1FRPP"),
    debit("F2026-000008", 0, date(2026, 12, 1), "M-ETA-1"),
    debit("F2026-000009", -500, date(2026, 12, 1), "M-THETA-1"),
]


# ---------------------------------------------------------------------------- validation and text

def test_creditor_identifier_mod_97_10():
    assert validate_creditor_id("FR72ZZZ123456") == "FR72ZZZ123456"
    assert validate_creditor_id(" fr72 zzz 123456 ") == "FR72ZZZ123456"
    assert validate_creditor_id("DE98ZZZ09999999999") == "DE98ZZZ09999999999"  # the Bundesbank's sample
    assert validate_creditor_id("FR72ABC123456") == "FR72ABC123456"  # the business code is not checked
    for bad, reason in [("FR73ZZZ123456", "check digits 73 do not match"),
                        ("FR72ZZZ123457", "check digits 72 do not match"),
                        ("FR72ZZZ12345!", "expected a country code"),
                        ("7272ZZZ123456", "expected a country code"),
                        ("FR72ZZZ", "expected a country code"),
                        ("", "creditor identifier is missing")]:
        with pytest.raises(InputError, match=reason):
            validate_creditor_id(bad)


def test_iban_validation():
    assert validate_iban(GOOD_FR) == "FR7630006000011234567890189"
    assert validate_iban("de89370400440532013000") == "DE89370400440532013000"
    assert validate_iban("GB82 WEST 1234 5698 7654 32") == "GB82WEST12345698765432"  # the UK is in SEPA
    for bad, reason in [("FR7630006000011234567890188", "invalid IBAN FR7630006000011234567890188: Invalid checksum"),
                        (BAD_RIB_KEY, "invalid IBAN FR0630006000011234567890188: Invalid national checksum"),
                        ("FR76300060000112345678901", "Invalid IBAN length"),
                        ("XX7630006000011234567890189", "Unknown country-code 'XX'"),
                        ("TR330006100519786457841326", "country TR is not in the SEPA zone"),
                        ("FR76<script>", "invalid IBAN"),
                        ("", "IBAN is missing"), (None, "IBAN is missing")]:
        with pytest.raises(InputError, match=reason):
            validate_iban(bad)


def test_bic_validation():
    assert validate_bic("agrifrpp") == "AGRIFRPP"
    assert validate_bic("COBA DE FF XXX") == "COBADEFFXXX"
    for bad, reason in [("AGRIFRP", "invalid BIC AGRIFRP: Invalid length"),
                        ("AGRIFRPP1", "Invalid length"),
                        ("AGR1FRPP", "invalid BIC AGR1FRPP: Invalid structure"),
                        ("AGRIXXPP", "Invalid country code 'XX'"),
                        ("", "BIC is missing")]:
        with pytest.raises(InputError, match=reason):
            validate_bic(bad)


def test_creditor_and_version_from_settings():
    creditor = creditor_of(Settings())
    assert creditor == Creditor("OPERATEUR EXEMPLE SAS", "FR7630006000011234567890189", "AGRIFRPP", "FR72ZZZ123456",
                                sepa.PostalAddress(("12 rue de la Paix",), "75002", "Paris", "FR"))
    assert Settings().sepa_version == "pain.008.001.08"  # the 2019 version by default
    with pytest.raises(ConfigError, match="creditor address needs its town and its country"):
        creditor_of(Settings(sepa_creditor_town=""))
    assert CREDITOR.name == "Operateur Exemple SAS"
    with pytest.raises(ConfigError, match="^SEPA settings: creditor invalid creditor identifier FR73ZZZ123456: check "
                                        "digits 73 do not match"):
        creditor_of(Settings(sepa_creditor_id="FR73ZZZ123456"))
    with pytest.raises(ConfigError) as caught:
        creditor_of(Settings(sepa_creditor_id="FR73ZZZ123456", sepa_creditor_iban="FR76300060000112345678"
                                        "90188", sepa_creditor_bic="AGR1FRPP", sepa_creditor_name="😀"))
    message = str(caught.value)
    assert message.startswith("SEPA settings: ")
    for part in ("creditor name is empty", "creditor invalid IBAN", "creditor invalid BIC AGR1FRPP",
                 "creditor invalid creditor identifier FR73ZZZ123456"):
        assert part in message
    assert sepa.validate_version("pain.008.001.08") == "pain.008.001.08"
    with pytest.raises(InputError, match="'pain.008.001.03' is not supported"):
        sepa.validate_version("pain.008.001.03")


@pytest.mark.parametrize("raw, cleaned", [
    ("Élodie Müller-Łukasz & Søn", "Elodie Muller-Lukasz + Son"),
    ("Œuvres d’Ærø Straße", "Oeuvres d'Aero Strasse"),  # anyascii: Œ -> Oe, Æ -> Ae
    ("<img src=x>", "img src x"),
    ('=HYPERLINK("http://evil.example","Click")', "HYPERLINK( http://evil.example , Click )"),
    ("+33 Telecom", "33 Telecom"),
    ("-1+1", "1+1"),
    ("Café 😀 Zoé", "Cafe Zoe"),
    ("😀🎉", ""),
    ("Tab\tand\nnew  line", "Tab and new line"),
    ("C'est (bien): 1/2, ok? a.b", "C'est (bien): 1/2, ok? a.b"),
    ("Zürich <script>alert(1)</script>", "Zurich script alert(1) /script"),
    (None, ""),
    # every script is transliterated (anyascii), not dropped: a mixed-script name keeps its parts
    ("Иванов ООО Ltd", "Ivanov OOO Ltd"),
    ("Ελληνική Εταιρεία", "Elliniki Etaireia"),
    ("北京 Trading", "BeiJing Trading"),
    ("Acme \u202eLtd\u202c", "Acme Ltd"),  # a right-to-left override is not text
])
def test_names_are_cleaned_to_the_sepa_latin_set(raw, cleaned):
    assert sepa_text(raw) == cleaned


def test_texts_are_cut_to_their_maximum():
    assert sepa_text("A" * 80) == "A" * 70
    assert sepa_text("A" * 69 + " B") == "A" * 69  # cut after the space, which is dropped
    assert sepa_text("é" * 150, 140) == "e" * 140


def test_collection_date_is_the_due_date_or_the_next_business_day():
    assert collection_date(date(2026, 12, 1), TODAY) == date(2026, 12, 1)
    # a Saturday in the future: moved to the next TARGET business day, Monday 2026-11-23 (which is
    # also the earliest: Friday 2026-11-20 + 1 business day)
    assert collection_date(date(2026, 11, 21), TODAY) == date(2026, 11, 23)
    assert collection_date(date(2026, 11, 28), TODAY) == date(2026, 11, 30)  # Saturday -> Monday
    assert collection_date(TODAY, TODAY) == date(2026, 11, 23)  # due today: too late, next business day
    assert collection_date(date(2026, 10, 1), TODAY) == date(2026, 11, 23)
    assert collection_date(date(2026, 12, 1), date(2026, 12, 24)) == date(2026, 12, 28)
    assert collection_date(date(2026, 3, 1), date(2026, 4, 2)) == date(2026, 4, 7)


def test_a_file_made_on_saturday_26_december_2026_asks_for_tuesday_29():
    # TARGET closing days of 2026 around Christmas: Friday 25 (Christmas Day) and Saturday 26
    # (Christmas Holiday) December. A file made on Saturday 26 December cannot reach the bank before
    # the next TARGET business day, Monday 28 December (27 is a Sunday); the rulebook's D-1 asks
    # one more inter-bank business day: Tuesday 29 December 2026 at the earliest.
    made_on = date(2026, 12, 26)
    assert made_on.weekday() == 5 and not sepa.is_business_day(date(2026, 12, 25))
    assert sepa.sending_day(made_on) == date(2026, 12, 28)
    assert sepa.earliest_collection_date(made_on) == date(2026, 12, 29)
    # an invoice due on Monday 28 (or already past) is collected on Tuesday 29, not Monday 28
    assert collection_date(date(2026, 12, 28), made_on) == date(2026, 12, 29)
    assert collection_date(date(2026, 12, 1), made_on) == date(2026, 12, 29)
    # due on Thursday 31 December: a business day after the earliest, kept
    assert collection_date(date(2026, 12, 31), made_on) == date(2026, 12, 31)
    # due on Friday 1 January 2027 (TARGET holiday): Monday 4 January (2 and 3 are the week-end)
    assert collection_date(date(2027, 1, 1), made_on) == date(2027, 1, 4)
    # in the file itself
    made = direct_debit_file(pd.DataFrame([debit("F2026-000101", 1000, date(2026, 12, 28))]), CREDITOR, made_on,
                             "pain.008.001.08", "SDD-TEST-XMAS", datetime(2026, 12, 26, 10, 0))
    assert read_back(made.xml)["batches"] == [("FRST", "2026-12-29", "1", "10.00")]


# ---------------------------------------------------------------------------- checking debits

def test_good_and_rejected_debits_with_reasons():
    good, rejected = prepare_debits(pd.DataFrame(DEBITS), TODAY)
    assert good["invoice_number"].tolist() == ["F2026-000001", "F2026-000002", "F2026-000003"]
    assert good["amount_cents"].tolist() == [3442, 1, 100_000_001]
    assert str(good["amount_cents"].dtype) == "int64"
    # F2 is collected first (2026-11-23): it is the mandate's FRST, F1 then a RCUR; M-BETA-1 was collected
    assert good["sequence_type"].tolist() == ["RCUR", "FRST", "RCUR"]
    assert good["collection_date"].tolist() == [date(2026, 12, 1), date(2026, 11, 23), date(2026, 12, 1)]
    assert good["debtor_name"].tolist() == ["Alpha SARL", "Alpha SARL", "Beta + Fils img src x"]
    assert good["iban"].tolist() == ["FR7630006000011234567890189"] * 2 + ["DE89370400440532013000"]
    assert good["bic"].tolist() == ["AGRIFRPP", "AGRIFRPP", ""]
    assert good["remittance"].tolist() == ["Facture F2026-000001", "Facture F2026-000002", "Facture F2026-000003"]
    reasons = dict(zip(rejected["invoice_number"], rejected["reason"], strict=True))
    assert reasons == {
        "F2026-000004": "mandate M-DELTA-1 is revoked",
        "F2026-000005": "no mandate: the customer has no active SEPA mandate",
        "F2026-000006": "mandate M-EPS-1: invalid IBAN FR7630006000011234567890188: Invalid checksum digits",
        "F2026-000007": "mandate M-ZETA-1: invalid BIC AGR1FRPP: Invalid structure 'AGR1FRPP'",
        "F2026-000008": "nothing to debit: amount €0.00 is zero or negative",
        "F2026-000009": "nothing to debit: amount -€5.00 is zero or negative",
    }
    assert rejected["mandate_status"].tolist()[0] == "revoked"  # input columns are passed through
    assert rejected["code"].tolist() == ["mandate_not_active", "no_mandate", "bad_iban", "bad_bic",
                                         "nothing_to_debit", "nothing_to_debit"]


def test_more_reasons_to_reject():
    rows = [
        debit("F2026-000001", 100, date(2026, 12, 1), currency="USD"),
        debit("F2026-000001", 100, date(2026, 12, 1), "M-OTHER-1"),  # the same number again
        debit("F2026/000003/", 100, date(2026, 12, 1), "M-X"),
        debit("F2026-000004", 100, None, "M Y <z>"),
        debit("F2026-000005", 100, date(2026, 12, 1), "M-Z", name="😀"),
        {**debit("F2026-000006", 100, date(2026, 12, 1), "M-W"), "signature_date": date(2026, 11, 21)},
        debit("F2026-000007", 100, date(2026, 12, 1), "M-V", collected=None),  # good, FRST
    ]
    good, rejected = prepare_debits(pd.DataFrame(rows), TODAY)
    assert good["invoice_number"].tolist() == ["F2026-000007"]
    assert good["sequence_type"].tolist() == ["FRST"]
    reasons = rejected["reason"].tolist()
    assert reasons[0] == "currency USD is not EUR"
    assert reasons[1] == "invoice F2026-000001 is listed twice"
    assert reasons[2] == ("invoice number 'F2026/000003/' cannot be an end-to-end id: it starts or ends with '/' "
                          "or contains '//'")
    assert reasons[3] == ("the due date of the invoice is missing; invalid mandate reference 'M Y <z>': it contains "
                          "characters outside the SEPA set: '<>'")
    assert reasons[4] == "debtor name '😀' is empty in the SEPA character set"
    assert reasons[5] == "mandate M-W is signed on 2026-11-21, in the future"


def test_amounts_must_be_integer_cents():
    floats = pd.DataFrame([debit("F2026-000001", 34.42, date(2026, 12, 1))])
    good, rejected = prepare_debits(floats, TODAY)
    assert good.empty and rejected["reason"].tolist() == ["amount 34.42 is not a whole number of cents"]
    exact = pd.DataFrame([debit("F2026-000001", Decimal("3442"), date(2026, 12, 1))])
    assert prepare_debits(exact, TODAY)[0]["amount_cents"].tolist() == [3442]
    with pytest.raises(InputError, match="without the columns iban, bic"):
        prepare_debits(pd.DataFrame(DEBITS).drop(columns=["iban", "bic"]), TODAY)


# ---------------------------------------------------------------------------- the pain.008 file

@pytest.mark.parametrize("version, bic_tag", [("pain.008.001.02", "BIC"), ("pain.008.001.08", "BICFI")])
def test_the_file_validates_and_reads_back(version, bic_tag):
    made = direct_debit_file(pd.DataFrame(DEBITS), CREDITOR, TODAY, version, "SDD-TEST-0001", CREATED)
    xsd(version).validate(made.xml.decode())
    assert made.xml.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    back = read_back(made.xml)
    assert back["namespace"] == f"urn:iso:std:iso:20022:tech:xsd:{version}"
    assert (back["message_id"], back["created"]) == ("SDD-TEST-0001", "2026-11-20T09:00:00")
    # 3442 + 1 + 100000001 = 100003444 cents
    assert (back["count"], back["sum"]) == ("3", "1000034.44")
    assert (made.transactions, made.total_cents) == (3, 100_003_444)
    assert made.by_sequence() == {"FRST": (1, 1), "RCUR": (2, 100_003_443)}
    assert back["batches"] == [("FRST", "2026-11-23", "1", "0.01"), ("RCUR", "2026-12-01", "2", "1000034.43")]
    assert (back["creditor_id"], back["creditor_iban"]) == ("FR72ZZZ123456", "FR7630006000011234567890189")
    fr = (bic_tag, "AGRIFRPP")
    assert [(t["end_to_end"], t["amount"], t["currency"], t["mandate"], t["signed"], t["seq"], t["date"], t["bic"],
             t["iban"], t["name"], t["remittance"]) for t in back["transactions"]] == [
        ("F2026-000001", "34.42", "EUR", "M-ALPHA-1", "2025-12-20", "RCUR", "2026-12-01", fr,
         "FR7630006000011234567890189", "Alpha SARL", "Facture F2026-000001"),
        ("F2026-000002", "0.01", "EUR", "M-ALPHA-1", "2025-12-20", "FRST", "2026-11-23", fr,
         "FR7630006000011234567890189", "Alpha SARL", "Facture F2026-000002"),
        ("F2026-000003", "1000000.01", "EUR", "M-BETA-1", "2025-12-20", "RCUR", "2026-12-01", "NOTPROVIDED",
         "DE89370400440532013000", "Beta + Fils img src x", "Facture F2026-000003"),
    ]
    assert len(made.rejected) == 6


def test_the_xsd_check_of_the_tests_can_fail():
    made = direct_debit_file(pd.DataFrame(DEBITS[:1]), CREDITOR, TODAY, "pain.008.001.02", "SDD-TEST-0002", CREATED)
    xsd("pain.008.001.02").validate(made.xml.decode())
    broken = made.xml.replace(b"<SeqTp>FRST</SeqTp>", b"<SeqTp>ONCE</SeqTp>")
    assert broken != made.xml
    with pytest.raises(xmlschema.XMLSchemaValidationError):
        xsd("pain.008.001.02").validate(broken.decode())


def test_a_file_that_does_not_validate_is_never_returned():
    good, _ = prepare_debits(pd.DataFrame(DEBITS[:1]), TODAY)
    good.loc[0, "invoice_number"] = "F" * 36  # an end-to-end id is at most 35 characters
    with pytest.raises(InputError, match="does not validate against pain.008.001.02"):
        build_pain008(good, CREDITOR, "pain.008.001.02", "SDD-TEST-0003", CREATED)
    with pytest.raises(InputError, match="no debit to put in a SEPA file"):
        build_pain008(good.iloc[0:0], CREDITOR, "pain.008.001.02", "SDD-TEST-0003", CREATED)
    with pytest.raises(InputError, match="creditor BIC is required for pain.008.001.02"):
        build_pain008(prepare_debits(pd.DataFrame(DEBITS[:1]), TODAY)[0], replace(CREDITOR, bic=""),
                      "pain.008.001.02", "SDD-TEST-0004", CREATED)


def test_nothing_good_makes_no_file():
    made = direct_debit_file(pd.DataFrame(DEBITS[3:]), CREDITOR, TODAY, "pain.008.001.02", "SDD-TEST-0006", CREATED)
    assert made.xml is None and made.transactions == 0 and made.total_cents == 0 and len(made.rejected) == 6


# ---------------------------------------------------------------------------- from the database

NOW = datetime(2026, 11, 20, 8, 0)  # UTC; 09:00 on Friday 2026-11-20 in Paris
DECEMBER = datetime(2026, 12, 4, 8, 0)  # Friday 2026-12-04

SEPA_CUSTOMERS = [
    [account, name, "1 rue A", "", "75001", "Paris", "FR", "", "fr", method, "A", "TEST"]
    for account, name, method in [
        ("C1", "Alpha SARL", "direct_debit"), ("C2", "Beta Ltd", "transfer"), ("C3", "Gamma SAS", "direct_debit"),
        ("C4", "Délta & Fils <b>", "direct_debit"), ("C5", "Epsilon", "direct_debit"),
        ("C6", "Zêta 😀", "direct_debit")]
]
SEPA_MANDATES = [
    ["C1", "MANDATE-C1-01", "2025-12-20", GOOD_FR, "agrifrpp", "active"],
    ["C3", "MANDATE-C3-01", "2025-01-10", GOOD_FR, "agrifrpp", "revoked"],
    # listed (and so numbered) before the older one: the signature date decides, not the row id
    ["C4", "MANDATE-C4-NEW", "2026-03-01", GOOD_DE, "cobadeffxxx", "active"],  # the latest active one
    ["C4", "MANDATE-C4-OLD", "2024-01-01", "DE89370400440532013001", "COBADEFFXXX", "active"],  # bad, superseded
    ["C4", "MANDATE-C4-GONE", "2026-06-01", GOOD_DE, "COBADEFFXXX", "revoked"],  # later, but revoked
    ["C5", "MANDATE-C5-01", "2026-02-01", BAD_RIB_KEY, "AGRIFRPP", "active"],
]
#: (number, account, net payable cents, due date, period, status, kind)
OCTOBER_INVOICES = [
    ("F2026-000001", "C1", 3442, date(2026, 12, 1), "2026-10", "issued", "invoice"),
    ("F2026-000002", "C2", 17636, date(2026, 12, 1), "2026-10", "issued", "invoice"),  # pays by transfer
    ("F2026-000003", "C3", 1556, date(2026, 12, 1), "2026-10", "issued", "invoice"),  # mandate revoked
    ("F2026-000004", "C4", 5400, date(2026, 12, 1), "2026-10", "issued", "invoice"),
    ("F2026-000005", "C5", 1000, date(2026, 12, 1), "2026-10", "issued", "invoice"),  # bad IBAN
    ("F2026-000006", "C6", 2500, date(2026, 12, 1), "2026-10", "issued", "invoice"),  # no mandate
    ("F2026-000007", "C1", 0, date(2026, 12, 1), "2026-10", "issued", "invoice"),  # covered by credit
    ("A2026-000001", "C1", 5442, date(2026, 11, 15), "2026-10", "issued", "credit_note"),  # never debited
    ("PRE-1-0001", "C1", 999, date(2026, 12, 1), "2026-10", "draft", "invoice"),  # not issued
]
NOVEMBER_INVOICES = [
    ("F2026-000008", "C1", 4000, date(2027, 1, 4), "2026-11", "issued", "invoice"),
    ("F2026-000009", "C4", 123, date(2026, 11, 15), "2026-11", "issued", "invoice"),  # past due on 2026-12-04
]
FIRST_REJECTS = {
    "F2026-000003": "mandate MANDATE-C3-01 is revoked",
    "F2026-000005": "mandate MANDATE-C5-01: invalid IBAN FR0630006000011234567890188: Invalid national checksum",
    "F2026-000006": "no mandate: the customer has no active SEPA mandate",
}


def add_invoices(engine: Engine, invoices) -> dict[str, int]:
    """Insert invoice rows directly (as production would have issued them); returns number -> id."""
    with engine.begin() as connection:
        ids = dict(connection.execute(select(s.Customer.account_number, s.Customer.id)).all())
        method = dict(connection.execute(select(s.Customer.account_number, s.Customer.payment_method)).all())
        out = {}
        for number, account, cents, due, period, status, kind in invoices:
            out[number] = connection.execute(insert(s.Invoice).values(
                payment_means=method[account] if status == "issued" else None,
                run_id=None, number=number, kind=kind, status=status, customer_id=ids[account], period=period,
                invoice_date=date(2026, 11, 1), due_date=due, currency="EUR", total_excl_cents=cents,
                total_vat_cents=0, total_incl_cents=cents, credit_applied_cents=0, net_payable_cents=cents,
                issued_at=datetime(2026, 11, 1) if status == "issued" else None,
            ).returning(s.Invoice.id)).scalar_one()
    return out


#: the mandates of :data:`SEPA_MANDATES` that a reference load refuses (their IBAN): stored as a
#: database loaded before the load checked mandates would hold them
STORED_BAD_MANDATES = ("MANDATE-C4-OLD", "MANDATE-C5-01")


def load_sepa_reference(engine: Engine, folder: Path) -> None:
    """The SEPA customers and mandates: loaded from CSV, and the bad mandates inserted directly."""
    good = [m for m in SEPA_MANDATES if m[1] not in STORED_BAD_MANDATES]
    load_reference(engine, reference_folder(folder, only=["rate_plans", "customers", "mandates"],
                                            reference=REFERENCE, customers=SEPA_CUSTOMERS, mandates=good))
    with engine.begin() as connection:
        ids = dict(connection.execute(select(s.Customer.account_number, s.Customer.id)).all())
        for account, reference, signed, iban, bic, status in SEPA_MANDATES:
            if reference in STORED_BAD_MANDATES:
                connection.execute(insert(s.Mandate).values(
                    customer_id=ids[account], reference=reference, signature_date=date.fromisoformat(signed),
                    iban=iban.replace(" ", ""), bic=bic.upper(), status=status))


@pytest.fixture
def sepa_db(engine, settings, tmp_path):
    """The SEPA customers and mandates, October's invoices, and a local storage folder."""
    load_sepa_reference(engine, tmp_path / "reference")
    ids = add_invoices(engine, OCTOBER_INVOICES)
    return engine, replace(settings, storage_url=str(tmp_path / "ftp")), tmp_path / "ftp", ids


def rows(engine: Engine, table) -> pd.DataFrame:
    with engine.connect() as connection:
        return read_frame(connection, select(table).order_by(table.c.id))


def test_generation_writes_the_file_and_records_it(sepa_db):
    engine, settings, ftp, ids = sepa_db
    result = generate_direct_debits(engine, settings, NOW)
    assert result.written
    assert result.message_id.startswith("SDD-20261120-090000-") and len(result.message_id) == 28
    assert result.path == f"sepa/2026/11/{result.message_id}.xml"
    stored = ftp / "sepa" / "2026" / "11" / f"{result.message_id}.xml"
    assert result.location == str(stored)
    assert Storage(str(ftp)).list() == [result.path]
    xml = stored.read_bytes()
    xsd("pain.008.001.08").validate(xml.decode())
    back = read_back(xml)
    # F1 3442 + F4 5400 = 8842 cents; both mandates never collected: FRST, due 2026-12-01
    assert (back["message_id"], back["count"], back["sum"]) == (result.message_id, "2", "88.42")
    assert back["batches"] == [("FRST", "2026-12-01", "2", "88.42")]
    assert [(t["end_to_end"], t["amount"], t["mandate"], t["signed"], t["name"], t["iban"], t["bic"])
            for t in back["transactions"]] == [
        ("F2026-000001", "34.42", "MANDATE-C1-01", "2025-12-20", "Alpha SARL", "FR7630006000011234567890189",
         ("BICFI", "AGRIFRPP")),
        ("F2026-000004", "54.00", "MANDATE-C4-NEW", "2026-03-01", "Delta + Fils b", "DE89370400440532013000",
         ("BICFI", "COBADEFFXXX")),
    ]
    assert (result.transactions, result.total_cents, result.by_sequence) == (2, 8842, {"FRST": (2, 8842)})
    assert result.message == (f"SEPA file {result.path}: 2 debits (2 FRST), total €88.42; 3 invoices rejected")
    assert dict(zip(result.rejected["invoice_number"], result.rejected["reason"], strict=True)) == FIRST_REJECTS
    assert result.rejected["account_number"].tolist() == ["C3", "C5", "C6"]
    assert [(p.source, p.key) for p in result.problems] == [("sepa", n) for n in result.rejected["invoice_number"]]
    assert [p.code for p in result.problems] == ["mandate_not_active", "bad_iban", "no_mandate"]
    assert result.debits["invoice_number"].tolist() == ["F2026-000001", "F2026-000004"]

    files = rows(engine, s.SepaFile.__table__)
    assert [(r.id, r.message_id, r.version, r.path, r.transactions, r.total_cents) for r in files.itertuples()] == [
        (result.file_id, result.message_id, "pain.008.001.08", result.path, 2, 8842)]
    assert pd.Timestamp(files["created_at"][0]).to_pydatetime() == NOW
    debits = rows(engine, s.SepaDebit.__table__)
    assert [(r.file_id, r.invoice_id, r.mandate_reference, r.sequence_type, r.amount_cents, r.collection_date)
            for r in debits.itertuples()] == [
        (result.file_id, ids["F2026-000001"], "MANDATE-C1-01", "FRST", 3442, date(2026, 12, 1)),
        (result.file_id, ids["F2026-000004"], "MANDATE-C4-NEW", "FRST", 5400, date(2026, 12, 1)),
    ]


def test_a_second_run_debits_nothing_twice_then_recurring_debits(sepa_db):
    engine, settings, ftp, ids = sepa_db
    first = generate_direct_debits(engine, settings, NOW)
    again = generate_direct_debits(engine, settings, NOW)
    assert not again.written and again.path is None and again.transactions == 0
    assert again.message == "nothing to debit; 3 invoices rejected"
    assert dict(zip(again.rejected["invoice_number"], again.rejected["reason"], strict=True)) == FIRST_REJECTS
    assert Storage(str(ftp)).list() == [first.path]
    assert len(rows(engine, s.SepaFile.__table__)) == 1 and len(rows(engine, s.SepaDebit.__table__)) == 2

    add_invoices(engine, NOVEMBER_INVOICES)
    later = generate_direct_debits(engine, settings, DECEMBER, period="2026-11")
    assert later.path.startswith("sepa/2026/12/SDD-20261204-090000-")
    back = read_back((ftp / later.path).read_bytes())
    # 4000 + 123 = 4123; both mandates were collected in the first file: RCUR; F9 was due before
    # Friday 2026-12-04: collected Monday 2026-12-07
    assert (back["count"], back["sum"]) == ("2", "41.23")
    assert back["batches"] == [("RCUR", "2026-12-07", "1", "1.23"), ("RCUR", "2027-01-04", "1", "40.00")]
    assert [(t["end_to_end"], t["mandate"], t["seq"], t["date"]) for t in back["transactions"]] == [
        ("F2026-000008", "MANDATE-C1-01", "RCUR", "2027-01-04"),
        ("F2026-000009", "MANDATE-C4-NEW", "RCUR", "2026-12-07")]
    assert later.rejected.empty  # the period leaves October's invoices out
    assert later.by_sequence == {"RCUR": (2, 4123)}
    debits = rows(engine, s.SepaDebit.__table__)
    assert debits["sequence_type"].tolist() == ["FRST", "FRST", "RCUR", "RCUR"]
    assert sorted(Storage(str(ftp)).list()) == sorted([first.path, later.path])


def test_force_debits_named_invoices_again_in_a_new_file(sepa_db):
    engine, settings, ftp, ids = sepa_db
    first = generate_direct_debits(engine, settings, NOW)
    refused = generate_direct_debits(engine, settings, NOW, invoices=["F2026-000001"])
    assert not refused.written and refused.message == "nothing to debit; 1 invoices rejected"
    assert refused.rejected["reason"].tolist() == [
        f"already debited in SEPA file {first.message_id} (use force to debit it again)"]
    with pytest.raises(InputError, match="force debits invoices again: name a period or the invoices"):
        generate_direct_debits(engine, settings, NOW, force=True)

    forced = generate_direct_debits(engine, settings, NOW, invoices=["F2026-000001"], force=True)
    assert forced.written and forced.message_id != first.message_id
    back = read_back((ftp / forced.path).read_bytes())
    # its own earlier debit does not count: still the mandate's first collection
    assert [(t["end_to_end"], t["amount"], t["seq"]) for t in back["transactions"]] == [
        ("F2026-000001", "34.42", "FRST")]
    assert forced.rejected.empty
    assert sorted(Storage(str(ftp)).list()) == sorted([first.path, forced.path])
    files = rows(engine, s.SepaFile.__table__)
    assert files["message_id"].tolist() == [first.message_id, forced.message_id]
    debits = rows(engine, s.SepaDebit.__table__)
    # the first debit of F2026-000001 stays in the history, replaced by the forced one
    replaced = [None if pd.isna(r) else int(r) for r in debits["replaced_by_file_id"]]
    assert sorted(zip(debits["invoice_id"], debits["file_id"], replaced, strict=True), key=str) == sorted([
        (ids["F2026-000001"], first.file_id, forced.file_id), (ids["F2026-000001"], forced.file_id, None),
        (ids["F2026-000004"], first.file_id, None)], key=str)
    # debited again: refused without force, naming the current file; forced once more, two replaced rows
    again = generate_direct_debits(engine, settings, NOW, invoices=["F2026-000001"])
    assert again.rejected["reason"].tolist() == [
        f"already debited in SEPA file {forced.message_id} (use force to debit it again)"]
    third = generate_direct_debits(engine, settings, NOW, invoices=["F2026-000001"], force=True)
    debits = rows(engine, s.SepaDebit.__table__)
    mine = debits[debits["invoice_id"] == ids["F2026-000001"]]
    assert len(mine) == 3 and mine["replaced_by_file_id"].isna().sum() == 1
    assert int(mine.loc[mine["replaced_by_file_id"].isna(), "file_id"].iloc[0]) == third.file_id


def test_named_invoices_that_cannot_be_debited_are_reported(sepa_db):
    engine, settings, ftp, _ = sepa_db
    result = generate_direct_debits(engine, settings, NOW, invoices=[
        "F2026-000002", "F2026-000007", "A2026-000001", "PRE-1-0001", "F2099-000001", "F2026-000003"])
    assert not result.written and not (ftp / "sepa").exists()
    assert dict(zip(result.rejected["invoice_number"], result.rejected["reason"], strict=True)) == {
        "A2026-000001": "not an issued invoice (issued credit note)",
        "F2026-000002": "issued payable by transfer, not by direct debit",
        "F2026-000003": "mandate MANDATE-C3-01 is revoked",
        "F2026-000007": "nothing to debit: net payable €0.00",
        "F2099-000001": "unknown invoice",
        "PRE-1-0001": "not an issued invoice (draft invoice)",
    }
    assert rows(engine, s.SepaFile.__table__).empty


def test_zero_and_ineligible_invoices_are_left_out_of_a_period(sepa_db):
    engine, settings, ftp, _ = sepa_db
    result = generate_direct_debits(engine, settings, NOW, period="2026-10")
    assert result.debits["invoice_number"].tolist() == ["F2026-000001", "F2026-000004"]
    assert "F2026-000007" not in set(result.rejected["invoice_number"])
    assert generate_direct_debits(engine, settings, NOW, period="2026-09").message == "nothing to debit"


def test_pain_008_001_08_from_the_settings(sepa_db):
    engine, settings, ftp, _ = sepa_db
    result = generate_direct_debits(engine, replace(settings, sepa_version="pain.008.001.08"), NOW)
    xml = (ftp / result.path).read_bytes()
    xsd("pain.008.001.08").validate(xml.decode())
    back = read_back(xml)
    assert back["namespace"] == "urn:iso:std:iso:20022:tech:xsd:pain.008.001.08"
    assert [t["bic"] for t in back["transactions"]] == [("BICFI", "AGRIFRPP"), ("BICFI", "COBADEFFXXX")]
    assert rows(engine, s.SepaFile.__table__)["version"].tolist() == ["pain.008.001.08"]


def test_bad_settings_write_nothing(sepa_db):
    engine, settings, ftp, _ = sepa_db
    with pytest.raises(ConfigError, match="SEPA settings: creditor invalid creditor identifier FR73ZZZ123456"):
        generate_direct_debits(engine, replace(settings, sepa_creditor_id="FR73ZZZ123456"), NOW)
    with pytest.raises(ConfigError, match="setting sepa_version .*'pain.008.001.01' is not supported"):
        generate_direct_debits(engine, replace(settings, sepa_version="pain.008.001.01"), NOW)
    assert not (ftp / "sepa").exists() and rows(engine, s.SepaFile.__table__).empty


def _one_file_and_the_database_agree(engine: Engine, ftp: Path) -> None:
    """The space holds exactly one SEPA file, recorded and published, whose debits are the
    recorded ones: F1 34.42 + F4 54.00 = 88.42 EUR (2 debits), each invoice once."""
    [path] = Storage(str(ftp)).list()
    files = rows(engine, s.SepaFile.__table__)
    assert files[["path", "status", "transactions", "total_cents"]].values.tolist() == [[path, "published", 2, 8842]]
    back = read_back((ftp / path).read_bytes())
    assert (back["count"], back["sum"]) == ("2", "88.42")
    assert [t["end_to_end"] for t in back["transactions"]] == ["F2026-000001", "F2026-000004"]
    assert (ftp / path).read_bytes() == files["xml"][0]
    debits = rows(engine, s.SepaDebit.__table__)
    assert len(debits) == 2 and set(debits["file_id"]) == {files["id"][0]}


def test_a_file_that_cannot_be_stored_stays_recorded_and_the_next_run_stores_it(sepa_db, monkeypatch):
    engine, settings, ftp, _ = sepa_db

    def refuse(self, path, data):
        raise UnavailableError(f"{path}: not stored after 3 attempts (disk full)")

    with monkeypatch.context() as patch:
        patch.setattr(Storage, "put", refuse)
        with pytest.raises(UnavailableError, match=r"SEPA file sepa/2026/11/SDD-\S+\.xml \(2 debits, total €88.42\) "
                                                   r"is recorded but could not be stored .*disk full.*run `workbench "
                                                   "sepa` again"):
            generate_direct_debits(engine, settings, NOW)
    assert rows(engine, s.SepaFile.__table__)["status"].tolist() == ["publishing"]
    assert len(rows(engine, s.SepaDebit.__table__)) == 2 and Storage(str(ftp)).list() == []

    again = generate_direct_debits(engine, settings, NOW)
    assert again.transactions == 0 and again.message.endswith("; 1 files of interrupted runs finished")
    [line] = again.reconciled
    assert "recorded by an interrupted run but not stored, stored now from its record" in line
    _one_file_and_the_database_agree(engine, ftp)


def test_a_file_that_cannot_be_recorded_is_not_stored(sepa_db, monkeypatch):
    engine, settings, ftp, _ = sepa_db

    def fail(*args, **kwargs):
        raise RuntimeError("connection lost")

    monkeypatch.setattr(sepa_job, "_record", fail)
    with pytest.raises(RuntimeError, match="connection lost"):
        generate_direct_debits(engine, settings, NOW)
    assert Storage(str(ftp)).list() == []
    assert rows(engine, s.SepaFile.__table__).empty and rows(engine, s.SepaDebit.__table__).empty


def test_a_run_killed_after_storing_the_file_and_before_its_commit_never_makes_a_second_file(sepa_db, monkeypatch):
    engine, settings, ftp, _ = sepa_db
    with monkeypatch.context() as patch:
        def killed(*args, **kwargs):
            raise KeyboardInterrupt  # the process stops here: the file is in the space

        patch.setattr(sepa_job, "_mark_published", killed)
        with pytest.raises(KeyboardInterrupt):
            generate_direct_debits(engine, settings, NOW)
    [path] = Storage(str(ftp)).list()
    assert rows(engine, s.SepaFile.__table__)[["path", "status"]].values.tolist() == [[path, "publishing"]]

    again = generate_direct_debits(engine, settings, NOW)
    assert again.transactions == 0 and not again.written
    assert again.reconciled == [f"{path}: stored by an interrupted run, now recorded as published"]
    _one_file_and_the_database_agree(engine, ftp)
    assert generate_direct_debits(engine, settings, NOW).reconciled == []  # nothing left to finish


def test_a_run_killed_during_the_upload_leaves_no_partial_file_and_the_next_run_stores_the_recorded_one(
        sepa_db, monkeypatch):
    engine, settings, ftp, _ = sepa_db
    with monkeypatch.context() as patch:
        def killed_halfway(self, path, data):
            (ftp / (path + ".part")).parent.mkdir(parents=True, exist_ok=True)
            (ftp / (path + ".part")).write_bytes(data[: len(data) // 2])
            raise KeyboardInterrupt  # killed before the rename

        patch.setattr(Storage, "put", killed_halfway)
        with pytest.raises(KeyboardInterrupt):
            generate_direct_debits(engine, settings, NOW)
    [part] = Storage(str(ftp)).list()
    assert part.endswith(".xml.part")

    again = generate_direct_debits(engine, settings, NOW)
    assert again.transactions == 0
    assert again.reconciled == [f"{part}: an interrupted upload, removed",
                                f"{part[:-5]}: recorded by an interrupted run but not stored, stored now from its "
                                "record"]
    _one_file_and_the_database_agree(engine, ftp)


def test_a_sepa_process_killed_after_storing_is_finished_by_the_next_run(sepa_db, tmp_path):
    """A real process, killed (SIGKILL) once the file is stored and before it is marked
    published: the next run takes over its lock and finishes it, without a second file."""
    import os
    import signal
    import subprocess
    import sys

    engine, settings, ftp, _ = sepa_db
    marker = tmp_path / "stored"
    script = tmp_path / "sepa_run.py"
    script.write_text(f"""
import time
from pathlib import Path
from datetime import datetime
from workbench.config import Settings
from workbench.db.engine import make_engine
from workbench.jobs import sepa

def stop_here(engine, file_id):
    Path({str(marker)!r}).write_text("stored")
    time.sleep(60)  # killed meanwhile

sepa._mark_published = stop_here
settings = Settings(database_url={str(engine.url.render_as_string(hide_password=False))!r},
                    storage_url={settings.storage_url!r})
sepa.generate_direct_debits(make_engine(settings.database_url), settings, datetime(2026, 11, 20, 8, 0))
""")
    child = subprocess.Popen([sys.executable, str(script)], env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        for _ in range(600):
            if marker.exists() or child.poll() is not None:
                break
            threading.Event().wait(0.1)
        assert marker.exists(), f"the run ended with status {child.returncode} before storing"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    [path] = Storage(str(ftp)).list()
    assert rows(engine, s.SepaFile.__table__)["status"].tolist() == ["publishing"]

    again = generate_direct_debits(engine, settings, NOW)
    assert again.transactions == 0
    assert again.reconciled == [f"{path}: stored by an interrupted run, now recorded as published"]
    _one_file_and_the_database_agree(engine, ftp)


def test_a_file_in_the_space_that_nothing_records_is_reported_never_removed(sepa_db):
    engine, settings, ftp, _ = sepa_db
    Storage(str(ftp)).put("sepa/2026/10/SDD-20261020-090000-0BADF11E.xml", b"<Document/>")
    result = generate_direct_debits(engine, settings, NOW)
    assert result.unrecorded == ["sepa/2026/10/SDD-20261020-090000-0BADF11E.xml"]
    assert "recorded by no SEPA run" in result.warnings[0]
    assert len(Storage(str(ftp)).list()) == 2


def test_sepa_with_invoices_left_out_exits_3_with_the_count(sepa_db, monkeypatch, capsys):
    from workbench.cli import main

    engine, settings, ftp, _ = sepa_db
    monkeypatch.setenv("WORKBENCH_STORAGE_URL", settings.storage_url)
    url = engine.url.render_as_string(hide_password=False)
    assert main(["--database-url", url, "sepa", "--period", "2026-10"]) == 3
    # FIRST_REJECTS: F3 (revoked mandate), F5 (bad IBAN), F6 (no mandate)
    assert "incomplete: 3 invoices left out of the SEPA file, not debited" in capsys.readouterr().err


def test_two_runs_at_once_make_one_file(sepa_db):
    engine, settings, ftp, _ = sepa_db
    results, errors = [], []

    def run():
        try:
            results.append(generate_direct_debits(engine, settings, NOW))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sorted(r.transactions for r in results) == [0, 2]
    assert len(Storage(str(ftp)).list()) == 1
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(s.SepaDebit)).scalar_one() == 2


# ---------------------------------------------------------------------------- credit notes and collection

#: an invoice of 36.00 including VAT: one line of 30.00 at 20 % (VAT 6.00), of C1 who pays by
#: direct debit (mandate MANDATE-C1-01, never collected: FRST), due 2026-12-15
CREDITED = "F2026-000010"


@pytest.fixture
def credit_db(engine, settings, tmp_path):
    """The SEPA customers and mandates, and C1's invoice :data:`CREDITED` of November (nothing else)."""
    load_sepa_reference(engine, tmp_path / "reference")
    with engine.begin() as connection:
        customer = connection.execute(select(s.Customer.id).where(s.Customer.account_number == "C1")).scalar_one()
        invoice = connection.execute(insert(s.Invoice).values(
            run_id=None, number=CREDITED, kind="invoice", status="issued", customer_id=customer, period="2026-11",
            payment_means="direct_debit",
            invoice_date=date(2026, 12, 1), due_date=date(2026, 12, 15), currency="EUR", total_excl_cents=3000,
            total_vat_cents=600, total_incl_cents=3600, credit_applied_cents=0, net_payable_cents=3600,
            issued_at=datetime(2026, 12, 1)).returning(s.Invoice.id)).scalar_one()
        connection.execute(insert(s.InvoiceItem).values(
            invoice_id=invoice, position=1, type="recurring", description="Fixed line", quantity=Decimal(1),
            unit_price_cents=3000, amount_cents=3000, vat_rate=Decimal(20)))
        connection.execute(insert(s.InvoiceVat).values(invoice_id=invoice, vat_rate=Decimal(20), base_cents=3000,
                                                       vat_cents=600))
    return engine, replace(settings, storage_url=str(tmp_path / "ftp")), customer


def account_credit(engine: Engine, customer_id: int) -> int:
    """The customer's account credit left, in cents (the sum of its ledger)."""
    with engine.connect() as connection:
        return int(connection.execute(select(func.coalesce(func.sum(s.CreditEntry.amount_cents), 0))
                                      .where(s.CreditEntry.customer_id == customer_id)).scalar_one())


CREDITED_ON = datetime(2026, 12, 2, 9, 0)  # UTC; 2026-12-02 in Paris
COLLECTED_ON = datetime(2026, 12, 4, 8, 0)  # Friday 2026-12-04: the due date 2026-12-15 is kept


def test_an_invoice_credited_in_full_before_collection_is_not_debited(credit_db):
    engine, settings, customer = credit_db
    number = issue_credit_note(engine, CREDITED, "disputed", CREDITED_ON)
    with engine.connect() as connection:
        note = connection.execute(select(s.Invoice.__table__).where(s.Invoice.number == number)).one()
    # the note's 36.00 is all set against the 36.00 still to collect: none of it is account credit
    assert (note.total_incl_cents, note.collection_offset_cents) == (-3600, 3600)
    assert account_credit(engine, customer) == 0

    result = generate_direct_debits(engine, settings, COLLECTED_ON, period="2026-11")
    assert not result.written and result.transactions == 0 and result.total_cents == 0
    assert result.message == "nothing to debit" and result.rejected.empty
    assert rows(engine, s.SepaDebit.__table__).empty and rows(engine, s.SepaFile.__table__).empty
    named = generate_direct_debits(engine, settings, COLLECTED_ON, invoices=[CREDITED])
    assert not named.written and [(p.key, p.code, p.message) for p in named.problems] == [
        (CREDITED, "nothing_to_debit", "account C1: nothing to debit: net payable €36.00, €36.00 credited before "
                                       "collection")]
    assert account_credit(engine, customer) == 0  # nothing lost, nothing counted twice


def note_text(engine: Engine, settings: Settings, number: str) -> str:
    """The text of a credit note's PDF (rendered by the documents job), spaces normalised."""
    import subprocess

    from workbench.jobs.documents import invoice_pdf

    done = subprocess.run(["pdftotext", "-", "-"], input=invoice_pdf(engine, settings, number), capture_output=True,
                          check=True)
    return " ".join(done.stdout.decode().replace("\u202f", " ").replace("\xa0", " ").split())


def test_a_partial_credit_note_before_collection_lowers_the_debit(credit_db):
    engine, settings, customer = credit_db
    number = issue_credit_note(engine, CREDITED, "one week without service", CREDITED_ON, amount_cents=1200)
    with engine.connect() as connection:
        note = connection.execute(select(s.Invoice.__table__).where(s.Invoice.number == number)).one()
        items = connection.execute(select(s.InvoiceItem.type, s.InvoiceItem.amount_cents, s.InvoiceItem.vat_rate)
                                   .where(s.InvoiceItem.invoice_id == note.id)).all()
        vat = connection.execute(select(s.InvoiceVat.vat_rate, s.InvoiceVat.base_cents, s.InvoiceVat.vat_cents)
                                 .where(s.InvoiceVat.invoice_id == note.id)).all()
    # 12.00 including VAT at 20 %: 1200 x 10000 / 12000 = 1000 excl., VAT 1200 - 1000 = 200
    assert (note.total_excl_cents, note.total_vat_cents, note.total_incl_cents) == (-1000, -200, -1200)
    assert [tuple(r) for r in items] == [("adjustment", -1000, Decimal(20))]
    assert [tuple(r) for r in vat] == [(Decimal(20), -1000, -200)]
    assert note.collection_offset_cents == 1200 and account_credit(engine, customer) == 0

    result = generate_direct_debits(engine, settings, COLLECTED_ON, period="2026-11")
    # 36.00 - 12.00 = 24.00, the only debit: the file's control sum and its one transaction
    assert (result.transactions, result.total_cents, result.by_sequence) == (1, 2400, {"FRST": (1, 2400)})
    ftp = Path(settings.storage_url)
    back = read_back((ftp / result.path).read_bytes())
    assert (back["count"], back["sum"]) == ("1", "24.00")
    assert back["batches"] == [("FRST", "2026-12-15", "1", "24.00")]
    assert [(t["end_to_end"], t["amount"]) for t in back["transactions"]] == [(CREDITED, "24.00")]
    debits = rows(engine, s.SepaDebit.__table__)
    assert [(r.mandate_reference, r.amount_cents, r.collection_date) for r in debits.itertuples()] == [
        ("MANDATE-C1-01", 2400, date(2026, 12, 15))]
    assert rows(engine, s.SepaFile.__table__)["total_cents"].tolist() == [2400]
    assert account_credit(engine, customer) == 0  # the 12.00 is not also account credit
    text = note_text(engine, settings, number)
    assert f"Avoir sur la facture {CREDITED}" in text
    assert f"Déduit du prélèvement de la facture {CREDITED} : 12,00 €" in text
    assert "Porté au crédit" not in text and "Prélèvement SEPA le" not in text
    assert Storage(str(ftp)).list() == [result.path]


def test_a_credit_note_after_collection_is_account_credit(credit_db):
    engine, settings, customer = credit_db
    first = generate_direct_debits(engine, settings, COLLECTED_ON, period="2026-11")
    assert (first.transactions, first.total_cents) == (1, 3600)
    number = issue_credit_note(engine, CREDITED, "one week without service", datetime(2026, 12, 5, 9),
                               amount_cents=1200)
    with engine.connect() as connection:
        note = connection.execute(select(s.Invoice.__table__).where(s.Invoice.number == number)).one()
        entries = connection.execute(select(s.CreditEntry.amount_cents, s.CreditEntry.description)).all()
    # debited in full already: the 12.00 is account credit, for the next invoices
    assert note.collection_offset_cents == 0 and account_credit(engine, customer) == 1200
    assert [tuple(e) for e in entries] == [(1200, f"credit note {number} for {CREDITED}: one week without service")]
    text = note_text(engine, settings, number)
    assert "Porté au crédit de votre compte, déduit de vos prochaines factures : 12,00 €" in text
    assert "Déduit du prélèvement" not in text and "Prélèvement SEPA le" not in text
    again = generate_direct_debits(engine, settings, COLLECTED_ON, period="2026-11")
    assert not again.written and len(rows(engine, s.SepaDebit.__table__)) == 1


def test_a_forced_debit_after_a_credit_note_issued_after_collection_counts_each_cent_once(credit_db):
    # 36.00 debited; a note of 12.00 issued after that collection is account credit. The debit
    # comes back unpaid and is forced again: 36.00, the 12.00 staying account credit for the
    # next invoice. The customer pays 36.00 and is owed 12.00: 24.00 in all, each cent once
    engine, settings, customer = credit_db
    first = generate_direct_debits(engine, settings, COLLECTED_ON, period="2026-11")
    assert (first.transactions, first.total_cents) == (1, 3600)
    issue_credit_note(engine, CREDITED, "one week without service", datetime(2026, 12, 5, 9), amount_cents=1200)
    forced = generate_direct_debits(engine, settings, datetime(2026, 12, 7, 8), invoices=[CREDITED], force=True)
    assert (forced.transactions, forced.total_cents) == (1, 3600)
    assert account_credit(engine, customer) == 1200


def test_the_debit_amount_is_the_net_payable_less_what_was_credited():
    # 36.00 - 12.00 = 24.00; 36.00 - 36.00 = nothing to debit
    frame = pd.DataFrame([debit("F1", 3600, date(2026, 12, 15)), debit("F2", 3600, date(2026, 12, 15))])
    frame["credited_cents"] = [1200, 3600]
    good, rejected = prepare_debits(frame, TODAY)
    assert list(zip(good["invoice_number"], good["amount_cents"], strict=True)) == [("F1", 2400)]
    assert list(zip(rejected["invoice_number"], rejected["reason"], strict=True)) == [
        ("F2", "nothing to debit: net payable €36.00, €36.00 credited before collection")]


def test_a_mixed_script_name_is_transliterated_in_the_file_not_dropped():
    made = direct_debit_file(pd.DataFrame([debit("F2026-000001", 3442, date(2026, 12, 1), name="Иванов ООО Ltd")]),
                             CREDITOR, TODAY, "pain.008.001.02", "SDD-TEST-0009", CREATED)
    xsd("pain.008.001.02").validate(made.xml.decode())
    [transaction] = read_back(made.xml)["transactions"]
    assert transaction["name"] == "Ivanov OOO Ltd"  # was "Ltd": the Cyrillic words were dropped


def test_a_negative_credited_amount_never_adds_to_a_debit():
    # net payable 0.00 "less" -12.32 would debit 12.32: refused instead
    frame = pd.DataFrame([debit("F1", 0, date(2026, 12, 15))])
    frame["credited_cents"] = [-1232]
    good, rejected = prepare_debits(frame, TODAY)
    assert good.empty
    assert list(zip(rejected["code"], rejected["reason"], strict=True)) == [
        ("bad_amount", "credited amount -€12.32 is negative: what credit notes set against a collection is never "
                       "more to debit")]


# ---------------------------------------------------------------------------- SEPA as banks take it (2019 messages)

#: valid IBANs: the same bank (30006) as GOOD_FR with another account, and another bank (30004)
SAME_BANK_FR = "FR7630006000019876543210173"
OTHER_BANK_FR = "FR7630004000011234567890173"
GOOD_CH = "CH9300762011623852957"  # UBS Switzerland, bank code 00762


def test_greek_and_bulgarian_names_are_transliterated_in_the_file():
    rows = [debit("F2026-000201", 1000, date(2026, 12, 1), "M-GR-1", "Γ. Παπαδόπουλος Α.Ε."),
            debit("F2026-000202", 2000, date(2026, 12, 1), "M-BG-1", "ЕТ Иван Петров – България"),
            debit("F2026-000203", 3000, date(2026, 12, 1), "M-SYM-1", "★★★ ✓", account_number="C9")]
    made = direct_debit_file(pd.DataFrame(rows), CREDITOR, TODAY, "pain.008.001.08", "SDD-TEST-NAMES", CREATED)
    xsd("pain.008.001.08").validate(made.xml.decode())
    # anyascii: Γ -> G, Παπαδόπουλος -> Papadopoylos (ου -> oy, letter by letter), Α.Ε. -> A.E.;
    # Иван Петров -> Ivan Petrov, България -> B'lgariya (ъ -> '), the en dash -> '-'
    assert [(t["end_to_end"], t["name"]) for t in read_back(made.xml)["transactions"]] == [
        ("F2026-000201", "G. Papadopoylos A.E."), ("F2026-000202", "ET Ivan Petrov - B'lgariya")]
    # a name of symbols only has nothing left: refused, with its code (the job adds the account)
    assert made.rejected[["invoice_number", "account_number", "code"]].values.tolist() == [
        ["F2026-000203", "C9", "no_debtor_name"]]
    assert made.rejected["reason"].tolist() == ["debtor name '★★★ ✓' is empty in the SEPA character set"]


def test_addresses_are_cut_to_the_rulebook_lengths():
    address = sepa.PostalAddress.of("Ω" * 80, "", "1" * 20, "Z" * 40, "fr")
    # Ω -> O (anyascii); street lines at most 70, the town 35, the postcode 16 (the XSD's Max16Text)
    assert address == sepa.PostalAddress(("O" * 70,), "1" * 16, "Z" * 35, "FR")
    assert sepa_text("x" * 150, sepa.REMITTANCE_MAX) == "x" * 140
    assert not sepa.PostalAddress.of("1 rue A", "", "75001", "", "FR").usable  # no town: not written
    assert sepa.debtor_address_problem(sepa.PostalAddress.of("1 rue A", "", "", "", "FR")) is None  # EEA
    assert sepa.debtor_address_problem(sepa.PostalAddress.of("Bahnhofstrasse 1", "", "8001", "", "CH")) == (
        "a debtor outside the EEA (CH) needs its town in its postal address")


def _amended_debits() -> list[dict]:
    """A Swiss debtor with its address; a debtor whose IBAN changed at the same bank; one who moved to
    another bank (SMNDA); one whose mandate reference changed."""
    address = {"address_line1": "Bahnhofstrasse 1", "address_line2": "", "postcode": "8001", "city": "Zürich",
               "country": "CH"}
    fr = {"address_line1": "1 rue A", "address_line2": "Bâtiment B", "postcode": "75001", "city": "Paris",
          "country": "FR"}
    return [
        debit("F2026-000301", 1000, date(2026, 12, 1), "M-CH-1", "Zürcher AG", GOOD_CH, "", **address),
        debit("F2026-000302", 2000, date(2026, 12, 1), "M-SAME-1", iban=SAME_BANK_FR, previous_reference="M-SAME-1",
              previous_iban=GOOD_FR, last_collection_date=date(2026, 10, 1), **fr),
        debit("F2026-000303", 3000, date(2026, 12, 1), "M-MOVED-1", iban=OTHER_BANK_FR, bic="",
              previous_reference="M-MOVED-1", previous_iban=GOOD_FR, **fr),
        debit("F2026-000304", 4000, date(2026, 12, 1), "M-NEWREF-1", previous_reference="M-OLDREF-1",
              previous_iban=GOOD_FR, **fr),
    ]


def _amendments(xml: bytes) -> dict:
    root = ET.fromstring(xml)
    out = {}
    for tx in root.findall(".//{*}DrctDbtTxInf"):
        mandate = tx.find("{*}DrctDbtTx/{*}MndtRltdInf")
        address = tx.find("{*}Dbtr/{*}PstlAdr")
        out[tx.findtext("{*}PmtId/{*}EndToEndId")] = (
            mandate.findtext("{*}AmdmntInd"), mandate.findtext("{*}AmdmntInfDtls/{*}OrgnlMndtId"),
            mandate.findtext("{*}AmdmntInfDtls/{*}OrgnlDbtrAcct/{*}Id/{*}IBAN"),
            mandate.findtext("{*}AmdmntInfDtls/{*}OrgnlDbtrAcct/{*}Id/{*}Othr/{*}Id"),
            None if address is None else [(c.tag.split("}")[1], c.text) for c in address])
    return out


@pytest.mark.parametrize("version", ["pain.008.001.08", "pain.008.001.02"])
def test_addresses_and_amendments_validate_against_the_xsd_of_both_versions(version):
    made = direct_debit_file(pd.DataFrame(_amended_debits()), CREDITOR_WITH_ADDRESS, TODAY, version,
                             "SDD-TEST-AMEND", CREATED)
    assert len(made.rejected) == 0
    sepa.validate_pain008(made.xml, version)  # the product's check (lxml)
    xsd(version).validate(made.xml.decode())  # and another validator's
    fr = [("PstCd", "75001"), ("TwnNm", "Paris"), ("Ctry", "FR"), ("AdrLine", "1 rue A"), ("AdrLine", "Batiment B")]
    assert _amendments(made.xml) == {
        # the Swiss debtor: hybrid address (Zürich -> Zurich), no amendment, its first collection
        "F2026-000301": (None, None, None, None,
                         [("PstCd", "8001"), ("TwnNm", "Zurich"), ("Ctry", "CH"), ("AdrLine", "Bahnhofstrasse 1")]),
        # the IBAN changed at the same bank (30006): the original IBAN
        "F2026-000302": ("true", None, "FR7630006000011234567890189", None, fr),
        # moved to another bank (30004 after 30006): SMNDA
        "F2026-000303": ("true", None, None, "SMNDA", fr),
        # the mandate has a new reference (and the same IBAN): the original reference
        "F2026-000304": ("true", "M-OLDREF-1", None, None, fr),
    }
    back = read_back(made.xml)
    # amended mandates keep collecting: RCUR; the Swiss one is new: FRST (1000 + 2000 + 3000 + 4000)
    assert back["batches"] == [("FRST", "2026-12-01", "1", "10.00"), ("RCUR", "2026-12-01", "3", "90.00")]
    creditor = ET.fromstring(made.xml).find(".//{*}PmtInf/{*}Cdtr/{*}PstlAdr")
    assert [(c.tag.split("}")[1], c.text) for c in creditor] == [
        ("PstCd", "75002"), ("TwnNm", "Paris"), ("Ctry", "FR"), ("AdrLine", "12 rue de la Paix")]
    # no BIC: the debtor agent is NOTPROVIDED in both versions
    assert {t["end_to_end"]: t["bic"] for t in back["transactions"]}["F2026-000303"] == "NOTPROVIDED"


CREDITOR_WITH_ADDRESS = replace(CREDITOR, address=sepa.PostalAddress(("12 rue de la Paix",), "75002", "Paris", "FR"))


def test_a_swiss_debtor_without_town_is_rejected_and_a_file_that_breaks_the_xsd_is_refused():
    swiss = {**_amended_debits()[0], "city": ""}
    good, rejected = prepare_debits(pd.DataFrame([swiss]), TODAY)
    assert good.empty and rejected["code"].tolist() == ["bad_debtor_address"]
    with pytest.raises(InputError, match="does not validate against pain.008.001.08"):
        sepa.validate_pain008(b'<?xml version="1.0"?><Document xmlns="urn:iso:std:iso:20022:tech:xsd:'
                              b'pain.008.001.08"><CstmrDrctDbtInitn/></Document>', "pain.008.001.08")


def test_a_mandate_unused_for_36_months_has_expired():
    # signed 2023-06-01, last collected 2023-11-20: 36 months later is 2026-11-20, TODAY: expired
    # (a collection on 2023-11-21 keeps it until 2026-11-21: still valid today)
    assert sepa.mandate_expiry(date(2023, 6, 1), date(2023, 11, 20)) == date(2026, 11, 20)
    assert sepa.mandate_expiry(date(2023, 11, 30), None) == date(2026, 11, 30)  # never used: from its signature
    assert sepa.mandate_expiry(date(2024, 2, 29), None) == date(2027, 2, 28)  # no 29 February in 2027
    rows = [debit("F2026-000401", 1000, date(2026, 12, 1), "M-OLD-1", last_collection_date=date(2023, 11, 20)),
            debit("F2026-000402", 1000, date(2026, 12, 1), "M-OK-1", last_collection_date=date(2023, 11, 21)),
            {**debit("F2026-000403", 1000, date(2026, 12, 1), "M-NEVER-1"), "signature_date": date(2023, 11, 19)}]
    good, rejected = prepare_debits(pd.DataFrame(rows), TODAY)
    assert good["invoice_number"].tolist() == ["F2026-000402"]
    assert dict(zip(rejected["invoice_number"], rejected["reason"], strict=True)) == {
        "F2026-000401": "mandate M-OLD-1 expired on 2026-11-20: no collection for 36 months since its latest "
                        "collection on 2023-11-20 (SDD Core Rulebook 4.7.2); a new mandate must be signed",
        "F2026-000403": "mandate M-NEVER-1 expired on 2026-11-19: no collection for 36 months since its signature "
                        "on 2023-11-19, never used (SDD Core Rulebook 4.7.2); a new mandate must be signed",
    }
    assert rejected["code"].tolist() == ["mandate_expired", "mandate_expired"]


# ---------------------------------------------------------------------------- ... from the database

def _customers(*rows) -> list[list[str]]:
    return [[account, name, line, "", postcode, city, country, "", "fr", method, "A", "TEST"]
            for account, name, line, postcode, city, country, method in rows]


MANDATES_HEADER = "account_number,reference,signature_date,iban,bic,status,original_reference,last_collection_date\n"


def _load(engine: Engine, folder: Path, customers: list[list[str]], mandates: str) -> None:
    load_reference(engine, reference_folder(folder, only=["rate_plans", "customers", "mandates"],
                                            reference=REFERENCE, customers=customers,
                                            mandates=MANDATES_HEADER + mandates),
                   today=date(2026, 11, 20))


def test_a_mandate_without_bic_loads_and_is_debited(engine, settings, tmp_path):
    _load(engine, tmp_path / "ref", _customers(("C1", "Alpha SARL", "1 rue A", "75001", "Paris", "FR", "direct_debit")),
          f"C1,MANDATE-C1-01,2025-12-20,{GOOD_FR},,active,,\n")
    with engine.connect() as connection:
        assert connection.execute(select(s.Mandate.bic)).scalar_one() == ""
    add_invoices(engine, [("F2026-000001", "C1", 3442, date(2026, 12, 1), "2026-10", "issued", "invoice")])
    for version, period in (("pain.008.001.08", "2026-10"),):
        result = generate_direct_debits(engine, replace(settings, storage_url=str(tmp_path / "ftp"),
                                                        sepa_version=version), NOW, period=period)
        xml = (tmp_path / "ftp" / result.path).read_bytes()
        xsd(version).validate(xml.decode())
        assert [(t["end_to_end"], t["bic"]) for t in read_back(xml)["transactions"]] == [
            ("F2026-000001", "NOTPROVIDED")]


def test_an_invoice_issued_payable_by_transfer_stays_so_when_a_mandate_is_signed(engine, settings, tmp_path):
    from workbench.billing.runs import keep_identity

    settings = replace(settings, storage_url=str(tmp_path / "ftp"))
    _load(engine, tmp_path / "ref1", _customers(("C2", "Beta SAS", "2 rue B", "75002", "Paris", "FR", "transfer")),
          "")
    ids = add_invoices(engine, [("F2026-000010", "C2", 5000, date(2026, 12, 1), "2026-10", "draft", "invoice")])
    with engine.begin() as connection:  # issued now, as production does: payable by transfer
        connection.execute(update(s.Invoice).where(s.Invoice.id == ids["F2026-000010"]).values(status="issued"))
        keep_identity(connection, s.Invoice.id == ids["F2026-000010"])
    # the customer then pays by direct debit and signs a mandate
    _load(engine, tmp_path / "ref2", _customers(("C2", "Beta SAS", "2 rue B", "75002", "Paris", "FR",
                                                 "direct_debit")), f"C2,MANDATE-C2-01,2026-11-10,{GOOD_FR},,active,,\n")
    ids |= add_invoices(engine, [("F2026-000011", "C2", 6000, date(2026, 12, 15), "2026-11", "draft", "invoice")])
    with engine.begin() as connection:
        connection.execute(update(s.Invoice).where(s.Invoice.id == ids["F2026-000011"]).values(status="issued"))
        keep_identity(connection, s.Invoice.id == ids["F2026-000011"])
        means = dict(connection.execute(select(s.Invoice.number, s.Invoice.payment_means)).all())
    assert means == {"F2026-000010": "transfer", "F2026-000011": "direct_debit"}
    result = generate_direct_debits(engine, settings, NOW)
    assert result.debits["invoice_number"].tolist() == ["F2026-000011"] and len(result.rejected) == 0
    named = generate_direct_debits(engine, settings, NOW, invoices=["F2026-000010"])
    assert named.rejected["reason"].tolist() == ["issued payable by transfer, not by direct debit"]


def test_an_iban_change_under_the_same_mandate_is_an_amendment_once(engine, settings, tmp_path):
    settings = replace(settings, storage_url=str(tmp_path / "ftp"))
    customers = _customers(("C1", "Alpha SARL", "1 rue A", "75001", "Paris", "FR", "direct_debit"),
                           ("C3", "Gamma SAS", "3 rue C", "69001", "Lyon", "FR", "direct_debit"))
    _load(engine, tmp_path / "ref1", customers, f"C1,MANDATE-C1-01,2025-12-20,{GOOD_FR},AGRIFRPP,active,,\n"
                                                f"C3,MANDATE-C3-01,2025-12-20,{GOOD_FR},AGRIFRPP,active,,\n")
    add_invoices(engine, [("F2026-000001", "C1", 1000, date(2026, 12, 1), "2026-10", "issued", "invoice"),
                          ("F2026-000002", "C3", 2000, date(2026, 12, 1), "2026-10", "issued", "invoice")])
    first = generate_direct_debits(engine, settings, NOW)
    assert first.debits["sequence_type"].tolist() == ["FRST", "FRST"]
    # C1 moves to another bank under the same mandate; C3's mandate gets a new reference
    _load(engine, tmp_path / "ref2", customers,
          f"C1,MANDATE-C1-01,2025-12-20,{OTHER_BANK_FR},,active,,\n"
          f"C3,MANDATE-C3-01,2025-12-20,{GOOD_FR},AGRIFRPP,revoked,,\n"
          f"C3,MANDATE-C3-02,2025-12-20,{GOOD_FR},AGRIFRPP,active,MANDATE-C3-01,\n")
    add_invoices(engine, [("F2026-000003", "C1", 3000, date(2027, 1, 4), "2026-11", "issued", "invoice"),
                          ("F2026-000004", "C3", 4000, date(2027, 1, 4), "2026-11", "issued", "invoice")])
    second = generate_direct_debits(engine, settings, DECEMBER)
    xml = (tmp_path / "ftp" / second.path).read_bytes()
    xsd("pain.008.001.08").validate(xml.decode())
    assert second.debits["sequence_type"].tolist() == ["RCUR", "RCUR"]
    assert {k: v[:4] for k, v in _amendments(xml).items()} == {
        "F2026-000003": ("true", None, None, "SMNDA"), "F2026-000004": ("true", "MANDATE-C3-01", None, None)}
    debits = rows(engine, s.SepaDebit.__table__)
    assert debits["iban"].tolist() == [GOOD_FR.replace(" ", ""), GOOD_FR.replace(" ", ""), OTHER_BANK_FR,
                                       GOOD_FR.replace(" ", "")]
    # the next collection has nothing to amend
    add_invoices(engine, [("F2026-000005", "C1", 5000, date(2027, 2, 1), "2026-12", "issued", "invoice"),
                          ("F2026-000006", "C3", 6000, date(2027, 2, 1), "2026-12", "issued", "invoice")])
    third = generate_direct_debits(engine, settings, datetime(2027, 1, 5, 8, 0))
    assert {k: v[:4] for k, v in _amendments((tmp_path / "ftp" / third.path).read_bytes()).items()} == {
        "F2026-000005": (None, None, None, None), "F2026-000006": (None, None, None, None)}


def test_an_expired_mandate_is_not_debited_and_the_control_report_flags_it(engine, settings, tmp_path):
    from workbench.reads.runs import mandate_issues

    settings = replace(settings, storage_url=str(tmp_path / "ftp"))
    _load(engine, tmp_path / "ref", _customers(("C1", "Alpha SARL", "1 rue A", "75001", "Paris", "FR", "direct_debit")),
          f"C1,MANDATE-C1-01,2023-06-01,{GOOD_FR},AGRIFRPP,active,,\n")
    ids = add_invoices(engine, [("F2023-000001", "C1", 1000, date(2023, 11, 20), "2023-10", "issued", "invoice"),
                                ("F2026-000001", "C1", 2000, date(2026, 12, 1), "2026-10", "issued", "invoice")])
    with engine.begin() as connection:  # collected last on 2023-11-20
        file_id = connection.execute(insert(s.SepaFile).values(
            message_id="SDD-OLD", version="pain.008.001.02", path="sepa/2023/11/SDD-OLD.xml",
            created_at=datetime(2023, 11, 10), transactions=1, total_cents=1000).returning(s.SepaFile.id)).scalar_one()
        connection.execute(insert(s.SepaDebit).values(
            file_id=file_id, invoice_id=ids["F2023-000001"], mandate_reference="MANDATE-C1-01", sequence_type="FRST",
            amount_cents=1000, collection_date=date(2023, 11, 20), iban=GOOD_FR.replace(" ", "")))
    Storage(str(tmp_path / "ftp")).put("sepa/2023/11/SDD-OLD.xml", b"<old/>")
    result = generate_direct_debits(engine, settings, NOW)  # 2026-11-20: 36 months after 2023-11-20
    assert not result.written
    assert [(p.key, p.code) for p in result.problems] == [("F2026-000001", "mandate_expired")]
    assert str(result.problems[0]).startswith("sepa, F2026-000001: account C1: mandate MANDATE-C1-01 expired on "
                                              "2026-11-20")
    with engine.connect() as connection:
        customers = pd.DataFrame({"customer_id": [1], "payment_method": ["direct_debit"]})
        assert mandate_issues(connection, customers, date(2026, 11, 20)).tolist() == [
            result.rejected["reason"][0]]
        assert mandate_issues(connection, customers, date(2026, 11, 19)).tolist() == [""]


def test_a_direct_debit_customer_outside_the_eea_needs_its_town_at_load(engine, tmp_path):
    with pytest.raises(InputError) as caught:
        _load(engine, tmp_path / "ref", _customers(
            ("C1", "Zürcher AG", "Bahnhofstrasse 1", "8001", "", "CH", "direct_debit"),
            ("C2", "Genève SA", "Rue du Rhône 1", "1204", "", "CH", "transfer"),  # not a debtor: fine
            ("C3", "Paris SARL", "1 rue A", "", "", "FR", "direct_debit")), "")  # in the EEA: fine
    error = caught.value  # one problem: the error is that problem
    assert (error.source, error.line, error.column, error.code) == (
        "customers.csv", 2, "city", "incomplete_debtor_address")
    assert "a debtor outside the EEA (CH) needs its town" in str(caught.value)


def test_a_collection_by_the_previous_system_keeps_a_mandate_alive_and_makes_the_next_one_rcur(
        engine, settings, tmp_path):
    settings = replace(settings, storage_url=str(tmp_path / "ftp"))
    customers = _customers(("C1", "Alpha SARL", "1 rue A", "75001", "Paris", "FR", "direct_debit"),
                           ("C3", "Gamma SAS", "3 rue C", "69001", "Lyon", "FR", "direct_debit"))
    with pytest.raises(InputError, match="last_collection_date 2026-11-21 is not between the signature date"):
        _load(engine, tmp_path / "bad", customers, f"C1,MANDATE-C1-01,2020-01-15,{GOOD_FR},,active,,2026-11-21\n")
    # both signed in January 2020; C1's was collected by the previous system on 2026-09-05 (expires
    # 2029-09-05), C3's never (expired on 2023-01-15)
    _load(engine, tmp_path / "ref", customers, f"C1,MANDATE-C1-01,2020-01-15,{GOOD_FR},,active,,2026-09-05\n"
                                               f"C3,MANDATE-C3-01,2020-01-15,{GOOD_FR},,active,,\n")
    add_invoices(engine, [("F2026-000001", "C1", 1000, date(2026, 12, 1), "2026-10", "issued", "invoice"),
                          ("F2026-000002", "C3", 2000, date(2026, 12, 1), "2026-10", "issued", "invoice")])
    result = generate_direct_debits(engine, settings, NOW)
    assert result.debits[["invoice_number", "sequence_type"]].values.tolist() == [["F2026-000001", "RCUR"]]
    assert [(p.key, p.code) for p in result.problems] == [("F2026-000002", "mandate_expired")]


def test_the_migration_back_fills_the_payment_means_and_the_debited_ibans(sepa_db):
    from alembic import command

    from workbench.db.engine import alembic_config, upgrade

    engine, settings, _, ids = sepa_db
    generate_direct_debits(engine, settings, NOW)  # F1 (C1) and F4 (C4) debited
    with engine.begin() as connection:  # and F3, whose mandate was revoked since
        file_id = connection.execute(select(s.SepaFile.id)).scalar_one()
        connection.execute(insert(s.SepaDebit).values(
            file_id=file_id, invoice_id=ids["F2026-000003"], mandate_reference="MANDATE-C3-01", sequence_type="FRST",
            amount_cents=1556, collection_date=date(2026, 12, 1)))
    command.downgrade(alembic_config(engine), "0014_faults")
    upgrade(engine)
    with engine.connect() as connection:
        means = dict(connection.execute(select(s.Invoice.number, s.Invoice.payment_means)).all())
        ibans = connection.execute(select(s.SepaDebit.iban).order_by(s.SepaDebit.id)).scalars().all()
    # direct_debit: debited (F1, F3, F4) or a direct-debit customer with an active mandate signed by
    # the invoice date 2026-11-01 (F5: C5's mandate is active, its IBAN bad; F7 and A1: C1);
    # transfer: C2 pays by transfer, C6 has no mandate; none for the draft
    assert means == {"F2026-000001": "direct_debit", "F2026-000002": "transfer", "F2026-000003": "direct_debit",
                     "F2026-000004": "direct_debit", "F2026-000005": "direct_debit", "F2026-000006": "transfer",
                     "F2026-000007": "direct_debit", "A2026-000001": "direct_debit", "PRE-1-0001": None}
    # each debit gets its mandate's IBAN: C1's, C4's (MANDATE-C4-NEW), C3's
    assert ibans == ["FR7630006000011234567890189", "DE89370400440532013000", "FR7630006000011234567890189"]
