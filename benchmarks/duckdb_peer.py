"""The peer of ``benchmarks/month.py``: the month's integration and rating as an analyst would
write it by hand in DuckDB SQL, stored into a DuckDB file.

What it does, step by step (each a few SQL statements, DuckDB's own CSV reader and hash joins):

``load`` (read, check, dedupe, store):

* reads the two CSV files of the generated operator (the switch's native file, with a header,
  and the Asterisk Master.csv, without) as text;
* checks the same rules as ``load-cdrs`` as far as SQL reaches: start times (ISO 8601 with an
  offset; Asterisk's local times in the operator's zone), numbers (separators and a bracketed
  trunk zero dropped, ``+``/``00``/trunk ``0`` forms, 6 to 15 digits, and for the home country
  a trunk zero after ``+33`` dropped and 9 digits after it), whole non-negative seconds, switch
  ids of at most 64 characters without control characters;
* rejects the later copies of a call (same calling, called, start second and duration: a
  window over a hash partition) and the calls whose calling number is no customer's line on
  their date (a hash join on the number, then the dates);
* stores the accepted calls and the rejects (reason, line) into tables of the DuckDB file.

``rate``: each call's customer and plan (hash join on the calling line and dates), its zone by
the longest prefix of the called number (one equi-join per prefix length, the longest kept),
its band by the local weekday and minute (the plan's time bands, else its default band), its
rate, and its price from the rate's intervals (billed seconds rounded up to each interval's
increment, the sum rounded half up to 1/10,000 once, plus the connect fee; unanswered calls
their connect fee when the rate says so); stored into a table of rated calls.

What it leaves out, so that it does less than ``load-cdrs`` + ``rate`` (the comparison is
conservative): phonenumbers' possible lengths of countries other than the home one, the hour
repeated when summer time ends, allowances (every second is priced), public holidays in the
bands, rating errors, the reject threshold, the files' fingerprints and reprocessing.
"""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import duckdb

TIMEZONE = "Europe/Paris"
HOME = "33"


MACROS = [
    # separators and a bracketed trunk zero dropped; +, 00 and the trunk 0 read
    "CREATE MACRO cleaned(x) AS regexp_replace(replace(x, '(0)', ''), '[\\s.\\-()/]', '', 'g')",
    f"""CREATE MACRO digits(c) AS CASE WHEN c LIKE '+%' THEN substr(c, 2) WHEN c LIKE '00%' THEN substr(c, 3)
        WHEN c LIKE '0%' THEN '{HOME}' || substr(c, 2) ELSE c END""",
    # the home country's trunk zero after its code dropped, then 6 to 15 digits, 9 after the home code
    f"""CREATE MACRO home(d) AS CASE WHEN d LIKE '{HOME}0%' AND length(d) = {len(HOME) + 10}
        THEN '{HOME}' || substr(d, {len(HOME) + 2}) ELSE d END""",
    f"""CREATE MACRO e164(x) AS CASE WHEN NOT regexp_full_match(home(digits(cleaned(x))), '[1-9][0-9]{{5,14}}')
        THEN NULL WHEN home(digits(cleaned(x))) LIKE '{HOME}%' AND length(home(digits(cleaned(x)))) <> {len(HOME) + 9}
        THEN NULL ELSE home(digits(cleaned(x))) END""",
]


def _asterisk_width(path: Path) -> int:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as stream:
        return len(next(csv.reader(stream)))


ASTERISK = ["accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel", "lastapp", "lastdata",
            "start", "answer", "end", "duration", "billsec", "disposition", "amaflags", "uniqueid", "userfield",
            "peeraccount", "linkedid", "sequence"]


def connect(database: Path, reference: Path) -> duckdb.DuckDBPyConnection:
    """A new DuckDB file with the reference data the pipeline joins with (not timed)."""
    con = duckdb.connect(str(database))
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    for macro in MACROS:
        con.execute(macro)
    for name in ("lines", "customers", "destinations", "time_bands", "rates", "rate_plans"):
        con.execute(f"CREATE TABLE ref_{name} AS SELECT * FROM read_csv(?, header = true, all_varchar = true)",
                    [str(reference / f"{name}.csv")])
    con.execute("ALTER TABLE ref_lines ADD COLUMN digits VARCHAR")
    con.execute("UPDATE ref_lines SET digits = e164(number)")
    return con


