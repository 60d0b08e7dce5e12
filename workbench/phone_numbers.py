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
#: the bytes of those characters (a table of the 256 byte values)
_SEPARATOR_BYTES = np.zeros(256, dtype=bool)
_SEPARATOR_BYTES[[*b"\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f .-()/"]] = True


def _any_byte(values: pa.Array, table: np.ndarray) -> bool:
    """Whether any value of ``values`` (a string array) holds a byte that ``table`` marks."""
    if not len(values):
        return False
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int32)[values.offset:values.offset + len(values) + 1]
    data = values.buffers()[2]
    if data is None:
        return False
    return bool(table[np.frombuffer(data, dtype=np.uint8)[offsets[0]:offsets[-1]]].any())


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


#: powers of ten, by exponent (int64: numbers of at most 15 digits)
_POW10 = 10 ** np.arange(19, dtype=np.int64)


@dataclass(frozen=True)
class _CodeTables:
    """:func:`_country_rules` as arrays indexed by a country calling code's value (0-999; no
    code starts with 0, so its value tells its digits): ``known[w]`` whether a value of ``w``
    digits is a code, ``possible[code, n]`` whether a national number of ``n`` digits is
    possible, ``prefix_width``/``prefix_value`` the code's plain-digit national prefix (width 0:
    none), ``by_country`` the codes whose national prefix is a pattern (left to
    :func:`_canonical_by_country`)."""

    known: dict[int, np.ndarray]
    possible: np.ndarray
    prefix_width: np.ndarray
    prefix_value: np.ndarray
    by_country: np.ndarray


@functools.cache
def _code_tables() -> _CodeTables:
    """The :class:`_CodeTables` of phonenumbers' metadata (built once)."""
    known = {width: np.zeros(10 ** width, dtype=bool) for width in (1, 2, 3)}
    possible = np.zeros((1000, _NSN_LENGTHS), dtype=bool)
    prefix_width, prefix_value = np.zeros(1000, dtype=np.int64), np.zeros(1000, dtype=np.int64)
    by_country = np.zeros(1000, dtype=bool)
    for code, rule in _country_rules().items():
        value = int(code)
        known[len(code)][value] = True
        possible[value] = rule.possible
        if rule.prefix is not None and rule.literal is None:
            by_country[value] = True
        elif rule.literal is not None:
            prefix_width[value], prefix_value[value] = len(rule.literal), int(rule.literal)
    return _CodeTables(known, possible, prefix_width, prefix_value, by_country)


def _canonical_digits(digits: pa.Array) -> np.ndarray:
    """What :func:`_canonical` gives for ``"+" + digits`` (``digits``: ASCII, ``[1-9][0-9]{5,14}``),
    for all at once, on the numbers' values (int64, from their digits): the country calling
    code is the shortest head of 1 to 3 digits that is a known code (:func:`_code_tables`); a
    number whose national number does not start with its country's national prefix is kept as
    written when its national number has a possible length, else it is not a possible number.
    The others (a national prefix written after the country code, or a country whose national
    prefix is a pattern) go to :func:`_canonical_by_country`, a small part of a month's numbers.
    The E.164 numbers' digits (int64, as :func:`to_digits` gives them), -1 where the number is
    not possible."""
    n = len(digits)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    tables = _code_tables()
    value = pc.cast(digits, pa.int64()).to_numpy(zero_copy_only=False)
    length = pc.binary_length(digits).to_numpy(zero_copy_only=False).astype(np.int64)
    code, width = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    for digits_of_code in (3, 2, 1):  # the shortest known code wins, as in phonenumbers
        head = value // _POW10[length - digits_of_code]
        known = tables.known[digits_of_code][head]
        code[known], width[known] = head[known], digits_of_code
    national_length = length - width
    national = value % _POW10[national_length]
    prefix_width = tables.prefix_width[code]
    head = national // _POW10[np.maximum(national_length - prefix_width, 0)]
    prefixed = (prefix_width > 0) & (national_length >= prefix_width) & (head == tables.prefix_value[code])
    by_country = (width > 0) & (tables.by_country[code] | prefixed)
    keep = ((width > 0) & ~by_country & (national_length < _NSN_LENGTHS)
            & tables.possible[code, np.minimum(national_length, _NSN_LENGTHS - 1)])
    out = np.where(keep, value, np.int64(-1))
    rows = np.flatnonzero(by_country)
    if len(rows):
        out[rows] = to_digits(_canonical_by_country(digits.take(pa.array(rows))))
    return out


