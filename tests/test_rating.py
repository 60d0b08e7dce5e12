"""Classification and allowances through :func:`workbench.rating.rate`, with hand-computed
expectations. Times are UTC; Paris is UTC+2 until 2026-10-25 03:00 local, UTC+1 after."""

from datetime import date

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.period import Period
from workbench.rating import RatePlan, allowance_buckets, compile_plan, rate
from workbench.rating.plan import digit_count, match_destinations

PLAN = RatePlan(
    code="TEST",
    destinations=pd.DataFrame(
        [("33", "France", "FIX"), ("336", "France mobile", "MOB"), ("44", "UK", "INT"),
         ("447", "UK mobile", "INTMOB")],
        columns=["prefix", "name", "zone_code"],
    ),
    time_bands=pd.DataFrame([("peak", "0,1,2,3,4", 480, 1140)],
                            columns=["band", "weekdays", "start_minute", "end_minute"]),
    rates=pd.DataFrame(
        [(1, "FIX", "peak", 0, False), (2, "FIX", "offpeak", 0, False),
         (3, "MOB", "*", 0, False), (4, "INT", "*", 0, False)],
        columns=["rate_id", "zone_code", "band", "connect_fee_units", "charge_unanswered"],
    ),
    intervals=pd.DataFrame(
        # FIX peak 0.06/min, offpeak 0.03/min, mobile 0.12/min, UK 0.60/min, all per second
        [(1, 0, 60_000, 1), (2, 0, 30_000, 1), (3, 0, 120_000, 1), (4, 0, 600_000, 1)],
        columns=["rate_id", "from_second", "price_per_minute_micros", "increment_s"],
    ),
)
LINES = pd.DataFrame(
    [("+33145000001", 1, 1, date(2026, 1, 1), None),
     # +33145000002 belongs to customer 2 until 14 Oct, to customer 3 from 15 Oct
     ("+33145000002", 2, 1, date(2026, 1, 1), date(2026, 10, 14)),
     ("+33145000002", 3, 1, date(2026, 10, 15), None)],
    columns=["number", "customer_id", "rate_plan_id", "valid_from", "valid_to"],
)


def calls(*rows):
    frame = pd.DataFrame(rows, columns=["start_utc", "calling", "called", "duration_s"])
    frame.insert(0, "cdr_id", range(1, len(frame) + 1))
    frame["start_utc"] = pd.to_datetime(frame["start_utc"]).astype("datetime64[s]")
    return frame


def rated(frame, buckets=None, consumed=None):
    result = rate(frame, LINES, {1: PLAN}, "2026-10", buckets=buckets, consumed=consumed)
    return result.rated.set_index("cdr_id"), result.errors.set_index("cdr_id")


@pytest.mark.parametrize(
    ("start_utc", "band"),
    [
        ("2026-10-21 05:59:59", "offpeak"),  # Wednesday 07:59:59 local (UTC+2)
        ("2026-10-21 06:00:00", "peak"),  # 08:00 local
        ("2026-10-21 16:59:59", "peak"),  # 18:59:59 local
        ("2026-10-21 17:00:00", "offpeak"),  # 19:00 local
        ("2026-10-24 10:00:00", "offpeak"),  # Saturday
        ("2026-10-26 06:30:00", "offpeak"),  # Monday after DST: 07:30 local (UTC+1)
        ("2026-10-26 07:00:00", "peak"),  # 08:00 local (UTC+1)
    ],
)
def test_time_band_from_paris_local_time(start_utc, band):
    out, errors = rated(calls((start_utc, "+33145000001", "+33155000000", 60)))
    assert errors.empty
    assert out.loc[1, "band"] == band
    assert out.loc[1, "price_units"] == (600 if band == "peak" else 300)


def test_public_holidays_are_off_peak():
    # 11 November 2026 (Armistice) is a Wednesday; 10:00 local = 09:00 UTC
    result = rate(calls(("2026-11-11 09:00:00", "+33145000001", "+33155000000", 60),
                        ("2026-11-12 09:00:00", "+33145000001", "+33155000000", 60)),
                  LINES, {1: PLAN}, "2026-11")
    assert result.rated["band"].tolist() == ["offpeak", "peak"]


def test_longest_prefix_wins():
    out, errors = rated(calls(
        ("2026-10-21 10:00:00", "+33145000001", "+442079460958", 60),  # 44
        ("2026-10-21 10:00:00", "+33145000001", "+447911123456", 60),  # 447: no rate
        ("2026-10-21 10:00:00", "+33145000001", "+33612345678", 60),  # 336
        ("2026-10-21 10:00:00", "+33145000001", "+33145000009", 60),  # 33
    ))
    assert out.loc[1, "destination_prefix"] == "44" and out.loc[1, "price_units"] == 6000
    assert out.loc[3, "destination_prefix"] == "336" and out.loc[3, "zone_code"] == "MOB"
    assert out.loc[4, "destination_prefix"] == "33"
    assert errors.loc[2, "reason"] == "no_rate"
    assert "INTMOB" in errors.loc[2, "message"]


