"""Emailing issued invoices (workbench.mail), against a real SMTP server on 127.0.0.1 (aiosmtpd)
started by the tests, and the outbox folder of the embedded set-up."""

from __future__ import annotations

import asyncio
import email
import shutil
import signal
import socket
import ssl
import subprocess
import threading
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from email.policy import default as default_policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from servers import free_port
from sqlalchemy import insert, select, update

from workbench import mail
from workbench.config import Settings, load_settings
from workbench.db import schema as s
from workbench.db.engine import make_engine, upgrade
from workbench.db.locks import this_machine
from workbench.errors import ConfigError, UnavailableError
from workbench.mail import ledger
from workbench.storage import Storage, invoice_path

NOW = datetime(2026, 11, 2, 9, 30)
PDF = b"%PDF-1.4 fake invoice\n%%EOF\n"
ISSUED = date(2026, 11, 1)


# ---------------------------------------------------------------------------- bounds and databases

@pytest.fixture(autouse=True)
def _time_limit():
    """No test of this module may hang: each is stopped after 60 seconds."""
    def expired(signum, frame):
        raise TimeoutError("test_mail: test still running after 60 s")
    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def db(tmp_path):
    """A migrated SQLite database (the tests that need no PostgreSQL variant)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'mail.sqlite'}")
    upgrade(engine)
    yield engine
    engine.dispose()


# ---------------------------------------------------------------------------- data

def add_customer(connection, account: str, name: str, language: str = "fr", recipients=(), others=(),
                 payment_method: str = "transfer") -> int:
    plan = connection.execute(select(s.RatePlan.id).where(s.RatePlan.code == "TEST")).scalar()
    if plan is None:
        plan = connection.execute(insert(s.RatePlan).values(code="TEST", name="Test plan").returning(
            s.RatePlan.id)).scalar_one()
    cid = connection.execute(insert(s.Customer).values(
        account_number=account, name=name, language=language, payment_method=payment_method, rate_plan_id=plan,
    ).returning(s.Customer.id)).scalar_one()
    for address in recipients:
        connection.execute(insert(s.Contact).values(customer_id=cid, name="Accounts", email=address,
                                                    invoice_recipient=True))
    for address in others:
        connection.execute(insert(s.Contact).values(customer_id=cid, name="Other", email=address,
                                                    invoice_recipient=False))
    return cid


def add_invoice(connection, customer_id: int, number: str, *, kind: str = "invoice", status: str = "issued",
                period: str = "2026-10", document: str | None = "default", total: int = 12000,
                net: int | None = None, run_id: int | None = None) -> int:
    if document == "default":
        document = invoice_path(number, ISSUED, kind)
    return connection.execute(insert(s.Invoice).values(
        run_id=run_id, number=number, kind=kind, status=status, customer_id=customer_id, period=period,
        invoice_date=ISSUED, due_date=date(2026, 12, 1), total_excl_cents=total * 5 // 6,
        total_vat_cents=total - total * 5 // 6, total_incl_cents=total, credit_applied_cents=0,
        net_payable_cents=total if net is None else net, document=document,
        issued_at=NOW if status == "issued" else None,
    ).returning(s.Invoice.id)).scalar_one()


def pdf_of(number: str) -> bytes:
    return PDF + number.encode() + b"\n"


class World:
    """Three customers and their October documents, PDFs in a folder storage space:

    * C1 Alpha SARL (fr): two invoice recipients and a contact who is not one; invoice F2026-000001
      and a draft PRE-1-0001;
    * C2 Beta Ltd (en): one recipient; invoice F2026-000002 and credit note A2026-000001;
    * C3 Gamma SAS (fr): no invoice recipient; invoice F2026-000003.
    """

    RECIPIENTS = {("A2026-000001", "accounts@beta.example.co.uk"), ("F2026-000001", "compta@alpha.example.fr"),
                  ("F2026-000001", "dg@alpha.example.fr"), ("F2026-000002", "accounts@beta.example.co.uk")}

    def __init__(self, engine, tmp_path: Path, alpha_name: str = "Alpha SARL"):
        self.engine = engine
        self.storage = Storage(str(tmp_path / "ftp"))
        self.outbox = tmp_path / "outbox"
        with engine.begin() as c:
            alpha = add_customer(c, "C1", alpha_name, "fr", ["compta@alpha.example.fr", "dg@alpha.example.fr"],
                                 ["sales@alpha.example.fr"], payment_method="direct_debit")
            beta = add_customer(c, "C2", "Beta Ltd", "en", ["accounts@beta.example.co.uk"])
            gamma = add_customer(c, "C3", "Gamma SAS", "fr", [], ["boss@gamma.example.fr"])
            run = c.execute(insert(s.BillingRun).values(
                kind="production", period="2026-10", invoice_date=ISSUED, due_date=date(2026, 12, 1), options="{}",
                fingerprint="{}", created_by="test", created_at=NOW).returning(s.BillingRun.id)).scalar_one()
            self.run_id = run
            self.ids = {
                "F2026-000001": add_invoice(c, alpha, "F2026-000001", run_id=run),
                "F2026-000002": add_invoice(c, beta, "F2026-000002", total=4500, run_id=run),
                "F2026-000003": add_invoice(c, gamma, "F2026-000003", run_id=run),
                "PRE-1-0001": add_invoice(c, alpha, "PRE-1-0001", status="draft", document="drafts/run-1/x.pdf"),
                "A2026-000001": add_invoice(c, beta, "A2026-000001", kind="credit_note", total=-4500, net=0),
            }
        for number in self.ids:
            if not number.startswith("PRE"):
                self.storage.put(invoice_path(number, ISSUED, "credit_note" if number[0] == "A" else "invoice"),
                                 pdf_of(number))

    def settings(self, smtp_url: str = "", **other) -> Settings:
        return Settings(database_url="sqlite://", storage_url=str(self.storage.root), outbox_dir=str(self.outbox),
                        smtp_url=smtp_url, mail_from="Facturation Opérateur <facturation@operateur.example>",
                        **other)

    def deliveries(self) -> dict[tuple[str, str], dict]:
        with self.engine.connect() as c:
            rows = c.execute(select(s.Invoice.number, s.Delivery.__table__).join(
                s.Invoice, s.Invoice.id == s.Delivery.invoice_id)).mappings().all()
        return {(r["number"], r["recipient"]): dict(r) for r in rows}


# ---------------------------------------------------------------------------- the SMTP server

class Recorder:
    """An aiosmtpd handler that keeps every accepted message; it refuses the recipients in
    ``refuse`` with a 550 on RCPT, and once ``drop_after`` messages are accepted it drops the
    connection on the next DATA (``drop_on``), once the whole message is received, before replying
    (the message is not kept), or on the next RCPT (``drop_on = "RCPT"``), before the message."""

    def __init__(self):
        self.messages: list[dict] = []
        self.refuse: set[str] = set()
        self.drop_after: int | None = None
        self.drop_on = "DATA"
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.drop_on == "RCPT" and self.drop_after is not None and len(self.messages) >= self.drop_after:
            server.transport.close()
            return "421 4.3.2 Service shutting down"
        if address.lower() in self.refuse:
            return f"550 5.1.1 <{address}>: Recipient address rejected: mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            if self.drop_on == "DATA" and self.drop_after is not None and len(self.messages) >= self.drop_after:
                server.transport.close()  # the server goes away with the message unanswered
                return "421 4.3.2 Service shutting down"
            self.messages.append({"mail_from": envelope.mail_from, "rcpt_tos": list(envelope.rcpt_tos),
                                  "data": envelope.original_content or envelope.content,
                                  "tls": server.transport.get_extra_info("ssl_object") is not None})
        return "250 2.0.0 Ok: queued"

    def parsed(self) -> list[email.message.EmailMessage]:
        return [email.message_from_bytes(m["data"], policy=default_policy) for m in self.messages]

    def received(self) -> Counter:
        """How many messages the server accepted per (invoice number, envelope recipient)."""
        return Counter((msg["X-Workbench-Invoice"], rcpt) for m, msg in zip(self.messages, self.parsed(), strict=True)
                       for rcpt in m["rcpt_tos"])


class SmtpServer:
    def __init__(self, handler: Recorder, **options):
        self.handler, self.port, self.options = handler, free_port(), options
        self.controller: Controller | None = None

    def start(self) -> SmtpServer:
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, ready_timeout=5,
                                     **self.options)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"


@pytest.fixture
def smtp():
    server = SmtpServer(Recorder()).start()
    yield server
    server.stop()


def attachment(message) -> tuple[str, bytes]:
    parts = [p for p in message.iter_attachments()]
    assert len(parts) == 1
    return parts[0].get_filename(), parts[0].get_content()


# ---------------------------------------------------------------------------- planning

def test_plan_one_delivery_per_recipient_idempotent_and_reports_customers_without_recipient(engine, tmp_path):
    world = World(engine, tmp_path)
    report = mail.plan_deliveries(engine, period="2026-10")
    assert report.invoices == 4  # the draft is not an issued document
    assert set(report.planned) == World.RECIPIENTS and report.existing == 0
    assert set(world.deliveries()) == World.RECIPIENTS
    assert all(d["state"] == "pending" and d["attempts"] == 0 for d in world.deliveries().values())
    [anomaly] = report.anomalies
    assert (anomaly.source, anomaly.key, anomaly.code) == ("email", "F2026-000003", "no_recipient")
    assert "account C3" in anomaly.message
    assert "Gamma SAS" in str(anomaly) and "no contact flagged invoice recipient" in str(anomaly)

    # again: nothing added, rows kept as they are (a sent one stays sent)
    with engine.begin() as c:
        c.execute(update(s.Delivery).where(s.Delivery.recipient == "dg@alpha.example.fr").values(
            state="sent", attempts=1, sent_at=NOW, message_id="<x@y>"))
    again = mail.plan_deliveries(engine, "2026-10")
    assert again.planned == [] and again.existing == 4 and len(again.anomalies) == 1
    assert world.deliveries()[("F2026-000001", "dg@alpha.example.fr")]["state"] == "sent"

    # a new recipient (and the same address again in other case, and an invalid one) for Beta
    with engine.begin() as c:
        beta = c.execute(select(s.Customer.id).where(s.Customer.account_number == "C2")).scalar_one()
        for address in ["ap@beta.example.co.uk", "ACCOUNTS@beta.example.co.uk", "not an address\r\nBcc: x@y.z"]:
            c.execute(insert(s.Contact).values(customer_id=beta, name="More", email=address, invoice_recipient=True))
    third = mail.plan_deliveries(engine, run_id=world.run_id)  # the production run: F2026-000001..3
    assert third.planned == [("F2026-000002", "ap@beta.example.co.uk")] and third.existing == 3
    assert any("invalid email address" in str(a) and "C2" in str(a) for a in third.anomalies)
    assert all("\n" not in str(a) and "\r" not in str(a) for a in third.anomalies)

    # by ids: a draft and an unknown id are reported, not planned
    by_ids = mail.plan_deliveries(engine, [world.ids["A2026-000001"], world.ids["PRE-1-0001"], 999_999])
    assert by_ids.planned == [("A2026-000001", "ap@beta.example.co.uk")]
    assert any("not issued" in str(a) and a.key == "PRE-1-0001" for a in by_ids.anomalies)
    assert any("999999" in str(a) for a in by_ids.anomalies)
    assert len(world.deliveries()) == 6
    with pytest.raises(ValueError):
        mail.plan_deliveries(engine)


# ---------------------------------------------------------------------------- sending over SMTP

def test_send_pending_over_smtp_one_message_per_delivery_with_pdf_language_and_stable_message_id(db, tmp_path, smtp):
    world = World(db, tmp_path)
    mail.plan_deliveries(db, period="2026-10")
    settings = world.settings(smtp.url)
    report = mail.send_pending(db, settings, NOW, timeout=5)
    assert report.ok and report.stopped is None and report.failed == [] and report.pending == 0
    assert {(x.invoice_number, x.recipient) for x in report.sent} == World.RECIPIENTS
    assert smtp.handler.received() == Counter(World.RECIPIENTS)
    for raw, message in zip(smtp.handler.messages, smtp.handler.parsed(), strict=True):
        number, recipient = message["X-Workbench-Invoice"], raw["rcpt_tos"][0]
        assert raw["rcpt_tos"] == [recipient] and raw["mail_from"] == "facturation@operateur.example"
        assert message["To"] == recipient and "facturation@operateur.example" in message["From"]
        assert message["Message-ID"] == mail.message_id_for(number, recipient, settings.mail_from)
        assert attachment(message) == (f"{number}.pdf", pdf_of(number))
        body = message.get_body(("plain",)).get_content()
        if number.startswith("F2026-000001"):
            assert message["Content-Language"] == "fr"
            assert message["Subject"] == "Facture F2026-000001 - octobre 2026 - Alpha SARL"
            assert "Veuillez trouver ci-joint la facture F2026-000001" in body and "prélevé" in body
            assert "120,00\u00a0€" in body  # Babel: a no-break space before the sign
        elif number == "F2026-000002":
            assert message["Content-Language"] == "en"
            assert message["Subject"] == "Invoice F2026-000002 - October 2026 - Beta Ltd"
            assert "Please find attached invoice F2026-000002" in body and "€45.00" in body
            assert "bank transfer before 1 December 2026" in body
        else:
            assert message["Subject"] == "Credit note A2026-000001 - Beta Ltd"
            assert "credit note A2026-000001" in body and "€45.00" in body
    rows = world.deliveries()
    assert all(r["state"] == "sent" and r["attempts"] == 1 and r["sent_at"] == NOW and r["last_error"] is None
               for r in rows.values())
    assert len({r["message_id"] for r in rows.values()}) == 4
    assert {r["message_id"] for r in rows.values()} == {m["Message-ID"] for m in smtp.handler.parsed()}

    # nothing twice
    again = mail.send_pending(db, settings, NOW, timeout=5)
    assert again.sent == [] and again.ok and len(smtp.handler.messages) == 4


def test_refused_recipient_fails_with_the_server_message_and_the_others_go_on(db, tmp_path, smtp):
    world = World(db, tmp_path)
    mail.plan_deliveries(db, period="2026-10")
    smtp.handler.refuse = {"dg@alpha.example.fr"}
    settings = world.settings(smtp.url)
    report = mail.send_pending(db, settings, NOW, max_attempts=2, timeout=5)
    assert report.stopped is None and len(report.sent) == 3
    [failure] = report.failed
    assert (failure.invoice_number, failure.recipient, failure.attempts, failure.retryable) == (
        "F2026-000001", "dg@alpha.example.fr", 1, True)
    assert "550" in failure.error and "mailbox unavailable" in failure.error
    assert report.pending == 1 and not report.ok
    row = world.deliveries()[("F2026-000001", "dg@alpha.example.fr")]
    assert row["state"] == "failed" and row["attempts"] == 1 and "550 5.1.1" in row["last_error"]
    assert smtp.handler.received() == Counter(World.RECIPIENTS - {("F2026-000001", "dg@alpha.example.fr")})

    # retried while below the limit, then given up and reported
    second = mail.send_pending(db, settings, NOW, max_attempts=2, timeout=5)
    assert second.sent == [] and [f.retryable for f in second.failed] == [False]
    assert [(f.recipient, f.attempts) for f in second.gave_up] == [("dg@alpha.example.fr", 2)]
    third = mail.send_pending(db, settings, NOW, max_attempts=2, timeout=5)
    assert third.sent == third.failed == [] and third.pending == 0 and len(third.gave_up) == 1
    assert "given up" in third.summary()

    # once the address is fixed on the server side, a reset makes it go
    smtp.handler.refuse = set()
    assert mail.reset_deliveries(db, recipient="DG@alpha.example.fr") == 1
    fourth = mail.send_pending(db, settings, NOW, max_attempts=2, timeout=5)
    assert [(x.invoice_number, x.recipient) for x in fourth.sent] == [("F2026-000001", "dg@alpha.example.fr")]
    assert fourth.ok and smtp.handler.received() == Counter(World.RECIPIENTS)


def test_server_lost_mid_batch_stops_it_and_a_later_run_sends_exactly_the_rest(engine, tmp_path):
    world = World(engine, tmp_path)
    mail.plan_deliveries(engine, period="2026-10")
    recorder = Recorder()
    recorder.drop_after, recorder.drop_on = 2, "RCPT"  # the server goes away before the third message
    server = SmtpServer(recorder).start()
    settings = world.settings(server.url)
    try:
        first = mail.send_pending(engine, settings, NOW, timeout=5)
        assert len(first.sent) == 2 and first.failed == [] and first.pending == 2
        assert first.stopped and "unavailable" in first.stopped and "2 deliveries left to send" in first.stopped
        assert "STOPPED" in first.summary()
        states = Counter(r["state"] for r in world.deliveries().values())
        assert states == {"sent": 2, "pending": 2}

        # the server is down: nothing is attempted, nothing counted
        server.stop()
        before = world.deliveries()
        down = mail.send_pending(engine, settings, NOW, timeout=5)
        assert down.sent == [] and down.failed == [] and down.pending == 2
        assert down.stopped and "cannot connect" in down.stopped
        assert {k: v["attempts"] for k, v in world.deliveries().items()} == {k: v["attempts"]
                                                                             for k, v in before.items()}

        # back up (same address): the rest goes, once
        recorder.drop_after = None
        server.start()
        resumed = mail.send_pending(engine, settings, NOW, timeout=5)
        assert len(resumed.sent) == 2 and resumed.ok
        assert {(x.invoice_number, x.recipient) for x in first.sent + resumed.sent} == World.RECIPIENTS
        assert recorder.received() == Counter(World.RECIPIENTS)  # each (invoice, recipient) exactly once
        assert all(r["state"] == "sent" for r in world.deliveries().values())
        assert mail.send_pending(engine, settings, NOW, timeout=5).sent == []
        assert recorder.received() == Counter(World.RECIPIENTS)
    finally:
        server.stop()


def test_crash_after_the_server_accepted_is_possibly_sent_and_sent_again_only_when_released(db, tmp_path, smtp,
                                                                                           monkeypatch):
    world = World(db, tmp_path)
    mail.plan_deliveries(db, period="2026-10")
    settings = world.settings(smtp.url)
    real = ledger.mark_sent

    def crash(*args, **kwargs):
        monkeypatch.setattr(ledger, "mark_sent", real)
        raise RuntimeError("power cut")

    monkeypatch.setattr(ledger, "mark_sent", crash)
    with pytest.raises(RuntimeError, match="power cut"):
        mail.send_pending(db, settings, NOW, timeout=5)
    [(key, count)] = smtp.handler.received().items()
    row = world.deliveries()[key]
    assert row["state"] == "uncertain" and row["attempts"] == 1 and row["last_error"] is None and row["message_id"]

    # resuming sends the 3 others, not this one: it is reported as possibly sent
    report = mail.send_pending(db, settings, NOW, timeout=5)
    assert len(report.sent) == 3 and not report.ok and report.pending == 0 and report.left == 1
    assert [(f.invoice_number, f.recipient) for f in report.uncertain] == [key]
    assert f"possibly sent: {key[0]} to {key[1]}" in report.summary()
    assert f"`workbench mail --resend {key[0]}`" in report.summary()
    assert smtp.handler.received() == Counter(World.RECIPIENTS)
    assert mail.send_pending(db, settings, NOW, timeout=5).sent == []  # nor on the next run

    # the operator says so: sent again, with the same Message-ID
    assert mail.release(db, uncertain=True) == [(key[0], key[1], "uncertain")]
    again = mail.send_pending(db, settings, NOW, timeout=5)
    assert [(x.invoice_number, x.recipient) for x in again.sent] == [key] and again.ok
    received = smtp.handler.received()
    assert received[key] == 2 and all(n == 1 for k, n in received.items() if k != key)
    ids = [m["Message-ID"] for m in smtp.handler.parsed() if (m["X-Workbench-Invoice"], m["To"]) == key]
    assert ids == [row["message_id"], row["message_id"]]


def test_a_connection_lost_after_the_whole_message_is_possibly_sent_not_resent_on_resume(db, tmp_path, capsys):
    from workbench.cli import main

    world = World(db, tmp_path)
    mail.plan_deliveries(db, period="2026-10")
    recorder = Recorder()
    recorder.drop_after = 2  # the third message is received whole, then the connection drops unanswered
    server = SmtpServer(recorder).start()
    settings = world.settings(server.url)
    try:
        first = mail.send_pending(db, settings, NOW, timeout=5)
        # 4 deliveries in number order: A2026-000001, F2026-000001 x 2, F2026-000002; the third is
        # F2026-000001 to dg@ (compta@ sorts first)
        third = ("F2026-000001", "dg@alpha.example.fr")
        assert len(first.sent) == 2 and first.pending == 1 and first.stopped
        assert [(f.invoice_number, f.recipient) for f in first.uncertain] == [third]
        assert "possibly sent" in first.uncertain[0].error and "before the server's reply" in first.uncertain[0].error
        assert Counter(r["state"] for r in world.deliveries().values()) == {"sent": 2, "pending": 1, "uncertain": 1}

        recorder.drop_after = None
        resumed = mail.send_pending(db, settings, NOW, timeout=5)
        assert [(x.invoice_number, x.recipient) for x in resumed.sent] == [("F2026-000002",
                                                                             "accounts@beta.example.co.uk")]
        assert [(f.invoice_number, f.recipient) for f in resumed.uncertain] == [third] and not resumed.ok
        assert recorder.received() == Counter(World.RECIPIENTS - {third})  # this server did not keep it

        # from the command line: the retry leaves it, says so and exits 3; --resend NUMBER sends it
        url = f"sqlite:///{tmp_path / 'mail.sqlite'}"
        env = {"WORKBENCH_SMTP_URL": server.url, "WORKBENCH_STORAGE_URL": settings.storage_url,
               "WORKBENCH_OUTBOX_DIR": settings.outbox_dir}
        with pytest.MonkeyPatch.context() as mp:
            for name, value in env.items():
                mp.setenv(name, value)
            capsys.readouterr()
            assert main(["--database-url", url, "mail", "--retry"]) == 3
            out = capsys.readouterr()
            assert "1 possibly sent" in out.out and "possibly sent: F2026-000001 to dg@alpha.example.fr" in out.out
            assert "1 email delivery left: 1 possibly sent" in out.err
            assert recorder.received() == Counter(World.RECIPIENTS - {third})
            assert main(["--database-url", url, "mail", "--resend", "F2026-000001"]) == 0
            out = capsys.readouterr()
            assert "F2026-000001 to dg@alpha.example.fr (uncertain)" in out.out
        assert recorder.received() == Counter(World.RECIPIENTS)
        assert all(r["state"] == "sent" for r in world.deliveries().values())
    finally:
        server.stop()


def test_missing_document_fails_that_delivery_with_a_clear_error_and_stays_retryable(db, tmp_path, smtp):
    world = World(db, tmp_path)
    mail.plan_deliveries(db, period="2026-10")
    path = invoice_path("F2026-000002", ISSUED)
    Path(world.storage._full(path)).unlink()
    settings = world.settings(smtp.url)
    report = mail.send_pending(db, settings, NOW, max_attempts=1, timeout=5)
    assert len(report.sent) == 3 and report.stopped is None
    [failure] = report.failed
    assert failure.invoice_number == "F2026-000002" and failure.retryable and failure.attempts == 0
    assert path in failure.error and "cannot be read" in failure.error
    row = world.deliveries()[("F2026-000002", "accounts@beta.example.co.uk")]
    assert row["state"] == "failed" and row["attempts"] == 0 and path in row["last_error"]

    # not counted as an attempt: once the PDF is there, it goes (even with max_attempts=1)
    world.storage.put(path, pdf_of("F2026-000002"))
    second = mail.send_pending(db, settings, NOW, max_attempts=1, timeout=5)
    assert [x.invoice_number for x in second.sent] == ["F2026-000002"] and second.ok
    assert attachment(smtp.handler.parsed()[-1])[1] == pdf_of("F2026-000002")

    # no document recorded at all
    with db.begin() as c:
        c.execute(update(s.Invoice).where(s.Invoice.number == "F2026-000003").values(document=None))
        c.execute(insert(s.Contact).values(customer_id=select(s.Customer.id).where(
            s.Customer.account_number == "C3").scalar_subquery(), name="Boss", email="boss@gamma.example.fr",
            invoice_recipient=True))
    mail.plan_deliveries(db, period="2026-10")
    third = mail.send_pending(db, settings, NOW, timeout=5)
    assert [f.error for f in third.failed] == [
        "invoice F2026-000003 has no stored document (its PDF was not generated): not sent"]


# ---------------------------------------------------------------------------- the outbox

def test_outbox_default_writes_eml_files_that_parse_back_with_the_pdf_and_the_language(db, tmp_path):
    world = World(db, tmp_path)
    mail.plan_deliveries(db, period="2026-10")
    settings = world.settings("")  # the embedded default
    first = mail.send_pending(db, settings, NOW, limit=1)
    assert len(first.sent) == 1 and first.pending == 3 and not first.ok
    report = mail.send_pending(db, settings, NOW)
    assert report.ok and len(report.sent) == 3
    report.sent += first.sent
    files = sorted(p.name for p in world.outbox.iterdir())
    assert files == sorted(f"{n}-{r}.eml" for n, r in World.RECIPIENTS)  # no temporary file left
    assert {x.location for x in report.sent} == {str(world.outbox / f) for f in files}
    for number, recipient in World.RECIPIENTS:
        message = email.message_from_bytes((world.outbox / f"{number}-{recipient}.eml").read_bytes(),
                                           policy=default_policy)
        assert message["To"] == recipient and message["From"].addresses[0].addr_spec == "facturation@operateur.example"
        assert message["Message-ID"] == mail.message_id_for(number, recipient, settings.mail_from)
        assert attachment(message) == (f"{number}.pdf", pdf_of(number))
        language = "fr" if number == "F2026-000001" else "en"
        assert message["Content-Language"] == language
        body = message.get_body(("plain",)).get_content()
        assert ("Cordialement" in body) == (language == "fr") and ("Kind regards" in body) == (language == "en")
        assert message["Subject"].startswith({"F2026-000001": "Facture", "F2026-000002": "Invoice",
                                              "A2026-000001": "Credit note"}[number])
    assert all(r["state"] == "sent" for r in world.deliveries().values())
    assert mail.send_pending(db, settings, NOW).sent == []


def test_outbox_recognises_a_message_written_before_a_crash_and_does_not_write_it_again(db, tmp_path, monkeypatch):
    world = World(db, tmp_path)
    mail.plan_deliveries(db, period="2026-10")
    settings = world.settings("")
    real = ledger.mark_sent

    def crash(*args, **kwargs):
        monkeypatch.setattr(ledger, "mark_sent", real)
        raise RuntimeError("power cut")

    monkeypatch.setattr(ledger, "mark_sent", crash)
    with pytest.raises(RuntimeError):
        mail.send_pending(db, settings, NOW)
    [written] = list(world.outbox.iterdir())
    stat, content = written.stat(), written.read_bytes()

    report = mail.send_pending(db, settings, NOW)
    assert report.ok and len(report.sent) == 4
    [anomaly] = report.anomalies
    assert "already written" in anomaly.message and written.name.startswith(anomaly.key)
    assert written.stat().st_mtime_ns == stat.st_mtime_ns and written.read_bytes() == content
    assert len(list(world.outbox.iterdir())) == 4
    assert all(r["state"] == "sent" and r["attempts"] == 1 for r in world.deliveries().values())


# ---------------------------------------------------------------------------- safety

def test_customer_name_cannot_inject_headers_recipients_or_template_code(db, tmp_path, smtp):
    name = "Evil Corp\r\nBcc: evil@example.com\r\n\r\n{{ 7*7 }}{% if true %}x{% endif %}"
    world = World(db, tmp_path, alpha_name=name)
    mail.plan_deliveries(db, [world.ids["F2026-000001"]])
    report = mail.send_pending(db, world.settings(smtp.url), NOW, timeout=5)
    assert len(report.sent) == 2
    flat = "Evil Corp Bcc: evil@example.com {{ 7*7 }}{% if true %}x{% endif %}"
    for raw, message in zip(smtp.handler.messages, smtp.handler.parsed(), strict=True):
        assert raw["rcpt_tos"] in (["compta@alpha.example.fr"], ["dg@alpha.example.fr"])
        assert "Bcc" not in message and message.get_all("Subject") == [message["Subject"]]
        assert message["Subject"] == f"Facture F2026-000001 - octobre 2026 - {flat}"
        assert not any(line.lower().startswith(b"bcc:") for line in raw["data"].splitlines())
        assert b"evil@example.com" not in b"".join(m["rcpt_tos"][0].encode() for m in smtp.handler.messages)
        assert f"({flat})" in message.get_body(("plain",)).get_content()


def test_a_delivery_row_with_an_unusable_address_is_never_sent(db, tmp_path, smtp):
    world = World(db, tmp_path)
    with db.begin() as c:  # not made by plan_deliveries, which checks the addresses
        c.execute(insert(s.Delivery).values(invoice_id=world.ids["F2026-000002"], state="pending", attempts=0,
                                            recipient="ap@beta.example.co.uk\r\nBcc: evil@example.com"))
    report = mail.send_pending(db, world.settings(smtp.url), NOW, timeout=5)
    [failure] = report.failed
    assert not failure.retryable and "invalid recipient address" in failure.error and "\n" not in failure.error
    assert smtp.handler.messages == [] and len(report.gave_up) == 1 and report.pending == 0
    assert mail.send_pending(db, world.settings(smtp.url), NOW, timeout=5).failed == []


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_smtp_password_comes_from_the_environment_only(db, tmp_path, monkeypatch):
    logins = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        assert isinstance(auth_data, LoginPassword)
        logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=(auth_data.login, auth_data.password) == (b"billing", b"s3cret"), handled=False)

    recorder = Recorder()
    server = SmtpServer(recorder, authenticator=authenticator, auth_required=True,
                        auth_require_tls=False).start()  # plain text on the loopback only
    world = World(db, tmp_path)
    mail.plan_deliveries(db, period="2026-10")
    url = f"smtp://billing@127.0.0.1:{server.port}"
    try:
        # never in the URL, never in the settings file
        with pytest.raises(ConfigError, match="WORKBENCH_SMTP_PASSWORD") as caught:
            mail.send_pending(db, world.settings(f"smtp://billing:s3cret@127.0.0.1:{server.port}"), NOW, timeout=5)
        assert "s3cret" not in str(caught.value)
        with pytest.raises(ConfigError, match="WORKBENCH_SMTP_PASSWORD") as caught:  # whatever else is wrong
            mail.send_pending(db, world.settings("ftp://billing:s3cret@127.0.0.1"), NOW, timeout=5)
        assert "s3cret" not in str(caught.value)
        toml = tmp_path / "workbench.toml"
        toml.write_text('smtp_password = "s3cret"\n', encoding="utf-8")
        with pytest.raises(ConfigError, match="unknown settings"):
            load_settings(toml)

        monkeypatch.delenv("WORKBENCH_SMTP_PASSWORD", raising=False)
        with pytest.raises(ConfigError, match="WORKBENCH_SMTP_PASSWORD"):
            mail.send_pending(db, world.settings(url), NOW, timeout=5)
        assert recorder.messages == [] and logins == []

        monkeypatch.setenv("WORKBENCH_SMTP_PASSWORD", "wrong")
        refused = mail.send_pending(db, world.settings(url), NOW, timeout=5)
        assert refused.sent == [] and refused.pending == 4 and "login as 'billing' refused" in refused.stopped
        assert all(r["attempts"] == 0 for r in world.deliveries().values())

        monkeypatch.setenv("WORKBENCH_SMTP_PASSWORD", "s3cret")
        report = mail.send_pending(db, world.settings(url), NOW, timeout=5)
        assert report.ok and len(report.sent) == 4 and logins[-1] == (b"billing", b"s3cret")
        assert recorder.received() == Counter(World.RECIPIENTS)
        assert "s3cret" not in repr(world.settings(url))
    finally:
        server.stop()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (made with the openssl command)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is missing")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=30)
    return cert, key


@pytest.mark.parametrize("scheme", ["smtps", "starttls"])
def test_tls_smtps_and_starttls_verify_the_server(db, tmp_path, certificate, scheme):
    cert, key = certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    options = ({"ssl_context": server_context} if scheme == "smtps"
               else {"tls_context": server_context, "require_starttls": True})
    recorder = Recorder()
    server = SmtpServer(recorder, **options).start()
    world = World(db, tmp_path)
    mail.plan_deliveries(db, period="2026-10")
    url = f"{'smtps' if scheme == 'smtps' else 'smtp'}://127.0.0.1:{server.port}"
    try:
        untrusted = mail.send_pending(db, world.settings(url), NOW, timeout=5)  # the system's CAs
        assert untrusted.sent == [] and "CERTIFICATE_VERIFY_FAILED" in untrusted.stopped
        trusted = ssl.create_default_context(cafile=str(cert))
        report = mail.send_pending(db, world.settings(url), NOW, timeout=5, ssl_context=trusted)
        assert report.ok and len(report.sent) == 4 and all(m["tls"] for m in recorder.messages)
    finally:
        server.stop()


def test_message_id_is_stable_per_invoice_and_recipient():
    one = mail.message_id_for("F2026-000001", "a@b.fr", "Facturation <facturation@operateur.example>")
    assert one == mail.message_id_for("F2026-000001", " A@B.fr", "facturation@operateur.example")
    assert one.startswith("<F2026-000001.") and one.endswith("@operateur.example>")
    assert one != mail.message_id_for("F2026-000001", "c@b.fr", "facturation@operateur.example")
    assert one != mail.message_id_for("F2026-000002", "a@b.fr", "facturation@operateur.example")
    assert mail.outbox_name("F2026-000001", "a/../b@c.fr") == "F2026-000001-a_.._b@c.fr.eml"



# ---------------------------------------------------------------------------- one run at a time

class HeldRecorder(Recorder):
    """Holds the messages until ``release`` is set (at most 20 s in all), so that a run is still
    sending whatever the moment the other run starts."""

    def __init__(self):
        super().__init__()
        self.release = threading.Event()

    async def handle_DATA(self, server, session, envelope):
        for _ in range(2000):
            if self.release.is_set():
                break
            await asyncio.sleep(0.01)
        self.release.set()
        return await super().handle_DATA(server, session, envelope)


def test_two_mail_runs_at_once_send_each_delivery_once(engine, tmp_path):
    world = World(engine, tmp_path)
    mail.plan_deliveries(engine, period="2026-10")
    server = SmtpServer(HeldRecorder()).start()
    try:
        settings = world.settings(server.url)
        outcomes: list = []
        start = threading.Barrier(2)

        def run():
            start.wait()
            try:
                outcomes.append(mail.send_pending(engine, settings, NOW, timeout=60))
            except UnavailableError as exc:
                outcomes.append(exc)
            finally:  # a run is over: the other one, if it is sending, may go on
                server.handler.release.set()

        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(90)
        refused = [o for o in outcomes if isinstance(o, UnavailableError)]
        done = [o for o in outcomes if isinstance(o, mail.DeliveryReport)]
        assert len(refused) == 1 and len(done) == 1
        assert "another mail run is in progress" in str(refused[0])
        assert len(done[0].sent) == 4 and done[0].ok
        assert server.handler.received() == Counter(World.RECIPIENTS)  # each exactly once
    finally:
        server.stop()
    with engine.connect() as c:
        assert c.execute(select(s.JobLock)).all() == []  # released


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def test_a_live_run_elsewhere_is_respected_and_a_dead_one_taken_over(db, tmp_path):
    world = World(db, tmp_path)
    mail.plan_deliveries(db, period="2026-10")
    settings = world.settings()
    with db.begin() as c:
        c.execute(insert(s.JobLock).values(name="mail", holder="batch-2:4242:1a2b", acquired_at=_utcnow(),
                                           heartbeat_at=_utcnow() - timedelta(minutes=1)))
    with pytest.raises(UnavailableError, match="another mail run is in progress: batch-2:4242:1a2b"):
        mail.send_pending(db, settings, NOW)
    assert {r["state"] for r in world.deliveries().values()} == {"pending"} and not world.outbox.exists()

    # silent for 11 minutes: taken for dead
    with db.begin() as c:
        c.execute(update(s.JobLock).values(heartbeat_at=_utcnow() - timedelta(minutes=11)))
    report = mail.send_pending(db, settings, NOW)
    assert len(report.sent) == 4 and report.ok
    assert any("took over the mail lock of batch-2:4242:1a2b" in a.message for a in report.anomalies)

    # a process that no longer exists: on this machine, taken over at once; on another one (a
    # container with the same host name, another boot), respected until it is silent too long
    finished = subprocess.Popen(["true"])
    finished.wait()
    gone = f"{socket.gethostname()}:{finished.pid}:9f9f"
    with db.begin() as c:
        c.execute(insert(s.JobLock).values(name="mail", holder=f"{gone}@0badb00t.4026531836",
                                           acquired_at=_utcnow(), heartbeat_at=_utcnow()))
    with pytest.raises(UnavailableError, match="another mail run is in progress"):
        mail.send_pending(db, settings, NOW)
    with db.begin() as c:
        c.execute(update(s.JobLock).values(holder=f"{gone}@{this_machine()}"))
    report = mail.send_pending(db, settings, NOW)
    assert report.sent == [] and any(f":{finished.pid}:9f9f" in a.message for a in report.anomalies)
    with db.connect() as c:
        assert c.execute(select(s.JobLock)).all() == []


def test_the_templates_dir_setting_gives_the_operators_own_email_wording(db, tmp_path):
    from workbench.documents import TEMPLATES

    own = tmp_path / "branding"
    shutil.copytree(TEMPLATES, own)
    subjects = (own / "email" / "subjects.toml").read_text()
    (own / "email" / "subjects.toml").write_text(subjects.replace('invoice = "Facture {{ number }}',
                                                                  'invoice = "Votre facture Exemple {{ number }}'))
    world = World(db, tmp_path)
    mail.plan_deliveries(db, period="2026-10")
    report = mail.send_pending(db, world.settings("", templates_dir=str(own)), NOW)
    assert report.ok and len(report.sent) == 4
    message = email.message_from_bytes((world.outbox / "F2026-000001-dg@alpha.example.fr.eml").read_bytes(),
                                       policy=default_policy)
    assert message["Subject"] == "Votre facture Exemple F2026-000001 - octobre 2026 - Alpha SARL"


def test_customer_text_in_an_email_has_no_bidirectional_controls():
    from workbench.mail.message import one_line

    # a right-to-left override in a name shown in the subject or body would reverse what follows it
    assert one_line("Acme \u202eLtd\u202c\r\nParis \u2067X\u2069") == "Acme Ltd Paris X"


# ---------------------------------------------------------------------------- the command line

def _cli_env(monkeypatch, world: World, smtp_url: str) -> None:
    settings = world.settings(smtp_url)
    monkeypatch.setenv("WORKBENCH_SMTP_URL", smtp_url)
    monkeypatch.setenv("WORKBENCH_STORAGE_URL", settings.storage_url)
    monkeypatch.setenv("WORKBENCH_OUTBOX_DIR", settings.outbox_dir)
    monkeypatch.setenv("WORKBENCH_MAIL_FROM", settings.mail_from)


def test_mail_with_the_server_down_exits_3_with_the_count_left(db, tmp_path, monkeypatch, capsys):
    from workbench.cli import main

    world = World(db, tmp_path)
    _cli_env(monkeypatch, world, f"smtp://127.0.0.1:{free_port()}")  # nothing listens
    url = f"sqlite:///{tmp_path / 'mail.sqlite'}"
    assert main(["--database-url", url, "mail", "--period", "2026-10"]) == 3
    err = capsys.readouterr().err
    # 4 deliveries planned (World.RECIPIENTS), none sent
    assert "incomplete: 4 email deliveries left: 4 to send; the batch stopped before the end" in err
    assert main(["--database-url", url, "mail", "--retry"]) == 3


def test_a_delivery_given_up_is_sent_again_from_the_command_line_once_the_server_accepts(db, tmp_path, smtp,
                                                                                          monkeypatch, capsys):
    from workbench.cli import main

    world = World(db, tmp_path)
    _cli_env(monkeypatch, world, smtp.url)
    url = f"sqlite:///{tmp_path / 'mail.sqlite'}"
    smtp.handler.refuse = {"dg@alpha.example.fr"}
    assert main(["--database-url", url, "mail", "--period", "2026-10"]) == 3  # refused once: 1 left to send
    assert "1 email delivery left: 1 to send" in capsys.readouterr().err
    for _ in range(3):
        assert main(["--database-url", url, "mail", "--retry"]) == 3
    capsys.readouterr()
    assert main(["--database-url", url, "mail", "--retry"]) == 3  # the 5th refusal: given up
    out = capsys.readouterr()
    assert "given up after 5 attempts" in out.out
    assert "`workbench mail --resend F2026-000001`" in out.out and "`workbench mail --given-up`" in out.out
    assert "1 email delivery left: 1 given up" in out.err
    assert world.deliveries()[("F2026-000001", "dg@alpha.example.fr")]["attempts"] == 5

    smtp.handler.refuse = set()  # fixed on the server's side
    assert main(["--database-url", url, "mail", "--retry"]) == 3  # --retry leaves it given up
    assert smtp.handler.received()[("F2026-000001", "dg@alpha.example.fr")] == 0
    capsys.readouterr()
    assert main(["--database-url", url, "mail", "--given-up"]) == 0
    assert "F2026-000001 to dg@alpha.example.fr (given up)" in capsys.readouterr().out
    assert smtp.handler.received() == Counter(World.RECIPIENTS)
    assert main(["--database-url", url, "mail", "--resend", "F2026-000099"]) == 2  # not an issued document
