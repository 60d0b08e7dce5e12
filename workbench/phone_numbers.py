"""Telephone numbers to E.164.

Switches and carriers write numbers as dialled (``0612345678``), with the international prefix
(``0044...``), in E.164 (``+4420...``) or as bare international digits (``4420...``). All become
E.164 text with a leading ``+``:

* spaces, dots, dashes and brackets are dropped, and so is a bracketed trunk zero (``+33 (0)6...``);
* ``+`` or ``00`` start an international number;
* one leading ``0`` starts a national number of the home country (``0612345678`` ->
  ``+33612345678`` for France);
* digits with no prefix are taken as international digits already (the carriers' usual form).

The result is then checked and written by ``phonenumbers`` (a possible number for its country
code, 15 digits at most, and a trunk zero kept after the country code dropped where the country
drops it: ``+33 06 12 34 56 78`` is ``+33612345678``); anything else is a bad number. Lines
(reference data) and CDRs go through this same function. Work is done once per distinct number, so a month
of calls costs as much as its distinct numbers.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc

HOME_COUNTRY_CODE = "33"
_SEPARATORS = r"[\s.\-()/]"


@functools.lru_cache(maxsize=1_000_000)
def _canonical(e164: str) -> str | None:
    """The number as phonenumbers writes it in E.164 (a national trunk zero kept after the
    country code is dropped where the country drops it: ``+330612345678`` -> ``+33612345678``,
    while Italy's ``+3906...`` keeps its zero), or None if it is not a possible number."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _normalise_slowly(numbers: pd.Series, home_country_code: str) -> pd.Series:
    """:func:`normalise` one distinct number at a time through phonenumbers: the reference
    implementation, used for the values the vectorised path leaves (text that is not ASCII)."""
    codes, uniques = pd.factorize(numbers.astype("string"), use_na_sentinel=True)
    # "+33 (0)6 12..." writes the national trunk 0 in brackets after the country code: it is dropped
    raw = pd.Series(uniques, dtype="string").str.replace("(0)", "", regex=False).str.replace(_SEPARATORS, "",
                                                                                           regex=True)
    digits = raw.str.removeprefix("+")
    international = raw.str.startswith("+") | raw.str.startswith("00")
    digits = digits.where(~raw.str.startswith("00"), raw.str.slice(2))
    national = ~international & raw.str.startswith("0")
    digits = digits.where(~national, home_country_code + raw.str.slice(1))
    well_formed = digits.str.fullmatch(r"[1-9]\d{5,14}").fillna(False).astype(bool)
    candidates = ("+" + digits).where(well_formed)
    cleaned = np.array([_canonical(c) if isinstance(c, str) else None for c in candidates.tolist()], dtype=object)
    out = np.empty(len(codes), dtype=object)
    valid = codes >= 0
    out[valid] = cleaned[codes[valid]]
    out[~valid] = None
    return pd.Series(out, index=numbers.index, dtype="string")


#: the ASCII characters Python's ``\s`` matches (what ``_SEPARATORS`` drops), for Arrow's RE2
_ASCII_SEPARATORS = r"[\t\n\x0b\x0c\r\x1c-\x1f .\-()/]"
_NSN_LENGTHS = 18  # national significant numbers of 0 to 17 digits (phonenumbers' maximum)


@dataclass(frozen=True)
class _CountryRules:
    """What phonenumbers does with ``+<code><rest>`` for one country calling code, as data:
    ``prefix`` its national prefix for parsing (a regular expression matched at the start of the
    rest; a match means a national prefix may be stripped), ``literal`` that prefix when it is
    plain digits without a transform rule (the only stripping done here, the rest goes to
    phonenumbers), ``general`` the pattern of the country's national numbers, ``possible[n]``
    whether a national number of ``n`` digits is a possible number, ``strippable[n]`` whether a
    number of ``n`` digits left after stripping the prefix is kept stripped."""

    code: str
    prefix: str | None
    literal: str | None
    general: str
    possible: np.ndarray
    strippable: np.ndarray


@functools.cache
def _country_rules() -> dict[str, _CountryRules]:
    """The rules of every country calling code phonenumbers knows, read from its metadata."""
    from phonenumbers import PhoneMetadata
    from phonenumbers.phonenumberutil import (
        COUNTRY_CODE_TO_REGION_CODE,
        ValidationResult,
        _test_number_length,
        region_code_for_country_code,
    )

    rules = {}
    for code in COUNTRY_CODE_TO_REGION_CODE:
        metadata = PhoneMetadata.metadata_for_region_or_calling_code(code, region_code_for_country_code(code))
        if metadata is None:  # pragma: no cover - every known code has metadata
            continue
        lengths = [_test_number_length("9" * n, metadata) for n in range(_NSN_LENGTHS)]
        possible = np.array([r in (ValidationResult.IS_POSSIBLE, ValidationResult.IS_POSSIBLE_LOCAL_ONLY)
                             for r in lengths])
        possible[:2] = False  # phonenumbers refuses national numbers under 2 digits
        strippable = np.array([r not in (ValidationResult.TOO_SHORT, ValidationResult.IS_POSSIBLE_LOCAL_ONLY,
                                         ValidationResult.INVALID_LENGTH) for r in lengths])
        prefix = metadata.national_prefix_for_parsing or None
        literal = prefix if prefix and prefix.isascii() and prefix.isdigit() and not (
            metadata.national_prefix_transform_rule) else None
        general = (metadata.general_desc.national_number_pattern or "") if metadata.general_desc else None
        if general is None:
            literal = None  # never viable: left to phonenumbers
        rules[str(code)] = _CountryRules(str(code), prefix, literal, general or "", possible, strippable)
    return rules


def _regex(values: pa.Array, pattern: str) -> np.ndarray | None:
    """``pattern`` matched by Arrow's RE2 (no Python call per value); None if RE2 cannot compile it."""
    try:
        return pc.match_substring_regex(values, pattern).fill_null(False).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # pragma: no cover - phonenumbers' patterns are RE2's
        return None


def _scatter(n: int, pieces: list[pa.Array], places: list[np.ndarray], base: pa.Array | None = None,
             on_base: np.ndarray | None = None) -> pa.Array:
    """An Arrow string array of ``n`` values: ``pieces[i]`` at the positions ``places[i]``,
    ``base``'s own value at the positions ``on_base`` (``base`` of length ``n``), null elsewhere.
    One ``take`` (no Python value per row)."""
    values = pa.concat_arrays([*([base] if base is not None else []), *pieces, pa.nulls(1, pa.string())])
    index = np.full(n, len(values) - 1, dtype=np.int64)
    offset = 0
    if base is not None:
        index[on_base] = on_base
        offset = len(base)
    for piece, rows in zip(pieces, places, strict=True):
        index[rows] = np.arange(offset, offset + len(piece))
        offset += len(piece)
    return values.take(pa.array(index))


def _canonical_digits(digits: pa.Array) -> pa.Array:
    """What :func:`_canonical` gives for ``"+" + digits`` (``digits``: ASCII, ``[1-9][0-9]{5,14}``),
    computed for all at once from phonenumbers' metadata (:func:`_country_rules`): the country
    calling code is the first 1 to 3 digits that are a known code; the rest is the national
    number, a plain national prefix stripped as phonenumbers strips it; the number is possible
    when its national number has a possible length. The values this does not decide (a national
    prefix other than plain digits at the start of the rest) go to :func:`_canonical`.
    An Arrow string array of E.164 text, null where the number is not possible."""
    rules = _country_rules()
    n = len(digits)
    if n == 0:
        return pa.array([], type=pa.string())
    code_length = np.zeros(n, dtype=np.int8)
    for width in (3, 2, 1):  # the shortest known code wins, as in phonenumbers
        head = pc.utf8_slice_codeunits(digits, 0, width)
        known = pa.array([c for c in rules if len(c) == width], type=pa.string())
        code_length[pc.is_in(head, value_set=known).to_numpy(zero_copy_only=False)] = width
    kept: list[np.ndarray] = []  # rows whose E.164 is "+" and their digits, unchanged
    pieces: list[pa.Array] = []  # the E.164 of the others (a prefix stripped, or phonenumbers')
    places: list[np.ndarray] = []
    for width in (1, 2, 3):
        at_width = np.flatnonzero(code_length == width)
        if not len(at_width):
            continue
        group = digits.take(pa.array(at_width))
        heads = pc.dictionary_encode(pc.utf8_slice_codeunits(group, 0, width))
        head_of = heads.indices.to_numpy(zero_copy_only=False)
        for which, code in enumerate(heads.dictionary.to_pylist()):
            rule = rules[code]
            local = np.flatnonzero(head_of == which)
            rows = at_width[local]
            whole = group.take(pa.array(local))
            rest = pc.utf8_slice_codeunits(whole, width)
            strip = np.zeros(len(rows), dtype=bool)
            decided = np.ones(len(rows), dtype=bool)
            nsn = rest
            if rule.prefix is not None:
                matched = _regex(rest, f"^(?:{rule.prefix})")
                if matched is None:
                    decided[:] = False
                elif matched.any():
                    if rule.literal is None:
                        decided &= ~matched
                    else:
                        stripped = pc.utf8_slice_codeunits(rest, len(rule.literal))
                        viable = _regex(rest, f"^(?:{rule.general})$")
                        viable_stripped = _regex(stripped, f"^(?:{rule.general})$")
                        if viable is None or viable_stripped is None:
                            decided &= ~matched
                        else:
                            stripped_length = pc.utf8_length(stripped).to_numpy(zero_copy_only=False)
                            strip = (matched & ~(viable & ~viable_stripped)
                                     & rule.strippable[np.minimum(stripped_length, _NSN_LENGTHS - 1)])
                            nsn = pc.if_else(pa.array(strip), stripped, rest)
            length = pc.utf8_length(nsn).to_numpy(zero_copy_only=False)
            possible = rule.possible[np.minimum(length, _NSN_LENGTHS - 1)] & (length < _NSN_LENGTHS)
            keep = decided & possible
            kept.append(rows[keep & ~strip])
            if (keep & strip).any():
                pieces.append(pc.binary_join_element_wise("+" + code, nsn.filter(pa.array(keep & strip)), ""))
                places.append(rows[keep & strip])
            if not decided.all():  # a national prefix only phonenumbers can strip
                undecided = whole.filter(pa.array(~decided)).to_pylist()
                pieces.append(pa.array([_canonical("+" + d) for d in undecided], type=pa.string()))
                places.append(rows[~decided])
    plus = pc.binary_join_element_wise("+", digits, "")
    return _scatter(n, pieces, places, plus, np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64))


