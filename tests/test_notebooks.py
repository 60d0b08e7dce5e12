"""The notebooks, executed as users run them (papermill), and the dashboards, served by Voila and
opened in headless Chromium (Playwright driving Debian's chromium)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import nbformat
import papermill
import pytest
from factories import approved
from sqlalchemy import func, select

from workbench.cli import main
from workbench.config import Settings
from workbench.db import schema as s
from workbench.db.engine import make_engine, upgrade
from workbench.reference import load_reference
from workbench.sample import generate_operator

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A small operator (20 customers, 2,000 calls) of the test's own, with its reference data
    loaded; the settings are in the environment, as a user's would be."""
    base = tmp_path / "workspace"
    generate_operator(base / "data", seed=5, customers=20, calls=2_000)
    values = {"WORKBENCH_DATABASE_URL": f"sqlite:///{base / 'wb.sqlite'}", "WORKBENCH_STORAGE_URL": str(base / "ftp"),
              "WORKBENCH_OUTBOX_DIR": str(base / "outbox"), "WORKBENCH_OUTPUT_DIR": str(base / "out")}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    engine = make_engine(values["WORKBENCH_DATABASE_URL"])
    upgrade(engine)
    load_reference(engine, base / "data" / "reference")
    yield {"base": base, "engine": engine, "settings": Settings(database_url=values["WORKBENCH_DATABASE_URL"],
                                                                   storage_url=values["WORKBENCH_STORAGE_URL"],
                                                                   outbox_dir=values["WORKBENCH_OUTBOX_DIR"],
                                                                   output_dir=values["WORKBENCH_OUTPUT_DIR"])}
    engine.dispose()


@pytest.fixture
def preprod_run(workspace):
    """The workspace's October calls loaded and rated, and a pre-production run of October."""
    from workbench import jobs

    engine, settings, now = workspace["engine"], workspace["settings"], datetime(2026, 11, 1, 6, 0)
    jobs.load_cdrs(engine, settings, jobs.cdr_files(workspace["base"] / "data" / "cdrs"), clock=lambda: now)
    jobs.rate(engine, settings, "2026-10", now)
    return jobs.preprod(engine, settings, jobs.run_options(settings, "2026-10"), now).run


