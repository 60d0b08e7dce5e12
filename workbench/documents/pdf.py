"""Invoice PDFs: Jinja templates (``templates/invoice.html`` + ``invoice.css``) rendered by
WeasyPrint.

The templates folder is the bundled ``templates/`` unless the ``templates_dir`` setting names
another one (an operator's own copy, with its logo and wording): the functions here take it as
``templates``.

Safety: every value is autoescaped by Jinja (a customer named ``<img src="file:///etc/passwd">``
prints those characters); WeasyPrint's URL fetcher only serves files from the templates folder,
so rendering fetches no other file and no URL. Bidirectional controls are not printed (a
right-to-left override would reverse the rest of a line), and a word longer than its column (a
200-character name without spaces) wraps inside it (``overflow-wrap: anywhere`` in ``invoice.css``).

Page numbers: each page of an invoice says ``page 2 of 3`` (``page 2 sur 3``) of that invoice,
bottom right. A batch is laid out as one document, where CSS page counters count the whole
batch, so the numbers are stamped after the layout, once the pages are split by invoice: one
small document of the labels (:func:`_page_labels`) laid over the pages.

Speed: rendering one WeasyPrint document per invoice costs a layout set-up each time. Here
invoices are laid out in batches (one HTML document of many invoices, each starting on a new
page), the pages are split back into one PDF per invoice (each invoice's first page carries its
anchor), and batches run in a process pool on all cores.

Workers end with their parent: each worker asks Linux to kill it when its parent dies
(``prctl(PR_SET_PDEATHSIG, SIGKILL)``) and, on every system, watches its parent from a thread
(:data:`WATCH_INTERVAL`), so a ``production`` or ``documents`` killed (SIGTERM, SIGKILL) leaves no
worker rendering on.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import jinja2
import markupsafe

from workbench.money import blank_if_missing
from workbench.text import strip_bidi

TEMPLATES = Path(__file__).resolve().parent.parent.parent / "templates"
BATCH = 100  # invoices laid out as one document, at most
WATCH_INTERVAL = 0.5  # seconds between two checks that a worker's parent is alive
_PR_SET_PDEATHSIG = 1  # linux/prctl.h

LABELS = {
    "fr": {
        "invoice": "Facture", "credit_note": "Avoir", "draft_mark": "BROUILLON - NE VAUT PAS FACTURE",
        "invoice_date": "Date de facture", "due_date": "Échéance", "period": "Période", "account": "Compte client",
        "siren": "SIREN", "vat_number": "N° TVA", "description": "Désignation", "from_to": "Période",
        "quantity": "Qté", "unit_price": "Prix unitaire HT", "vat_rate": "TVA %", "amount_excl": "Montant HT",
        "type_one_off": "Frais ponctuels", "type_recurring": "Abonnements", "type_prorated": "Abonnements au prorata",
        "type_consumption": "Consommations", "type_credit": "Avoir imputé",
        "type_adjustment": "Avoir partiel",
        "consumption_summary": "par zone", "zone": "Zone", "call_details": "Détail des appels",
        "call_time": "Date et heure", "called_number": "Numéro appelé", "duration": "Durée", "calls": "appels",
        "minutes": "Minutes", "vat_base": "Base HT", "vat": "TVA", "total_excl": "Total HT", "total_vat": "Total TVA",
        "total_incl": "Total TTC", "credit_applied": "Avoir imputé", "net_payable": "Net à payer",
        "previous": "Montant de la facture précédente",
        "paid_by_debit": "Prélèvement SEPA le", "mandate": "mandat",
        "paid_by_transfer": "À régler par virement avant le", "reference": "référence",
        "corrects": "Avoir sur la facture", "set_off": "Déduit du prélèvement de la facture {invoice} :",
        "to_credit": "Porté au crédit de votre compte, déduit de vos prochaines factures :",
        "penalties": "En cas de retard de paiement, des pénalités au taux de {rate} sont exigibles.",
        "penalty_rate": "trois fois le taux d'intérêt légal",
        "indemnity": "Indemnité forfaitaire pour frais de recouvrement : {amount} (art. L441-10 du Code de commerce). "
                     "Pas d'escompte pour paiement anticipé.",
        "operation_nature": "Nature de l'opération", "services": "Prestations de services",
        "corrected_invoice": "Facture annulée", "dated": "du", "service_address": "Adresse de service",
        "vat_category": "Catégorie",
        "vat_on_debits": "Option pour le paiement de la taxe d'après les débits",
        "masked_numbers": "Les quatre derniers chiffres des numéros appelés sont masqués.",
        "page": "page {page} sur {pages}",
    },
    "en": {
        "invoice": "Invoice", "credit_note": "Credit note", "draft_mark": "DRAFT - NOT AN INVOICE",
        "invoice_date": "Invoice date", "due_date": "Due date", "period": "Period", "account": "Account",
        "siren": "SIREN", "vat_number": "VAT no.", "description": "Description", "from_to": "Period",
        "quantity": "Qty", "unit_price": "Unit price excl. VAT", "vat_rate": "VAT %", "amount_excl": "Amount excl. VAT",
        "type_one_off": "One-off charges", "type_recurring": "Subscriptions", "type_prorated": "Prorated subscriptions",
        "type_consumption": "Calls", "type_credit": "Credit applied",
        "type_adjustment": "Partial credit",
        "consumption_summary": "by zone", "zone": "Zone", "call_details": "Call details",
        "call_time": "Date and time", "called_number": "Number called", "duration": "Duration", "calls": "calls",
        "minutes": "Minutes",
        "vat_base": "Taxable amount", "vat": "VAT", "total_excl": "Total excl. VAT", "total_vat": "Total VAT",
        "total_incl": "Total incl. VAT", "credit_applied": "Credit applied", "net_payable": "Net payable",
        "previous": "Previous invoice amount",
        "paid_by_debit": "SEPA direct debit on", "mandate": "mandate",
        "paid_by_transfer": "Payable by bank transfer by", "reference": "reference",
        "corrects": "Credit note for invoice", "set_off": "Taken off the direct debit of invoice {invoice}:",
        "to_credit": "Credited to your account, for your next invoices:",
        "penalties": "Late payment penalties at {rate} are due.",
        "penalty_rate": "three times the French legal interest rate",
        "indemnity": "Fixed indemnity for recovery costs: {amount} (French Commercial Code, art. L441-10). "
                     "No discount for early payment.",
        "operation_nature": "Nature of the supply", "services": "Services",
        "corrected_invoice": "Cancelled invoice", "dated": "of", "service_address": "Service address",
        "vat_category": "Category",
        "vat_on_debits": "VAT paid on debits (option, French General Tax Code art. 269-2-c)",
        "masked_numbers": "The last four digits of the numbers called are masked.",
        "page": "page {page} of {pages}",
    },
}


def _restricted_fetcher(templates: Path = TEMPLATES):
    """A WeasyPrint URL fetcher serving only files of the ``templates`` folder."""
    from urllib.parse import unquote, urlparse

    from weasyprint.urls import URLFetcher

    class TemplatesOnly(URLFetcher):
        def fetch(self, url, headers=None):
            parsed = urlparse(url)
            path = Path(unquote(parsed.path)).resolve() if parsed.scheme == "file" else None
            if path is None or not path.is_relative_to(templates) or not path.is_file():
                raise ValueError(f"resource {url!r} is outside the templates folder: not fetched")
            return super().fetch(url, headers)

    return TemplatesOnly(allowed_protocols={"file"}, timeout=5)


_ENVIRONMENTS: dict[Path, jinja2.Environment] = {}


def templates_folder(templates: str | Path | None = None) -> Path:
    """The templates folder to use: ``templates`` (e.g. the ``templates_dir`` setting) or the
    bundled one."""
    return Path(templates).resolve() if templates else TEMPLATES


def _printed(value):
    """A template value as printed: never ``None`` or ``nan`` (:func:`~workbench.money.blank_if_missing`),
    and without bidirectional controls (:func:`~workbench.text.strip_bidi`: a right-to-left override in
    a name stored before it was refused at load would print the rest of the line backwards)."""
    value = blank_if_missing(value)
    return value if isinstance(value, markupsafe.Markup) else strip_bidi(value)


def _environment(templates: Path) -> jinja2.Environment:
    if templates not in _ENVIRONMENTS:
        _ENVIRONMENTS[templates] = jinja2.Environment(loader=jinja2.FileSystemLoader(templates), autoescape=True,
                                                      undefined=jinja2.StrictUndefined,
                                                      finalize=_printed)
    return _ENVIRONMENTS[templates]


def html(models: list[dict], operator: dict, draft: bool, templates: str | Path | None = None) -> str:
    """The HTML of invoices laid out one after the other."""
    return _environment(templates_folder(templates)).get_template("invoice.html").render(
        invoices=models, operator=operator, draft=draft, labels=LABELS)


def _document(models, operator, draft, templates=None):
    from weasyprint import HTML

    folder = templates_folder(templates)
    return HTML(string=html(models, operator, draft, folder), base_url=str(folder) + "/",
                url_fetcher=_restricted_fetcher(folder)).render()


def render_batch(models: list[dict], operator: dict, draft: bool,
                 templates: str | Path | None = None) -> dict[str, bytes]:
    """One PDF per invoice (by number), from one layout and one PDF of the whole batch, split
    by pages (fonts are subset once per batch, which is most of the cost of writing a PDF)."""
    import io

    from pypdf import PdfReader, PdfWriter

    if not models:
        return {}
    document = _document(models, operator, draft, templates)
    owners: list[int] = []
    current = -1
    for page in document.pages:
        starts = [int(a[4:]) for a in page.anchors if a.startswith("inv-")]
        if starts:
            current = max(starts)
        owners.append(current)
    whole = PdfReader(io.BytesIO(document.write_pdf()))
    numbers = _page_numbers(_page_labels(models, owners))
    out = {}
    for index, model in enumerate(models):
        writer = PdfWriter()
        for number, owner in enumerate(owners):
            if owner == index:
                writer.add_page(whole.pages[number]).merge_page(numbers.pages[number])
        writer.add_metadata({"/Title": f"{model['number']}", "/Author": operator.get("name", "")})
        buffer = io.BytesIO()
        writer.write(buffer)
        out[model["number"]] = buffer.getvalue()
    return out


def render_one(model: dict, operator: dict, draft: bool, templates: str | Path | None = None) -> bytes:
    """The naive way: one WeasyPrint document for one invoice (kept for comparison), its pages
    numbered as :func:`render_batch` numbers them."""
    import io

    from pypdf import PdfReader, PdfWriter

    document = _document([model], operator, draft, templates)
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(document.write_pdf())))
    numbers = _page_numbers(_page_labels([model], [0] * len(writer.pages)))
    for page, number in zip(writer.pages, numbers.pages, strict=True):
        page.merge_page(number)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def _page_labels(models: list[dict], owners: list[int]) -> list[str]:
    """The page number of each page of a batch (``owners``: the index in ``models`` of the
    invoice each page belongs to), counted within its invoice, in its language: ``page 2 of 3``."""
    pages = {owner: owners.count(owner) for owner in set(owners)}
    seen: dict[int, int] = {}
    out = []
    for owner in owners:
        seen[owner] = seen.get(owner, 0) + 1
        lang = models[owner].get("lang", "fr") if 0 <= owner < len(models) else "fr"
        out.append(LABELS.get(lang, LABELS["fr"])["page"].format(page=seen[owner], pages=pages[owner]))
    return out


def _page_numbers(labels: list[str]):
    """A ``pypdf.PdfReader`` of one page per label, the label alone bottom right in the page
    margin (A4, as ``invoice.css`` sets the pages), to lay over the invoice pages."""
    import io

    from pypdf import PdfReader
    from weasyprint import HTML

    body = "".join(f'<div class="p"><span>{markupsafe.escape(label)}</span></div>' for label in labels)
    css = ("@page { size: A4; margin: 0 } body { margin: 0 } "
           ".p { position: relative; height: 296mm; break-after: page; } "
           ".p span { position: absolute; right: 14mm; bottom: 8mm; font: 7.5pt 'DejaVu Sans', sans-serif; "
           "color: #666; }")
    overlay = PdfReader(io.BytesIO(HTML(string=f"<html><head><style>{css}</style></head><body>{body}</body></html>",
                                        url_fetcher=_restricted_fetcher()).write_pdf()))
    if len(overlay.pages) != len(labels):
        raise RuntimeError(f"{len(overlay.pages)} pages of page numbers laid out for {len(labels)} pages")
    return overlay


def _parent_death_signal() -> bool:
    """Linux: have the kernel send SIGKILL to this process when its parent dies; False elsewhere
    or if the call fails."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent: int, interval: float) -> None:
    while True:
        if os.getppid() != parent:  # re-parented: the parent is gone
            os._exit(1)
        time.sleep(interval)


