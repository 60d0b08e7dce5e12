"""The job layer: each step of the month once, with its result record, whoever calls it (the
command line, a widget, the production notebook)."""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import date, datetime
from pathlib import Path

import pytest
from factories import all_ratings, approved, table_counts
from sqlalchemy import func, select

from workbench import jobs, ui
from workbench.config import Settings
from workbench.db import schema as s
from workbench.errors import InputError, RefusedError, problems_table
from workbench.reads.calls import rating_problems, rejects_frame
from workbench.sample import generate_operator

NOW = datetime(2026, 11, 1, 6, 0)


@pytest.fixture
def month(tmp_path) -> tuple[Settings, object, Path]:
    data = tmp_path / "data"
    generate_operator(data, seed=5, customers=6, calls=300)
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'wb.sqlite'}", storage_url=str(tmp_path / "ftp"),
                        outbox_dir=str(tmp_path / "outbox"), output_dir=str(tmp_path / "out"))
    engine = jobs.open_database(settings)
    return settings, engine, data


def count(engine, table) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(table)).scalar_one()


def test_the_month_as_a_sequence_of_jobs(month, tmp_path):
    settings, engine, data = month
    reference = jobs.load_reference(engine, settings, data / "reference")
    assert reference.counts["customers"] == 6
    load = jobs.load_cdrs(engine, settings, jobs.cdr_files(data / "cdrs"), clock=lambda: NOW)
    assert [f.status for f in load.files] == ["loaded", "loaded"]
    assert load.accepted == table_counts(engine)["calls"] and load.rejected == count(engine, s.CdrReject.__table__)
    rating = jobs.rate(engine, settings, "2026-10", NOW)
    assert rating.rated + rating.errors == rating.calls and rating.rated == len(all_ratings(engine))
    # rejected records and calls not rated are shown as every problem is
    rejects = problems_table(rejects_frame(engine))
    assert list(rejects.columns) == ["Source", "Line or key", "Problem", "Detail", "raw", "status"]
    assert len(rejects) == load.rejected and set(rejects["Source"]) <= {f.name for f in jobs.cdr_files(data / "cdrs")}
    not_rated = rating_problems(engine, "2026-10")
    assert list(not_rated.columns) == ["source", "key", "code", "message"] and len(not_rated) == rating.errors
    assert set(not_rated["source"]) <= {"rating 2026-10"} and all(k.startswith("cdr ") for k in not_rated["key"])

    options = jobs.run_options(settings, "2026-10")
    assert (options.invoice_date, options.due_date, options.customers) == (date(2026, 11, 1), date(2026, 12, 1),
                                                                             "all")
    result = jobs.preprod(engine, settings, options, NOW)
    # the control report is written here and stored in the FTP space, whoever launches the run
    assert result.report.path == tmp_path / "out" / "reports" / f"control-report-2026-10-run{result.run.run_id}.xlsx"
    assert result.report.path.is_file()
    stored = tmp_path / "ftp" / result.report.stored_as
    assert result.report.stored_as == f"reports/2026-10/{result.report.path.name}"
    assert stored.read_bytes() == result.report.path.read_bytes()
    assert result.documents is None and result.run.invoices == 6

    # no reviewer approved it: production refuses, nothing issued
    with pytest.raises(RefusedError, match=f"run {result.run.run_id} is not approved"):
        jobs.promote(engine, settings, result.run.run_id, NOW)
    assert count(engine, s.NumberSequence.__table__) == 0
    approved(engine, result.run.run_id)
    promotion = jobs.promote(engine, settings, result.run.run_id, NOW)
    assert promotion.run.invoices == 6 and promotion.run.numbers == ("F2026-000001", "F2026-000006")
    assert len(promotion.documents.stored) == 6
    assert len(list((tmp_path / "ftp" / "invoices" / "2026" / "11").glob("F2026-*.pdf"))) == 6
    delivery = jobs.deliver(engine, settings, run_id=promotion.run.run_id, now=NOW)
    assert len(delivery.sent.sent) == len(delivery.planned.planned) > 0 and delivery.sent.ok
    debits = jobs.generate_direct_debits(engine, settings, NOW, period="2026-10")
    assert debits.transactions == count(engine, s.SepaDebit.__table__)
    # promoting again issues nothing, and says so
    again = jobs.promote(engine, settings, result.run.run_id, NOW)
    assert again.run.invoices == 0 and "already issued" in again.run.message


