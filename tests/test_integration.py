"""CDR files into the database, then rating, on SQLite and PostgreSQL.

The reference data is the minimal operator of :mod:`factories` (plan ``TEST``). Prices are in
1/10,000 EUR ("units") and worked out by hand; Paris is UTC+2 until 2026-10-25, then UTC+1.
"""

from __future__ import annotations

import gzip
import itertools
import os
import sqlite3
import subprocess
import sys
import threading
from datetime import datetime, timedelta

import pandas as pd
import pytest
from factories import (
    RATES,
    all_calls,
    all_ratings,
    asterisk_cdrs,
    asterisk_row,
    bill_calls,
    native_cdrs,
    reference_folder,
    table_counts,
)
from sqlalchemy import select

from workbench import cli, jobs
from workbench.config import Settings
from workbench.db import calls as call_store
from workbench.db import schema as s
from workbench.db.frames import read_frame
from workbench.errors import InputError, UnavailableError
from workbench.integration import load_cdr_file, load_cdr_files
from workbench.period import Period
from workbench.phone_numbers import from_digits
from workbench.rated_calls import rate_period
from workbench.reference import load_reference

NOW = datetime(2026, 11, 2, 6, 0, 0)
LATER = datetime(2026, 11, 3, 7, 30, 0)

# The switch's file for October. Comments: local time, what becomes of the record.
SWITCH_ROWS = [
    # line 2: Wed 10:00 peak, fixed, 125 s at 0.06/min = 0.1250
    ["A1", "2026-10-07T10:00:00+02:00", "+33145000001", "+33155000000", "125"],
    # 3: Wed 21:00 (local, no offset), mobile: 0.10 + 60 s at 0.12/min + 1 s = 0.2220
    ["A2", "2026-10-07T21:00:00", "0145000001", "0612345678", "61"],
    # 4: Sat 11:00, UK: 0.20 + one 60 s step at 0.60/min = 0.8000
    ["A3", "2026-10-10T09:00:00Z", "+33145000001", "00442079460958", "45"],
    # 5: Mon 08:00, C2's line, unanswered fixed call: free
    ["A4", "2026-10-12T08:00:00+02:00", "+33145000002", "+33155000000", "0"],
    # 6: C2's line ended on 14 Oct -> unknown_line
    ["A5", "2026-10-20T10:00:00+02:00", "+33145000002", "+33155000000", "30"],
    # 7: Wed 14 Oct 23:30 local (21:30 UTC), C2's last day: off-peak 90 s at 0.03/min = 0.0450
    ["A6", "2026-10-14T23:30:00", "+33145000002", "+33155000001", "90"],
    # 8: 15 Oct 00:30 local (still 14 Oct in UTC): C2's line has ended -> unknown_line
    ["A7", "2026-10-15T00:30:00+02:00", "+33145000002", "+33155000001", "90"],
    # 9: bad_date
    ["A8", "2026-10-32T10:00:00", "+33145000001", "+33155000000", "60"],
    # 10: bad_duration
    ["A9", "2026-10-07T11:00:00+02:00", "+33145000001", "+33155000000", "12.5"],
    # 11: line 2 again, written otherwise -> duplicate
    ["A1-bis", "2026-10-07T08:00:00Z", "0145000001", "01 55 00 00 00", "125"],
    # 12: Mon 26 Oct 10:00 CET (09:00 UTC), C1's second line (from 15 Oct): peak 60 s = 0.0600
    ["A10", "2026-10-26T10:00:00", "+33145000003", "+33155000000", "60"],
    # 13: C1's second line starts on 15 Oct -> unknown_line
    ["A11", "2026-10-14T10:00:00+02:00", "0145000003", "+33155000000", "60"],
    # 14: accepted, but +1 is no destination of the plan (a rating error)
    ["A12", "2026-10-08T10:00:00+02:00", "+33145000001", "+12025550123", "30"],
    # 15: Fri 12:00, unanswered UK call: the connect fee is charged, 0.2000
    ["A13", "2026-10-09T12:00:00+02:00", "+33145000001", "+442079460958", "0"],
]
SWITCH_ACCEPTED = ["A1", "A2", "A3", "A4", "A6", "A10", "A12", "A13"]
SWITCH_REJECTS = {6: "unknown_line", 8: "unknown_line", 9: "bad_date", 10: "bad_duration",
                  11: "duplicate", 13: "unknown_line"}

# The PBX's Master.csv, overlapping the switch's file
PBX_ROWS = [
    # line 1: A1 again -> duplicate
    asterisk_row("0145000001", "0155000000", "2026-10-07 10:00:00", "125", uniqueid="P1"),
    # 2: A2 again -> duplicate
    asterisk_row("+33145000001", "06 12 34 56 78", "2026-10-07 21:00:00", "61", uniqueid="P2"),
    # 3: new. Tue 27 Oct 15:00 CET; billsec 100 of 110:
    #    0.20 + 60 s at 0.60/min + 40 s in 30 s steps = 60 s at 0.30/min: 0.2000+0.6000+0.3000
    asterisk_row("0145000001", "00442079460958", "2026-10-27 15:00:00", "100", "110",
                 uniqueid="P3"),
    # 4: as A1 but one second longer: another call. Peak 126 s at 0.06/min = 0.1260
    asterisk_row("0145000001", "0155000000", "2026-10-07 10:00:00", "126", uniqueid="P4"),
    # 5: C2's line ended -> unknown_line
    asterisk_row("0145000002", "0155000000", "2026-10-20 10:00:00", "30", uniqueid="P5"),
]

PRICES = {"A1": 1250, "A2": 2220, "A3": 8000, "A4": 0, "A6": 450, "A10": 600, "A13": 2000,
          "P3": 11000, "P4": 1260}


@pytest.fixture
def loaded_reference(engine, tmp_path):
    counts = load_reference(engine, reference_folder(tmp_path / "reference"))
    assert counts["customers"] == 2 and counts["lines"] == 3
    return engine


@pytest.fixture
def switch_file(tmp_path):
    path = tmp_path / "switch-2026-10.csv"
    path.write_bytes(native_cdrs(SWITCH_ROWS))
    return path


@pytest.fixture
def pbx_file(tmp_path):
    path = tmp_path / "Master.csv"
    path.write_bytes(asterisk_cdrs(PBX_ROWS))
    return path


def clock(start=NOW):
    ticks = itertools.count()
    return lambda: start + timedelta(minutes=next(ticks))


def frame(engine, statement) -> pd.DataFrame:
    with engine.connect() as connection:
        return read_frame(connection, statement)


def stored_calls(engine) -> pd.DataFrame:
    calls = all_calls(engine)
    calls["start_utc"] = pd.to_datetime(calls["start_utc"])
    for column in ("calling", "called"):  # stored as E.164 digits
        calls[column] = from_digits(calls[column]).astype(object)
    return calls


def stored_rejects(engine) -> pd.DataFrame:
    return frame(engine, select(s.CdrReject.__table__).order_by(s.CdrReject.file_id,
                                                                 s.CdrReject.line_no))


def ratings(engine) -> pd.DataFrame:
    """Rated calls with the switch id of their call, by switch id."""
    rated = all_ratings(engine)
    switch_id = all_calls(engine).set_index("id")["switch_id"]
    rated["switch_id"] = rated["cdr_id"].astype("int64").map(switch_id)
    return rated.set_index("switch_id").sort_index()


