"""SEPA identifiers and text: IBAN, BIC, creditor identifier, message version, the Latin character set.

* :func:`validate_iban`, :func:`validate_bic` (schwifty) and :func:`validate_creditor_id` (ISO 7064
  mod 97-10 over the national identifier, the country code and the check digits; the 3-character
  business code is not part of the check, e.g. ``FR72ZZZ123456``) return the compact upper-case
  value or raise :class:`~workbench.errors.InputError` saying what is wrong;
* :func:`sepa_text` cleans a name or a remittance text to the SEPA Latin character set (letters
  ``a-z A-Z``, digits, ``/ - ? : ( ) . , ' +`` and space): every script is transliterated with
  anyascii (``é`` -> ``e``, ``ß`` -> ``ss``, ``Ł`` -> ``L``, ``Иванов`` -> ``Ivanov``, ``北京`` ->
  ``BeiJing``), so a mixed-script name keeps all its parts; ``&`` becomes ``+``, a symbol (an
  emoji) or any other character outside the set becomes a space, bidirectional controls vanish,
  runs of spaces are collapsed, a leading ``+`` or ``-`` is dropped (so that no spreadsheet the
  bank's tools export to reads a formula), and the text is cut to its maximum (70 for a name or
  an address line, 35 for a town, 16 for a postcode, 140 for the remittance text);
* :class:`PostalAddress`: a debtor's or the creditor's address as the file carries it (hybrid:
  town and country structured); :func:`debtor_address_problem`: a debtor outside the :data:`EEA`
  needs its town.

Sources: EPC SEPA Core Direct Debit Rulebook (character set, identifier lengths), EPC262-08
(creditor identifier), ISO 13616 (IBAN), ISO 9362 (BIC).
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass

from anyascii import anyascii
from schwifty import BIC, IBAN
from schwifty.exceptions import SchwiftyException

from workbench.errors import InputError

SEPA_VERSIONS = ("pain.008.001.02", "pain.008.001.08")


#: the 2019 message version, the one banks take since November 2023 (pain.008.001.02 stays
#: available by the ``sepa_version`` setting)
DEFAULT_VERSION = "pain.008.001.08"


#: the rulebook's lengths (EPC SDD Core Rulebook, the XSD's Max70Text, Max35Text, Max140Text,
#: Max16Text): a name, an address line or street name, a town, a remittance text, an identifier,
#: a postcode
NAME_MAX, REMITTANCE_MAX, ID_MAX = 70, 140, 35
ADDRESS_LINE_MAX, TOWN_MAX, POSTCODE_MAX = 70, 35, 16


#: the European Economic Area: the 27 EU countries (with the outermost regions that have their own
#: ISO code: French Guiana, Guadeloupe, Martinique, Réunion, Mayotte, Saint-Martin, and the Åland
#: Islands), Iceland, Liechtenstein and Norway. A debtor outside it (Switzerland, the United
#: Kingdom, Monaco, ...) must have a postal address with at least its town and country (EPC SDD
#: Core Rulebook 2023 v1.0, in force since November 2025: AT-09 for non-EEA SEPA countries)
EEA = frozenset(
    "AT BE BG CY CZ DE DK EE ES FI FR GR HR HU IE IT LT LU LV MT NL PL PT RO SE SI SK "
    "GF GP MQ RE YT MF AX IS LI NO".split())


_ALLOWED = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/-?:().,'+ ")


def _latin(character: str) -> str:
    """One character in ASCII: itself, its transliteration (anyascii: ``é`` -> ``e``, ``Ж`` ->
    ``Zh``, ``北`` -> ``Bei``), or a space for a symbol (an emoji, which anyascii would spell
    ``:grinning:``)."""
    if character.isascii():
        return "+" if character == "&" else character
    if unicodedata.category(character).startswith("S"):
        return " "
    return anyascii(character)


def sepa_text(value, max_length: int = NAME_MAX) -> str:
    """``value`` in the SEPA Latin character set, at most ``max_length`` characters (see the
    module docstring); ``""`` for nothing.

    >>> sepa_text("Société Générale & Fils <b>")
    'Societe Generale + Fils b'
    >>> sepa_text("Иванов ООО Ltd")
    'Ivanov OOO Ltd'
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    latin = "".join(_latin(c) for c in unicodedata.normalize("NFC", str(value)))
    kept = "".join(c if c in _ALLOWED else " " for c in latin)
    cleaned = " ".join(kept.split()).lstrip("+- ")
    return cleaned[:max_length].rstrip()