def test_the_widgets_call_the_same_jobs(month, tmp_path):
    settings, engine, data = month
    jobs.load_reference(engine, settings, data / "reference")
    assert set(ui.load_folder(settings, engine, data / "cdrs")["status"]) == {"loaded"}
    ui.rate_now(settings, engine, "2026-10")
    run_id = ui.preprod_now(settings, engine, "2026-10")
    # the notebook's run stores its control report in the FTP space too
    assert (tmp_path / "ftp" / "reports" / "2026-10" / f"control-report-2026-10-run{run_id}.xlsx").is_file()
    assert ui.latest_run(engine, "2026-10") == run_id


@pytest.mark.parametrize(("arguments", "message"), [
    (("2026-13",), "not a billing period"),
    (("2026-10", "2026-11-31"), "'2026-11-31' is not a date"),
    (("2026-10", "2026-11-05", "2026-11-04"), "the due date 2026-11-04 is before the invoice date 2026-11-05"),
    (("2026-10", None, None, "vip"), "customer selection 'vip'"),
])
def test_run_options_say_what_is_wrong(arguments, message):
    with pytest.raises(InputError, match=message):
        jobs.run_options(Settings(), *arguments)


def test_a_due_date_follows_a_chosen_invoice_date():
    options = jobs.run_options(Settings(payment_days="15"), "2026-10", "2026-11-03")
    assert (options.invoice_date, options.due_date) == (date(2026, 11, 3), date(2026, 11, 18))


def test_parameters_of_the_production_job_are_checked_before_any_use(month):
    settings, engine, _ = month
    for run_id, period, message in ((None, "2026-10", "run_id must be the number"),
                                    ("1; drop", "2026-10", "run_id must be the number"),
                                    (1, "x/../../../../tmp/evil", "not a billing period"),
                                    (7, "2026-10", "there is no billing run 7")):
        with pytest.raises(InputError, match=message):
            jobs.check_parameters(engine, run_id, period)
    with pytest.raises(InputError, match="not a billing period"):
        jobs.run_production_notebook(1, "x/../../../../tmp/evil", False, settings)


def test_delivery_refuses_a_pre_production_run(month):
    settings, engine, data = month
    jobs.load_reference(engine, settings, data / "reference")
    run = jobs.preprod(engine, settings, jobs.run_options(settings, "2026-10"), NOW)
    with pytest.raises(InputError, match="pre-production run: its drafts are not emailed"):
        jobs.deliver(engine, settings, run_id=run.run.run_id, now=NOW)
    with pytest.raises(InputError, match="give a production run or a period"):
        jobs.deliver(engine, settings, now=NOW)


def test_a_storage_url_that_cannot_be_used_stops_promotion_before_any_number(month, tmp_path):
    from dataclasses import replace

    from workbench.errors import ConfigError

    settings, engine, data = month
    jobs.load_reference(engine, settings, data / "reference")
    run = jobs.preprod(engine, settings, jobs.run_options(settings, "2026-10"), NOW).run
    broken = replace(settings, storage_url="ftp://billing@127.0.0.1:99999/space")
    with pytest.raises(ConfigError, match="the port is not a number"):
        jobs.promote(engine, broken, run.run_id, NOW)
    assert count(engine, s.NumberSequence.__table__) == 0
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).where(s.Invoice.status == "issued")).scalar_one() == 0
    # the preview of a draft is rendered on the fly when the FTP space cannot give it
    assert jobs.invoice_pdf(engine, broken, f"PRE-{run.run_id}-0001").startswith(b"%PDF-")


def test_a_run_whose_report_cannot_be_written_here_is_named(month, tmp_path):
    from dataclasses import replace

    from workbench.errors import UnavailableError

    settings, engine, data = month
    jobs.load_reference(engine, settings, data / "reference")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "reports").write_text("a file where the reports folder goes")
    with pytest.raises(UnavailableError, match=r"cannot be written .*Pre-production run 1 is stored \(6 drafts\)"):
        jobs.preprod(engine, replace(settings, output_dir=str(tmp_path / "elsewhere")),
                     jobs.run_options(settings, "2026-10"), NOW)
    assert ui.latest_run(engine, "2026-10") == 1


