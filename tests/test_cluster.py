"""Scale-out on Dask: rating and invoice PDFs on a real ``LocalCluster`` of 2 worker processes on
127.0.0.1 give what this machine gives, call for call, and a worker killed mid-run loses nothing.

The cluster is started once for the module (``dask_cluster``: slow, left out of the fast lane);
the jobs reach it by its address, as they would a remote scheduler (``tcp://host:port``).
"""

from __future__ import annotations

import io
import os
import shutil
import signal
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from factories import all_calls, all_ratings, native_cdrs, reference_folder
from pypdf import PdfReader
from servers import free_port
from sqlalchemy import select

from workbench import cli, jobs
from workbench.config import Settings, load_settings
from workbench.db import schema as s
from workbench.db.frames import read_frame
from workbench.errors import ConfigError, UnavailableError
from workbench.jobs.cluster import cluster, partition_keys, partitioned_rater
from workbench.period import Period
from workbench.rated_calls import rated_calls
from workbench.rating import allowance_buckets, rate
from workbench.reads import calls as stored_calls
from workbench.reference import COLUMNS
from workbench.sample import generate_operator

NOW = datetime(2026, 11, 1, 6, 0)
LATER = datetime(2026, 11, 2, 6, 0)


@pytest.fixture(scope="module")
def dask_cluster():
    """A LocalCluster of 2 worker processes (one thread each) on 127.0.0.1, and a client of it."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=":0") as local, Client(local) as client:
        yield client


def on(settings: Settings, client) -> Settings:
    """``settings`` rating on the cluster of ``client``, by its scheduler's address."""
    client.wait_for_workers(2, timeout=60)  # a worker killed by a test before: restarted by its nanny
    return replace(settings, dask_scheduler=client.scheduler.address)


def stored(engine, period: str = "2026-10") -> pd.DataFrame:
    """The stored ratings of ``period`` by call, without their time of rating."""
    return rated_calls(engine, period).drop(columns=["rated_at"]).sort_values("cdr_id", ignore_index=True)


# ------------------------------------------------------------------------------------------ setting


def test_the_dask_scheduler_setting_is_checked(monkeypatch):
    assert load_settings().dask_scheduler == ""  # this machine, by default
    for value in ("local:1", "local:16", "tcp://10.0.0.5:8786", "tcp://scheduler.example.net:8786", "tls://h:1"):
        monkeypatch.setenv("WORKBENCH_DASK_SCHEDULER", value)
        assert load_settings().dask_scheduler == value
    for value in ("local:0", "local:", "local:two", "10.0.0.5:8786", "http://h:8786", "tcp://"):
        monkeypatch.setenv("WORKBENCH_DASK_SCHEDULER", value)
        with pytest.raises(ConfigError, match=r"setting dask_scheduler \(WORKBENCH_DASK_SCHEDULER\)"):
            load_settings()


def test_an_unreachable_scheduler_is_said_so():
    address = f"tcp://127.0.0.1:{free_port()}"  # a port nobody listens on
    with pytest.raises(UnavailableError, match=f"the Dask scheduler at {address} cannot be reached"):
        with cluster(address, timeout=1):
            pass


# ------------------------------------------------------------------- a number moving between customers

#: +33145000009 is C1's until 14 October, C2's from the 15th; both subscribe MOBMIN, 2 minutes
#: (120 s) to mobiles a month. Calls to mobiles: connect 0.10, then 0.12/min, the first minute in
#: one 60 s step (``MOB`` of tests/factories.py); what an allowance leaves is priced without the
#: connect fee.
MOVED_LINES = [["C1", "+33145000001", "2026-01-01", ""], ["C1", "+33145000009", "2026-01-01", "2026-10-14"],
               ["C2", "+33145000009", "2026-10-15", ""]]