def test_records_are_accepted_or_rejected_with_their_reason(loaded_reference, switch_file,
                                                             settings):
    engine = loaded_reference
    report = load_cdr_file(engine, switch_file, settings, NOW)
    assert (report.status, report.format) == ("loaded", "native")
    assert (report.records, report.accepted, report.rejected) == (14, 8, 6)
    assert report.by_reason == {"bad_date": 1, "bad_duration": 1, "duplicate": 1,
                                "unknown_line": 3}

    files = frame(engine, select(s.CdrFile.__table__))
    assert len(files) == 1
    row = files.iloc[0]
    assert (row["id"], row["name"], row["format"]) == (
        report.file_id, "switch-2026-10.csv", "native")
    assert (row["records"], row["accepted"], row["rejected"]) == (14, 8, 6)
    assert pd.Timestamp(row["loaded_at"]) == pd.Timestamp(NOW)
    assert len(row["sha256"]) == 64

    calls = stored_calls(engine)
    assert calls["switch_id"].tolist() == SWITCH_ACCEPTED
    assert calls["line_no"].tolist() == [2, 3, 4, 5, 7, 12, 14, 15]
    assert set(calls["file_id"]) == {report.file_id}
    by_id = calls.set_index("switch_id")
    assert by_id.loc["A1", ["calling", "called", "duration_s"]].tolist() == [
        "+33145000001", "+33155000000", 125]
    assert by_id.loc["A2", ["calling", "called", "duration_s"]].tolist() == [
        "+33145000001", "+33612345678", 61]
    assert by_id.loc["A3", "called"] == "+442079460958"
    assert by_id["start_utc"].to_dict() == {
        "A1": pd.Timestamp("2026-10-07 08:00:00"), "A2": pd.Timestamp("2026-10-07 19:00:00"),
        "A3": pd.Timestamp("2026-10-10 09:00:00"), "A4": pd.Timestamp("2026-10-12 06:00:00"),
        "A6": pd.Timestamp("2026-10-14 21:30:00"), "A10": pd.Timestamp("2026-10-26 09:00:00"),
        "A12": pd.Timestamp("2026-10-08 08:00:00"), "A13": pd.Timestamp("2026-10-09 10:00:00"),
    }

    rejects = stored_rejects(engine)
    assert dict(zip(rejects["line_no"], rejects["reason"], strict=True)) == SWITCH_REJECTS
    assert set(rejects["file_id"]) == {report.file_id}
    by_line = rejects.set_index("line_no")
    assert by_line.loc[11, "raw"] == ",".join(SWITCH_ROWS[9])
    assert "line 2" in by_line.loc[11, "message"]
    assert "+33145000002" in by_line.loc[6, "message"]


def test_unknown_line_follows_the_local_validity_dates(loaded_reference, tmp_path, settings):
    # C2: +33145000002 from 2026-01-01 to 2026-10-14; C1: +33145000003 from 2026-10-15 (local)
    rows = [
        ["B1", "2025-12-31T23:59:59+01:00", "+33145000002", "+33155000000", "1"],  # 2 before
        ["B2", "2026-01-01T00:00:00+01:00", "+33145000002", "+33155000000", "1"],  # 3 first second
        ["B3", "2026-10-14T21:59:59Z", "+33145000002", "+33155000000", "1"],  # 4 23:59:59 local
        ["B4", "2026-10-14T22:00:00Z", "+33145000002", "+33155000000", "1"],  # 5 00:00 on 15th
        ["B5", "2026-10-14T21:59:59Z", "+33145000003", "+33155000000", "1"],  # 6 the day before
        ["B6", "2026-10-14T22:00:00Z", "+33145000003", "+33155000000", "1"],  # 7 first second
        ["B7", "2026-10-20T10:00:00Z", "+33145000009", "+33155000000", "1"],  # 8 nobody's
    ]
    path = tmp_path / "bounds.csv"
    path.write_bytes(native_cdrs(rows))
    report = load_cdr_file(loaded_reference, path, settings, NOW)
    assert (report.accepted, report.rejected) == (3, 4)
    assert stored_calls(loaded_reference)["switch_id"].tolist() == ["B2", "B3", "B6"]
    rejects = stored_rejects(loaded_reference)
    assert rejects["line_no"].tolist() == [2, 5, 6, 8]
    assert set(rejects["reason"]) == {"unknown_line"}


def test_the_same_file_twice_is_skipped(loaded_reference, switch_file, settings, tmp_path):
    engine = loaded_reference
    first = load_cdr_file(engine, switch_file, settings, NOW)
    before = table_counts(engine)
    assert (before["cdr_files"], before["calls"], before["cdr_rejects"]) == (1, 8, 6)

    again = load_cdr_file(engine, switch_file, settings, LATER)
    assert again.status == "skipped"
    copy = tmp_path / "copy-of-switch.csv"
    copy.write_bytes(switch_file.read_bytes())
    assert load_cdr_files(engine, [copy], settings, clock())[0].status == "skipped"
    assert table_counts(engine) == before
    files = frame(engine, select(s.CdrFile.name, s.CdrFile.loaded_at))
    assert files["name"].tolist() == ["switch-2026-10.csv"]
    assert pd.Timestamp(files["loaded_at"].iloc[0]) == pd.Timestamp(NOW)

    # the same content compressed is another file, but every call in it is already stored
    packed = tmp_path / "switch-2026-10.csv.gz"
    packed.write_bytes(gzip.compress(switch_file.read_bytes()))
    report = load_cdr_file(engine, packed, settings, LATER)
    assert report.status == "loaded" and report.file_id != first.file_id
    assert (report.records, report.accepted) == (14, 0)
    assert report.by_reason == {"bad_date": 1, "bad_duration": 1, "duplicate": 9,
                                "unknown_line": 3}
    after = table_counts(engine)
    assert (after["cdr_files"], after["calls"], after["cdr_rejects"]) == (2, 8, 6 + 14)


def test_overlapping_file_in_the_other_format(loaded_reference, switch_file, pbx_file, settings):
    engine = loaded_reference
    reports = load_cdr_files(engine, [switch_file, pbx_file], settings, clock())
    assert [r.status for r in reports] == ["loaded", "loaded"]
    pbx = reports[1]
    assert (pbx.format, pbx.records, pbx.accepted, pbx.rejected) == ("asterisk", 5, 2, 3)
    assert pbx.by_reason == {"duplicate": 2, "unknown_line": 1}

    files = frame(engine, select(s.CdrFile.name, s.CdrFile.format, s.CdrFile.loaded_at)
                  .order_by(s.CdrFile.id))
    assert files["name"].tolist() == ["switch-2026-10.csv", "Master.csv"]
    assert files["format"].tolist() == ["native", "asterisk"]
    assert [pd.Timestamp(t) for t in files["loaded_at"]] == [
        pd.Timestamp(NOW), pd.Timestamp(NOW + timedelta(minutes=1))]

    calls = stored_calls(engine)
    assert calls["switch_id"].tolist() == [*SWITCH_ACCEPTED, "P3", "P4"]
    new = calls.set_index("switch_id").loc[["P3", "P4"]]
    assert new["file_id"].tolist() == [pbx.file_id] * 2
    assert new["line_no"].tolist() == [3, 4]
    assert new["duration_s"].tolist() == [100, 126]  # billsec
    assert new["start_utc"].tolist() == [pd.Timestamp("2026-10-27 14:00:00"),
                                         pd.Timestamp("2026-10-07 08:00:00")]
    assert new["called"].tolist() == ["+442079460958", "+33155000000"]
    # no call is stored twice
    assert not calls.duplicated(["calling", "called", "start_utc", "duration_s"]).any()

    rejects = stored_rejects(engine)
    mine = rejects[rejects["file_id"] == pbx.file_id]
    assert dict(zip(mine["line_no"], mine["reason"], strict=True)) == {
        1: "duplicate", 2: "duplicate", 5: "unknown_line"}
    a1_id = int(calls.set_index("switch_id").loc["A1", "id"])
    assert f"call {a1_id}" in mine.set_index("line_no").loc[1, "message"]
    assert mine.set_index("line_no").loc[2, "raw"] == asterisk_cdrs([PBX_ROWS[1]]).decode().strip()


