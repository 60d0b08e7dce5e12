"""Exact money.

No binary float ever holds an amount. Three integer units are used:

* ``RATE_SCALE`` — per-minute rates of rate plans in 1/1,000,000 of the currency unit ("micro
  units"), e.g. 0.40 EUR/min is ``400000`` and a wholesale deck's 0.00625 EUR/min is ``6250``;
* ``PRICE_SCALE`` — call prices and connect fees in 1/10,000 of the currency unit ("units"),
  e.g. 1.3333 EUR is ``13333``; a call's price is rounded once, half up, from micro units to
  units (:mod:`workbench.rating.pricing`);
* ``CENT_SCALE`` — invoice amounts in cents.

Vectorised code works on ``int64`` arrays of those units; scalar code uses ``decimal.Decimal``.
Rounding is always *half up* (half away from zero), done in integer arithmetic by
:func:`round_half_up`, once at each documented rounding point (see :mod:`workbench.invoicing`).
Amounts are written for people by :func:`format_money` (Babel), in the reader's locale.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import numpy as np
import pandas as pd

from workbench.errors import InputError

RATE_SCALE = 1_000_000
PRICE_SCALE = 10_000
CENT_SCALE = 100
#: micro units in a unit: a per-minute rate x seconds / 60 in micro units is divided by
#: ``60 * RATE_PER_PRICE`` to give a price in units
RATE_PER_PRICE = RATE_SCALE // PRICE_SCALE


def parse_amount(text: str | Decimal | int, scale: int = PRICE_SCALE) -> int:
    """Parse ``"0.40"`` into integer units of ``1/scale``; refuse anything inexact
    (:class:`~workbench.errors.InputError`).

    >>> parse_amount("0.40")
    4000
    >>> parse_amount("12.5", scale=CENT_SCALE)
    1250
    """
    try:
        value = Decimal(str(text).strip().replace(",", "."))
    except InvalidOperation:
        raise InputError(f"{text!r} is not an amount") from None
    if not value.is_finite():
        raise InputError(f"{text!r} is not an amount")
    units = value * scale
    if units != units.to_integral_value():
        raise InputError(f"{text!r} has more decimals than 1/{scale} allows")
    return int(units)


def to_decimal(units: int, scale: int = PRICE_SCALE) -> Decimal:
    """Integer units to an exact ``Decimal`` (``1333`` -> ``Decimal('0.1333')``)."""
    exponent = Decimal(1).scaleb(-len(str(scale)) + 1)
    return (Decimal(int(units)) / scale).quantize(exponent)


def round_half_up(numerator, denominator: int):
    """``numerator / denominator`` rounded half away from zero, exactly, in integer arithmetic:
    the one rounding helper of the package (call prices to 1/10,000, invoice lines, VAT and
    prorations to the cent). ``numerator`` is an int or an int64 array; so is the result.

    >>> round_half_up(50, 100), round_half_up(-50, 100), round_half_up(49, 100)
    (1, -1, 0)
    """
    if denominator <= 0:
        raise ValueError(f"denominator {denominator} is not positive")
    if isinstance(numerator, int | np.integer):
        magnitude = (2 * abs(int(numerator)) + denominator) // (2 * denominator)
        return magnitude if numerator >= 0 else -magnitude
    numerator = np.asarray(numerator, dtype=np.int64)
    if numerator.size == 0 or numerator.min() >= 0:  # the usual case, in one pass
        return (2 * numerator + denominator) // (2 * denominator)
    magnitude = (2 * np.abs(numerator) + denominator) // (2 * denominator)
    return np.where(numerator < 0, -magnitude, magnitude)


def integer_series(values) -> pd.Series:
    """Whole numbers with missing values (money in minor units, counts, ids) as pandas' nullable
    ``Int64``, without passing through float64: ``None``, ``NaN`` and ``pd.NA`` are missing
    (``pd.NA``), ints and NumPy ints stay exact. A float is taken only when it is a whole number
    below 2**53 (exact); any other value is a :class:`ValueError`. The index is kept.

    >>> integer_series([2**53 + 1, None]).tolist()
    [9007199254740993, <NA>]
    """
    series = values if isinstance(values, pd.Series) else pd.Series(values, dtype=object)
    if isinstance(series.dtype, pd.Int64Dtype):
        return series
    if pd.api.types.is_integer_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        return series.astype("Int64")
    out = []
    for value in series.tolist():
        if value is None or value is pd.NA or (isinstance(value, float) and value != value):
            out.append(None)
        elif isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_):
            out.append(int(value))
        elif isinstance(value, float | np.floating) and value == int(value) and abs(value) < 2**53:
            out.append(int(value))
        else:
            raise ValueError(f"{value!r} is not a whole number")
    return pd.Series(pd.array(out, dtype="Int64"), index=series.index, name=series.name)


def blank_if_missing(value):
    """``value`` as written for people, where a missing value (``None``, ``NaN``, ``pd.NA``,
    ``NaT``) is an empty string, never ``None``, ``nan`` or ``<NA>``: the ``finalize`` of the
    invoice and email templates, and the customer fields of the invoice models.

    >>> [blank_if_missing(v) for v in (None, float("nan"), pd.NA, "FR40303265045", 0)]
    ['', '', '', 'FR40303265045', 0]
    """
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, float | np.floating) and value != value:
        return ""
    return value


def minutes(seconds: int) -> Decimal:
    """Minutes of ``seconds`` of calls, as every output shows them (invoice line quantity, invoice
    PDF, control report, dashboards, command line): ``seconds / 60`` rounded half up to 2
    decimals, exactly (integer arithmetic, :func:`round_half_up`). A call's own duration in the
    call detail annex is written ``m:ss`` instead, unrounded.

    >>> minutes(730), minutes(125), minutes(120), minutes(0)
    (Decimal('12.17'), Decimal('2.08'), Decimal('2.00'), Decimal('0.00'))
    """
    if isinstance(seconds, float | bool):
        raise TypeError(f"{seconds!r}: seconds are a whole number")
    return Decimal(round_half_up(int(seconds) * 100, 60)).scaleb(-2)


def format_duration(seconds: int, locale: str = "en") -> str:
    """A quantity of calls written with its units, exactly (no rounding): minutes and seconds,
    ``730`` s is ``12 min 10 s``; thousands of minutes grouped as ``locale`` writes them (``2 057
    min 36 s`` in French, ``2,057 min 36 s`` in English); no-break spaces before the units.

    >>> format_duration(730).replace("\\xa0", " "), format_duration(123456, "en").replace("\\xa0", " ")
    ('12 min 10 s', '2,057 min 36 s')
    """
    from babel.numbers import format_decimal

    if isinstance(seconds, float | bool):
        raise TypeError(f"{seconds!r}: seconds are a whole number")
    whole, rest = divmod(int(seconds), 60)
    return f"{format_decimal(whole, locale=locale)}\u00a0min {rest:02d}\u00a0s"


def format_number(value: Decimal | int, locale: str = "en") -> str:
    """A quantity, a rate or minutes written for people in ``locale`` with Babel (CLDR data),
    exactly, with the digits it has (trailing zeros of the fraction dropped, none added): a VAT
    rate of ``5.5`` is ``5,5`` in French and ``5.5`` in English, ``2.08`` minutes ``2,08`` and
    ``2.08``, 1234.5 minutes ``1 234,5`` (a narrow no-break space) and ``1,234.5``.

    >>> format_number(Decimal("5.50"), "fr"), format_number(Decimal("20"), "fr"), format_number(Decimal("2.08"))
    ('5,5', '20', '2.08')
    """
    from babel.numbers import format_decimal

    if isinstance(value, float | bool):
        raise TypeError(f"{value!r}: give a Decimal or an int (a float is not exact)")
    number = Decimal(value).normalize()
    if number == number.to_integral_value():
        number = number.quantize(Decimal(1))  # 2E+1 is 20
    return format_decimal(number, locale=locale, decimal_quantization=False)


def format_money(amount: int | Decimal, currency: str = "EUR", locale: str = "en", scale: int = CENT_SCALE) -> str:
    """An amount written for people in ``locale`` with Babel (CLDR data): ``123456`` cents is
    ``1 234,56 €`` in French (a narrow no-break space between thousands and a no-break space
    before the sign, as Babel writes them) and ``€1,234.56`` in English.

    ``amount`` is integer minor units of ``scale``: cents by default, written with 2 decimals;
    ``PRICE_SCALE`` for call prices, written with their 4 (``€0.1333``). A ``Decimal`` in
    currency units is written with 2 decimals, or 4 when it has more than 2. A float is refused
    (:class:`TypeError`): money is never binary floating point. Nothing is rounded here: an
    amount with more decimals than it is written with is a :class:`ValueError`.

    >>> format_money(123456, locale="en")
    '€1,234.56'
    >>> format_money(1333, scale=PRICE_SCALE, locale="en")
    '€0.1333'
    """
    from babel import Locale
    from babel.numbers import format_currency

    if isinstance(amount, float | bool):
        raise TypeError(f"{amount!r}: money is integer minor units or Decimal, never float")
    if isinstance(amount, Decimal):
        value = amount
        exponent = value.as_tuple().exponent
        digits = 4 if isinstance(exponent, int) and exponent < -2 else 2
    else:
        value = to_decimal(int(amount), scale)
        digits = len(str(scale)) - 1
    if value != value.quantize(Decimal(1).scaleb(-digits)):
        raise ValueError(f"{value}: more than {digits} decimals, not written without rounding")
    if digits == 2:
        return format_currency(value, currency, locale=locale)
    # the locale's currency pattern with the price's four decimals
    pattern = Locale.parse(locale).currency_formats["standard"].pattern.replace("0.00", "0." + "0" * digits)
    return format_currency(value, currency, format=pattern, locale=locale, currency_digits=False)
