"""Invoice PDFs: content, language, the draft mark, escaping of customer text, no fetching."""

from __future__ import annotations

import io
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pypdf import PdfReader

from workbench.documents import html, render_batch, render_invoices, render_one

OPERATOR = {"name": "Opérateur Test SAS", "address": "1 rue A, 75001 Paris", "siren": "123 456 782",
            "vat": "FR40123456782", "capital": "SAS", "email": "f@op.example", "iban": "FR7630006000011234567890189",
            "bic": "AGRIFRPP", "penalty_rate": ""}


def model(number="F2026-000001", lang="fr", name="Boulangerie Martin", payment="transfer", items=3):
    return {
        "number": number, "kind": "invoice", "lang": lang, "period": "2026-10", "invoice_date": "2026-11-01",
        "due_date": "2026-12-01", "account_number": "C1",
        "customer": {"name": name, "address_line1": "2 rue B", "address_line2": "", "postcode": "69003",
                     "city": "Lyon", "country": "FR", "vat_number": "FR46428929905"},
        "groups": [{"type": "recurring", "items": [
            {"description": f"Ligne {i}", "period": "2026-10-01 - 2026-10-31", "quantity": "2",
             "unit_price": "19.90", "vat_rate": "20", "amount": "39.80", "calls": None, "minutes": None}
            for i in range(items)]}],
        "zones": [], "vat": [{"rate": "20", "base": "119.40", "amount": "23.88"}],
        "total_excl": "119.40", "total_vat": "23.88", "total_incl": "143.28", "credit_applied": "",
        "net_payable": "143.28", "previous": "", "payment_method": payment,
        "mandate": {"reference": "OPX-1", "iban_masked": "FR76 **** 0189"} if payment == "direct_debit" else None,
    }