def end_with_parent(parent: int | None = None, interval: float = WATCH_INTERVAL) -> None:
    """Make this (worker) process end when its parent does: the Linux parent-death signal, and a
    daemon thread that exits the process once ``os.getppid()`` is no longer ``parent`` (default:
    the parent now). A parent already gone (``parent`` given and not the parent now) ends it at once."""
    current = os.getppid()
    _parent_death_signal()
    parent = current if parent is None else parent
    if os.getppid() != parent:  # died before the signal was armed
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent, interval), name="parent-watch", daemon=True).start()


def batches(models: list[dict], workers: int, batch: int = BATCH) -> list[list[dict]]:
    """``models`` cut into batches of at most ``batch`` invoices, in order; fewer than
    ``workers * batch`` invoices are split evenly between the ``workers``."""
    size = max(1, min(batch, -(-len(models) // max(workers, 1))))
    return [models[i:i + size] for i in range(0, len(models), size)]


def render_invoices(models: list[dict], operator: dict, draft: bool, workers: int | None = None,
                    batch: int = BATCH, templates: str | Path | None = None) -> dict[str, bytes]:
    """PDFs of many invoices, by number: batches laid out in a process pool."""
    workers = workers or os.cpu_count() or 1
    chunks = batches(models, workers, batch)
    if workers == 1 or len(chunks) <= 1:
        out = {}
        for chunk in chunks:
            out.update(render_batch(chunk, operator, draft, templates))
        return out
    out = {}
    import multiprocessing

    # fork and spawn make the workers children of this process; forkserver of its server
    parent = os.getpid() if multiprocessing.get_start_method() in ("fork", "spawn") else None
    with ProcessPoolExecutor(max_workers=min(workers, len(chunks)), initializer=end_with_parent,
                             initargs=(parent,)) as pool:
        for result in pool.map(render_batch, chunks, [operator] * len(chunks), [draft] * len(chunks),
                               [templates] * len(chunks)):
            out.update(result)
    return out