def normalise(numbers: pd.Series, home_country_code: str = HOME_COUNTRY_CODE) -> pd.Series:
    """E.164 text for each number, ``<NA>`` where the number is not a possible phone number.

    Vectorised (Arrow kernels on the distinct values): separators and a bracketed trunk zero
    dropped, the ``+``/``00``/trunk-``0`` forms read, then the country code, national prefix and
    possible lengths of phonenumbers' metadata applied to all numbers at once
    (:func:`_canonical_digits`); the result is the same as phonenumbers' for every number, which
    is called only for the values these rules leave undecided. The values stay in Arrow arrays
    throughout: a ``string`` Series backed by Arrow."""
    text = pa.array(numbers.astype("string"), type=pa.string(), from_pandas=True)
    encoded = pc.dictionary_encode(text)
    uniques = encoded.dictionary
    pieces: list[pa.Array] = []
    places: list[np.ndarray] = []
    ascii_ = pc.string_is_ascii(uniques).to_numpy(zero_copy_only=False)
    if (~ascii_).any():  # other digits or spaces than ASCII ones: as phonenumbers reads them
        others = np.flatnonzero(~ascii_)
        slow = _normalise_slowly(pd.Series(uniques.take(pa.array(others)).to_pandas(), dtype="string"),
                                 home_country_code)
        pieces.append(pa.array(slow, type=pa.string(), from_pandas=True))
        places.append(others)
    plain = np.flatnonzero(ascii_)
    if len(plain):
        raw = uniques.take(pa.array(plain))
        raw = pc.replace_substring(raw, "(0)", "")
        raw = pc.replace_substring_regex(raw, _ASCII_SEPARATORS, "")
        after_plus = pc.utf8_slice_codeunits(raw, 1)
        digits = pc.if_else(
            pc.starts_with(raw, "+"), after_plus,
            pc.if_else(pc.starts_with(raw, "00"), pc.utf8_slice_codeunits(raw, 2),
                       pc.if_else(pc.starts_with(raw, "0"),
                                  pc.binary_join_element_wise(home_country_code, after_plus, ""), raw)))
        well_formed = np.flatnonzero(_regex(digits, r"^[1-9][0-9]{5,14}$"))
        pieces.append(_canonical_digits(digits.take(pa.array(well_formed))))
        places.append(plain[well_formed])
    out = _scatter(len(uniques), pieces, places).take(encoded.indices)
    return pd.Series(pd.array(out, dtype="string"), index=numbers.index)


