"""Widgets for the analysts' notebooks and the reviewers' Voila dashboards.

Every panel is built here (the notebooks only call one function and display it), on top of the
package's jobs; the frames they show come from plain functions that are tested without a
browser. Inputs are checked before anything runs; a problem is shown as a message in the panel,
never as a traceback.
"""

from __future__ import annotations

import base64
import html
import shutil
import subprocess
import tempfile
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
from sqlalchemy import func, select

from workbench import repository
from workbench.billing import (
    BillingError,
    RunOptions,
    compare_runs,
    customer_profile,
    default_dates,
    list_runs,
    parse_customers,
    preprod,
    run_invoices,
    run_report,
)
from workbench.cdr.formats import CdrFileError
from workbench.config import Settings, load_settings
from workbench.db import schema as s
from workbench.db.engine import make_engine, upgrade
from workbench.money import CENT_SCALE, to_decimal
from workbench.period import Period, PeriodError

USER_ERRORS = (BillingError, CdrFileError, PeriodError, ValueError)


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


PROJECT_ROOT = Path(__file__).resolve().parent.parent


def connect(database_url: str | None = None, config_file: str | None = None):
    """Settings (from the environment and ``workbench.toml``) and a migrated engine.

    A notebook of ``notebooks/`` works from the project's root, so relative paths of the
    settings (``var/...``, ``data/...``) mean the same in JupyterLab, Voila and the command line."""
    import os

    if Path.cwd().resolve().is_relative_to(PROJECT_ROOT / "notebooks"):
        os.chdir(PROJECT_ROOT)
    settings = load_settings(config_file or None, database_url=database_url or None)
    engine = make_engine(settings.database_url)
    upgrade(engine)
    return settings, engine


# ---------------------------------------------------------------------------- checks

def check_period(text: str, today: date | None = None) -> Period:
    """A billing period that is well formed and not in the future."""
    period = Period.parse((text or "").strip())
    today = today or date.today()
    if period.start > today:
        raise PeriodError(f"period {period} is in the future")
    return period


def check_run_options(period: str, invoice_date: date | None, due_date: date | None, selection: str,
                      accounts: str, advance: bool, pdfs: bool, settings: Settings,
                      today: date | None = None) -> RunOptions:
    """The options of a pre-production run from widget values, or a ``ValueError`` saying what
    is wrong."""
    checked = check_period(period, today)
    default_invoice, default_due = default_dates(checked, settings)
    invoice_date = invoice_date or default_invoice
    due_date = due_date or default_due
    if due_date < invoice_date:
        raise BillingError(f"the due date {due_date} is before the invoice date {invoice_date}")
    if selection == "accounts":
        wanted = [a.strip() for a in (accounts or "").replace(";", ",").split(",") if a.strip()]
        if not wanted:
            raise BillingError("the customer list is empty: give account numbers, e.g. C100001, C100002")
        customers = "accounts:" + ",".join(wanted)
    elif selection == "all":
        customers = "all"
    else:
        if not (accounts or "").strip():
            raise BillingError("give the billing group's name")
        customers = f"group:{accounts.strip()}"
    parse_customers(customers)
    return RunOptions(str(checked), invoice_date, due_date, customers, advance, pdfs)


# ---------------------------------------------------------------------------- frames

def rejects_frame(engine, reason: str | None = None, files: list[str] | None = None) -> pd.DataFrame:
    """Rejected CDR records (file, line, reason, message, raw), optionally of one reason."""
    stmt = select(s.CdrFile.name.label("file"), s.CdrReject.line_no, s.CdrReject.reason, s.CdrReject.message,
                  s.CdrReject.raw).join(s.CdrFile, s.CdrFile.id == s.CdrReject.file_id)
    if reason:
        stmt = stmt.where(s.CdrReject.reason == reason)
    if files:
        stmt = stmt.where(s.CdrFile.name.in_(files))
    with engine.connect() as connection:
        return repository.read_frame(connection, stmt.order_by(s.CdrFile.name, s.CdrReject.line_no))