def test_a_storage_url_that_cannot_be_used_stops_a_credit_note_before_its_number(month):
    from dataclasses import replace

    from workbench.errors import ConfigError

    settings, engine, data = month
    jobs.load_reference(engine, settings, data / "reference")
    run = jobs.preprod(engine, settings, jobs.run_options(settings, "2026-10"), NOW).run
    jobs.promote(engine, settings, approved(engine, run.run_id), NOW)
    broken = replace(settings, storage_url="ftp://billing@127.0.0.1:99999/space")
    with pytest.raises(ConfigError, match="the port is not a number"):
        jobs.credit_note(engine, broken, "F2026-000001", "wrong rate", now=NOW)
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).where(s.Invoice.kind == "credit_note")).scalar_one() == 0
    note = jobs.credit_note(engine, settings, "F2026-000001", "wrong rate", now=NOW)  # once the URL is fixed
    assert note.number == "A2026-000001" and note.documents.stored == ["credit-notes/2026/11/A2026-000001.pdf"]


def test_a_run_whose_report_cannot_be_stored_is_named(month, tmp_path):
    from dataclasses import replace

    from workbench.errors import UnavailableError

    settings, engine, data = month
    jobs.load_reference(engine, settings, data / "reference")
    (tmp_path / "ftp").mkdir(exist_ok=True)
    (tmp_path / "ftp" / "reports").write_text("a file where the reports folder goes")
    with pytest.raises(UnavailableError, match=r"Pre-production run 1 is stored \(6 drafts\); write its report "
                                               r"again with `workbench report 1`"):
        jobs.preprod(engine, replace(settings, storage_url=str(tmp_path / "ftp")),
                     jobs.run_options(settings, "2026-10"), NOW)
    assert ui.latest_run(engine, "2026-10") == 1


def test_notebooks_find_a_relative_configuration_from_the_project_root(tmp_path, monkeypatch):
    from workbench.ui.inputs import PROJECT_ROOT

    name = f"test-config-{tmp_path.name}.toml"
    config = PROJECT_ROOT / name
    config.write_text(f'database_url = "sqlite:///{tmp_path / "from-config.sqlite"}"\n', encoding="utf-8")
    try:
        monkeypatch.chdir(PROJECT_ROOT / "notebooks")  # where a notebook runs
        monkeypatch.setenv("WORKBENCH_CONFIG", name)
        for name in ("DATABASE_URL", "OUTPUT_DIR"):
            monkeypatch.delenv(f"WORKBENCH_{name}", raising=False)
        settings, engine = ui.connect()
        assert settings.database_url == f"sqlite:///{tmp_path / 'from-config.sqlite'}"
        assert settings.output_dir == str(PROJECT_ROOT / "var")  # relative paths start at the root too
        engine.dispose()
    finally:
        config.unlink()


def test_passwords_in_urls_never_reach_the_output(month, tmp_path, capsys, monkeypatch):
    from workbench.cli import main
    from workbench.config import redacted

    assert redacted("ftp://billing:S3cret@host:21/base") == "ftp://billing:***@host:21/base"
    assert redacted("postgresql+psycopg://billing:p%40ss@db/billing") == "postgresql+psycopg://billing:***@db/billing"
    assert redacted("var/ftp") == "var/ftp" and redacted("") == ""
    # SQLAlchemy takes a password with "/", "#" or "?" as it is written
    assert redacted("postgresql+psycopg://postgres:S3c/ret@db:5432/wb") == "postgresql+psycopg://postgres:***@db:5432/wb"
    assert redacted("postgresql+psycopg://billing:S3c#re?t@db/wb") == "postgresql+psycopg://billing:***@db/wb"
    settings, engine, data = month
    jobs.load_reference(engine, settings, data / "reference")
    run = jobs.preprod(engine, settings, jobs.run_options(settings, "2026-10"), NOW).run
    monkeypatch.setenv("WORKBENCH_STORAGE_URL", "ftp://billing:S3cret@127.0.0.1:1/space")  # nothing listens
    assert main(["--database-url", settings.database_url, "documents", "--run", str(run.run_id)]) == 2
    out = capsys.readouterr()
    assert "cannot connect" in out.err and "S3cret" not in out.out + out.err
    from workbench import cli

    cli._print_publish(jobs.PublishReport(), "run 2", Settings(storage_url="ftp://billing:S3cret@host/base"))
    assert capsys.readouterr().out.strip().endswith("in ftp://billing:***@host/base")