def text_of(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def test_a_final_invoice_in_french_has_the_legal_mentions():
    text = text_of(render_one(model(payment="direct_debit"), OPERATOR, draft=False))
    for expected in ("Facture", "F2026-000001", "Opérateur Test SAS", "SIREN 123 456 782", "FR40123456782",
                     "Boulangerie Martin", "FR46428929905", "143.28", "Net à payer", "Prélèvement SEPA",
                     "OPX-1", "40 EUR", "taux d'intérêt légal", "2026-12-01"):
        assert expected in text, expected
    assert "BROUILLON" not in text and "DRAFT" not in text


def test_english_and_the_draft_mark():
    text = text_of(render_one(model(lang="en"), OPERATOR, draft=True))
    assert "Invoice" in text and "Net payable" in text and "bank transfer" in text
    assert "DRAFT - NOT AN INVOICE" in text


@pytest.mark.parametrize("name", [
    '<img src="file:///etc/passwd">', "<script>alert(1)</script>", "{{ 7*7 }} & <b>bold</b>",
])
def test_customer_text_is_printed_not_interpreted(name):
    markup = html([model(name=name)], OPERATOR, draft=False)
    assert name not in markup  # escaped in the HTML
    text = text_of(render_one(model(name=name), OPERATOR, draft=False))
    assert name.replace(" ", "") in text.replace(" ", "").replace("\n", "")


def test_rendering_fetches_nothing_outside_the_templates(tmp_path):
    hits = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        secret = tmp_path / "secret.png"
        secret.write_bytes(b"not an image")
        url = f"http://127.0.0.1:{server.server_address[1]}/pixel.png"
        hostile = model(name=f'x" src="{url}')
        hostile["customer"]["address_line1"] = f'<img src="{url}"><img src="file://{secret}">'
        pdf = render_one(hostile, OPERATOR, draft=False)
        assert pdf.startswith(b"%PDF")
    finally:
        server.shutdown()
    assert hits == []


def test_batches_split_into_one_pdf_per_invoice_on_the_right_pages():
    models = [model(number=f"F2026-{i:06d}", items=1 + 30 * (i % 2)) for i in range(1, 6)]  # some run over 2 pages
    pdfs = render_batch(models, OPERATOR, draft=False)
    assert list(pdfs) == [m["number"] for m in models]
    for m in models:
        pages = [p.extract_text() for p in PdfReader(io.BytesIO(pdfs[m["number"]])).pages]
        assert m["number"] in pages[0]
        assert "143.28" in pages[-1]
        others = [o["number"] for o in models if o["number"] != m["number"]]
        assert not any(o in "".join(pages) for o in others)
    assert len(PdfReader(io.BytesIO(pdfs["F2026-000001"])).pages) == 2
    assert len(PdfReader(io.BytesIO(pdfs["F2026-000002"])).pages) == 1


def test_the_pool_gives_the_same_documents_as_one_process():
    models = [model(number=f"F2026-{i:06d}") for i in range(1, 7)]
    pooled = render_invoices(models, OPERATOR, draft=True, workers=2, batch=2)
    assert sorted(pooled) == [m["number"] for m in models]
    for m in models:
        assert m["number"] in text_of(pooled[m["number"]])


def test_the_url_fetcher_serves_only_the_templates_folder(tmp_path):
    from workbench.documents.pdf import TEMPLATES, _restricted_fetcher

    fetcher = _restricted_fetcher()
    (tmp_path / "x.css").write_text("body {}")
    for url in ("http://127.0.0.1:9/x.png", f"file://{tmp_path / 'x.css'}", "file:///etc/passwd",
                f"file://{TEMPLATES}/../pyproject.toml"):
        with pytest.raises(ValueError, match="outside the templates folder"):
            fetcher.fetch(url)
    response = fetcher.fetch(f"file://{TEMPLATES / 'invoice.css'}")
    assert b"@page" in response.read()


def test_the_call_detail_annex_lists_the_calls_on_its_own_page():
    with_calls = model()
    with_calls["call_details"] = [
        {"when": "2026-10-05 09:12:00", "called": "+33612345678", "duration": "1:35", "zone": "NAT_MOBILE",
         "amount": "0.2400"},
        {"when": "2026-10-06 18:00:03", "called": "+442079460958", "duration": "12:00", "zone": "EU",
         "amount": "1.9000"}]
    pages = [p.extract_text() for p in PdfReader(io.BytesIO(render_one(with_calls, OPERATOR, False))).pages]
    assert "Détail des appels" in pages[-1] and "+442079460958" in pages[-1] and "12:00" in pages[-1]
    assert "Détail des appels" not in pages[0]
    assert "Détail des appels" not in text_of(render_one(model(), OPERATOR, False))


def test_an_operators_own_templates_folder_is_used_and_is_the_only_one_served(tmp_path):
    import shutil

    from workbench.config import Settings, check
    from workbench.documents.pdf import TEMPLATES, _restricted_fetcher
    from workbench.errors import ConfigError

    own = tmp_path / "branding"
    shutil.copytree(TEMPLATES, own)
    page = (own / "invoice.html").read_text()
    (own / "invoice.html").write_text(page.replace('<section class="invoice"', '<p>Papeterie Exemple : CGV au verso</p>'
                                                   '<section class="invoice"', 1))
    (own / "invoice.css").write_text((own / "invoice.css").read_text() + "\n.doc-title { text-transform: lowercase }\n")
    ours = text_of(render_invoices([model()], OPERATOR, draft=False, templates=own)["F2026-000001"])
    assert "Papeterie Exemple : CGV au verso" in ours and "facture" in ours and "Facture" not in ours
    bundled = text_of(render_invoices([model()], OPERATOR, draft=False)["F2026-000001"])
    assert "Papeterie" not in bundled and "Facture" in bundled
    with pytest.raises(ValueError, match="outside the templates folder"):  # the bundled folder is not the one now
        _restricted_fetcher(own).fetch(f"file://{TEMPLATES / 'invoice.css'}")
    assert check(Settings(templates_dir=str(own))).templates_dir == str(own)
    (own / "invoice.css").rename(tmp_path / "shared.css")  # a link out of the folder: refused
    (own / "invoice.css").symlink_to(tmp_path / "shared.css")
    with pytest.raises(ConfigError, match="templates_dir.*lacks invoice.css"):
        check(Settings(templates_dir=str(own)))
    (own / "invoice.css").unlink()
    (tmp_path / "shared.css").rename(own / "invoice.css")
    (own / "email" / "subjects.toml").unlink()
    with pytest.raises(ConfigError, match="templates_dir.*lacks email/subjects.toml"):
        check(Settings(templates_dir=str(own)))


def _words(pdf: bytes, tmp_path) -> tuple[float, list[tuple[float, float, str]]]:
    """The page width and each word's (left, right, text) in points, as poppler's pdftotext lays them out."""
    import re
    import subprocess

    (tmp_path / "doc.pdf").write_bytes(pdf)
    layout = subprocess.run(["pdftotext", "-bbox", str(tmp_path / "doc.pdf"), "-"], capture_output=True, text=True,
                            check=True).stdout
    width = float(re.search(r'<page width="([\d.]+)"', layout)[1])
    return width, [(float(x0), float(x1), text) for x0, x1, text in
                   re.findall(r'<word xMin="([\d.]+)" yMin="[\d.]+" xMax="([\d.]+)" yMax="[\d.]+">([^<]*)</word>',
                              layout)]


def test_a_word_longer_than_its_column_wraps_inside_it(tmp_path):
    long = model(name="N" * 200)
    long["customer"]["address_line1"] = "A" * 150
    long["groups"][0]["items"][0]["description"] = "W" * 120
    pdf = render_one(long, OPERATOR, draft=False)
    width, words = _words(pdf, tmp_path)
    # A4 is 595.28 pt wide; margins 14 mm = 39.69 pt each side: text must end before 555.59 pt
    right_margin = width - 14 * 72 / 25.4
    # the description column is 33 % of the 515.91 pt between the margins: 170.25 pt, from 39.69 pt
    description_end = 14 * 72 / 25.4 + 0.33 * (width - 2 * 14 * 72 / 25.4)
    names = [w for w in words if set(w[2]) == {"N"}]
    assert "".join(w[2] for w in names) == "N" * 200  # all of it printed, on several lines
    assert len(names) > 1 and all(right <= right_margin for _, right, _ in names)
    addresses = [w for w in words if set(w[2]) == {"A"} and w[0] > width / 2]  # in the customer's box, on the right
    assert "".join(w[2] for w in addresses) == "A" * 150 and all(right <= right_margin for _, right, _ in addresses)
    labels = [w for w in words if set(w[2]) == {"W"}]
    assert "".join(w[2] for w in labels) == "W" * 120
    assert all(right <= description_end for _, right, _ in labels)  # not over the period column


def test_bidirectional_controls_are_not_printed():
    # "Acme \u202eLtd Paris" would print "Acme siraP dtL": the override reverses the rest of the line
    hostile = model(name="Acme \u202eLtd Paris\u202c")
    hostile["customer"]["city"] = "\u2067Lyon\u2069"
    markup = html([hostile], OPERATOR, draft=False)
    assert "\u202e" not in markup and "\u2067" not in markup and "Acme Ltd Paris" in markup
    assert "Acme Ltd Paris" in text_of(render_one(hostile, OPERATOR, draft=False))


# ---------------------------------------------------------------------------- workers end with their parent

RENDER_MANY = """
import sys
sys.path[:0] = [{tests!r}]
from test_documents import OPERATOR, model
from workbench.documents import render_invoices
print("rendering", flush=True)
render_invoices([model(f"F2026-{{i:06d}}", items=30) for i in range(2000)], OPERATOR, draft=False, workers=2,
                batch=5)
"""


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        import psutil
    except ImportError:  # /proc
        try:
            with open(f"/proc/{pid}/stat") as fh:
                return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(x) for x in fh.read().split()]
    except OSError:
        import psutil
        return [p.pid for p in psutil.Process(pid).children()]


