"""The month at volume: progress of the long steps, Ctrl-C in the middle of them, and the
PostgreSQL indexes the monthly queries use."""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import sys
from datetime import datetime

import pandas as pd
import pytest
from factories import all_calls, all_ratings, bill_calls, native_cdrs, reference_folder, table_counts
from sqlalchemy import text

from workbench import jobs
from workbench.reference import load_reference

NOW = datetime(2026, 11, 2, 6, 0, 0)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# C1's line +33145000001 (factories.reference_folder) calls a fixed number each minute of 7 Oct
ROWS = [[f"V{i}", f"2026-10-07T{10 + i // 60:02d}:{i % 60:02d}:00+02:00", "+33145000001", "+33155000000",
         str(30 + i)] for i in range(250)]

# Loads or rates in a process of its own; the progress callback says how many records (calls)
# are stored, then waits in the transaction for the test's Ctrl-C (SIGINT).
SCRIPT = """
import signal, sys, time
from datetime import datetime

# Ctrl-C raises KeyboardInterrupt even when the suite was started with SIGINT ignored (a
# command run in the background by a non-interactive shell inherits that)
signal.signal(signal.SIGINT, signal.default_int_handler)
from workbench import jobs
from workbench.config import Settings

settings = Settings(database_url=sys.argv[1])
engine = jobs.open_database(settings)

def progress(done):
    print("stored", done, flush=True)
    time.sleep(120)

if sys.argv[2] == "load":
    jobs.load_cdrs(engine, settings, sys.argv[3:], progress=progress, clock=lambda: datetime(2026, 11, 2))
else:
    jobs.rate(engine, settings, "2026-10", datetime(2026, 11, 3), progress=progress)
"""