def test_a_malformed_file_stores_nothing(loaded_reference, switch_file, pbx_file, settings,
                                         tmp_path):
    engine = loaded_reference
    load_cdr_file(engine, switch_file, settings, NOW)
    before = table_counts(engine)

    truncated = tmp_path / "switch-2026-10-b.csv"
    good = native_cdrs([["C1", "2026-10-28T10:00:00+01:00", "+33145000001", "+33155000000", "60"],
                        ["C2", "2026-10-20T10:00:00+02:00", "+33145000002", "+33155000000", "5"]])
    truncated.write_bytes(good + b"C3,2026-10-28T11:00:00+01:00,+3314500")
    with pytest.raises(InputError) as caught:
        load_cdr_file(engine, truncated, settings, LATER)
    assert (caught.value.source, caught.value.line) == ("switch-2026-10-b.csv", 4)
    assert "switch-2026-10-b.csv, line 4" in str(caught.value)
    assert table_counts(engine) == before

    latin1 = tmp_path / "latin1.csv"
    bad_line = "C4,2026-10-28T12:00:00+01:00,+33145000001,Thé,60\n"
    latin1.write_bytes(good + bad_line.encode("latin-1"))
    with pytest.raises(InputError, match=r"latin1\.csv, line 4"):
        load_cdr_file(engine, latin1, settings, LATER)
    assert table_counts(engine) == before

    # in a batch, the files before the bad one stay loaded, the ones after it are not read
    later = tmp_path / "later.csv"
    later.write_bytes(native_cdrs([["D1", "2026-10-29T10:00:00+01:00", "+33145000001",
                                    "+33155000000", "60"]]))
    with pytest.raises(InputError, match=r"switch-2026-10-b\.csv, line 4"):
        load_cdr_files(engine, [pbx_file, truncated, later], settings, clock(LATER))
    after = table_counts(engine)
    assert after["cdr_files"] == before["cdr_files"] + 1
    assert after["calls"] == before["calls"] + 2
    assert after["cdr_rejects"] == before["cdr_rejects"] + 3
    assert frame(engine, select(s.CdrFile.name).order_by(s.CdrFile.id))["name"].tolist() == [
        "switch-2026-10.csv", "Master.csv"]


def test_rating_prices_the_month(loaded_reference, switch_file, pbx_file, settings):
    engine = loaded_reference
    load_cdr_files(engine, [switch_file, pbx_file], settings, clock())
    summary = rate_period(engine, Period.parse("2026-10"), settings, LATER)
    assert (summary.calls, summary.rated, summary.errors, summary.kept_billed) == (10, 9, 1, 0)
    assert summary.amount_units == sum(PRICES.values()) == 26780
    assert summary.errors_by_reason == {"no_destination": 1}

    rated = ratings(engine)
    assert rated["price_units"].to_dict() == PRICES
    assert rated["period"].unique().tolist() == ["2026-10"]
    assert rated["band"].to_dict() == {
        "A1": "peak", "A2": "offpeak", "A3": "offpeak", "A4": "peak", "A6": "offpeak",
        "A10": "peak", "A13": "peak", "P3": "peak", "P4": "peak"}
    assert rated["zone_code"].to_dict() == {
        "A1": "FIX", "A2": "MOB", "A3": "INT", "A4": "FIX", "A6": "FIX", "A10": "FIX",
        "A13": "INT", "P3": "INT", "P4": "FIX"}
    assert rated.loc["A2", "destination_prefix"] == "336"
    assert rated.loc["A4", "rule"] == "unanswered_free"
    assert rated.loc["A13", "rule"] == "unanswered_fee"
    assert rated.loc["P3", "rule"] == "rate"
    assert rated.loc["P3", "duration_s"] == 100
    assert rated["invoice_id"].isna().all()
    assert {pd.Timestamp(t) for t in rated["rated_at"]} == {pd.Timestamp(LATER)}
    customers = dict(frame(engine, select(s.Customer.account_number, s.Customer.id)).values)
    assert rated.loc[["A4", "A6"], "customer_id"].tolist() == [customers["C2"]] * 2
    assert rated.loc["A10", "customer_id"] == customers["C1"]

    errors = frame(engine, select(s.RatingError.__table__))
    a12 = int(stored_calls(engine).set_index("switch_id").loc["A12", "id"])
    assert errors[["cdr_id", "period", "reason"]].values.tolist() == [
        [a12, "2026-10", "no_destination"]]

    # rating again without a change gives the same prices and stores nothing twice
    counts = table_counts(engine)
    rate_period(engine, "2026-10", settings, LATER + timedelta(hours=1))
    assert table_counts(engine) == counts
    assert ratings(engine)["price_units"].to_dict() == PRICES


def test_rerating_after_a_tariff_change_keeps_billed_calls(loaded_reference, switch_file, pbx_file,
                                                          settings, tmp_path):
    engine = loaded_reference
    load_cdr_files(engine, [switch_file, pbx_file], settings, clock())
    rate_period(engine, Period.parse("2026-10"), settings, NOW)
    first = ratings(engine)
    with engine.begin() as connection:
        bill_calls(connection, [int(first.loc["A1", "cdr_id"]), int(first.loc["A2", "cdr_id"])], 7001)
    billed = ratings(engine).loc[["A1", "A2"]]
    assert billed["invoice_id"].tolist() == [7001, 7001]

    # the fixed peak rate doubles (0.12/min) and the mobile connect fee goes to 0.20
    corrected = [["TEST", "FIX", "peak", "0", "no", "0:0.12/1"], *RATES[1:]]
    corrected[2] = ["TEST", "MOB", "*", "0.20", "no", "0:0.12/60 60:0.12/1"]
    counts = load_reference(engine, reference_folder(tmp_path / "fix", only=["rates"],
                                                     rates=corrected))
    assert {table: n for table, n in counts.items() if n} == {"rates": 4}

    summary = rate_period(engine, Period.parse("2026-10"), settings, LATER)
    assert (summary.calls, summary.rated, summary.errors, summary.kept_billed) == (8, 7, 1, 2)
    after = ratings(engine)
    assert after["price_units"].to_dict() == {
        "A1": 1250, "A2": 2220,  # billed: kept as they were
        "A3": 8000, "A4": 0, "A6": 450, "A13": 2000, "P3": 11000,  # rates unchanged
        "A10": 1200,  # 60 s at 0.12/min
        "P4": 2520,  # 126 s at 0.12/min
    }
    assert summary.amount_units == 8000 + 0 + 450 + 2000 + 11000 + 1200 + 2520
    kept = after.loc[["A1", "A2"]]
    pd.testing.assert_frame_equal(kept, billed)  # every column, rated_at included
    assert {pd.Timestamp(t) for t in kept["rated_at"]} == {pd.Timestamp(NOW)}
    others = after.drop(index=["A1", "A2"])
    assert others["invoice_id"].isna().all()
    assert {pd.Timestamp(t) for t in others["rated_at"]} == {pd.Timestamp(LATER)}
    counts = table_counts(engine)
    assert (counts["ratings"], counts["rating_errors"]) == (9, 1)


# A call id is the switch's reference for a call (disputes, tracing back to the switch). One that
# cannot be kept as written (longer than its column, or holding a control character) makes its
# record a bad one, rejected with a reason like any other while the rest of the file loads: one odd
# record must not hold up the billing of a whole file, and cutting or cleaning the id would store
# a reference the switch never wrote. A NUL byte is another matter: no text file holds one, so the
# file's bytes are damaged (a file cut short and padded with zeros, say) and the whole file is
# refused, naming the line, with nothing stored. Either way, never a database error.
@pytest.mark.parametrize("call_id", ["X" * 65, "X\x1bY", "X\tY"], ids=["65-characters", "escape", "tab"])
def test_a_call_id_that_cannot_be_kept_as_written_rejects_its_record(loaded_reference, settings, tmp_path,
                                                                     call_id):
    engine = loaded_reference
    path = tmp_path / "odd.csv"
    good = "G" * 64  # the longest call id, kept whole
    path.write_bytes(native_cdrs([
        [good, "2026-10-07T10:00:00+02:00", "+33145000001", "+33155000000", "60"],
        [call_id, "2026-10-07T11:00:00+02:00", "+33145000001", "+33155000000", "60"],
    ]))
    report = load_cdr_file(engine, path, settings, NOW)
    assert (report.records, report.accepted, report.rejected, report.by_reason) == (2, 1, 1, {"bad_call_id": 1})
    assert stored_calls(engine)["switch_id"].tolist() == [good]
    rejects = frame(engine, select(s.CdrReject.line_no, s.CdrReject.reason, s.CdrReject.message, s.CdrReject.raw))
    assert rejects[["line_no", "reason"]].values.tolist() == [[3, "bad_call_id"]]
    assert rejects["message"][0] == ("call_id is 65 characters long, more than 64" if len(call_id) == 65
                                     else f"call_id {call_id!r} holds a control character")
    assert rejects["raw"][0] == f"{call_id},2026-10-07T11:00:00+02:00,+33145000001,+33155000000,60"


