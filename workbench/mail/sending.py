"""Sending the pending deliveries of the ledger (:mod:`workbench.mail.ledger`), each at most once.

**Sending** (:func:`send_pending`) takes every ``pending`` or ``failed`` delivery whose
``attempts`` are below a limit and, for each one in turn:

1. reads the PDF of the invoice from the storage space (``invoices.document``); if it cannot be
   read, the delivery is marked ``failed`` with the reason, without counting an attempt, and
   is tried again by the next run;
2. builds the message (:mod:`workbench.mail.message`);
3. commits ``attempts + 1``, the Message-ID and the state ``uncertain`` (the *claim*), hands the
   message over (:mod:`workbench.mail.transports`) and commits the outcome at once: ``sent`` with
   ``sent_at``; ``failed`` with the server's reply when the server refuses the recipient or the
   message (the others go on); ``pending`` with the error when the server is unavailable and
   certainly did not take the message (refused connection, a connection dropped before the
   message's last byte, 421), which **stops the batch**: the rest stays pending and the report
   says so.

Calling :func:`send_pending` again after a crash or an outage therefore sends exactly what is
missing. The one window no protocol can close is a connection lost between the message's last
byte and the server's reply, or a run that died after its claim and before recording the
outcome: the server may have accepted the message. Such a delivery stays ``uncertain`` (with the
error, or none after a crash; the batch stops) and is reported as *possibly sent* (the report's
``uncertain``), never sent again without the operator's word: :func:`workbench.mail.ledger.release`
(``workbench mail --resend NUMBER`` or ``--resend-uncertain``) makes it due again, and it goes with
the *same* Message-ID, the one recorded at its claim, by which receiving systems and the relay's
logs can recognise a duplicate. The outbox can tell: a run finds the file already written and
only records it as sent, or writes it if it is not there.

Only one ``send_pending`` runs at a time, wherever it runs from (a scheduled production job, an
analyst's command): it holds the ``mail`` job lock (:mod:`workbench.db.locks`) while it sends,
and a second one stops at once with an :class:`~workbench.errors.UnavailableError` naming the run
in progress, before sending anything. The lock of a run that died is taken over (a dead process
of this machine at once, a run silent for 10 minutes otherwise) and the report says so.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from datetime import datetime
from email.utils import parseaddr
from pathlib import Path

from sqlalchemy import Engine

from workbench.config import Settings
from workbench.db.locks import acquire
from workbench.documents import templates_folder
from workbench.errors import ConfigError, InputError, RefusedError, UnavailableError
from workbench.mail import ledger
from workbench.mail.ledger import MAX_ATTEMPTS, DeliveryReport, Failure, Sent
from workbench.mail.message import Templates, _naive_utc, build_message, one_line, valid_address
from workbench.mail.transports import SMTP_TIMEOUT, PossiblySent, _describe, open_transport
from workbench.storage import Storage


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
        report.anomalies.append(ledger.problem("lock_taken_over",
                                         lock.taken_over + ": its deliveries handed over without an outcome "
                                         "are possibly sent"))
    try:
        for row in ledger.due(engine, max_attempts, scope, include_uncertain=transport.knows_delivered):
            if limit is not None and handed >= limit:
                break
            lock.beat()  # still ours: else another run has taken over, and this one stops
            recipient = row.recipient.strip()
            if not valid_address(recipient):  # not from plan_deliveries, which checks them: never tried
                error = f"invalid recipient address {one_line(row.recipient)!r}: not sent (fix the contact and plan)"
                ledger.mark(engine, row.id, "failed", error, attempts=max_attempts)
                report.failed.append(Failure(row.number, row.recipient, error, max_attempts, False))
                continue
            pdf, error = documents.get(row)
            if error:
                ledger.mark(engine, row.id, "failed", error)
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
                ledger.mark_sent(engine, row.id, message_id, now)
                report.sent.append(Sent(row.number, recipient, message_id, written))
                report.anomalies.append(ledger.problem(
                    "already_written",
                    "already written by an interrupted run (not recorded then): recorded as sent, not written again",
                    row.number, row.account_number, recipient))
                continue
            if row.state == "pending" and row.attempts > 0 and row.last_error is None and not transport.knows_delivered:
                report.anomalies.append(ledger.problem(
                    "sent_again",
                    f"an interrupted run handed this message over without recording the outcome: sent again with "
                    f"the same Message-ID {message_id}, by which a duplicate can be recognised",
                    row.number, row.account_number, recipient))
            if not ledger.claim(engine, row, message_id):
                report.anomalies.append(ledger.problem("changed_meanwhile",
                                                       "changed by another run meanwhile: left to it",
                                                       row.number, row.account_number, recipient))
                continue
            handed += 1
            try:
                location = transport.send(message, sender, recipient, row.number)
            except RefusedError as exc:
                retryable = row.attempts + 1 < max_attempts
                ledger.mark(engine, row.id, "failed", str(exc))
                report.failed.append(Failure(row.number, recipient, str(exc) + (
                    "" if retryable else f"; given up after {row.attempts + 1} attempts, "
                    + ledger.RESEND_GIVEN_UP.format(number=row.number)), row.attempts + 1, retryable))
                continue
            except PossiblySent as exc:
                ledger.mark(engine, row.id, "uncertain", f"{transport.describe()}: {exc}")
                raise
            except UnavailableError as exc:
                ledger.mark(engine, row.id, "pending", f"{transport.describe()} unavailable: {exc}")
                raise
            ledger.mark_sent(engine, row.id, message_id, now)
            report.sent.append(Sent(row.number, recipient, message_id, location))
    except UnavailableError as exc:  # the transport, or the lock taken over by another run
        report.stopped = str(exc) if exc.code == "job_lock_lost" else f"{transport.describe()} unavailable: {exc}"
    finally:
        try:
            transport.close()
        finally:
            lock.release()
    report.pending, report.gave_up, report.uncertain = ledger.left(engine, max_attempts, scope)
    if report.stopped:
        report.stopped += (f"; the batch stopped with {report.pending} deliveries left to send: send what is "
                           "pending again once it is back, e.g. `workbench mail --retry` (what was sent is not sent "
                           "again)")
    return report

