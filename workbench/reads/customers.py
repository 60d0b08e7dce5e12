"""A customer's profile: details, contacts, subscriptions, mandates, invoices, credit."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import Engine, select

from workbench.config import Settings
from workbench.db import schema as s
from workbench.db.frames import read_frame
from workbench.errors import InputError


def customer_profile(engine: Engine, account_number: str, settings: Settings | None = None) -> dict[str, pd.DataFrame]:
    """A customer's details, contacts, subscriptions, mandates, issued invoices and credit notes
    (with their document in the FTP space and a ``link`` to it; a credit note's
    ``collection_offset_cents`` is what it took off its invoice's direct debit), and account credit."""
    profile = _profile(engine, account_number)
    if settings is not None:
        from workbench.storage import Storage

        storage = Storage(settings.storage_url)
        profile["invoices"]["link"] = profile["invoices"]["document"].map(
            lambda d: storage.location(d) if isinstance(d, str) and d else None)
    return profile


def _profile(engine: Engine, account_number: str) -> dict[str, pd.DataFrame]:
    read = read_frame
    with engine.connect() as connection:
        details = read(connection, select(s.Customer.__table__).where(s.Customer.account_number == account_number))
        if details.empty:
            raise InputError(f"unknown account number {account_number!r}", code="unknown_account")
        cid = int(details["id"].iloc[0])
        return {
            "details": details,
            "contacts": read(connection, select(s.Contact.name, s.Contact.email, s.Contact.invoice_recipient)
                             .where(s.Contact.customer_id == cid).order_by(s.Contact.id)),
            "subscriptions": read(connection, select(
                s.Product.code, s.Product.name, s.Subscription.quantity, s.Subscription.start_date,
                s.Subscription.end_date, s.Subscription.price_override_cents, s.Product.price_cents,
            ).join(s.Product, s.Product.id == s.Subscription.product_id).where(s.Subscription.customer_id == cid)
                .order_by(s.Subscription.start_date, s.Product.code)),
            "mandates": read(connection, select(s.Mandate.reference, s.Mandate.signature_date, s.Mandate.iban,
                                                s.Mandate.bic, s.Mandate.status)
                             .where(s.Mandate.customer_id == cid).order_by(s.Mandate.signature_date)),
            "invoices": read(connection, select(
                s.Invoice.number, s.Invoice.kind, s.Invoice.period, s.Invoice.invoice_date, s.Invoice.due_date,
                s.Invoice.total_excl_cents, s.Invoice.total_vat_cents, s.Invoice.total_incl_cents,
                s.Invoice.credit_applied_cents, s.Invoice.net_payable_cents, s.Invoice.collection_offset_cents,
                s.Invoice.document,
            ).where(s.Invoice.customer_id == cid, s.Invoice.status == "issued").order_by(s.Invoice.id)),
            "credit": read(connection, select(s.CreditEntry.entry_date, s.CreditEntry.amount_cents,
                                              s.CreditEntry.description)
                           .where(s.CreditEntry.customer_id == cid).order_by(s.CreditEntry.id)),
        }



def customer_list(engine: Engine) -> pd.DataFrame:
    """Every customer's account number and name, by account number."""
    with engine.connect() as connection:
        return read_frame(connection, select(s.Customer.account_number, s.Customer.name)
                          .order_by(s.Customer.account_number))


def customer_names(engine: Engine) -> pd.DataFrame:
    """Every customer's id, account number and name, by id."""
    with engine.connect() as connection:
        return read_frame(connection, select(s.Customer.id.label("customer_id"), s.Customer.account_number,
                                             s.Customer.name).order_by(s.Customer.id))
