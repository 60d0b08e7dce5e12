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
  bank's tools export to reads a formula), and the text is cut to its maximum (70 for a name,
  140 for the remittance text).

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


DEFAULT_VERSION = "pain.008.001.02"


NAME_MAX, REMITTANCE_MAX, ID_MAX = 70, 140, 35


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


_CREDITOR_ID = re.compile(r"([A-Z]{2})(\d{2})([A-Z0-9]{3})([A-Z0-9]{1,28})")


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


@dataclass(frozen=True)
class Creditor:
    """The creditor (the operator), validated: name cleaned, IBAN, BIC (may be empty for
    pain.008.001.08) and creditor identifier compact."""

    name: str
    iban: str
    bic: str
    identifier: str

    @classmethod
    def of(cls, name, iban, bic, identifier) -> Creditor:
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
        if problems:
            raise InputError("; ".join(problems))
        return cls(clean_name, checked["iban"], checked["bic"], checked["identifier"])
