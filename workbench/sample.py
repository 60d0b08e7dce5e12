"""Deterministic generators: the sample operator in ``data/sample`` and benchmark data.

Everything is drawn from one ``numpy.random.Generator`` seeded by the caller, so the same seed
gives byte-identical files. The sample operator ("Opérateur Exemple") has:

* one rate plan (``PRO-2026``) with French numbering — geographic 01-05, mobile 06/07, VoIP 09,
  free 0800-0805, shared-cost 081/082 and premium 089 numbers — and every international country
  code of the ITU list by zone, with mobile ranges of European countries (``44`` and ``447``...);
  peak on working days 08:00-20:00, off-peak otherwise;
* about 200 business customers (a few with hostile names, as real data has), contacts, SEPA
  mandates with valid IBANs, lines, subscriptions starting and ending mid-month, one-off charges;
* one month of calls split between a native CDR file and an Asterisk ``Master.csv`` that
  overlap, with unanswered calls and records wrong on purpose (see :data:`ERRORS`).

:func:`generate_benchmark` makes the benchmark's 10 million CDRs and 50,000-prefix plan.
"""

from __future__ import annotations

import csv
import gzip
import io
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import phonenumbers
from phonenumbers import PhoneNumberType, geocoder

from workbench.period import Period
from workbench.rating.plan import RatePlan

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
#: hostile customer names: they must stay text in Excel and in PDFs
HOSTILE_NAMES = [
    '=HYPERLINK("http://attacker.example/x","Cliquez ici")',
    '<img src="http://attacker.example/pixel.png"> Boulangerie du Port',
    "+33 Conseil & Associés",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "L'Étoile du Nord <SARL> & Fils",
    "-2+3 Transports",
]
ACTIVITIES = [
    "Boulangerie", "Cabinet", "Garage", "Pharmacie", "Agence", "Atelier", "Clinique", "Hôtel",
    "Imprimerie", "Menuiserie", "Restaurant", "Studio", "Transports", "Librairie", "Laboratoire",
    "Fromagerie", "Etude notariale", "Bureau d'études", "Cave", "Salon",
]
SURNAMES = [
    "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy",
    "Moreau", "Simon", "Laurent", "Lefèvre", "Michel", "Garcia", "David", "Bertrand", "Roux",
    "Vincent", "Fournier", "Morel", "Girard", "André", "Lefebvre", "Mercier", "Dupont", "Lambert",
    "Bonnet", "François", "Martinez", "Légaré", "Noël", "Chevalier", "Gauthier", "Perrin",
]
FORMS = ["SARL", "SAS", "SA", "EURL", "SCI", "& Fils", "et Associés", ""]
STREETS = [
    "rue de la République", "avenue Jean Jaurès", "boulevard Victor Hugo", "rue du Moulin",
    "place de la Mairie", "rue Pasteur", "chemin des Vignes", "rue de l'Église",
    "avenue de la Gare", "quai des Chartrons", "rue Nationale", "allée des Tilleuls",
]
CITIES = [
    ("75011", "Paris", "1"), ("69003", "Lyon", "4"), ("13006", "Marseille", "4"),
    ("33000", "Bordeaux", "5"), ("59000", "Lille", "3"), ("44000", "Nantes", "2"),
    ("31000", "Toulouse", "5"), ("67000", "Strasbourg", "3"), ("35000", "Rennes", "2"),
    ("06000", "Nice", "4"), ("21000", "Dijon", "3"), ("92100", "Boulogne-Billancourt", "1"),
]
BANKS = [("30004", "BNPAFRPP"), ("30003", "SOGEFRPP"), ("30002", "CRLYFRPP"),
         ("20041", "PSSTFRPPPAR"), ("10278", "CMCIFR2A"), ("18206", "AGRIFRPP882")]
#: records made wrong on purpose in the sample CDR files, per 10,000
ERRORS = {"bad_date": 3, "bad_calling_number": 2, "bad_called_number": 3, "negative_duration": 2,
          "bad_duration": 2, "unknown_line": 10, "duplicate": 5}


# ---------------------------------------------------------------------------- identifiers

