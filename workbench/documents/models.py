"""What an invoice document shows, read from the database: the models the PDF templates render.

An issued document shows the customer's identity kept when it was issued (name, address, VAT
number, SIREN, service address: :func:`customer_identity`); a draft shows the customer's record
as it is.

What French e-invoicing needs is in the model as well as what the PDF prints (the Factur-X XML is
built from the same model): ``buyer_siren``; ``service_address`` (``None`` when the service is
delivered at the billing address); ``operation_nature`` (``services``: the workbench invoices
telecommunication services only); ``vat_on_debits``; ``vat_category`` of the document (``S``,
``AE``, ``O``: :mod:`workbench.invoicing.vat`) and, per VAT row, its ``category``,
``exemption_reason_code`` (VATEX) and ``exemption_reason`` (the mention, in the document's
language), with the exact ``base_cents``, ``vat_cents`` and ``rate_value`` (``Decimal``) beside
the formatted amounts; ``cents``: the totals in cents; each line's ``amount_cents``,
``unit_price_cents``, ``quantity_value`` (a plain decimal: minutes for calls), ``unit`` (``min``
for calls) and ``vat_category``; a credit note's ``corrects`` (number) and ``corrects_date`` of the invoice
it cancels.

Amounts are written for the invoice's language (:func:`workbench.money.format_money`: ``1 234,56 €``
in French, ``€1,234.56`` in English); a call price of the annex keeps its four decimals.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
from sqlalchemy import Connection, select

from workbench.config import Settings
from workbench.db import calls as call_store
from workbench.db import ratings as rating_store
from workbench.db import schema as s
from workbench.db.frames import read_frame
from workbench.invoicing.vat import STANDARD, exemption_reason, mention_categories
from workbench.money import PRICE_SCALE, blank_if_missing, format_duration, format_money, format_number, minutes

#: the customer's service address columns (``customer_identity`` keys), in print order
SERVICE_ADDRESS = ("service_address_line1", "service_address_line2", "service_postcode", "service_city",
                   "service_country")

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
    vat_number, siren, service_address_line1 to service_country: ``schema.ISSUED_IDENTITY``): an
    issued document's own copy, taken when it was issued, so that it prints the same whatever the
    customer's record says later; a draft's is the customer's record now.
    ``row`` has the invoice's ``status`` and ``customer_*`` columns and the customer's columns."""
    issued = row["status"] == "issued" and isinstance(row.get("customer_name"), str)
    out = {}
    for column, key in s.ISSUED_IDENTITY.items():
        value = row[column] if issued else row[key]
        out[key] = None if value is None or (isinstance(value, float) and pd.isna(value)) else value
    return out


def _vat_row(v, lang: str, money) -> dict:
    """A row of the VAT breakdown (by rate and category) as the document shows it."""
    category = v.vat_category if isinstance(v.vat_category, str) else STANDARD
    code, reason = exemption_reason(category, lang)
    return {"rate": _number(v.vat_rate, lang), "base": money(v.base_cents), "amount": money(v.vat_cents),
            "rate_value": Decimal(str(v.vat_rate)), "base_cents": int(v.base_cents), "vat_cents": int(v.vat_cents),
            "category": category, "exemption_reason_code": code, "exemption_reason": reason}


def _service_address(customer: dict) -> dict | None:
    """The service address when it is given and differs from the billing address, else ``None``:
    line1, line2, postcode, city, country."""
    service = {k.removeprefix("service_").removeprefix("address_"): customer.get(k) or "" for k in SERVICE_ADDRESS}
    billing = {"line1": customer.get("address_line1") or "", "line2": customer.get("address_line2") or "",
               "postcode": customer.get("postcode") or "", "city": customer.get("city") or "",
               "country": customer.get("country") or ""}
    if not any(service.values()):
        return None
    service["country"] = service["country"] or billing["country"]
    return None if service == billing else service


def _language(language) -> str:
    """The document language of a customer: ``fr`` or ``en`` (``fr`` for anything else)."""
    return language if language in ("fr", "en") else "fr"


