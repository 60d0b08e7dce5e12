"""The control report of a pre-production run, emailed to the billing team (setting
``report_recipients``), once per run and recipient.

The message carries the run's totals and its anomalies counted by kind, the Excel file attached;
it goes through the transport of the invoices (:mod:`workbench.mail.transports`: the outbox folder,
or SMTP). Each recipient's delivery is recorded (``report_deliveries``): a recipient it was sent
to never gets it again, one it failed for gets it from the next :func:`send_report` of the run
(``workbench report RUN``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from email.message import EmailMessage
from email.policy import default as DEFAULT_POLICY
from email.utils import format_datetime
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine, insert, select, update

from workbench.config import Settings
from workbench.db import schema as s
from workbench.errors import RefusedError, UnavailableError
from workbench.mail.message import message_id_for, one_line
from workbench.mail.transports import SMTP_TIMEOUT, open_transport
from workbench.money import format_money

XLSX = ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet")


@dataclass(frozen=True)
class ReportSummary:
    """What the report's message says: the run, its invoices, total billed and net payable
    (exact ``Decimal`` euros) and its anomalies counted by kind (most frequent first, then by name)."""

    run_id: int
    period: str
    invoices: int
    total: Decimal
    net_payable: Decimal
    anomalies: tuple[tuple[str, int], ...] = ()

    @property
    def anomaly_count(self) -> int:
        return sum(count for _, count in self.anomalies)


def report_summary(run_id: int, period: str, sheets: dict[str, pd.DataFrame]) -> ReportSummary:
    """The summary of a control report's sheets (:func:`workbench.reads.runs.run_report`)."""
    invoices = sheets["Invoices"]
    total = sum((v for v in invoices["Total amount billed"] if v is not None), Decimal(0))
    net = sum((v for v in invoices["Net payable amount"] if v is not None), Decimal(0))
    counts = Counter(str(code) for code in sheets["Anomalies"]["Problem"])
    return ReportSummary(int(run_id), str(period), len(invoices), total, net,
                         tuple(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))))


@dataclass
class ReportMailing:
    """What :func:`send_report` did: ``sent`` this time, ``already`` sent before (not sent again),
    ``failed`` (recipient, why; sent by the next :func:`send_report`)."""

    sent: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def report_message(summary: ReportSummary, report: bytes, filename: str, recipient: str, settings: Settings,
                   now: datetime) -> EmailMessage:
    """The email of a control report to ``recipient``: subject and body with the totals (written
    in English, :func:`workbench.money.format_money`) and the anomalies by kind, the file attached."""
    money = format_money
    subject = (f"Billing control report {summary.period}, run {summary.run_id}: {summary.invoices} invoices, "
               f"{money(summary.total)}, {summary.anomaly_count} anomalies")
    lines = [f"The control report of pre-production run {summary.run_id} (period {summary.period}) is attached.",
             "", f"Invoices: {summary.invoices}", f"Total billed: {money(summary.total)}",
             f"Net payable: {money(summary.net_payable)}", f"Anomalies: {summary.anomaly_count}"]
    lines += [f"  {code}: {count}" for code, count in summary.anomalies]
    lines += ["", "Review it in the review dashboard: production issues the run once a reviewer other than the "
                  "one who launched it approves it."]
    message = EmailMessage(policy=DEFAULT_POLICY)
    message["From"] = one_line(settings.mail_from)
    message["To"] = recipient
    message["Subject"] = one_line(subject)
    message["Date"] = format_datetime(now.replace(tzinfo=UTC) if now.tzinfo is None else now)
    message["Message-ID"] = message_id_for(f"report-run{summary.run_id}", recipient, settings.mail_from)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content("\n".join(lines) + "\n", charset="utf-8", cte="quoted-printable")
    message.add_attachment(report, maintype=XLSX[0], subtype=XLSX[1], filename=filename)
    return message


def _record(engine: Engine, run_id: int, recipient: str, state: str, now: datetime, error: str | None) -> None:
    table = s.ReportDelivery
    with engine.begin() as connection:
        found = connection.execute(select(table.id, table.attempts).where(
            table.run_id == run_id, table.recipient == recipient)).first()
        values = {"state": state, "error": error, "sent_at": now if state == "sent" else None}
        if found is None:
            connection.execute(insert(table).values(run_id=run_id, recipient=recipient, attempts=1, **values))
        else:
            connection.execute(update(table).where(table.id == found.id).values(attempts=found.attempts + 1,
                                                                                 **values))


def send_report(engine: Engine, settings: Settings, summary: ReportSummary, path: Path, now: datetime,
                ssl_context=None) -> ReportMailing:
    """Email the control report ``path`` of run ``summary.run_id`` to each address of
    ``report_recipients`` it was not sent to yet; each outcome recorded. Never raises for a
    server or folder that cannot be used (the run is stored whatever happens to its email): the
    recipients it did not reach are in ``failed`` with the reason.
    :class:`~workbench.errors.ConfigError` for a mail set-up that cannot work (``smtp_url``)."""
    result = ReportMailing()
    recipients = settings.report_addresses
    if not recipients:
        return result
    with engine.connect() as connection:
        done = set(connection.execute(select(s.ReportDelivery.recipient).where(
            s.ReportDelivery.run_id == summary.run_id, s.ReportDelivery.state == "sent")).scalars())
    result.already = [r for r in recipients if r in done]
    todo = [r for r in recipients if r not in done]
    if not todo:
        return result
    transport = open_transport(settings, SMTP_TIMEOUT, ssl_context)
    data = Path(path).read_bytes()
    number = Path(path).stem  # control-report-<period>-run<N>: the outbox file's name
    try:
        transport.open()
    except UnavailableError as exc:
        for recipient in todo:
            error = f"{transport.describe()}: {exc}"
            _record(engine, summary.run_id, recipient, "failed", now, error)
            result.failed.append((recipient, error))
        return result
    try:
        for index, recipient in enumerate(todo):
            message = report_message(summary, data, Path(path).name, recipient, settings, now)
            try:
                transport.send(message, one_line(settings.mail_from), recipient, number)
            except RefusedError as exc:
                _record(engine, summary.run_id, recipient, "failed", now, str(exc))
                result.failed.append((recipient, str(exc)))
                continue
            except UnavailableError as exc:  # the rest waits for the next time
                for later in todo[index:]:
                    _record(engine, summary.run_id, later, "failed", now, str(exc))
                    result.failed.append((later, str(exc)))
                break
            _record(engine, summary.run_id, recipient, "sent", now, None)
            result.sent.append(recipient)
    finally:
        transport.close()
    return result