def luhn_digit(digits: str) -> str:
    """The Luhn check digit to append to ``digits`` (SIREN numbers)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return str((10 - total % 10) % 10)


def french_vat(siren: str) -> str:
    return f"FR{(12 + 3 * (int(siren) % 97)) % 97:02d}{siren}"


def belgian_vat(rng: np.random.Generator) -> str:
    """A Belgian enterprise number: 0 + 7 digits + (97 - those 8 digits mod 97)."""
    base = int(rng.integers(2_000_000, 9_999_999))
    return f"BE0{base:07d}{97 - base % 97:02d}"


def french_iban(bank: str, branch: str, account: str) -> str:
    """A French IBAN with a correct RIB key and ISO 13616 check digits."""
    rib = 97 - (89 * int(bank) + 15 * int(branch) + 3 * int(account)) % 97
    bban = f"{bank}{branch}{account}{rib:02d}"
    numeric = "".join(str(int(c, 36)) for c in bban + "FR00")
    return f"FR{98 - int(numeric) % 97:02d}{bban}"


# ---------------------------------------------------------------------------- rate plan

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


# ---------------------------------------------------------------------------- customers

@dataclass
class _Operator:
    customers: list[tuple]
    contacts: list[tuple]
    lines: list[tuple]  # account, number as written, valid_from, valid_to, E.164
    subscriptions: list[tuple]
    one_offs: list[tuple]
    mandates: list[tuple]
    weights: list[float]  # calling activity per line


def _pick(rng: np.random.Generator, items):
    return items[int(rng.integers(len(items)))]


def _customers(rng: np.random.Generator, count: int, period: Period) -> _Operator:
    p_start, p_end = period.start, period.end - timedelta(days=1)
    op = _Operator([], [], [], [], [], [], [])
    used: set[str] = set()
    hostile = {7 + 13 * i: name for i, name in enumerate(HOSTILE_NAMES)}
    moved_number = None
    for i in range(count):
        account = f"C{100001 + i}"
        name = hostile.get(i) or " ".join(
            x for x in (_pick(rng, ACTIVITIES), _pick(rng, SURNAMES), _pick(rng, FORMS)) if x
        )
        postcode, city, area = _pick(rng, CITIES)
        foreign = i % 23 == 11
        country, language = ("BE", "en") if foreign else ("FR", "en" if i % 17 == 5 else "fr")
        if foreign:
            postcode, city, vat = "1000", "Bruxelles", belgian_vat(rng)
        elif i % 19 == 4:
            vat = ""  # sole trader without VAT number
        else:
            body = f"{int(rng.integers(10_000_000, 99_999_999)):08d}"
            vat = french_vat(body + luhn_digit(body))
        new = i % 20 == 3  # starts during the month
        leaving = i % 31 == 9 and not new  # ends during the month
        since = (p_start + timedelta(days=int(rng.integers(7, 20)))) if new else (
            date(2019, 1, 1) + timedelta(days=int(rng.integers(0, 2700))))
        until = p_start + timedelta(days=int(rng.integers(9, 25))) if leaving else None
        direct_debit = i % 5 != 2
        group = "key_accounts" if i % 10 == 0 else "standard"
        op.customers.append((account, name, f"{int(rng.integers(1, 180))} {_pick(rng, STREETS)}",
                             "Bâtiment B" if i % 9 == 0 else "", postcode, city, country, vat, language,
                             "direct_debit" if direct_debit else "transfer", group, PLAN))
        slug = f"client{100001 + i}"
        # every customer has an invoice recipient, except one on purpose
        op.contacts.append((account, "Service comptabilité", f"compta@{slug}.example.fr",
                            "no" if i == 42 else "yes"))
        if i % 3 == 0:
            op.contacts.append((account, "Direction", f"direction@{slug}.example.fr", "no"))
        if i % 8 == 1:
            op.contacts.append((account, "Expert-comptable", f"cabinet+{slug}@expert.example.com", "yes"))
        if direct_debit:
            bank, bic = _pick(rng, BANKS)
            signed = since - timedelta(days=int(rng.integers(1, 30))) if not new else since
            account_no = f"{int(rng.integers(10**10)):011d}"
            iban = french_iban(bank, f"{int(rng.integers(100, 99999)):05d}", account_no)
            status = "revoked" if i == 58 else "active"  # a debit customer with no usable mandate
            op.mandates.append((account, f"OPX-{account}-01", signed.isoformat(),
                                " ".join(iban[k:k + 4] for k in range(0, len(iban), 4)), bic, status))
            if i % 25 == 6:  # changed bank: old mandate revoked, new one active
                op.mandates[-1] = (*op.mandates[-1][:5], "revoked")
                bank, bic = _pick(rng, BANKS)
                iban = french_iban(bank, f"{int(rng.integers(100, 99999)):05d}",
                                   f"{int(rng.integers(10**10)):011d}")
                op.mandates.append((account, f"OPX-{account}-02", "2026-09-14", iban, bic, "active"))
        # lines: a few customers are large, most are small
        n_lines = min(40, 1 + int(rng.pareto(1.3) * 2))
        activity = float(rng.gamma(2.0, 1.0))
        for k in range(n_lines):
            while True:
                digits = f"{area}{int(rng.integers(10**7, 10**8))}" if k or i % 13 else \
                    f"9{int(rng.integers(10**7, 10**8))}"
                if digits not in used:
                    used.add(digits)
                    break
            written = (f"+33{digits}", f"0{digits}", " ".join(
                [f"0{digits[0]}"] + [digits[j:j + 2] for j in range(1, 9, 2)]))[k % 3]
            valid_from = since
            valid_to = until
            if not new and k and k % 11 == 0:  # a line added during the month
                valid_from = p_start + timedelta(days=int(rng.integers(5, 25)))
            if not new and k and k % 13 == 0:  # a line given up during the month
                valid_to = p_start + timedelta(days=int(rng.integers(3, 20)))
            if valid_to is not None and valid_to < valid_from:
                valid_to = until if until is not None and until >= valid_from else None
            op.lines.append((account, written, valid_from, valid_to, f"+33{digits}"))
            op.weights.append(activity)
        if i == 30:
            moved_number = op.lines[-1]
        if i == 31 and moved_number is not None:
            # a number moves from one customer to another on the 15th
            old = moved_number
            op.lines[op.lines.index(old)] = (*old[:3], date(2026, 10, 14), old[4])
            op.lines.append((account, old[1], date(2026, 10, 15), None, old[4]))
            op.weights.append(activity)
        if i % 6 == 1:  # a line given up before the month: its calls are unknown
            digits = f"{area}{int(rng.integers(10**7, 10**8))}"
            op.lines.append((account, f"0{digits}", date(2018, 3, 1), date(2026, 6, 30), f"+33{digits}"))
            op.weights.append(0.0)
        # subscriptions
        def sub(product, quantity, start=since, end=until, override="", account=account):
            if end is None or end >= start:
                op.subscriptions.append((account, product, quantity, start, end, override))

        sub("LINE_PRO", n_lines, override="17.50" if i % 10 == 0 else "")
        if i % 10 < 7:
            sub("NAT_UNLIMITED", 1)
        if i % 5 in (1, 3):
            sub("MOBILE_1000", 1 + (n_lines > 10))
        if i % 7 == 2:
            sub("EUROPE_200", 1)
        if i % 10 == 4:
            sub("SUPPORT_PLUS", 1)
        if i % 3 == 2:
            sub("PBX_SEAT", int(rng.integers(2, 20)))
        if i % 14 == 8 and not new:  # an option taken during the month
            sub("MOBILE_1000", 1, start=p_start + timedelta(days=int(rng.integers(5, 20))))
        if new:
            op.one_offs.append((account, "INSTALL", since, 1, "", "Mise en service"))
            op.one_offs.append((account, "DEPOSIT", since, 1, "", "Dépôt de garantie"))
        if i % 9 == 5:
            op.one_offs.append((account, "HANDSET", p_start + timedelta(days=int(rng.integers(0, 30))),
                                int(rng.integers(1, 5)), "159.00" if i % 2 else "", "Postes supplémentaires"))
        if i % 12 == 7:
            op.one_offs.append((account, "HEADSET", p_end - timedelta(days=int(rng.integers(0, 10))), 2, "", ""))
    return op


# ---------------------------------------------------------------------------- calls

_NATIONAL_MIX = [  # share of calls, zone, how to make the national significant number
    (0.44, "fixed"), (0.30, "mobile"), (0.04, "voip"), (0.02, "free"), (0.02, "shared"),
    (0.005, "premium"), (0.10, "eu"), (0.03, "eu_mobile"), (0.02, "north_america"),
    (0.0135, "world"), (0.0015, "satellite"),
]


def _international_templates() -> dict[str, list[tuple[str, str]]]:
    """(country code, example national number) by kind, from phonenumbers' metadata."""
    out: dict[str, list[tuple[str, str]]] = {"eu": [], "eu_mobile": [], "north_america": [], "world": []}
    for code, regions in sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items()):
        region = regions[0]
        if code == 33 or region == "001":
            continue
        kind = "eu" if region in EU_REGIONS else "north_america" if region == "US" else "world"
        if code == 1 and region != "US":
            continue
        fixed = phonenumbers.example_number_for_type(region, PhoneNumberType.FIXED_LINE)
        if _varies(code, fixed):
            out[kind].append((str(code), str(fixed.national_number)))
        mobile = phonenumbers.example_number_for_type(region, PhoneNumberType.MOBILE)
        if kind == "eu" and _varies(code, mobile):
            out["eu_mobile"].append((str(code), str(mobile.national_number)))
    return out