@pytest.mark.parametrize("sig", ["SIGKILL", "SIGTERM"])
def test_pdf_workers_end_when_the_rendering_process_is_killed(tmp_path, sig):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    script = tmp_path / "render.py"
    script.write_text(RENDER_MANY.format(tests=str(Path(__file__).parent)))
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    workers: list[int] = []
    try:
        assert parent.stdout.readline().strip() == b"rendering"
        deadline = time.monotonic() + 30
        while len(workers) < 2 and time.monotonic() < deadline:  # the pool's two workers, rendering
            workers = _children(parent.pid)
            time.sleep(0.1)
        assert len(workers) == 2, parent.stderr.read1() if parent.poll() is not None else workers
        time.sleep(1)  # well into their batches
        assert parent.poll() is None and all(_alive(w) for w in workers)
        parent.send_signal(getattr(signal, sig))
        parent.wait(10)
        deadline = time.monotonic() + 5
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [w for w in workers if _alive(w)] == []
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        for worker in workers:  # none should be left; if one is, it must not outlive the test
            if _alive(worker):
                os.kill(worker, signal.SIGKILL)


# ---------------------------------------------------------------------------- layout a customer can read

def _boxes(pdf: bytes, tmp_path) -> tuple[float, list[list[tuple[float, float, float, float, str]]]]:
    """The page width and, page by page, each word's (left, top, right, bottom, text) in points,
    as poppler's pdftotext lays them out."""
    import html as markup
    import re
    import subprocess

    (tmp_path / "doc.pdf").write_bytes(pdf)
    layout = subprocess.run(["pdftotext", "-bbox", str(tmp_path / "doc.pdf"), "-"], capture_output=True, text=True,
                            check=True).stdout
    width = float(re.search(r'<page width="([\d.]+)"', layout)[1])
    word = r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>'
    return width, [[(float(a), float(b), float(c), float(d), markup.unescape(t)) for a, b, c, d, t in
                     re.findall(word, page)] for page in layout.split("<page ")[1:]]


