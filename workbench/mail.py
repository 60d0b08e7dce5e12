"""Emailing issued invoices: one delivery per (invoice, recipient), sent at most once.

**Planning** (:func:`plan_deliveries`) adds a ``deliveries`` row, state ``pending``, for each
issued invoice or credit note (chosen by id, period or production run) and each contact of its
customer flagged ``invoice_recipient``. Rows already there are kept as they are, so planning
again adds only what is missing. A customer without a usable recipient is reported as an
anomaly, never skipped silently.

**Sending** (:func:`send_pending`) takes every ``pending`` or ``failed`` delivery whose
``attempts`` are below a limit and, for each one in turn:

1. reads the PDF of the invoice from the storage space (``invoices.document``); if it cannot be
   read, the delivery is marked ``failed`` with the reason, without counting an attempt, and
   is tried again by the next run;
2. builds the message: the subject and body templates of the customer's language
   (``templates/email/invoice_<fr|en>.txt`` and ``subjects.toml``) filled with plain values,
   the PDF attached, ``From`` = the ``mail_from`` setting, and a ``Message-ID`` derived from the
   invoice number and the recipient only (:func:`message_id_for`), so every copy of the
   message, whenever it is sent, carries the same one;
3. commits ``attempts + 1`` and the Message-ID (the *claim*), hands the message over (SMTP or
   outbox) and commits the outcome at once: ``sent`` with ``sent_at``; ``failed`` with the
   server's reply when the server refuses the recipient or the message (the others go on);
   ``pending`` with the error when the server is unavailable (refused connection, dropped
   connection, 421), which **stops the batch**: the rest stays pending and the report says so.

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
and a second one stops at once with a :class:`MailError` naming the run in progress, before
sending anything. The lock of a run that died is taken over (a dead process of this machine at
once, a run silent for 10 minutes otherwise) and the report says so.

Transport (setting ``smtp_url``): empty writes each message to
``<outbox_dir>/<invoice number>-<recipient>.eml`` (a temporary file renamed into place);
``smtp://[user@]host[:587]`` uses STARTTLS (plain text is accepted only to a loopback relay
that does not offer it); ``smtps://[user@]host[:465]`` uses TLS from the start. The password is
never part of the URL: it comes from ``WORKBENCH_SMTP_PASSWORD`` only.

Customer text (names, account numbers) is inserted into templates as values, never as
template text, with line breaks and control characters replaced by spaces, so a name cannot
add headers or recipients; each message has a single envelope recipient.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import smtplib
import ssl
import tempfile
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import SMTP as SMTP_POLICY
from email.policy import default as DEFAULT_POLICY
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import jinja2
from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from workbench.config import SECRETS, Settings, secret
from workbench.db import schema as s
from workbench.db.locks import JobLocked, JobLockLost, acquire
from workbench.documents import TEMPLATES, templates_folder
from workbench.period import Period
from workbench.storage import Storage, StorageError

#: where the email templates are: ``invoice_fr.txt``, ``invoice_en.txt``, ``subjects.toml``
TEMPLATES_DIR = TEMPLATES / "email"
LANGUAGES = ("fr", "en")
DEFAULT_LANGUAGE = "fr"
KINDS = ("invoice", "credit_note")
#: attempts after which a delivery is no longer tried (see :func:`reset_deliveries`)
MAX_ATTEMPTS = 5
#: seconds an SMTP connection may wait on the network
SMTP_TIMEOUT = 30.0

_CHUNK = 500
_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")
_ADDRESS = re.compile(r"^[^\s@<>()\[\],;:\"\\]+@[^\s@<>()\[\],;:\"\\.][^\s@<>()\[\],;:\"\\]*\.[^\s@<>()\[\],;:\"\\]+$")
_MONTHS = {
    "fr": ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
           "novembre", "décembre"],
    "en": ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"],
}


class MailError(RuntimeError):
    """A mail set-up that cannot be used (``smtp_url``, password, ``mail_from``, templates)."""


class _Refused(Exception):
    """The server refused this recipient or message: the delivery fails, the batch goes on."""


class _Unavailable(Exception):
    """The server (or outbox folder) cannot be used now: the batch stops."""


# ---------------------------------------------------------------------------- reports

@dataclass(frozen=True)
class Anomaly:
    """Something the operator should look at: an invoice without recipient, a resent message..."""

    message: str
    invoice_number: str | None = None
    account_number: str | None = None
    recipient: str | None = None

    def __str__(self) -> str:
        where = " ".join(x for x in (self.invoice_number, self.account_number, self.recipient) if x)
        return f"{where}: {self.message}" if where else self.message


@dataclass
class PlanReport:
    """What :func:`plan_deliveries` did: ``planned`` (invoice number, recipient) rows added,
    ``existing`` rows kept, ``invoices`` issued documents considered, ``anomalies``."""

    invoices: int = 0
    planned: list[tuple[str, str]] = field(default_factory=list)
    existing: int = 0
    anomalies: list[Anomaly] = field(default_factory=list)

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
    anomalies: list[Anomaly] = field(default_factory=list)
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


# ---------------------------------------------------------------------------- small helpers

def one_line(value: Any) -> str:
    """``value`` as text on one line: line breaks and control characters become spaces."""
    return " ".join(_CONTROL.sub(" ", "" if value is None else str(value)).split())


def valid_address(address: str) -> bool:
    """A plain ``local@domain.tld`` address (no display name, spaces or control characters)."""
    return bool(address) and len(address) <= 254 and not _CONTROL.search(address) and bool(_ADDRESS.match(address))


def message_id_for(invoice_number: str, recipient: str, mail_from: str) -> str:
    """The Message-ID of the email of ``invoice_number`` to ``recipient``: the same every time."""
    digest = hashlib.sha256(f"{invoice_number}\n{recipient.strip().lower()}".encode()).hexdigest()[:24]
    domain = parseaddr(one_line(mail_from))[1].rpartition("@")[2]
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        domain = ""
    domain = re.sub(r"[^A-Za-z0-9.-]", "", domain) or "workbench.invalid"
    return f"<{re.sub(r'[^A-Za-z0-9._-]', '_', invoice_number)}.{digest}@{domain}>"


def outbox_name(invoice_number: str, recipient: str) -> str:
    """The outbox file name of a delivery: ``<invoice number>-<recipient>.eml``."""
    def safe(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9@._+-]", "_", text).lstrip(".") or "_"
    return f"{safe(invoice_number)}-{safe(recipient)}.eml"


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _chunks(values: list, size: int = _CHUNK) -> Iterator[list]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def _money(cents: int, currency: str, language: str) -> str:
    sign, cents = ("-" if cents < 0 else ""), abs(int(cents))
    units, rest = divmod(cents, 100)
    if language == "fr":
        amount = f"{sign}{units:,}".replace(",", " ") + f",{rest:02d}"
        return f"{amount} €" if currency == "EUR" else f"{amount} {currency}"
    amount = f"{units:,}.{rest:02d}"
    return f"{sign}€{amount}" if currency == "EUR" else f"{sign}{currency} {amount}"


def _date(day: date | None, language: str) -> str:
    if day is None:
        return ""
    if language == "fr":
        return day.strftime("%d/%m/%Y")
    return f"{day.day} {_MONTHS['en'][day.month - 1]} {day.year}"


def _period(text: str, language: str) -> str:
    try:
        period = Period.parse(text)
    except ValueError:
        return one_line(text)
    return f"{_MONTHS[language][period.month - 1]} {period.year}"


# ---------------------------------------------------------------------------- planning

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
                report.anomalies.append(Anomaly(f"invoice id {missing} does not exist (or is not in the selection)"))
            for row in found:
                if row.status != "issued":
                    report.anomalies.append(Anomaly(f"not issued (status {row.status}): not emailed",
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
                    report.anomalies.append(Anomaly(
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
                report.anomalies.append(Anomaly(
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


# ---------------------------------------------------------------------------- templates

class _Templates:
    """The subject and body templates, by language and document kind, checked when loaded."""

    SAMPLE = {
        "number": "F2026-000001", "kind": "invoice", "is_credit_note": False, "customer_name": "Sample",
        "account_number": "C1", "period": "octobre 2026", "invoice_date": "01/11/2026", "due_date": "01/12/2026",
        "total": "1,00 €", "net_payable": "1,00 €", "has_amount_due": True, "credit_applied": "",
        "payment_method": "transfer", "operator_name": "Operator", "operator_email": "billing@example.com",
    }

    def __init__(self, folder: str | Path | None = None):
        self.folder = Path(folder) if folder is not None else TEMPLATES_DIR
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(self.folder)), autoescape=False, undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
        try:
            subjects = tomllib.loads((self.folder / "subjects.toml").read_text(encoding="utf-8"))
            self.bodies = {lang: env.get_template(f"invoice_{lang}.txt") for lang in LANGUAGES}
            self.subjects = {lang: {kind: env.from_string(subjects[lang][kind]) for kind in KINDS}
                             for lang in LANGUAGES}
            for lang in LANGUAGES:
                for kind in KINDS:
                    self.render(lang, {**self.SAMPLE, "kind": kind, "is_credit_note": kind == "credit_note"})
        except (OSError, KeyError, TypeError, tomllib.TOMLDecodeError, jinja2.TemplateError) as exc:
            raise MailError(f"email templates in {self.folder}: {type(exc).__name__}: {exc}") from exc

    def render(self, language: str, context: dict[str, Any]) -> tuple[str, str]:
        subject = one_line(self.subjects[language][context["kind"]].render(context))
        body = self.bodies[language].render(context)
        return subject, re.sub(r"\n{3,}", "\n\n", body).strip() + "\n"


def _context(row, settings: Settings, language: str) -> dict[str, Any]:
    credit_note = row.kind == "credit_note"
    return {
        "number": one_line(row.number), "kind": "credit_note" if credit_note else "invoice",
        "is_credit_note": credit_note, "customer_name": one_line(row.customer_name),
        "account_number": one_line(row.account_number), "period": _period(row.period, language),
        "invoice_date": _date(row.invoice_date, language), "due_date": _date(row.due_date, language),
        "total": _money(abs(row.total_incl_cents or 0), row.currency or "EUR", language),
        "net_payable": _money(row.net_payable_cents or 0, row.currency or "EUR", language),
        "has_amount_due": (row.net_payable_cents or 0) > 0,
        "credit_applied": _money(row.credit_applied_cents, row.currency or "EUR", language)
        if (row.credit_applied_cents or 0) > 0 else "",
        "payment_method": one_line(row.payment_method), "operator_name": one_line(settings.operator_name),
        "operator_email": one_line(settings.operator_email),
    }


def build_message(row, recipient: str, pdf: bytes, settings: Settings, now: datetime, templates: _Templates,
                  message_id: str | None = None) -> EmailMessage:
    """The email of one delivery (``row``: the invoice and customer columns of :func:`send_pending`);
    ``message_id`` defaults to :func:`message_id_for` the invoice and recipient."""
    language = row.language if row.language in LANGUAGES else DEFAULT_LANGUAGE
    subject, body = templates.render(language, _context(row, settings, language))
    message = EmailMessage(policy=DEFAULT_POLICY)
    message["From"] = one_line(settings.mail_from)
    message["To"] = recipient
    message["Subject"] = subject
    message["Date"] = format_datetime(_naive_utc(now).replace(tzinfo=UTC))
    message["Message-ID"] = message_id or message_id_for(row.number, recipient, settings.mail_from)
    message["Auto-Submitted"] = "auto-generated"
    message["X-Workbench-Invoice"] = one_line(row.number)
    message.set_content(body, charset="utf-8", cte="quoted-printable")  # 7-bit safe on any relay
    message.add_attachment(pdf, maintype="application", subtype="pdf", filename=f"{one_line(row.number)}.pdf")
    message["Content-Language"] = language  # after add_attachment, which moves Content-* headers to the text part
    return message


# ---------------------------------------------------------------------------- transports

class _Outbox:
    """The embedded default: each message as ``<outbox_dir>/<invoice number>-<recipient>.eml``."""

    knows_delivered = True  # a message handed over is a file that is there

    def __init__(self, folder: str):
        self.folder = Path(folder)

    def describe(self) -> str:
        return f"outbox folder {self.folder}"

    def open(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _Unavailable(f"cannot create it: {exc}") from None

    def path(self, number: str, recipient: str) -> Path:
        return self.folder / outbox_name(number, recipient)

    def delivered(self, number: str, recipient: str, message_id: str) -> str | None:
        """The file of this very message if a previous run wrote it (then crashed)."""
        path = self.path(number, recipient)
        try:
            with path.open("rb") as fh:
                headers = BytesParser(policy=DEFAULT_POLICY).parse(fh, headersonly=True)
        except OSError:
            return None
        return str(path) if str(headers.get("Message-ID", "")).strip() == message_id else None

    def send(self, message: EmailMessage, sender: str, recipient: str, number: str) -> str:
        path = self.path(number, recipient)
        data = message.as_bytes(policy=SMTP_POLICY)
        temp = None
        try:
            fd, temp = tempfile.mkstemp(dir=self.folder, prefix=f".{path.name}.", suffix=".tmp")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(temp, path)
        except OSError as exc:
            if temp is not None:
                Path(temp).unlink(missing_ok=True)
            raise _Unavailable(f"cannot write {path.name}: {exc}") from None
        return str(path)

    def close(self) -> None:
        pass


class _Smtp:
    """An SMTP relay: one connection for the batch, one transaction per message."""

    knows_delivered = False

    def __init__(self, url: str, timeout: float, ssl_context: ssl.SSLContext | None):
        parsed = urlparse(url)
        if parsed.scheme not in ("smtp", "smtps"):
            raise MailError(f"smtp_url {url!r}: use smtp://[user@]host[:port] (STARTTLS) or smtps://... (TLS)")
        if parsed.password is not None:
            raise MailError(f"smtp_url must not contain the password: set it in {SECRETS['smtp_password']}")
        if not parsed.hostname:
            raise MailError(f"smtp_url {url!r} has no host")
        try:
            port = parsed.port
        except ValueError as exc:
            raise MailError(f"smtp_url {url!r}: {exc}") from None
        self.tls = parsed.scheme == "smtps"
        self.host, self.port = parsed.hostname, port or (465 if self.tls else 587)
        self.user = unquote(parsed.username) if parsed.username else None
        self.password = secret("smtp_password") if self.user else None
        if self.user and not self.password:
            raise MailError(f"smtp_url logs in as {self.user!r}: set the password in {SECRETS['smtp_password']}")
        self.timeout = timeout
        self.context = ssl_context
        self.connection: smtplib.SMTP | None = None
        try:
            self.loopback = self.host == "localhost" or ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            self.loopback = False

    def describe(self) -> str:
        return f"SMTP server {self.host}:{self.port}"

    def open(self) -> None:
        context = self.context or ssl.create_default_context()
        local = "localhost" if self.loopback else None
        connection = None
        try:
            if self.tls:
                connection = smtplib.SMTP_SSL(self.host, self.port, local_hostname=local, timeout=self.timeout,
                                              context=context)
            else:
                connection = smtplib.SMTP(self.host, self.port, local_hostname=local, timeout=self.timeout)
                connection.ehlo()
                if connection.has_extn("starttls"):
                    connection.starttls(context=context)
                    connection.ehlo()
                elif not self.loopback:
                    raise _Unavailable("it does not offer STARTTLS, and mail is not sent in clear text to another "
                                       "host (use smtps:// or a relay with STARTTLS)")
            if self.user:
                connection.login(self.user, self.password or "")
        except _Unavailable:
            self._close(connection)
            raise
        except smtplib.SMTPAuthenticationError as exc:
            self._close(connection)
            raise _Unavailable(f"login as {self.user!r} refused: {exc.smtp_code} {_text(exc.smtp_error)}") from None
        except (OSError, smtplib.SMTPException) as exc:
            self._close(connection)
            raise _Unavailable(f"cannot connect: {_describe(exc)}") from None
        self.connection = connection

    def delivered(self, number: str, recipient: str, message_id: str) -> str | None:
        return None  # an SMTP server cannot be asked what it already accepted

    def send(self, message: EmailMessage, sender: str, recipient: str, number: str) -> str:
        assert self.connection is not None
        try:
            refused = self.connection.send_message(message, from_addr=sender, to_addrs=[recipient])
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()), (0, b""))
            if code == 421:
                raise _Unavailable(f"the server closed the session: {code} {_text(reply)}") from None
            raise _Refused(f"recipient refused by the server: {code} {_text(reply)}") from None
        except smtplib.SMTPSenderRefused as exc:
            raise _Unavailable(f"sender {exc.sender!r} refused: {exc.smtp_code} {_text(exc.smtp_error)}") from None
        except smtplib.SMTPResponseException as exc:  # SMTPDataError and the others with a reply
            if exc.smtp_code == 421:
                raise _Unavailable(f"the server closed the session: 421 {_text(exc.smtp_error)}") from None
            raise _Refused(f"message refused by the server: {exc.smtp_code} {_text(exc.smtp_error)}") from None
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            raise _Unavailable(f"connection lost: {_describe(exc)}") from None
        except smtplib.SMTPException as exc:
            raise _Refused(f"not sent: {_describe(exc)}") from None
        if refused:
            code, reply = next(iter(refused.values()))
            raise _Refused(f"recipient refused by the server: {code} {_text(reply)}")
        return f"smtp://{self.host}:{self.port}"

    def close(self) -> None:
        self._close(self.connection)
        self.connection = None

    @staticmethod
    def _close(connection: smtplib.SMTP | None) -> None:
        if connection is None:
            return
        try:
            connection.quit()
        except (OSError, smtplib.SMTPException):
            connection.close()


def _text(reply: bytes | str) -> str:
    return one_line(reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply)


def _describe(exc: BaseException) -> str:
    return one_line(str(exc)) or type(exc).__name__


def _transport(settings: Settings, timeout: float, ssl_context: ssl.SSLContext | None) -> _Outbox | _Smtp:
    if not settings.smtp_url.strip():
        return _Outbox(settings.outbox_dir)
    return _Smtp(settings.smtp_url.strip(), timeout, ssl_context)


# ---------------------------------------------------------------------------- sending

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
        except (StorageError, OSError, ValueError) as exc:
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
    system's CAs). Raises :class:`MailError` for an unusable set-up, before sending anything.
    """
    now = _naive_utc(now)
    scope = None if invoice_ids is None else sorted({int(x) for x in invoice_ids})
    transport = _transport(settings, timeout, ssl_context)
    templates = _Templates(templates_dir if templates_dir is not None
                           else templates_folder(settings.templates_dir) / "email")
    sender = parseaddr(one_line(settings.mail_from))[1]
    if not valid_address(sender):
        raise MailError(f"mail_from {settings.mail_from!r} has no valid email address")
    report = DeliveryReport()
    documents = _Documents(settings.storage_url)
    opened, handed = False, 0
    try:
        lock = acquire(engine, "mail")
    except JobLocked as exc:
        raise MailError(f"not sending: {exc}") from exc
    if lock.taken_over:
        report.anomalies.append(Anomaly(lock.taken_over + ": its unrecorded deliveries are resumed"))
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
                report.anomalies.append(Anomaly(
                    "already written by an interrupted run (not recorded then): recorded as sent, not written again",
                    row.number, row.account_number, recipient))
                continue
            if row.state == "pending" and row.attempts > 0 and row.last_error is None and not transport.knows_delivered:
                report.anomalies.append(Anomaly(
                    f"an interrupted run handed this message over without recording the outcome: sent again with "
                    f"the same Message-ID {message_id}, by which a duplicate can be recognised",
                    row.number, row.account_number, recipient))
            if not _claim(engine, row, message_id):
                report.anomalies.append(Anomaly("changed by another run meanwhile: left to it", row.number,
                                                row.account_number, recipient))
                continue
            handed += 1
            try:
                location = transport.send(message, sender, recipient, row.number)
            except _Refused as exc:
                _mark(engine, row.id, "failed", str(exc))
                report.failed.append(Failure(row.number, recipient, str(exc), row.attempts + 1,
                                             row.attempts + 1 < max_attempts))
                continue
            except _Unavailable as exc:
                _mark(engine, row.id, "pending", f"{transport.describe()} unavailable: {exc}")
                raise
            _mark_sent(engine, row.id, message_id, now)
            report.sent.append(Sent(row.number, recipient, message_id, location))
    except _Unavailable as exc:
        report.stopped = f"{transport.describe()} unavailable: {exc}"
    except JobLockLost as exc:
        report.stopped = str(exc)
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
