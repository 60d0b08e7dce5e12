"""The sample operator's rate plan: zones, rates, French and international destinations, products."""

from __future__ import annotations

import phonenumbers
from phonenumbers import PhoneNumberType, geocoder

PLAN = "PRO-2026"


PERIOD = "2026-10"


TIMEZONE = "Europe/Paris"


ZONES = {
    "NAT_FIXED": "France fixe", "NAT_MOBILE": "France mobile", "NAT_VOIP": "France VoIP (09)",
    "NAT_FREE": "Numéros gratuits", "NAT_SHARED": "Numéros à coût partagé",
    "NAT_PREMIUM": "Numéros surtaxés", "EU": "Europe fixe", "EU_MOBILE": "Europe mobile",
    "NORTH_AMERICA": "Amérique du Nord", "WORLD": "Reste du monde",
    "SATELLITE": "Satellite et réseaux internationaux",
}


# plan, zone, band, connect_fee, charge_unanswered, intervals
RATES = [
    ("NAT_FIXED", "peak", "0", "no", "0:0.03/60 60:0.03/1"),
    ("NAT_FIXED", "offpeak", "0", "no", "0:0.015/60 60:0.015/1"),
    ("NAT_VOIP", "*", "0", "no", "0:0.02/60 60:0.02/1"),
    ("NAT_MOBILE", "peak", "0.05", "no", "0:0.12/30 30:0.12/1"),
    ("NAT_MOBILE", "offpeak", "0.05", "no", "0:0.08/30 30:0.08/1"),
    ("NAT_FREE", "*", "0", "no", "0:0/60"),
    ("NAT_SHARED", "*", "0.08", "no", "0:0.06/60 60:0.06/1"),
    ("NAT_PREMIUM", "*", "0.80", "no", "0:0.40/60 60:0.20/10"),
    ("EU", "peak", "0.10", "no", "0:0.15/60 60:0.15/1"),
    ("EU", "offpeak", "0.10", "no", "0:0.10/60 60:0.10/1"),
    ("EU_MOBILE", "*", "0.10", "no", "0:0.25/60 60:0.25/1"),
    ("NORTH_AMERICA", "*", "0.10", "no", "0:0.12/60 60:0.12/1"),
    ("WORLD", "*", "0.20", "no", "0:0.60/60 60:0.60/30"),
    ("SATELLITE", "*", "1.00", "yes", "0:4.50/60"),
]


EU_REGIONS = {
    "AT", "BE", "BG", "CH", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "GB", "GR", "HR", "HU",
    "IE", "IS", "IT", "LI", "LT", "LU", "LV", "MC", "MT", "NL", "NO", "PL", "PT", "RO", "SE",
    "SI", "SK", "AD", "SM",
}


SATELLITE_CODES = {870, 881, 882, 883}


PRODUCTS = [
    # code, name, kind, category, price, vat_rate
    ("LINE_PRO", "Ligne fixe pro (SIP)", "recurring", "service", "19.90", "20"),
    ("PBX_SEAT", "Poste Centrex", "recurring", "service", "6.50", "20"),
    ("NAT_UNLIMITED", "Option national fixe illimité", "recurring", "service", "9.90", "20"),
    ("MOBILE_1000", "Option 1 000 min vers les mobiles", "recurring", "service", "14.90", "20"),
    ("EUROPE_200", "Option 200 min vers l'Europe", "recurring", "service", "12.00", "20"),
    ("SUPPORT_PLUS", "Support premium 24/7", "recurring", "service", "29.00", "20"),
    ("INSTALL", "Frais de mise en service", "one_off", "installation", "149.00", "20"),
    ("DEPOSIT", "Dépôt de garantie", "one_off", "deposit", "100.00", "0"),
    ("HANDSET", "Téléphone IP Yealink T54W", "one_off", "accessory", "189.00", "20"),
    ("HEADSET", "Casque DECT", "one_off", "accessory", "79.90", "20"),
]


ALLOWANCES = [
    ("NAT_UNLIMITED", "NAT_FIXED", ""), ("NAT_UNLIMITED", "NAT_VOIP", ""),
    ("MOBILE_1000", "NAT_MOBILE", "1000"), ("EUROPE_200", "EU", "200"),
]


def _nsn_prefix(region: str, kind, length: int) -> str | None:
    example = phonenumbers.example_number_for_type(region, kind)
    if example is None:
        return None
    return str(example.national_number)[:length]


def _country_destinations() -> list[tuple[str, str, str]]:
    rows = []
    for code, regions in sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items()):
        if code == 33:
            continue
        main = regions[0]
        if main == "001":
            zone = "SATELLITE" if code in SATELLITE_CODES else "WORLD"
            rows.append((str(code), f"Réseau international +{code}", zone))
            continue
        example = phonenumbers.example_number(main)
        name = (geocoder.country_name_for_number(example, "fr") if example else "") or main
        zone = "EU" if main in EU_REGIONS else "NORTH_AMERICA" if code == 1 else "WORLD"
        rows.append((str(code), name, zone))
        if main in EU_REGIONS:
            fixed = _nsn_prefix(main, PhoneNumberType.FIXED_LINE, 3) or ""
            mobile = _nsn_prefix(main, PhoneNumberType.MOBILE, 3) or ""
            length = next((n for n in (1, 2, 3) if mobile[:n] != fixed[:n]), 0)
            if mobile and length:
                rows.append((f"{code}{mobile[:length]}", f"{name} mobile", "EU_MOBILE"))
    return rows


def plan_rows() -> dict[str, list[tuple]]:
    """The sample rate plan's CSV rows, by file."""
    dest = [("33", "France", "NAT_FIXED")]
    regions = {"1": "Île-de-France", "2": "Nord-Ouest", "3": "Nord-Est", "4": "Sud-Est", "5": "Sud-Ouest"}
    for digit, region in regions.items():
        dest += [(f"33{digit}{d}", f"France fixe {region} 0{digit}{d}", "NAT_FIXED") for d in range(10)]
    dest += [(f"33{m}{d}", f"France mobile 0{m}{d}", "NAT_MOBILE") for m in (6, 7) for d in range(10)]
    dest += [(f"339{d}", f"France VoIP 09{d}", "NAT_VOIP") for d in range(10)]
    dest += [(f"3380{d}", f"Numéro gratuit 080{d}", "NAT_FREE") for d in range(6)]
    dest += [(f"3380{d}", f"Numéro au prix d'un appel 080{d}", "NAT_FIXED") for d in range(6, 10)]
    dest += [(f"338{d}", f"Numéro à coût partagé 08{d}", "NAT_SHARED") for d in (1, 2)]
    dest += [(f"3389{d}", f"Numéro surtaxé 089{d}", "NAT_PREMIUM") for d in range(10)]
    dest += _country_destinations()
    return {
        "rate_plans": [(PLAN, "Offre Pro 2026", "EUR", TIMEZONE, "FR", "offpeak")],
        "zones": [(PLAN, code, name) for code, name in ZONES.items()],
        "destinations": [(PLAN, *d) for d in dest],
        "time_bands": [(PLAN, "peak", "mon,tue,wed,thu,fri", "08:00", "20:00")],
        "rates": [(PLAN, *r) for r in RATES],
        "products": PRODUCTS,
        "allowances": ALLOWANCES,
    }

