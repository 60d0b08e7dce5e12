"""Checks of the customer columns French e-invoicing adds: the SIREN, the service address's
country, business or consumer, and the masking of called numbers.

Pure: no edge, no settings. Each check returns the value to store or raises :class:`ValueError`
whose message says what is wrong (``workbench.reference`` names the file, line and column).
"""

from __future__ import annotations

from stdnum.eu import vat as eu_vat
from stdnum.exceptions import ValidationError
from stdnum.fr import siren as fr_siren

YES, NO = {"yes", "true", "1", "y", "oui"}, {"no", "false", "0", "n", "non"}


def siren(text: str, vat_number: str | None = None) -> str | None:
    """A customer's SIREN (the French company identification number, 9 digits with a Luhn check
    digit: ``stdnum.fr.siren``), stored compact (``428 929 905`` -> ``428929905``); ``None`` when
    empty. ``ValueError`` for a number that is not one (a SIRET, 14 digits, names its first 9),
    or that does not match the customer's French VAT number (``FR`` + 2-digit key + SIREN:
    ``FR46428929905`` belongs to SIREN ``428929905``)."""
    text = (text or "").strip()
    if not text:
        return None
    compact = fr_siren.compact(text)
    if len(compact) == 14 and compact.isdigit():
        raise ValueError(f"SIREN {text!r} has 14 digits: a SIRET; the SIREN is its first 9 ({compact[:9]})")
    try:
        fr_siren.validate(compact)
    except ValidationError as exc:
        raise ValueError(f"SIREN {text!r} is not valid: {exc}") from None
    vat = eu_vat.compact(vat_number) if vat_number else ""
    if vat.upper().startswith("FR") and len(vat) == 13 and vat[4:] != compact:
        raise ValueError(f"SIREN {compact} does not match the VAT number {vat} (whose SIREN is {vat[4:]})")
    return compact


def yes_no(text: str, default: bool | None) -> bool | None:
    """``yes``/``no`` (also ``true``/``false``, ``1``/``0``, ``oui``/``non``); ``default`` when
    empty; ``ValueError`` for anything else."""
    value = (text or "").strip().lower()
    if not value:
        return default
    if value not in YES | NO:
        raise ValueError(f"{text!r} is not yes or no")
    return value in YES


def country(text: str) -> str | None:
    """An ISO 3166 alpha-2 country code, upper case (``be`` -> ``BE``); ``None`` when empty;
    ``ValueError`` for anything but two letters."""
    value = (text or "").strip().upper()
    if not value:
        return None
    if len(value) != 2 or not value.isascii() or not value.isalpha():
        raise ValueError(f"{text!r} is not a country code of two letters (ISO 3166, e.g. FR, BE, CH)")
    return value