def _canonical_by_country(digits: pa.Array) -> pa.Array:
    """What :func:`_canonical` gives for ``"+" + digits`` (``digits``: ASCII, ``[1-9][0-9]{5,14}``),
    computed for all at once from phonenumbers' metadata (:func:`_country_rules`), a country
    calling code at a time on the numbers' text (:func:`_canonical_digits` decides most numbers
    and leaves this the others): the country
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
    uniques, positions = _normalised_uniques(numbers, home_country_code)
    text = pc.binary_join_element_wise("+", pc.cast(pa.array(uniques, mask=uniques < 0), pa.string()), "")
    out = text.take(pa.array(positions, mask=positions < 0))
    return pd.Series(pd.array(out, dtype="string"), index=numbers.index)


def normalise_digits(numbers: pd.Series, home_country_code: str = HOME_COUNTRY_CODE) -> np.ndarray:
    """:func:`normalise` as the E.164 numbers' digits (:func:`to_digits`): an int64 array, ``-1``
    where the number is missing or not a possible phone number. What a load stores; it skips
    the text of each record's number (the distinct numbers' digits are taken for each)."""
    uniques, positions = _normalised_uniques(numbers, home_country_code)
    return np.append(uniques, np.int64(-1))[positions]  # position -1: the last, -1


def _normalised_uniques(numbers: pd.Series, home_country_code: str) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of ``numbers`` normalised (their E.164 digits, int64, -1 where not a
    possible number), and each number's position among them (int64, -1 where the number is
    missing)."""
    text = pa.array(numbers.astype("string"), type=pa.string(), from_pandas=True)
    if isinstance(text, pa.ChunkedArray):  # a Series of several Arrow pieces: one array
        text = text.combine_chunks()
    encoded = pc.dictionary_encode(text)
    uniques = encoded.dictionary
    out = np.full(len(uniques), -1, dtype=np.int64)
    ascii_ = pc.string_is_ascii(uniques).to_numpy(zero_copy_only=False)
    if (~ascii_).any():  # other digits or spaces than ASCII ones: as phonenumbers reads them
        others = np.flatnonzero(~ascii_)
        out[others] = to_digits(_normalise_slowly(pd.Series(uniques.take(pa.array(others)).to_pandas(),
                                                            dtype="string"), home_country_code))
    plain = np.flatnonzero(ascii_)
    if len(plain):
        raw = uniques.take(pa.array(plain)) if len(plain) < len(uniques) else uniques
        if _any_byte(raw, _SEPARATOR_BYTES):  # most files write no separators: nothing to drop
            raw = pc.replace_substring(raw, "(0)", "")
            raw = pc.replace_substring_regex(raw, _ASCII_SEPARATORS, "")
        after_plus = pc.utf8_slice_codeunits(raw, 1)
        digits = pc.if_else(
            pc.starts_with(raw, "+"), after_plus,
            pc.if_else(pc.starts_with(raw, "00"), pc.utf8_slice_codeunits(raw, 2),
                       pc.if_else(pc.starts_with(raw, "0"),
                                  pc.binary_join_element_wise(home_country_code, after_plus, ""), raw)))
        length = pc.binary_length(digits).to_numpy(zero_copy_only=False)
        well_formed = np.flatnonzero(  # [1-9][0-9]{5,14}, by plain kernels (faster than a regex)
            (length >= 6) & (length <= 15) & pc.ascii_is_decimal(digits).to_numpy(zero_copy_only=False)
            & ~pc.starts_with(digits, "0").to_numpy(zero_copy_only=False))
        out[plain[well_formed]] = _canonical_digits(digits.take(pa.array(well_formed)))
    positions = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    return out, positions


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
