"""Reading and checking CDR files (:mod:`workbench.cdr.formats`), no database.

Expected values are worked out by hand from ``data/README.md``: Paris is UTC+2 until
2026-10-25 03:00 local (then UTC+1) and from 2026-03-29 02:00 local (before: UTC+1).
"""

from __future__ import annotations

import gzip
import io

import numpy as np
import pandas as pd
import pytest
from factories import NATIVE_HEADER, asterisk_cdrs, asterisk_row, native_cdrs

from workbench.cdr import formats
from workbench.cdr.formats import ASTERISK, NATIVE, check, parse, read_chunks
from workbench.errors import InputError

TZ = "Europe/Paris"
CC = "33"
A = "+33145000001"  # a calling number
B = "+33155000000"  # a called number


def checked(data: bytes, name: str = "cdrs.csv", fmt: str = "auto"):
    parsed = parse(name, data, fmt)
    calls, rejects = check(parsed, TZ, CC)
    return parsed, calls, rejects


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text)


def starts_by_switch_id(calls: pd.DataFrame) -> dict[str, pd.Timestamp]:
    return dict(zip(calls["switch_id"], calls["start_utc"], strict=True))


# --- native format: start times -------------------------------------------------------------


NATIVE_STARTS = [
    # (call_id, start_time as written, expected UTC start)
    ("N1", "2026-10-01T08:12:33+02:00", "2026-10-01 06:12:33"),
    ("N2", "2026-10-01T06:12:34Z", "2026-10-01 06:12:34"),
    ("N3", "2026-10-01T08:12:33-05:00", "2026-10-01 13:12:33"),
    # no offset: Paris local time; summer time (UTC+2) in October before the 25th
    ("N4", "2026-10-01T08:12:35", "2026-10-01 06:12:35"),
    # winter time (UTC+1) in December
    ("N5", "2026-12-01T08:00:00", "2026-12-01 07:00:00"),
    # last second of summer time before the change (03:00 CEST -> 02:00 CET)
    ("N6", "2026-10-25T01:59:59", "2026-10-24 23:59:59"),
    # 02:30 happens twice on 25 Oct: read as standard time (CET, UTC+1)
    ("N7", "2026-10-25T02:30:00", "2026-10-25 01:30:00"),
    # the same wall-clock time with an explicit summer offset is the first 02:30
    ("N8", "2026-10-25T02:30:00+02:00", "2026-10-25 00:30:00"),
    ("N9", "2026-10-25T03:00:00", "2026-10-25 02:00:00"),
    # 02:30 does not exist on 29 Mar (02:00 CET -> 03:00 CEST): shifted forward to 03:00 CEST
    ("N10", "2026-03-29T02:30:00", "2026-03-29 01:00:00"),
    ("N11", "2026-03-29T01:59:00", "2026-03-29 00:59:00"),
    ("N12", "2026-03-29T03:00:00", "2026-03-29 01:00:00"),
]


def test_native_start_times_with_and_without_offsets():
    rows = [[cid, start, A, f"+3315500{i:04d}", "60"]
            for i, (cid, start, _) in enumerate(NATIVE_STARTS)]
    parsed, calls, rejects = checked(native_cdrs(rows))
    assert parsed.format == NATIVE
    assert rejects.empty
    assert starts_by_switch_id(calls) == {cid: utc(expected) for cid, _, expected in NATIVE_STARTS}
    assert calls["line_no"].tolist() == list(range(2, 2 + len(NATIVE_STARTS)))


OFFSET_STARTS = [
    # (call_id, start_time as written, expected UTC start, or None: bad_date)
    ("O1", "2026-10-07T01:30:00-03:30", "2026-10-07 05:00:00"),
    ("O2", "2026-10-07T23:59:59+14:00", "2026-10-07 09:59:59"),
    ("O3", "2026-10-07T00:00:00+14:59", "2026-10-06 09:01:00"),
    ("O4", "2026-10-07T00:00:00-00:00", "2026-10-07 00:00:00"),
    ("O5", "2024-02-29T10:00:00+01:00", "2024-02-29 09:00:00"),  # a leap day
    ("O6", "2000-02-29T10:00:00Z", "2000-02-29 10:00:00"),  # 2000 is a leap year
    ("O7", "2026-02-29T10:00:00+01:00", None),  # 2026 is not
    ("O8", "1900-02-29T10:00:00Z", None),  # nor is 1900
    ("O9", "2026-02-30T10:00:00+01:00", None),
    ("O10", "2026-04-31T10:00:00Z", None),
    ("O11", "2026-10-07T23:59:60+02:00", None),  # no leap second
    ("O12", "2026-10-07T24:00:00+02:00", None),
    ("O13", "2026-10-07T23:60:00+02:00", None),
    ("O14", "2026-13-07T10:00:00+02:00", None),
    ("O15", "2026-10-00T10:00:00+02:00", None),
    # other ISO 8601 forms: a fraction of a second (cut), an offset without a colon
    ("O16", "2026-10-07T14:36:28.75+02:00", "2026-10-07 12:36:28"),
    ("O17", "2026-10-07T14:36:28+0530", "2026-10-07 09:06:28"),
    ("O18", "2026-10-07T14:36:28+15:00", "2026-10-06 23:36:28"),  # beyond the zones in use, read as written
    # across a year, before 1970, and the century rules of leap years
    ("O19", "2026-12-31T23:30:00-01:00", "2027-01-01 00:30:00"),
    ("O20", "2027-01-01T00:30:00+01:00", "2026-12-31 23:30:00"),
    ("O21", "1969-12-31T23:59:59Z", "1969-12-31 23:59:59"),
    ("O22", "2026-03-01T00:00:00+01:00", "2026-02-28 23:00:00"),
    ("O23", "2400-02-29T00:00:00Z", "2400-02-29 00:00:00"),  # 2400 is a leap year
    ("O24", "2100-02-29T00:00:00Z", None),  # 2100 is not
    ("O25", "2026-12-32T00:00:00Z", None),
]