def loads_frame(reports) -> pd.DataFrame:
    return pd.DataFrame([{"file": Path(r.file).name, "status": r.status, "format": r.format, "records": r.records,
                          "accepted": r.accepted, "rejected": r.rejected} for r in reports])


def traffic_frame(engine, period: str) -> pd.DataFrame:
    """Rated calls of a period by zone and band: calls, minutes, revenue (EUR)."""
    with engine.connect() as connection:
        frame = repository.read_frame(connection, select(
            s.RatedCall.zone_code, s.RatedCall.band, func.count().label("calls"),
            func.sum(s.RatedCall.duration_s).label("seconds"), func.sum(s.RatedCall.price_units).label("units"),
        ).where(s.RatedCall.period == str(Period.parse(period))).group_by(s.RatedCall.zone_code, s.RatedCall.band)
            .order_by(s.RatedCall.zone_code, s.RatedCall.band))
    frame["minutes"] = (frame["seconds"].astype("int64") + 59) // 60
    frame["revenue_eur"] = frame["units"].map(to_decimal)  # exact, in 1/10,000
    return frame[["zone_code", "band", "calls", "minutes", "revenue_eur"]]


def revenue_chart(traffic: pd.DataFrame, period: str):
    """A stacked bar chart of revenue by zone and band (the exact amounts become floats only
    for drawing)."""
    import matplotlib.pyplot as plt

    pivot = traffic.assign(revenue_eur=traffic["revenue_eur"].astype(float)).pivot_table(
        index="zone_code", columns="band", values="revenue_eur", aggfunc="sum")
    axes = pivot.plot.barh(stacked=True, figsize=(7, 4), title=f"Revenue by zone and band, {period} (EUR)")
    axes.set_xlabel("EUR")
    plt.tight_layout()
    return axes


def unrated_frame(engine, period: str) -> pd.DataFrame:
    with engine.connect() as connection:
        return repository.read_frame(connection, select(
            s.RatingError.reason, func.count().label("calls"), func.min(s.RatingError.message).label("example"),
        ).where(s.RatingError.period == str(Period.parse(period))).group_by(s.RatingError.reason))


def monthly_consumption(engine, account_number: str, months: int = 6) -> pd.DataFrame:
    """A customer's rated calls by period (latest ``months``): calls, minutes, amount (EUR)."""
    with engine.connect() as connection:
        frame = repository.read_frame(connection, select(
            s.RatedCall.period, func.count().label("calls"), func.sum(s.RatedCall.duration_s).label("seconds"),
            func.sum(s.RatedCall.price_units).label("units"),
        ).join(s.Customer, s.Customer.id == s.RatedCall.customer_id)
            .where(s.Customer.account_number == account_number).group_by(s.RatedCall.period)
            .order_by(s.RatedCall.period.desc()).limit(months))
    frame = frame.sort_values("period")
    frame["minutes"] = (frame["seconds"].astype("int64") + 59) // 60
    frame["amount_eur"] = frame["units"].map(to_decimal)
    return frame[["period", "calls", "minutes", "amount_eur"]]


def invoice_pdf(engine, settings: Settings, number: str) -> bytes | None:
    """The stored PDF of an invoice (draft or final), rendered on the fly if not stored."""
    from workbench.documents import render_invoices
    from workbench.publishing import invoice_models, operator_identity
    from workbench.storage import Storage, StorageError

    with engine.connect() as connection:
        row = connection.execute(select(s.Invoice.id, s.Invoice.document, s.Invoice.status)
                                 .where(s.Invoice.number == number)).first()
        if row is None:
            return None
        if row.document:
            try:
                return Storage(settings.storage_url).get(row.document)
            except StorageError:
                pass
        models = invoice_models(connection, [row.id])
    return render_invoices(models, operator_identity(settings), draft=row.status == "draft", workers=1,
                           templates=settings.templates_dir)[number]


