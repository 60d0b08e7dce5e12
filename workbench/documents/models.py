"""What an invoice document shows, read from the database: the models the PDF templates render.

An issued document shows the customer's identity kept when it was issued (name, address, VAT
number: :func:`customer_identity`); a draft shows the customer's record as it is.

Amounts are written for the invoice's language (:func:`workbench.money.format_money`: ``1 234,56 €``
in French, ``€1,234.56`` in English); a call price of the annex keeps its four decimals.
"""

from __future__ import annotations

from decimal import Decimal

import pandas as pd
from sqlalchemy import Connection, select

from workbench.config import Settings
from workbench.db import schema as s
from workbench.db.frames import read_frame
from workbench.money import PRICE_SCALE, blank_if_missing, format_money, minutes

TYPES = ["one_off", "recurring", "prorated", "consumption", "credit", "adjustment"]  # adjustment: a partial credit note


def operator_identity(settings: Settings) -> dict:
    return {
        "name": settings.operator_name, "address": settings.operator_address, "siren": settings.operator_siren,
        "vat": settings.operator_vat, "capital": settings.operator_capital, "email": settings.operator_email,
        "iban": settings.sepa_creditor_iban, "bic": settings.sepa_creditor_bic,
        "penalty_rate": settings.late_penalty_rate,
    }


def customer_identity(row: dict) -> dict:
    """The customer a document shows (name, address_line1, address_line2, postcode, city, country,
    vat_number): an issued document's own copy, taken when it was issued, so that it prints the
    same whatever the customer's record says later; a draft's is the customer's record now.
    ``row`` has the invoice's ``status`` and ``customer_*`` columns and the customer's columns."""
    issued = row["status"] == "issued" and isinstance(row.get("customer_name"), str)
    out = {}
    for column, key in s.ISSUED_IDENTITY.items():
        value = row[column] if issued else row[key]
        out[key] = None if value is None or (isinstance(value, float) and pd.isna(value)) else value
    return out


def _language(language) -> str:
    """The document language of a customer: ``fr`` or ``en`` (``fr`` for anything else)."""
    return language if language in ("fr", "en") else "fr"


def _date(value) -> str:
    return "" if value is None or pd.isna(value) else pd.Timestamp(value).strftime("%Y-%m-%d")


def _quantity(value) -> str:
    if value is None or pd.isna(value):
        return ""
    return format(Decimal(str(value)).normalize(), "f")


def _call_details(connection: Connection, invoices: pd.DataFrame, timezone: str) -> dict[int, list[dict]]:
    """The calls each invoice bills (issued: marked with its id; drafts: the customer's unbilled
    calls of the period), for the call detail annex."""
    out: dict[int, list[dict]] = {}
    columns = (s.Cdr.start_utc, s.Cdr.called, s.RatedCall.duration_s, s.RatedCall.zone_code, s.RatedCall.price_units)
    for inv in invoices.itertuples(index=False):
        stmt = select(*columns).join(s.Cdr, s.Cdr.id == s.RatedCall.cdr_id).order_by(s.Cdr.start_utc)
        if inv.status == "issued":
            stmt = stmt.where(s.RatedCall.invoice_id == int(inv.id))
        else:
            stmt = stmt.where(s.RatedCall.customer_id == int(inv.customer_id), s.RatedCall.period == inv.period,
                              s.RatedCall.invoice_id.is_(None))
        calls = read_frame(connection, stmt)
        if calls.empty:
            continue
        local = pd.to_datetime(calls["start_utc"]).dt.tz_localize("UTC").dt.tz_convert(timezone)
        out[int(inv.id)] = [{
            "when": t.strftime("%Y-%m-%d %H:%M:%S"), "called": f"+{int(c)}",
            "duration": f"{int(d) // 60}:{int(d) % 60:02d}", "zone": z,
            "amount": format_money(int(u), locale=_language(inv.language), scale=PRICE_SCALE),
        } for t, c, d, z, u in zip(local, calls["called"], calls["duration_s"], calls["zone_code"],
                                    calls["price_units"], strict=True)]
    return out