def test_unknown_destination_and_line_and_period_are_errors():
    out, errors = rated(calls(
        ("2026-10-21 10:00:00", "+33145000001", "+12025550123", 60),  # no +1 destination
        ("2026-10-21 10:00:00", "+33199999999", "+33145000009", 60),  # nobody's line
        ("2026-11-02 10:00:00", "+33145000001", "+33145000009", 60),  # November
    ))
    assert out.empty
    assert errors["reason"].to_dict() == {1: "no_destination", 2: "no_line", 3: "outside_period"}
    assert "+33199999999" in errors.loc[2, "message"]


def test_line_validity_dates_pick_the_customer():
    out, errors = rated(calls(
        ("2026-10-14 21:59:59", "+33145000002", "+33155000000", 60),  # 14 Oct 23:59:59 local
        ("2026-10-14 22:00:00", "+33145000002", "+33155000000", 60),  # 15 Oct 00:00 local
    ))
    assert errors.empty
    assert out["customer_id"].to_dict() == {1: 2, 2: 3}


def buckets_for(minutes, zone="MOB", start="2026-10-01", end=None, quantity=1):
    subs = pd.DataFrame([(1, 10, quantity, start, end)],
                        columns=["customer_id", "product_id", "quantity", "start_date", "end_date"])
    allowances = pd.DataFrame([(10, zone, None if minutes is None else minutes * 60)],
                              columns=["product_id", "zone_code", "seconds"])
    return allowance_buckets(subs, allowances, Period.parse("2026-10"), "Europe/Paris")


def test_allowance_crossing_its_limit_mid_call():
    # 20 minutes to mobiles; given out of order, consumed chronologically:
    # 15 min (covered), 10 min (5 covered, 5 priced = 0.60), 3 min (priced = 0.36)
    frame = calls(
        ("2026-10-05 10:00:00", "+33145000001", "+33612345678", 180),
        ("2026-10-03 10:00:00", "+33145000001", "+33612345678", 600),
        ("2026-10-02 10:00:00", "+33145000001", "+33612345678", 900),
        ("2026-10-04 10:00:00", "+33145000001", "+33155000000", 60),  # fixed, Sunday: 0.03
    )
    out, errors = rated(frame, buckets_for(20))
    assert errors.empty
    assert out.loc[3, ["allowance_s", "price_units", "rule"]].tolist() == [900, 0, "allowance"]
    assert out.loc[2, ["allowance_s", "price_units", "rule"]].tolist() == [300, 6000, "allowance_overflow"]
    assert out.loc[1, ["allowance_s", "price_units", "rule"]].tolist() == [0, 3600, "rate"]
    assert out.loc[4, ["allowance_s", "price_units"]].tolist() == [0, 300]


def test_allowance_quantity_unlimited_and_already_consumed():
    frame = calls(("2026-10-02 10:00:00", "+33145000001", "+33612345678", 600))
    out, _ = rated(frame, buckets_for(None))
    assert out.loc[1, "price_units"] == 0
    # 2 x 5 min, of which 8 min already used by billed calls: 2 min covered, 8 priced (0.96)
    consumed = pd.DataFrame([(1, "MOB", 480)], columns=["customer_id", "zone_code", "seconds"])
    out, _ = rated(frame, buckets_for(5, quantity=2), consumed)
    assert out.loc[1, ["allowance_s", "price_units"]].tolist() == [120, 9600]


def test_allowance_only_while_subscribed():
    frame = calls(("2026-10-02 10:00:00", "+33145000001", "+33612345678", 60),
                  ("2026-10-20 10:00:00", "+33145000001", "+33612345678", 60))
    out, _ = rated(frame, buckets_for(100, start="2026-10-10"))
    assert out["allowance_s"].to_dict() == {1: 0, 2: 60}
    out, _ = rated(frame, buckets_for(100, start="2026-09-01", end="2026-10-02"))
    assert out["allowance_s"].to_dict() == {1: 60, 2: 0}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.text("0123456789", min_size=1, max_size=10).filter(lambda p: p[0] != "0"), min_size=1,
             max_size=40, unique=True),
    st.lists(st.tuples(st.integers(0, 39), st.text("0123456789", min_size=0, max_size=9)), min_size=1, max_size=40),
    st.lists(st.text("0123456789", min_size=6, max_size=15).filter(lambda p: p[0] != "0"), max_size=10),
)
def test_longest_prefix_match_agrees_with_brute_force(prefixes, built, others):
    plan = RatePlan(
        code="P", destinations=pd.DataFrame({"prefix": prefixes, "name": prefixes, "zone_code": "Z"}),
        time_bands=pd.DataFrame(columns=["band", "weekdays", "start_minute", "end_minute"]),
        rates=pd.DataFrame([(1, "Z", "*", 0, False)],
                           columns=["rate_id", "zone_code", "band", "connect_fee_units", "charge_unanswered"]),
        intervals=pd.DataFrame([(1, 0, 10_000, 1)],
                               columns=["rate_id", "from_second", "price_per_minute_micros", "increment_s"]),
    )
    numbers = [prefixes[i % len(prefixes)] + tail for i, tail in built] + others
    numbers = [n[:15] for n in numbers]
    got = match_destinations(compile_plan(plan), np.array([int(n) for n in numbers], dtype=np.int64))
    for number, row in zip(numbers, got, strict=True):
        matches = [i for i, p in enumerate(prefixes) if number.startswith(p)]
        expected = max(matches, key=lambda i: len(prefixes[i])) if matches else -1
        assert row == expected, (number, prefixes[row] if row >= 0 else None)