def load(con: duckdb.DuckDBPyConnection, native: Path, asterisk: Path) -> dict[str, int]:
    """Read, check, dedupe and store both files; returns the calls stored and the rejects."""
    names = ASTERISK[:_asterisk_width(asterisk)]
    columns = "{" + ", ".join(f"'{n}': 'VARCHAR'" for n in names) + "}"
    con.execute("BEGIN")
    con.execute(f"""
        CREATE TEMP TABLE records AS
        SELECT 1 AS file, row_number() OVER () + 1 AS line_no, call_id AS switch_id,
               try_cast(start_time AS TIMESTAMPTZ)::TIMESTAMP AS start_utc,
               calling AS calling_text, called AS called_text, duration_s AS seconds_text
        FROM read_csv('{native}', header = true, all_varchar = true)
        UNION ALL
        SELECT 2, row_number() OVER (), uniqueid,
               timezone('{TIMEZONE}', try_strptime(start, '%Y-%m-%d %H:%M:%S'))::TIMESTAMP,
               src, dst, billsec
        FROM read_csv('{asterisk}', header = false, columns = {columns}, quote = '"', escape = '"')
    """)
    con.execute("""
        CREATE TEMP TABLE checked AS
        SELECT file, line_no, switch_id, start_utc, calling, called,
               try_cast(CASE WHEN regexp_full_match(trim(seconds_text), '[0-9]{1,7}')
                             THEN trim(seconds_text) END AS INTEGER) AS duration_s,
               CASE WHEN start_utc IS NULL THEN 'bad_date'
                    WHEN calling IS NULL THEN 'bad_calling_number'
                    WHEN called IS NULL THEN 'bad_called_number'
                    WHEN regexp_full_match(trim(seconds_text), '-[0-9]+') THEN 'negative_duration'
                    WHEN NOT regexp_full_match(trim(seconds_text), '[0-9]{1,7}') THEN 'bad_duration'
                    WHEN length(switch_id) > 64 OR regexp_matches(switch_id, '[\\x00-\\x1f\\x7f-\\x9f]')
                         THEN 'bad_call_id'
               END AS reason
        FROM (SELECT *, e164(calling_text) AS calling, e164(called_text) AS called FROM records)
    """)
    con.execute(f"""
        CREATE TEMP TABLE decided AS
        WITH good AS (
            SELECT *, row_number() OVER (PARTITION BY calling, called, start_utc, duration_s
                                         ORDER BY file, line_no) AS copy
            FROM checked WHERE reason IS NULL),
        known AS (
            SELECT DISTINCT g.file, g.line_no FROM good g JOIN ref_lines l ON l.digits = g.calling
            WHERE timezone('{TIMEZONE}', g.start_utc::TIMESTAMPTZ)::DATE >= l.valid_from::DATE
              AND (l.valid_to IS NULL OR timezone('{TIMEZONE}', g.start_utc::TIMESTAMPTZ)::DATE <= l.valid_to::DATE))
        SELECT g.*, CASE WHEN g.copy > 1 THEN 'duplicate' WHEN k.line_no IS NULL THEN 'unknown_line' END AS verdict
        FROM good g LEFT JOIN known k USING (file, line_no)
    """)
    con.execute("""
        CREATE TABLE IF NOT EXISTS cdrs AS
        SELECT row_number() OVER () AS id, file, line_no, start_utc, calling::BIGINT AS calling,
               called::BIGINT AS called, duration_s, switch_id
        FROM decided WHERE verdict IS NULL
    """)
    con.execute("""
        CREATE TABLE IF NOT EXISTS cdr_rejects AS
        SELECT file, line_no, reason FROM checked WHERE reason IS NOT NULL
        UNION ALL SELECT file, line_no, verdict FROM decided WHERE verdict IS NOT NULL
    """)
    con.execute("COMMIT")
    calls = con.execute("SELECT count(*) FROM cdrs").fetchone()[0]
    rejects = con.execute("SELECT count(*) FROM cdr_rejects").fetchone()[0]
    for table in ("records", "checked", "decided"):
        con.execute(f"DROP TABLE {table}")
    return {"calls": calls, "rejects": rejects}


