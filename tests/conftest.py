"""Shared fixtures: a throwaway PostgreSQL server started by the tests, and database engines
on SQLite and PostgreSQL."""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import sqlalchemy
from servers import free_port

from workbench.config import Settings
from workbench.db.engine import make_engine, upgrade

_counter = itertools.count()


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server on 127.0.0.1, in a temporary folder, stopped after the session.

    ``initdb`` refuses to run as root, so as root the server runs as the ``postgres`` user."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL server binaries (initdb, pg_ctl) are missing")
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are missing")
    base = Path(tempfile.mkdtemp(prefix="workbench-pg-"))
    data = base / "data"
    prefix: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        os.chmod(base, 0o755)
        prefix = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    subprocess.run(
        [*prefix, initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
         "--no-locale"], check=True, capture_output=True,
    )
    options = f"-p {port} -k {base} -h 127.0.0.1 -c fsync=off -c full_page_writes=off"
    subprocess.run(
        [*prefix, pg_ctl, "-D", str(data), "-o", options, "-l", str(base / "log"), "-w", "start"],
        check=True, capture_output=True, timeout=60,
    )
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def new_postgres_database(server_url: str) -> str:
    name = f"wb_test_{os.getpid()}_{next(_counter)}"
    admin = sqlalchemy.create_engine(f"{server_url}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {name}")
    admin.dispose()
    return f"{server_url}/{name}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path) -> str:
    """An empty database on each back-end."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'workbench.sqlite'}"
    return new_postgres_database(request.getfixturevalue("postgres_server"))


@pytest.fixture(scope="session")
def _migrated_sqlite(tmp_path_factory) -> Path:
    """A SQLite file brought to the latest schema by the migrations, once a session."""
    path = tmp_path_factory.mktemp("migrated") / "workbench.sqlite"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()  # the last connection closed: everything is in the file, no -wal left
    return path


@pytest.fixture
def engine(database_url, request):
    """A migrated, empty database (on SQLite, a copy of the session's migrated file)."""
    if database_url.startswith("sqlite:///"):
        shutil.copyfile(request.getfixturevalue("_migrated_sqlite"), database_url.removeprefix("sqlite:///"))
        engine = make_engine(database_url)
    else:
        engine = make_engine(database_url)
        upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def settings(database_url) -> Settings:
    return Settings(database_url=database_url)


# The fast lane, ``pytest -m "not slow"``, runs in under a minute: it leaves out what takes the
# time (measured with ``--durations=0``), every PostgreSQL test and the tests below.
SLOW_FIXTURES = {
    "workspace": "Jupyter kernels, Voila and Chromium on a generated operator",
    "ftp_server": "an FTP server",
    "run_cli": "the command line, each case on its own October scenario",
    "month": "the jobs on a generated operator",
    "dask_cluster": "a Dask LocalCluster of worker processes",
}
SLOW_TESTS = {
    "whole generated operators: the production job, the demo, the sample's 200,000 calls, a benchmark": [
        "test_production.py::test_a_failed_delivery_is_finished_by_running_again",
        "test_production.py::test_emails_possibly_sent_are_not_sent_again_and_are_listed_in_the_summary",
        "test_project.py::test_demo_on_a_small_operator",
        "test_einvoicing.py::test_every_document_of_the_demo_is_a_valid_factur_x_and_is_exported",
        "test_project.py::test_a_fresh_demo_starts_from_an_empty_embedded_database",
        "test_project.py::test_the_bundled_sample_is_the_generators_output",
        "test_project.py::test_the_benchmark_runs_on_a_small_scale",
        "test_secrets.py::test_no_command_writes_a_password_anywhere",
        "test_integration.py::test_memory_is_bounded_by_a_chunk_not_by_the_file",
        "test_cluster.py::test_the_rate_command_starts_a_local_cluster_and_says_where_it_rated",
    ],
    "PDF batches over several pages, a pool of processes, sixty generated plans": [
        "test_documents.py::test_batches_split_into_one_pdf_per_invoice_on_the_right_pages",
        "test_documents.py::test_the_pool_gives_the_same_documents_as_one_process",
        "test_documents.py::test_pdf_workers_end_when_the_rendering_process_is_killed",
        "test_rating.py::test_longest_prefix_match_agrees_with_brute_force",
    ],
    "a property test: 200 histories of up to a dozen monthly billing runs": [
        "test_invoicing.py::test_property_each_day_of_service_is_billed_once",
    ],
    "transactions in threads, waiting for each other": [
        "test_integration.py::test_two_loads_of_overlapping_files_at_once_store_each_call_once",
        "test_billing.py::test_a_reopening_credit_note_waits_for_a_production_of_its_period",
        "test_billing.py::test_two_credit_notes_for_one_invoice_at_once_make_one",
        "test_billing.py::test_a_credit_note_during_a_sepa_run_waits_for_its_debits",
        "test_mail.py::test_two_mail_runs_at_once_send_each_delivery_once",
        "test_sepa.py::test_two_runs_at_once_make_one_file",
    ],
    "billing runs one after another on the October scenario: productions, credit notes, reruns": [
        "test_billing.py::test_preprod_changes_nothing_production_depends_on",
        "test_billing.py::test_compare_after_a_rate_correction",
        "test_billing.py::test_production_issues_gap_free_numbers_and_marks_what_it_bills",
        "test_billing.py::test_a_later_run_issues_only_the_customers_not_yet_invoiced",
        "test_billing.py::test_production_refuses_inputs_changed_since_review",
        "test_billing.py::test_reloading_the_same_data_and_rating_again_is_no_change",
        "test_billing.py::test_credit_note_cancels_an_invoice_into_account_credit",
        "test_billing.py::test_a_reopening_credit_note_lets_the_period_be_invoiced_again",
    ],
}


def pytest_collection_modifyitems(items):
    slow_tests = {name for names in SLOW_TESTS.values() for name in names}
    for item in items:
        if (item.get_closest_marker("postgres") or SLOW_FIXTURES.keys() & set(item.fixturenames)
                or f"{item.path.name}::{item.originalname}" in slow_tests):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _outputs_in_tmp(tmp_path, monkeypatch):
    """Reports, the FTP space and the outbox go to the test's folder, never to the project's
    ``var/`` (unless a fixture already chose a place)."""
    for name, folder in (("WORKBENCH_OUTPUT_DIR", "out"), ("WORKBENCH_STORAGE_URL", "ftp"),
                         ("WORKBENCH_OUTBOX_DIR", "outbox")):
        if not os.environ.get(name):
            monkeypatch.setenv(name, str(tmp_path / folder))