MOVED_SUBSCRIPTIONS = [["C1", "MOBMIN", "1", "2026-01-01", "", ""], ["C2", "MOBMIN", "1", "2026-01-01", "", ""]]
MOVED_CALLS = [
    ["M1", "2026-10-05 10:00:00", "+33145000009", "+33612345678", "90"],  # C1's: 90 of its 120 s
    ["M2", "2026-10-06 10:00:00", "+33145000001", "+33612345678", "60"],  # C1's: the 30 s left, 30 s over
    ["M3", "2026-10-16 10:00:00", "+33145000009", "+33155000000", "120"],  # C2's, to a fixed line, peak
    ["M4", "2026-10-20 10:00:00", "+33145000009", "+33612345678", "100"],  # C2's: 100 of its 120 s
    ["M5", "2026-10-21 10:00:00", "+33145000009", "+33612345678", "50"],  # C2's: the 20 s left, 30 s over
]
# call: account, seconds covered by the allowance, price in 1/10,000 EUR, rule
MOVED_EXPECTED = {
    "M1": ("C1", 90, 0, "allowance"),
    # 30 s over: one 60 s step of the first minute at 0.12/min = 0.12, no connect fee
    "M2": ("C1", 30, 1_200, "allowance_overflow"),
    "M3": ("C2", 0, 1_200, "rate"),  # 120 s x 0.06/min per second = 0.12
    "M4": ("C2", 100, 0, "allowance"),
    # 30 s over: one 60 s step at 0.12/min = 0.12
    "M5": ("C2", 20, 1_200, "allowance_overflow"),
}


def moved_number_operator(tmp_path: Path, settings: Settings):
    engine = jobs.open_database(settings)
    folder = reference_folder(tmp_path / "reference", allowances=[["MOBMIN", "MOB", "2"]], lines=MOVED_LINES,
                              subscriptions=MOVED_SUBSCRIPTIONS)
    jobs.load_reference(engine, settings, folder)
    (tmp_path / "calls.csv").write_bytes(native_cdrs(MOVED_CALLS))
    jobs.load_cdrs(engine, settings, [tmp_path / "calls.csv"], clock=lambda: NOW)
    return engine


def as_expected(engine) -> dict:
    """The stored ratings as ``MOVED_EXPECTED`` (calls by their line in the file: the header is line 1)."""
    with engine.connect() as connection:
        accounts = read_frame(connection, select(s.Customer.id, s.Customer.account_number))
    accounts = accounts.astype({"id": "int64"}).set_index("id")["account_number"]
    frame = all_ratings(engine)[["cdr_id", "customer_id", "allowance_s", "price_units", "rule"]]
    frame["customer_id"] = frame["customer_id"].map(accounts)
    line_of = all_calls(engine).set_index("id")["line_no"]
    frame["cdr_id"] = frame["cdr_id"].astype("int64").map(line_of)
    return {MOVED_CALLS[int(r[0]) - 2][0]: (r[1], int(r[2]), int(r[3]), r[4]) for r in frame.itertuples(index=False)}


def test_a_number_moving_between_customers_is_rated_on_each_account_on_the_cluster(dask_cluster, tmp_path):
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'wb.sqlite'}")
    engine = moved_number_operator(tmp_path, settings)
    here = jobs.rate(engine, settings, "2026-10", NOW)
    assert here.where == "on this machine" and as_expected(engine) == MOVED_EXPECTED
    local = stored(engine)

    there = jobs.rate(engine, on(settings, dask_cluster), "2026-10", LATER)
    assert there.where == f"on a Dask cluster of 2 workers at {dask_cluster.scheduler.address}"
    assert as_expected(engine) == MOVED_EXPECTED
    pd.testing.assert_frame_equal(stored(engine), local)
    # C1 and C2 (ids 1 and 2) in partitions of their own: M1, M2 in C1's, M3 to M5 in C2's
    with engine.connect() as connection:
        calls = stored_calls.period_calls(connection, Period.parse("2026-10"), "Europe/Paris", billed=False)
        keys = partition_keys(calls, stored_calls.lines(connection), "Europe/Paris", 4)
    assert list(keys) == [1, 1, 2, 2, 2]


# ------------------------------------------------------------------------------ a generated operator