def test_a_nul_byte_refuses_the_whole_file(loaded_reference, settings, tmp_path):
    engine = loaded_reference
    path = tmp_path / "odd.csv"
    path.write_bytes(native_cdrs([
        ["G1", "2026-10-07T10:00:00+02:00", "+33145000001", "+33155000000", "60"],
        ["X\x00Y", "2026-10-07T11:00:00+02:00", "+33145000001", "+33155000000", "60"],
    ]))
    before = table_counts(engine)
    with pytest.raises(InputError) as refused:
        load_cdr_file(engine, path, settings, NOW)
    assert (refused.value.source, refused.value.line) == ("odd.csv", 3)
    assert "NUL byte" in refused.value.message
    assert table_counts(engine) == before


def test_a_trunk_zero_after_the_country_code_is_one_number_for_lines_and_calls(engine, settings, tmp_path):
    """``+33 06 12 34 56 78`` as people write it is +33612345678, on a line and in a CDR alike."""
    load_reference(engine, reference_folder(tmp_path / "reference", lines=[
        ["C1", "+33 01 45 00 00 01", "2026-01-01", ""],  # the line written with its trunk zero
        ["C2", "+33145000002", "2026-01-01", ""],
    ]))
    with engine.connect() as connection:
        lines = sorted(connection.execute(select(s.Line.number)).scalars())
    assert lines == ["+33145000001", "+33145000002"]
    path = tmp_path / "calls.csv"
    path.write_bytes(native_cdrs([
        ["T1", "2026-10-07T10:00:00+02:00", "+33145000001", "+33 06 12 34 56 78", "60"],
        ["T2", "2026-10-07T11:00:00+02:00", "+33 01 45 00 00 02", "0612345678", "60"],
    ]))
    report = load_cdr_file(engine, path, settings, NOW)
    assert (report.accepted, report.rejected) == (2, 0)  # each calling number is a customer's line
    stored = all_calls(engine)[["calling", "called"]]
    assert stored.values.tolist() == [[33145000001, 33612345678], [33145000002, 33612345678]]


# --- rejects a reference fix cures --------------------------------------------------------------

LATE_ROWS = [
    # line 2: Tue 20 Oct 10:00 local, +33145000009 is nobody's line yet -> unknown_line, pending.
    #   Once C1 holds it: peak, fixed, 60 s at 0.06/min = 0.0600 = 600 units
    ["R1", "2026-10-20T10:00:00+02:00", "+33145000009", "+33155000000", "60"],
    # 3: C1's line: accepted. Peak, 30 s at 0.06/min = 0.0300 = 300 units
    ["R2", "2026-10-20T11:00:00+02:00", "+33145000001", "+33155000000", "30"],
    # 4: bad_date: final, no reference fix cures it
    ["R3", "2026-10-32T10:00:00", "+33145000009", "+33155000000", "60"],
]


def test_a_record_rejected_for_an_unknown_line_becomes_a_call_once_the_line_is_added(engine, settings, tmp_path):
    from dataclasses import replace

    from factories import LINES

    from workbench import jobs
    from workbench.integration import Reprocessing
    from workbench.reads.calls import pending_rejects
    from workbench.reads.runs import run_report

    settings = replace(settings, output_dir=str(tmp_path / "out"), storage_url=str(tmp_path / "ftp"))
    first = jobs.load_reference(engine, settings, reference_folder(tmp_path / "reference"), clock=lambda: NOW)
    assert first.reprocessed == Reprocessing()  # nothing pending yet
    path = tmp_path / "late.csv"
    path.write_bytes(native_cdrs(LATE_ROWS))
    report = jobs.load_cdrs(engine, settings, [path], clock=lambda: NOW).files[0]
    assert (report.accepted, report.rejected) == (1, 2)
    assert report.by_reason == {"bad_date": 1, "unknown_line": 1}
    assert pending_rejects(engine, settings.timezone).values.tolist() == [["2026-10", "unknown_line", 1]]
    assert pending_rejects(engine, settings.timezone, "2026-11").empty

    # the control report of a run made now shows the record still pending
    jobs.rate(engine, settings, "2026-10", LATER)
    run = jobs.preprod(engine, settings, jobs.run_options(settings, "2026-10"), LATER).run.run_id
    anomalies = run_report(engine, run, settings)["Anomalies"]
    pending = anomalies[anomalies["Problem"] == "rejects_pending"]
    assert pending["Detail"].tolist() == ["1 records still pending a reference fix: unknown_line"]

    # the line is added to C1 from 1 October: loading the reference re-processes the pending record
    added = LINES + [["C1", "+33145000009", "2026-10-01", ""]]
    loaded = jobs.load_reference(engine, settings, reference_folder(tmp_path / "fixed", lines=added),
                                 clock=lambda: LATER)
    assert loaded.reprocessed == Reprocessing(examined=1, accepted=1, duplicates=0, pending=0)
    calls = stored_calls(engine).set_index("switch_id")
    assert calls.loc["R1", ["file_id", "line_no", "calling", "duration_s"]].tolist() == [
        report.file_id, 2, "+33145000009", 60]
    rejects = stored_rejects(engine).set_index("line_no")
    assert rejects.loc[2, "status"] == "accepted" and rejects.loc[2, "cdr_id"] == calls.loc["R1", "id"]
    assert pd.Timestamp(rejects.loc[2, "resolved_at"]) == pd.Timestamp(LATER)
    assert rejects.loc[4, "status"] == "final" and pd.isna(rejects.loc[4, "cdr_id"])
    assert pending_rejects(engine, settings.timezone).empty

    # the file itself is still skipped, and nothing is stored twice
    counts = table_counts(engine)
    assert jobs.load_cdrs(engine, settings, [path], clock=lambda: LATER).files[0].status == "skipped"
    assert jobs.reprocess_rejects(engine, settings, clock=lambda: LATER) == Reprocessing()
    assert table_counts(engine) == counts

    # rated and billed once: 600 + 300 = 900 units; C1's invoice has the two calls
    summary = rate_period(engine, "2026-10", settings, LATER)
    assert (summary.calls, summary.rated, summary.amount_units) == (2, 2, 900)
    assert ratings(engine)["price_units"].to_dict() == {"R1": 600, "R2": 300}
    run = jobs.preprod(engine, settings, jobs.run_options(settings, "2026-10"), LATER).run.run_id
    sheets = run_report(engine, run, settings)
    invoices = sheets["Invoices"].set_index("Account number")
    assert invoices.loc["C1", "Calls"] == 2
    assert "rejects_pending" not in set(sheets["Anomalies"]["Problem"])


def test_a_pending_record_of_a_call_already_stored_is_a_duplicate(loaded_reference, settings, tmp_path):
    from factories import LINES

    from workbench.integration import Reprocessing, reprocess_rejects

    engine = loaded_reference
    call = ["S1", "2026-10-20T10:00:00+02:00", "+33145000009", "+33155000000", "60"]
    # the same call in two files, both loaded while the line is unknown: two pending records
    for seconds, name in enumerate(("a.csv", "b.csv"), start=1):  # and a call of C1's, another in each
        (tmp_path / name).write_bytes(native_cdrs([call, [name, "2026-10-20T09:00:00Z", "+33145000001",
                                                          "+33155000000", str(seconds)]]))
        assert load_cdr_file(engine, tmp_path / name, settings, NOW).by_reason == {"unknown_line": 1}
    load_reference(engine, reference_folder(tmp_path / "fixed", lines=LINES + [["C1", "+33145000009",
                                                                                "2026-10-01", ""]]))
    # the first becomes the call, the second is its duplicate
    assert reprocess_rejects(engine, settings, LATER) == Reprocessing(2, 1, 1, 0)
    calls = stored_calls(engine)
    assert (calls["switch_id"] == "S1").sum() == 1
    rejects = stored_rejects(engine)
    s1 = int(calls.set_index("switch_id").loc["S1", "id"])
    assert rejects[["status", "cdr_id"]].values.tolist() == [["accepted", s1], ["duplicate", s1]]

    # a third file with the call: a duplicate at load, as any call already stored
    (tmp_path / "c.csv").write_bytes(native_cdrs([call]))
    assert load_cdr_file(engine, tmp_path / "c.csv", settings, LATER).by_reason == {"duplicate": 1}