def test_digit_count_is_exact_at_every_power_of_ten():
    values = [10**k + d for k in range(16) for d in (-1, 0, 1) if 10**k + d > 0]
    values += [2**k + d for k in range(1, 53) for d in (-1, 0, 1)]
    assert digit_count(np.array(values, dtype=np.int64)).tolist() == [len(str(v)) for v in values]


def test_lines_on_several_plans_are_rated_together():
    """Plan 2 prices France at 0.10/min with a 0.05 connect fee and has no UK destination; a
    line of plan 9, which is not loaded, gets an error naming it."""
    other = RatePlan(
        code="OTHER",
        destinations=pd.DataFrame([("33", "France", "FR")], columns=["prefix", "name", "zone_code"]),
        time_bands=pd.DataFrame(columns=["band", "weekdays", "start_minute", "end_minute"]),
        rates=pd.DataFrame([(7, "FR", "*", 500, False)],
                           columns=["rate_id", "zone_code", "band", "connect_fee_units", "charge_unanswered"]),
        intervals=pd.DataFrame([(7, 0, 100_000, 60)],
                               columns=["rate_id", "from_second", "price_per_minute_micros", "increment_s"]),
    )
    lines = pd.concat([LINES, pd.DataFrame(
        [("+33145000005", 5, 2, date(2026, 1, 1), None), ("+33145000006", 6, 9, date(2026, 1, 1), None)],
        columns=LINES.columns)], ignore_index=True)
    frame = calls(
        ("2026-10-21 10:00:00", "+33145000005", "+33155000000", 61),  # plan 2: 0.05 + 2 min at 0.10
        ("2026-10-21 10:00:00", "+33145000001", "+33155000000", 60),  # plan 1, peak: 0.06
        ("2026-10-21 10:00:00", "+33145000005", "+442079460958", 60),  # plan 2 has no +44
        ("2026-10-21 10:00:00", "+33145000006", "+33155000000", 60),  # plan 9 is not loaded
        ("2026-10-21 10:00:00", "+33145000005", "+33612345678", 30),  # plan 2: 0.05 + 1 min
    )
    result = rate(frame, lines, {1: PLAN, 2: other}, "2026-10")
    out, errors = result.rated.set_index("cdr_id"), result.errors.set_index("cdr_id")
    assert out["price_units"].to_dict() == {1: 2_500, 2: 600, 5: 1_500}
    assert out["zone_code"].to_dict() == {1: "FR", 2: "FIX", 5: "FR"}
    assert out["rate_id"].to_dict() == {1: 7, 2: 1, 5: 7}
    assert out["destination_prefix"].to_dict() == {1: "33", 2: "33", 5: "33"}
    assert out["customer_id"].to_dict() == {1: 5, 2: 1, 5: 5}
    assert errors["reason"].to_dict() == {3: "no_destination", 4: "no_rate"}
    assert "plan OTHER" in errors.loc[3, "message"]
    assert errors.loc[4, "message"] == "rate plan 9 is not loaded"


def _plan(code, destinations, price_per_minute):
    return RatePlan(
        code=code,
        destinations=pd.DataFrame(destinations, columns=["prefix", "name", "zone_code"]),
        time_bands=pd.DataFrame(columns=["band", "weekdays", "start_minute", "end_minute"]),
        rates=pd.DataFrame([(9, "MOB", "*", 0, False)],
                           columns=["rate_id", "zone_code", "band", "connect_fee_units", "charge_unanswered"]),
        intervals=pd.DataFrame([(9, 0, price_per_minute * 100, 1)],  # 1/10,000 to micro units
                               columns=["rate_id", "from_second", "price_per_minute_micros", "increment_s"]),
    )