def normalise_one(number: str, home_country_code: str = HOME_COUNTRY_CODE) -> str | None:
    """:func:`normalise` for one number (``None`` if it is not a possible number)."""
    value = normalise(pd.Series([number]), home_country_code).iloc[0]
    return None if pd.isna(value) else str(value)


def to_digits(e164: pd.Series | np.ndarray | pa.Array) -> np.ndarray:
    """E.164 numbers to int64 digits (``+33612345678`` -> ``33612345678``); ``-1`` where missing.

    E.164 digits never start with 0 and have at most 15 digits, so the integer is lossless.
    Integers are taken as digits already. Text goes through Arrow's compute kernels (no Python
    call per number).
    """
    if isinstance(e164, np.ndarray) and e164.dtype.kind in "iu":
        return e164.astype(np.int64, copy=False)
    if isinstance(e164, pd.Series) and pd.api.types.is_integer_dtype(e164.dtype):
        return e164.to_numpy(np.int64, na_value=-1)
    if isinstance(e164, pa.Array | pa.ChunkedArray):
        text = e164.cast(pa.string())
    else:
        text = pa.array(e164, type=pa.string(), from_pandas=True)
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    # well formed: "+", then 1 to 15 ASCII digits, the first not 0 (plain kernels: faster than a regex)
    body = pc.utf8_slice_codeunits(text, 1)
    length = pc.binary_length(body)
    well_formed = pc.and_(
        pc.and_(pc.starts_with(text, "+"), pc.ascii_is_decimal(body)),
        pc.and_(pc.less_equal(length, 15), pc.not_equal(pc.utf8_slice_codeunits(body, 0, 1), "0")),
    )
    digits = pc.cast(pc.if_else(well_formed, body, None), pa.int64())
    return digits.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)


def from_digits(digits: np.ndarray | pd.Series) -> pd.Series:
    """int64 digits back to E.164 text (``33612345678`` -> ``+33612345678``), <NA> for -1."""
    values = pd.Series(np.asarray(digits, dtype=np.int64))
    return ("+" + values.astype(str)).where(values > 0).astype("string")


class DigitsIndex:
    """Positions of int64 values in a set of distinct values (-1 when absent), by Arrow's hash
    kernel: faster than pandas' and it releases the interpreter lock, so threads share the work."""

    def __init__(self, values: np.ndarray):
        self.values = np.asarray(values, dtype=np.int64)
        self._set = pa.array(self.values)

    def __len__(self) -> int:
        return len(self.values)

    def get_indexer(self, wanted: np.ndarray) -> np.ndarray:
        """Positions (int32), -1 for values not in the set."""
        found = pc.index_in(pa.array(np.asarray(wanted, dtype=np.int64)), value_set=self._set)
        return found.fill_null(-1).to_numpy(zero_copy_only=False)  # int32