def invoice_models(connection: Connection, invoice_ids: list[int], annex: bool = False,
                   timezone: str = "Europe/Paris") -> list[dict]:
    """The data each invoice document shows, in the order of ``invoice_ids`` (with the call
    detail annex when ``annex``)."""
    if not invoice_ids:
        return []
    read = read_frame
    ids = [int(i) for i in invoice_ids]
    invoices = read(connection, select(
        s.Invoice.id, s.Invoice.number, s.Invoice.kind, s.Invoice.period, s.Invoice.invoice_date, s.Invoice.due_date,
        s.Invoice.total_excl_cents, s.Invoice.total_vat_cents, s.Invoice.total_incl_cents,
        s.Invoice.credit_applied_cents, s.Invoice.net_payable_cents, s.Invoice.previous_amount_cents,
        s.Invoice.corrects_invoice_id, s.Invoice.collection_offset_cents, s.Invoice.payment_means,
        s.Invoice.customer_id, s.Invoice.status, s.Customer.account_number, s.Customer.name, s.Customer.address_line1,
        s.Customer.address_line2, s.Customer.postcode, s.Customer.city, s.Customer.country, s.Customer.vat_number,
        s.Customer.language, s.Customer.payment_method,
        *(s.Invoice.__table__.c[column] for column in s.ISSUED_IDENTITY),
    ).join(s.Customer, s.Customer.id == s.Invoice.customer_id).where(s.Invoice.id.in_(ids)))
    items = read(connection, select(s.InvoiceItem.__table__).where(s.InvoiceItem.invoice_id.in_(ids))
                 .order_by(s.InvoiceItem.invoice_id, s.InvoiceItem.position))
    vat = read(connection, select(s.InvoiceVat.__table__).where(s.InvoiceVat.invoice_id.in_(ids))
               .order_by(s.InvoiceVat.invoice_id, s.InvoiceVat.vat_rate))
    customer_ids = sorted({int(c) for c in invoices["customer_id"]})
    mandates = read(connection, select(s.Mandate.customer_id, s.Mandate.reference, s.Mandate.iban)
                    .where(s.Mandate.customer_id.in_(customer_ids), s.Mandate.status == "active")
                    .order_by(s.Mandate.signature_date))
    mandate_of = {int(m.customer_id): m for m in mandates.itertuples(index=False)}
    corrected = sorted({int(c) for c in invoices["corrects_invoice_id"].dropna()})
    number_of = dict(connection.execute(select(s.Invoice.id, s.Invoice.number).where(
        s.Invoice.id.in_(corrected))).all()) if corrected else {}
    details = _call_details(connection, invoices, timezone) if annex else {}
    items_of = {k: g for k, g in items.groupby("invoice_id")}
    vat_of = {k: g for k, g in vat.groupby("invoice_id")}
    models = {}
    for inv in invoices.itertuples(index=False):
        lang = _language(inv.language)

        def money(cents, lang=lang) -> str:
            return format_money(int(cents), locale=lang)

        lines = items_of.get(inv.id, items.iloc[0:0])
        groups = []
        for kind in TYPES:
            rows = lines[lines["type"] == kind]
            if rows.empty:
                continue
            groups.append({"type": kind, "items": [{
                "description": r.description,
                "period": (_date(r.period_from) + (" - " + _date(r.period_to) if _date(r.period_to) != _date(
                    r.period_from) else "")) if _date(r.period_from) else "",
                "quantity": _quantity(r.quantity),
                "unit_price": money(r.unit_price_cents) if not pd.isna(r.unit_price_cents) else "",
                "vat_rate": _quantity(r.vat_rate), "amount": money(r.amount_cents),
                "calls": None if pd.isna(r.calls) else int(r.calls),
                "minutes": None if pd.isna(r.seconds) else _quantity(minutes(int(r.seconds))),
            } for r in rows.itertuples(index=False)]})
        calls = lines[lines["type"] == "consumption"]
        mandate = mandate_of.get(int(inv.customer_id))
        models[int(inv.id)] = {
            "number": inv.number, "kind": inv.kind, "lang": lang,
            "period": inv.period, "invoice_date": _date(inv.invoice_date), "due_date": _date(inv.due_date),
            "account_number": inv.account_number,
            "customer": {k: blank_if_missing(v) for k, v in customer_identity(inv._asdict()).items()},
            "groups": groups,
            "zones": [{"name": r.description, "calls": int(r.calls), "minutes": _quantity(minutes(int(r.seconds))),
                       "amount": money(r.amount_cents)} for r in calls.itertuples(index=False)],
            "vat": [{"rate": _quantity(v.vat_rate), "base": money(v.base_cents), "amount": money(v.vat_cents)}
                    for v in vat_of.get(inv.id, vat.iloc[0:0]).itertuples(index=False)],
            "total_excl": money(inv.total_excl_cents), "total_vat": money(inv.total_vat_cents),
            "total_incl": money(inv.total_incl_cents),
            "credit_applied": money(inv.credit_applied_cents) if inv.credit_applied_cents else "",
            "net_payable": money(inv.net_payable_cents),
            "previous": "" if pd.isna(inv.previous_amount_cents) else money(inv.previous_amount_cents),
            # an issued document keeps the payment means it was issued with (invoices.payment_means); a
            # draft shows the customer's now
            "payment_method": inv.payment_means if isinstance(inv.payment_means, str) else inv.payment_method,
            # what the document asks for: "direct_debit" (with ``mandate``) or "transfer", as issued
            "payment_means": inv.payment_means if isinstance(inv.payment_means, str) else (
                "direct_debit" if inv.payment_method == "direct_debit" and mandate is not None else "transfer"),
            "call_details": details.get(int(inv.id), []),
            # a credit note: the invoice it corrects, what it took off that invoice's direct debit
            # and what became account credit (see workbench.billing.credit_notes)
            "corrects": "" if pd.isna(inv.corrects_invoice_id) else number_of.get(int(inv.corrects_invoice_id), ""),
            "set_off": money(inv.collection_offset_cents) if inv.collection_offset_cents else "",
            "to_credit": money(-int(inv.total_incl_cents) - int(inv.collection_offset_cents))
            if inv.kind == "credit_note" and -int(inv.total_incl_cents) > int(inv.collection_offset_cents) else "",
            "mandate": None if mandate is None else {
                "reference": mandate.reference, "iban_masked": mandate.iban[:4] + " **** " + mandate.iban[-4:]},
        }
    return [models[i] for i in ids if i in models]