@pytest.fixture
def hostile(workspace):
    """Customers C100001 and C100002 renamed, through the reference files, as an attacker would
    name a company: an image pointing at a local HTTP server (started here, it records every
    request) with a script in ``onerror``, a script element, a script in an SVG's ``onload``.
    Shown as text, none of them may become an element, run, or fetch anything."""
    import csv
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            hits.append(self.path)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/pixel.png"
    names = {"C100001": f'<img src="{url}" onerror="window.__pwned=1">',
             "C100002": "<script>window.__pwned=2</script>\u202eBeta"}  # and a right-to-left override
    address = '<svg onload="window.__pwned=3"></svg>'
    folder = workspace["base"] / "data" / "reference"
    with open(folder / "customers.csv", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        if row["account_number"] in names:
            row["name"], row["address_line1"] = names[row["account_number"]], address
    with open(folder / "customers.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    load_reference(workspace["engine"], folder)
    yield {"url": url, "hits": hits, "names": names, "address": address}
    server.shutdown()


def _no_hostile_markup(html_text: str, hostile: dict) -> None:
    """No hostile name's tag in ``html_text`` as markup; each is there, escaped, as text."""
    for tag in ("<img src=\"http://127.0.0.1", "<script>window.__pwned", "<svg onload"):
        assert tag not in html_text, tag
    assert "&lt;img src=" in html_text and "&lt;script&gt;window.__pwned=2" in html_text
    assert "\u202e" not in html_text  # shown without its bidirectional override


def _assert_page_is_clean(page, requests: list[str], hostile: dict) -> None:
    """No element made from a hostile name in the page's DOM, no script of theirs ran, nothing
    requested from their URL (by the browser's own count and by the server's)."""
    assert page.evaluate("document.querySelectorAll('img[src*=\"pixel\"], svg[onload], [onerror]').length") == 0
    assert page.evaluate("[...document.scripts].filter(s => s.text.includes('__pwned')).length") == 0
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert [r for r in requests if "pixel" in r or r.startswith(hostile["url"].rsplit("/", 1)[0])] == []
    assert hostile["hits"] == []


def execute(name: str, out: Path, **parameters) -> nbformat.NotebookNode:
    papermill.execute_notebook(str(NOTEBOOKS / name), str(out), parameters=parameters, cwd=str(NOTEBOOKS),
                               progress_bar=False, kernel_name="python3")
    return nbformat.read(out, as_version=4)


def outputs(book) -> str:
    text = []
    for cell in book.cells:
        for output in cell.get("outputs", []):
            if "text" in output:
                text.append(output["text"])
            for kind in ("text/plain", "text/html"):
                if kind in output.get("data", {}):
                    text.append(output["data"][kind])
    return "\n".join(text)


def count(engine, table) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(table)).scalar_one()


def test_the_cycle_in_the_notebooks(workspace, hostile, tmp_path):
    engine, base = workspace["engine"], workspace["base"]
    book = execute("01_cdr_integration.ipynb", tmp_path / "01.ipynb", cdr_folder=str(base / "data" / "cdrs"),
                   load_now=True)
    text = outputs(book)
    stored = count(engine, s.Cdr.__table__)
    rejected = count(engine, s.CdrReject.__table__)
    assert stored > 1_800 and rejected > 0
    assert "switch-2026-10.csv.gz" in text and "asterisk-Master.csv.gz" in text
    with engine.connect() as connection:
        reasons = dict(connection.execute(select(s.CdrReject.reason, func.count()).group_by(s.CdrReject.reason)).all())
    last = book.cells[-1].outputs[0]["data"]["text/plain"]
    for reason, records in reasons.items():
        assert reason in last and str(records) in last

    book = execute("02_rating.ipynb", tmp_path / "02.ipynb", period="2026-10", rate_now=True)
    rated = count(engine, s.RatedCall.__table__)
    assert rated > 1_800
    traffic = next(c for c in book.cells if c.source.startswith("traffic = ")).outputs[0]["data"]["text/plain"]
    assert "NAT_FIXED" in traffic and "peak" in traffic
    assert any(o.get("output_type") == "display_data" and "image/png" in o.get("data", {})
               for c in book.cells for o in c.get("outputs", []))

    book = execute("03_preprod_billing.ipynb", tmp_path / "03.ipynb", period="2026-10", run_now=True)
    with engine.connect() as connection:
        run_id = connection.execute(select(func.max(s.BillingRun.id))).scalar_one()
        drafts = connection.execute(select(func.count()).where(s.Invoice.run_id == run_id)).scalar_one()
    assert drafts == 20
    text = outputs(book)
    assert f"PRE-{run_id}-0001" in text and f"PRE-{run_id}-0020" in text
    # the control report: the invoices with their totals, and the anomalies, among them the
    # records rejected at loading, file by file and reason by reason
    invoices = next(c for c in book.cells if c.source.startswith("ui.styled_invoices(")).outputs[0]["data"]
    assert "Total amount billed" in invoices["text/html"]
    anomalies = next(c for c in book.cells if c.source.startswith('sheets["Anomalies"]')).outputs[0]["data"]
    with engine.connect() as connection:
        rejects = connection.execute(select(s.CdrFile.name, s.CdrReject.reason, func.count())
                                     .join(s.CdrFile, s.CdrFile.id == s.CdrReject.file_id)
                                     .group_by(s.CdrFile.name, s.CdrReject.reason)).all()
    rows = [[part.split("</td>")[0] for part in row.split("<td>")[1:]]
            for row in anomalies["text/html"].split("<tr")[1:]]
    # each problem in the same four columns (source, line or key, problem, detail), then the customer's name
    shown = {(r[0], r[2], r[3]) for r in rows if len(r) == 5 and r[3].endswith(f"records rejected: {r[2]}")}
    assert rejects and len(shown) == len(rejects)
    for file, reason, records in rejects:
        assert (file, reason, f"{records} records rejected: {reason}") in shown
    # the period balance closes: each section's difference is 0
    balance = next(c for c in book.cells if c.source.startswith('sheets["Period balance"]')).outputs[0]["data"]
    differences = [row for row in balance["text/html"].split("<tr")[1:] if "difference (must be 0)" in row]
    assert len(differences) == 4
    assert all("<td>0</td>" in row for row in differences)
    # customer names in every HTML output are text, escaped: the invoice table shows them
    _no_hostile_markup(invoices["text/html"], hostile)
    _no_hostile_markup("\n".join(o["data"]["text/html"] for c in book.cells for o in c.get("outputs", [])
                                 if "text/html" in o.get("data", {})), hostile)
    assert hostile["hits"] == []


def test_production_notebook_headless(workspace, preprod_run, capsys, monkeypatch):
    engine, run_id = workspace["engine"], preprod_run.run_id
    assert preprod_run.invoices == 20  # a draft for each customer of the operator

    def issued() -> tuple[int, int]:
        """(production runs, issued invoices)"""
        with engine.connect() as connection:
            return (connection.execute(select(func.count()).where(s.BillingRun.kind == "production")).scalar_one(),
                    connection.execute(select(func.count()).where(s.Invoice.status == "issued")).scalar_one())

    # bad parameters: the notebook stops, the command fails with status 2, nothing is issued
    assert main(["production-notebook", "--run", str(run_id), "--period", "2026-09"]) == 2
    assert "bills 2026-10, not 2026-09" in capsys.readouterr().err
    assert issued() == (0, 0)
    assert main(["production-notebook", "--run", "999", "--period", "2026-10"]) == 2
    assert "no billing run 999" in capsys.readouterr().err
    assert issued() == (0, 0)
    assert not (workspace["base"] / "ftp" / "invoices").exists() and not (workspace["base"] / "outbox").exists()
    # good parameters, from the operator's folder with relative settings: the kernel works on the
    # same database and folders as the command (not on the project's own var/)
    monkeypatch.chdir(workspace["base"])
    for name, value in (("DATABASE_URL", "sqlite:///wb.sqlite"), ("STORAGE_URL", "ftp"), ("OUTBOX_DIR", "outbox"),
                        ("OUTPUT_DIR", "out")):
        monkeypatch.setenv(f"WORKBENCH_{name}", value)
    # nobody approved the run: the scheduled job finds no approved run of the period
    assert main(["production-notebook", "--approved", "--period", "2026-10"]) == 2
    assert "no pre-production run of 2026-10 is approved" in capsys.readouterr().err
    assert issued() == (0, 0)
    approved(engine, run_id)
    assert main(["production-notebook", "--approved", "--period", "2026-10"]) == 0
    out = capsys.readouterr().out
    executed = workspace["base"] / out.split("executed: ")[1].split(" (also")[0]
    assert "wb.sqlite" not in executed.read_text()  # no setting is written into the audit notebook
    # the notebook shows the job's summary, and the command prints the same for the cron log
    result = nbformat.read(executed, as_version=4).cells[-1].outputs[0]["data"]
    assert "20 invoices issued (F2026-000001 to F2026-000020)" in result["text/html"]
    assert result["text/plain"] in out
    lines = out.splitlines()
    assert lines[1:3] == ["Invoices:", f"  pre-production run {run_id}, period 2026-10"]
    assert lines[3].endswith(": 20 invoices issued (F2026-000001 to F2026-000020)")
    for section in ("PDFs:", "  20 PDFs stored", "Emails:", "SEPA direct debits:", "Left undone:"):
        assert section in lines
    assert issued() == (1, 20)
    audit = list((workspace["base"] / "ftp" / "audit" / "2026-10").glob("*.ipynb"))
    assert executed.name in [p.name for p in audit]
    assert len(list((workspace["base"] / "ftp" / "invoices").rglob("*.pdf"))) == 20
    # running it again issues nothing twice and says so
    assert main(["production-notebook", "--approved", "--period", "2026-10"]) == 0
    again = capsys.readouterr().out
    assert f"run {run_id} was already issued" in again and "Left undone:\n  nothing" in again
    assert issued() == (1, 20)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def voila(workspace):
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("Debian chromium is missing")
        pytest.skip("Debian chromium is missing")
    servers = []

    def serve(notebook: str) -> str:
        port = _free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "voila", str(NOTEBOOKS / "dashboards" / notebook), "--no-browser",
             f"--port={port}", "--Voila.ip=127.0.0.1", "--Voila.tornado_settings={'debug': False}"],
            cwd=str(ROOT), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
        servers.append(process)
        deadline = time.time() + 60
        while time.time() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    return f"http://127.0.0.1:{port}/"
            time.sleep(0.2)
        raise RuntimeError("voila did not start")

    yield serve
    for process in servers:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield chromium
        chromium.close()


