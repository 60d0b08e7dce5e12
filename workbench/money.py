"""Exact money.

No binary float ever holds an amount. Two integer units are used:

* ``PRICE_SCALE`` — call prices and per-minute rates in 1/10,000 of the currency unit
  ("units"), e.g. 0.40 EUR/min is ``4000``;
* ``CENT_SCALE`` — invoice amounts in cents.

Vectorised code works on ``int64`` arrays of those units; scalar code uses ``decimal.Decimal``.
Rounding is always *half up* (away from zero for positive amounts), done in integer arithmetic
by :func:`div_round_half_up`.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

import numpy as np

PRICE_SCALE = 10_000
CENT_SCALE = 100


class MoneyError(ValueError):
    """A text that is not an exact amount in the expected unit."""


def parse_amount(text: str | Decimal | int, scale: int = PRICE_SCALE) -> int:
    """Parse ``"0.40"`` into integer units of ``1/scale``; refuse anything inexact.

    >>> parse_amount("0.40")
    4000
    >>> parse_amount("12.5", scale=CENT_SCALE)
    1250
    """
    try:
        value = Decimal(str(text).strip().replace(",", "."))
    except InvalidOperation:
        raise MoneyError(f"{text!r} is not an amount") from None
    if not value.is_finite():
        raise MoneyError(f"{text!r} is not an amount")
    units = value * scale
    if units != units.to_integral_value():
        raise MoneyError(f"{text!r} has more decimals than 1/{scale} allows")
    return int(units)


def to_decimal(units: int, scale: int = PRICE_SCALE) -> Decimal:
    """Integer units to an exact ``Decimal`` (``1333`` -> ``Decimal('0.1333')``)."""
    exponent = Decimal(1).scaleb(-len(str(scale)) + 1)
    return (Decimal(int(units)) / scale).quantize(exponent)


def units_to_cents(units: int) -> int:
    """Round an amount in price units to cents, half up (the invoice-line rounding point)."""
    q = Decimal(int(units)) / (PRICE_SCALE // CENT_SCALE)
    return int(q.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def div_round_half_up(numerator: np.ndarray, denominator: int) -> np.ndarray:
    """Vectorised ``round(numerator / denominator)`` half up, for non-negative int64 numerators."""
    numerator = np.asarray(numerator, dtype=np.int64)
    return (numerator + denominator // 2) // denominator if denominator % 2 == 0 else (
        (2 * numerator + denominator) // (2 * denominator)
    )
