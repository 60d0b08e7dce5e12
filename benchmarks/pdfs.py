"""Invoice PDF benchmark: our renderer against the naive one-document-per-invoice loop.

    python benchmarks/pdfs.py [--invoices 1000] [--naive N] [--workers N]

Set-up (not timed): a sample operator of ``--invoices`` customers is generated, loaded, rated and
billed in pre-production, which gives that many draft invoices. Then, on the same template and
the same invoices, it times:

* our renderer (:func:`workbench.documents.render_invoices`: batches laid out once, one PDF per
  batch split by pages, a process pool on all cores);
* the naive loop: one WeasyPrint document per invoice, one after the other (on ``--naive``
  invoices, all by default),

and prints invoices/s of each and the ratio (target >= 6). Every PDF of our renderer is then
checked with pdftotext (or pypdf when pdftotext is missing): the invoice number on its first
page and the total including VAT on its last page.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from workbench.billing import default_dates, preprod
from workbench.config import Settings
from workbench.db.engine import make_engine, upgrade
from workbench.documents import invoice_models, operator_identity, render_invoices, render_one
from workbench.integration import load_cdr_files
from workbench.period import Period
from workbench.rated_calls import rate_period
from workbench.reads.runs import RunOptions
from workbench.reference import load_reference
from workbench.sample import generate_operator

OUT = Path(__file__).resolve().parent / "out"
NOW = datetime(2026, 11, 1, 6, 0)


def page_texts(pdf: bytes) -> list[str]:
    if shutil.which("pdftotext"):
        with tempfile.NamedTemporaryFile(suffix=".pdf") as fh:
            fh.write(pdf)
            fh.flush()
            text = subprocess.run(["pdftotext", "-layout", fh.name, "-"], capture_output=True, text=True,
                                  check=True).stdout
        return text.split("\f")[:-1] if text.endswith("\f") else text.split("\f")
    from pypdf import PdfReader

    return [page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--invoices", type=int, default=1000)
    parser.add_argument("--naive", type=int, default=None, help="invoices for the naive loop (default: all)")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--fonttools", action="store_true",
                        help="subset fonts with fontTools, as WeasyPrint does where HarfBuzz's subsetter "
                             "(libharfbuzz-subset) is missing")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    import weasyprint.pdf.fonts

    if args.fonttools:  # before the process pool forks, so that its workers do the same
        weasyprint.pdf.fonts.harfbuzz_subset = None
    print("font subsetting: " + ("HarfBuzz" if weasyprint.pdf.fonts.harfbuzz_subset else "fontTools"))
    data = args.out / f"pdf-operator-{args.invoices}"
    if not (data / "cdrs").exists():
        generate_operator(data, seed=7, customers=args.invoices, calls=args.invoices * 40)
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(database_url=f"sqlite:///{folder}/bench.sqlite", output_dir=folder)
        engine = make_engine(settings.database_url)
        upgrade(engine)
        load_reference(engine, data / "reference")
        load_cdr_files(engine, sorted((data / "cdrs").iterdir()), settings, lambda: NOW)
        rate_period(engine, "2026-10", settings, NOW)
        invoice_date, due_date = default_dates(Period.parse("2026-10"), settings)
        run = preprod(engine, RunOptions("2026-10", invoice_date, due_date), settings, NOW, "bench")
        from sqlalchemy import select

        from workbench.db import schema as s

        with engine.connect() as connection:
            ids = [r[0] for r in connection.execute(
                select(s.Invoice.id).where(s.Invoice.run_id == run.run_id).order_by(s.Invoice.number))]
            models = invoice_models(connection, ids)
            totals = dict(connection.execute(select(s.Invoice.number, s.Invoice.total_incl_cents)
                                             .where(s.Invoice.run_id == run.run_id)).all())
        engine.dispose()
    operator = operator_identity(settings)
    print(f"invoices: {len(models)}")

    t0 = time.perf_counter()
    pdfs = render_invoices(models, operator, draft=True, workers=args.workers)
    ours = time.perf_counter() - t0
    print(f"our renderer: {ours:.1f} s, {len(models) / ours:.2f} invoices/s")

    sample = models[: args.naive or len(models)]
    t0 = time.perf_counter()
    for model in sample:
        render_one(model, operator, draft=True)
    naive = time.perf_counter() - t0
    print(f"naive loop ({len(sample)} invoices): {naive:.1f} s, {len(sample) / naive:.2f} invoices/s")
    print(f"ratio: {(len(models) / ours) / (len(sample) / naive):.1f}x (target >= 6)")

    bad = []
    for model in models:
        pages = page_texts(pdfs[model["number"]])
        euros, cents = divmod(totals[model["number"]], 100)
        written = {"fr": f"{euros},{cents:02d}€", "en": f"€{euros:,}.{cents:02d}"}[model["lang"]]
        last = "".join(pages[-1].replace("\u202f", "").replace("\u00a0", "").split())
        if model["number"] not in pages[0] or written not in last:
            bad.append(model["number"])
    print(f"checked {len(models)} PDFs: {len(models) - len(bad)} show their number on page 1 and their total on "
          f"the last page" + (f"; wrong: {bad[:10]}" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