@pytest.fixture(scope="module")
def rated_operator_file(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """A generated operator of 32 customers and 10,000 calls (one of its numbers moves from one
    customer to another on 15 October), loaded and rated on this machine, once for the module:
    the SQLite file and its ratings."""
    folder = tmp_path_factory.mktemp("operator")
    generate_operator(folder / "data", seed=3, customers=32, calls=10_000)
    settings = Settings(database_url=f"sqlite:///{folder / 'wb.sqlite'}")
    engine = jobs.open_database(settings)
    jobs.load_reference(engine, settings, folder / "data" / "reference")
    jobs.load_cdrs(engine, settings, jobs.cdr_files(folder / "data" / "cdrs"), clock=lambda: NOW)
    summary = jobs.rate(engine, settings, "2026-10", NOW)
    assert summary.rated > 8_000
    local = stored(engine)
    engine.dispose()  # everything in the file
    return folder / "wb.sqlite", local, folder / "data" / "reference"


@pytest.fixture
def rated_operator(rated_operator_file, tmp_path):
    """A copy of the rated generated operator: (settings, engine, its ratings on this machine)."""
    database = tmp_path / "wb.sqlite"
    shutil.copyfile(rated_operator_file[0], database)
    settings = Settings(database_url=f"sqlite:///{database}", storage_url=str(tmp_path / "ftp"),
                        output_dir=str(tmp_path / "out"), outbox_dir=str(tmp_path / "outbox"))
    engine = jobs.open_database(settings)
    yield settings, engine, rated_operator_file[1]
    engine.dispose()


def test_the_cluster_rates_call_for_call_as_this_machine(dask_cluster, rated_operator):
    settings, engine, local = rated_operator
    with engine.connect() as connection:
        lines = stored_calls.lines(connection)
    moved = lines.groupby("number")["customer_id"].nunique()
    assert (moved > 1).any()  # the generated operator has a number moving between customers

    summary = jobs.rate(engine, on(settings, dask_cluster), "2026-10", LATER)
    assert summary.rated == len(local) and summary.where.startswith("on a Dask cluster of 2 workers at tcp://")
    pd.testing.assert_frame_equal(stored(engine), local)
    assert (rated_calls(engine, "2026-10")["rated_at"] == pd.Timestamp(LATER)).all()  # stored again, the same

    # however many partitions: the same result as the pure function on this machine
    with engine.connect() as connection:
        inputs = dict(calls=stored_calls.period_calls(connection, Period.parse("2026-10"), "Europe/Paris",
                                                      billed=False),
                      lines=stored_calls.lines(connection), plans=stored_calls.rate_plans(connection))
        subs, allowances = stored_calls.subscriptions_with_allowances(connection)
    buckets = allowance_buckets(subs, allowances, Period.parse("2026-10"), "Europe/Paris")
    expected = rate(**inputs, period="2026-10", buckets=buckets)
    with cluster(dask_cluster.scheduler.address) as there:
        assert there.address == dask_cluster.scheduler.address and there.workers == 2
        for partitions in (1, 3, 7):
            got = partitioned_rater(there, partitions=partitions)(**inputs, period="2026-10", buckets=buckets)
            pd.testing.assert_frame_equal(got.rated, expected.rated)
            pd.testing.assert_frame_equal(got.errors.reset_index(drop=True),
                                          expected.errors.sort_values("cdr_id", ignore_index=True))


def test_what_if_on_the_cluster_is_what_if_on_this_machine(dask_cluster, rated_operator, rated_operator_file,
                                                           tmp_path):
    settings, engine, _ = rated_operator
    rates = pd.read_csv(rated_operator_file[2] / "rates.csv", dtype=str, keep_default_na=False)
    rates["connect_fee"] = "0.05"  # the candidate: a connect fee of 0.05 on every rate
    rates[COLUMNS["rates"]].to_csv(tmp_path / "rates.csv", index=False)
    here = jobs.what_if(engine, settings, "2026-10", tmp_path / "rates.csv")
    there = jobs.what_if(engine, on(settings, dask_cluster), "2026-10", tmp_path / "rates.csv")
    assert here.where == "on this machine"
    assert there.where == f"on a Dask cluster of 2 workers at {dask_cluster.scheduler.address}"
    assert there.result.difference_cents == here.result.difference_cents != 0  # fees up from 0, down from 0.10
    for name in ("detail", "lines", "customers", "zones", "bands"):
        pd.testing.assert_frame_equal(getattr(there.result, name), getattr(here.result, name))


def test_a_worker_killed_mid_run_loses_nothing(dask_cluster, rated_operator):
    settings, engine, local = rated_operator
    settings = on(settings, dask_cluster)
    pids = dask_cluster.run(os.getpid)  # by worker address
    killed = []

    def kill_a_worker(done: int, total: int) -> None:
        """When the first partition is rated: kill the worker holding the most results (and
        inputs) of this run, so that they must be computed again."""
        if killed:
            return
        held = dask_cluster.who_has()
        counts = {address: sum(address in where for where in held.values()) for address in pids}
        victim = max(counts, key=counts.get)
        assert counts[victim] > 0
        os.kill(pids[victim], signal.SIGKILL)
        killed.append(pids[victim])

    summary = jobs.rate(engine, settings, "2026-10", LATER, on_partition=kill_a_worker)
    assert len(killed) == 1
    with pytest.raises(ProcessLookupError):
        os.kill(killed[0], 0)  # the worker is dead
    assert summary.rated == len(local)
    pd.testing.assert_frame_equal(stored(engine), local)


def test_an_interrupted_run_stores_nothing_and_runs_again_to_the_same_result(dask_cluster, rated_operator):
    settings, engine, local = rated_operator
    settings = on(settings, dask_cluster)

    def interrupt(done: int, total: int) -> None:
        raise KeyboardInterrupt  # Ctrl-C while the workers rate

    with pytest.raises(KeyboardInterrupt):
        jobs.rate(engine, settings, "2026-10", LATER, on_partition=interrupt)
    # the ratings of the run before are still there, untouched
    assert (rated_calls(engine, "2026-10")["rated_at"] == pd.Timestamp(NOW)).all()
    pd.testing.assert_frame_equal(stored(engine), local)

    jobs.rate(engine, settings, "2026-10", LATER)
    pd.testing.assert_frame_equal(stored(engine), local)
    assert (rated_calls(engine, "2026-10")["rated_at"] == pd.Timestamp(LATER)).all()


def test_a_cluster_gone_mid_run_stores_nothing_and_the_rating_runs_again(dask_cluster, rated_operator):
    from distributed import LocalCluster

    settings, engine, local = rated_operator
    with LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as doomed:
        def stop_the_cluster(done: int, total: int) -> None:
            doomed.close()  # the scheduler and its worker gone, the first partition rated

        with pytest.raises(UnavailableError, match=f"the Dask cluster at {doomed.scheduler_address} failed .*: "
                                                   "nothing stored, run the command again"):
            jobs.rate(engine, replace(settings, dask_scheduler=doomed.scheduler_address), "2026-10", LATER,
                      on_partition=stop_the_cluster)
    assert (rated_calls(engine, "2026-10")["rated_at"] == pd.Timestamp(NOW)).all()  # the ratings before, kept
    pd.testing.assert_frame_equal(stored(engine), local)

    jobs.rate(engine, on(settings, dask_cluster), "2026-10", LATER)
    pd.testing.assert_frame_equal(stored(engine), local)


def test_the_rate_command_starts_a_local_cluster_and_says_where_it_rated(rated_operator, monkeypatch, capsys):
    settings, engine, local = rated_operator
    monkeypatch.setenv("WORKBENCH_DASK_SCHEDULER", "local:2")
    assert cli.main(["--database-url", settings.database_url, "rate", "--period", "2026-10"]) == 0
    out = capsys.readouterr().out
    assert f"{len(local)} rated" in out
    assert "rated on a Dask cluster of 2 workers at tcp://127.0.0.1:" in out
    pd.testing.assert_frame_equal(stored(engine), local)


# ------------------------------------------------------------------------------------------- PDFs


def text_of(pdf: bytes) -> str:
    return "\f".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def test_invoice_pdfs_render_on_the_cluster_as_on_this_machine(dask_cluster, tmp_path):
    generate_operator(tmp_path / "data", seed=5, customers=6, calls=300)
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'wb.sqlite'}", storage_url=str(tmp_path / "ftp"),
                        output_dir=str(tmp_path / "out"), outbox_dir=str(tmp_path / "outbox"))
    engine = jobs.open_database(settings)
    jobs.load_reference(engine, settings, tmp_path / "data" / "reference")
    jobs.load_cdrs(engine, settings, jobs.cdr_files(tmp_path / "data" / "cdrs"), clock=lambda: NOW)
    run = jobs.preprod(engine, settings, jobs.run_options(settings, "2026-10"), NOW).run.run_id
    here = jobs.publish_run(engine, settings, run)
    assert here.where == "on this machine" and len(here.stored) == 6
    local = {path: (tmp_path / "ftp" / path).read_bytes() for path in here.stored}

    there = jobs.publish_run(engine, replace(on(settings, dask_cluster), storage_url=str(tmp_path / "ftp-2")), run)
    assert there.where == f"on a Dask cluster of 2 workers at {dask_cluster.scheduler.address}"
    assert sorted(there.stored) == sorted(here.stored) and not there.failed
    for path, pdf in local.items():
        assert text_of((tmp_path / "ftp-2" / path).read_bytes()) == text_of(pdf)  # page by page
    engine.dispose()
