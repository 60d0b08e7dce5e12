"""Declarative CSV mappings (:mod:`workbench.cdr.mapping`): FreeSWITCH's default cdr_csv template
as shipped in ``data/mappings``, a carrier's export, and mappings refused with the key at fault.

The reference data is the minimal operator of :mod:`factories` (plan ``TEST``); prices in
1/10,000 EUR (units) worked out by hand. Paris is UTC+2 until 2026-10-25, then UTC+1.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from factories import reference_folder

from workbench import cli, jobs
from workbench.cdr.formats import check, parse
from workbench.cdr.mapping import parse_mapping
from workbench.errors import InputError
from workbench.integration import read_mapping
from workbench.rated_calls import rate_period

MAPPINGS = Path(__file__).resolve().parent.parent / "data" / "mappings"
FREESWITCH = MAPPINGS / "freeswitch_cdr_csv.toml"
SAMPLE = MAPPINGS / "freeswitch_cdr_csv.sample.csv"
NOW = datetime(2026, 11, 2, 6, 0, 0)
TZ, CC = "Europe/Paris", "33"


def test_the_freeswitch_mapping_names_the_example_templates_fields():
    mapping = read_mapping(FREESWITCH)
    # cdr_csv.conf.xml, template "example"
    assert mapping.names == ("caller_id_name", "caller_id_number", "destination_number", "context", "start_stamp",
                             "answer_stamp", "end_stamp", "duration", "billsec", "hangup_cause", "uuid",
                             "bleg_uuid", "accountcode", "read_codec", "write_codec")
    assert (mapping.calling, mapping.called, mapping.start, mapping.duration, mapping.call_id) == (
        "caller_id_number", "destination_number", "start_stamp", "billsec", "uuid")
    assert (mapping.header, mapping.timezone, mapping.format) == (False, "local", "mapping:freeswitch_cdr_csv")


def test_the_freeswitch_sample_loads_and_rates(engine, settings, tmp_path):
    jobs.load_reference(engine, settings, reference_folder(tmp_path / "reference"))
    load = jobs.load_cdrs(engine, settings, [SAMPLE], mapping=FREESWITCH, clock=lambda: NOW)
    report = load.files[0]
    # 6 records: line 4's 0145000009 is nobody's line, line 5's caller is "anonymous"
    assert (report.format, report.records, report.accepted, report.rejected) == (
        "mapping:freeswitch_cdr_csv", 6, 4, 2)
    assert report.by_reason == {"bad_calling_number": 1, "unknown_line": 1}
    summary = rate_period(engine, "2026-10", settings, NOW)
    # line 1: Wed 7 Oct 10:00 CEST, fixed peak, billsec 125 at 0.06/min = 0.1250 -> 1250
    # line 2: unanswered mobile call (billsec 0): free -> 0
    # line 3: Sat 10 Oct, UK: 0.20 + one 60 s step at 0.60/min = 0.8000 -> 8000
    # line 6: Mon 26 Oct 09:00 CET, C1's second line, mobile 61 s: 0.10 + 0.12 + 1 s at 0.12/min
    #         (0.0020) = 0.2220 -> 2220
    assert (summary.calls, summary.rated, summary.errors) == (4, 4, 0)
    assert summary.amount_units == 1250 + 0 + 8000 + 2220 == 11470
    # the same file again: already loaded
    assert cli.main(["--database-url", settings.database_url, "load-cdrs", "--mapping", str(FREESWITCH),
                     str(SAMPLE)]) == 0


CARRIER = """
name = "carrier"
header = true
delimiter = ";"
time_format = "%d/%m/%Y %H:%M:%S"
timezone = "UTC"

[columns]
calling = "A number"
called = "B number"
start = "Start"
answer = "Answer"
end = "End"
call_id = "Ref"