def _stopped(tmp_path, url: str, how: signal.Signals, *arguments: str) -> str:
    """Run SCRIPT, send it ``how`` once it says it stored something; its first line of output.
    SIGINT: it ends with a KeyboardInterrupt (Ctrl-C); SIGKILL: killed, with no handler and no
    rollback of its own."""
    script = tmp_path / "step.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": ROOT}
    process = subprocess.Popen([sys.executable, str(script), url, *arguments], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = process.stdout.readline()
        assert line.startswith("stored"), process.stderr.read()
        process.send_signal(how)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    if how == signal.SIGKILL:
        assert process.returncode == -signal.SIGKILL
    else:
        assert process.returncode != 0  # KeyboardInterrupt
        assert "KeyboardInterrupt" in process.stderr.read()
    return line.strip()


def _interrupted(tmp_path, url: str, *arguments: str) -> str:
    return _stopped(tmp_path, url, signal.SIGINT, *arguments)


def _killed(tmp_path, url: str, *arguments: str) -> str:
    return _stopped(tmp_path, url, signal.SIGKILL, *arguments)


def test_a_load_or_a_rating_killed_midway_leaves_the_calls_and_ratings_as_before(engine, settings, tmp_path):
    load_reference(engine, reference_folder(tmp_path / "reference"))
    first = tmp_path / "first.csv"
    first.write_bytes(native_cdrs(ROWS[:10]))
    jobs.load_cdrs(engine, settings, [first], clock=lambda: NOW)
    jobs.rate(engine, settings, "2026-10", NOW)
    data = ("cdr_files", "call_blocks", "calls", "cdr_rejects", "rating_blocks", "rated_calls", "ratings",
            "rating_errors")

    def stored() -> dict[str, int]:
        return {table: n for table, n in table_counts(engine).items() if table in data}

    before, ratings_before = stored(), all_ratings(engine)
    assert (before["calls"], before["ratings"]) == (10, 10)
    second = tmp_path / "second.csv"
    second.write_bytes(native_cdrs(ROWS[10:]))  # 240 calls, in the first chunk
    assert _killed(tmp_path, settings.database_url, "load", str(second)) == "stored 240"
    assert stored() == before
    assert _killed(tmp_path, settings.database_url, "rate") == "stored 10"
    assert stored() == before
    pd.testing.assert_frame_equal(all_ratings(engine), ratings_before)
    # the killed load's job lock is taken over (its process is gone), and the file loads whole
    assert jobs.load_cdrs(engine, settings, [second], clock=lambda: NOW).accepted == 240
    assert jobs.rate(engine, settings, "2026-10", NOW).rated == 250


def test_ctrl_c_during_a_load_leaves_the_database_as_before(engine, settings, tmp_path):
    load_reference(engine, reference_folder(tmp_path / "reference"))
    first = tmp_path / "first.csv"
    first.write_bytes(native_cdrs(ROWS[:10]))
    jobs.load_cdrs(engine, settings, [first], clock=lambda: NOW)
    before = table_counts(engine)
    assert (before["cdr_files"], before["calls"]) == (1, 10)
    second = tmp_path / "second.csv"
    second.write_bytes(native_cdrs(ROWS[10:]))  # 240 calls, in the first chunk
    assert _interrupted(tmp_path, settings.database_url, "load", str(second)) == "stored 240"
    assert table_counts(engine) == before  # no file, call, reject or job lock left
    assert jobs.load_cdrs(engine, settings, [second], clock=lambda: NOW).accepted == 240  # loads again


def test_ctrl_c_during_a_rating_leaves_the_ratings_as_before(engine, settings, tmp_path):
    load_reference(engine, reference_folder(tmp_path / "reference"))
    path = tmp_path / "calls.csv"
    path.write_bytes(native_cdrs(ROWS))
    jobs.load_cdrs(engine, settings, [path], clock=lambda: NOW)
    jobs.rate(engine, settings, "2026-10", NOW)
    before = all_ratings(engine)[["cdr_id", "price_units", "rated_at"]]
    assert len(before) == 250 and (before["rated_at"] == pd.Timestamp(NOW)).all()
    assert _interrupted(tmp_path, settings.database_url, "rate") == "stored 250"
    # still those of the first rating, at NOW
    pd.testing.assert_frame_equal(all_ratings(engine)[["cdr_id", "price_units", "rated_at"]], before)


def test_a_rating_that_fails_while_storing_leaves_the_ratings(engine, settings, tmp_path, monkeypatch):
    # the month's blocks are replaced in the rating's transaction: a failure while the new ones
    # are written rolls back the removal of the old ones with the rest
    from workbench.db import ratings

    load_reference(engine, reference_folder(tmp_path / "reference"))
    path = tmp_path / "calls.csv"
    path.write_bytes(native_cdrs(ROWS))
    jobs.load_cdrs(engine, settings, [path], clock=lambda: NOW)
    jobs.rate(engine, settings, "2026-10", NOW)
    before, counts = all_ratings(engine), table_counts(engine)
    written = []

    def fail(connection, *args):
        written.append(table_counts(engine)["rating_blocks"])  # another session: the old blocks
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(ratings, "_write", fail)
    with pytest.raises(RuntimeError, match="the disk is full"):
        jobs.rate(engine, settings, "2026-10", datetime(2026, 11, 3))
    assert written and table_counts(engine) == counts
    pd.testing.assert_frame_equal(all_ratings(engine), before)


def test_progress_counts_the_records_loaded_and_the_calls_rated(engine, settings, tmp_path):
    load_reference(engine, reference_folder(tmp_path / "reference"))
    path = tmp_path / "calls.csv"
    # 250 records, then the first 5 again: 255 records, 250 calls, 5 duplicates
    path.write_bytes(native_cdrs(ROWS + [[f"W{i}", *row[1:]] for i, row in enumerate(ROWS[:5])]))
    counted: list[int] = []
    load = jobs.load_cdrs(engine, settings, [path], progress=counted.append, clock=lambda: NOW)
    assert (sum(counted), load.accepted, load.rejected) == (255, 250, 5)
    rated: list[int] = []
    jobs.rate(engine, settings, "2026-10", NOW, progress=rated.append)
    assert rated == [250]


def test_a_rating_reads_the_unbilled_calls_and_the_billed_ratings_of_its_period(engine, settings, tmp_path):
    """The period's calls not billed, and the ratings of those billed (whose allowance seconds
    count as consumed), whatever month their rating is filed under; billed ratings of other
    months with ids among the period's are left out of both. With none billed, no statement
    looks a rating up for each call (SQLite: the statements as SQLite ran them)."""
    from workbench.period import Period
    from workbench.reads.calls import unbilled_and_billed

    load_reference(engine, reference_folder(tmp_path / "reference"))
    path = tmp_path / "calls.csv"
    # lines 2-251: calls of 7 October; line 252 a call of 30 September, line 253 one of 8 October
    path.write_bytes(native_cdrs([*ROWS, ["S1", "2026-09-30T10:00:00+02:00", "+33145000001", "+33155000000", "5"],
                                  ["V250", "2026-10-08T10:00:00+02:00", "+33145000001", "+33155000000", "6"]]))
    jobs.load_cdrs(engine, settings, [path], clock=lambda: NOW)
    jobs.rate(engine, settings, "2026-10", NOW)
    jobs.rate(engine, settings, "2026-09", NOW)
    october, tz = Period.parse("2026-10"), settings.timezone
    statements: list[str] = []
    with engine.begin() as connection:
        ids = dict(zip(all_calls(engine)["line_no"], all_calls(engine)["id"], strict=True))
        driver = connection.connection.driver_connection
        if engine.dialect.name == "sqlite":
            driver.set_trace_callback(statements.append)
        try:
            none_unbilled, none_billed = unbilled_and_billed(connection, october, tz)
        finally:
            if engine.dialect.name == "sqlite":
                driver.set_trace_callback(None)
        december_unbilled, december_billed = unbilled_and_billed(connection, Period.parse("2026-12"), tz)
        # billed: two October calls (one of them filed under September) and the September one
        billed_ids = [ids[2], ids[100], ids[252]]
        bill_calls(connection, [ids[2], ids[252]], 7, allowance_s=lambda f: f["cdr_id"])
        bill_calls(connection, [ids[100]], 7, allowance_s=lambda f: f["cdr_id"], period="2026-09")
        unbilled, billed = unbilled_and_billed(connection, october, tz)
    in_october = sorted(ids[line] for line in range(2, 254) if line != 252)
    assert sorted(none_unbilled["cdr_id"].tolist()) == in_october and none_billed.empty
    assert sorted(unbilled["cdr_id"].tolist()) == [i for i in in_october if i not in billed_ids[:2]]
    assert len(unbilled) == 249 and unbilled.loc[unbilled["cdr_id"] == ids[253], "duration_s"].tolist() == [6]
    assert sorted(billed["allowance_s"].tolist()) == billed_ids[:2]
    for frames in ((none_unbilled, unbilled, december_unbilled), (none_billed, billed, december_billed)):
        assert len({tuple(frame.columns) for frame in frames}) == 1
        assert len({tuple(map(str, frame.dtypes)) for frame in frames if not frame.empty}) == 1
    assert list(billed.columns) == ["customer_id", "zone_code", "allowance_s"]
    assert december_unbilled.empty and december_billed.empty
    assert str(december_unbilled["start_utc"].dtype) == "datetime64[s]"
    if engine.dialect.name == "sqlite":  # the billed ids read by the key's range, no join
        assert len(statements) >= 2 and not [sql for sql in statements if "JOIN" in sql.upper()
                                             or "NOT IN" in sql.upper()], statements
        (ranged,) = [sql for sql in statements if "BETWEEN" in sql.upper()]
        with engine.connect() as connection:
            plan = " / ".join(row[-1] for row in connection.execute(text(f"EXPLAIN QUERY PLAN {ranged}")))
        assert "INTEGER PRIMARY KEY (rowid>? AND rowid<?)" in plan, plan


@pytest.mark.postgres
def test_postgres_monthly_queries_use_their_indexes(postgres_server, tmp_path):
    from conftest import new_postgres_database

    from workbench.config import Settings
    from workbench.db import ratings
    from workbench.db.engine import make_engine, upgrade

    url = new_postgres_database(postgres_server)
    engine = make_engine(url)
    upgrade(engine)
    settings = Settings(database_url=url)
    load_reference(engine, reference_folder(tmp_path / "reference"))
    path = tmp_path / "calls.csv"
    path.write_bytes(native_cdrs(ROWS))
    jobs.load_cdrs(engine, settings, [path], clock=lambda: NOW)
    jobs.rate(engine, settings, "2026-10", NOW)
    with engine.begin() as connection:  # C1's calls billed by invoice 7 (no such invoice: a bare number)
        ratings.bill(connection, "2026-10", {1: 7})
    queries = {
        # the blocks of the period's calls (to rate, to balance), by start time
        "ix_call_blocks_start": "SELECT id FROM call_blocks WHERE start_min < '2026-10-31 23:00' "
                                "AND start_max >= '2026-09-30 22:00'",
        # the blocks of some calls (an invoice's details), by id
        "ix_call_blocks_ids": "SELECT id FROM call_blocks WHERE first_id <= 120 AND last_id >= 100",
        # the blocks of a period's unbilled ratings of some customers (a run's inputs, its drafts' details)
        "ix_rating_blocks_period": "SELECT id FROM rating_blocks WHERE period <= '2026-10' AND customer_min <= 1",
        # the blocks of the ratings of some calls (the calls never rated, the balance)
        "ix_rating_blocks_ids": "SELECT id FROM rating_blocks WHERE cdr_min <= 120 AND cdr_max >= 100",
        # an invoice's calls (its details and PDF)
        "ix_rated_calls_invoice_id": "SELECT cdr_id FROM rated_calls WHERE invoice_id = 7",
        # the calls billed that a rating keeps
        "ix_rated_calls_invoice_id ": "SELECT cdr_id FROM rated_calls WHERE invoice_id IS NOT NULL",
    }
    with engine.connect() as connection:
        connection.execute(text("ANALYZE"))
        connection.execute(text("SET enable_seqscan = off"))  # a table this small is otherwise read whole
        for index, query in queries.items():
            plan = "\n".join(row[0] for row in connection.execute(text(f"EXPLAIN {query}")))
            # a partition's index is named after the partition: its root is the table's index
            root = text("SELECT CAST(coalesce(pg_partition_root(CAST(:i AS regclass)), CAST(:i AS regclass)) "
                        "AS text)")
            used = {connection.execute(root, {"i": name}).scalar_one()
                    for name in re.findall(r"(?:Index Scan|Index Only Scan) (?:using|on) (\S+)", plan)}
            assert index.strip() in used, f"{index} not used:\n{plan}"
        # a period's ratings (rated again, counted, read for the balance): its partition alone
        plan = "\n".join(row[0] for row in connection.execute(
            text("EXPLAIN SELECT count(*) FROM rated_calls WHERE period = '2026-10'")))
        assert re.findall(r"Scan on (rated_calls_\w+) rated_calls", plan) == ["rated_calls_p2026_10"], plan
    engine.dispose()



def test_the_calls_survive_the_migrations_of_their_storage_both_ways(engine, tmp_path):
    """Migration 0018_volume_keys: the calls stored survive it both ways, the same call is still
    refused by the database itself, and the index on the start alone is gone. Migration
    0022_call_blocks: the calls move into blocks with their ids, file and line, and back; the
    same call is then refused by the load."""
    import sqlalchemy as sa
    from alembic import command

    from workbench.config import Settings
    from workbench.db.engine import alembic_config, upgrade

    settings = Settings(database_url=str(engine.url))
    load_reference(engine, reference_folder(tmp_path / "reference"))
    first = tmp_path / "calls.csv"
    first.write_bytes(native_cdrs(ROWS))
    jobs.load_cdrs(engine, settings, [first], clock=lambda: NOW)
    stored = all_calls(engine)
    assert len(stored) == 250

    def shape() -> tuple[int, list[str], list[list[str]]]:
        inspector = sa.inspect(engine)
        with engine.connect() as connection:
            count = connection.execute(text("SELECT count(*) FROM cdrs")).scalar_one()
        indexes = [i for i in inspector.get_indexes("cdrs") if not i.get("duplicates_constraint")]
        return (count, sorted(i["name"] for i in indexes),
                [u["column_names"] for u in inspector.get_unique_constraints("cdrs")])

    command.downgrade(alembic_config(engine), "0016_volume")
    assert shape() == (250, ["ix_cdrs_start_utc"], [["calling", "called", "start_utc", "duration_s"]])
    command.upgrade(alembic_config(engine), "0021_no_period_index")
    assert shape() == (250, [], [["start_utc", "calling", "called", "duration_s"]])
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as connection:
        connection.execute(text("INSERT INTO cdrs (file_id, line_no, start_utc, calling, called, duration_s, "
                                "switch_id) SELECT file_id, 999, start_utc, calling, called, duration_s, 'X' "
                                "FROM cdrs WHERE line_no = 2"))
    with engine.connect() as connection:
        rows = pd.DataFrame(connection.execute(text(
            "SELECT id, file_id, line_no, calling, called, duration_s, switch_id FROM cdrs ORDER BY line_no")).all())
    columns = ["id", "file_id", "line_no", "calling", "called", "duration_s", "switch_id"]
    assert rows.values.tolist() == stored[columns].values.tolist()
    upgrade(engine)
    assert "cdrs" not in sa.inspect(engine).get_table_names()
    assert all_calls(engine).equals(stored)
    again = tmp_path / "again.csv"  # the same calls under other ids: other bytes, every call a duplicate
    again.write_bytes(native_cdrs([[f"X{i}", *row[1:]] for i, row in enumerate(ROWS)]))
    load = jobs.load_cdrs(engine, settings, [again], clock=lambda: NOW)
    assert (load.accepted, load.rejected) == (0, 250)


def test_whether_a_credit_note_reopened_an_invoice_is_found_by_index_on_sqlite(tmp_path):
    """Asked of every invoice of a run (the period balance): without the index SQLite reads all
    invoices for each one (10,000 invoices: about 45 s of a pre-production run)."""
    from sqlalchemy import select

    from workbench.db import schema as s
    from workbench.db.engine import make_engine, upgrade
    from workbench.reads.selection import reopened

    engine = make_engine(f"sqlite:///{tmp_path / 'workbench.sqlite'}")
    upgrade(engine)
    query = select(s.Invoice.customer_id).where(s.Invoice.run_id == 1, ~reopened())
    sql = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
    with engine.connect() as connection:
        plan = " / ".join(row[-1] for row in connection.execute(text(f"EXPLAIN QUERY PLAN {sql}")))
    assert "ix_invoices_corrects_invoice_id" in plan, plan
    engine.dispose()


def test_a_call_rated_in_another_period_is_refused_naming_it_and_nothing_is_stored(engine, settings, tmp_path):
    """A call has one rating: the call of 1 November 00:30 in Paris (31 October 23:30 UTC) rated
    in November, then October rated with the time zone set to UTC, where it is an October call."""
    from workbench.errors import RefusedError

    load_reference(engine, reference_folder(tmp_path / "reference"))
    path = tmp_path / "calls.csv"
    path.write_bytes(native_cdrs([["N1", "2026-11-01T00:30:00+01:00", "+33145000001", "+33155000000", "60"],
                                  ["O1", "2026-10-20T10:00:00+02:00", "+33145000001", "+33155000000", "60"]]))
    jobs.load_cdrs(engine, settings, [path], clock=lambda: NOW)
    assert jobs.rate(engine, settings, "2026-11", NOW).rated == 1
    assert jobs.rate(engine, settings, "2026-10", NOW).rated == 1
    before = all_ratings(engine)
    november = int(all_calls(engine).set_index("switch_id").loc["N1", "id"])
    with pytest.raises(RefusedError, match=f"call {november} already has a rating of 2026-11") as refused:
        jobs.rate(engine, dataclasses.replace(settings, timezone="UTC"), "2026-10", datetime(2026, 11, 3))
    assert refused.value.code == "rated_in_another_period"
    pd.testing.assert_frame_equal(all_ratings(engine), before)


def test_a_block_of_ratings_keeps_every_value_exactly():
    from workbench.db import ratings

    rated = pd.DataFrame({
        "cdr_id": [3, 1, 2**40], "customer_id": [7, 7, 9],
        "destination_prefix": pd.Categorical(["336", "44", "336"]), "zone_code": pd.Categorical(["MOB", "EU", "MOB"]),
        "band": ["peak", "offpeak", "peak"], "duration_s": [0, 3600, 61], "allowance_s": [0, 1800, 61],
        "price_units": [0, 9_223_372_036_854_775_807, -1250], "rate_id": pd.array([4, None, 5], dtype="Int64"),
        "rule": pd.Categorical(["unanswered_free", "allowance_overflow", "allowance"])})
    back = ratings.decode(ratings.encode(rated))
    assert back.to_dict("list") == {
        "cdr_id": [3, 1, 2**40], "customer_id": [7, 7, 9], "destination_prefix": ["336", "44", "336"],
        "zone_code": ["MOB", "EU", "MOB"], "band": ["peak", "offpeak", "peak"], "duration_s": [0, 3600, 61],
        "allowance_s": [0, 1800, 61], "price_units": [0, 9_223_372_036_854_775_807, -1250],
        "rate_id": [4, None, 5], "rule": ["unanswered_free", "allowance_overflow", "allowance"]}
    assert str(back["rate_id"].dtype) == "Int64" and str(back["price_units"].dtype) == "int64"
    # text missing as categories or as objects comes back as None, and a block read back is
    # written again as it was (the blocks a production or a credit note writes anew)
    rated["rule"] = pd.Categorical([None, "allowance", None])
    rated["band"] = ["peak", None, "peak"]
    back = ratings.decode(ratings.encode(rated))
    assert back["rule"].tolist() == [None, "allowance", None] and back["band"].tolist() == ["peak", None, "peak"]
    again = ratings.decode(ratings.encode(back))
    assert again.to_dict("list") == back.to_dict("list")


def test_calls_never_rated_are_counted_by_period_up_to_the_one_asked(engine, settings, tmp_path):
    from workbench.period import Period
    from workbench.reads.calls import unrated_calls

    def never_rated(period: str) -> dict[str, int]:
        with engine.connect() as connection:
            frame = unrated_calls(connection, Period.parse(period), settings.timezone)
        return dict(zip(frame["period"], frame["calls"], strict=True))

    load_reference(engine, reference_folder(tmp_path / "reference"))
    first = tmp_path / "first.csv"  # 3 calls of September and 2 of October, local time
    first.write_bytes(native_cdrs([
        ["S1", "2026-09-10T10:00:00+02:00", "+33145000001", "+33155000000", "60"],
        ["S2", "2026-09-30T23:30:00+02:00", "+33145000001", "+33155000000", "60"],  # 21:30 UTC: September
        ["S3", "2026-09-20T10:00:00+02:00", "+33145000001", "+33155000000", "60"],
        ["O1", "2026-10-01T00:30:00+02:00", "+33145000001", "+33155000000", "60"],  # 30 Sep 22:30 UTC: October
        ["O2", "2026-10-20T10:00:00+02:00", "+33145000001", "+33155000000", "60"]]))
    jobs.load_cdrs(engine, settings, [first], clock=lambda: NOW)
    assert never_rated("2026-10") == {"2026-09": 3, "2026-10": 2}
    assert never_rated("2026-09") == {"2026-09": 3}
    assert never_rated("2026-08") == {}
    jobs.rate(engine, settings, "2026-10", NOW)
    assert never_rated("2026-10") == {"2026-09": 3}
    late = tmp_path / "late.csv"  # an October call loaded after October was rated
    late.write_bytes(native_cdrs([["O3", "2026-10-21T10:00:00+02:00", "+33145000001", "+33155000000", "60"]]))
    jobs.load_cdrs(engine, settings, [late], clock=lambda: NOW)
    jobs.rate(engine, settings, "2026-09", NOW)
    assert never_rated("2026-10") == {"2026-10": 1}
    assert never_rated("2026-11") == {"2026-10": 1}
