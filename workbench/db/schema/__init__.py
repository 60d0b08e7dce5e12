"""The data model (SQLAlchemy 2). One schema for SQLite and PostgreSQL; Alembic migrates it.

Conventions: money columns are integers carrying their unit in the name (``_cents`` for invoice
money, ``_units`` for 1/10,000 of the currency used by call prices); VAT rates are exact
``Numeric`` percentages; timestamps are naive UTC; dates are the operator's local dates and an
``end_date`` is the last day included.

The tables are declared by area (:mod:`.reference`, :mod:`.calls`, :mod:`.billing`); every model
is reachable from here, e.g. ``schema.Invoice``.
"""

from workbench.db.schema.base import NAMING, Base
from workbench.db.schema.billing import (
    ISSUED_IDENTITY,
    BillingRun,
    CreditEntry,
    Delivery,
    Invoice,
    InvoiceItem,
    InvoiceVat,
    JobLock,
    NumberSequence,
    ReportDelivery,
    RunApproval,
    SepaDebit,
    SepaFile,
)
from workbench.db.schema.calls import (
    CallBlock,
    CdrFile,
    CdrReject,
    RatedCall,
    RatingBlock,
    RatingError,
)
from workbench.db.schema.reference import (
    Allowance,
    Contact,
    Customer,
    Destination,
    Line,
    Mandate,
    OneOffCharge,
    Product,
    Rate,
    RateInterval,
    RatePlan,
    Subscription,
    TimeBand,
    Zone,
)

__all__ = [
    "ISSUED_IDENTITY",
    "Allowance",
    "Base",
    "BillingRun",
    "CallBlock",
    "CdrFile",
    "CdrReject",
    "Contact",
    "CreditEntry",
    "Customer",
    "Delivery",
    "Destination",
    "Invoice",
    "InvoiceItem",
    "InvoiceVat",
    "JobLock",
    "Line",
    "Mandate",
    "NAMING",
    "NumberSequence",
    "OneOffCharge",
    "Product",
    "Rate",
    "RateInterval",
    "RatePlan",
    "RatedCall",
    "RatingBlock",
    "RatingError",
    "ReportDelivery",
    "RunApproval",
    "SepaDebit",
    "SepaFile",
    "Subscription",
    "TimeBand",
    "Zone",
]