def _varies(code: int, example) -> bool:
    """Whether any last four digits on ``example`` still make a possible number."""
    if example is None:
        return False
    nsn = str(example.national_number)
    if len(nsn) < 6:
        return False
    return all(
        phonenumbers.is_possible_number(phonenumbers.parse(f"+{code}{nsn[:-4]}{tail}"))
        for tail in ("0000", "5555", "9999")
    )


def _digits(rng: np.random.Generator, n: int, width: int) -> np.ndarray:
    if n == 0:
        return np.zeros(0, dtype=f"<U{width}")
    return np.char.zfill(rng.integers(0, 10**width, n).astype(str), width)


def _national_heads(rng: np.random.Generator, kind: str, m: int) -> np.ndarray:
    """First digits (after the trunk 0) of ``m`` French numbers of a kind."""
    if kind == "fixed":
        return rng.integers(1, 6, m).astype(str).astype(object)
    if kind == "mobile":
        return rng.choice(np.array(["6", "7"], dtype=object), m)
    if kind == "voip":
        return np.full(m, "9", dtype=object)
    if kind == "free":
        return "80" + rng.integers(0, 6, m).astype(str).astype(object)
    if kind == "shared":
        return "8" + rng.integers(1, 3, m).astype(str).astype(object)
    return "89" + rng.integers(0, 10, m).astype(str).astype(object)  # premium