def test_times_with_an_offset_are_read_to_their_instant_and_days_that_do_not_exist_are_bad():
    # the usual form (to the second, Z or +hh:mm) is read by a fixed format and the offset's
    # arithmetic, the others by pandas' ISO 8601 parser; a day or time that does not exist is
    # bad_date, never carried over into the next day or minute
    rows = [[cid, start, A, f"+3315500{i:04d}", "60"] for i, (cid, start, _) in enumerate(OFFSET_STARTS)]
    _, calls, rejects = checked(native_cdrs(rows))
    assert starts_by_switch_id(calls) == {cid: utc(expected) for cid, _, expected in OFFSET_STARTS if expected}
    bad = {f"O{line - 1}" for line in rejects.loc[rejects["reason"] == "bad_date", "line_no"]}
    assert bad == {cid for cid, _, expected in OFFSET_STARTS if expected is None}
    assert len(rejects) == len(bad)


def test_offsets_of_other_forms_among_local_times_are_read_and_a_bad_one_is_a_bad_date():
    # "+02" (hours only) and "+2:00" are not the usual form: with local times in the same file
    # each is read as written (pandas reads a column mixing them only as UTC), not a crash
    rows = [["M1", "2026-10-07T14:36:28+02", A, "+33155000001", "60"],
            ["M2", "2026-10-07T16:00:00", A, "+33155000002", "60"],  # Paris, summer time
            ["M3", "2026-10-07T14:36:28+2:00", A, "+33155000003", "60"],
            ["M4", "2026-10-07T14:36:28+99", A, "+33155000004", "60"],
            ["M5", "2026-01-07T16:00:00", A, "+33155000005", "60"]]  # Paris, winter time
    _, calls, rejects = checked(native_cdrs(rows))
    assert starts_by_switch_id(calls) == {"M1": utc("2026-10-07 12:36:28"), "M2": utc("2026-10-07 14:00:00"),
                                          "M3": utc("2026-10-07 12:36:28"), "M5": utc("2026-01-07 15:00:00")}
    assert rejects[["line_no", "reason"]].values.tolist() == [[5, "bad_date"]]