@pytest.mark.parametrize(("url", "kind", "message"), [
    ("sqlite:////proc/no-such-folder/x.sqlite", "UnavailableError", "cannot be opened"),
    ("postgresql+nosuch://billing:S3c/ret@db/billing", "ConfigError", "cannot be used"),
    ("postgresql+psycopg://billing:S3c/ret@[::1/billing", "ConfigError", "cannot be used"),
])
def test_a_database_url_that_cannot_be_used_is_one_clear_error(url, kind, message):
    from workbench import errors

    with pytest.raises(getattr(errors, kind), match=message) as caught:
        jobs.open_database(Settings(database_url=url))
    assert "S3c/ret" not in str(caught.value)


def test_a_mistyped_sqlite_path_is_refused_not_created_by_the_commands_that_use_a_workspace(tmp_path, capsys):
    from workbench.cli import main
    from workbench.errors import ConfigError

    url, typo = f"sqlite:///{tmp_path / 'billing.sqlite'}", f"sqlite:///{tmp_path / 'biling.sqlite'}"
    assert main(["--database-url", url, "db-upgrade"]) == 0
    for command in (["runs"], ["rate", "--period", "2026-10"], ["sepa", "--period", "2026-10"],
                    ["load-cdrs", str(tmp_path / "none.csv")],
                    ["production-notebook", "--approved", "--period", "2026-10"]):
        assert main(["--database-url", typo, *command]) == 2, command
        err = capsys.readouterr().err
        assert f"there is no database file {tmp_path / 'biling.sqlite'}: check the setting database_url" in err
        assert "workbench db-upgrade" in err and "Traceback" not in err
    with pytest.raises(ConfigError) as caught:
        jobs.run_production_notebook(1, "2026-10", False, Settings(database_url=typo))
    assert caught.value.code == "no_database"
    with pytest.raises(ConfigError) as caught:  # the reviewers' dashboards connect so
        ui.connect(typo, create=False)
    assert caught.value.code == "no_database"
    assert not (tmp_path / "biling.sqlite").exists()
    # an empty file there (a database without the workbench's schema): refused, left as it was
    (tmp_path / "empty.sqlite").touch()
    assert main(["--database-url", f"sqlite:///{tmp_path / 'empty.sqlite'}", "runs"]) == 2
    assert "holds no workbench database (no schema version)" in capsys.readouterr().err
    with contextlib.closing(sqlite3.connect(tmp_path / "empty.sqlite")) as empty:
        assert empty.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)  # no table made
    assert main(["--database-url", url, "runs"]) == 0  # the database that exists opens
    # the commands that start a workspace create it where they are told
    assert main(["--database-url", typo, "db-upgrade"]) == 0 and (tmp_path / "biling.sqlite").exists()


def test_a_file_that_is_not_a_database_is_one_clear_error(tmp_path):
    from workbench.errors import UnavailableError

    (tmp_path / "notes.sqlite").write_text("not a database")
    with pytest.raises(UnavailableError, match="cannot be reached \\(file is not a database\\)"):
        jobs.open_database(Settings(database_url=f"sqlite:///{tmp_path / 'notes.sqlite'}"))