def test_a_record_still_on_no_line_stays_pending(loaded_reference, settings, tmp_path, capsys):
    from workbench import cli
    from workbench.integration import Reprocessing, reprocess_rejects

    engine = loaded_reference
    path = tmp_path / "nobody.csv"
    path.write_bytes(native_cdrs([["N1", "2026-10-20T10:00:00+02:00", "+33145000009", "+33155000000", "60"]]))
    load_cdr_file(engine, path, settings, NOW)
    assert reprocess_rejects(engine, settings, LATER) == Reprocessing(1, 0, 0, 1)
    assert stored_rejects(engine)["status"].tolist() == ["pending"]
    assert cli.main(["--database-url", settings.database_url, "reprocess-rejects"]) == 0
    assert capsys.readouterr().out == ("rejected CDR records pending a reference fix: 1 re-processed, 0 now accepted "
                                       "as calls, 0 duplicates of stored calls, 1 still pending\n")


def test_asterisk_times_in_utc_are_rated_in_the_operators_time(loaded_reference, settings, tmp_path, monkeypatch,
                                                                capsys):
    from dataclasses import replace

    from workbench import cli, jobs
    from workbench.config import load_settings
    from workbench.errors import ConfigError

    rows = [
        # Tue 20 Oct 18:30 UTC = 20:30 CEST: off-peak (peak ends at 20:00), fixed 60 s at 0.03/min = 300 units
        asterisk_row("0145000001", "0155000000", "2026-10-20 18:30:00", "60", uniqueid="U1"),
        # Sat 31 Oct 23:30 UTC = Sun 1 Nov 00:30 CET: November, off-peak, 300 units
        asterisk_row("0145000001", "0155000000", "2026-10-31 23:30:00", "60", uniqueid="U2"),
    ]
    path = tmp_path / "Master.csv"
    path.write_bytes(asterisk_cdrs(rows))
    engine = loaded_reference
    jobs.load_cdrs(engine, settings, [path], times="utc", clock=lambda: NOW)
    october = rate_period(engine, "2026-10", settings, LATER)
    november = rate_period(engine, "2026-11", settings, LATER)
    assert (october.calls, october.amount_units, november.calls, november.amount_units) == (1, 300, 1, 300)
    rated = ratings(engine)
    assert rated[["period", "band"]].values.tolist() == [["2026-10", "offpeak"], ["2026-11", "offpeak"]]

    # the setting does the same for every load; the CLI's --times overrides it
    monkeypatch.setenv("WORKBENCH_ASTERISK_TIMES", "utc")
    assert load_settings().asterisk_times == "utc"
    monkeypatch.setenv("WORKBENCH_ASTERISK_TIMES", "gmt")
    with pytest.raises(ConfigError, match="WORKBENCH_ASTERISK_TIMES"):
        load_settings()
    monkeypatch.delenv("WORKBENCH_ASTERISK_TIMES")
    other = tmp_path / "other" / "Master.csv"
    other.parent.mkdir()
    other.write_bytes(asterisk_cdrs([asterisk_row("0145000001", "0155000000", "2026-10-20 18:30:00", "61")]))
    report = load_cdr_file(engine, other, replace(settings, asterisk_times="utc"), LATER)
    assert report.accepted == 1
    starts = stored_calls(engine).set_index("duration_s")["start_utc"]
    assert starts[61] == pd.Timestamp("2026-10-20 18:30:00")
    again = tmp_path / "again.csv"
    again.write_bytes(asterisk_cdrs([asterisk_row("0145000001", "0155000000", "2026-10-20 18:30:00", "62")]))
    assert cli.main(["--database-url", settings.database_url, "load-cdrs", "--times", "local", str(again)]) == 0
    assert "1 accepted" in capsys.readouterr().out
    # local time: 18:30 CEST = 16:30 UTC
    assert stored_calls(engine).set_index("duration_s")["start_utc"][62] == pd.Timestamp("2026-10-20 16:30:00")


def test_rejects_stored_before_they_were_kept_pending_come_back_from_their_file(loaded_reference, settings,
                                                                                  tmp_path):
    from factories import LINES

    from workbench import jobs
    from workbench.integration import Reprocessing

    engine = loaded_reference
    path = tmp_path / "Master.csv"
    # line 1: nobody's line yet; line 2: C1's, accepted
    path.write_bytes(asterisk_cdrs([asterisk_row("0145000009", "0155000000", "2026-10-20 10:00:00", "60"),
                                    asterisk_row("0145000001", "0155000000", "2026-10-20 10:05:00", "30")]))
    load_cdr_file(engine, path, settings, NOW)
    # as the migration leaves a reject stored before: final, without the call
    with engine.begin() as connection:
        connection.execute(s.CdrReject.__table__.update().values(
            status="final", start_utc=None, calling=None, called=None, duration_s=None, switch_id=None))
    load_reference(engine, reference_folder(tmp_path / "fixed", lines=LINES + [["C1", "+33145000009",
                                                                                "2026-10-01", ""]]))
    assert jobs.reprocess_rejects(engine, settings, lambda: LATER) == Reprocessing()
    # the file read again gives it its call: 10:00 CEST = 08:00 UTC
    assert jobs.reprocess_rejects(engine, settings, lambda: LATER, files=[path]) == Reprocessing(1, 1, 0, 0)
    call = stored_calls(engine).set_index("line_no").loc[1]
    assert (call["calling"], call["start_utc"], call["duration_s"]) == (
        "+33145000009", pd.Timestamp("2026-10-20 08:00:00"), 60)
    assert stored_rejects(engine)["status"].tolist() == ["accepted"]
    # nothing more the second time; a file never loaded is refused
    assert jobs.reprocess_rejects(engine, settings, lambda: LATER, files=[path]) == Reprocessing()
    other = tmp_path / "other.csv"
    other.write_bytes(b"x")
    with pytest.raises(InputError, match="other.csv: was never loaded"):
        jobs.reprocess_rejects(engine, settings, lambda: LATER, files=[other])


def test_a_wholesale_rate_keeps_its_six_decimals(engine, settings, tmp_path):
    """A carrier's deck prices per minute to 5 or 6 decimals: the rate is stored exactly (in
    1/1,000,000) and the call's price is rounded once, half up, to 1/10,000."""
    wholesale = [*RATES[:2], ["TEST", "MOB", "*", "0", "no", "0:0.00625/1"], RATES[3]]
    load_reference(engine, reference_folder(tmp_path / "reference", rates=wholesale))
    with engine.connect() as connection:
        stored = connection.execute(select(s.RateInterval.price_per_minute_micros)
                                    .join(s.Rate, s.Rate.id == s.RateInterval.rate_id)
                                    .where(s.Rate.zone_code == "MOB")).scalars().all()
    assert stored == [6_250]  # 0.00625 x 1,000,000
    calls = tmp_path / "mobile.csv"
    # Wed 7 Oct 21:00, 61 s to a mobile, per second at 0.00625/min:
    # 0.00625 x 61 / 60 = 0.38125 / 60 = 0.006354166... -> 0.0064 (64 units)
    calls.write_bytes(native_cdrs([["W1", "2026-10-07T21:00:00", "0145000001", "0612345678", "61"]]))
    load_cdr_file(engine, calls, settings, NOW)
    summary = rate_period(engine, Period.parse("2026-10"), settings, LATER)
    assert ratings(engine)["price_units"].to_dict() == {"W1": 64}
    assert summary.amount_units == 64


# --- files read in chunks, and refused as a whole ------------------------------------------


