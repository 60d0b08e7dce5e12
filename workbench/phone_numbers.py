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


def normalise(numbers: pd.Series, home_country_code: str = HOME_COUNTRY_CODE) -> pd.Series:
    """E.164 text for each number, ``<NA>`` where the number is not a possible phone number."""
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