def test_the_usual_times_are_the_instants_pandas_reads_whatever_their_fields():
    # 3,000 times of the usual form with fields in and out of range (month 0-13, day 0-32, hour
    # 0-24, minute and second 0-60, years 1600-2499, offsets Z or -14:59 to +14:59): read from
    # their characters, each is the instant pandas' ISO 8601 parser reads, or NaT where pandas
    # gives none
    rng = np.random.default_rng(7)
    n = 3_000
    fields = [rng.integers(1600, 2500, n), rng.integers(0, 14, n), rng.integers(0, 33, n), rng.integers(0, 25, n),
              rng.integers(0, 61, n), rng.integers(0, 61, n)]
    # and a fifth of them at the end of February of a century's year (leap or not by the 400 rule)
    fields[0][: n // 5] = rng.choice(np.arange(1600, 2500, 100), n // 5)
    fields[1][: n // 5], fields[2][: n // 5] = 2, rng.integers(28, 31, n // 5)
    offsets = [rng.choice(["Z", f"{rng.choice(['+', '-'])}{h:02d}:{m:02d}"])
               for h, m in zip(rng.integers(0, 15, n), rng.integers(0, 60, n), strict=True)]
    times = pd.Series([f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{sec:02d}{z}"
                       for y, mo, d, h, mi, sec, z in zip(*fields, offsets, strict=True)], dtype="string")
    read = formats._parse_times(times, "iso", "Europe/Paris").utc
    expected = pd.Series([pd.to_datetime(t, format="ISO8601", utc=True, errors="coerce") for t in times])
    expected = expected.dt.tz_localize(None).astype("datetime64[s]")
    assert read.notna().sum() > n // 3 and read.isna().sum() > n // 10  # both kinds well represented
    pd.testing.assert_series_equal(read, expected, check_names=False, check_index=False)


def test_times_and_numbers_of_a_series_in_several_arrow_pieces():
    # a Series joined from two (pd.concat) holds two Arrow arrays: read as one
    def two_pieces(first: str, second: str) -> pd.Series:
        return pd.concat([pd.Series([first], dtype="str"), pd.Series([second], dtype="str")], ignore_index=True)

    times = formats._parse_times(two_pieces("2026-01-01T00:00:00Z", "2026-03-01T00:00:00+01:00"), "iso", "UTC")
    assert times.utc.tolist() == [pd.Timestamp("2026-01-01 00:00:00"), pd.Timestamp("2026-02-28 23:00:00")]
    from workbench.phone_numbers import normalise_digits

    assert normalise_digits(two_pieces("0612345678", "+44 20 7946 0958"), "33").tolist() == [
        33612345678, 442079460958]


def test_native_record_fields():
    data = native_cdrs([["SW-1", "2026-10-01T08:12:33+02:00", "0145000001", "0612345678", "65"]])
    parsed, calls, rejects = checked(data)
    assert rejects.empty
    assert parsed.records["raw"].tolist() == [
        "SW-1,2026-10-01T08:12:33+02:00,0145000001,0612345678,65"
    ]
    row = calls.iloc[0]
    assert row["line_no"] == 2
    assert row["start_utc"] == utc("2026-10-01 06:12:33")
    assert (row["calling"], row["called"]) == ("+33145000001", "+33612345678")
    assert calls["calling"].dtype == pd.StringDtype() and calls["called"].dtype == pd.StringDtype()  # <NA> missing
    assert row["duration_s"] == 65
    assert row["switch_id"] == "SW-1"


def test_native_header_in_another_order_with_an_extra_column():
    header = ["Duration_S", "called", "start_time", "trunk", "calling", "call_id"]
    data = native_cdrs([["42", "0155000000", "2026-10-02T10:00:00Z", "T1", "0145000001", "X9"]],
                       header=header)
    _, calls, rejects = checked(data)
    assert rejects.empty
    columns = ["start_utc", "calling", "called", "duration_s", "switch_id"]
    assert calls[columns].iloc[0].tolist() == [
        utc("2026-10-02 10:00:00"), "+33145000001", "+33155000000", 42, "X9"
    ]


def test_windows_line_ends_and_blank_lines_keep_physical_line_numbers():
    text = ("call_id,start_time,calling,called,duration_s\r\n"
            "A,2026-10-01T10:00:00Z,0145000001,0155000000,60\r\n"
            "\r\n"
            "B,2026-10-01T10:00:00Z,0145000001,0155000000,1.5\r\n")
    parsed, calls, rejects = checked(text.encode())
    assert calls["line_no"].tolist() == [2]
    assert rejects[["line_no", "reason"]].values.tolist() == [[4, "bad_duration"]]
    assert rejects["raw"].tolist() == ["B,2026-10-01T10:00:00Z,0145000001,0155000000,1.5"]


def test_byte_order_mark_is_ignored():
    data = b"\xef\xbb\xbf" + native_cdrs([["A", "2026-10-01T10:00:00Z", A, B, "1"]])
    parsed, calls, _ = checked(data)
    assert parsed.format == NATIVE
    assert len(calls) == 1


# --- Asterisk Master.csv --------------------------------------------------------------------


def test_asterisk_18_fields_all_quoted():
    rows = [
        # answered, 130 s from start to hang-up of which 123 billed; dialled to the UK
        asterisk_row("0145000001", "00442079460958", "2026-10-01 10:00:00", "123", "130",
                     uniqueid="1790000000.1"),
        # not answered: billsec 0 although 19 s of ringing
        asterisk_row("0145000001", "0612345678", "2026-10-01 10:05:00", "0", "19",
                     uniqueid="1790000000.2"),
        # winter time after the change of 25 Oct
        asterisk_row("+33145000001", "+33155000000", "2026-11-02 09:00:00", "60",
                     uniqueid="1790000000.3"),
        # the ambiguous 02:30 of 25 Oct is standard time
        asterisk_row("0145000001", "0155000000", "2026-10-25 02:30:00", "5",
                     uniqueid="1790000000.4"),
    ]
    data = asterisk_cdrs(rows)
    assert data.startswith(b'"C100001","0145000001","00442079460958","from-internal",'
                           b'"""0145000001"" <0145000001>",')
    parsed, calls, rejects = checked(data, "Master.csv")
    assert parsed.format == ASTERISK
    assert rejects.empty
    assert calls["line_no"].tolist() == [1, 2, 3, 4]  # no header: the first record is line 1
    assert calls["calling"].tolist() == ["+33145000001"] * 4
    assert calls["called"].tolist() == ["+442079460958", "+33612345678", "+33155000000",
                                        "+33155000000"]
    assert calls["start_utc"].tolist() == [utc("2026-10-01 08:00:00"), utc("2026-10-01 08:05:00"),
                                           utc("2026-11-02 08:00:00"), utc("2026-10-25 01:30:00")]
    assert calls["duration_s"].tolist() == [123, 0, 60, 5]  # billsec, not duration
    assert calls["switch_id"].tolist() == ["1790000000.1", "1790000000.2", "1790000000.3",
                                           "1790000000.4"]
    assert parsed.records["raw"].iloc[0] == data.decode().splitlines()[0]


def test_asterisk_16_fields_without_uniqueid():
    rows = [asterisk_row("0145000001", "0044 20 7946 0958", "2026-10-07 21:00:00", "61", "70",
                         fields=16),
            asterisk_row("0145000001", "0612345678", "2026-10-07 21:10:00", "0", "12", fields=16)]
    parsed, calls, rejects = checked(asterisk_cdrs(rows), "Master.csv")
    assert parsed.format == ASTERISK
    assert rejects.empty
    assert calls["start_utc"].tolist() == [utc("2026-10-07 19:00:00"), utc("2026-10-07 19:10:00")]
    assert calls["called"].tolist() == ["+442079460958", "+33612345678"]
    assert calls["duration_s"].tolist() == [61, 0]
    assert calls["switch_id"].tolist() == ["", ""]


def test_asterisk_forced_format_and_rejects():
    rows = [asterisk_row("anonymous", "0155000000", "2026-10-01 10:00:00", "10"),
            asterisk_row("0145000001", "", "2026-10-01 10:00:00", "10"),
            asterisk_row("0145000001", "0155000000", "2026-02-30 10:00:00", "10"),
            asterisk_row("0145000001", "0155000000", "2026-10-01 10:00:00", "ten")]
    parsed, calls, rejects = checked(asterisk_cdrs(rows), "Master.csv", fmt=ASTERISK)
    assert calls.empty
    assert dict(zip(rejects["line_no"], rejects["reason"], strict=True)) == {
        1: "bad_calling_number", 2: "bad_called_number", 3: "bad_date", 4: "bad_duration"
    }


# --- gzip -----------------------------------------------------------------------------------


def test_gzip_native_and_asterisk_read_like_plain_files():
    native = native_cdrs([["A", "2026-10-01T10:00:00+02:00", "0145000001", "0155000000", "30"]])
    asterisk = asterisk_cdrs([asterisk_row("0145000001", "0155000000", "2026-10-01 10:00:00",
                                           "30")])
    cases = ((native, "cdrs.csv.gz", NATIVE), (asterisk, "Master.csv.gz", ASTERISK))
    for plain, name, fmt in cases:
        parsed, calls, rejects = checked(gzip.compress(plain), name)
        assert parsed.format == fmt
        assert parsed.name == name
        assert rejects.empty
        assert calls[["start_utc", "calling", "called", "duration_s"]].iloc[0].tolist() == [
            utc("2026-10-01 08:00:00"), "+33145000001", "+33155000000", 30
        ]


# --- numbers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "written",
    ["0612345678", "+33 6 12 34 56 78", "0033612345678", "33612345678", "06.12.34.56.78",
     "06-12-34-56-78", "+33612345678", " 0612345678 "],
)
def test_number_forms_become_e164(written):
    data = native_cdrs([["A", "2026-10-01T10:00:00Z", written, written, "1"]])
    _, calls, rejects = checked(data)
    assert rejects.empty
    assert calls[["calling", "called"]].iloc[0].tolist() == ["+33612345678", "+33612345678"]


@pytest.mark.parametrize(
    ("written", "e164"),
    [("0044 20 7946 0958", "+442079460958"), ("+44 20 7946 0958", "+442079460958"),
     ("442079460958", "+442079460958"), ("0145000001", "+33145000001"),
     ("0012025550123", "+12025550123")],
)
def test_international_and_national_numbers(written, e164):
    data = native_cdrs([["A", "2026-10-01T10:00:00Z", A, written, "1"]])
    _, calls, rejects = checked(data)
    assert rejects.empty
    assert calls["called"].tolist() == [e164]


# --- rejects --------------------------------------------------------------------------------


def test_each_reject_reason_with_its_line_and_message():
    rows = [
        ["G1", "2026-10-01T10:00:00+02:00", A, B, "60"],  # 2 good
        ["D1", "2026-10-32T10:00:00", A, B, "60"],  # 3 no 32 October
        ["D2", "yesterday", A, B, "60"],  # 4
        ["C1", "2026-10-01T10:00:01", "12", B, "60"],  # 5 too short
        ["C2", "2026-10-01T10:00:02", "", B, "60"],  # 6 empty
        ["E1", "2026-10-01T10:00:03", A, "abc", "60"],  # 7
        ["F1", "2026-10-01T10:00:04", A, B, "12.5"],  # 8 not whole seconds
        ["F2", "2026-10-01T10:00:05", A, B, ""],  # 9 empty duration
        ["F3", "2026-10-01T10:00:06", A, B, "-5"],  # 10
        # 11: line 2 again: other call_id, number written nationally, start time in UTC
        ["G1-again", "2026-10-01T08:00:00Z", "0145000001", "01 55 00 00 00", "60"],
        ["G2", "2026-10-01T10:00:00+02:00", A, B, "61"],  # 12 other duration: another call
    ]
    parsed, calls, rejects = checked(native_cdrs(rows), "switch.csv")
    assert calls["line_no"].tolist() == [2, 12]
    assert dict(zip(rejects["line_no"], rejects["reason"], strict=True)) == {
        3: "bad_date", 4: "bad_date", 5: "bad_calling_number", 6: "bad_calling_number",
        7: "bad_called_number", 8: "bad_duration", 9: "bad_duration", 10: "negative_duration",
        11: "duplicate",
    }
    message = dict(zip(rejects["line_no"], rejects["message"], strict=True))
    assert "2026-10-32T10:00:00" in message[3]
    assert "'12'" in message[5]
    assert "'abc'" in message[7]
    assert "12.5" in message[8]
    assert "-5" in message[10]
    assert "line 2" in message[11]
    raw = dict(zip(rejects["line_no"], rejects["raw"], strict=True))
    assert raw[8] == f"F1,2026-10-01T10:00:04,{A},{B},12.5"
    assert raw[11] == "G1-again,2026-10-01T08:00:00Z,0145000001,01 55 00 00 00,60"
    assert len(parsed.records) == len(rows) == len(calls) + len(rejects)


def test_durations_of_other_digits_than_ascii_are_bad_not_zero():
    """Only ASCII digits are seconds: '٣٠' (thirty in Arabic-Indic digits) or fullwidth '６０'
    is a bad duration, named in its message, never a call of 0 seconds."""
    rows = [
        ["G1", "2026-10-01T10:00:00+02:00", A, B, "60"],  # 2 good
        ["U1", "2026-10-01T10:01:00+02:00", A, B, "\u0663\u0660"],  # 3 Arabic-Indic 30
        ["U2", "2026-10-01T10:02:00+02:00", A, B, "\uff16\uff10"],  # 4 fullwidth 60
        ["U3", "2026-10-01T10:03:00+02:00", A, B, "-\u0665"],  # 5 minus, then Arabic-Indic 5
    ]
    _, calls, rejects = checked(native_cdrs(rows))
    assert calls[["line_no", "duration_s"]].values.tolist() == [[2, 60]]
    assert dict(zip(rejects["line_no"], rejects["reason"], strict=True)) == {
        3: "bad_duration", 4: "bad_duration", 5: "bad_duration"}
    assert "'\u0663\u0660' is not a whole number of seconds" in rejects["message"].iloc[0]


def test_duplicates_name_the_first_line_of_the_call():
    rows = [
        ["A", "2026-10-01T10:00:00Z", A, B, "60"],  # 2
        ["B", "2026-10-01T11:00:00Z", A, B, "60"],  # 3
        ["C", "2026-10-01T10:00:00Z", A, B, "60"],  # 4 = 2
        ["D", "2026-10-01T11:00:00Z", A, B, "60"],  # 5 = 3
        ["E", "2026-10-01T12:00:00+02:00", A, B, "60"],  # 6 = 2 (10:00 UTC)
    ]
    _, calls, rejects = checked(native_cdrs(rows))
    assert calls["switch_id"].tolist() == ["A", "B"]
    assert rejects["reason"].unique().tolist() == ["duplicate"]
    messages = dict(zip(rejects["line_no"], rejects["message"], strict=True))
    assert messages == {4: "the same call is on line 2", 5: "the same call is on line 3",
                        6: "the same call is on line 2"}


def test_candidates_with_digits_are_the_accepted_calls_numbers_as_integers():
    # the numbers of each accepted call as integers, in line order, whatever was rejected
    # before or between them (a bad date, a duplicate of an earlier line)
    rows = [
        ["A", "2026-10-01T10:00:00Z", "0145000001", "0155000000", "60"],  # 2 accepted
        ["B", "not a time", "0145000002", "0155000000", "60"],  # 3 bad_date
        ["C", "2026-10-01T10:00:00Z", "+33145000001", "0155000000", "60"],  # 4 = 2
        ["D", "2026-10-01T10:05:00Z", "0033 1 45 00 00 03", "+1 212 555 0100", "7"],  # 5 accepted
        ["E", "2026-10-01T10:06:00Z", "01 45 00 00 04", "00442079460000", "0"],  # 6 accepted
    ]
    parsed = parse("cdrs.csv", native_cdrs(rows))
    text, _ = check(parsed, TZ, CC)
    calls, rejects = check(parsed, TZ, CC, digits=True)
    assert rejects[["line_no", "reason"]].values.tolist() == [[3, "bad_date"], [4, "duplicate"]]
    assert calls["line_no"].tolist() == [2, 5, 6]
    assert calls["calling"].tolist() == [33145000001, 33145000003, 33145000004]
    assert calls["called"].tolist() == [33155000000, 12125550100, 442079460000]
    assert str(calls["calling"].dtype) == str(calls["called"].dtype) == "int64"
    assert text["calling"].tolist() == ["+33145000001", "+33145000003", "+33145000004"]
    assert calls.drop(columns=["calling", "called"]).equals(text.drop(columns=["calling", "called"]))


def test_a_rejected_line_does_not_make_a_later_call_a_duplicate():
    rows = [
        ["A", "2026-10-01T10:00:00Z", A, B, "-5"],  # 2 negative_duration
        ["B", "2026-10-01T10:00:00Z", A, B, "0"],  # 3 a valid unanswered call
    ]
    _, calls, rejects = checked(native_cdrs(rows))
    assert rejects[["line_no", "reason"]].values.tolist() == [[2, "negative_duration"]]
    assert calls["line_no"].tolist() == [3]


def test_raw_text_of_a_reject_after_a_unicode_line_separator_in_a_caller_name():
    first = asterisk_row("0145000001", "0155000000", "2026-10-01 10:00:00", "5")
    first[4] = '"Jean\u2028Dupont" <0145000001>'
    second = asterisk_row("0145000001", "0155000000", "2026-10-01 10:01:00", "five")
    data = asterisk_cdrs([first, second])
    _, calls, rejects = checked(data, "Master.csv")
    assert calls["line_no"].tolist() == [1]
    assert rejects["line_no"].tolist() == [2]
    assert rejects["raw"].tolist() == [data.decode().split("\n")[1]]


# --- malformed files ------------------------------------------------------------------------


def error_of(data: bytes, name: str = "cdrs.csv", fmt: str = "auto") -> InputError:
    with pytest.raises(InputError) as caught:
        parse(name, data, fmt)
    return caught.value


GOOD = f"A,2026-10-01T10:00:00Z,{A},{B},60\n"
HEADER = ",".join(NATIVE_HEADER) + "\n"


def test_not_utf8_names_file_and_line():
    latin1 = "B,2026-10-01T10:00:00Z,+33145000001,Café,6\n".encode("latin-1")
    data = (HEADER + GOOD).encode() + latin1
    error = error_of(data, "october.csv")
    assert (error.source, error.line) == ("october.csv", 3)
    assert str(error).startswith("october.csv, line 3:")
    assert "UTF-8" in str(error)


def test_not_utf8_inside_gzip_names_the_decompressed_line():
    data = (HEADER + GOOD + GOOD.replace("A,", "B,")).encode() + b"C\xe9,x,y,z,1\n"
    error = error_of(gzip.compress(data), "october.csv.gz")
    assert (error.source, error.line) == ("october.csv.gz", 4)


@pytest.mark.parametrize("damage", ["flipped", "truncated", "flipped_header"])
def test_a_corrupt_gzip_file_is_refused_naming_it(damage):
    # 2,000 records compressed; bytes flipped in the middle of the deflate stream, or the file
    # cut in half, or the first compressed block's header flipped (zlib.error before any line)
    data = bytearray(gzip.compress((HEADER + GOOD * 2000).encode()))
    if damage == "flipped":
        data[len(data) // 2: len(data) // 2 + 4] = bytes(b ^ 0xFF for b in data[len(data) // 2: len(data) // 2 + 4])
    elif damage == "truncated":
        data = data[: len(data) // 2]
    else:
        data[12] ^= 0x55
    error = error_of(bytes(data), "october.csv.gz")
    assert error.source == "october.csv.gz"
    assert str(error).startswith("october.csv.gz: not a valid gzip file: damaged or truncated (")


def test_a_gzip_file_of_two_members_is_read_whole():
    # two gzip streams one after the other (``cat a.gz b.gz``, as log rotation leaves them): the
    # records of both, in order, by the columnar reader and by the line reader alike
    data = gzip.compress((HEADER + GOOD * 3).encode()) + gzip.compress((GOOD.replace("A,", "Z,") * 2).encode())
    chunks = list(read_chunks("october.csv.gz", io.BytesIO(data), chunk_records=4))
    assert [len(c.records) for c in chunks] == [4, 1]
    assert pd.concat([c.records for c in chunks])["line_no"].tolist() == [2, 3, 4, 5, 6]
    from workbench.cdr.formats import _read_chunks_by_line

    slow = list(_read_chunks_by_line("october.csv.gz", io.BytesIO(data), chunk_records=4))
    assert [len(c.records) for c in slow] == [4, 1]


def test_a_file_read_in_chunks_gives_the_records_of_the_whole_file():
    # records spanning two lines (a quoted line break) and \r\n line ends, read 2 records at a time
    data = (HEADER.replace("\n", "\r\n") + GOOD.replace("\n", "\r\n")
            + f'B,2026-10-01T10:00:00Z,"{A[:4]}\r\n{A[4:]}",{B},60\r\n' + "\r\n"
            + GOOD.replace("A,", "C,") + GOOD.replace("A,", "D,")).encode()
    whole = parse("f.csv", data).records
    chunks = [c.records for c in read_chunks("f.csv", io.BytesIO(gzip.compress(data)), chunk_records=2)]
    assert [len(c) for c in chunks] == [2, 2]
    assert pd.concat(chunks, ignore_index=True).equals(whole)
    # lines 2, 3-4 (one record), 5 blank, 6, 7
    assert whole["line_no"].tolist() == [2, 3, 6, 7]
    assert whole["raw"][1] == f'B,2026-10-01T10:00:00Z,"{A[:4]}\n{A[4:]}",{B},60'


def test_a_repeated_header_column_is_refused_naming_it():
    data = ("call_id,start_time,calling,called,duration_s,duration_s\n" + f"A,2026-10-01T10:00:00Z,{A},{B},60,61\n"
            ).encode()
    error = error_of(data, "twice.csv")
    assert (error.source, error.line, error.column) == ("twice.csv", 1, "duration_s")
    assert str(error) == ("twice.csv, line 1, column duration_s: the header names ['duration_s'] twice: which one "
                          "to read cannot be told")


def test_native_header_missing_a_column():
    data = ("call_id,start_time,calling,called\n" + f"A,2026-10-01T10:00:00Z,{A},{B}\n").encode()
    error = error_of(data, "short.csv")
    assert (error.source, error.line) == ("short.csv", 1)
    assert "duration_s" in str(error)
    assert str(error).startswith("short.csv, line 1:")


def test_truncated_last_line():
    data = (HEADER + GOOD + GOOD.replace("A,", "B,") + "C,2026-10-01T1").encode()
    error = error_of(data, "cut.csv")
    assert (error.source, error.line) == ("cut.csv", 4)
    assert "truncated" in str(error)


def test_native_line_with_too_many_fields():
    data = (HEADER + GOOD + f"B,2026-10-01T10:00:00Z,{A},{B},60,extra\n" + GOOD).encode()
    error = error_of(data)
    assert (error.source, error.line) == ("cdrs.csv", 3)


def test_asterisk_line_with_too_few_fields():
    good = asterisk_row("0145000001", "0155000000", "2026-10-01 10:00:00", "10")
    short = good[:12]
    data = asterisk_cdrs([good, good[:1] + ["0145000002"] + good[2:], short, good])
    error = error_of(data, "Master.csv")
    assert (error.source, error.line) == ("Master.csv", 3)
    assert "12 fields" in str(error)
    first = error_of(asterisk_cdrs([short, good]), "Master.csv")
    assert (first.source, first.line) == ("Master.csv", 1)


def test_asterisk_truncated_last_line_inside_quotes():
    good = asterisk_cdrs([asterisk_row("0145000001", "0155000000", "2026-10-01 10:00:00", "10")])
    data = good + good[:40]
    error = error_of(data, "Master.csv")
    assert (error.source, error.line) == ("Master.csv", 2)


def test_empty_file():
    error = error_of(b"", "empty.csv")
    assert error.source == "empty.csv"


def test_a_bracketed_trunk_zero_is_dropped():
    from workbench.phone_numbers import normalise_one

    assert normalise_one("+33 (0)6 12 34 56 78") == "+33612345678"
    assert normalise_one("+44 (0)20 7946 0958") == "+442079460958"
    assert normalise_one("(01) 45 67 89 00") == "+33145678900"


def test_e164_text_to_digits_takes_only_well_formed_numbers():
    from workbench.phone_numbers import from_digits, to_digits

    texts = ["+33612345678", "+123456789012345", "+1234567890123456", "+0612345678", "33612345678", "+",
             "", None, "+33 612", "+33a12", "+٣٣٦", " +33612345678"]
    assert to_digits(pd.Series(texts, dtype=object)).tolist() == [33612345678, 123456789012345] + [-1] * 10
    assert from_digits(to_digits(pd.Series(["+442079460958"]))).tolist() == ["+442079460958"]


# --- Asterisk: times in UTC, the repeated hour, newcdrcolumns ---------------------------------


def test_asterisk_times_written_in_utc():
    # usegmtime=yes: 18:30 UTC is 20:30 in Paris (UTC+2 on 20 Oct); 23:30 UTC on 31 Oct is
    # 00:30 on 1 Nov in Paris (UTC+1 after 25 Oct)
    rows = [asterisk_row("0145000001", "0155000000", "2026-10-20 18:30:00", "60", uniqueid="U1"),
            asterisk_row("0145000001", "0155000000", "2026-10-31 23:30:00", "60", uniqueid="U2")]
    parsed = parse("Master.csv", asterisk_cdrs(rows))
    calls, rejects = check(parsed, TZ, CC, asterisk_times="utc")
    assert rejects.empty
    assert calls["start_utc"].tolist() == [utc("2026-10-20 18:30:00"), utc("2026-10-31 23:30:00")]
    # read as local time (the default), they are two hours and one hour earlier in UTC
    calls, _ = check(parsed, TZ, CC)
    assert calls["start_utc"].tolist() == [utc("2026-10-20 16:30:00"), utc("2026-10-31 22:30:00")]


def newcdrcolumns_row(src: str, start: str, billsec: str, uniqueid: str, sequence: str) -> list[str]:
    """A Master.csv record of 21 fields: the 18 and peeraccount, linkedid, sequence."""
    return asterisk_row(src, "0155000000", start, billsec, uniqueid=uniqueid) + ["", uniqueid, sequence]


def test_asterisk_21_fields_of_newcdrcolumns():
    rows = [newcdrcolumns_row("0145000001", "2026-10-07 10:00:00", "60", "1790000000.1", "7"),
            newcdrcolumns_row("0145000001", "2026-10-07 10:05:00", "0", "1790000000.2", "8")]
    parsed, calls, rejects = checked(asterisk_cdrs(rows), "Master.csv")
    assert parsed.format == ASTERISK and rejects.empty
    assert parsed.records["sequence"].tolist() == ["7", "8"]
    assert parsed.records["linkedid"].tolist() == ["1790000000.1", "1790000000.2"]
    # 10:00 and 10:05 CEST (UTC+2)
    assert calls["start_utc"].tolist() == [utc("2026-10-07 08:00:00"), utc("2026-10-07 08:05:00")]
    assert calls["duration_s"].tolist() == [60, 0]
    with pytest.raises(InputError, match="22 fields; an Asterisk Master.csv line has 16 to 21"):
        parse("Master.csv", asterisk_cdrs([rows[0] + ["extra"]]))


def test_the_repeated_hour_is_told_apart_by_the_uniqueids_time():
    # 02:30 on 25 Oct happens twice in Paris: 00:30 UTC (CEST) and 01:30 UTC (CET).
    # 2026-10-25 00:00 UTC is 20,751 days after 1970-01-01 = 1,792,886,400 s; the channels were
    # created 10 s and 5 s before their calls: 00:29:50 UTC = 1,792,888,190, 01:29:55 UTC = 1,792,891,795
    rows = [asterisk_row("0145000001", "0155000000", "2026-10-25 02:30:00", "60", uniqueid="1792888190.11"),
            asterisk_row("0145000001", "0155000000", "2026-10-25 02:30:00", "60",
                         uniqueid="pbx1-1792891795.12")]
    _, calls, rejects = checked(asterisk_cdrs(rows), "Master.csv")
    assert rejects.empty
    assert calls["start_utc"].tolist() == [utc("2026-10-25 00:30:00"), utc("2026-10-25 01:30:00")]


def test_the_repeated_hour_is_told_apart_by_the_sequence():
    # uniqueids without a time; the lower sequence (40, line 2) is the first 02:30 (CEST, 00:30 UTC)
    rows = [newcdrcolumns_row("0145000001", "2026-10-25 02:30:00", "60", "call-b", "41"),
            newcdrcolumns_row("0145000001", "2026-10-25 02:30:00", "60", "call-a", "40")]
    _, calls, rejects = checked(asterisk_cdrs(rows), "Master.csv")
    assert rejects.empty
    assert starts_by_switch_id(calls) == {"call-a": utc("2026-10-25 00:30:00"), "call-b": utc("2026-10-25 01:30:00")}


def test_two_calls_of_the_repeated_hour_that_cannot_be_told_apart_are_both_rejected_never_one_dropped():
    rows = [asterisk_row("0145000001", "0155000000", "2026-10-25 02:30:00", "60", uniqueid="call-a"),
            asterisk_row("0145000001", "0155000000", "2026-10-25 02:30:00", "60", uniqueid="call-b"),
            # line 3: the same record twice is still a duplicate
            asterisk_row("0145000001", "0155000000", "2026-10-25 02:40:00", "60", uniqueid="call-c"),
            asterisk_row("0145000001", "0155000000", "2026-10-25 02:40:00", "60", uniqueid="call-c"),
            # line 5: alone in its minute: standard time (CET), 02:45 -> 01:45 UTC
            asterisk_row("0145000001", "0155000000", "2026-10-25 02:45:00", "60", uniqueid="call-d")]
    _, calls, rejects = checked(asterisk_cdrs(rows), "Master.csv")
    assert dict(zip(rejects["line_no"], rejects["reason"], strict=True)) == {
        1: "ambiguous_time", 2: "ambiguous_time", 4: "duplicate"}
    assert rejects["message"].iloc[0] == (
        "start '2026-10-25 02:30:00' is in the hour repeated when summer time ends, as the same call on line 2 "
        "with another id: which hour each started in cannot be told (no uniqueid time, no sequence)")
    assert starts_by_switch_id(calls) == {"call-c": utc("2026-10-25 01:40:00"), "call-d": utc("2026-10-25 01:45:00")}
    # written in UTC (usegmtime=yes) there is no repeated hour: 02:30 UTC twice is one call
    calls, rejects = check(parse("Master.csv", asterisk_cdrs(rows[:2])), TZ, CC, asterisk_times="utc")
    assert rejects["reason"].tolist() == ["duplicate"]


def test_native_records_of_the_repeated_hour_without_offset_are_never_dropped_as_duplicates():
    rows = [["N1", "2026-10-25T02:30:00", A, B, "60"],
            ["N2", "2026-10-25T02:30:00", A, B, "60"],
            # an offset says which 02:30 it is: 00:30 UTC, another call
            ["N3", "2026-10-25T02:30:00+02:00", A, B, "60"]]
    _, calls, rejects = checked(native_cdrs(rows))
    assert dict(zip(rejects["line_no"], rejects["reason"], strict=True)) == {2: "ambiguous_time", 3: "ambiguous_time"}
    assert starts_by_switch_id(calls) == {"N3": utc("2026-10-25 00:30:00")}


# --- telephone numbers normalised for all values at once -------------------------------------


def test_numbers_normalised_at_once_as_phonenumbers_does_one_by_one():
    from workbench.phone_numbers import normalise

    numbers = pd.Series([
        "+33612345678",       # E.164 already: kept
        "0612345678",         # trunk 0 of the home country: 33 + 612345678
        "0033612345678",      # 00 then the international digits
        "+33 0612345678",     # the trunk 0 kept after +33: France drops it (9 digits left)
        "+39 0612345678",     # Italy keeps its leading 0 (national number 0612345678)
        "+44 020 7946 0958",  # a trunk 0 after +44 (prefix "0|180020": decided by phonenumbers)
        "+3361234567",        # 8 digits after +33: no possible French number
        "+999 12345678",      # 999 is no country calling code
        "+٣٣٦١٢٣٤٥٦٧٨",       # Arabic-Indic digits: the first digit must be an ASCII 1-9, a bad number
        "+33 6 12 34 56 78",  # separators dropped
        None,
    ], dtype="string")
    assert normalise(numbers, "33").fillna("-").tolist() == [
        "+33612345678", "+33612345678", "+33612345678", "+33612345678", "+390612345678", "+442079460958",
        "-", "-", "-", "+33612345678", "-",
    ]


def test_vectorised_normalisation_agrees_with_phonenumbers_for_every_country_code():
    import numpy as np

    from workbench.phone_numbers import _country_rules, _normalise_slowly, normalise, normalise_digits, to_digits

    rng = np.random.default_rng(15)
    codes = list(_country_rules())
    values = []
    for code in codes:  # every known code, at several lengths, with and without a national prefix
        for _ in range(40):
            rest = "".join(map(str, rng.integers(0, 10, rng.integers(2, 15))))
            if rng.random() < 0.4:
                rest = "0" + rest
            form = int(rng.integers(5))
            values.append(["+" + code + rest, "00" + code + rest, "0" + rest, f"+{code} (0){rest}", code + rest][form])
    numbers = pd.Series(values, dtype="string")
    fast, slow = normalise(numbers, "33"), _normalise_slowly(numbers, "33")
    assert fast.fillna("-").tolist() == slow.fillna("-").tolist()
    assert fast.notna().sum() > len(values) // 10  # not only rejections compared
    # the digits a load stores are those of the same numbers (-1: not a number), with or without
    # separators anywhere among the values (without any, none is looked for)
    assert normalise_digits(numbers, "33").tolist() == to_digits(slow).tolist()
    plain = numbers[~numbers.str.contains("(", regex=False)]
    assert normalise_digits(plain, "33").tolist() == to_digits(_normalise_slowly(plain, "33")).tolist()
    assert (normalise_digits(plain, "33") > 0).sum() > len(plain) // 10


# --- the columnar reader gives what the csv module gives ------------------------------------


def _chunks_both_ways(data: bytes, chunk_records: int, first_records: int | None = None):
    from workbench.cdr.formats import _read_chunks_by_line

    fast = list(read_chunks("cdrs.csv", io.BytesIO(data), "auto", None, chunk_records, first_records))
    slow = list(_read_chunks_by_line("cdrs.csv", io.BytesIO(data), "auto", None, chunk_records, first_records))
    assert [c.format for c in fast] == [c.format for c in slow]
    assert len(fast) == len(slow)
    for a, b in zip(fast, slow, strict=True):
        pd.testing.assert_frame_equal(a.records.astype({"raw": object}), b.records.astype({"raw": object}))
    return fast


def test_the_columnar_reader_gives_the_chunks_of_the_csv_module():
    rows = [[f"C{i}", "2026-10-01T10:00:00+02:00", A, B, str(i)] for i in range(7)]
    rows[3][2] = "QUOTE"
    # a quote inside an unquoted field (not plain CSV: left to the csv module, which keeps it)...
    data = native_cdrs(rows).replace(b"QUOTE", b'a "quoted" number')
    # ... from the chunk it is in: chunks of 3 records are lines 2-4, 5-7, 8 (the header is line 1)
    chunks = _chunks_both_ways(data, 3)
    assert [c.records["line_no"].tolist() for c in chunks] == [[2, 3, 4], [5, 6, 7], [8]]
    assert chunks[1].records["raw"].iloc[0] == f'C3,2026-10-01T10:00:00+02:00,a "quoted" number,{B},3'
    asterisk = asterisk_cdrs([asterisk_row("0145000001", "0155000000", "2026-10-01 10:00:00", "10"),
                              asterisk_row("0145000001", "0155000000", "2026-10-01 10:05:00", "20")])
    assert [c.records["billsec"].tolist() for c in _chunks_both_ways(gzip.compress(asterisk), 1)] == [["10"], ["20"]]
    assert _chunks_both_ways(data.replace(b"\n", b"\r\n"), 4)[1].records["line_no"].tolist() == [6, 7, 8]
    # a smaller first chunk: line 2, then 3-5 (the quote, read by the csv module from there), 6-8
    chunks = _chunks_both_ways(data, 3, first_records=1)
    assert [c.records["line_no"].tolist() for c in chunks] == [[2], [3, 4, 5], [6, 7, 8]]
    plain = _chunks_both_ways(native_cdrs(rows[:3] + rows[4:]), 4, first_records=2)
    assert [c.records["call_id"].tolist() for c in plain] == [["C0", "C1"], ["C2", "C4", "C5", "C6"]]
    several = _chunks_both_ways(gzip.compress(asterisk * 3), 4, first_records=1)
    assert [len(c.records) for c in several] == [1, 4, 1]


def test_chunks_of_no_record_are_refused():
    data = native_cdrs([["C1", "2026-10-01T10:00:00Z", A, B, "5"]])
    for chunk_records, first_records in ((0, None), (2, 0), (-1, 5)):
        with pytest.raises(ValueError, match="at least 1 each"):
            list(read_chunks("cdrs.csv", io.BytesIO(data), chunk_records=chunk_records, first_records=first_records))
    assert [len(c.records) for c in read_chunks("cdrs.csv", io.BytesIO(data), chunk_records=None)] == [1]
