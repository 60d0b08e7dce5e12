"""VAT territoriality of telecommunication services: which VAT category an invoice is in.

The operator is established in France and supplies telecommunication services. Where they are
taxed (the place of supply) decides the category of the invoice's items (UNCL 5305 codes, as
EN 16931 BT-118 / BT-151 want them):

* a **business customer** (a taxable person: ``business`` yes, or, when the customer's ``business``
  is empty, a customer with a VAT number) is taxed where it is established (CGI art. 259-1°;
  Directive 2006/112/EC art. 44):

  - established in **France** (or Monaco, in the French VAT territory): French VAT, category
    ``S`` at the item's rate, as before (a 0 % item of such an invoice, a deposit, is ``E``);
  - established in **another EU member state**, with a valid VAT number of a member state
    (checked with python-stdnum, ``stdnum.eu.vat``: format and check digits): the customer
    pays the VAT of its own state (reverse charge, Directive art. 196; CGI art. 283-2 for the
    French side), so the invoice bears no French VAT: category ``AE``, rate 0, with the mention
    "Autoliquidation" (Directive art. 226 (11a); CGI art. 242 nonies A, I-13°) and both VAT
    numbers. Without a valid number the business is not shown to be a taxable person: French
    VAT, ``S``, and the control report lists it (``vat_number_invalid``);
  - established **outside the EU** (Switzerland, the United Kingdom; Northern Ireland, ``XI``,
    is in the EU's VAT area for goods only): outside the scope of French VAT, category ``O``,
    with the mention "TVA non applicable, art. 259-1° du CGI";

* a **consumer** (not a taxable person) keeps French VAT, category ``S``, wherever it lives: the
  workbench bills consumers established in France; telecommunication services to consumers of
  another state are taxed there (Directive art. 58, the One-Stop Shop) and to consumers outside
  the EU follow CGI art. 259 C, neither of which it handles (README, "VAT rules").

The category is decided once per invoice, when it is built, from the customer's ``country``,
``business`` and ``vat_number``, and stored with the invoice (``invoices.vat_category``, each
line's and each VAT row's ``vat_category``), so a document rendered again shows the same. No
rounding happens here: an ``AE`` or ``O`` item has rate 0 and its VAT is exactly 0 cents
(rounding point 4 of :mod:`workbench.invoicing` gives ``round(base x 0) = 0``).
"""

from __future__ import annotations

import pandas as pd
from stdnum.eu import vat as eu_vat

#: UNCL 5305 VAT category codes used by the workbench
STANDARD, EXEMPT, REVERSE_CHARGE, OUTSIDE_SCOPE = "S", "E", "AE", "O"
CATEGORIES = (STANDARD, EXEMPT, REVERSE_CHARGE, OUTSIDE_SCOPE)

#: the countries (ISO 3166 alpha-2) of the French VAT territory the operator bills from
DOMESTIC_COUNTRIES = frozenset({"FR", "MC"})
#: the EU member states (ISO 3166 alpha-2; Greece is ``GR``, its VAT numbers start ``EL``)
EU_MEMBER_STATES = frozenset({
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE", "IT",
    "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
})

#: category -> (exemption reason code of the CEF VATEX list, EN 16931 BT-121; the mention by
#: language, BT-120, printed on the invoice)
EXEMPTION_REASONS: dict[str, tuple[str | None, dict[str, str]]] = {
    REVERSE_CHARGE: ("VATEX-EU-AE", {
        "fr": "Autoliquidation (art. 283-2 du CGI ; art. 196 de la directive 2006/112/CE)",
        "en": "Reverse charge (Article 196 of Council Directive 2006/112/EC)",
    }),
    OUTSIDE_SCOPE: ("VATEX-EU-O", {
        "fr": "TVA non applicable, art. 259-1° du CGI",
        "en": "VAT not applicable, article 259-1° of the French General Tax Code (CGI)",
    }),
    EXEMPT: (None, {
        "fr": "Non soumis à la TVA",
        "en": "Not subject to VAT",
    }),
}


