"""Prices of single calls, computed by hand from the rate's definition."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from workbench.rating import RatePlan, compile_plan
from workbench.rating.pricing import call_prices, price_calls


def plan_with(rate_rows, interval_rows):
    rates = pd.DataFrame(rate_rows, columns=["rate_id", "zone_code", "band", "connect_fee_units",
                                             "charge_unanswered"])
    return compile_plan(RatePlan(
        code="P",
        destinations=pd.DataFrame({"prefix": ["33"], "name": ["France"], "zone_code": ["Z"]}),
        time_bands=pd.DataFrame(columns=["band", "weekdays", "start_minute", "end_minute"]),
        rates=rates,
        intervals=pd.DataFrame(interval_rows, columns=["rate_id", "from_second",
                                                       "price_per_minute_micros", "increment_s"]),
    ))


# connect 0.80 (units), 0-60 s at 0.40/min in 60 s steps, then 0.20/min in 10 s steps (micro units)
TWO_STEP = plan_with([(1, "Z", "*", 8000, False)], [(1, 0, 400_000, 60), (1, 60, 200_000, 10)])


def price(compiled, seconds, connect=True):
    seconds = np.array(seconds, dtype=np.int64)
    rows = np.zeros(len(seconds), dtype=np.int64)
    return call_prices(compiled, rows, seconds, np.full(len(seconds), connect)).tolist()


def test_issue_example_95_seconds():
    # 0.80 + 60 s at 0.40/min (0.40) + 40 s at 0.20/min (0.13333...) = 1.3333
    assert price(TWO_STEP, [95]) == [13333]


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (1, 8000 + 4000),  # first step is a whole minute
        (60, 8000 + 4000),
        (61, 8000 + 4000 + 333),  # + 10 s at 0.20/min = 0.03333 -> 0.0333
        (70, 8000 + 4000 + 333),
        (71, 8000 + 4000 + 667),  # + 20 s = 0.06667 -> 0.0667
        (120, 8000 + 4000 + 2000),
    ],
)
def test_intervals_and_increments(seconds, expected):
    assert price(TWO_STEP, [seconds]) == [expected]


def test_unanswered_call_is_free_unless_the_rate_says_so():
    charging = plan_with([(1, "Z", "*", 1500, True)], [(1, 0, 60_000, 1)])
    assert price(TWO_STEP, [0]) == [0]
    assert price(charging, [0]) == [1500]


def test_no_connect_fee_when_told():
    assert price(TWO_STEP, [95], connect=False) == [13333 - 8000]


def test_rounding_is_half_up_once_per_call():
    # 0.0003/min, per second: 10 s = 0.00005 -> half a unit -> rounds up to 1 unit
    tiny = plan_with([(1, "Z", "*", 0, False)], [(1, 0, 300, 1)])
    assert price(tiny, [10, 9, 30]) == [1, 0, 2]  # 0.5 -> 1; 0.45 -> 0; 1.5 -> 2


def test_per_second_rate():
    per_second = plan_with([(1, "Z", "*", 0, False)], [(1, 0, 50_000, 1)])  # 0.05/min
    # 7 s = 0.0058333 -> 0.0058; 3600 s = 3.00
    assert price(per_second, [7, 3600]) == [58, 30000]


@given(st.integers(0, 20_000), st.integers(0, 20_000))
def test_price_is_monotone_in_duration(a, b):
    low, high = sorted([a, b])
    assert price(TWO_STEP, [low])[0] <= price(TWO_STEP, [high])[0]


@given(st.lists(st.integers(0, 86_400), min_size=1, max_size=50))
def test_vectorised_equals_one_by_one(durations):
    assert price(TWO_STEP, durations) == [price(TWO_STEP, [d])[0] for d in durations]


def test_rating_prices_from_its_table_as_the_formula_does():
    """``price_calls`` looks short calls up in a table; longer ones, negative durations and
    calls partly in an allowance go through the formula. Around the table's end (3,600 s):
    3,599 s and 3,600 s bill 60 s at 0.40 + 3,540 s at 0.20/min = 12.20, 3,601 s bills 3,550 s
    after the first minute: 0.40 + 11.8333... = 12.2333 (each plus the 0.80 connect fee)."""
    seconds = np.array([3599, 3600, 3601, 7200, 0, -5, 95, 95], dtype=np.int64)
    covered = np.array([0, 0, 0, 0, 0, 0, 0, 50], dtype=np.int64)
    amount, rule = price_calls(TWO_STEP, np.zeros(len(seconds), np.int32), seconds, covered)
    # 7,200 s: 0.40 + 7,140 s at 0.20/min = 24.20; 95 s with 50 covered: 45 s priced as a call
    # of 45 s without connect fee = one 60 s step at 0.40
    assert amount.tolist() == [130_000, 130_000, 130_333, 250_000, 0, 0, 13_333, 4_000]
    assert rule.tolist() == [0, 0, 0, 0, 3, 3, 0, 2]
    durations = np.arange(-2, 8_000, dtype=np.int64)
    table, _ = price_calls(TWO_STEP, np.zeros(len(durations), np.int32), durations, np.zeros_like(durations))
    assert table.tolist() == price(TWO_STEP, durations)
