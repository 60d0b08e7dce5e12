"""Email messages of issued invoices: the text of the customer's language and the PDF attached.

The subject and body come from the templates folder (``email/invoice_<fr|en>.txt`` and
``email/subjects.toml``; see :func:`workbench.documents.templates_folder`), filled with plain
values: customer text (names, account numbers) is inserted as values, never as template text,
with line breaks and control characters replaced by spaces, so a name cannot add headers or
recipients. Amounts and dates are written for the customer's language
(:func:`workbench.money.format_money`).

The ``Message-ID`` of a delivery is derived from the invoice number and the recipient only
(:func:`message_id_for`), so every copy of a message, whenever it is sent, carries the same one.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from datetime import UTC, date, datetime
from email.message import EmailMessage
from email.policy import default as DEFAULT_POLICY
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import Any

import jinja2
from babel.dates import format_date

from workbench.config import Settings
from workbench.errors import ConfigError
from workbench.money import blank_if_missing, format_money
from workbench.period import Period
from workbench.text import strip_bidi

LANGUAGES = ("fr", "en")


DEFAULT_LANGUAGE = "fr"


KINDS = ("invoice", "credit_note")


_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")


_ADDRESS = re.compile(r"^[^\s@<>()\[\],;:\"\\]+@[^\s@<>()\[\],;:\"\\.][^\s@<>()\[\],;:\"\\]*\.[^\s@<>()\[\],;:\"\\]+$")


def one_line(value: Any) -> str:
    """``value`` as text on one line: line breaks and control characters become spaces, bidirectional
    controls (:func:`workbench.text.strip_bidi`) are removed."""
    return " ".join(_CONTROL.sub(" ", strip_bidi("" if value is None else str(value))).split())


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


#: how a date is written in an email, by language (CLDR patterns, Babel)
DATE_PATTERNS = {"fr": "dd/MM/yyyy", "en": "d MMMM y"}


def _date(day: date | None, language: str) -> str:
    """``01/11/2026`` in French, ``1 November 2026`` in English."""
    return "" if day is None else format_date(day, DATE_PATTERNS[language], locale=language)


def _period(text: str, language: str) -> str:
    """``octobre 2026`` in French, ``October 2026`` in English."""
    try:
        period = Period.parse(text)
    except ValueError:
        return one_line(text)
    return format_date(period.start, "LLLL y", locale=language)


class Templates:
    """The subject and body templates, by language and document kind, checked when loaded."""

    SAMPLE = {
        "number": "F2026-000001", "kind": "invoice", "is_credit_note": False, "customer_name": "Sample",
        "account_number": "C1", "period": "octobre 2026", "invoice_date": "01/11/2026", "due_date": "01/12/2026",
        "total": "1,00\u00a0€", "net_payable": "1,00\u00a0€", "has_amount_due": True, "credit_applied": "",
        "payment_method": "transfer", "operator_name": "Operator", "operator_email": "billing@example.com",
    }

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(self.folder)), autoescape=False, undefined=jinja2.StrictUndefined,
            finalize=blank_if_missing,
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
            raise ConfigError(f"{type(exc).__name__}: {exc}", source=f"email templates in {self.folder}") from exc

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
        "total": format_money(abs(row.total_incl_cents or 0), row.currency or "EUR", language),
        "net_payable": format_money(row.net_payable_cents or 0, row.currency or "EUR", language),
        "has_amount_due": (row.net_payable_cents or 0) > 0,
        "credit_applied": format_money(row.credit_applied_cents, row.currency or "EUR", language)
        if (row.credit_applied_cents or 0) > 0 else "",
        "payment_method": one_line(row.payment_method), "operator_name": one_line(settings.operator_name),
        "operator_email": one_line(settings.operator_email),
    }


def build_message(row, recipient: str, pdf: bytes, settings: Settings, now: datetime, templates: Templates,
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

