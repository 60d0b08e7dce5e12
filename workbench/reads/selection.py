"""Which customers a run bills: the selection text, and who is already invoiced for a period."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import Connection, select

from workbench.db import schema as s
from workbench.db.frames import read_frame
from workbench.errors import InputError


def parse_customers(text: str) -> str:
    """Check a customer selection: ``all``, ``group:NAME`` or ``accounts:C1,C2,...``."""
    text = (text or "all").strip()
    if text == "all" or (text.startswith("group:") and text[6:].strip()) or (
            text.startswith("accounts:") and any(a.strip() for a in text[9:].split(","))):
        return text
    raise InputError(f"customer selection {text!r}: expected all, group:NAME or accounts:C1,C2")


def selected_customers(connection: Connection, selection: str) -> pd.DataFrame:
    """The customers of a selection, with whether they have an active mandate."""
    selection = parse_customers(selection)
    active = select(s.Mandate.customer_id).where(s.Mandate.status == "active")
    stmt = select(
        s.Customer.id.label("customer_id"), s.Customer.account_number, s.Customer.name,
        s.Customer.address_line1, s.Customer.address_line2, s.Customer.postcode, s.Customer.city,
        s.Customer.country, s.Customer.vat_number, s.Customer.language, s.Customer.payment_method,
        s.Customer.billing_group, s.Customer.rate_plan_id, s.Customer.siren, s.Customer.business,
        s.Customer.service_address_line1, s.Customer.service_address_line2, s.Customer.service_postcode,
        s.Customer.service_city, s.Customer.service_country,
        s.Customer.id.in_(active).label("has_mandate"),
    ).order_by(s.Customer.account_number)
    if selection.startswith("group:"):
        stmt = stmt.where(s.Customer.billing_group == selection[6:].strip())
    elif selection.startswith("accounts:"):
        wanted = [a.strip() for a in selection[9:].split(",") if a.strip()]
        stmt = stmt.where(s.Customer.account_number.in_(wanted))
    customers = read_frame(connection, stmt)
    if selection.startswith("accounts:"):
        unknown = sorted(set(wanted) - set(customers["account_number"]))
        if unknown:
            raise InputError(f"unknown account numbers: {', '.join(unknown)}")
    if customers.empty:
        raise InputError(f"no customer matches {selection!r}")
    customers["has_mandate"] = customers["has_mandate"].astype(bool)
    return customers


def of_selection(column, selection: str):
    """A condition on a customer id column for a selection (a subquery: no long lists)."""
    if selection == "all":
        return column.is_not(None)
    if selection.startswith("group:"):
        return column.in_(select(s.Customer.id).where(s.Customer.billing_group == selection[6:].strip()))
    wanted = [a.strip() for a in selection[9:].split(",") if a.strip()]
    return column.in_(select(s.Customer.id).where(s.Customer.account_number.in_(wanted)))


def reopened():
    """Whether an invoice (``s.Invoice``) is cancelled by a credit note that reopens its period."""
    note = s.Invoice.__table__.alias("note")
    return select(note.c.id).where(note.c.corrects_invoice_id == s.Invoice.id,
                                   note.c.reopens_period.is_(True)).exists()


def invoiced_customers(connection: Connection, period: str, selection: str | None = None) -> set[int]:
    """The customers invoiced for ``period``: an issued invoice that no reopening credit note
    cancels."""
    query = select(s.Invoice.customer_id).where(
        s.Invoice.status == "issued", s.Invoice.kind == "invoice", s.Invoice.period == period, ~reopened())
    if selection is not None:
        query = query.where(of_selection(s.Invoice.customer_id, selection))
    return set(connection.execute(query).scalars())

