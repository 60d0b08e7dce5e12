"""The delivery ledger: one ``deliveries`` row per (issued invoice, recipient), sent at most once.

**Planning** (:func:`plan_deliveries`) adds a ``deliveries`` row, state ``pending``, for each
issued invoice or credit note (chosen by id, period or production run) and each contact of its
customer flagged ``invoice_recipient``. Rows already there are kept as they are, so planning
again adds only what is missing. A customer without a usable recipient is reported as a
problem, never skipped silently.

**Sending** (:func:`send_pending`) takes every ``pending`` or ``failed`` delivery whose
``attempts`` are below a limit and, for each one in turn:

1. reads the PDF of the invoice from the storage space (``invoices.document``); if it cannot be
   read, the delivery is marked ``failed`` with the reason, without counting an attempt, and
   is tried again by the next run;
2. builds the message (:mod:`workbench.mail.message`);
3. commits ``attempts + 1`` and the Message-ID (the *claim*), hands the message over
   (:mod:`workbench.mail.transports`) and commits the outcome at once: ``sent`` with
   ``sent_at``; ``failed`` with the server's reply when the server refuses the recipient or the
   message (the others go on); ``pending`` with the error when the server is unavailable
   (refused connection, dropped connection, 421), which **stops the batch**: the rest stays
   pending and the report says so.

Calling :func:`send_pending` again after a crash or an outage therefore sends exactly what is
missing. The one window no protocol can close is a crash after the server accepted a message
and before its ``sent`` state was committed (or a connection lost between the message's last
byte and the server's reply): such a delivery is left ``pending`` with an attempt counted (and,
after a crash, no error), which the next run recognises. With the outbox it finds the file already
written and only records it as sent; over SMTP it sends the message again with the *same*
Message-ID, the one recorded at its claim (receiving systems and the relay's logs can recognise
the duplicate), and reports it.

Only one ``send_pending`` runs at a time, wherever it runs from (a scheduled production job, an
analyst's command): it holds the ``mail`` job lock (:mod:`workbench.db.locks`) while it sends,
and a second one stops at once with an :class:`~workbench.errors.UnavailableError` naming the run
in progress, before sending anything. The lock of a run that died is taken over (a dead process
of this machine at once, a run silent for 10 minutes otherwise) and the report says so.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parseaddr
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from workbench.config import Settings
from workbench.db import schema as s
from workbench.db.locks import acquire
from workbench.documents import templates_folder
from workbench.errors import ConfigError, InputError, Problem, RefusedError, UnavailableError
from workbench.mail.message import Templates, _naive_utc, build_message, one_line, valid_address
from workbench.mail.transports import SMTP_TIMEOUT, _describe, open_transport
from workbench.period import Period
from workbench.storage import Storage

#: attempts after which a delivery is no longer tried (see :func:`reset_deliveries`)
MAX_ATTEMPTS = 5


_CHUNK = 500


def _problem(code: str, message: str, invoice_number: str | None = None, account_number: str | None = None,
             recipient: str | None = None) -> Problem:
    """A delivery problem: ``key`` is the invoice (else the account); the account and the
    recipient open the message."""
    context = ", ".join(x for x in (f"account {account_number}" if account_number and invoice_number else None,
                                    f"to {recipient}" if recipient else None) if x)
    return Problem("email", invoice_number or account_number, code, f"{context}: {message}" if context else message)


@dataclass
class PlanReport:
    """What :func:`plan_deliveries` did: ``planned`` (invoice number, recipient) rows added,
    ``existing`` rows kept, ``invoices`` issued documents considered, ``anomalies``."""

    invoices: int = 0
    planned: list[tuple[str, str]] = field(default_factory=list)
    existing: int = 0
    anomalies: list[Problem] = field(default_factory=list)

    def summary(self) -> str:
        text = f"{self.invoices} issued documents: {len(self.planned)} deliveries planned, {self.existing} kept"
        if self.anomalies:
            text += f"; {len(self.anomalies)} anomalies:\n" + "\n".join(f"  - {a}" for a in self.anomalies)
        return text


@dataclass(frozen=True)
class Sent:
    invoice_number: str
    recipient: str
    message_id: str
    location: str  # "smtp://host:port" or the .eml file written


@dataclass(frozen=True)
class Failure:
    invoice_number: str
    recipient: str
    error: str
    attempts: int
    retryable: bool  # tried again by the next send_pending


@dataclass
class DeliveryReport:
    """What :func:`send_pending` did.

    ``sent`` and ``failed`` are this run's outcomes; ``pending`` is how many deliveries the next
    run would try (pending, or failed with attempts below the limit); ``gave_up`` lists the
    deliveries no longer tried (attempts at the limit); ``stopped`` says why the batch stopped
    early (server unavailable), else ``None``."""

    sent: list[Sent] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    pending: int = 0
    gave_up: list[Failure] = field(default_factory=list)
    anomalies: list[Problem] = field(default_factory=list)
    stopped: str | None = None

    @property
    def ok(self) -> bool:
        """Everything in scope is sent."""
        return not (self.failed or self.gave_up or self.pending or self.stopped)

    def summary(self) -> str:
        lines = [f"{len(self.sent)} sent, {len(self.failed)} failed, {self.pending} left to send, "
                 f"{len(self.gave_up)} given up"]
        if self.stopped:
            lines.append(f"STOPPED: {self.stopped}")
        lines += [f"  failed: {f.invoice_number} to {f.recipient}: {f.error}" for f in self.failed]
        lines += [f"  given up after {f.attempts} attempts: {f.invoice_number} to {f.recipient}: {f.error}"
                  for f in self.gave_up]
        lines += [f"  anomaly: {a}" for a in self.anomalies]
        return "\n".join(lines)


def _chunks(values: list, size: int = _CHUNK) -> Iterator[list]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def plan_deliveries(engine: Engine, invoice_ids: Iterable[int] | str | Period | None = None, *,
                    period: str | Period | None = None, run_id: int | None = None) -> PlanReport:
    """Add the missing ``deliveries`` rows of issued invoices and credit notes.

    The documents are chosen by ``invoice_ids`` (a period text such as ``"2026-10"`` is accepted
    there too), ``period`` and/or ``run_id`` (a production run); at least one is required, and
    they combine. One row per (document, contact of its customer flagged invoice recipient),
    state ``pending``; existing rows, whatever their state, are kept. Anomalies: a customer with
    no valid recipient, a recipient with an invalid address, an id that is not an issued
    document.
    """
    if isinstance(invoice_ids, str | Period):
        period, invoice_ids = invoice_ids, None
    if invoice_ids is None and period is None and run_id is None:
        raise ValueError("plan_deliveries: name the invoices (ids), a period or a production run")
    ids = None if invoice_ids is None else sorted({int(x) for x in invoice_ids})
    report = PlanReport()
    i, c = s.Invoice, s.Customer
    query = select(i.id, i.number, i.status, i.customer_id, c.account_number, c.name).join(c, c.id == i.customer_id)
    if period is not None:
        query = query.where(i.period == str(Period.parse(period)))
    if run_id is not None:
        query = query.where(i.run_id == int(run_id))
    with engine.begin() as connection:
        if ids is None:
            invoices = connection.execute(query.where(i.status == "issued").order_by(i.number)).all()
        else:
            found = [row for chunk in _chunks(ids) for row in connection.execute(query.where(i.id.in_(chunk)))]
            for missing in sorted(set(ids) - {row.id for row in found}):
                report.anomalies.append(_problem(
                    "unknown_invoice", f"invoice id {missing} does not exist (or is not in the selection)"))
            for row in found:
                if row.status != "issued":
                    report.anomalies.append(_problem("not_issued", f"not issued (status {row.status}): not emailed",
                                                      row.number, row.account_number))
            invoices = sorted((row for row in found if row.status == "issued"), key=lambda row: row.number)
        report.invoices = len(invoices)
        customer_ids = sorted({row.customer_id for row in invoices})
        recipients: dict[int, list[str]] = {cid: [] for cid in customer_ids}
        for chunk in _chunks(customer_ids):
            contacts = connection.execute(
                select(s.Contact.customer_id, s.Contact.name, s.Contact.email, c.account_number)
                .join(c, c.id == s.Contact.customer_id)
                .where(s.Contact.customer_id.in_(chunk), s.Contact.invoice_recipient.is_(True))
                .order_by(s.Contact.customer_id, s.Contact.id))
            for contact in contacts:
                address = (contact.email or "").strip()
                if not valid_address(address):
                    report.anomalies.append(_problem(
                        "invalid_recipient",
                        f"invoice recipient contact {one_line(contact.name)!r} has an invalid email address "
                        f"{one_line(contact.email)!r}: not used", None, contact.account_number))
                elif address.lower() not in {r.lower() for r in recipients[contact.customer_id]}:
                    recipients[contact.customer_id].append(address)
        existing: set[tuple[int, str]] = set()
        for chunk in _chunks([row.id for row in invoices]):
            existing.update((row.invoice_id, row.recipient.strip().lower()) for row in connection.execute(
                select(s.Delivery.invoice_id, s.Delivery.recipient).where(s.Delivery.invoice_id.in_(chunk))))
        new_rows = []
        for invoice in invoices:
            if not recipients[invoice.customer_id]:
                report.anomalies.append(_problem(
                    "no_recipient",
                    f"customer {one_line(invoice.name)!r} has no contact flagged invoice recipient (with a valid "
                    "email address): this document cannot be emailed", invoice.number, invoice.account_number))
            for address in recipients[invoice.customer_id]:
                if (invoice.id, address.lower()) in existing:
                    report.existing += 1
                    continue
                new_rows.append({"invoice_id": invoice.id, "recipient": address, "state": "pending", "attempts": 0})
                report.planned.append((invoice.number, address))
        if new_rows:
            dialect = connection.dialect.name
            if dialect in ("postgresql", "sqlite"):
                maker = pg_insert if dialect == "postgresql" else sqlite_insert
                statement = maker(s.Delivery).on_conflict_do_nothing(index_elements=["invoice_id", "recipient"])
            else:  # pragma: no cover - other back-ends
                statement = insert(s.Delivery)
            for chunk in _chunks(new_rows):
                connection.execute(statement, chunk)
    return report


def reset_deliveries(engine: Engine, invoice_ids: Iterable[int] | None = None, recipient: str | None = None) -> int:
    """Make unsent deliveries (of ``invoice_ids``, to ``recipient``) pending again with no
    attempts, e.g. after fixing an address or a document; returns how many were reset."""
    where = [s.Delivery.state != "sent"]
    if recipient is not None:
        where.append(func.lower(s.Delivery.recipient) == recipient.strip().lower())
    total = 0
    with engine.begin() as connection:
        for chunk in ([None] if invoice_ids is None else _chunks(sorted({int(x) for x in invoice_ids}))):
            scope = where if chunk is None else [*where, s.Delivery.invoice_id.in_(chunk)]
            total += connection.execute(update(s.Delivery).where(*scope).values(
                state="pending", attempts=0, last_error=None)).rowcount
    return total


def _scope(invoice_ids: list[int] | None):
    d, i = s.Delivery, s.Invoice
    where = [i.status == "issued"]
    if invoice_ids is not None:
        where.append(d.invoice_id.in_(invoice_ids))
    return where


def _due(engine: Engine, max_attempts: int, invoice_ids: list[int] | None) -> list:
    d, i, c = s.Delivery, s.Invoice, s.Customer
    query = (
        select(d.id, d.invoice_id, d.recipient, d.state, d.attempts, d.last_error, d.message_id,
               i.number, i.kind, i.period, i.invoice_date, i.due_date, i.currency, i.total_incl_cents,
               i.credit_applied_cents, i.net_payable_cents, i.document, c.account_number,
               c.name.label("customer_name"), c.language, c.payment_method)
        .join(i, i.id == d.invoice_id).join(c, c.id == i.customer_id)
        .where(d.state.in_(("pending", "failed")), d.attempts < max_attempts, *_scope(invoice_ids))
        .order_by(i.number, d.recipient))
    with engine.connect() as connection:
        return connection.execute(query).all()


def _left(engine: Engine, max_attempts: int, invoice_ids: list[int] | None) -> tuple[int, list[Failure]]:
    d, i = s.Delivery, s.Invoice
    with engine.connect() as connection:
        pending = connection.execute(
            select(func.count()).select_from(d).join(i, i.id == d.invoice_id)
            .where(d.state.in_(("pending", "failed")), d.attempts < max_attempts, *_scope(invoice_ids))).scalar_one()
        exhausted = connection.execute(
            select(i.number, d.recipient, d.last_error, d.attempts).join(i, i.id == d.invoice_id)
            .where(d.state != "sent", d.attempts >= max_attempts, *_scope(invoice_ids))
            .order_by(i.number, d.recipient)).all()
    return pending, [Failure(r.number, r.recipient, r.last_error or "", r.attempts, False) for r in exhausted]


def _claim(engine: Engine, row, message_id: str) -> bool:
    """Count the attempt and record the Message-ID before handing the message over; ``False`` if
    another run changed the delivery since it was read."""
    d = s.Delivery
    with engine.begin() as connection:
        return connection.execute(update(d).where(d.id == row.id, d.state == row.state, d.attempts == row.attempts)
                                  .values(state="pending", attempts=row.attempts + 1, last_error=None,
                                          message_id=message_id)).rowcount == 1


def _mark_sent(engine: Engine, delivery_id: int, message_id: str, now: datetime) -> None:
    with engine.begin() as connection:
        connection.execute(update(s.Delivery).where(s.Delivery.id == delivery_id).values(
            state="sent", sent_at=now, last_error=None, message_id=message_id))


def _mark(engine: Engine, delivery_id: int, state: str, error: str, **values: Any) -> None:
    with engine.begin() as connection:
        connection.execute(update(s.Delivery).where(s.Delivery.id == delivery_id).values(
            state=state, last_error=error, **values))


class _Documents:
    """The PDFs of the invoices, read from the storage space (the last one kept for its other
    recipients)."""

    def __init__(self, storage_url: str):
        self.url = storage_url
        self.storage: Storage | None = None
        self.last: tuple[int, bytes | None, str | None] | None = None

    def get(self, row) -> tuple[bytes | None, str | None]:
        if self.last is not None and self.last[0] == row.invoice_id:
            return self.last[1], self.last[2]
        data, error = self._read(row)
        self.last = (row.invoice_id, data, error)
        return data, error

    def _read(self, row) -> tuple[bytes | None, str | None]:
        if not row.document:
            return None, f"invoice {row.number} has no stored document (its PDF was not generated): not sent"
        try:
            if self.storage is None:
                self.storage = Storage(self.url)
            data = self.storage.get(row.document)
        except (UnavailableError, InputError, OSError) as exc:
            return None, f"the PDF of invoice {row.number} ({row.document}) cannot be read: {_describe(exc)}"
        if not data.startswith(b"%PDF-"):
            return None, f"the document of invoice {row.number} ({row.document}) is not a PDF"
        return data, None


def send_pending(engine: Engine, settings: Settings, now: datetime, *, max_attempts: int = MAX_ATTEMPTS,
                 invoice_ids: Iterable[int] | None = None, limit: int | None = None, timeout: float = SMTP_TIMEOUT,
                 ssl_context: ssl.SSLContext | None = None, templates_dir: str | Path | None = None) -> DeliveryReport:
    """Send the pending and failed deliveries (attempts below ``max_attempts``), each committed
    as soon as it is sent (see the module docstring); returns a :class:`DeliveryReport`.

    ``now`` (UTC; naive is taken as UTC) dates the messages and ``sent_at``; ``invoice_ids``
    restricts the run to these documents; ``limit`` sends at most that many messages;
    ``timeout`` bounds each network wait; ``ssl_context`` verifies the server (default: the
    system's CAs). Raises :class:`~workbench.errors.ConfigError` for an unusable set-up and
    :class:`~workbench.errors.UnavailableError` when another mail run holds the lock, before sending anything.
    """
    now = _naive_utc(now)
    scope = None if invoice_ids is None else sorted({int(x) for x in invoice_ids})
    transport = open_transport(settings, timeout, ssl_context)
    templates = Templates(templates_dir if templates_dir is not None
                           else templates_folder(settings.templates_dir) / "email")
    sender = parseaddr(one_line(settings.mail_from))[1]
    if not valid_address(sender):
        raise ConfigError(f"{settings.mail_from!r} has no valid email address", source="setting mail_from")
    report = DeliveryReport()
    documents = _Documents(settings.storage_url)
    opened, handed = False, 0
    try:
        lock = acquire(engine, "mail")
    except UnavailableError as exc:
        raise UnavailableError(f"not sending: {exc}", code=exc.code) from exc
    if lock.taken_over:
        report.anomalies.append(_problem("lock_taken_over",
                                         lock.taken_over + ": its unrecorded deliveries are resumed"))
    try:
        for row in _due(engine, max_attempts, scope):
            if limit is not None and handed >= limit:
                break
            lock.beat()  # still ours: else another run has taken over, and this one stops
            recipient = row.recipient.strip()
            if not valid_address(recipient):  # not from plan_deliveries, which checks them: never tried
                error = f"invalid recipient address {one_line(row.recipient)!r}: not sent (fix the contact and plan)"
                _mark(engine, row.id, "failed", error, attempts=max_attempts)
                report.failed.append(Failure(row.number, row.recipient, error, max_attempts, False))
                continue
            pdf, error = documents.get(row)
            if error:
                _mark(engine, row.id, "failed", error)
                report.failed.append(Failure(row.number, recipient, error, row.attempts, True))
                continue
            # a message handed over before keeps its Message-ID, even if mail_from changed since
            message = build_message(row, recipient, pdf, settings, now, templates, row.message_id)
            message_id = str(message["Message-ID"])
            if not opened:
                transport.open()
                opened = True
            written = transport.delivered(row.number, recipient, message_id)
            if written:
                _mark_sent(engine, row.id, message_id, now)
                report.sent.append(Sent(row.number, recipient, message_id, written))
                report.anomalies.append(_problem(
                    "already_written",
                    "already written by an interrupted run (not recorded then): recorded as sent, not written again",
                    row.number, row.account_number, recipient))
                continue
            if row.state == "pending" and row.attempts > 0 and row.last_error is None and not transport.knows_delivered:
                report.anomalies.append(_problem(
                    "sent_again",
                    f"an interrupted run handed this message over without recording the outcome: sent again with "
                    f"the same Message-ID {message_id}, by which a duplicate can be recognised",
                    row.number, row.account_number, recipient))
            if not _claim(engine, row, message_id):
                report.anomalies.append(_problem("changed_meanwhile", "changed by another run meanwhile: left to it",
                                                 row.number,
                                                row.account_number, recipient))
                continue
            handed += 1
            try:
                location = transport.send(message, sender, recipient, row.number)
            except RefusedError as exc:
                _mark(engine, row.id, "failed", str(exc))
                report.failed.append(Failure(row.number, recipient, str(exc), row.attempts + 1,
                                             row.attempts + 1 < max_attempts))
                continue
            except UnavailableError as exc:
                _mark(engine, row.id, "pending", f"{transport.describe()} unavailable: {exc}")
                raise
            _mark_sent(engine, row.id, message_id, now)
            report.sent.append(Sent(row.number, recipient, message_id, location))
    except UnavailableError as exc:  # the transport, or the lock taken over by another run
        report.stopped = str(exc) if exc.code == "job_lock_lost" else f"{transport.describe()} unavailable: {exc}"
    finally:
        try:
            transport.close()
        finally:
            lock.release()
    report.pending, report.gave_up = _left(engine, max_attempts, scope)
    if report.stopped:
        report.stopped += (f"; the batch stopped with {report.pending} deliveries left to send: call send_pending "
                           "again once it is back (what was sent is not sent again)")
    return report

