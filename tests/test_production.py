"""The production job (what the production notebook runs): a failure halfway, then a re-run that
finishes what is missing and does nothing twice."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from factories import approved
from sqlalchemy import func, select, update

from workbench.billing import preprod
from workbench.config import Settings
from workbench.db import schema as s
from workbench.db.engine import make_engine, upgrade
from workbench.db.locks import job_lock
from workbench.errors import InputError, UnavailableError
from workbench.integration import load_cdr_files
from workbench.jobs import open_database
from workbench.jobs import production as production_job
from workbench.rated_calls import rate_period
from workbench.reads.runs import RunOptions
from workbench.reference import load_reference
from workbench.sample import generate_operator

NOW = datetime(2026, 11, 1, 6, 0)


def _reviewed_october(tmp_path, settings: Settings):
    """The generated operator of ``tmp_path / "data"`` loaded, rated and billed in pre-production
    for October 2026: the engine and the run."""
    engine = make_engine(settings.database_url)
    upgrade(engine)
    load_reference(engine, tmp_path / "data" / "reference")
    load_cdr_files(engine, sorted((tmp_path / "data" / "cdrs").iterdir()), settings, lambda: NOW)
    rate_period(engine, "2026-10", settings, NOW)
    run = preprod(engine, RunOptions("2026-10", date(2026, 11, 1), date(2026, 12, 1)), settings, NOW)
    approved(engine, run.run_id)
    return engine, run


def test_a_failed_delivery_is_finished_by_running_again(tmp_path):
    generate_operator(tmp_path / "data", seed=3, customers=12, calls=600)
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'wb.sqlite'}", storage_url=str(tmp_path / "ftp"),
                        outbox_dir=str(tmp_path / "outbox"), output_dir=str(tmp_path / "out"),
                        smtp_url="smtp://127.0.0.1:1")  # nothing listens there
    engine, run = _reviewed_october(tmp_path, settings)

    with pytest.raises(UnavailableError, match="email delivery stopped"):
        production_job(engine, settings, run.run_id, "2026-10", True, NOW)
    with engine.connect() as connection:
        issued = connection.execute(select(func.count()).where(s.Invoice.status == "issued")).scalar_one()
        planned = connection.execute(select(func.count()).select_from(s.Delivery)).scalar_one()
        assert connection.execute(select(func.count()).select_from(s.SepaFile)).scalar_one() == 0
    assert issued == 12 and planned >= 11  # one sample customer has no invoice recipient at most

    fixed = Settings(**{**settings.__dict__, "smtp_url": ""})  # back to the outbox
    with job_lock(engine, "mail"):  # an analyst's mail run is in progress: this job sends nothing
        with pytest.raises(UnavailableError, match="email delivery not started: not sending: another mail run"):
            production_job(engine, fixed, run.run_id, "2026-10", True, NOW)
    assert not (tmp_path / "outbox").exists()
    result = production_job(engine, fixed, run.run_id, "2026-10", True, NOW)
    assert "already issued" in result.promotion.run.message
    documents = result.promotion.documents
    assert len(result.delivery.sent.sent) == planned and len(documents.stored) + len(documents.already) == 12
    assert result.direct_debits.path is not None and result.direct_debits.transactions > 0
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == planned

    again = production_job(engine, fixed, run.run_id, "2026-10", True, NOW)
    assert len(again.delivery.sent.sent) == 0 and again.direct_debits.path is None
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).where(s.Invoice.status == "issued")).scalar_one() == 12
        assert connection.execute(select(func.count()).select_from(s.SepaFile)).scalar_one() == 1


def test_bad_parameters_are_refused(tmp_path):
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'wb.sqlite'}")
    engine = open_database(settings)
    with pytest.raises(InputError, match="run_id must be the number"):
        production_job(engine, settings, None, "2026-10", True)
    with pytest.raises(InputError, match="2026-13"):
        production_job(engine, settings, 1, "2026-13", True)
    with pytest.raises(InputError, match="no billing run 1"):
        production_job(engine, settings, 1, "2026-10", True)


def test_emails_possibly_sent_are_not_sent_again_and_are_listed_in_the_summary(tmp_path):
    from test_mail import Recorder, SmtpServer

    generate_operator(tmp_path / "data", seed=3, customers=12, calls=600)
    recorder = Recorder()
    recorder.drop_after = 2  # the third message is received whole, then the connection drops unanswered
    server = SmtpServer(recorder).start()
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'wb.sqlite'}", storage_url=str(tmp_path / "ftp"),
                        outbox_dir=str(tmp_path / "outbox"), output_dir=str(tmp_path / "out"), smtp_url=server.url)
    try:
        engine, run = _reviewed_october(tmp_path, settings)
        with pytest.raises(UnavailableError, match="email delivery stopped.*possibly sent"):
            production_job(engine, settings, run.run_id, "2026-10", True, NOW)
        with engine.connect() as connection:
            [(number, recipient)] = connection.execute(
                select(s.Invoice.number, s.Delivery.recipient).join(s.Invoice, s.Invoice.id == s.Delivery.invoice_id)
                .where(s.Delivery.state == "uncertain")).all()
            planned = connection.execute(select(func.count()).select_from(s.Delivery)).scalar_one()

        recorder.drop_after = None
        result = production_job(engine, settings, run.run_id, "2026-10", True, NOW)
        assert len(recorder.messages) == planned - 1  # all but the one possibly sent (this server did not keep it)
        assert (number, recipient) not in recorder.received()
        summary = result.report()
        [(invoice, to, why)] = [f for f in summary.emails_not_sent if f[2].startswith("possibly sent: ")]
        assert (invoice, to) == (number, recipient) and "before the server's reply" in why
        assert "1 emails possibly sent (check, then send them again or not)" in summary.left_undone
        assert summary.sepa_file is not None  # the job went on to the direct debits
    finally:
        server.stop()


def test_a_debtor_name_with_nothing_left_in_latin_letters_is_in_the_job_result(tmp_path):
    generate_operator(tmp_path / "data", seed=3, customers=12, calls=600)
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'wb.sqlite'}", storage_url=str(tmp_path / "ftp"),
                        outbox_dir=str(tmp_path / "outbox"), output_dir=str(tmp_path / "out"))
    engine = make_engine(settings.database_url)
    upgrade(engine)
    load_reference(engine, tmp_path / "data" / "reference")
    with engine.begin() as connection:  # two direct-debit customers with an active mandate get other names
        accounts = connection.execute(
            select(s.Customer.id, s.Customer.account_number).join(s.Mandate, s.Mandate.customer_id == s.Customer.id)
            .where(s.Customer.payment_method == "direct_debit", s.Mandate.status == "active")
            .order_by(s.Customer.account_number).limit(2)).all()
        for (customer_id, _), name in zip(accounts, ["★★★ ✓", "Иванов ООО"], strict=True):
            connection.execute(update(s.Customer).where(s.Customer.id == customer_id).values(name=name))
    load_cdr_files(engine, sorted((tmp_path / "data" / "cdrs").iterdir()), settings, lambda: NOW)
    rate_period(engine, "2026-10", settings, NOW)
    run = preprod(engine, RunOptions("2026-10", date(2026, 11, 1), date(2026, 12, 1)), settings, NOW)
    result = production_job(engine, settings, approved(engine, run.run_id), "2026-10", False, NOW)
    summary = result.report()
    with engine.connect() as connection:
        number, net = connection.execute(select(s.Invoice.number, s.Invoice.net_payable_cents).where(
            s.Invoice.customer_id == accounts[0][0], s.Invoice.status == "issued")).one()
    # and in the summary people and the cron log read
    assert f"left out: {number} (account {accounts[0][1]}, " in summary.text()
    # the symbols-only name is refused, naming the invoice and the account, in the job's own result
    assert summary.sepa_left_out == (
        (number, accounts[0][1], net, "debtor name '★★★ ✓' is empty in the SEPA character set"),)
    assert "1 invoices left out of the SEPA file" in summary.left_undone
    # the Cyrillic name is transliterated and debited
    xml = (tmp_path / "ftp" / result.direct_debits.path).read_text(encoding="utf-8")
    assert "<Nm>Ivanov OOO</Nm>" in xml
    assert 'pain.008.001.08' in xml
