"""Exact money: the one rounding helper and the one formatter (Babel, by locale)."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from workbench.errors import InputError
from workbench.money import PRICE_SCALE, format_money, parse_amount, round_half_up, to_decimal

NNBSP, NBSP = "\u202f", "\u00a0"  # Babel's narrow no-break space (thousands) and no-break space (before €)


def test_round_half_up_is_half_away_from_zero_for_ints_and_arrays():
    assert [round_half_up(n, 100) for n in (49, 50, 51, 150, -49, -50, -150, 0)] == [0, 1, 1, 2, 0, -1, -2, 0]
    assert round_half_up(np.array([49, 50, 51, -50, -49, 0]), 100).tolist() == [0, 1, 1, -1, 0, 0]
    # a proration: 20.00 x 21 / 31 days = 13.548... -> 13.55 (cents: 2000 * 21 / 31 = 1354.8 -> 1355)
    assert round_half_up(2000 * 21, 31) == 1355
    assert round_half_up(np.array([20 * 2000 * 21]), 31).tolist() == [27097]  # 270.967... -> 270.97
    # a call of 61 s at 0.40/min in 1/10,000: 4000 * 61 / 60 = 4066.67 -> 4067
    assert round_half_up(np.array([4000 * 61]), 60).tolist() == [4067]
    with pytest.raises(ValueError):
        round_half_up(1, 0)


def test_format_money_in_french_and_english():
    assert format_money(123456, locale="fr") == f"1{NNBSP}234,56{NBSP}€"
    assert format_money(123456, locale="en") == "€1,234.56"
    assert format_money(-5, locale="en") == "-€0.05"
    assert format_money(0, locale="fr") == f"0,00{NBSP}€"
    assert format_money(Decimal("1234567.8"), locale="fr") == f"1{NNBSP}234{NNBSP}567,80{NBSP}€"
    # a call price keeps its four decimals, trailing zeros included
    assert format_money(1333, scale=PRICE_SCALE, locale="fr") == f"0,1333{NBSP}€"
    assert format_money(82911350, scale=PRICE_SCALE, locale="en") == "€8,291.1350"
    assert format_money(Decimal("0.1"), locale="en") == "€0.10"
    with pytest.raises(TypeError):
        format_money(12.5)
    with pytest.raises(ValueError, match="more than 4 decimals"):
        format_money(Decimal("0.00001"))


def test_parse_amount_is_exact_or_refused():
    assert parse_amount("0.40") == 4000 and parse_amount("12,5", scale=100) == 1250
    assert to_decimal(1333) == Decimal("0.1333")
    for bad in ("abc", "0.00001", "NaN", "inf"):
        with pytest.raises(InputError):
            parse_amount(bad)