def test_one_allowance_per_customer_and_zone_across_the_plans_of_its_lines():
    """Customer 1 has a line on PLAN and one on plan 2 (mobiles at 0.24/min): its 10 minutes to
    mobiles are shared: 8 min on the first line, then 2 of the 8 min on the second, whose other
    6 min cost 6 x 0.24 = 1.44."""
    lines = pd.concat([LINES, pd.DataFrame([("+33145000007", 1, 2, date(2026, 1, 1), None)], columns=LINES.columns)],
                      ignore_index=True)
    frame = calls(("2026-10-02 10:00:00", "+33145000001", "+33612345678", 480),
                  ("2026-10-03 10:00:00", "+33145000007", "+33612345678", 480))
    result = rate(frame, lines, {1: PLAN, 2: _plan("TWO", [("336", "Mobiles", "MOB")], 2400)}, "2026-10",
                  buckets=buckets_for(10))
    out = result.rated.set_index("cdr_id")
    assert result.errors.empty
    assert out[["allowance_s", "price_units"]].values.tolist() == [[480, 0], [120, 14_400]]


def test_a_plan_without_destinations_and_odd_inputs_are_errors_not_crashes():
    empty = _plan("EMPTY", [], 2400)
    result = rate(calls(("2026-10-21 10:00:00", "+33145000001", "+33155000000", 60),
                        ("2026-10-21 10:00:00", "+33199999999", "+33155000000", 60)),
                  LINES, {1: empty}, "2026-10")
    assert result.rated.empty
    assert result.errors.set_index("cdr_id")["reason"].to_dict() == {1: "no_destination", 2: "no_line"}
    # numbers as digits that are no E.164 number, against a plan with prefixes of more than 8 digits
    long = compile_plan(_plan("LONG", [("33612345678", "One number", "MOB"), ("33", "France", "MOB")], 100))
    got = match_destinations(long, np.array([1234567890123456, 10**15, -2, -1, 0, 33612345678], dtype=np.int64))
    assert got.tolist() == [-1, -1, -1, -1, -1, 0]


@pytest.mark.parametrize("other", [-1, 10**12])  # next to customer 0 in a dense table; hashed
def test_allowances_are_found_by_customer_whatever_its_id(other):
    """Customer 0 has unlimited calls to fixed numbers; the other customer has none and pays its
    peak minute (0.06)."""
    lines = pd.DataFrame([("+33145000001", 0, 1, date(2026, 1, 1), None),
                          ("+33145000002", other, 1, date(2026, 1, 1), None)], columns=LINES.columns)
    subs = pd.DataFrame([(0, 10, 1, "2026-10-01", None)],
                        columns=["customer_id", "product_id", "quantity", "start_date", "end_date"])
    if other > 0:  # a bucket of the other customer, to another zone, makes its key big
        subs.loc[1] = (other, 11, 1, "2026-10-01", None)
    allowances = pd.DataFrame([(10, "FIX", None), (11, "INT", None)], columns=["product_id", "zone_code", "seconds"])
    buckets = allowance_buckets(subs, allowances, Period.parse("2026-10"), "Europe/Paris")
    frame = calls(("2026-10-02 10:00:00", "+33145000001", "+33155000000", 60),
                  ("2026-10-02 10:00:00", "+33145000002", "+33155000000", 60))
    out = rate(frame, lines, {1: PLAN}, "2026-10", buckets=buckets).rated.set_index("cdr_id")
    assert out[["allowance_s", "price_units"]].values.tolist() == [[60, 0], [0, 600]]


def test_public_holidays_are_rated_as_sundays():
    """peak Mon-Fri 08:00-20:00, weekend Sat-Sun all day, offpeak otherwise: a holiday is a Sunday."""
    from workbench.rating import compile_plan
    from workbench.rating.classify import minute_bands

    plan = RatePlan(code="BANDS", destinations=PLAN.destinations, rates=PLAN.rates, intervals=PLAN.intervals,
                    time_bands=pd.DataFrame([("peak", "0,1,2,3,4", 480, 1200), ("weekend", "5,6", 0, 1440)],
                                            columns=["band", "weekdays", "start_minute", "end_minute"]))
    compiled = compile_plan(plan)

    def band_at(utc: str) -> str:
        minute = int(pd.Timestamp(utc).timestamp()) // 60
        return compiled.bands[int(minute_bands(compiled, minute, 1)[0])]

    assert band_at("2026-11-11T09:00:00Z") == "weekend"  # Wednesday 10:00 in Paris, Armistice Day
    assert band_at("2026-11-01T09:00:00Z") == "weekend"  # Sunday and All Saints' Day
    assert band_at("2026-11-12T09:00:00Z") == "peak"  # the Thursday after: a working day
    assert band_at("2026-11-12T20:00:00Z") == "offpeak"  # 21:00 on a working day
    assert band_at("2026-11-14T09:00:00Z") == "weekend"  # a Saturday