def test_review_dashboard(workspace, hostile, voila, browser, tmp_path):
    engine = workspace["engine"]
    settings = workspace["settings"]
    from workbench.billing import preprod
    from workbench.reads.runs import RunOptions

    first = preprod(engine, RunOptions("2026-10", datetime(2026, 11, 1).date(), datetime(2026, 12, 1).date(),
                                       "accounts:C100001,C100002"), settings, datetime(2026, 11, 1))
    latest = preprod(engine, RunOptions("2026-10", datetime(2026, 11, 1).date(), datetime(2026, 12, 1).date()),
                     settings, datetime(2026, 11, 1))
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(voila("review.ipynb"), timeout=90_000)
    page.wait_for_selector(f"text=PRE-{latest.run_id}-0001", timeout=90_000)
    # nothing of the hostile names runs, and they are in the invoice table as text
    _assert_page_is_clean(page, requests, hostile)
    assert page.get_by_text("<script>window.__pwned=2</script>Beta", exact=False).count() >= 1
    assert page.get_by_text(hostile["names"]["C100001"], exact=False).count() >= 1
    assert page.locator(f"h3:has-text('Run {latest.run_id}')").count() == 1
    euros, cents = divmod(latest.total_incl_cents, 100)
    assert page.locator(f"text=€{euros:,}.{cents:02d}").count() >= 1  # the total, written in English
    page.screenshot(path=str(tmp_path / "review.png"))
    page.locator("select").first.select_option(value=next(
        o for o in page.locator("select").first.locator("option").all_inner_texts() if f"Run {first.run_id} " in
        o.replace("\xa0", " ")))
    page.wait_for_selector(f"h3:has-text('Run {first.run_id}')", timeout=60_000)
    page.wait_for_selector(f"text=PRE-{first.run_id}-0001", timeout=60_000)
    page.screenshot(path=str(tmp_path / "review-other-run.png"))
    assert (tmp_path / "review.png").stat().st_size > 10_000
    _assert_page_is_clean(page, requests, hostile)


def test_client_profile_dashboard(workspace, hostile, voila, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(voila("client_profile.ipynb"), timeout=90_000)
    page.wait_for_selector("text=C100001", timeout=90_000)
    page.wait_for_selector("h4:has-text('Subscriptions')", timeout=60_000)
    # C100001's name and address are the profile's title and first line, as text
    assert page.locator("h3").filter(has_text=hostile["names"]["C100001"]).count() == 1
    assert page.get_by_text(hostile["address"], exact=False).count() >= 1
    _assert_page_is_clean(page, requests, hostile)
    page.screenshot(path=str(tmp_path / "profile.png"))
    box = page.locator("input[list]").first
    box.fill("C100002")
    box.press("Enter")
    page.wait_for_selector("h3:has-text('(C100002)')", timeout=60_000)
    assert page.locator("h3").filter(has_text="<script>window.__pwned=2</script>Beta").count() == 1
    page.screenshot(path=str(tmp_path / "profile-other.png"))
    assert (tmp_path / "profile.png").stat().st_size > 10_000
    _assert_page_is_clean(page, requests, hostile)
