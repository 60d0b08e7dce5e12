"""Telephone numbers to E.164.

Switches and carriers write numbers as dialled (``0612345678``), with the international prefix
(``0044...``), in E.164 (``+4420...``) or as bare international digits (``4420...``). All become
E.164 text with a leading ``+``:

* spaces, dots, dashes and brackets are dropped;
* ``+`` or ``00`` start an international number;
* one leading ``0`` starts a national number of the home country (``0612345678`` ->
  ``+33612345678`` for France);
* digits with no prefix are taken as international digits already (the carriers' usual form).

The result is then checked with ``phonenumbers`` (a possible number for its country code, 15
digits at most); anything else is a bad number. Work is done once per distinct number, so a month
of calls costs as much as its distinct numbers.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import phonenumbers

HOME_COUNTRY_CODE = "33"
_SEPARATORS = r"[\s.\-()/]"


@functools.lru_cache(maxsize=1_000_000)
def _is_possible(e164: str) -> bool:
    try:
        return phonenumbers.is_possible_number(phonenumbers.parse(e164, None))
    except phonenumbers.NumberParseException:
        return False


def normalise(numbers: pd.Series, home_country_code: str = HOME_COUNTRY_CODE) -> pd.Series:
    """E.164 text for each number, ``<NA>`` where the number is not a possible phone number."""
    codes, uniques = pd.factorize(numbers.astype("string"), use_na_sentinel=True)
    raw = pd.Series(uniques, dtype="string").str.replace(_SEPARATORS, "", regex=True)
    digits = raw.str.removeprefix("+")
    international = raw.str.startswith("+") | raw.str.startswith("00")
    digits = digits.where(~raw.str.startswith("00"), raw.str.slice(2))
    national = ~international & raw.str.startswith("0")
    digits = digits.where(~national, home_country_code + raw.str.slice(1))
    well_formed = digits.str.fullmatch(r"[1-9]\d{5,14}").fillna(False).astype(bool)
    candidates = ("+" + digits).where(well_formed)
    possible = np.array(
        [isinstance(c, str) and _is_possible(c) for c in candidates.tolist()], dtype=bool
    )
    cleaned = candidates.where(possible).to_numpy(dtype=object, na_value=None)
    out = np.empty(len(codes), dtype=object)
    valid = codes >= 0
    out[valid] = cleaned[codes[valid]]
    out[~valid] = None
    return pd.Series(out, index=numbers.index, dtype="string")


def normalise_one(number: str, home_country_code: str = HOME_COUNTRY_CODE) -> str | None:
    """:func:`normalise` for one number (``None`` if it is not a possible number)."""
    value = normalise(pd.Series([number]), home_country_code).iloc[0]
    return None if pd.isna(value) else str(value)


def to_digits(e164: pd.Series) -> np.ndarray:
    """E.164 text (``+33612345678``) to int64 digits (``33612345678``); ``-1`` where missing."""
    stripped = e164.astype("string").str.removeprefix("+")
    return pd.to_numeric(stripped, errors="coerce").fillna(-1).astype(np.int64).to_numpy()
