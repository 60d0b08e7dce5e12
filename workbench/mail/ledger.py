"""The delivery ledger: one ``deliveries`` row per (issued invoice, recipient), sent at most once.

**Planning** (:func:`plan_deliveries`) adds a ``deliveries`` row, state ``pending``, for each
issued invoice or credit note (chosen by id, period or production run) and each contact of its
customer flagged ``invoice_recipient``. Rows already there are kept as they are, so planning
again adds only what is missing. A customer without a usable recipient is reported as a
problem, never skipped silently.

The ledger's rows move ``pending`` -> ``uncertain`` (claimed: the message is being handed over)
-> ``sent`` (or ``failed``, tried again while ``attempts`` are below :data:`MAX_ATTEMPTS`, then
*given up*; or back to ``pending`` when the server could not be used and certainly did not take
it). A delivery left ``uncertain`` (the connection was lost after the whole message was sent and
before the server's reply, or the run died while handing it over) is *possibly sent*: it is
reported, never sent again on its own (an SMTP server cannot be asked what it accepted), until
the operator says so (:func:`release`). :func:`release` also makes given-up deliveries due again;
:func:`reset_deliveries` makes every unsent one pending again. Sending them is
:mod:`workbench.mail.sending`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from workbench.db import schema as s
from workbench.errors import InputError, Problem
from workbench.mail.message import one_line, valid_address
from workbench.period import Period

#: attempts after which a delivery is no longer tried (see :func:`reset_deliveries`)
MAX_ATTEMPTS = 5


_CHUNK = 500


def problem(code: str, message: str, invoice_number: str | None = None, account_number: str | None = None,
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
    deliveries no longer tried (attempts at the limit); ``uncertain`` the deliveries possibly
    sent (state ``uncertain``: not sent again until released, see :func:`release`); ``stopped``
    says why the batch stopped early (server unavailable), else ``None``."""

    sent: list[Sent] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    pending: int = 0
    gave_up: list[Failure] = field(default_factory=list)
    anomalies: list[Problem] = field(default_factory=list)
    stopped: str | None = None
    uncertain: list[Failure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Everything in scope is sent."""
        return not (self.failed or self.gave_up or self.pending or self.stopped or self.uncertain)

    @property
    def left(self) -> int:
        """The deliveries in scope not known to be sent: pending, given up or possibly sent."""
        return self.pending + len(self.gave_up) + len(self.uncertain)

    def summary(self) -> str:
        lines = [f"{len(self.sent)} sent, {len(self.failed)} failed, {self.pending} left to send, "
                 f"{len(self.gave_up)} given up, {len(self.uncertain)} possibly sent"]
        if self.stopped:
            lines.append(f"STOPPED: {self.stopped}")
        lines += [f"  failed: {f.invoice_number} to {f.recipient}: {f.error}" for f in self.failed]
        lines += [f"  given up after {f.attempts} attempts: {f.invoice_number} to {f.recipient}: {f.error}; "
                  f"{RESEND_GIVEN_UP.format(number=f.invoice_number)}" for f in self.gave_up]
        lines += [f"  possibly sent: {f.invoice_number} to {f.recipient}: {f.error or POSSIBLY_SENT}; "
                  f"{RESEND_UNCERTAIN.format(number=f.invoice_number)}" for f in self.uncertain]
        lines += [f"  anomaly: {a}" for a in self.anomalies]
        return "\n".join(lines)


#: what a delivery left ``uncertain`` by a run that died while handing it over says
POSSIBLY_SENT = "the run handing it over stopped before the server's reply was recorded"
#: how to send a given-up delivery again (``number``: its invoice)
RESEND_GIVEN_UP = ("no longer tried: once the cause is fixed, send it again with `workbench mail --resend {number}` "
                   "(or `workbench mail --given-up` for every delivery given up)")
#: how to send a possibly sent delivery again
RESEND_UNCERTAIN = ("not sent again unless you say so: check with the recipient or the server's log, then "
                    "`workbench mail --resend {number}` (or `workbench mail --resend-uncertain` for all); it goes "
                    "with the same Message-ID")


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
                report.anomalies.append(problem(
                    "unknown_invoice", f"invoice id {missing} does not exist (or is not in the selection)"))
            for row in found:
                if row.status != "issued":
                    report.anomalies.append(problem("not_issued", f"not issued (status {row.status}): not emailed",
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
                    report.anomalies.append(problem(
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
                report.anomalies.append(problem(
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


def release(engine: Engine, numbers: Iterable[str] | None = None, *, given_up: bool = False,
            uncertain: bool = False, max_attempts: int = MAX_ATTEMPTS) -> list[tuple[str, str, str]]:
    """Make deliveries due again at the operator's request: every unsent delivery of the invoices
    or credit notes ``numbers`` (given up, possibly sent, failed or pending), and, of all
    documents, those given up (``given_up``: attempts at ``max_attempts``) and those possibly sent
    (``uncertain``). They become ``pending`` with no attempts; their Message-ID is kept, so a
    message sent again can be recognised as the same one. Returns the (invoice number,
    recipient, former state) released, ``given up`` standing for a failed delivery at the limit.
    Raises :class:`~workbench.errors.InputError` naming numbers that are not issued documents."""
    d, i = s.Delivery, s.Invoice
    names = sorted({str(n).strip() for n in numbers or [] if str(n).strip()})
    released: list[tuple[str, str, str]] = []
    with engine.begin() as connection:
        if names:
            known = {n for chunk in _chunks(names) for n in connection.execute(
                select(i.number).where(i.number.in_(chunk), i.status == "issued")).scalars()}
            unknown = [n for n in names if n not in known]
            if unknown:
                raise InputError(f"not an issued invoice or credit note: {', '.join(unknown)}",
                                 code="unknown_invoice")
        conditions = []
        if given_up:
            conditions.append((d.state.in_(("pending", "failed"))) & (d.attempts >= max_attempts))
        if uncertain:
            conditions.append(d.state == "uncertain")
        if names:
            conditions.append(i.number.in_(names) & (d.state != "sent"))
        if not conditions:
            return released
        rows = connection.execute(
            select(d.id, i.number, d.recipient, d.state, d.attempts).join(i, i.id == d.invoice_id)
            .where(or_(*conditions), i.status == "issued").order_by(i.number, d.recipient)).all()
        for chunk in _chunks([row.id for row in rows]):
            connection.execute(update(d).where(d.id.in_(chunk), d.state != "sent").values(
                state="pending", attempts=0, last_error=None))
        released = [(row.number, row.recipient,
                     "given up" if row.state != "uncertain" and row.attempts >= max_attempts else row.state)
                    for row in rows]
    return released


def due(engine: Engine, max_attempts: int, invoice_ids: list[int] | None, include_uncertain: bool = False) -> list:
    """The deliveries to send now (pending, or failed below ``max_attempts``; the possibly sent
    ones too with ``include_uncertain``, for a transport that can tell whether it has them)."""
    d, i, c = s.Delivery, s.Invoice, s.Customer
    states = ("pending", "failed", "uncertain") if include_uncertain else ("pending", "failed")
    query = (
        select(d.id, d.invoice_id, d.recipient, d.state, d.attempts, d.last_error, d.message_id,
               i.number, i.kind, i.period, i.invoice_date, i.due_date, i.currency, i.total_incl_cents,
               i.credit_applied_cents, i.net_payable_cents, i.document, c.account_number,
               func.coalesce(i.customer_name, c.name).label("customer_name"),  # as issued
               c.language, func.coalesce(i.payment_means, c.payment_method).label("payment_method"))  # as issued
        .join(i, i.id == d.invoice_id).join(c, c.id == i.customer_id)
        .where(d.state.in_(states), (d.attempts < max_attempts) | (d.state == "uncertain"), *_scope(invoice_ids))
        .order_by(i.number, d.recipient))
    with engine.connect() as connection:
        return connection.execute(query).all()


def left(engine: Engine, max_attempts: int, invoice_ids: list[int] | None
         ) -> tuple[int, list[Failure], list[Failure]]:
    """What is left in scope: the count of deliveries due, those given up, those possibly sent."""
    d, i = s.Delivery, s.Invoice
    with engine.connect() as connection:
        pending = connection.execute(
            select(func.count()).select_from(d).join(i, i.id == d.invoice_id)
            .where(d.state.in_(("pending", "failed")), d.attempts < max_attempts, *_scope(invoice_ids))).scalar_one()
        exhausted = connection.execute(
            select(i.number, d.recipient, d.last_error, d.attempts).join(i, i.id == d.invoice_id)
            .where(d.state.in_(("pending", "failed")), d.attempts >= max_attempts, *_scope(invoice_ids))
            .order_by(i.number, d.recipient)).all()
        uncertain = connection.execute(
            select(i.number, d.recipient, d.last_error, d.attempts).join(i, i.id == d.invoice_id)
            .where(d.state == "uncertain", *_scope(invoice_ids)).order_by(i.number, d.recipient)).all()
    return (pending, [Failure(r.number, r.recipient, r.last_error or "", r.attempts, False) for r in exhausted],
            [Failure(r.number, r.recipient, r.last_error or "", r.attempts, False) for r in uncertain])


def claim(engine: Engine, row, message_id: str) -> bool:
    """Count the attempt, record the Message-ID and mark the delivery ``uncertain`` before
    handing the message over (a run that dies from then on leaves it possibly sent); ``False``
    if another run changed the delivery since it was read."""
    d = s.Delivery
    with engine.begin() as connection:
        return connection.execute(update(d).where(d.id == row.id, d.state == row.state, d.attempts == row.attempts)
                                  .values(state="uncertain", attempts=row.attempts + 1, last_error=None,
                                          message_id=message_id)).rowcount == 1


def mark_sent(engine: Engine, delivery_id: int, message_id: str, now: datetime) -> None:
    with engine.begin() as connection:
        connection.execute(update(s.Delivery).where(s.Delivery.id == delivery_id).values(
            state="sent", sent_at=now, last_error=None, message_id=message_id))


def mark(engine: Engine, delivery_id: int, state: str, error: str, **values: Any) -> None:
    with engine.begin() as connection:
        connection.execute(update(s.Delivery).where(s.Delivery.id == delivery_id).values(
            state=state, last_error=error, **values))