def test_a_database_that_cannot_be_reached_is_one_clear_error(capsys):
    from workbench.cli import main
    from workbench.errors import UnavailableError

    url = "postgresql+psycopg://billing:S3cret@127.0.0.1:1/billing"  # nothing listens on port 1
    with pytest.raises(UnavailableError, match=r"^database postgresql\+psycopg://billing:\*\*\*@127.0.0.1:1/billing: "
                                               r"cannot be reached \(") as caught:
        jobs.open_database(Settings(database_url=url))
    assert "S3cret" not in str(caught.value) and caught.value.code == "database"
    assert main(["--database-url", url, "runs"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: database postgresql+psycopg://billing:***@") and "Traceback" not in err


def test_a_credit_note_is_dated_and_numbered_by_the_operators_date(month):
    settings, engine, data = month
    jobs.load_reference(engine, settings, data / "reference")
    run = jobs.preprod(engine, settings, jobs.run_options(settings, "2026-10"), NOW).run
    jobs.promote(engine, settings, approved(engine, run.run_id), NOW)
    # 23:30 UTC on 31 December is 00:30 on 1 January 2027 in Paris
    note = jobs.credit_note(engine, settings, "F2026-000001", "wrong rate", now=datetime(2026, 12, 31, 23, 30))
    assert note.number == "A2027-000001"
    with engine.connect() as connection:
        dated = connection.execute(select(s.Invoice.invoice_date).where(s.Invoice.number == note.number)).scalar_one()
    assert dated == date(2027, 1, 1)
    assert note.documents.stored == ["credit-notes/2027/01/A2027-000001.pdf"]


EVIL = "x/../../../../tmp/evil"


@pytest.mark.parametrize("arguments", [
    ["production-notebook", "--run", "1", "--period", EVIL],
    ["rate", "--period", EVIL],
    ["preprod", "--period", EVIL],
    ["mail", "--period", EVIL],
    ["sepa", "--period", EVIL],
    ["runs", "--period", EVIL],
    ["demo", "--period", EVIL],
])
def test_a_period_that_is_a_path_is_refused_before_any_use(arguments, tmp_path, monkeypatch, capsys):
    from workbench.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WORKBENCH_DATABASE_URL", f"sqlite:///{tmp_path / 'wb.sqlite'}")
    assert main(["db-upgrade"]) == 0
    capsys.readouterr()
    before = set(Path("/tmp").glob("evil*"))
    assert main(arguments) == 2
    assert f"{EVIL!r} is not a billing period" in capsys.readouterr().err
    assert set(Path("/tmp").glob("evil*")) == before
    assert not [p for p in tmp_path.rglob("*") if "evil" in p.name]


@pytest.mark.parametrize("arguments", [
    ["documents", "--invoice", "../../../tmp/evil"],
    ["credit-note", "../../../tmp/evil", "--reason", "x"],
])
def test_a_document_number_that_is_a_path_is_refused(arguments, tmp_path, monkeypatch, capsys):
    from workbench.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WORKBENCH_DATABASE_URL", f"sqlite:///{tmp_path / 'wb.sqlite'}")
    assert main(["db-upgrade"]) == 0
    capsys.readouterr()
    assert main(arguments) == 2
    assert "../../../tmp/evil" in capsys.readouterr().err
    assert not [p for p in tmp_path.rglob("*") if "evil" in p.name]


def test_a_control_report_is_named_from_checked_values():
    expected = Path("out/reports/control-report-2026-10-run12.xlsx")
    assert jobs.report_path(Settings(output_dir="out"), 12, "2026-10") == expected
    with pytest.raises(InputError, match="not a billing period"):
        jobs.report_path(Settings(output_dir="out"), 12, EVIL)
    with pytest.raises(InputError, match="run_id must be the number"):
        jobs.report_path(Settings(output_dir="out"), "1/../../x", "2026-10")


def test_production_notebook_reads_the_jobs_summary_from_the_executed_notebook(tmp_path):
    import json

    from workbench.jobs.notebook import notebook_summary
    from workbench.ui.summary import production_summary

    summary = jobs.ProductionSummary(
        run=3, period="2026-10", production_run=4, invoices=2, total_incl_cents=123456, net_payable_cents=100000,
        numbers=("F2026-000001", "F2026-000002"), pdfs_stored=2, emails_sent=1,
        emails_not_sent=(("F2026-000002", "", "account C2: no contact is an invoice recipient"),),
        sepa_debits=1, sepa_total_cents=100000, sepa_file="sepa/x.xml",
        sepa_left_out=(("F2026-000002", "C2", 2345, "mandate revoked"),), left_undone=("1 invoices left out",))
    bundle = production_summary(summary)._repr_mimebundle_()
    cells = [{"cell_type": "code", "outputs": []},
             {"cell_type": "code", "outputs": [{"output_type": "execute_result", "data": bundle}]}]
    notebook = tmp_path / "executed.ipynb"
    notebook.write_text(json.dumps({"cells": cells}))
    assert notebook_summary(notebook) == summary
    text = bundle["text/plain"].splitlines()
    # 123456 cents = €1,234.56 billed; 100000 = €1,000.00 net payable and debited; 2345 = €23.45 left out
    assert "  total billed €1,234.56, net payable €1,000.00" in text
    assert "  not sent: F2026-000002: account C2: no contact is an invoice recipient" in text
    assert "  1 direct debits, €1,000.00, file sepa/x.xml" in text
    assert "  left out: F2026-000002 (account C2, €23.45): mandate revoked" in text
    assert text[-2:] == ["Left undone:", "  1 invoices left out"]
    cells[1]["outputs"] = []
    notebook.write_text(json.dumps({"cells": cells}))
    assert notebook_summary(notebook) is None