def rate(con: duckdb.DuckDBPyConnection, period: str = "2026-10") -> dict[str, int]:
    """Rate the period's calls and store them; returns the calls rated and their total (units)."""
    con.execute("BEGIN")
    con.execute("""
        CREATE TEMP TABLE intervals AS
        SELECT plan, zone, band, (connect_fee::DECIMAL(18, 4) * 10000)::BIGINT AS connect_units,
               charge_unanswered = 'yes' AS charge_unanswered,
               split_part(iv, ':', 1)::INTEGER AS from_s,
               (split_part(split_part(iv, ':', 2), '/', 1)::DECIMAL(18, 6) * 1000000)::BIGINT AS micros_per_minute,
               split_part(iv, '/', 2)::INTEGER AS increment_s,
               lead(split_part(iv, ':', 1)::INTEGER) OVER (PARTITION BY plan, zone, band
                                                          ORDER BY split_part(iv, ':', 1)::INTEGER) AS to_s
        FROM (SELECT *, unnest(string_split(intervals, ' ')) AS iv FROM ref_rates)
    """)
    lengths = [r[0] for r in con.execute("SELECT DISTINCT length(prefix) FROM ref_destinations").fetchall()]
    prefix_joins = " UNION ALL ".join(
        f"SELECT c.id, d.zone, {n} AS n FROM calls c JOIN ref_destinations d "
        f"ON d.plan = c.plan AND d.prefix = left(c.called::VARCHAR, {n})" for n in lengths)
    con.execute(f"""
        CREATE TEMP TABLE calls AS
        SELECT c.id, c.duration_s, c.called, l.account_number, cu.rate_plan AS plan,
               timezone('{TIMEZONE}', c.start_utc::TIMESTAMPTZ) AS local_ts
        FROM cdrs c
        JOIN ref_lines l ON l.digits = c.calling::VARCHAR
         AND timezone('{TIMEZONE}', c.start_utc::TIMESTAMPTZ)::DATE >= l.valid_from::DATE
         AND (l.valid_to IS NULL OR timezone('{TIMEZONE}', c.start_utc::TIMESTAMPTZ)::DATE <= l.valid_to::DATE)
        JOIN ref_customers cu ON cu.account_number = l.account_number
        WHERE strftime(timezone('{TIMEZONE}', c.start_utc::TIMESTAMPTZ), '%Y-%m') = '{period}'
    """)
    con.execute("""
        CREATE TEMP TABLE minute_bands AS  -- each plan's band for each weekday and minute of the day
        SELECT p.code AS plan, w.day, m.minute, coalesce(
            (SELECT any_value(b.band) FROM ref_time_bands b WHERE b.plan = p.code
               AND list_contains(string_split(b.weekdays, ','), w.day)
               AND m.minute >= split_part(b.start, ':', 1)::INTEGER * 60 + split_part(b.start, ':', 2)::INTEGER
               AND m.minute < split_part(b."end", ':', 1)::INTEGER * 60 + split_part(b."end", ':', 2)::INTEGER),
            p.default_band) AS band
        FROM ref_rate_plans p,
             (SELECT unnest(['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun']) AS day) w,
             (SELECT range AS minute FROM range(1440)) m
    """)
    con.execute(f"""
        CREATE TEMP TABLE zoned AS
        SELECT c.*, z.zone, b.band
        FROM calls c
        JOIN (SELECT id, arg_max(zone, n) AS zone FROM ({prefix_joins}) GROUP BY id) z USING (id)
        JOIN minute_bands b ON b.plan = c.plan AND b.day = lower(strftime(c.local_ts, '%a'))
         AND b.minute = hour(c.local_ts) * 60 + minute(c.local_ts)
    """)
    con.execute("""
        CREATE TABLE IF NOT EXISTS rated_calls AS
        SELECT z.id AS cdr_id, z.account_number, z.zone, z.band, z.duration_s,
               CASE WHEN z.duration_s = 0 THEN CASE WHEN any_value(i.charge_unanswered)
                                                    THEN any_value(i.connect_units) ELSE 0 END
                    ELSE any_value(i.connect_units) + (sum(
                        CASE WHEN z.duration_s <= i.from_s THEN 0
                             ELSE ceil((least(z.duration_s, coalesce(i.to_s, z.duration_s)) - i.from_s)
                                       / i.increment_s) * i.increment_s * i.micros_per_minute END)::HUGEINT
                        * 2 + 6000) // 12000
               END AS price_units
        FROM zoned z JOIN intervals i ON i.plan = z.plan AND i.zone = z.zone AND i.band = z.band
        GROUP BY z.id, z.account_number, z.zone, z.band, z.duration_s
    """)
    con.execute("COMMIT")
    calls, units = con.execute("SELECT count(*), sum(price_units) FROM rated_calls").fetchone()
    for table in ("intervals", "calls", "minute_bands", "zoned"):
        con.execute(f"DROP TABLE {table}")
    return {"rated": calls, "amount_units": int(units or 0)}