def _date(value) -> str:
    return "" if value is None or pd.isna(value) else pd.Timestamp(value).strftime("%Y-%m-%d")


def _quantity(value) -> str:
    """A quantity or rate as data (``5.5``: the machine's form, for the e-invoice)."""
    if value is None or pd.isna(value):
        return ""
    return format(Decimal(str(value)).normalize(), "f")


def _number(value, lang: str) -> str:
    """A quantity, rate or minutes as the document prints it in its language (``5,5`` in French)."""
    if value is None or pd.isna(value):
        return ""
    return format_number(Decimal(str(value)), lang)


#: the fixed indemnity for recovery costs of a late payment, in cents (Code de commerce art. D441-5)
RECOVERY_INDEMNITY_CENTS = 4000

#: how many last digits of a called number the call detail annex masks, and with what
MASKED_DIGITS, MASK = 4, "XXXX"


def called_number(digits, masked: bool) -> str:
    """A called number as the call detail annex prints it: E.164 (``+33612345678``), its last
    :data:`MASKED_DIGITS` digits replaced by ``XXXX`` when ``masked`` (``+3361234XXXX``), as French
    itemised bills do unless the customer asked for the numbers in full (the customer's
    ``mask_called_numbers``). A number of 4 digits or fewer is masked whole."""
    text = str(int(digits))
    if masked:
        text = text[:-MASKED_DIGITS] + MASK
    return "+" + text