def test_a_file_read_in_chunks_stores_what_it_stores_read_at_once(loaded_reference, settings, tmp_path):
    engine = loaded_reference
    # the switch's 14 records, then line 16 repeats line 6 (pending for its line) and line 17
    # line 3 (accepted): read 3 records at a time, lines 11, 16 and 17 repeat lines of earlier chunks
    rows = [*SWITCH_ROWS, ["A5-bis", *SWITCH_ROWS[4][1:]], ["A2-bis", *SWITCH_ROWS[1][1:]]]
    path = tmp_path / "switch-chunks.csv"
    path.write_bytes(native_cdrs(rows))
    report = load_cdr_file(engine, path, settings, NOW, chunk_records=3)
    # 16 records: 8 accepted (as the switch's file), 8 rejected: its 6 and two duplicates
    assert (report.records, report.accepted, report.rejected) == (16, 8, 8)
    assert report.by_reason == {"bad_date": 1, "bad_duration": 1, "duplicate": 3, "unknown_line": 3}
    files = frame(engine, select(s.CdrFile.records, s.CdrFile.accepted, s.CdrFile.rejected))
    assert files.values.tolist() == [[16, 8, 8]]
    assert stored_calls(engine)["line_no"].tolist() == [2, 3, 4, 5, 7, 12, 14, 15]
    rejects = stored_rejects(engine).set_index("line_no")
    assert rejects["reason"].to_dict() == {**SWITCH_REJECTS, 16: "duplicate", 17: "duplicate"}
    assert rejects.loc[11, "message"] == "the same call is on line 2"
    assert rejects.loc[16, "message"] == "the same call is on line 6"
    assert rejects.loc[17, "message"] == "the same call is on line 3"
    assert rejects.loc[6, "status"] == "pending" and rejects.loc[16, "status"] == "final"


def test_a_file_read_in_chunks_finds_stored_calls_before_and_after_the_times_read_so_far(
        loaded_reference, settings, tmp_path, monkeypatch):
    engine = loaded_reference
    calls = "call_id,start_time,calling,called,duration_s\n"

    def call(name: str, day: int, hour: int) -> str:  # C1's line to a fixed number, 60 s
        return f"{name},2026-10-{day:02d}T{hour:02d}:00:00Z,+33145000001,+33155000000,60\n"

    first = tmp_path / "first.csv"  # calls 1, 2, 3 (stored in start order): 1, 10 and 20 October
    first.write_text(calls + call("A1", 1, 10) + call("A2", 10, 10) + call("A3", 20, 10))
    assert load_cdr_file(engine, first, settings, NOW).accepted == 3
    second = tmp_path / "second.csv"
    # two records a chunk: 12 and 14 October (new); 1 October (before the times read so far: A1)
    # and 25 October (new, after them); 20 October (A3, within them) and line 2 again
    second.write_text(calls + call("B1", 12, 9) + call("B2", 14, 9) + call("B3", 1, 10) + call("B4", 25, 9)
                      + call("B5", 20, 10) + call("B6", 12, 9))
    decoded = []  # the blocks of stored calls the load decodes: the first file's one block, once
    decode = call_store.decode
    monkeypatch.setattr(call_store, "decode", lambda data, *a: decoded.append(len(data)) or decode(data, *a))
    report = load_cdr_file(engine, second, settings, NOW, chunk_records=2)
    assert len(decoded) == 1  # though its three chunks reach before, within and after the times read
    assert (report.records, report.accepted, report.rejected) == (6, 3, 3)
    rejects = stored_rejects(engine).set_index("line_no")
    assert rejects["message"].to_dict() == {
        4: "the same call is already loaded (call 1)",
        6: "the same call is already loaded (call 3)",
        7: "the same call is on line 2",
    }
    assert sorted(stored_calls(engine)["line_no"].tolist()) == [2, 2, 3, 3, 4, 5]


def test_a_file_out_of_time_order_finds_repeats_in_any_earlier_chunk(loaded_reference, settings, tmp_path):
    engine = loaded_reference
    calls = "call_id,start_time,calling,called,duration_s\n"

    def call(name: str, day: int) -> str:  # C1's line to a fixed number at 10:00 UTC, 60 s
        return f"{name},2026-10-{day:02d}T10:00:00Z,+33145000001,+33155000000,60\n"

    # two records a chunk, the days out of order: 25, 20 | 5, 25 (line 2 again) | 1, 5 (line 4
    # again) | 20 (line 3 again): each repeat is of a call two or more chunks before
    path = tmp_path / "unordered.csv"
    path.write_text(calls + call("B1", 25) + call("B2", 20) + call("B3", 5) + call("B4", 25) + call("B5", 1)
                    + call("B6", 5) + call("B7", 20))
    report = load_cdr_file(engine, path, settings, NOW, chunk_records=2)
    assert (report.records, report.accepted, report.rejected) == (7, 4, 3)
    assert sorted(stored_calls(engine)["line_no"].tolist()) == [2, 3, 4, 6]
    assert stored_rejects(engine).set_index("line_no")["message"].to_dict() == {
        5: "the same call is on line 2", 7: "the same call is on line 4", 8: "the same call is on line 3"}


def bad_lines_file(path, copies: int, good_first: int = 0):
    """A gzip native file: ``good_first`` good calls (one a minute from 1 Oct 10:00 UTC on the
    first line, C1's), then ``copies`` times one record whose start is no date."""
    good = "".join(f"G{i},2026-10-01T{10 + i // 60:02d}:{i % 60:02d}:00Z,+33145000001,+33155000000,60\n"
                   for i in range(good_first))
    bad = "X,2026-13-01T10:00:00Z,+33145000001,+33155000000,60\n"
    path.write_bytes(gzip.compress(("call_id,start_time,calling,called,duration_s\n" + good + bad * copies).encode()))
    return path


def test_a_file_whose_first_records_are_all_malformed_is_refused_whole(loaded_reference, settings, tmp_path):
    engine = loaded_reference
    before = table_counts(engine)
    path = bad_lines_file(tmp_path / "garbage.csv.gz", 300_000)
    assert path.stat().st_size < 100_000  # 300,000 copies (15 MB) compress to about 45 KB
    with pytest.raises(InputError) as caught:
        load_cdr_file(engine, path, settings, NOW, chunk_records=50_000)
    error = caught.value
    assert (error.source, error.code) == (str(path), "too_many_rejects")
    # stopped after the first chunk: its 20,000 records (a file's first chunk is at most
    # FIRST_CHUNK_RECORDS), all bad_date; the first 3 quoted
    assert str(error).startswith(
        f"{path}: refused as a whole: its first 10,000 records are all malformed (setting reject_threshold_records). "
        "Malformed records among the 20,000 read: bad_date 20,000. For example line 2: bad_date: start_time "
        "'2026-13-01T10:00:00Z' is not a date and time; line 3: bad_date: ")
    assert [(p.key, p.code) for p in error.problems] == [(2, "bad_date"), (3, "bad_date"), (4, "bad_date")]
    assert table_counts(engine) == before  # nothing stored, not even the file


def test_a_file_with_too_many_malformed_records_is_refused_at_its_end(loaded_reference, settings, tmp_path):
    engine = loaded_reference
    before = table_counts(engine)
    strict = Settings(database_url=settings.database_url, reject_threshold_records="100", reject_threshold_percent="5")
    # 200 records: 189 good, 11 bad; 11 * 100 = 1,100 > 5 * 200 = 1,000: refused
    path = bad_lines_file(tmp_path / "many.csv.gz", 11, good_first=189)
    with pytest.raises(InputError, match=r"refused as a whole: 11 of its 200 records are malformed, more than 5 % "
                                         r"\(setting reject_threshold_percent\)\. Malformed records among the 200 "
                                         r"read: bad_date 11\. For example line 191: bad_date"):
        load_cdr_file(engine, path, strict, NOW, chunk_records=30)
    assert table_counts(engine) == before
    # 10 bad of 200 (1,000 is not more than 1,000): loaded, 190 calls and 10 rejects
    path = bad_lines_file(tmp_path / "some.csv.gz", 10, good_first=190)
    report = load_cdr_file(engine, path, strict, NOW, chunk_records=30)
    assert (report.records, report.accepted, report.rejected) == (200, 190, 10)
    # duplicates of calls already stored and records pending for their line are not malformed:
    # the same 190 calls again, and 20 calls of C2's line after it ended (unknown_line)
    ended = "".join(f"U{i},2026-10-20T10:{i:02d}:00Z,+33145000002,+33155000000,60\n" for i in range(20))
    again = tmp_path / "again.csv"
    again.write_text(gzip.decompress(path.read_bytes()).decode().replace(
        "X,2026-13-01T10:00:00Z,+33145000001,+33155000000,60\n", "") + ended)
    report = load_cdr_file(engine, again, strict, NOW, chunk_records=30)
    assert (report.records, report.accepted, report.by_reason) == (210, 0, {"duplicate": 190, "unknown_line": 20})


