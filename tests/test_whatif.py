"""What-if tariffs: a past period rated under a candidate plan against what was billed, with
hand-computed differences. Times are UTC; Paris is UTC+2 until 2026-10-25."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pytest

from tests.factories import native_cdrs, reference_folder, table_counts, write_csv
from workbench import jobs
from workbench.cli import main
from workbench.errors import InputError
from workbench.period import Period
from workbench.rating import RatePlan, allowance_buckets, rate
from workbench.rating.whatif import detail, summarise, what_if

LINES = pd.DataFrame(
    [("+33145000001", 1, 1, date(2026, 1, 1), None), ("+33145000002", 2, 1, date(2026, 1, 1), None)],
    columns=["number", "customer_id", "rate_plan_id", "valid_from", "valid_to"],
)


def plan(fix_micros: int = 100_000, mob_micros: int = 120_000, fix_increment: int = 1,
         destinations=(("33", "FIX"), ("336", "MOB")), zones_rated=("FIX", "MOB")) -> RatePlan:
    """Fixed calls at ``fix_micros`` per minute (default 0.10/min), mobiles at ``mob_micros``
    (0.12/min), per second, no connect fee, one band."""
    prices = {"FIX": fix_micros, "MOB": mob_micros, "PREM": 500_000}
    rates = [(k + 1, zone, "*", 0, False) for k, zone in enumerate(zones_rated)]
    return RatePlan(
        code="TEST",
        destinations=pd.DataFrame([(p, p, z) for p, z in destinations], columns=["prefix", "name", "zone_code"]),
        time_bands=pd.DataFrame([("peak", "0,1,2,3,4", 480, 1140)],
                                columns=["band", "weekdays", "start_minute", "end_minute"]),
        rates=pd.DataFrame(rates, columns=["rate_id", "zone_code", "band", "connect_fee_units", "charge_unanswered"]),
        intervals=pd.DataFrame([(k + 1, 0, prices[zone], fix_increment if zone == "FIX" else 1)
                                for k, zone in enumerate(zones_rated)],
                               columns=["rate_id", "from_second", "price_per_minute_micros", "increment_s"]),
    )


def calls(*rows) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["start_utc", "calling", "called", "duration_s"])
    frame.insert(0, "cdr_id", range(1, len(frame) + 1))
    frame["start_utc"] = pd.to_datetime(frame["start_utc"]).astype("datetime64[s]")
    return frame


def billed_under(frame: pd.DataFrame, billed_plan: RatePlan, buckets=None) -> pd.DataFrame:
    """The stored ratings a first rating of the period under ``billed_plan`` would have made."""
    return rate(frame, LINES, {1: billed_plan}, "2026-10", buckets=buckets).rated


def line(result, customer: int, zone: str) -> list[int]:
    row = result.lines[(result.lines["customer_id"] == customer) & (result.lines["zone_code"] == zone)]
    assert len(row) == 1
    return row[["billed_cents", "candidate_cents", "difference_cents"]].iloc[0].tolist()


# Monday 5 October 2026, 10:00 UTC: 12:00 in Paris, the peak band
MONDAY = "2026-10-05 10:00:00"


def test_three_calls_of_two_minutes_at_0_10_then_0_15_cost_0_30_more():
    frame = calls(*[(MONDAY, "+33145000001", "+33155000000", 120)] * 3)
    billed = pd.DataFrame({"cdr_id": [1, 2, 3], "customer_id": 1, "zone_code": "FIX", "band": "peak",
                           # 120 s at 0.10/min = 0.2000 EUR = 2,000 units each
                           "price_units": 2_000})
    result = what_if(frame, billed, LINES, {1: plan(fix_micros=150_000)}, "2026-10")
    # billed 3 x 0.20 = 0.60; at 0.15/min, 3 x 0.30 = 0.90: +0.30
    assert line(result, 1, "FIX") == [60, 90, 30]
    assert (result.billed_cents, result.candidate_cents, result.difference_cents) == (60, 90, 30)
    band = result.bands.iloc[0]
    assert (band["zone_code"], band["band"], band["billed_calls"], band["candidate_calls"]) == ("FIX", "peak", 3, 3)
    assert (band["billed_units"], band["candidate_units"], band["difference_units"]) == (6_000, 9_000, 3_000)
    assert result.customers[["customer_id", "billed_calls", "difference_cents"]].values.tolist() == [[1, 3, 30]]
    assert result.errors.empty


def test_the_billed_plan_gives_no_difference_call_for_call():
    frame = calls((MONDAY, "+33145000001", "+33155000000", 61), ("2026-10-04 10:00:00", "+33145000001",
                                                                 "+33612345678", 95),
                  (MONDAY, "+33145000002", "+33612345678", 7))
    billed = billed_under(frame, plan())
    result = what_if(frame, billed, LINES, {1: plan()}, "2026-10")
    assert result.difference_cents == 0 and result.billed_cents > 0
    assert (result.detail["difference_units"] == 0).all() and (result.lines["difference_cents"] == 0).all()


def test_each_customer_and_zone_is_rounded_once_as_its_invoice_line():
    # 61 s at 0.03/min per second: 0.0305 EUR = 305 units; at 0.0343/min: 61 x 0.0343 / 60 =
    # 0.034871... -> 349 units. One call: 305 -> 3 cents, 349 -> 3 cents (both half up): no
    # difference in cents though 44 units more. Two calls on one invoice line: 610 -> 6 cents,
    # 698 -> 7 cents: +0.01 (calls rounded one by one would say 0).
    one = calls((MONDAY, "+33145000001", "+33155000000", 61))
    result = what_if(one, billed_under(one, plan(fix_micros=30_000)), LINES, {1: plan(fix_micros=34_300)}, "2026-10")
    assert line(result, 1, "FIX") == [3, 3, 0]
    assert result.bands["difference_units"].tolist() == [44]
    two = calls(*[(MONDAY, "+33145000001", "+33155000000", 61)] * 2)
    result = what_if(two, billed_under(two, plan(fix_micros=30_000)), LINES, {1: plan(fix_micros=34_300)}, "2026-10")
    assert line(result, 1, "FIX") == [6, 7, 1]
    assert result.difference_cents == 1


def test_calls_moved_to_another_zone_show_on_both_lines():
    # the candidate sends 3361 to a premium zone at 0.50/min: the call of 120 s billed 0.24 as
    # a mobile is 1.00 there: MOB -0.24, PREM +1.00, customer +0.76
    frame = calls((MONDAY, "+33145000001", "+33612345678", 120), (MONDAY, "+33145000001", "+33712345678", 60))
    billed = billed_under(frame, plan(destinations=(("33", "FIX"), ("336", "MOB"), ("337", "MOB"))))
    candidate = plan(destinations=(("33", "FIX"), ("336", "MOB"), ("337", "MOB"), ("3361", "PREM")),
                     zones_rated=("FIX", "MOB", "PREM"))
    result = what_if(frame, billed, LINES, {1: candidate}, "2026-10")
    # MOB: billed 0.24 + 0.12 = 0.36, candidate 0.12; PREM: 0 then 1.00
    assert line(result, 1, "MOB") == [36, 12, -24]
    assert line(result, 1, "PREM") == [0, 100, 100]
    zones = result.zones.set_index("zone_code")
    assert zones.loc["MOB", ["billed_calls", "candidate_calls"]].tolist() == [2, 1]
    assert zones.loc["PREM", ["billed_calls", "candidate_calls"]].tolist() == [0, 1]
    assert result.difference_cents == 76


def test_a_call_the_candidate_cannot_rate_counts_at_zero_and_is_listed():
    frame = calls((MONDAY, "+33145000001", "+33612345678", 120), (MONDAY, "+33145000001", "+33155000000", 60))
    billed = billed_under(frame, plan())
    result = what_if(frame, billed, LINES, {1: plan(zones_rated=("FIX",))}, "2026-10")
    # the mobile call (0.24) has no rate in the candidate: -0.24; the fixed one (0.10) unchanged
    assert line(result, 1, "MOB") == [24, 0, -24]
    assert line(result, 1, "FIX") == [10, 10, 0]
    assert result.errors[["cdr_id", "reason"]].values.tolist() == [[1, "no_rate"]]
    assert "no rate for zone MOB" in result.errors["message"].iloc[0]


def test_allowances_are_shared_out_again_in_chronological_order():
    # customer 1 has 2 minutes to mobiles: of 3 calls of 120 s the first is covered, the others
    # pay: billed at 0.12/min 0 + 0.24 + 0.24 = 0.48; at 0.20/min 0 + 0.40 + 0.40 = 0.80: +0.32
    frame = calls(("2026-10-07 10:00:00", "+33145000001", "+33612345678", 120),
                  ("2026-10-05 10:00:00", "+33145000001", "+33612345678", 120),
                  ("2026-10-06 10:00:00", "+33145000001", "+33612345678", 120))
    subs = pd.DataFrame([(1, 10, 1, "2026-01-01", None)],
                        columns=["customer_id", "product_id", "quantity", "start_date", "end_date"])
    allowances = pd.DataFrame([(10, "MOB", 120)], columns=["product_id", "zone_code", "seconds"])
    buckets = allowance_buckets(subs, allowances, Period.parse("2026-10"), "Europe/Paris")
    billed = billed_under(frame, plan(), buckets)
    assert billed.set_index("cdr_id")["price_units"].to_dict() == {1: 2_400, 2: 0, 3: 2_400}
    result = what_if(frame, billed, LINES, {1: plan(mob_micros=200_000)}, "2026-10", buckets)
    assert line(result, 1, "MOB") == [48, 80, 32]


def test_most_affected_customers_first_either_way_and_parts_add_up():
    # customer 1: 10 fixed calls of 60 s, 0.10 -> 0.08/min: -0.20; customer 2: one mobile call
    # of 60 s, 0.12 -> 0.30/min: +0.18; customer 1 first (larger change), then customer 2
    frame = calls(*[(MONDAY, "+33145000001", "+33155000000", 60)] * 10, (MONDAY, "+33145000002", "+33612345678", 60))
    billed = billed_under(frame, plan())
    candidate = {1: plan(fix_micros=80_000, mob_micros=300_000)}
    result = what_if(frame, billed, LINES, candidate, "2026-10")
    assert result.customers[["customer_id", "difference_cents"]].values.tolist() == [[1, -20], [2, 18]]
    assert result.most_affected(1)["customer_id"].tolist() == [1]
    assert result.difference_cents == -2
    # rated customer by customer (as parts of the calls would be), the same result
    parts = []
    for number in ("+33145000001", "+33145000002"):
        part = frame[frame["calling"] == number]
        parts.append(detail(part, billed[billed["cdr_id"].isin(part["cdr_id"])], LINES, candidate, "2026-10")[0])
    combined = summarise(pd.concat(parts), "2026-10")
    pd.testing.assert_frame_equal(combined.lines, result.lines)
    pd.testing.assert_frame_equal(combined.customers, result.customers)
    pd.testing.assert_frame_equal(combined.bands, result.bands)


def test_a_period_without_calls_costs_nothing_either_way():
    result = what_if(calls(), billed_under(calls(), plan()), LINES, {1: plan(fix_micros=150_000)}, "2026-10")
    assert (result.billed_cents, result.candidate_cents, result.difference_cents) == (0, 0, 0)
    assert result.customers.empty and result.zones.empty and result.bands.empty and result.errors.empty


# ---------------------------------------------------------------------------- the job and the command


def _rated_october(engine, settings, tmp_path):
    """The tests' minimal operator (tests/factories.py) with three calls of C1 on Monday 5
    October at 12:00 Paris (peak): 120 s to a fixed number (0.06/min: 0.12), 120 s to a mobile
    (0.10 + 0.12/min, first minute in one step: 0.34) and 90 s to the UK (0.20 + 0.60 for the
    first minute + 0.30/min in 30 s steps: 0.95); rated."""
    reference_folder(tmp_path / "ref")
    jobs.load_reference(engine, settings, tmp_path / "ref", clock=lambda: datetime(2026, 11, 1))
    path = tmp_path / "cdrs.csv"
    path.write_bytes(native_cdrs([["a1", "2026-10-05T12:00:00", "+33145000001", "+33155000000", "120"],
                                  ["a2", "2026-10-05T12:10:00", "+33145000001", "+33612345678", "120"],
                                  ["a3", "2026-10-05T12:20:00", "+33145000001", "+441234567890", "90"]]))
    jobs.load_cdrs(engine, settings, [path], clock=lambda: datetime(2026, 11, 1))
    summary = jobs.rate(engine, settings, "2026-10", datetime(2026, 11, 1))
    assert summary.amount_units == 1_200 + 3_400 + 9_500


def test_a_rates_file_alone_replaces_the_rates_it_lists_and_nothing_is_stored(engine, settings, tmp_path):
    _rated_october(engine, settings, tmp_path)
    before = table_counts(engine)
    ratings = jobs.what_if_inputs(engine, settings, "2026-10").billed
    # FIX peak from 0.06 to 0.09/min: 120 s is 0.18 instead of 0.12: +0.06; the other rates stay
    rates = write_csv(tmp_path / "candidate" / "rates.csv", ["plan", "zone", "band", "connect_fee",
                                                              "charge_unanswered", "intervals"],
                      [["TEST", "FIX", "peak", "0", "no", "0:0.09/1"]])
    report = jobs.what_if(engine, settings, "2026-10", rates)
    result = report.result
    # billed per line: FIX 0.12, MOB 0.34, INT 0.95 = 1.41
    assert result.billed_cents == 141 and result.difference_cents == 6
    assert line(result, 1, "FIX") == [12, 18, 6]
    assert result.customers[["account_number", "name", "difference_cents"]].values.tolist() == [
        ["C1", "Alpha SARL", 6]]
    assert table_counts(engine) == before
    pd.testing.assert_frame_equal(jobs.what_if_inputs(engine, settings, "2026-10").billed, ratings)
    # the folder itself (the plan as loaded): no difference
    assert jobs.what_if(engine, settings, "2026-10", tmp_path / "ref").result.difference_cents == 0
    # rates edited as rows (the widget's way): the current ones, with UK at 0.90 then 0.45 per minute:
    # 90 s = 0.20 + 0.90 + 30 s at 0.45/min (0.225) = 1.325 -> 1.33 (was 0.95): +0.38
    current = jobs.current_rates(report.inputs)
    assert current.values.tolist() == [  # tests/factories.py's RATES, by zone and band, as the files write them
        ["TEST", "FIX", "offpeak", "0.00", "no", "0:0.03/1"], ["TEST", "FIX", "peak", "0.00", "no", "0:0.06/1"],
        ["TEST", "INT", "*", "0.20", "yes", "0:0.60/60 60:0.30/30"],
        ["TEST", "MOB", "*", "0.10", "no", "0:0.12/60 60:0.12/1"]]
    edited = current.copy()
    edited.loc[edited["zone"] == "INT", "intervals"] = "0:0.90/60 60:0.45/30"
    assert jobs.what_if_rates(engine, settings, "2026-10", edited, report.inputs).result.difference_cents == 38
    assert table_counts(engine) == before


@pytest.mark.parametrize(("content", "where", "message"), [
    ("plan,zone,band,connect_fee,charge_unanswered,intervals\nTEST,FIX,peak,-1,no,0:0.09/1\n",
     "rates.csv, line 2, column connect_fee", "negative"),
    ("plan,zone,band,connect_fee,charge_unanswered,intervals\nTEST,FIX,peak,0,no,0:0.0000001/1\n",
     "rates.csv, line 2, column intervals", ""),
    ("plan,zone,band,connect_fee,charge_unanswered,intervals\nTEST,NOPE,peak,0,no,0:0.09/1\n",
     "rates.csv, line 2, column zone", "not a zone of plan"),
])
def test_a_bad_candidate_is_refused_naming_the_row(engine, settings, tmp_path, content, where, message):
    _rated_october(engine, settings, tmp_path)
    before = table_counts(engine)
    (tmp_path / "rates.csv").write_text(content, encoding="utf-8")
    with pytest.raises(InputError) as caught:
        jobs.what_if(engine, settings, "2026-10", tmp_path / "rates.csv")
    assert str(caught.value).startswith(where) and message in str(caught.value)
    assert table_counts(engine) == before


def test_a_candidate_is_a_plan_folder_or_file(engine, settings, tmp_path):
    _rated_october(engine, settings, tmp_path)
    (tmp_path / "deck.txt").write_text("x", encoding="utf-8")
    (tmp_path / "empty").mkdir()
    for path, message in ((tmp_path / "deck.txt", "is a folder of reference files or one of rate_plans.csv"),
                          (tmp_path / "empty", "no rate plan file"), (tmp_path / "missing", "no such file")):
        with pytest.raises(InputError, match=message):
            jobs.what_if(engine, settings, "2026-10", path)
    with pytest.raises(InputError, match="in the future"):
        jobs.what_if(engine, settings, "2999-01", tmp_path / "ref")


def test_the_command_prints_the_difference(engine, settings, database_url, tmp_path, capsys):
    _rated_october(engine, settings, tmp_path)
    assert main(["--database-url", database_url, "what-if", "--period", "2026-10", "--plan",
                 str(tmp_path / "ref")]) == 0
    out = capsys.readouterr().out
    assert "3 calls, 3 rated (0 on issued invoices)" in out and "difference: €0.00" in out
    write_csv(tmp_path / "candidate" / "rates.csv", ["plan", "zone", "band", "connect_fee", "charge_unanswered",
                                                      "intervals"],
              [["TEST", "MOB", "*", "0.05", "no", "0:0.12/60 60:0.12/1"]])
    assert main(["--database-url", database_url, "what-if", "--period", "2026-10", "--plan",
                 str(tmp_path / "candidate" / "rates.csv")]) == 0
    out = capsys.readouterr().out
    # the mobile connect fee from 0.10 to 0.05: 0.34 -> 0.29, -0.05
    assert "consumption billed €1.41, under the candidate plan €1.36" in out and "difference: -€0.05" in out
    assert "MOB" in out and "C1" in out and "Alpha SARL" in out
    # September has no calls: nothing billed, nothing to change
    assert main(["--database-url", database_url, "what-if", "--period", "2026-09", "--plan",
                 str(tmp_path / "candidate" / "rates.csv")]) == 0
    out = capsys.readouterr().out
    assert "0 calls, 0 rated" in out and "difference: €0.00" in out
    assert main(["--database-url", database_url, "what-if", "--period", "2026-10", "--plan",
                 str(tmp_path / "nowhere")]) == 2
    assert "no such file or folder" in capsys.readouterr().err


@pytest.mark.slow
def test_the_demo_under_the_plan_it_billed_costs_the_same(tmp_path, capsys):
    """The month of ``workbench demo`` on a small generated operator (production included), then
    the what-if of October under the generated reference folder and under the bundled sample's
    (the same plan): 0.00; every rated call is on an issued invoice."""
    from workbench.sample import generate_operator

    generate_operator(tmp_path / "data", seed=7, customers=15, calls=1_500)
    url = f"sqlite:///{tmp_path / 'demo.sqlite'}"
    assert main(["--database-url", url, "demo", "--data", str(tmp_path / "data")]) in (0, 3)
    capsys.readouterr()
    sample = Path(__file__).resolve().parent.parent / "data" / "sample" / "reference"
    for plan in (tmp_path / "data" / "reference", sample):
        assert main(["--database-url", url, "what-if", "--period", "2026-10", "--plan", str(plan)]) == 0
        out = capsys.readouterr().out
        calls = out.split("under ")[1].split(": ")[1].split(" calls")[0]
        rated = out.split("calls, ")[1].split(" rated")[0]
        assert int(rated) > 1_000 and f"({rated} on issued invoices)" in out, out
        assert int(calls) >= int(rated)
        assert "difference: €0.00" in out and "by zone" not in out


def test_the_tables_and_chart_write_money_for_people_even_for_an_empty_period():
    from workbench.ui.whatif import what_if_chart, what_if_tables

    frame = calls(*[(MONDAY, "+33145000001", "+33155000000", 120)] * 3)
    result = what_if(frame, billed_under(frame, plan()), LINES, {1: plan(fix_micros=150_000)}, "2026-10")
    tables = what_if_tables(result)
    # as in the first test: 0.60 billed, 0.90 candidate, +0.30; by band exact to 1/10,000
    assert tables["Customers most affected"][["Billed", "Candidate", "Difference"]].values.tolist() == [
        ["€0.60", "€0.90", "+€0.30"]]
    assert tables["By zone"][["Zone", "Difference"]].values.tolist() == [["FIX", "+€0.30"]]
    assert tables["By zone and band (exact, 1/10,000 EUR)"]["Difference"].tolist() == ["+€0.3000"]
    empty = what_if(calls(), billed_under(calls(), plan()), LINES, {1: plan()}, "2026-10")
    assert all(table.empty for table in what_if_tables(empty).values())
    for figure in (what_if_chart(result), what_if_chart(empty)):
        assert len(figure.axes) == 2
