"""The sample operator's customers: names (a few hostile, as real data has), addresses, VAT numbers
and SIRENs, contacts, SEPA mandates with valid IBANs, lines, subscriptions and one-off charges.

Most customers are French companies (French VAT); every 23rd, from the 12th, is a Belgian
company with a valid Belgian VAT number (reverse charge, ``AE``), except the 58th (``C100058``),
a Swiss company with a valid Swiss VAT number (outside the scope of French VAT, ``O``). Every
15th, from the 8th, has its lines at a service address other than its billing address; the
first asked for the called numbers of its call detail in full."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from workbench.period import Period
from workbench.sample.plan import PLAN

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


def swiss_vat(rng: np.random.Generator) -> str:
    """A Swiss VAT number: ``CHE-`` + 8 digits + their mod 11 check digit (``stdnum.ch.uid``) +
    `` MWST``; one draw of ``rng`` (a body whose check digit would be 10 is taken one up)."""
    from stdnum.ch import uid

    base = int(rng.integers(10_000_000, 99_999_999))
    while len(check := uid.calc_check_digit(f"{base:08d}")) != 1:
        base += 1
    digits = f"{base:08d}{check}"
    return f"CHE-{digits[:3]}.{digits[3:6]}.{digits[6:]} MWST"


def french_iban(bank: str, branch: str, account: str) -> str:
    """A French IBAN with a correct RIB key and ISO 13616 check digits."""
    rib = 97 - (89 * int(bank) + 15 * int(branch) + 3 * int(account)) % 97
    bban = f"{bank}{branch}{account}{rib:02d}"
    numeric = "".join(str(int(c, 36)) for c in bban + "FR00")
    return f"FR{98 - int(numeric) % 97:02d}{bban}"


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
        swiss = i == 57  # a business outside the EU (one draw, as a Belgian one)
        country, language = ("CH" if swiss else "BE", "en") if foreign else ("FR", "en" if i % 17 == 5 else "fr")
        siren = ""
        if swiss:
            postcode, city, vat = "8001", "Zürich", swiss_vat(rng)
        elif foreign:
            postcode, city, vat = "1000", "Bruxelles", belgian_vat(rng)
        elif i % 19 == 4:
            vat = ""  # sole trader without VAT number
        else:
            body = f"{int(rng.integers(10_000_000, 99_999_999)):08d}"
            siren = body + luhn_digit(body)
            vat = french_vat(siren)
        new = i % 20 == 3  # starts during the month
        leaving = i % 31 == 9 and not new  # ends during the month
        since = (p_start + timedelta(days=int(rng.integers(7, 20)))) if new else (
            date(2019, 1, 1) + timedelta(days=int(rng.integers(0, 2700))))
        until = p_start + timedelta(days=int(rng.integers(9, 25))) if leaving else None
        direct_debit = i % 5 != 2
        group = "key_accounts" if i % 10 == 0 else "standard"
        # the optional columns (workbench.reference.CUSTOMER_EXTRA_COLUMNS): SIREN, business, service
        # address, masking of called numbers
        service = (("Zone d'activité des Prés", "Entrepôt 4", postcode, city, country) if i % 15 == 7
                   else ("", "", "", "", ""))
        op.customers.append((account, name, f"{int(rng.integers(1, 180))} {_pick(rng, STREETS)}",
                             "Bâtiment B" if i % 9 == 0 else "", postcode, city, country, vat, language,
                             "direct_debit" if direct_debit else "transfer", group, PLAN,
                             siren, "yes", *service, "no" if i == 0 else "yes"))
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