[filter]
column = "Status"
keep = ["ANSWERED", "NO ANSWER"]
"""

CARRIER_FILE = """Ref;A number;B number;Start;Answer;End;Status
K1;0145000001;0155000000;20/10/2026 18:30:00;20/10/2026 18:30:10;20/10/2026 18:31:10;ANSWERED
K2;0145000001;0155000000;20/10/2026 18:40:00;;20/10/2026 18:40:30;FAILED
K3;0145000001;0612345678;20/10/2026 18:50:00;;20/10/2026 18:50:25;NO ANSWER
K4;0145000001;0155000000;20/10/2026 19:00:00;20/10/2026 19:00:50;20/10/2026 19:00:40;ANSWERED
K5;0145000001;0155000000;20/10/2026 19:10:00;20/10/2026 19:10:05;yesterday;ANSWERED
"""


def test_a_carriers_export_with_header_answer_and_end_in_utc():
    mapping = parse_mapping(CARRIER, "carrier.toml")
    parsed = parse("carrier.csv", CARRIER_FILE.encode(), mapping=mapping)
    calls, rejects = check(parsed, TZ, CC)
    assert parsed.format == "mapping:carrier"
    # K1: answered 18:30:10, ended 18:31:10: 60 s; the start is UTC as written
    # K3: never answered: 0 s
    assert calls[["switch_id", "start_utc", "duration_s"]].values.tolist() == [
        ["K1", pd.Timestamp("2026-10-20 18:30:00"), 60], ["K3", pd.Timestamp("2026-10-20 18:50:00"), 0]]
    assert calls["called"].tolist() == ["+33155000000", "+33612345678"]
    assert dict(zip(rejects["line_no"], rejects["reason"], strict=True)) == {
        3: "excluded", 5: "negative_duration", 6: "bad_duration"}
    assert rejects["message"].tolist() == [
        "Status 'FAILED' is not one of the values kept ['ANSWERED', 'NO ANSWER']",
        "End 20/10/2026 19:00:40 is before Answer 20/10/2026 19:00:50",
        "Answer '20/10/2026 19:10:05' to End 'yesterday' is not a duration",
    ]


def test_a_file_without_a_column_the_mapping_names_is_refused():
    mapping = parse_mapping(CARRIER, "carrier.toml")
    with pytest.raises(InputError) as caught:
        parse("carrier.csv", CARRIER_FILE.replace("B number", "Called").encode(), mapping=mapping)
    assert (caught.value.source, caught.value.line) == ("carrier.csv", 1)
    assert "no column 'B number' (called of the mapping 'carrier')" in str(caught.value)


def test_positions_without_header_or_names():
    mapping = parse_mapping('name = "plain"\ntime_format = "epoch"\n'
                            '[columns]\ncalling = 1\ncalled = 2\nstart = 3\nduration = 4\n')
    # 1,792,886,400 is 2026-10-25 00:00:00 UTC (20,751 days after 1970-01-01)
    parsed = parse("plain.csv", b"0145000001,0155000000,1792886400,42\n", mapping=mapping)
    calls, rejects = check(parsed, TZ, CC)
    assert rejects.empty
    assert calls[["start_utc", "duration_s", "switch_id"]].values.tolist() == [
        [pd.Timestamp("2026-10-25 00:00:00"), 42, ""]]
    # Unix seconds in other digits than ASCII ones are no time (Arabic-Indic 1792886400)
    other = "".join(chr(0x0660 + int(d)) for d in "1792886400").encode()
    calls, rejects = check(parse("plain.csv", b"0145000001,0155000000," + other + b",42\n", mapping=mapping), TZ, CC)
    assert calls.empty and rejects["reason"].tolist() == ["bad_date"]
    with pytest.raises(InputError, match="3 fields, but the mapping 'plain' takes duration from column 4"):
        parse("short.csv", b"0145000001,0155000000,1792886400\n", mapping=mapping)


@pytest.mark.parametrize(("text", "message"), [
    ('name = "x"\n[columns]\ncalled = 2\nstart = 3\nduration = 4\n', "key 'columns.calling' is required"),
    ('name = "x"\nsheet = 1\n[columns]\ncalling = 1\n', "key 'sheet' is unknown; the keys are"),
    ('name = "x"\n[columns]\ncalling = "a"\ncalled = 2\nstart = 3\nduration = 4\n',
     "key 'columns.calling' 'a' is a name, but the file has no header and the mapping no names"),
    ('name = "x"\ntimezone = "Mars/Olympus"\n[columns]\ncalling = 1\ncalled = 2\nstart = 3\nduration = 4\n',
     "key 'timezone' 'Mars/Olympus' is not a time zone"),
    ('name = "x"\n[columns]\ncalling = 1\ncalled = 2\nstart = 3\nduration = 4\nend = 5\n',
     "key 'columns.duration' given with answer/end"),
    ('name = "x"\n[columns]\ncalling = 1\ncalled = 2\nstart = 3\n', "key 'columns.duration' is required"),
    ('name = "x"\ndelimiter = ";;"\n[columns]\ncalling = 1\ncalled = 2\nstart = 3\nduration = 4\n',
     "key 'delimiter' ';;' is not one character"),
    ('name = "x"\nheader = "yes"\n[columns]\ncalling = 1\ncalled = 2\nstart = 3\nduration = 4\n',
     "key 'header' 'yes' is not true or false"),
    ('name = "x"\ntime_format = "dd/mm/yyyy"\n[columns]\ncalling = 1\ncalled = 2\nstart = 3\nduration = 4\n',
     "key 'time_format' 'dd/mm/yyyy' is not a strftime format"),
    ('name = "x"\n[columns]\ncalling = 0\ncalled = 2\nstart = 3\nduration = 4\n',
     "key 'columns.calling' position 0 is not a column"),
    ('name = "x"\n[columns]\ncalling = 1\ncalled = 2\nstart = 3\nduration = 4\n[filter]\ncolumn = 5\n',
     "key 'filter.keep' is not a list of the values kept"),
    ("name = [", "not TOML"),
])
def test_a_bad_mapping_names_the_key(text, message):
    with pytest.raises(InputError, match="^bad.toml: ") as caught:
        parse_mapping(text, "bad.toml")
    assert message in str(caught.value)
    assert caught.value.code == "bad_mapping"


def test_a_header_column_named_as_a_records_own_field_is_refused():
    mapping = parse_mapping(CARRIER, "carrier.toml")
    with pytest.raises(InputError, match="carrier.csv, line 1: a column is named 'raw'"):
        parse("carrier.csv", CARRIER_FILE.replace("Status", "raw").replace('"Status"', '"raw"').encode(),
              mapping=parse_mapping(CARRIER.replace('"Status"', '"raw"'), "carrier.toml"))
    assert mapping.filter_column == "Status"