def _call_details(connection: Connection, invoices: pd.DataFrame, timezone: str) -> dict[int, list[dict]]:
    """The calls each invoice bills (issued: marked with its id; drafts: the customer's unbilled
    calls of the period), for the call detail annex; called numbers masked per the customer's
    ``mask_called_numbers`` (:func:`called_number`)."""
    out: dict[int, list[dict]] = {}
    columns = (s.RatedCall.cdr_id, s.RatedCall.duration_s, s.RatedCall.zone_code, s.RatedCall.price_units)
    # (issued: its billed ratings, rows marked with its id; drafts: the customer's unbilled ratings)
    ratings = {}
    drafts = invoices[invoices["status"] != "issued"]
    # the drafts' unbilled ratings, each period's read once for the batch
    unbilled = {period: rating_store.unbilled(connection, period=str(period),
                                              customers=group["customer_id"].astype(int))
                for period, group in drafts.groupby("period")}
    for inv in invoices.itertuples(index=False):
        if inv.status == "issued":
            ratings[int(inv.id)] = read_frame(connection, select(*columns).where(s.RatedCall.invoice_id == int(inv.id)))
        else:
            of_period = unbilled[inv.period]
            ratings[int(inv.id)] = of_period[of_period["customer_id"] == int(inv.customer_id)][
                ["cdr_id", "duration_s", "zone_code", "price_units"]].reset_index(drop=True)
    # the calls of every invoice of the batch at once (their blocks read once)
    ids = np.concatenate([r["cdr_id"].to_numpy(dtype=np.int64) for r in ratings.values()] or [np.zeros(0, np.int64)])
    stored = call_store.by_id(connection, ids, ["start_utc", "called"]).set_index("id")
    for inv in invoices.itertuples(index=False):
        calls = ratings[int(inv.id)]
        if calls.empty:
            continue
        ids = calls["cdr_id"].to_numpy(dtype=np.int64)
        calls = calls.assign(start_utc=stored["start_utc"].reindex(ids).to_numpy(),
                             called=stored["called"].reindex(ids).to_numpy()).sort_values("start_utc", kind="stable")
        local = pd.to_datetime(calls["start_utc"]).dt.tz_localize("UTC").dt.tz_convert(timezone)
        masked = bool(inv.mask_called_numbers)
        out[int(inv.id)] = [{
            "when": t.strftime("%Y-%m-%d %H:%M:%S"), "called": called_number(c, masked),
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
        s.Customer.language, s.Customer.payment_method, s.Customer.siren, s.Customer.mask_called_numbers,
        *(s.Customer.__table__.c[column] for column in SERVICE_ADDRESS),
        s.Invoice.vat_category, s.Invoice.vat_on_debits,
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
    corrected_rows = connection.execute(select(s.Invoice.id, s.Invoice.number, s.Invoice.invoice_date).where(
        s.Invoice.id.in_(corrected))).all() if corrected else []
    number_of = {r.id: r.number for r in corrected_rows}
    date_of = {r.id: _date(r.invoice_date) for r in corrected_rows}
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
                # calls: their duration with its units (12 min 10 s), never a bare number
                "quantity": format_duration(int(r.seconds), lang) if r.type == "consumption" and not pd.isna(
                    r.seconds) else _number(r.quantity, lang),
                "quantity_value": _quantity(r.quantity),
                "amount_cents": int(r.amount_cents),
                "unit_price_cents": None if pd.isna(r.unit_price_cents) else int(r.unit_price_cents),
                "unit": "min" if r.type == "consumption" else "",
                "unit_price": money(r.unit_price_cents) if not pd.isna(r.unit_price_cents) else "",
                "vat_rate": _number(r.vat_rate, lang), "amount": money(r.amount_cents),
                "vat_category": r.vat_category if isinstance(r.vat_category, str) else None,
                "calls": None if pd.isna(r.calls) else int(r.calls),
                "minutes": None if pd.isna(r.seconds) else _number(minutes(int(r.seconds)), lang),
            } for r in rows.itertuples(index=False)]})
        calls = lines[lines["type"] == "consumption"]
        mandate = mandate_of.get(int(inv.customer_id))
        customer = {k: blank_if_missing(v) for k, v in customer_identity(inv._asdict()).items()}
        vat_rows = [_vat_row(v, lang, money) for v in vat_of.get(inv.id, vat.iloc[0:0]).itertuples(index=False)]
        corrects_id = None if pd.isna(inv.corrects_invoice_id) else int(inv.corrects_invoice_id)
        models[int(inv.id)] = {
            "number": inv.number, "kind": inv.kind, "lang": lang,
            "period": inv.period, "invoice_date": _date(inv.invoice_date), "due_date": _date(inv.due_date),
            "account_number": inv.account_number,
            "customer": customer, "buyer_siren": customer["siren"] or None,
            "service_address": _service_address(customer),
            "operation_nature": "services",
            "vat_category": inv.vat_category if isinstance(inv.vat_category, str) else STANDARD,
            "vat_on_debits": bool(inv.vat_on_debits),
            # the mentions of the categories without French VAT (reverse charge, outside the scope)
            "vat_mentions": [exemption_reason(c, lang)[1] for c in mention_categories(v["category"] for v in vat_rows)],
            "mask_called_numbers": bool(inv.mask_called_numbers),
            "groups": groups,
            "zones": [{"name": r.description, "calls": int(r.calls), "minutes": _number(minutes(int(r.seconds)), lang),
                       "amount": money(r.amount_cents)} for r in calls.itertuples(index=False)],
            "vat": vat_rows,
            # the totals in exact cents, beside their printed form (the Factur-X XML takes these)
            "cents": {"total_excl": int(inv.total_excl_cents), "total_vat": int(inv.total_vat_cents),
                      "total_incl": int(inv.total_incl_cents), "credit_applied": int(inv.credit_applied_cents),
                      "net_payable": int(inv.net_payable_cents)},
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
            "corrects": "" if corrects_id is None else number_of.get(corrects_id, ""),
            "corrects_date": "" if corrects_id is None else date_of.get(corrects_id, ""),
            # the fixed indemnity for recovery costs (Code de commerce art. L441-10, D441-5): 40 EUR
            "recovery_indemnity": money(RECOVERY_INDEMNITY_CENTS),
            "set_off": money(inv.collection_offset_cents) if inv.collection_offset_cents else "",
            "to_credit": money(-int(inv.total_incl_cents) - int(inv.collection_offset_cents))
            if inv.kind == "credit_note" and -int(inv.total_incl_cents) > int(inv.collection_offset_cents) else "",
            "mandate": None if mandate is None else {
                "reference": mandate.reference, "iban_masked": mandate.iban[:4] + " **** " + mandate.iban[-4:]},
        }
    return [models[i] for i in ids if i in models]

