"""The data model (SQLAlchemy 2). One schema for SQLite and PostgreSQL; Alembic migrates it.

Conventions: money columns are integers carrying their unit in the name (``_cents`` for invoice
money, ``_units`` for 1/10,000 of the currency used by call prices); VAT rates are exact
``Numeric`` percentages; timestamps are naive UTC; dates are the operator's local dates and an
``end_date`` is the last day included.
"""

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
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.expression import false

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class RatePlan(Base):
    __tablename__ = "rate_plans"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/Paris")
    holiday_country: Mapped[str] = mapped_column(String(2), default="FR")
    default_band: Mapped[str] = mapped_column(String(20), default="offpeak")


class Zone(Base):
    __tablename__ = "zones"
    __table_args__ = (UniqueConstraint("plan_id", "code"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("rate_plans.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))


class Destination(Base):
    __tablename__ = "destinations"
    __table_args__ = (UniqueConstraint("plan_id", "prefix"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("rate_plans.id", ondelete="CASCADE"))
    prefix: Mapped[str] = mapped_column(String(15))
    name: Mapped[str] = mapped_column(String(200))
    zone_code: Mapped[str] = mapped_column(String(40))


class TimeBand(Base):
    """A band applies on its weekdays (0 = Monday) from ``start_minute`` to ``end_minute``
    (local time, minutes after midnight). Public holidays count as Sundays; any time no band
    covers gets the plan's ``default_band``."""

    __tablename__ = "time_bands"
    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("rate_plans.id", ondelete="CASCADE"))
    band: Mapped[str] = mapped_column(String(20))
    weekdays: Mapped[str] = mapped_column(String(20))
    start_minute: Mapped[int] = mapped_column(Integer)
    end_minute: Mapped[int] = mapped_column(Integer)


class Rate(Base):
    """The price of a zone in a band (``band`` ``*`` for any band)."""

    __tablename__ = "rates"
    __table_args__ = (UniqueConstraint("plan_id", "zone_code", "band"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("rate_plans.id", ondelete="CASCADE"))
    zone_code: Mapped[str] = mapped_column(String(40))
    band: Mapped[str] = mapped_column(String(20), default="*")
    connect_fee_units: Mapped[int] = mapped_column(BigInteger, default=0)
    charge_unanswered: Mapped[bool] = mapped_column(Boolean, default=False)


class RateInterval(Base):
    """From second ``from_second`` of a call on: ``price_per_minute_units`` per minute, billed in
    steps of ``increment_s`` seconds."""

    __tablename__ = "rate_intervals"
    __table_args__ = (UniqueConstraint("rate_id", "from_second"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    rate_id: Mapped[int] = mapped_column(ForeignKey("rates.id", ondelete="CASCADE"))
    from_second: Mapped[int] = mapped_column(Integer)
    price_per_minute_units: Mapped[int] = mapped_column(BigInteger)
    increment_s: Mapped[int] = mapped_column(Integer)


class Customer(Base):
    __tablename__ = "customers"
    id: Mapped[int] = mapped_column(primary_key=True)
    account_number: Mapped[str] = mapped_column(String(20), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    address_line1: Mapped[str] = mapped_column(String(200), default="")
    address_line2: Mapped[str] = mapped_column(String(200), default="")
    postcode: Mapped[str] = mapped_column(String(20), default="")
    city: Mapped[str] = mapped_column(String(100), default="")
    country: Mapped[str] = mapped_column(String(2), default="FR")
    vat_number: Mapped[str | None] = mapped_column(String(20))
    language: Mapped[str] = mapped_column(String(2), default="fr")
    payment_method: Mapped[str] = mapped_column(String(20), default="transfer")
    billing_group: Mapped[str] = mapped_column(String(40), default="default")
    rate_plan_id: Mapped[int] = mapped_column(ForeignKey("rate_plans.id"))


class Contact(Base):
    __tablename__ = "contacts"
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254))
    invoice_recipient: Mapped[bool] = mapped_column(Boolean, default=False)


class Line(Base):
    """A calling number of a customer, from ``valid_from`` to ``valid_to`` (local dates,
    inclusive; open-ended when ``valid_to`` is empty)."""

    __tablename__ = "lines"
    __table_args__ = (Index("ix_lines_number", "number"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    number: Mapped[str] = mapped_column(String(16))
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)


class Product(Base):
    """A catalogue item: ``kind`` is ``one_off`` or ``recurring`` (monthly); ``category`` says
    what it is (installation, deposit, accessory, service, ...)."""

    __tablename__ = "products"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    category: Mapped[str] = mapped_column(String(40))
    price_cents: Mapped[int] = mapped_column(BigInteger)
    vat_rate: Mapped[Decimal] = mapped_column(Numeric(5, 2))


class Allowance(Base):
    """Calls to ``zone_code`` included in a product, ``seconds`` per unit subscribed and month
    (empty: unlimited)."""

    __tablename__ = "allowances"
    __table_args__ = (UniqueConstraint("product_id", "zone_code"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    zone_code: Mapped[str] = mapped_column(String(40))
    seconds: Mapped[int | None] = mapped_column(BigInteger)


class Subscription(Base):
    __tablename__ = "subscriptions"
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date | None] = mapped_column(Date)
    price_override_cents: Mapped[int | None] = mapped_column(BigInteger)


class OneOffCharge(Base):
    __tablename__ = "one_off_charges"
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    charge_date: Mapped[date] = mapped_column(Date)
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    price_override_cents: Mapped[int | None] = mapped_column(BigInteger)
    description: Mapped[str] = mapped_column(String(200), default="")
    invoice_id: Mapped[int | None] = mapped_column(BigInteger)


class Mandate(Base):
    """A SEPA direct debit mandate."""

    __tablename__ = "mandates"
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    reference: Mapped[str] = mapped_column(String(35), unique=True)
    signature_date: Mapped[date] = mapped_column(Date)
    iban: Mapped[str] = mapped_column(String(34))
    bic: Mapped[str] = mapped_column(String(11))
    status: Mapped[str] = mapped_column(String(20), default="active")


class CdrFile(Base):
    __tablename__ = "cdr_files"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    format: Mapped[str] = mapped_column(String(20))
    loaded_at: Mapped[datetime] = mapped_column(DateTime)
    records: Mapped[int] = mapped_column(Integer)
    accepted: Mapped[int] = mapped_column(Integer)
    rejected: Mapped[int] = mapped_column(Integer)


class Cdr(Base):
    """An accepted call. A call is the same call whatever file brought it: same calling and
    called numbers, start second and duration."""

    __tablename__ = "cdrs"
    __table_args__ = (
        UniqueConstraint("calling", "called", "start_utc", "duration_s", name="uq_cdrs_call"),
        Index("ix_cdrs_start_utc", "start_utc"),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("cdr_files.id"))
    line_no: Mapped[int] = mapped_column(Integer)
    start_utc: Mapped[datetime] = mapped_column(DateTime)
    # E.164 numbers as their digits (+33612345678 -> 33612345678): E.164 digits never start
    # with 0 and are at most 15, so the integer is exact; compact, and rated without parsing
    calling: Mapped[int] = mapped_column(BigInteger)
    called: Mapped[int] = mapped_column(BigInteger)
    duration_s: Mapped[int] = mapped_column(Integer)
    switch_id: Mapped[str] = mapped_column(String(64), default="")


class CdrReject(Base):
    """A CDR record that was not accepted, with the reason."""

    __tablename__ = "cdr_rejects"
    __table_args__ = (Index("ix_cdr_rejects_file_id", "file_id"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("cdr_files.id"))
    line_no: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(40))
    message: Mapped[str] = mapped_column(Text)
    raw: Mapped[str] = mapped_column(Text)


class RatedCall(Base):
    """The rating of one call. ``invoice_id`` is set when a production invoice bills it; such a
    rating is never replaced by a re-rating."""

    __tablename__ = "rated_calls"
    __table_args__ = (Index("ix_rated_calls_period", "period"),)
    # the call is the key: one rating per call (and on SQLite no second index to keep up)
    cdr_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )
    period: Mapped[str] = mapped_column(String(7))
    customer_id: Mapped[int] = mapped_column(Integer)
    destination_prefix: Mapped[str] = mapped_column(String(15))
    zone_code: Mapped[str] = mapped_column(String(40))
    band: Mapped[str] = mapped_column(String(20))
    duration_s: Mapped[int] = mapped_column(Integer)
    allowance_s: Mapped[int] = mapped_column(Integer)
    price_units: Mapped[int] = mapped_column(BigInteger)
    rate_id: Mapped[int | None] = mapped_column(Integer)
    rule: Mapped[str] = mapped_column(String(40))
    rated_at: Mapped[datetime] = mapped_column(DateTime)
    invoice_id: Mapped[int | None] = mapped_column(BigInteger)


class RatingError(Base):
    """A call of a period that could not be rated, with the cause."""

    __tablename__ = "rating_errors"
    __table_args__ = (Index("ix_rating_errors_period", "period"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    cdr_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    period: Mapped[str] = mapped_column(String(7))
    reason: Mapped[str] = mapped_column(String(40))
    message: Mapped[str] = mapped_column(Text)


class BillingRun(Base):
    """A billing run: ``kind`` ``preprod`` (drafts, changes nothing production depends on) or
    ``production`` (issued invoices). ``options`` is JSON text (customers, advance/arrears, pdfs);
    ``fingerprint`` is JSON text of the hashes of the run's inputs, by part."""

    __tablename__ = "billing_runs"
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


class Invoice(Base):
    """An invoice or credit note. Drafts belong to a preprod run (numbered ``PRE-<run>-0001``);
    issued documents carry a legal number and are never changed afterwards."""

    __tablename__ = "invoices"
    __table_args__ = (Index("ix_invoices_customer_period", "customer_id", "period"),)
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
    document: Mapped[str | None] = mapped_column(String(500))
    issued_at: Mapped[datetime | None] = mapped_column(DateTime)


class InvoiceItem(Base):
    """A line of an invoice: ``type`` one_off, recurring, prorated, consumption or credit;
    amounts in cents excluding VAT."""

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


class InvoiceVat(Base):
    """VAT of an invoice by rate: ``vat_cents`` = round half up(``base_cents`` x rate / 100)."""

    __tablename__ = "invoice_vat"
    __table_args__ = (UniqueConstraint("invoice_id", "vat_rate"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id", ondelete="CASCADE"))
    vat_rate: Mapped[Decimal] = mapped_column(Numeric(5, 2))
    base_cents: Mapped[int] = mapped_column(BigInteger)
    vat_cents: Mapped[int] = mapped_column(BigInteger)


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
    """A generated SEPA direct debit file (pain.008), stored in the FTP space."""

    __tablename__ = "sepa_files"
    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[str] = mapped_column(String(35), unique=True)
    version: Mapped[str] = mapped_column(String(20))
    path: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    transactions: Mapped[int] = mapped_column(Integer)
    total_cents: Mapped[int] = mapped_column(BigInteger)


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
