"""The notebooks, executed as users run them (papermill), and the dashboards, served by Voila and
opened in headless Chromium (Playwright driving Debian's chromium)."""

from __future__ import annotations

import os
import shutil
from datetime import datetime
from pathlib import Path

import nbformat
import papermill
import pytest
from factories import all_ratings, approved, table_counts
from servers import Voila, open_dashboard, start_voila
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


def widget_outputs(book) -> list:
    """What the notebook's Output widgets showed (kept in its widget state by nbclient)."""
    state = book.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    return [output for model in state.values() for output in model.get("state", {}).get("outputs", [])]


def all_outputs(book) -> list:
    return [output for cell in book.cells for output in cell.get("outputs", [])] + widget_outputs(book)


def outputs(book) -> str:
    text = []
    for output in all_outputs(book):
        if "text" in output:
            text.append(output["text"])
        for kind in ("text/plain", "text/html"):
            if kind in output.get("data", {}):
                text.append(output["data"][kind])
        text.extend(output.get("traceback", []))
    return "\n".join(text)


def tables(outputs_: list) -> list[tuple[list[str], list[list]]]:
    """The interactive tables of some outputs: (column names, rows) each, as the browser gets them."""
    import html
    import json

    found = []
    for output in outputs_:
        markup = output.get("data", {}).get("text/html", "")
        for part in markup.split('data-dt-args="')[1:]:
            args = json.loads(html.unescape(part.split('"', 1)[0]))
            names = [html.unescape(n) for n in args["table_html"].split("<tfoot>")[0].split("<th>")[1:]]
            names = [n.split("</th>")[0] for n in names]
            found.append((names, json.loads(args["data_json"])))
    return found


def table_with(outputs_: list, *columns: str) -> tuple[list[str], list[list]]:
    return next(t for t in tables(outputs_) if all(c in t[0] for c in columns))


def count(engine, table) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(table)).scalar_one()


def test_the_cycle_in_the_notebooks(workspace, hostile, tmp_path):
    engine, base = workspace["engine"], workspace["base"]
    book = execute("01_cdr_integration.ipynb", tmp_path / "01.ipynb", cdr_folder=str(base / "data" / "cdrs"),
                   load_now=True)
    text = outputs(book)
    stored = table_counts(engine)["calls"]
    rejected = count(engine, s.CdrReject.__table__)
    assert stored > 1_800 and rejected > 0
    assert "switch-2026-10.csv.gz" in text and "asterisk-Master.csv.gz" in text
    with engine.connect() as connection:
        by_file = connection.execute(select(s.CdrFile.name, s.CdrReject.reason, func.count())
                                     .join(s.CdrFile, s.CdrFile.id == s.CdrReject.file_id)
                                     .group_by(s.CdrFile.name, s.CdrReject.reason)).all()
    # the rejects panel counts them by file and reason (what the panel showed, after the load)
    _, rows = table_with(all_outputs(book), "File", "Reason", "Records")
    assert sorted((f, r, int(n)) for f, r, n in rows) == sorted((f, r, int(n)) for f, r, n in by_file)

    book = execute("02_rating.ipynb", tmp_path / "02.ipynb", period="2026-10", rate_now=True)
    rated = len(all_ratings(engine))
    assert rated > 1_800
    traffic = next(c for c in book.cells if c.source.startswith("traffic = ")).outputs
    names, rows = table_with(traffic, "Zone", "Time band", "Revenue")
    assert "NAT_FIXED" in {r[0] for r in rows} and "peak" in {r[1] for r in rows}
    assert all(r[names.index("Revenue")].startswith("€") for r in rows)  # euros, for people
    assert any(o.get("output_type") == "display_data" and "image/png" in o.get("data", {})
               for c in book.cells for o in c.get("outputs", []))

    book = execute("03_preprod_billing.ipynb", tmp_path / "03.ipynb", period="2026-10", run_now=True)
    with engine.connect() as connection:
        run_id = connection.execute(select(func.max(s.BillingRun.id))).scalar_one()
        drafts = connection.execute(select(func.count()).where(s.Invoice.run_id == run_id)).scalar_one()
    assert drafts == 20
    shown = all_outputs(book)
    # the control report of the run launched: the invoices with their totals, anomalies first
    names, invoices = table_with(shown, "Anomalies", "Invoice number", "Total amount billed")
    assert sorted(r[names.index("Invoice number")] for r in invoices) == [f"PRE-{run_id}-{n:04d}" for n in
                                                                           range(1, 21)]
    flagged = [bool(r[0]) for r in invoices]
    assert flagged == sorted(flagged, reverse=True)
    # the anomalies, among them the records rejected at loading, file by file and reason by reason
    _, anomalies = table_with(shown, "Source", "Line or key", "Problem", "Detail")
    with engine.connect() as connection:
        rejects = connection.execute(select(s.CdrFile.name, s.CdrReject.reason, func.count())
                                     .join(s.CdrFile, s.CdrFile.id == s.CdrReject.file_id)
                                     .group_by(s.CdrFile.name, s.CdrReject.reason)).all()
    listed = {(r[0], r[2], r[3]) for r in anomalies if r[3].endswith(f"records rejected: {r[2]}")}
    assert rejects and len(listed) == len(rejects)
    for file, reason, records in rejects:
        assert (file, reason, f"{records} records rejected: {reason}") in listed
    # the period balance closes: each section's difference is 0
    names, balance = table_with(shown, "Section", "Line", "Calls")
    differences = [r for r in balance if r[names.index("Line")] == "difference (must be 0)"]
    assert len(differences) == 5  # one per section: records, calls, rated, in money, late calls
    assert all(str(r[names.index("Calls")]) == "0" and str(r[names.index("Seconds")]) in ("0", "")
               and r[names.index("Amount (EUR)")] in ("", "€0.0000") for r in differences), differences
    # the invoice viewer shows every page of the run's first invoice
    assert f"PRE-{run_id}-0001" in outputs(book)
    # customer names in every HTML output are text, escaped: the invoice table shows them
    html_outputs = "\n".join(o["data"]["text/html"] for o in shown if "text/html" in o.get("data", {}))
    _no_hostile_markup(html_outputs, hostile)
    assert hostile["hits"] == []