def _called_numbers(rng: np.random.Generator, n: int) -> np.ndarray:
    """Dialled numbers in the forms switches write: national ``0...``, ``00...`` or ``+...``."""
    shares = np.array([s for s, _ in _NATIONAL_MIX])
    kinds = rng.choice(len(_NATIONAL_MIX), size=n, p=shares / shares.sum())
    out = np.empty(n, dtype=object)
    templates = _international_templates()
    for k, (_, kind) in enumerate(_NATIONAL_MIX):
        rows = np.flatnonzero(kinds == k)
        m = len(rows)
        if not m:
            continue
        if kind in templates:
            pool = templates[kind]
            picks = rng.integers(0, len(pool), m)
            codes = np.array([pool[j][0] for j in picks], dtype=object)
            nsn = [pool[j][1] for j in picks]
            keep = [len(x) - 4 for x in nsn]
            tails = _digits(rng, m, 4)
            numbers = np.array([x[:h] + t[: len(x) - h] for x, h, t in zip(nsn, keep, tails, strict=True)],
                               dtype=object)
            prefix = np.where(rng.random(m) < 0.7, "00", "+").astype(object)
            out[rows] = prefix + codes + numbers
            continue
        if kind == "satellite":
            out[rows] = "00870" + _digits(rng, m, 9).astype(object)
            continue
        head = _national_heads(rng, kind, m)
        width = 9 - np.array([len(h) for h in head])
        tails = _digits(rng, m, 8)
        body = np.array([h + t[: w] for h, t, w in zip(head, tails, width, strict=True)], dtype=object)
        style = rng.random(m)
        out[rows] = np.where(style < 0.8, "0" + body, np.where(style < 0.9, "+33" + body, "0033" + body))
    return out


def _durations(rng: np.random.Generator, n: int) -> np.ndarray:
    answered = rng.random(n) >= 0.12
    seconds = np.clip(np.rint(rng.lognormal(np.log(75), 1.1, n)), 1, 3 * 3600).astype(np.int64)
    return np.where(answered, seconds, 0)


