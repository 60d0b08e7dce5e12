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


def mask_iban(iban: str | None) -> str:
    """An IBAN as a screen shows it: the country code and check digits, then the last four
    characters, the rest hidden (``FR76 •••• 0189``); ``""`` for none.

    >>> mask_iban("FR7630006000011234567890189")
    'FR76 •••• 0189'
    """
    compact = "".join(str(iban or "").split()).upper()
    if not compact:
        return ""
    return f"{compact[:4]} •••• {compact[-4:]}" if len(compact) > 8 else "••••"


def customer_lines(engine: Engine, account_number: str) -> pd.DataFrame:
    """A customer's phone lines: ``number``, ``valid_from``, ``valid_to`` (``None``: still
    valid), by start."""
    with engine.connect() as connection:
        return read_frame(connection, select(s.Line.number, s.Line.valid_from, s.Line.valid_to)
                          .join(s.Customer, s.Customer.id == s.Line.customer_id)
                          .where(s.Customer.account_number == account_number)
                          .order_by(s.Line.valid_from, s.Line.number))


def customer_documents(engine: Engine, account_number: str) -> pd.DataFrame:
    """A customer's issued invoices and credit notes (oldest first) with what became of them:
    ``number``, ``kind``, ``period``, ``invoice_date``, ``total_incl_cents``,
    ``net_payable_cents``, ``document`` (its PDF in the FTP space, or None), ``emailed``
    (``recipient (state, sent at or last error)`` of each delivery joined by ``; ``, or why no
    delivery is planned), ``direct_debit`` (the SEPA file (message id, date) that debits it, or
    why none does)."""
    with engine.connect() as connection:
        customer = connection.execute(select(s.Customer.id, s.Customer.payment_method)
                                      .where(s.Customer.account_number == account_number)).first()
        if customer is None:
            raise InputError(f"unknown account number {account_number!r}", code="unknown_account")
        documents = read_frame(connection, select(
            s.Invoice.id, s.Invoice.number, s.Invoice.kind, s.Invoice.period, s.Invoice.invoice_date,
            s.Invoice.total_incl_cents, s.Invoice.net_payable_cents, s.Invoice.document,
        ).where(s.Invoice.customer_id == customer.id, s.Invoice.status == "issued").order_by(s.Invoice.id))
        ids = [int(i) for i in documents["id"]]
        deliveries = read_frame(connection, select(
            s.Delivery.invoice_id, s.Delivery.recipient, s.Delivery.state, s.Delivery.sent_at, s.Delivery.last_error,
        ).where(s.Delivery.invoice_id.in_(ids)).order_by(s.Delivery.invoice_id, s.Delivery.recipient))
        debits = read_frame(connection, select(
            s.SepaDebit.invoice_id, s.SepaFile.message_id, s.SepaFile.path, s.SepaDebit.collection_date,
        ).join(s.SepaFile, s.SepaFile.id == s.SepaDebit.file_id)
            .where(s.SepaDebit.invoice_id.in_(ids), s.SepaDebit.replaced_by_file_id.is_(None)))
        recipients = connection.execute(select(s.Contact.email).where(
            s.Contact.customer_id == customer.id, s.Contact.invoice_recipient.is_(True))).scalars().all()

    def emailed(invoice_id: int) -> str:
        rows = deliveries[deliveries["invoice_id"] == invoice_id]
        if rows.empty:
            return "not emailed: no contact flagged invoice recipient" if not recipients else "not emailed yet"
        parts = []
        for row in rows.itertuples(index=False):
            if row.state == "sent" and row.sent_at is not None and not pd.isna(row.sent_at):
                parts.append(f"{row.recipient} (sent {pd.Timestamp(row.sent_at):%Y-%m-%d %H:%M} UTC)")
            elif isinstance(row.last_error, str) and row.last_error:
                parts.append(f"{row.recipient} ({row.state}: {row.last_error})")
            else:
                parts.append(f"{row.recipient} ({row.state})")
        return "; ".join(parts)

    def debited(invoice_id: int, kind: str, net_payable: int) -> str:
        rows = debits[debits["invoice_id"] == invoice_id]
        if len(rows):
            row = rows.iloc[-1]
            return f"{row['path']} ({row['message_id']}, collected on {pd.Timestamp(row['collection_date']):%Y-%m-%d})"
        if customer.payment_method != "direct_debit":
            return f"not debited: pays by {str(customer.payment_method).replace('_', ' ')}"
        if kind != "invoice" or net_payable <= 0:
            return "not debited: nothing to collect"
        return "not in a SEPA file yet"

    documents["emailed"] = [emailed(int(i)) for i in documents["id"]]
    documents["direct_debit"] = [debited(int(i), k, int(n)) for i, k, n in
                                 zip(documents["id"], documents["kind"], documents["net_payable_cents"], strict=True)]
    return documents.drop(columns="id")


def monthly_billed(engine: Engine, account_number: str, months: int = 12) -> pd.DataFrame:
    """What a customer was billed (issued invoices and credit notes, excl. VAT) in the last
    ``months`` periods up to their latest one, by period and item type: ``period`` (every
    period of the window, a month without anything 0), one int64 column of cents per item type
    of :data:`~workbench.invoicing.report.TYPE_LABELS` (``one_off``, ``recurring``, ``prorated``,
    ``consumption``, ``credit``). Empty (no row) for a customer never invoiced."""
    from workbench.invoicing.report import TYPE_LABELS
    from workbench.period import Period

    with engine.connect() as connection:
        items = read_frame(connection, select(s.Invoice.period, s.InvoiceItem.type, s.InvoiceItem.amount_cents)
                           .join(s.Invoice, s.Invoice.id == s.InvoiceItem.invoice_id)
                           .join(s.Customer, s.Customer.id == s.Invoice.customer_id)
                           .where(s.Customer.account_number == account_number, s.Invoice.status == "issued"))
    columns = list(TYPE_LABELS)
    if items.empty:
        return pd.DataFrame(columns=["period", *columns])
    last = Period.parse(max(items["period"]))
    window = [last]
    while len(window) < months:
        window.insert(0, window[0].previous())
    table = items.pivot_table(index="period", columns="type", values="amount_cents", aggfunc="sum", fill_value=0)
    table = table.reindex(index=[str(p) for p in window], columns=columns, fill_value=0).fillna(0)
    return table.astype("int64").rename_axis(index="period", columns=None).reset_index()
