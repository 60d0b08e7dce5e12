"""The analysts' panels: load CDR files, rate a period, launch a pre-production run, look at an
invoice, compare two runs. Each callback calls one job (:mod:`workbench.jobs`) or one read
(:mod:`workbench.reads`) and displays its result; a problem is a message in the panel, never a
traceback."""

from __future__ import annotations

import html
from pathlib import Path

from workbench import jobs
from workbench.config import Settings
from workbench.errors import WorkbenchError, problems_table
from workbench.money import format_money
from workbench.reads.calls import rating_problems, rejects_frame, traffic_frame, unrated_frame
from workbench.reads.runs import compare_runs, list_runs, run_invoices, run_report
from workbench.ui.display import (
    _message,
    _widgets,
    download_link,
    pdf_preview_png,
    revenue_chart,
    shown,
    styled_invoices,
)
from workbench.ui.inputs import check_period, check_run_options, loads_frame, project_path


def cdr_panel(settings: Settings, engine, folder: str | Path):
    """Pick CDR files, load them with a progress bar, see counts and rejects by reason."""
    from IPython.display import display


    w = _widgets()
    folder = project_path(folder)
    files = sorted(p.name for p in folder.iterdir() if p.is_file()) if folder.exists() else []
    picker = w.SelectMultiple(options=files, value=tuple(files), description="Files", rows=min(6, max(2, len(files))))
    load = w.Button(description="Load", button_style="primary", icon="upload")
    reason = w.Dropdown(options=["(all)"], description="Reason")
    out, rejects_out = w.Output(), w.Output()

    def show_rejects(*_):
        rejects_out.clear_output()
        chosen = None if reason.value in (None, "(all)") else reason.value
        with rejects_out:
            display(shown(problems_table(rejects_frame(engine, chosen, list(picker.value) or None))))

    def on_load(_):
        out.clear_output()
        if not picker.value:
            _message(out, "Pick at least one file.", error=True)
            return
        try:
            with out:
                load = jobs.load_cdrs(engine, settings, [folder / f for f in picker.value], progress=True)
                display(shown(loads_frame(load)))
        except WorkbenchError as exc:
            _message(out, str(exc), error=True)
            return
        reasons = sorted(set(rejects_frame(engine, files=list(picker.value))["code"]))
        reason.options = ["(all)", *reasons]
        show_rejects()

    load.on_click(on_load)
    reason.observe(show_rejects, names="value")
    return w.VBox([w.HTML(f"<h3>CDR files in {html.escape(str(folder))}</h3>"), picker, load, out,
                   w.HTML("<h4>Rejected records</h4>"), reason, rejects_out])


def rating_panel(settings: Settings, engine, period: str):
    """Rate a period; unrated calls by cause; traffic and revenue by zone and band, charted."""
    import matplotlib.pyplot as plt
    from IPython.display import HTML, display

    w = _widgets()
    period_box = w.Text(value=period, description="Period")
    rate = w.Button(description="Rate", button_style="primary")
    out = w.Output()

    def on_rate(_):
        out.clear_output()
        try:
            checked = check_period(period_box.value, timezone=settings.timezone)
            summary = jobs.rate(engine, settings, checked)
        except WorkbenchError as exc:
            _message(out, str(exc), error=True)
            return
        _message(out, f"{summary.rated} calls rated, {summary.errors} not rated, {summary.kept_billed} already billed, "
                      f"rated {summary.where}")
        traffic = traffic_frame(engine, str(checked))
        with out:
            display(shown(unrated_frame(engine, str(checked))))
            problems = rating_problems(engine, str(checked))
            if len(problems):
                display(HTML("<h4>Calls not rated</h4>"), shown(problems_table(problems)))
            display(shown(traffic))
            revenue_chart(traffic, str(checked))
            plt.show()

    rate.on_click(on_rate)
    return w.VBox([w.HBox([period_box, rate]), out])


def preprod_panel(settings: Settings, engine, period: str):
    """Launch a pre-production run; see its control report, download it, preview invoices."""
    from IPython.display import HTML, display

    w = _widgets()
    defaults = jobs.run_options(settings, period)
    default_invoice, default_due = defaults.invoice_date, defaults.due_date
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
            result = jobs.preprod(engine, settings, options)  # the report is written and stored, PDFs too
            progress.value = 2
            summary, path = result.run, result.report.path
            sheets = run_report(engine, summary.run_id, settings)
            progress.value = 3
        except WorkbenchError as exc:
            _message(out, str(exc), error=True)
            return
        _message(out, f"Run {summary.run_id}: {summary.invoices} draft invoices, total "
                      f"{format_money(summary.total_incl_cents)}")
        for warning in result.warnings:
            _message(out, f"Warning: {warning}", error=True)
        with out:
            display(HTML(download_link(path.read_bytes(), path.name,
                                       "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                                       f"Download {path.name}")))
            display(HTML("<h4>Anomalies</h4>"), shown(sheets["Anomalies"]))
            display(HTML("<h4>Invoices</h4>"), styled_invoices(sheets))
            display(HTML("<h4>Summary by item type</h4>"), shown(sheets["Summary"]))
            display(HTML("<h4>By zone</h4>"), shown(sheets["By zone"]))

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
        pdf = jobs.invoice_pdf(engine, settings, picker.value)
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
            display(shown(changed if len(changed) else diff.head(20)))

    button.on_click(on_compare)
    return w.VBox([w.HBox([a, b, button]), out])