def _call_times(rng: np.random.Generator, n: int, day_lo: np.ndarray, day_hi: np.ndarray,
                period: Period) -> pd.DatetimeIndex:
    """Local naive start times between the given day offsets (inclusive), busy on working days."""
    day = day_lo + np.floor(rng.random(n) * (day_hi - day_lo + 1)).astype(np.int64)
    weekday = (period.start.weekday() + day) % 7
    redraw = (weekday >= 5) & (rng.random(n) < 0.75)
    day = np.where(redraw, day_lo + np.floor(rng.random(n) * (day_hi - day_lo + 1)).astype(np.int64), day)
    business = rng.random(n) < 0.85
    peak_hour = np.where(rng.random(n) < 0.5, 10.5, 15.0)
    hour = np.where(business, rng.normal(peak_hour, 1.5), rng.uniform(6, 23.5, n))
    second = np.clip((hour * 3600).astype(np.int64), 0, 86399)
    base = np.datetime64(period.start.isoformat(), "s")
    return pd.DatetimeIndex(base + (day * 86400 + second).astype("timedelta64[s]"))


def _calls(rng: np.random.Generator, op: _Operator, calls: int, period: Period) -> pd.DataFrame:
    """The month's calls: local start, calling (as the switch writes it), called, seconds."""
    lines = pd.DataFrame(op.lines, columns=["account", "written", "valid_from", "valid_to", "e164"])
    weights = np.array(op.weights)
    p_start = period.start
    last_day = (period.end - p_start).days - 1
    lo = np.array([max(0, (f - p_start).days) for f in lines["valid_from"]])
    hi = np.array([last_day if t is None or pd.isna(t) else min(last_day, (t - p_start).days)
                   for t in lines["valid_to"]])
    usable = (hi >= lo) & (weights > 0)
    weights = np.where(usable, weights, 0)
    pick = rng.choice(len(lines), size=calls, p=weights / weights.sum())
    local = _call_times(rng, calls, lo[pick], hi[pick], period)
    frame = pd.DataFrame({
        "local": local,
        "calling": lines["e164"].to_numpy()[pick],
        "account": lines["account"].to_numpy()[pick],
        "called": _called_numbers(rng, calls),
        "duration_s": _durations(rng, calls),
    })
    return frame.sort_values("local", kind="stable").reset_index(drop=True)


def _spoil(rng: np.random.Generator, frame: pd.DataFrame) -> pd.DataFrame:
    """Text columns for the files, with :data:`ERRORS` made on purpose."""
    n = len(frame)
    out = pd.DataFrame({
        "local": frame["local"].dt.strftime("%Y-%m-%d %H:%M:%S").astype(object),
        "calling": frame["calling"].astype(object),
        "called": frame["called"].astype(object),
        "duration_s": frame["duration_s"].astype(str).astype(object),
        "account": frame["account"].astype(object),
        "answered": frame["duration_s"].to_numpy() > 0,
        "local_ts": frame["local"],
    })
    spoil = rng.random(n)
    edges = np.cumsum([0, *ERRORS.values()]) / 10_000
    for k, reason in enumerate(ERRORS):
        rows = np.flatnonzero((spoil >= edges[k]) & (spoil < edges[k + 1]))
        if reason == "bad_date":
            out.loc[rows, "local"] = np.where(rows % 2 == 0, "2026-10-32 09:00:00", "31/10/2026 9h")
        elif reason == "bad_calling_number":
            out.loc[rows, "calling"] = np.where(rows % 2 == 0, "anonymous", "+33ABC")
        elif reason == "bad_called_number":
            out.loc[rows, "called"] = np.where(rows % 2 == 0, "12", "*31#0612")
        elif reason == "negative_duration":
            out.loc[rows, "duration_s"] = "-" + out.loc[rows, "duration_s"].astype(str)
        elif reason == "bad_duration":
            out.loc[rows, "duration_s"] = out.loc[rows, "duration_s"].astype(str) + ".5"
        elif reason == "unknown_line":
            out.loc[rows, "calling"] = "+3319" + _digits(rng, len(rows), 7).astype(object)
        elif reason == "duplicate":
            out = pd.concat([out, out.iloc[rows]], ignore_index=True)
    return out


