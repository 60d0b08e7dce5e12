"""Reference data: rate plans (zones, destinations, time bands, rates), customers, contacts,
lines, the catalogue, subscriptions, one-off charges and SEPA mandates."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.expression import true

from workbench.db.schema.base import Base


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
    """From second ``from_second`` of a call on: ``price_per_minute_micros`` per minute, in
    1/1,000,000 of the currency (``RATE_SCALE``), billed in steps of ``increment_s`` seconds."""

    __tablename__ = "rate_intervals"
    __table_args__ = (UniqueConstraint("rate_id", "from_second"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    rate_id: Mapped[int] = mapped_column(ForeignKey("rates.id", ondelete="CASCADE"))
    from_second: Mapped[int] = mapped_column(Integer)
    price_per_minute_micros: Mapped[int] = mapped_column(BigInteger)
    increment_s: Mapped[int] = mapped_column(Integer)


class Customer(Base):
    """A customer (an account). ``siren``: the French company identification number (9 digits,
    checked with ``stdnum.fr.siren``), empty for consumers and foreign companies. ``business``:
    the customer is a taxable person (a company, ``True``) or a consumer (``False``); empty: a
    company when it has a VAT number (it decides, with ``country`` and ``vat_number``, the VAT
    category of its invoices: :mod:`workbench.invoicing.vat`).
    ``service_*``: the address where the service is delivered (the line's site), when it differs
    from the billing address (empty: the same). ``mask_called_numbers``: the call detail annex
    prints the called numbers with their last four digits masked (the default of French itemised
    bills) unless the customer asked for them in full (``False``)."""

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
    siren: Mapped[str | None] = mapped_column(String(9))
    business: Mapped[bool | None] = mapped_column(Boolean)
    service_address_line1: Mapped[str | None] = mapped_column(String(200))
    service_address_line2: Mapped[str | None] = mapped_column(String(200))
    service_postcode: Mapped[str | None] = mapped_column(String(20))
    service_city: Mapped[str | None] = mapped_column(String(100))
    service_country: Mapped[str | None] = mapped_column(String(2))
    mask_called_numbers: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
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