def _identifier_problem(value: str) -> str | None:
    """Why ``value`` cannot be a SEPA identifier (end-to-end id, mandate reference, message id)."""
    if not value:
        return "it is empty"
    if len(value) > ID_MAX:
        return f"it has {len(value)} characters, more than {ID_MAX}"
    bad = sorted({c for c in value if c not in _ALLOWED})
    if bad:
        return f"it contains characters outside the SEPA set: {''.join(bad)!r}"
    if value.startswith("/") or value.endswith("/") or "//" in value:
        return "it starts or ends with '/' or contains '//'"
    return None


def identifier_problem(value: str) -> str | None:
    """Why ``value`` cannot be a SEPA identifier (a mandate reference, an end-to-end id): at most
    35 characters of the SEPA set, no leading, trailing or double ``/``; None when it can."""
    return _identifier_problem(value)


def _compact(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return re.sub(r"\s+", "", str(value)).upper()


def validate_iban(value) -> str:
    """The compact IBAN (``FR76 3000 ...`` -> ``FR7630006...``), checked with schwifty (length,
    check digits, national structure and checksum) and in the SEPA zone; else :class:`InputError`."""
    compact = _compact(value)
    if not compact:
        raise InputError("IBAN is missing")
    try:
        iban = IBAN(compact, validate_bban=True)
    except SchwiftyException as exc:
        raise InputError(f"invalid IBAN {compact}: {exc}") from None
    if not iban.in_sepa_zone:
        raise InputError(f"invalid IBAN {compact}: country {iban.country_code} is not in the SEPA zone")
    return str(iban.compact)


def validate_bic(value) -> str:
    """The compact BIC (8 or 11 characters), checked with schwifty (SWIFT structure, country);
    else :class:`InputError`."""
    compact = _compact(value)
    if not compact:
        raise InputError("BIC is missing")
    try:
        bic = BIC(compact, enforce_swift_compliance=True)
    except SchwiftyException as exc:
        raise InputError(f"invalid BIC {compact}: {exc}") from None
    return str(bic.compact)


_CREDITOR_ID = re.compile(r"([A-Z]{2})([0-9]{2})([A-Z0-9]{3})([A-Z0-9]{1,28})")


def validate_creditor_id(value) -> str:
    """The compact SEPA creditor identifier: country code, 2 check digits, a 3-character business
    code and the national identifier; the check digits are ISO 7064 mod 97-10 of the national
    identifier followed by the country code (letters as 10..35), as for an IBAN; else
    :class:`InputError`.

    >>> validate_creditor_id("FR72 ZZZ 123456")
    'FR72ZZZ123456'
    """
    compact = _compact(value)
    if not compact:
        raise InputError("creditor identifier is missing")
    match = _CREDITOR_ID.fullmatch(compact)
    if not match:
        raise InputError(f"invalid creditor identifier {compact}: expected a country code, 2 check digits, a "
                        "3-character business code and the national identifier, e.g. FR72ZZZ123456")
    country, check, _business, national = match.groups()
    digits = "".join(str(int(c, 36)) for c in national + country + check)
    if int(digits) % 97 != 1:
        raise InputError(f"invalid creditor identifier {compact}: check digits {check} do not match "
                        "(ISO 7064 mod 97-10)")
    return compact


def validate_version(value) -> str:
    """A supported pain.008 version (``pain.008.001.02`` or ``pain.008.001.08``)."""
    version = str(value or "").strip()
    if version not in SEPA_VERSIONS:
        raise InputError(f"SEPA version {version!r} is not supported; use one of {', '.join(SEPA_VERSIONS)}")
    return version


def same_bank(iban_a: str, iban_b: str) -> bool:
    """Whether two valid IBANs are held at the same bank: same country and national bank code
    (schwifty's ``bank_code``, e.g. ``30006`` of ``FR76 3000 6000 ...``)."""
    a, b = IBAN(_compact(iban_a)), IBAN(_compact(iban_b))
    return (a.country_code, a.bank_code) == (b.country_code, b.bank_code)


@dataclass(frozen=True)
class PostalAddress:
    """A postal address as a pain.008 carries it, in the SEPA Latin set and cut to the rulebook's
    lengths: ``lines`` (at most 2 street lines of 70 characters, the street and number, a building;
    written as ``AdrLine``: the *hybrid* form), ``postcode`` (16), ``town`` (35) and ``country`` (ISO
    3166 alpha-2). Hybrid addresses (town and country structured, street lines free) are accepted by
    every SEPA bank since November 2025; a fully unstructured one (only address lines) is not.
    ``usable`` is False without a town or a country: such an address is not written at all."""

    lines: tuple[str, ...] = ()
    postcode: str = ""
    town: str = ""
    country: str = ""

    @classmethod
    def of(cls, line1=None, line2=None, postcode=None, town=None, country=None) -> PostalAddress:
        """The address of a customer's columns (``address_line1``, ``address_line2``, ``postcode``,
        ``city``, ``country``), cleaned (:func:`sepa_text`) and cut; nothing raised."""
        lines = tuple(x for x in (sepa_text(line1, ADDRESS_LINE_MAX), sepa_text(line2, ADDRESS_LINE_MAX)) if x)
        code = _compact(country)
        return cls(lines, sepa_text(postcode, POSTCODE_MAX), sepa_text(town, TOWN_MAX),
                   code if re.fullmatch(r"[A-Z]{2}", code) else "")

    @property
    def usable(self) -> bool:
        return bool(self.town and self.country)


def debtor_address_problem(address: PostalAddress) -> str | None:
    """Why ``address`` cannot be a debtor's: a debtor outside the :data:`EEA` needs at least its town
    and country (EPC SDD Core Rulebook 2023, AT-09); None when it can."""
    if not address.country:
        return "the debtor's country is missing or not an ISO country code"
    if address.country not in EEA and not address.town:
        return f"a debtor outside the EEA ({address.country}) needs its town in its postal address"
    return None


@dataclass(frozen=True)
class Creditor:
    """The creditor (the operator), validated: name cleaned, IBAN, BIC (may be empty for
    pain.008.001.08) and creditor identifier compact, and its postal address (written when
    :attr:`PostalAddress.usable`)."""

    name: str
    iban: str
    bic: str
    identifier: str
    address: PostalAddress = PostalAddress()

    @classmethod
    def of(cls, name, iban, bic, identifier, address: PostalAddress | None = None) -> Creditor:
        problems = []
        clean_name = sepa_text(name, NAME_MAX)
        if not clean_name:
            problems.append("creditor name is empty")
        checked = {}
        for key, check, raw in (("iban", validate_iban, iban), ("bic", validate_bic, bic),
                                ("identifier", validate_creditor_id, identifier)):
            if key == "bic" and not _compact(raw):
                checked[key] = ""
                continue
            try:
                checked[key] = check(raw)
            except InputError as exc:
                problems.append(f"creditor {exc}")
        if address is not None and (address.lines or address.town or address.postcode) and not address.usable:
            problems.append("creditor address needs its town and its country (ISO code)")
        if problems:
            raise InputError("; ".join(problems))
        return cls(clean_name, checked["iban"], checked["bic"], checked["identifier"], address or PostalAddress())