def test_notebook_errors_are_one_line_and_an_empty_month_charts_nothing(workspace, tmp_path, capsys):
    """A malformed CDR file in notebook 01: one line, the command line's, not a traceback;
    notebook 02 on a month without calls runs to its end."""
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "switch-bad.csv").write_text("call_id,start_time,calling\nA1,2026-10-01T10:00:00+02:00\n")
    assert main(["load-cdrs", str(folder / "switch-bad.csv")]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress bar
    assert line.startswith("error: ") and "switch-bad.csv" in line
    with pytest.raises(papermill.PapermillExecutionError):
        execute("01_cdr_integration.ipynb", tmp_path / "01.ipynb", cdr_folder=str(folder), load_now=True)
    book = nbformat.read(tmp_path / "01.ipynb", as_version=4)
    errors = [o for o in all_outputs(book) if o.get("output_type") == "error"]
    assert [o["traceback"] for o in errors] == [[line]]
    assert "Traceback" not in outputs(book) and 'File "' not in outputs(book)

    book = execute("02_rating.ipynb", tmp_path / "02.ipynb", period="2026-09", rate_now=True)
    assert "No rated call in 2026-09: nothing to chart." in outputs(book)
    assert not [o for o in all_outputs(book) if o.get("output_type") == "error"]


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


@pytest.fixture
def voila(workspace, tmp_path):
    """Starts Voila servers of the dashboards (:func:`servers.start_voila`, logs in the test's
    folder) and stops them after the test."""
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("Debian chromium is missing")
        pytest.skip("Debian chromium is missing")
    servers = []

    def serve(notebook: str) -> Voila:
        servers.append(start_voila(NOTEBOOKS / "dashboards" / notebook, tmp_path, env=dict(os.environ)))
        return servers[-1]

    yield serve
    for server in servers:
        server.stop()


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield chromium
        chromium.close()


def _run_picker(page):
    """The review dashboard's run picker (a widget's select, not a table's page length)."""
    return page.locator(".widget-dropdown select").first


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
    open_dashboard(page, voila, "review.ipynb", f"text=PRE-{latest.run_id}-0001")
    # nothing of the hostile names runs, and they are in the invoice table as text
    _assert_page_is_clean(page, requests, hostile)
    assert page.get_by_text("<script>window.__pwned=2</script>Beta", exact=False).count() >= 1
    assert page.get_by_text(hostile["names"]["C100001"], exact=False).count() >= 1
    assert page.locator(f"h3:has-text('Run {latest.run_id}')").count() == 1
    euros, cents = divmod(latest.total_incl_cents, 100)
    assert page.locator(f"text=€{euros:,}.{cents:02d}").count() >= 1  # the total, written in English
    # the runs with their review status: the run of all customers is the draft to review
    assert "draft" in _run_picker(page).locator("option:checked").inner_text()
    page.screenshot(path=str(tmp_path / "review.png"))
    _run_picker(page).select_option(value=next(
        o for o in _run_picker(page).locator("option").all_inner_texts() if f"Run {first.run_id} " in
        o.replace("\xa0", " ")))
    page.wait_for_selector(f"h3:has-text('Run {first.run_id}')", timeout=60_000)
    page.wait_for_selector(f"text=PRE-{first.run_id}-0001", timeout=60_000)
    page.screenshot(path=str(tmp_path / "review-other-run.png"))
    assert (tmp_path / "review.png").stat().st_size > 10_000
    _assert_page_is_clean(page, requests, hostile)


def _visible_rows(table) -> list[list[str]]:
    return [row.split("\t") for row in table.locator("tbody tr").all_inner_texts()]


def test_review_tables_sort_filter_and_the_report_downloads(workspace, preprod_run, voila, browser, tmp_path):
    """In Chromium: the control report's invoices sorted by a click on "Total amount billed"
    (twice: largest first), filtered by account number, and the Excel report downloaded."""
    import openpyxl

    engine = workspace["engine"]
    with engine.connect() as connection:
        totals = dict(connection.execute(select(s.Invoice.number, s.Invoice.total_incl_cents)
                                         .where(s.Invoice.run_id == preprod_run.run_id)).all())
    smallest, largest = min(totals, key=totals.get), max(totals, key=totals.get)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    open_dashboard(page, voila, "review.ipynb", f"text=PRE-{preprod_run.run_id}-0001", timeout=180_000)
    # the control report's invoice table (DataTables names its container after the table)
    table_id = (page.locator(".dt-container").filter(has_text=f"PRE-{preprod_run.run_id}-0001").last
                .locator("table.dataTable[id]").first.get_attribute("id"))
    invoices = page.locator(f"#{table_id}_wrapper")
    header = invoices.locator("thead th").filter(has_text="Total amount billed").first
    column = [t.strip() for t in invoices.locator("thead th").all_inner_texts()].index("Total amount billed")
    header.click()
    page.wait_for_timeout(500)
    rows = _visible_rows(invoices)
    assert rows[0][1] == smallest  # ascending, as numbers (not as text: €9.00 after €10.00)
    header.click()
    page.wait_for_timeout(500)
    rows = _visible_rows(invoices)
    euros, cents = divmod(totals[largest], 100)
    assert rows[0][1] == largest and rows[0][column] == f"€{euros:,}.{cents:02d}"
    # a column filter: one account number, one row
    account_filter = invoices.locator(".dt-scroll-foot input[placeholder='Account number']")
    account_filter.press_sequentially("C100007")
    page.wait_for_timeout(800)
    rows = _visible_rows(invoices)
    assert len(rows) == 1 and rows[0][2] == "C100007"
    assert invoices.get_by_text("filtered from 20 total entries", exact=False).count() == 1
    page.screenshot(path=str(tmp_path / "review-sorted-filtered.png"))
    # the Excel control report, downloaded from the page: the run's 20 invoices
    with page.expect_download(timeout=60_000) as download:
        page.get_by_text("Download the Excel control report").click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name == f"control-report-2026-10-run{preprod_run.run_id}.xlsx"
    book = openpyxl.load_workbook(saved, read_only=True)
    assert "Invoices" in book.sheetnames and "Anomalies" in book.sheetnames
    numbers = [row[0] for row in book["Invoices"].iter_rows(values_only=True) if str(row[0]).startswith("PRE-")]
    assert sorted(numbers) == sorted(totals)


def test_client_profile_dashboard(workspace, hostile, voila, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    open_dashboard(page, voila, "client_profile.ipynb", "text=C100001")
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


def test_a_customer_is_opened_by_a_partial_name(workspace, preprod_run, voila, browser, tmp_path):
    """A part of a name lists the customers it matches and opens none until one is picked."""
    from workbench.jobs import production

    engine = workspace["engine"]
    production(engine, workspace["settings"], approved(engine, preprod_run.run_id), "2026-10", deliver_invoices=False)
    with engine.connect() as connection:
        name = connection.execute(select(s.Customer.name).where(s.Customer.account_number == "C100003")).scalar_one()
        names = connection.execute(select(s.Customer.account_number, s.Customer.name)).all()
    part = name.split()[0][1:5]  # four letters from inside the first word
    expected = sorted(f"{a} · {n}" for a, n in names if part.lower() in f"{a} · {n}".lower())
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    open_dashboard(page, voila, "client_profile.ipynb", "h3:has-text('(C100001)')", timeout=180_000)
    box = page.locator("input[list]").first
    box.fill(part)
    box.press("Enter")
    matches = page.locator(".widget-select select").first
    page.wait_for_selector(f"text={len(expected)} customer", timeout=60_000)
    assert sorted(o.replace("\xa0", " ") for o in matches.locator("option").all_inner_texts()) == expected
    assert page.locator("h3").count() == 0  # no profile opened by itself
    matches.select_option(label=next(o for o in matches.locator("option").all_inner_texts() if "C100003" in o))
    page.wait_for_selector("h3:has-text('(C100003)')", timeout=60_000)
    # the profile: its lines, its invoice issued for October with what became of it, a chart
    page.wait_for_selector("h4:has-text('Phone lines')", timeout=60_000)
    with engine.connect() as connection:
        number = connection.execute(select(s.Invoice.number).join(s.Customer, s.Customer.id == s.Invoice.customer_id)
                                    .where(s.Customer.account_number == "C100003",
                                           s.Invoice.status == "issued")).scalar_one()
    assert page.get_by_text(number).count() >= 1
    assert page.get_by_text("not emailed", exact=False).count() >= 1  # issued without delivery: says why
    assert page.locator(f"a[download='{number}.pdf']").count() == 1
    assert page.locator("img[src^='data:image/png']").count() >= 1  # the twelve months' chart
    page.screenshot(path=str(tmp_path / "profile-partial.png"), full_page=True)