def pdf_preview_png(pdf: bytes, resolution: int = 60) -> bytes | None:
    """The first page of a PDF as PNG (with poppler's pdftoppm), or None if unavailable."""
    if not pdf or not shutil.which("pdftoppm"):
        return None
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "doc.pdf"
        source.write_bytes(pdf)
        subprocess.run(["pdftoppm", "-png", "-r", str(resolution), "-f", "1", "-l", "1", "-singlefile",
                        str(source), str(Path(folder) / "page")], check=True, capture_output=True, timeout=60)
        return (Path(folder) / "page.png").read_bytes()


def download_link(data: bytes, filename: str, mime: str, label: str | None = None) -> str:
    """An HTML link that downloads ``data`` (works in JupyterLab and in Voila)."""
    encoded = base64.b64encode(data).decode()
    return (f'<a download="{html.escape(filename)}" href="data:{mime};base64,{encoded}">'
            f"{html.escape(label or filename)}</a>")


def styled_invoices(sheets: dict[str, pd.DataFrame]):
    """The control report's invoice table, anomalies first and highlighted."""
    invoices = sheets["Invoices"].copy()
    flagged = set(sheets["Anomalies"]["Account number"]) - {""}
    invoices.insert(0, "Anomaly", invoices["Account number"].isin(flagged))
    invoices = invoices.sort_values(["Anomaly", "Invoice number"], ascending=[False, True]).reset_index(drop=True)

    def colour(row):
        return ["background-color: #fde2e1" if row["Anomaly"] else ""] * len(row)

    return invoices.style.apply(colour, axis=1).format(precision=2, na_rep="")


def load_folder(settings: Settings, engine, folder: str | Path) -> pd.DataFrame:
    """Load every CDR file of a folder (without widgets); what became of each file."""
    from workbench.integration import load_cdr_files

    files = sorted(p for p in Path(folder).iterdir() if p.is_file())
    return loads_frame(load_cdr_files(engine, files, settings, now, progress=True))


def rate_now(settings: Settings, engine, period: str) -> pd.DataFrame:
    """Rate a period (without widgets); the traffic by zone and band."""
    from workbench.ratings import rate_period

    rate_period(engine, check_period(period), settings, now())
    return traffic_frame(engine, period)


def preprod_now(settings: Settings, engine, period: str, customers: str = "all") -> int:
    """Run a pre-production billing with default dates (without widgets); its run id."""
    checked = check_period(period)
    invoice_date, due_date = default_dates(checked, settings)
    return preprod(engine, RunOptions(str(checked), invoice_date, due_date, customers), settings, now()).run_id


def latest_run(engine, period: str, kind: str = "preprod") -> int | None:
    runs = list_runs(engine, period)
    runs = runs[runs["kind"] == kind]
    return int(runs["id"].max()) if len(runs) else None


# ---------------------------------------------------------------------------- panels

def _widgets():
    import ipywidgets as w

    return w


def _message(out, text: str, error: bool = False) -> None:
    from IPython.display import HTML, display

    colour = "#b00020" if error else "#1f4e79"
    with out:
        display(HTML(f'<p style="color:{colour}"><b>{html.escape(text)}</b></p>'))


def cdr_panel(settings: Settings, engine, folder: str | Path):
    """Pick CDR files, load them with a progress bar, see counts and rejects by reason."""
    from IPython.display import display

    from workbench.integration import load_cdr_files

    w = _widgets()
    folder = Path(folder)
    files = sorted(p.name for p in folder.iterdir() if p.is_file()) if folder.exists() else []
    picker = w.SelectMultiple(options=files, value=tuple(files), description="Files", rows=min(6, max(2, len(files))))
    load = w.Button(description="Load", button_style="primary", icon="upload")
    reason = w.Dropdown(options=["(all)"], description="Reason")
    out, rejects_out = w.Output(), w.Output()

    def show_rejects(*_):
        rejects_out.clear_output()
        chosen = None if reason.value in (None, "(all)") else reason.value
        with rejects_out:
            display(rejects_frame(engine, chosen, list(picker.value) or None))

    def on_load(_):
        out.clear_output()
        if not picker.value:
            _message(out, "Pick at least one file.", error=True)
            return
        try:
            with out:
                reports = load_cdr_files(engine, [folder / f for f in picker.value], settings, now, progress=True)
                display(loads_frame(reports))
        except USER_ERRORS as exc:
            _message(out, str(exc), error=True)
            return
        reasons = sorted(set(rejects_frame(engine, files=list(picker.value))["reason"]))
        reason.options = ["(all)", *reasons]
        show_rejects()

    load.on_click(on_load)
    reason.observe(show_rejects, names="value")
    return w.VBox([w.HTML(f"<h3>CDR files in {html.escape(str(folder))}</h3>"), picker, load, out,
                   w.HTML("<h4>Rejected records</h4>"), reason, rejects_out])


