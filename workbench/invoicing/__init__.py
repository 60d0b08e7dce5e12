"""Invoicing: a period's subscriptions, one-off charges and rated calls into invoices.

Pure functions over frames (no database, no clock). Money is integer cents (``_cents``) in
frames, ``Decimal`` at the edges. The rounding points, in order:

1. a call's price is rounded once, half up, to 1/10,000 (rating, :mod:`workbench.rating.pricing`),
   from the exact sum of its intervals in 1/1,000,000 x seconds (per-minute rates are stored in
   micro units, ``RATE_SCALE``);
2. a consumption line (a customer's calls to one zone, of one call period: calls received after
   their period was invoiced are billed on the next invoice as lines of their own, labelled
   with their period) is the sum of its calls' prices, rounded half up to the cent;
3. a prorated line is ``quantity x unit price x active days / days in the month``, rounded half
   up to the cent; a recurring or one-off line is ``quantity x unit price``, exact. A
   subscription is billed by calendar month, and what a month costs for D of its days is
   ``amount(D)`` = quantity x unit price for the whole month, else that x D / days in the
   month rounded half up to the cent. When a month is billed in several lines (days given
   back, or added later), each line is the difference between ``amount`` of the days billed
   after it and what the month had cost before it, so a month always adds up to ``amount`` of
   its billed days, never a cent off. A give-back line cancels exactly what was charged for
   its days: 19.90 charged for October, the subscription ending on 15 October, gives back
   ``19.90 - amount(15) = 19.90 - round(19.90 x 15 / 31) = 19.90 - 9.63 = 10.27``, and the
   customer pays 9.63 for October; days given back are priced as they were billed, days added
   at today's price. Which days a run bills (its target, bounded below by the customer's
   service history so that each day is billed once, whatever the order of the runs, and no
   day before the workbench's first billed day) is described in
   :class:`~workbench.invoicing.build.BillingOptions`;
4. VAT is computed per invoice, VAT rate and category, on the sum of that rate's lines, rounded
   half up to the cent (EN 16931); an invoice's category comes from the customer
   (:mod:`workbench.invoicing.vat`): under reverse charge (``AE``) or outside the scope of French
   VAT (``O``) every line is at rate 0, so its VAT is exactly 0, nothing rounded;
5. totals are sums of those rounded parts: total excl. VAT = sum of lines, total VAT = sum of
   the VAT by rate, total incl. VAT = the two added; net payable = total incl. VAT - account
   credit applied, never below zero (unused credit is carried over); an invoice whose total is
   negative (subscription days given back) has nothing payable, and its total becomes account
   credit when it is issued.
"""

from __future__ import annotations

from workbench.invoicing.build import (
    ITEM_TYPES,
    BillingInputs,
    BillingOptions,
    Invoices,
    build_invoices,
)
from workbench.invoicing.report import REPORT_COLUMNS, compare_invoices, control_report

__all__ = [
    "ITEM_TYPES",
    "REPORT_COLUMNS",
    "BillingInputs",
    "BillingOptions",
    "Invoices",
    "build_invoices",
    "compare_invoices",
    "control_report",
]