def big_model(lang: str) -> dict:
    """An invoice with the widest amounts a line can have (1,000,000.00 a unit) and a call line."""
    out = model(lang=lang, items=2)
    big = "1 000 000,00\u202f€" if lang == "fr" else "€1,000,000.00"
    total = "12 345 678,90\u202f€" if lang == "fr" else "€12,345,678.90"
    for item in out["groups"][0]["items"]:
        item.update(unit_price=big, amount=total, quantity="12")
    out["groups"].append({"type": "consumption", "items": [{
        "description": "France mobile", "period": "2026-10-01 - 2026-10-31",
        "quantity": "2\u202f057\u00a0min 36\u00a0s", "unit_price": "", "vat_rate": "20",
        "amount": total, "calls": 1234, "minutes": "2057.60"}]})
    out["vat"] = [{"rate": "20", "category": "S", "base": total, "amount": total}]
    return out


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_column_headers_do_not_overlap_and_tables_stay_within_the_right_margin(tmp_path, lang):
    width, pages = _boxes(render_one(big_model(lang), OPERATOR, draft=False), tmp_path)
    # A4 is 595.28 pt wide; the right margin is 14 mm = 39.69 pt: text ends before 555.59 pt
    right_margin = width - 14 * 72 / 25.4
    words = pages[0]
    assert all(right <= right_margin + 0.5 for _, _, right, _, _ in words), [w for w in words if w[2] > right_margin]
    # no two words printed over each other ("VAT %" on "Unit price excl. VAT" was)
    overlaps = [(a[4], b[4]) for i, a in enumerate(words) for b in words[i + 1:]
                if a[0] < b[2] - 0.5 and b[0] < a[2] - 0.5 and a[1] < b[3] - 0.5 and b[1] < a[3] - 0.5]
    assert overlaps == []


def test_pages_are_numbered_within_each_invoice(tmp_path):
    # a batch of a one-page French invoice and an English one of 70 lines (three pages)
    pdfs = render_batch([model(items=3), model(number="F2026-000002", lang="en", items=70)], OPERATOR, draft=False)
    short = [page.extract_text() for page in PdfReader(io.BytesIO(pdfs["F2026-000001"])).pages]
    long = [page.extract_text() for page in PdfReader(io.BytesIO(pdfs["F2026-000002"])).pages]
    assert len(short) == 1 and "page 1 sur 1" in short[0]
    assert len(long) == 3
    assert ["page 1 of 3" in long[0], "page 2 of 3" in long[1], "page 3 of 3" in long[2]] == [True] * 3
    assert "page 1 of 3" not in long[1]


def test_a_table_row_is_never_split_across_pages(tmp_path):
    # 60 lines whose description takes three lines: a page break falls in a row unless rows are
    # kept whole (tr { break-inside: avoid }); each row starts with Sxx and ends with Exx
    long = model(items=60)
    for i, item in enumerate(long["groups"][0]["items"]):
        item["description"] = f"S{i:02d} " + "abonnement professionnel " * 4 + f"E{i:02d}"
    _, pages = _boxes(render_one(long, OPERATOR, draft=False), tmp_path)
    page_of = {text: n for n, words in enumerate(pages) for *_, text in words
               if text[:1] in "SE" and text[1:].isdigit()}
    assert len(pages) > 1
    assert all(page_of[f"S{i:02d}"] == page_of[f"E{i:02d}"] for i in range(60))


def test_rates_and_quantities_are_printed_in_the_documents_language():
    # a VAT rate of 5.5 % prints 5,5 on a French invoice and 5.5 on an English one (as the amounts
    # beside it: 1 234,56 € and €1,234.56); the e-invoice keeps the exact value
    from collections import namedtuple
    from decimal import Decimal

    from workbench.documents.models import _number, _vat_row
    from workbench.money import format_number

    vat = namedtuple("vat", "vat_rate vat_category base_cents vat_cents")(5.5, "S", 40000, 2200)
    french, english = _vat_row(vat, "fr", str), _vat_row(vat, "en", str)
    assert (french["rate"], english["rate"]) == ("5,5", "5.5")
    assert french["rate_value"] == english["rate_value"] == Decimal("5.5")
    assert [_number(v, "fr") for v in (Decimal("2.08"), 20, Decimal("-0.5161"), Decimal("1234.50"), None)] == [
        "2,08", "20", "-0,5161", "1\u202f234,5", ""]
    assert [_number(v, "en") for v in (Decimal("2.08"), Decimal("20.00"), Decimal("1234.50"))] == [
        "2.08", "20", "1,234.5"]
    with pytest.raises(TypeError):
        format_number(5.5, "fr")