def _native_bytes(rows: pd.DataFrame, first_id: int) -> bytes:
    ts = rows["local_ts"]
    aware = ts.dt.tz_localize(TIMEZONE, ambiguous=np.zeros(len(ts), dtype=bool), nonexistent="shift_forward")
    offset = aware.dt.strftime("%z").str.replace(r"(\d\d)(\d\d)$", r"\1:\2", regex=True)
    iso = rows["local"].str.replace(" ", "T", n=1)
    stamp = np.where(rows["local"].str.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"), iso + offset, rows["local"])
    frame = pd.DataFrame({
        "call_id": [f"SW2-{first_id + i:08d}" for i in range(len(rows))],
        "start_time": stamp, "calling": rows["calling"], "called": rows["called"],
        "duration_s": rows["duration_s"],
    })
    return frame.to_csv(index=False, lineterminator="\n").encode()


def _asterisk_bytes(rows: pd.DataFrame, rng: np.random.Generator) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\n")
    ring = rng.integers(2, 25, len(rows))
    outcome = rng.random(len(rows))
    for k, r in enumerate(rows.itertuples(index=False)):
        calling = r.calling.replace("+33", "0", 1) if r.calling.startswith("+33") else r.calling
        start = r.local
        billsec = r.duration_s
        try:
            t0 = pd.Timestamp(start)
            seconds = int(billsec)
        except (ValueError, TypeError):
            t0, seconds = None, 0
        answered = t0 is not None and seconds > 0
        answer = (t0 + pd.Timedelta(seconds=int(ring[k]))).strftime("%Y-%m-%d %H:%M:%S") if answered else ""
        end = (t0 + pd.Timedelta(seconds=int(ring[k]) + max(seconds, 0))).strftime("%Y-%m-%d %H:%M:%S") \
            if t0 is not None else start
        disposition = "ANSWERED" if answered or seconds != 0 else (
            "NO ANSWER" if outcome[k] < 0.7 else "BUSY" if outcome[k] < 0.95 else "FAILED")
        uid = f"{1790000000 + k * 7}.{k}"
        writer.writerow([
            r.account, calling, r.called, "from-internal", f'"{calling}" <{calling}>',
            f"PJSIP/{calling}-{k:08x}", f"PJSIP/trunk-{k + 1:08x}" if answered else "", "Dial",
            f"PJSIP/{r.called}@trunk,60", start, answer, end, str(int(ring[k]) + max(seconds, 0)),
            billsec, disposition, "DOCUMENTATION", uid, "",
        ])
    return buf.getvalue().encode()


# ---------------------------------------------------------------------------- files

def _write_csv(path: Path, header: list[str], rows) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        count = 0
        for row in rows:
            writer.writerow(["" if v is None else v.isoformat() if isinstance(v, date) else v for v in row])
            count += 1
    return count


def generate_operator(out: str | Path, seed: int = 2026, customers: int = 200, calls: int = 200_000,
                      period: str = PERIOD) -> dict[str, int]:
    """Write the sample operator (``reference/*.csv``, ``cdrs/*``) to ``out``; returns row counts."""
    from workbench.reference import COLUMNS

    out = Path(out)
    rng = np.random.default_rng(seed)
    month = Period.parse(period)
    tables = plan_rows()
    op = _customers(rng, customers, month)
    tables.update(
        customers=op.customers, contacts=op.contacts, lines=[row[:4] for row in op.lines],
        subscriptions=op.subscriptions, one_off_charges=op.one_offs, mandates=op.mandates,
    )
    counts = {name: _write_csv(out / "reference" / f"{name}.csv", COLUMNS[name], rows)
              for name, rows in tables.items()}

    frame = _calls(rng, op, calls, month)
    text = _spoil(rng, frame)
    # the customers behind an Asterisk PBX send their calls in its Master.csv; the switch's
    # export repeats the first 500 of them (the overlap must not be stored twice)
    pbx = text["account"].isin({c[0] for i, c in enumerate(op.customers) if i % 10 == 3}).to_numpy()
    pbx_rows = text[pbx]
    native_rows = pd.concat([text[~pbx], pbx_rows.iloc[:500]]).sort_values("local_ts", kind="stable")
    cdrs = out / "cdrs"
    cdrs.mkdir(parents=True, exist_ok=True)
    name = f"switch-{period}.csv.gz"
    with gzip.GzipFile(cdrs / name, "wb", mtime=0) as fh:
        fh.write(_native_bytes(native_rows, 1))
    with gzip.GzipFile(cdrs / "asterisk-Master.csv.gz", "wb", mtime=0) as fh:
        fh.write(_asterisk_bytes(pbx_rows, rng))
    counts["cdrs_native"] = len(native_rows)
    counts["cdrs_asterisk"] = len(pbx_rows)
    return counts


# ---------------------------------------------------------------------------- benchmark

def benchmark_plan(rng: np.random.Generator, prefixes: int = 50_000, zones: int = 40) -> RatePlan:
    """A plan of ``prefixes`` destinations under real country codes, nested up to 8 digits."""
    codes = np.array(sorted(str(c) for c in phonenumbers.COUNTRY_CODE_TO_REGION_CODE), dtype=object)
    chosen = set(codes.tolist())
    while len(chosen) < prefixes:
        m = prefixes - len(chosen)
        heads = codes[rng.integers(0, len(codes), m)]
        extra = rng.integers(1, 6, m)
        tails = _digits(rng, m, 5)
        chosen.update(h + t[:e] for h, t, e in zip(heads, tails, extra, strict=True))
    prefix = np.array(sorted(chosen)[:prefixes], dtype=object)
    zone_codes = [f"Z{z:02d}" for z in range(zones)]
    destinations = pd.DataFrame({"prefix": prefix, "name": "dest " + prefix,
                                 "zone_code": np.array(zone_codes, dtype=object)[rng.integers(0, zones, len(prefix))]})
    rates, intervals = [], []
    for z, zone in enumerate(zone_codes):
        for b, band in enumerate(("peak", "offpeak")):
            rid = 2 * z + b + 1
            rates.append((rid, zone, band, int(rng.integers(0, 3)) * 500, z % 10 == 0))
            price = int(rng.integers(100, 60_000))
            intervals.append((rid, 0, price, 60))
            if z % 2:
                intervals.append((rid, 60, price // 2, 1))
            if z % 5 == 0:
                intervals.append((rid, 600, price // 4, 10))
    return RatePlan(
        code="BENCH", destinations=destinations,
        time_bands=pd.DataFrame([("peak", "0,1,2,3,4", 480, 1200)],
                                columns=["band", "weekdays", "start_minute", "end_minute"]),
        rates=pd.DataFrame(rates, columns=["rate_id", "zone_code", "band", "connect_fee_units",
                                           "charge_unanswered"]),
        intervals=pd.DataFrame(intervals, columns=["rate_id", "from_second", "price_per_minute_units",
                                                   "increment_s"]),
    )


def benchmark_lines(rng: np.random.Generator, count: int = 20_000, customers: int = 5_000) -> pd.DataFrame:
    numbers = 33_100_000_000 + rng.choice(400_000_000, size=count, replace=False)
    return pd.DataFrame({
        "number": "+" + pd.Series(numbers).astype(str),
        "customer_id": rng.integers(1, customers + 1, count),
        "rate_plan_id": 1,
        "valid_from": date(2020, 1, 1),
        "valid_to": None,
    })


def write_benchmark_cdrs(path: str | Path, plan: RatePlan, lines: pd.DataFrame, calls: int,
                         seed: int, period: str = PERIOD, chunk: int = 1_000_000) -> None:
    """A native CDR file of ``calls`` records (UTC starts with ``Z``), written in chunks."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    month = Period.parse(period)
    lo, hi = (int(pd.Timestamp(b).value // 10**9) for b in month.utc_bounds(TIMEZONE))
    prefixes = plan.destinations["prefix"].to_numpy(dtype=object)
    numbers = lines["number"].to_numpy(dtype=object)
    schema = pa.schema([(c, pa.string()) for c in ("call_id", "start_time", "calling", "called")]
                       + [("duration_s", pa.int64())])
    options = pacsv.WriteOptions(quoting_style="none")
    with pacsv.CSVWriter(str(path), schema, write_options=options) as writer:
        for first in range(0, calls, chunk):
            m = min(chunk, calls - first)
            start = np.sort(rng.integers(lo, hi, m)).astype("datetime64[s]")
            pre = prefixes[rng.integers(0, len(prefixes), m)]
            tails = _digits(rng, m, 12)
            called = [p + t[: max(0, 12 - len(p))] for p, t in zip(pre, tails, strict=True)]
            table = pa.table({
                "call_id": pa.array(np.char.add("B", np.arange(first, first + m).astype(str))),
                "start_time": pa.array(np.char.add(np.datetime_as_string(start, unit="s"), "Z")),
                "calling": pa.array(numbers[rng.integers(0, len(numbers), m)].astype(str)),
                "called": pa.array(np.char.add("+", np.array(called, dtype=str))),
                "duration_s": pa.array(_durations(rng, m)),
            }, schema=schema)
            writer.write_table(table)