def exemption_reason(category: str, language: str = "fr") -> tuple[str | None, str]:
    """The exemption reason of a VAT category: (VATEX code or None, the mention in ``language``,
    ``fr`` or ``en``; French for any other). ``S`` has none: ``(None, "")``."""
    if category not in EXEMPTION_REASONS:
        return None, ""
    code, texts = EXEMPTION_REASONS[category]
    return code, texts.get(language, texts["fr"])


def valid_eu_vat_number(number) -> bool:
    """Whether ``number`` is a VAT number of an EU member state, format and check digits
    (``stdnum.eu.vat.is_valid``: ``BE0403019261`` yes, ``BE0403019262`` no). Numbers of Northern
    Ireland (``XI``) are not: for services it is outside the EU's VAT area."""
    if not isinstance(number, str) or not number.strip():
        return False
    compact = eu_vat.compact(number)
    return not compact.upper().startswith("XI") and bool(eu_vat.is_valid(compact))


def is_business(business, vat_number) -> bool:
    """Whether a customer is a taxable person: its ``business`` (``True``/``False``), or, when
    that is missing (``None``, NA), whether it has a VAT number."""
    if business is None or (not isinstance(business, str) and pd.isna(business)):
        return isinstance(vat_number, str) and bool(vat_number.strip())
    return bool(business)


def vat_category(country, business, vat_number) -> str:
    """The VAT category of a customer's invoice (see the module docstring): ``S``, ``AE`` or
    ``O``. ``country``: ISO 3166 alpha-2 (empty: ``FR``); ``business``: a taxable person or not
    (missing: a taxable person when it has a VAT number, the evidence the reverse charge and the
    place of supply rest on); ``vat_number``: as loaded (empty: none)."""
    country = (country if isinstance(country, str) and country.strip() else "FR").strip().upper()
    if not is_business(business, vat_number) or country in DOMESTIC_COUNTRIES:
        return STANDARD
    if country in EU_MEMBER_STATES:
        number = vat_number if isinstance(vat_number, str) else ""
        prefix = eu_vat.compact(number)[:2].upper() if number.strip() else ""
        in_eu = prefix in EU_MEMBER_STATES or prefix == "EL"
        return REVERSE_CHARGE if in_eu and prefix != "FR" and valid_eu_vat_number(number) else STANDARD
    return OUTSIDE_SCOPE


def customer_categories(customers: pd.DataFrame) -> pd.Series:
    """The VAT category of each customer's invoices, indexed by ``customer_id``. ``customers``:
    customer_id and, when present, country, business, vat_number (an absent column counts as
    the customers of the workbench's first versions: ``business`` empty)."""
    def column(name):
        return customers[name] if name in customers else pd.Series([None] * len(customers), index=customers.index)

    values = [vat_category(c, b, v) for c, b, v in zip(column("country"), column("business"),
                                                       column("vat_number"), strict=True)]
    return pd.Series(values, index=customers["customer_id"].to_numpy(), dtype=object)


def item_category(invoice_category: str, vat_bp: int) -> str:
    """The category of a line of an invoice of ``invoice_category``, whose product's rate is
    ``vat_bp`` (1/100 percent): a French invoice's lines are ``S``, or ``E`` at 0 %; an ``AE``
    or ``O`` invoice's lines are all of its category (at rate 0)."""
    if invoice_category == STANDARD:
        return STANDARD if vat_bp else EXEMPT
    return invoice_category


def mention_categories(categories) -> list[str]:
    """The categories of ``categories`` that need a mention on the invoice, in the order of
    :data:`CATEGORIES` (``E``, ``AE``, ``O``)."""
    present = set(categories)
    return [c for c in CATEGORIES if c in present and c in EXEMPTION_REASONS]
