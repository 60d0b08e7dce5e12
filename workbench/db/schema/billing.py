"""Billing: runs, invoices and credit notes with their items and VAT, legal number sequences,
account credit, email deliveries, SEPA files and debits, and job locks."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.expression import false

from workbench.db.schema.base import Base


class BillingRun(Base):
    """A billing run: ``kind`` ``preprod`` (drafts, changes nothing production depends on) or
    ``production`` (issued invoices). ``options`` is JSON text (customers, advance/arrears, pdfs);
    ``fingerprint`` is JSON text of the hashes of the run's inputs, by part. A run's number
    (``id``) is never given again after the run is deleted (``AUTOINCREMENT`` on SQLite, a
    sequence on PostgreSQL), so a report file of a deleted run never names a new one."""

    __tablename__ = "billing_runs"
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    period: Mapped[str] = mapped_column(String(7), index=True)
    invoice_date: Mapped[date] = mapped_column(Date)
    due_date: Mapped[date] = mapped_column(Date)
    options: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    source_run_id: Mapped[int | None] = mapped_column(ForeignKey("billing_runs.id"))
    status: Mapped[str] = mapped_column(String(20), default="done")


#: the customer's billing identity an issued document keeps: ``invoices`` column -> ``customers``
#: column
ISSUED_IDENTITY = {
    "customer_name": "name", "customer_address_line1": "address_line1", "customer_address_line2": "address_line2",
    "customer_postcode": "postcode", "customer_city": "city", "customer_country": "country",
    "customer_vat_number": "vat_number", "customer_siren": "siren",
    "customer_service_address_line1": "service_address_line1",
    "customer_service_address_line2": "service_address_line2",
    "customer_service_postcode": "service_postcode", "customer_service_city": "service_city",
    "customer_service_country": "service_country",
}


class Invoice(Base):
    """An invoice or credit note. Drafts belong to a preprod run (numbered ``PRE-<run>-0001``);
    issued documents carry a legal number and are never changed afterwards.

    ``customer_name`` to ``customer_service_country`` (``ISSUED_IDENTITY``): the customer's billing
    identity (name, address, VAT number, SIREN, service address) as it was when the document was
    issued (empty for drafts, which show the customer as it is now): an issued document prints
    it, whatever the customer's record says later. ``vat_category``: the VAT category of the
    document's taxable items (:mod:`workbench.invoicing.vat`: ``S`` French VAT, ``AE`` reverse
    charge, ``O`` outside the scope of French VAT; empty on documents built before it was
    recorded: ``S``), decided when the document was built and never again, so a PDF rendered
    again shows the same. ``vat_on_debits``: the operator had opted for paying VAT on debits
    (CGI art. 269-2-c) when the document was built (a mention on the invoice). ``collection_offset_cents``
    (credit notes): the part of the note's amount set against what its invoice still had to
    collect by direct debit (that invoice is debited that much less); the rest of the note became
    account credit."""

    __tablename__ = "invoices"
    __table_args__ = (
        Index("ix_invoices_customer_period", "customer_id", "period"),
        # the credit notes of an invoice (whether one reopens its period: asked of every invoice of a run)
        Index("ix_invoices_corrects_invoice_id", "corrects_invoice_id"),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("billing_runs.id", ondelete="CASCADE"), index=True)
    number: Mapped[str] = mapped_column(String(30), unique=True)
    kind: Mapped[str] = mapped_column(String(20), default="invoice")  # invoice | credit_note
    status: Mapped[str] = mapped_column(String(20))  # draft | issued
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    period: Mapped[str] = mapped_column(String(7))
    invoice_date: Mapped[date] = mapped_column(Date)
    due_date: Mapped[date] = mapped_column(Date)
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    total_excl_cents: Mapped[int] = mapped_column(BigInteger)
    total_vat_cents: Mapped[int] = mapped_column(BigInteger)
    total_incl_cents: Mapped[int] = mapped_column(BigInteger)
    credit_applied_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    net_payable_cents: Mapped[int] = mapped_column(BigInteger)
    previous_amount_cents: Mapped[int | None] = mapped_column(BigInteger)
    corrects_invoice_id: Mapped[int | None] = mapped_column(BigInteger)
    # a credit note that reopens its invoice's period: what the invoice billed is billed again
    reopens_period: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    collection_offset_cents: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    document: Mapped[str | None] = mapped_column(String(500))
    #: how the issued document asks to be paid: ``direct_debit`` (the customer paid by direct debit
    #: and had an active mandate at issue) or ``transfer``; None for drafts. Fixed at issue: only
    #: invoices issued ``direct_debit`` are debited, whatever the customer signs later
    payment_means: Mapped[str | None] = mapped_column(String(20))
    issued_at: Mapped[datetime | None] = mapped_column(DateTime)
    # the customer's billing identity at issue (see the class docstring)
    customer_name: Mapped[str | None] = mapped_column(String(200))
    customer_address_line1: Mapped[str | None] = mapped_column(String(200))
    customer_address_line2: Mapped[str | None] = mapped_column(String(200))
    customer_postcode: Mapped[str | None] = mapped_column(String(20))
    customer_city: Mapped[str | None] = mapped_column(String(100))
    customer_country: Mapped[str | None] = mapped_column(String(2))
    customer_vat_number: Mapped[str | None] = mapped_column(String(20))
    customer_siren: Mapped[str | None] = mapped_column(String(9))
    customer_service_address_line1: Mapped[str | None] = mapped_column(String(200))
    customer_service_address_line2: Mapped[str | None] = mapped_column(String(200))
    customer_service_postcode: Mapped[str | None] = mapped_column(String(20))
    customer_service_city: Mapped[str | None] = mapped_column(String(100))
    customer_service_country: Mapped[str | None] = mapped_column(String(2))
    vat_category: Mapped[str | None] = mapped_column(String(2))
    vat_on_debits: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class InvoiceItem(Base):
    """A line of an invoice: ``type`` one_off, recurring, prorated, consumption or credit;
    amounts in cents excluding VAT. A subscription's lines name it (``subscription_id``) and
    the days of service they bill (negative amount: days given back)."""

    __tablename__ = "invoice_items"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(20))
    description: Mapped[str] = mapped_column(String(300))
    product_code: Mapped[str | None] = mapped_column(String(40))
    zone_code: Mapped[str | None] = mapped_column(String(40))
    quantity: Mapped[Decimal] = mapped_column(Numeric(14, 4))
    unit_price_cents: Mapped[int | None] = mapped_column(BigInteger)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    vat_rate: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    period_from: Mapped[date | None] = mapped_column(Date)
    period_to: Mapped[date | None] = mapped_column(Date)
    calls: Mapped[int | None] = mapped_column(Integer)
    seconds: Mapped[int | None] = mapped_column(BigInteger)
    one_off_id: Mapped[int | None] = mapped_column(Integer)
    #: the subscription a recurring or prorated line bills (its service days: period_from to period_to)
    subscription_id: Mapped[int | None] = mapped_column(Integer, index=True)
    #: the line's VAT category (UNCL 5305: S, E, AE, O; empty for a credit line, which bears no VAT,
    #: and for lines built before it was recorded)
    vat_category: Mapped[str | None] = mapped_column(String(2))


class InvoiceVat(Base):
    """VAT of an invoice by rate and category: ``vat_cents`` = round half up(``base_cents`` x rate
    / 100). ``vat_category`` (UNCL 5305): ``S`` standard (French VAT), ``E`` exempt (a 0 % item
    of a French invoice), ``AE`` reverse charge, ``O`` outside the scope of French VAT;
    ``exemption_reason_code`` (the CEF VATEX list, EN 16931 BT-121): ``VATEX-EU-AE``,
    ``VATEX-EU-O``, empty for ``S`` (the reason's text, in the document's language, comes from
    :data:`workbench.invoicing.vat.EXEMPTION_REASONS`). A document has one category per rate."""

    __tablename__ = "invoice_vat"
    __table_args__ = (UniqueConstraint("invoice_id", "vat_rate"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id", ondelete="CASCADE"))
    vat_rate: Mapped[Decimal] = mapped_column(Numeric(5, 2))
    base_cents: Mapped[int] = mapped_column(BigInteger)
    vat_cents: Mapped[int] = mapped_column(BigInteger)
    vat_category: Mapped[str] = mapped_column(String(2), default="S", server_default="S")
    exemption_reason_code: Mapped[str | None] = mapped_column(String(30))


class NumberSequence(Base):
    """The last legal number used per series (``F`` invoices, ``A`` credit notes) and year;
    locked while a production transaction numbers its documents."""

    __tablename__ = "number_sequences"
    __table_args__ = (UniqueConstraint("series", "year"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    series: Mapped[str] = mapped_column(String(5))
    year: Mapped[int] = mapped_column(Integer)
    last_number: Mapped[int] = mapped_column(BigInteger, default=0)


class CreditEntry(Base):
    """The account credit ledger: positive entries give credit (a credit note, an
    overpayment), negative ones apply it to an issued invoice (``invoice_id``)."""

    __tablename__ = "credit_entries"
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    entry_date: Mapped[date] = mapped_column(Date)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    description: Mapped[str] = mapped_column(String(200))
    invoice_id: Mapped[int | None] = mapped_column(BigInteger)


class Delivery(Base):
    """The email of an issued invoice to one recipient: ``state`` pending, sent or failed, so
    a delivery run resumed after a crash sends what is missing and nothing twice."""

    __tablename__ = "deliveries"
    __table_args__ = (UniqueConstraint("invoice_id", "recipient"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    recipient: Mapped[str] = mapped_column(String(254))
    state: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(255))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)


class SepaFile(Base):
    """A generated SEPA direct debit file (pain.008), stored in the FTP space. It is recorded,
    with its debits and its XML, ``status`` ``publishing``, before it is stored; ``published`` once
    it is in the FTP space under ``path`` (files recorded before this status existed have no
    ``xml``)."""

    __tablename__ = "sepa_files"
    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[str] = mapped_column(String(35), unique=True)
    version: Mapped[str] = mapped_column(String(20))
    path: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    transactions: Mapped[int] = mapped_column(Integer)
    total_cents: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(20), default="published", server_default="published")
    xml: Mapped[bytes | None] = mapped_column(LargeBinary)


class SepaDebit(Base):
    """One direct debit of an invoice in a SEPA file; ``sequence_type`` FRST or RCUR (a mandate
    with a debit already is RCUR). An invoice debited again (forced) keeps its earlier rows, each
    with ``replaced_by_file_id``: the file of the debit that replaced it; the current debit of an
    invoice is its row without one."""

    __tablename__ = "sepa_debits"
    id: Mapped[int] = mapped_column(primary_key=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("sepa_files.id"), index=True)
    invoice_id: Mapped[int] = mapped_column(BigInteger, index=True)
    replaced_by_file_id: Mapped[int | None] = mapped_column(ForeignKey("sepa_files.id"))
    mandate_reference: Mapped[str] = mapped_column(String(35), index=True)
    #: the debtor account debited (the IBAN of the mandate then): a later debit of the same mandate
    #: from another account carries an amendment
    iban: Mapped[str | None] = mapped_column(String(34))
    sequence_type: Mapped[str] = mapped_column(String(4))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    collection_date: Mapped[date] = mapped_column(Date)


class JobLock(Base):
    """A job that must not run twice at the same time (``name``, e.g. ``mail``), held by one run
    (``holder``: host, process and a random tag) which proves it is alive by ``heartbeat_at``
    (naive UTC). See :mod:`workbench.db.locks`."""

    __tablename__ = "job_locks"
    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    acquired_at: Mapped[datetime] = mapped_column(DateTime)
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime)



class RunApproval(Base):
    """A reviewer's approval of a pre-production run: who (``approved_by``, the logged-in
    reviewer's name, never a typed one), when (naive UTC) and why (``comment``). ``forced`` rows
    are not approvals: they record a production run issued without one, by whom and for which
    ``comment`` (the reason given with ``--force``). The run's approval is its latest row that is
    not ``forced``."""

    __tablename__ = "run_approvals"
    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("billing_runs.id", ondelete="CASCADE"), index=True)
    approved_by: Mapped[str] = mapped_column(String(100))
    approved_at: Mapped[datetime] = mapped_column(DateTime)
    comment: Mapped[str] = mapped_column(Text, default="", server_default="")
    forced: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class ReportDelivery(Base):
    """The control report of a pre-production run emailed to one recipient of the setting
    ``report_recipients``: ``state`` ``sent`` (then never sent again) or ``failed`` (``error``
    says why; sent again by the next ``workbench report``); ``attempts`` counts the tries."""

    __tablename__ = "report_deliveries"
    __table_args__ = (UniqueConstraint("run_id", "recipient"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("billing_runs.id", ondelete="CASCADE"), index=True)
    recipient: Mapped[str] = mapped_column(String(254))
    state: Mapped[str] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)
    error: Mapped[str | None] = mapped_column(Text)