def rating_panel(settings: Settings, engine, period: str):
    """Rate a period; unrated calls by cause; traffic and revenue by zone and band, charted."""
    import matplotlib.pyplot as plt
    from IPython.display import display

    from workbench.ratings import rate_period

    w = _widgets()
    period_box = w.Text(value=period, description="Period")
    rate = w.Button(description="Rate", button_style="primary")
    out = w.Output()

    def on_rate(_):
        out.clear_output()
        try:
            checked = check_period(period_box.value)
            summary = rate_period(engine, checked, settings, now())
        except USER_ERRORS as exc:
            _message(out, str(exc), error=True)
            return
        _message(out, f"{summary.rated} calls rated, {summary.errors} not rated, {summary.kept_billed} already billed")
        traffic = traffic_frame(engine, str(checked))
        with out:
            display(unrated_frame(engine, str(checked)))
            display(traffic)
            revenue_chart(traffic, str(checked))
            plt.show()

    rate.on_click(on_rate)
    return w.VBox([w.HBox([period_box, rate]), out])


def preprod_panel(settings: Settings, engine, period: str):
    """Launch a pre-production run; see its control report, download it, preview invoices."""
    from IPython.display import HTML, display

    w = _widgets()
    default_invoice, default_due = default_dates(Period.parse(period), settings)
    period_box = w.Text(value=period, description="Period")
    invoice_day = w.DatePicker(value=default_invoice, description="Invoice date")
    due_day = w.DatePicker(value=default_due, description="Due date")
    selection = w.Dropdown(options=[("All customers", "all"), ("A billing group", "group"),
                                    ("Account numbers", "accounts")], value="all", description="Customers")
    accounts = w.Text(placeholder="group name, or C100001, C100002", description="Which")
    advance = w.Checkbox(description="Recurring items in advance", value=False)
    pdfs = w.Checkbox(description="Render draft PDFs", value=False)
    launch = w.Button(description="Launch pre-production", button_style="primary", icon="play")
    progress = w.IntProgress(value=0, min=0, max=3, description="Progress")
    out = w.Output()

    def on_launch(_):
        out.clear_output()
        progress.value = 0
        try:
            options = check_run_options(period_box.value, invoice_day.value, due_day.value, selection.value,
                                        accounts.value, advance.value, pdfs.value, settings)
            summary = preprod(engine, options, settings, now())
            progress.value = 1
            sheets = run_report(engine, summary.run_id, settings)
            progress.value = 2
            from workbench.reports.excel import write_control_report

            path = write_control_report(sheets, Path(settings.output_dir) / "reports" /
                                        f"control-report-{options.period}-run{summary.run_id}.xlsx")
            if options.pdfs:
                from workbench.publishing import publish_documents

                publish_documents(engine, settings, run_id=summary.run_id)
            progress.value = 3
        except USER_ERRORS as exc:
            _message(out, str(exc), error=True)
            return
        _message(out, f"Run {summary.run_id}: {summary.invoices} draft invoices, total "
                      f"{to_decimal(summary.total_incl_cents, CENT_SCALE):,} EUR")
        with out:
            display(HTML(download_link(path.read_bytes(), path.name,
                                       "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                                       f"Download {path.name}")))
            display(HTML("<h4>Anomalies</h4>"), sheets["Anomalies"])
            display(HTML("<h4>Invoices</h4>"), styled_invoices(sheets))
            display(HTML("<h4>Summary by item type</h4>"), sheets["Summary"])
            display(HTML("<h4>By zone</h4>"), sheets["By zone"])

    launch.on_click(on_launch)
    return w.VBox([w.HBox([period_box, invoice_day, due_day]), w.HBox([selection, accounts]),
                   w.HBox([advance, pdfs]), w.HBox([launch, progress]), out])


def invoice_viewer(settings: Settings, engine, run_id: int | None = None):
    """Pick an invoice of a run: its lines and its PDF (preview and download)."""
    from IPython.display import HTML, display

    w = _widgets()
    numbers = []
    if run_id is not None:
        with engine.connect() as connection:
            numbers = list(run_invoices(connection, run_id).invoices["number"])
    picker = w.Dropdown(options=numbers, description="Invoice")
    out = w.Output()

    def show(*_):
        out.clear_output()
        if not picker.value:
            return
        pdf = invoice_pdf(engine, settings, picker.value)
        with out:
            if pdf is None:
                display(HTML("<p>No document.</p>"))
                return
            display(HTML(download_link(pdf, f"{picker.value}.pdf", "application/pdf", f"{picker.value}.pdf")))
            png = pdf_preview_png(pdf)
            if png:
                display(w.Image(value=png, format="png", width=620))

    picker.observe(show, names="value")
    show()
    return w.VBox([picker, out])


def compare_panel(engine):
    """Compare two runs account by account."""
    from IPython.display import display

    w = _widgets()
    runs = list_runs(engine)
    options = [(f"{r.id} · {r.kind} {r.period} · {r.invoices} invoices", int(r.id)) for r in runs.itertuples()]
    a = w.Dropdown(options=options, value=options[1][1] if len(options) > 1 else None, description="Run A")
    b = w.Dropdown(options=options, value=options[0][1] if options else None, description="Run B")
    button = w.Button(description="Compare")
    out = w.Output()

    def on_compare(_):
        out.clear_output()
        if a.value is None or b.value is None:
            _message(out, "Two runs are needed.", error=True)
            return
        diff = compare_runs(engine, a.value, b.value)
        changed = diff[diff["Status"] != "unchanged"]
        _message(out, f"{len(changed)} of {len(diff)} accounts differ")
        with out:
            display(changed if len(changed) else diff.head(20))

    button.on_click(on_compare)
    return w.VBox([w.HBox([a, b, button]), out])


# ---------------------------------------------------------------------------- dashboards

def review_dashboard(settings: Settings, engine):
    """The reviewers' view of a pre-production run: run picker, totals, control report with
    anomalies first, invoice drill-down with its PDF, comparison with the previous run."""
    from IPython.display import HTML, display

    w = _widgets()
    runs = list_runs(engine)
    runs = runs[runs["kind"] == "preprod"]
    options = [(f"Run {r.id} · {r.period} · {r.invoices} invoices · {r.created_at:%Y-%m-%d %H:%M}", int(r.id))
               for r in runs.itertuples()]
    picker = w.Dropdown(options=options, value=options[0][1] if options else None, description="Run",
                        layout=w.Layout(width="520px"))
    totals, report_out, compare_out = w.HTML(), w.Output(), w.Output()
    viewer_box = w.VBox()

    def show(*_):
        report_out.clear_output()
        compare_out.clear_output()
        if picker.value is None:
            totals.value = "<p>No pre-production run yet.</p>"
            return
        run_id = picker.value
        sheets = run_report(engine, run_id, settings)
        inv = sheets["Invoices"]
        total = sum(inv["Total amount billed"].dropna(), start=0)
        net = sum(inv["Net payable amount"].dropna(), start=0)
        totals.value = (f"<h3>Run {run_id}</h3><p><b>{len(inv)}</b> invoices · total billed <b>{total:,.2f} EUR</b>"
                        f" · net payable <b>{net:,.2f} EUR</b> · <b>{len(sheets['Anomalies'])}</b> anomalies</p>")
        with report_out:
            display(HTML("<h4>Anomalies</h4>"), sheets["Anomalies"])
            display(HTML("<h4>Invoices (anomalies first)</h4>"), styled_invoices(sheets))
        viewer_box.children = [w.HTML("<h4>Invoice</h4>"), invoice_viewer(settings, engine, run_id)]
        row = runs[runs["id"] == run_id].iloc[0]
        earlier = runs[(runs["period"] == row["period"]) & (runs["id"] < run_id)]
        with compare_out:
            if earlier.empty:
                display(HTML("<p>No earlier run of this period to compare with.</p>"))
            else:
                previous = int(earlier["id"].max())
                diff = compare_runs(engine, previous, run_id)
                changed = diff[diff["Status"] != "unchanged"]
                display(HTML(f"<h4>Compared with run {previous}: {len(changed)} of {len(diff)} accounts differ</h4>"),
                        changed)

    picker.observe(show, names="value")
    show()
    return w.VBox([w.HTML("<h2>Pre-production review</h2>"), picker, totals, report_out, viewer_box, compare_out])


def profile_dashboard(settings: Settings, engine, account: str | None = None):
    """A customer's profile: search, details, contacts, subscriptions, mandates, invoices with
    their PDFs, and the last months' consumption as a chart."""
    import matplotlib.pyplot as plt
    from IPython.display import HTML, display

    w = _widgets()
    with engine.connect() as connection:
        customers = repository.read_frame(connection, select(s.Customer.account_number, s.Customer.name)
                                          .order_by(s.Customer.account_number))
    labels = {f"{r.account_number} · {r.name}": r.account_number for r in customers.itertuples()}
    search = w.Combobox(options=list(labels), placeholder="account number or name", description="Customer",
                        ensure_option=False, layout=w.Layout(width="520px"))
    out = w.Output()

    def show(*_):
        text = (search.value or "").strip()
        number = labels.get(text) or next((v for k, v in labels.items() if text and text.lower() in k.lower()), None)
        out.clear_output()
        if number is None:
            if text:
                _message(out, f"No customer matches {text!r}.", error=True)
            return
        profile = customer_profile(engine, number, settings)
        details = profile["details"].iloc[0]
        with out:
            display(HTML(f"<h3>{html.escape(str(details['name']))} ({html.escape(number)})</h3>"
                         f"<p>{html.escape(str(details['address_line1']))}, {html.escape(str(details['postcode']))} "
                         f"{html.escape(str(details['city']))} · VAT {html.escape(str(details['vat_number'] or '-'))}"
                         f" · pays by {html.escape(str(details['payment_method']))} · group "
                         f"{html.escape(str(details['billing_group']))}</p>"))
            for title in ("contacts", "subscriptions", "mandates"):
                display(HTML(f"<h4>{title.capitalize()}</h4>"), profile[title])
            invoices = profile["invoices"]
            display(HTML("<h4>Invoices and credit notes</h4>"), invoices.drop(columns=["link"], errors="ignore"))
            for number_, document in zip(invoices["number"], invoices["document"], strict=True):
                if isinstance(document, str) and document:
                    pdf = invoice_pdf(engine, settings, number_)
                    if pdf:
                        display(HTML(download_link(pdf, f"{number_}.pdf", "application/pdf", f"PDF {number_}")))
            usage = monthly_consumption(engine, number)
            if len(usage):
                # the chart is the only place the exact amounts become floats
                axes = usage.assign(amount_eur=usage["amount_eur"].astype(float)).plot.bar(
                    x="period", y="amount_eur", legend=False, figsize=(6, 3),
                    title="Consumption by month (EUR excl. VAT)")
                axes.set_xlabel("")
                plt.tight_layout()
                plt.show()

    search.observe(show, names="value")
    if account:
        search.value = next((k for k, v in labels.items() if v == account), account)
    return w.VBox([w.HTML("<h2>Client profile</h2>"), search, out])