def checking_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("cdr-check")]


def test_a_load_stopped_early_leaves_no_chunk_being_checked(loaded_reference, settings, tmp_path):
    # the next chunk is read and checked in a worker thread while one is stored: a load refused
    # at its first chunk, a file that breaks after some chunks and a load interrupted by the
    # progress callback store nothing and leave no worker behind
    engine = loaded_reference
    before = table_counts(engine)
    refused = bad_lines_file(tmp_path / "garbage.csv.gz", 60_000)
    with pytest.raises(InputError, match="refused as a whole") as refusal:  # (its frames kept alive)
        load_cdr_file(engine, refused, settings, NOW, chunk_records=10_000)
    assert refusal.value.code == "too_many_rejects" and checking_threads() == []
    good = gzip.decompress(bad_lines_file(tmp_path / "good.csv.gz", 0, good_first=200).read_bytes())
    broken = tmp_path / "broken.csv.gz"
    broken.write_bytes(gzip.compress(good)[:-30])  # the last records and the gzip trailer cut off
    with pytest.raises(InputError, match="not a valid gzip file: damaged or truncated") as caught:
        load_cdr_file(engine, broken, settings, NOW, chunk_records=30)
    assert caught.value.code == "bad_cdr_file"
    assert checking_threads() == []
    whole = tmp_path / "whole.csv"
    whole.write_bytes(good)
    seen = []

    def stop_at_the_third(records):
        seen.append(records)
        if len(seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as interruption:
        load_cdr_file(engine, whole, settings, NOW, chunk_records=30, on_records=stop_at_the_third)
    assert interruption.type is KeyboardInterrupt
    assert seen == [30, 30, 30] and checking_threads() == []
    assert table_counts(engine) == before
    # the same file loaded whole: 200 records a chunk of 30 at a time, in line order
    report = load_cdr_file(engine, whole, settings, NOW, chunk_records=30)
    assert (report.records, report.accepted, report.rejected) == (200, 200, 0)
    assert stored_calls(engine)["line_no"].tolist() == list(range(2, 202))


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads the peak memory from Linux's /proc")
def test_memory_is_bounded_by_a_chunk_not_by_the_file(tmp_path):
    # a process loads one good line then 300,000 bad ones (refused at the end: 300,000 bad of
    # 300,001). Its peak resident memory grows by about 95-100 MB over what it was before the load
    # with chunks of 20,000 records (at most three chunks: one stored, the next checked ahead and
    # the one after read; the checking thread's heap), by about 300-320 MB with the whole file in
    # one chunk (a file ten times as long: ten times as much, unless read in chunks). SQLite's page
    # cache is left at SQLite's default here: the workbench's (256 MiB) holds the rejects stored
    # and is bounded by its setting, not by the file; with it the chunked load took 140-150 MB,
    # which left the comparison a margin of a few per cent
    script = tmp_path / "load.py"
    # (the process's own high-water mark, VmHWM: ru_maxrss would keep the parent's across exec)
    script.write_text(
        "import re, sys\n"
        "from datetime import datetime\n"
        "from pathlib import Path\n"
        "from workbench import jobs\n"
        "from workbench.config import Settings\n"
        "from workbench.errors import InputError\n"
        "from workbench.integration import pipeline\n"
        "from workbench.integration import load_cdr_file\n"
        "pipeline.FIRST_CHUNK_RECORDS = int(sys.argv[3])  # every chunk of the size given\n"
        "from workbench.db import engine as engines\n"
        "engines.SQLITE_CACHE_KIB = 2000  # SQLite's own default: its page cache, bounded apart, left out\n"
        "def peak():\n"
        "    return int(re.search(r'VmHWM:\\s+(\\d+) kB', Path('/proc/self/status').read_text())[1]) * 1024\n"
        "settings = Settings(database_url=sys.argv[1])\n"
        "engine = jobs.open_database(settings)\n"
        "before = peak()\n"
        "try:\n"
        "    load_cdr_file(engine, Path(sys.argv[2]), settings, datetime(2026, 11, 2),\n"
        "                  chunk_records=int(sys.argv[3]))\n"
        "except InputError as exc:\n"
        "    print(exc.code, peak() - before)\n")
    path = bad_lines_file(tmp_path / "garbage.csv.gz", 300_000, good_first=1)
    growth = {}
    for chunk in (20_000, 400_000):
        done = subprocess.run([sys.executable, str(script), f"sqlite:///{tmp_path / f'{chunk}.sqlite'}", str(path),
                               str(chunk)], capture_output=True, text=True, check=True)
        code, grown = done.stdout.split()
        assert code == "too_many_rejects"
        growth[chunk] = int(grown)
    assert growth[20_000] < 200 * 2**20
    assert growth[20_000] * 2 < growth[400_000]


# --- loads at the same time, a database busy ---------------------------------------------


def month_of_calls(path, tag: str, first_minute: int = 0, calls: int = 3_000):
    """A native file of ``calls`` calls of C1's line, one a minute from 1 Oct 00:00 UTC plus
    ``first_minute``; ``tag`` makes the call ids, so that two files of the same calls differ."""
    start = datetime(2026, 10, 1)
    path.write_bytes(native_cdrs([[f"{tag}{i}", f"{start + timedelta(minutes=first_minute + i):%Y-%m-%dT%H:%M:%S}Z",
                                   "+33145000001", "+33155000000", "60"] for i in range(calls)]))
    return path


class ExclusiveRequest:
    """Another session asking for ``call_blocks`` exclusively (an ``ALTER TABLE``, say), in a thread:
    :meth:`start` returns once its request is queued; ``outcome`` is then ``{"calls": n}`` (the
    calls it saw once granted) or ``{"error": ...}`` (not granted within 20 s)."""

    def __init__(self, engine):
        self.engine, self.outcome = engine, {}
        self.thread = threading.Thread(target=self._ask)

    def _ask(self):
        with self.engine.connect() as other:
            other.exec_driver_sql("SET lock_timeout = '20s'")
            try:
                other.exec_driver_sql("LOCK TABLE call_blocks IN ACCESS EXCLUSIVE MODE")
                self.outcome["calls"] = other.exec_driver_sql("SELECT sum(calls) FROM call_blocks").scalar_one()
            except Exception as error:  # noqa: BLE001 - reported by the test
                self.outcome["error"] = error
            other.rollback()

    def start(self):
        self.thread.start()
        with self.engine.connect() as watcher:
            for _ in range(100):
                if watcher.exec_driver_sql("SELECT count(*) FROM pg_locks WHERE NOT granted AND mode = "
                                           "'AccessExclusiveLock' AND relation = 'call_blocks'::regclass").scalar_one():
                    return
                threading.Event().wait(0.05)
        raise AssertionError("the exclusive request was not queued")

    def granted_after(self) -> dict:
        self.thread.join(30)
        return self.outcome


def test_a_session_waiting_behind_a_load_does_not_stop_it(loaded_reference, settings, tmp_path):
    # a session asking for the calls exclusively in the middle of a load waits for the load,
    # which goes on reading and storing calls (its own lock is stronger than what it asks for
    # afterwards) and commits
    engine = loaded_reference
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's lock queue: SQLite has one writer at a time")
    assert load_cdr_file(engine, month_of_calls(tmp_path / "before.csv", "A", calls=60), settings, NOW).accepted == 60
    other = ExclusiveRequest(engine)

    def after_a_chunk(records):
        if not other.thread.is_alive() and not other.outcome:
            other.start()

    # 90 calls read 30 at a time: the first 60 stored before (duplicates), 30 new
    report = load_cdr_file(engine, month_of_calls(tmp_path / "more.csv", "B", calls=90), settings, NOW,
                           chunk_records=30, on_records=after_a_chunk)
    assert (report.accepted, report.by_reason) == (30, {"duplicate": 60})
    assert other.granted_after() == {"calls": 90}  # granted once the load had committed


@pytest.mark.postgres
def test_a_load_sees_the_calls_committed_while_it_waited_whatever_the_default_isolation(postgres_server, tmp_path):
    # with the database's default at REPEATABLE READ, two overlapping files loaded at once
    # still store each call once: a load takes its lock on the calls before its first read,
    # so its snapshot holds the calls of the load it waited for
    from conftest import new_postgres_database

    from workbench.db.engine import make_engine, upgrade

    url = new_postgres_database(postgres_server)
    admin = make_engine(url)
    with admin.connect() as connection:
        name = connection.exec_driver_sql("SELECT current_database()").scalar_one()
        connection.exec_driver_sql(f"ALTER DATABASE {name} SET default_transaction_isolation = 'repeatable read'")
        connection.commit()
    admin.dispose()
    engine = make_engine(url)
    try:
        upgrade(engine)
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SHOW transaction_isolation").scalar_one() == "repeatable read"
        load_reference(engine, reference_folder(tmp_path / "reference"))
        settings = Settings(database_url=url)
        a, b = month_of_calls(tmp_path / "a.csv", "A"), month_of_calls(tmp_path / "b.csv", "B")
        outcomes = in_threads(lambda: load_cdr_file(engine, a, settings, NOW, chunk_records=1_000),
                              lambda: load_cdr_file(engine, b, settings, NOW, chunk_records=1_000))
        assert sorted((r.accepted, r.by_reason.get("duplicate", 0)) for r in outcomes) == [(0, 3_000), (3_000, 0)]
        assert len(stored_calls(engine)) == 3_000
    finally:
        engine.dispose()


def in_threads(*calls):
    """Run each call in its own thread, started together; what each returned or raised."""
    barrier = threading.Barrier(len(calls))
    outcomes: list = [None] * len(calls)

    def run(i, call):
        barrier.wait()
        try:
            outcomes[i] = call()
        except Exception as exc:  # noqa: BLE001 - the test looks at it
            outcomes[i] = exc

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return outcomes


def test_two_loads_of_overlapping_files_at_once_store_each_call_once(loaded_reference, settings, tmp_path):
    engine = loaded_reference
    # the same 3,000 calls in two files: the second load waits for the first, then finds them stored
    a, b = month_of_calls(tmp_path / "a.csv", "A"), month_of_calls(tmp_path / "b.csv", "B")
    outcomes = in_threads(lambda: load_cdr_file(engine, a, settings, NOW),
                          lambda: load_cdr_file(engine, b, settings, NOW))
    assert sorted((r.accepted, r.rejected, r.by_reason.get("duplicate", 0)) for r in outcomes) == [
        (0, 3_000, 3_000), (3_000, 0, 0)]
    # as jobs: one load at a time; a load started meanwhile says which one is in progress
    c = month_of_calls(tmp_path / "c.csv", "C", first_minute=1_500)  # minutes 1,500 to 4,499: 1,500 new
    d = month_of_calls(tmp_path / "d.csv", "D", first_minute=3_000)  # minutes 3,000 to 5,999: 1,500 more
    outcomes = in_threads(lambda: jobs.load_cdrs(engine, settings, [c], clock=lambda: NOW),
                          lambda: jobs.load_cdrs(engine, settings, [d], clock=lambda: NOW))
    for outcome in outcomes:
        if isinstance(outcome, Exception):
            assert isinstance(outcome, UnavailableError) and outcome.code == "job_locked", repr(outcome)
            assert str(outcome).startswith("not loading: another load-cdrs run is in progress: ")
    jobs.load_cdrs(engine, settings, [c, d], clock=lambda: NOW)  # the one refused, if any (the other is skipped)
    calls = stored_calls(engine)
    # minutes 0 to 5,999, each once
    assert len(calls) == 6_000
    assert calls["start_utc"].nunique() == 6_000
    assert frame(engine, select(s.JobLock.name)).empty


def test_sqlite_writes_blocked_too_long_name_the_job_in_progress(tmp_path, monkeypatch, capsys):
    database = tmp_path / "busy.sqlite"
    settings = Settings(database_url=f"sqlite:///{database}", sqlite_busy_timeout="0.5")
    engine = jobs.open_database(settings)
    load_reference(engine, reference_folder(tmp_path / "reference"))
    path = month_of_calls(tmp_path / "october.csv", "A", calls=10)
    # another process's rating run holds a job lock, and a write transaction
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("INSERT INTO job_locks VALUES ('rate', 'billing-host:4242:0badcafe@', '2026-11-02 06:00:00.000000', "
                   "'2026-11-02 06:00:05.000000')")
    holder.execute("BEGIN IMMEDIATE")
    expected = (f"database {database}: the database is busy: another transaction has held its write lock for more "
                "than 0.5 s (setting sqlite_busy_timeout); job in progress: rate (run billing-host:4242:0badcafe, "
                "started 2026-11-02 06:00:00 UTC, last active 2026-11-02 06:00:05 UTC). Nothing was changed by this "
                "command: run it again when that has finished")
    with pytest.raises(UnavailableError) as caught:
        jobs.load_cdrs(engine, settings, [path], clock=lambda: NOW)
    assert (str(caught.value), caught.value.code) == (expected, "database_busy")
    # the command line: one line, exit status 2
    monkeypatch.setenv("WORKBENCH_SQLITE_BUSY_TIMEOUT", "0.5")
    assert cli.main(["--database-url", f"sqlite:///{database}", "load-cdrs", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"error: {expected}\n" in err and "Traceback" not in err
    holder.execute("ROLLBACK")
    holder.close()
    assert table_counts(engine)["calls"] == 0
    load = jobs.load_cdrs(engine, settings, [path], clock=lambda: NOW)
    assert (load.accepted, load.rejected) == (10, 0)
    assert frame(engine, select(s.JobLock.name))["name"].tolist() == ["rate"]  # the load's lock released


def test_a_corrupt_gzip_file_stops_the_command_with_its_name(loaded_reference, settings, tmp_path, capsys):
    engine = loaded_reference
    before = table_counts(engine)
    # 3,000 calls compressed, then 8 bytes in the middle of the deflate stream flipped
    data = bytearray(gzip.compress(month_of_calls(tmp_path / "october.csv", "A").read_bytes()))
    middle = len(data) // 2
    data[middle:middle + 8] = bytes(b ^ 0xFF for b in data[middle:middle + 8])
    path = tmp_path / "october.csv.gz"
    path.write_bytes(bytes(data))
    assert cli.main(["--database-url", settings.database_url, "load-cdrs", str(path)]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert errors[0].startswith("error: october.csv.gz: not a valid gzip file: damaged or truncated (")
    assert errors[0].endswith("); nothing of it is stored")
    assert table_counts(engine) == before


@pytest.mark.parametrize(("variable", "value", "problem"), [
    ("WORKBENCH_REJECT_THRESHOLD_PERCENT", "five", "'five' is not a percentage (0 to 100)"),
    ("WORKBENCH_REJECT_THRESHOLD_PERCENT", "101", "'101' is not a percentage (0 to 100)"),
    ("WORKBENCH_REJECT_THRESHOLD_RECORDS", "0", "'0' is not a number of records (1 or more)"),
    ("WORKBENCH_SQLITE_BUSY_TIMEOUT", "NaN", "'NaN' is not a number of seconds (0 to 86400)"),
])
def test_the_thresholds_and_the_busy_timeout_are_checked_settings(monkeypatch, variable, value, problem):
    from workbench.config import load_settings
    from workbench.errors import ConfigError

    monkeypatch.setenv(variable, value)
    name = variable.removeprefix("WORKBENCH_").lower()
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value) == f"setting {name} ({variable}): {problem}"
