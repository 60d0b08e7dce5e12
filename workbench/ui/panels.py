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
from workbench.period import Period
from workbench.reads.calls import rating_problems, reject_counts, rejects_frame, traffic_frame, unrated_frame
from workbench.reads.runs import compare_runs, list_runs, run_invoices, run_report
from workbench.ui.display import (
    _message,
    _widgets,
    download_link,
    flagged_invoices,
    pdf_document,
    revenue_chart,
    set_choices,
)
from workbench.ui.identity import launcher
from workbench.ui.inputs import RUNS, check_period, check_run_options, loads_frame, project_path
from workbench.ui.tables import table, table_html, tables_ready

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def cdr_panel(settings: Settings, engine, folder: str | Path):
    """Pick CDR files, load them with a progress bar, see what became of each file; the rejects
    panel (:func:`rejects_panel`) reads the rejected records again after each load."""
    from IPython.display import display

    tables_ready()
    w = _widgets()
    folder = project_path(folder)
    files = sorted(p.name for p in folder.iterdir() if p.is_file()) if folder.exists() else []
    picker = w.SelectMultiple(options=files, value=tuple(files), description="Files", rows=min(6, max(2, len(files))))
    load = w.Button(description="Load", button_style="primary", icon="upload")
    out = w.Output()

    def on_load(_):
        out.clear_output()
        if not picker.value:
            _message(out, "Pick at least one file.", error=True)
            return
        try:
            with out:
                load = jobs.load_cdrs(engine, settings, [folder / f for f in picker.value], progress=True)
                display(table(loads_frame(load)))
        except WorkbenchError as exc:
            _message(out, str(exc), error=True)
        RUNS.loads += 1  # the rejects panel reads them again

    load.on_click(on_load)
    return w.VBox([w.HTML(f"<h3>CDR files in {html.escape(str(folder))}</h3>"), picker, load, out])


class LivePanel:
    """Widgets (``controls``) and below them what they show, as a display that is updated in
    place (an IPython display handle, not an ``Output`` widget: a headless run, papermill, keeps
    it as an ordinary output, however large). ``render()`` makes the content (HTML);
    ``refresh()`` shows it again where the panel is displayed."""

    def __init__(self, controls, render):
        self.controls = controls
        self.render = render
        self.handle = None

    def _ipython_display_(self):
        from IPython.display import display

        tables_ready()
        display(self.controls)
        self.handle = display(self.render(), display_id=True)

    def refresh(self, *_):
        if self.handle is not None:
            self.handle.update(self.render())


def _html(*parts: str):
    from IPython.display import HTML

    return HTML("\n".join(parts))


def rejects_panel(engine) -> LivePanel:
    """The rejected CDR records to explore: counts by file and reason, then the records of the
    reason and/or file picked (line number, why, the record as received). Read again after each
    load of :func:`cdr_panel`."""
    w = _widgets()
    reason = w.Dropdown(options=["(all)"], description="Reason")
    file = w.Dropdown(options=["(all)"], description="File", layout=w.Layout(width="420px"))

    def render():
        counts = reject_counts(engine)
        for widget, column in ((reason, "reason"), (file, "file")):
            options = ["(all)", *sorted(set(counts[column]))]
            set_choices(widget, options, widget.value if widget.value in options else "(all)", panel.refresh)
        if counts.empty:
            return _html("<p>No rejected record.</p>")
        parts = [table_html(counts, page_length=10)]
        if reason.value == "(all)" and file.value == "(all)":
            return _html(*parts, "<p>Pick a reason or a file to see its records.</p>")
        rows = rejects_frame(engine, None if reason.value == "(all)" else reason.value,
                             None if file.value == "(all)" else [file.value])
        return _html(*parts, f"<h4>{len(rows)} records</h4>", table_html(problems_table(rows), page_length=10))

    panel = LivePanel(w.HBox([reason, file]), render)
    reason.observe(panel.refresh, names="value")
    file.observe(panel.refresh, names="value")
    RUNS.listen(panel.refresh, "loads")
    return panel


def rating_panel(settings: Settings, engine, period: str):
    """Rate a period; unrated calls by cause; traffic and revenue by zone and band, charted
    (a month without rated calls says so instead of a chart)."""
    import matplotlib.pyplot as plt
    from IPython.display import HTML, display

    tables_ready()
    w = _widgets()
    period_box = w.Text(value=period, description="Period")
    rate = w.Button(description="Rate", button_style="primary")
    out = w.Output()

    def on_rate(_):
        out.clear_output()
        try:
            checked = check_period(period_box.value, timezone=settings.timezone)
            summary = jobs.rate(engine, settings, checked, progress=True)
        except WorkbenchError as exc:
            _message(out, str(exc), error=True)
            return
        _message(out, f"{summary.rated} calls rated, {summary.errors} not rated, {summary.kept_billed} already billed, "
                      f"rated {summary.where}")
        traffic = traffic_frame(engine, str(checked))
        with out:
            display(table(unrated_frame(engine, str(checked))))
            problems = rating_problems(engine, str(checked))
            if len(problems):
                display(HTML("<h4>Calls not rated</h4>"), table(problems_table(problems)))
            display(table(traffic))
            if revenue_chart(traffic, str(checked)) is not None:
                plt.show()

    rate.on_click(on_rate)
    return w.VBox([w.HBox([period_box, rate]), out])


def preprod_panel(settings: Settings, engine, period: str):
    """Launch a pre-production run; see its control report, download it. The dates follow the
    period typed (its default invoice and due dates) until they are changed by hand; a run
    launched here is announced to the panels below (:data:`~workbench.ui.inputs.RUNS`)."""
    from IPython.display import HTML, display

    tables_ready()
    w = _widgets()
    defaults = jobs.run_options(settings, period)
    period_box = w.Text(value=period, description="Period", continuous_update=False)
    invoice_day = w.DatePicker(value=defaults.invoice_date, description="Invoice date")
    due_day = w.DatePicker(value=defaults.due_date, description="Due date")
    selection = w.Dropdown(options=[("All customers", "all"), ("A billing group", "group"),
                                    ("Account numbers", "accounts")], value="all", description="Customers")
    accounts = w.Text(placeholder="group name, or C100001, C100002", description="Which")
    advance = w.Checkbox(description="Recurring items in advance", value=False)
    pdfs = w.Checkbox(description="Render draft PDFs", value=False)
    launch = w.Button(description="Launch pre-production", button_style="primary", icon="play")
    progress = w.IntProgress(value=0, min=0, max=3, description="Progress")
    note, out = w.HTML(), w.Output()
    dates = {"invoice": defaults.invoice_date, "due": defaults.due_date}  # as last set from a period

    def follow_period(change):
        note.value = ""
        try:
            chosen = jobs.run_options(settings, str(Period.parse(change["new"].strip())))
        except (WorkbenchError, ValueError) as exc:
            note.value = f'<p style="color:#b00020">{html.escape(str(exc))}</p>'
            return
        # a date changed by hand stays; one still at the former period's default follows
        if invoice_day.value == dates["invoice"]:
            invoice_day.value = chosen.invoice_date
        if due_day.value == dates["due"]:
            due_day.value = chosen.due_date
        dates.update(invoice=chosen.invoice_date, due=chosen.due_date)

    def on_launch(_):
        out.clear_output()
        progress.value = 0
        try:
            options = check_run_options(period_box.value, invoice_day.value, due_day.value, selection.value,
                                        accounts.value, advance.value, pdfs.value, settings)
            # the report is written and stored, PDFs too; the run records who launched it
            result = jobs.preprod(engine, settings, options, created_by=launcher())
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
            display(HTML(download_link(path.read_bytes(), path.name, XLSX, f"Download {path.name}")))
            display(HTML("<h4>Anomalies</h4>"), table(sheets["Anomalies"]))
            display(HTML("<h4>Summary by item type</h4>"), table(sheets["Summary"]))
        RUNS.announce(summary.run_id)

    period_box.observe(follow_period, names="value")
    launch.on_click(on_launch)
    panel = w.VBox([w.HBox([period_box, invoice_day, due_day]), note, w.HBox([selection, accounts]),
                    w.HBox([advance, pdfs]), w.HBox([launch, progress]), out])
    panel.controls = {"period": period_box, "invoice_date": invoice_day, "due_date": due_day, "launch": launch,
                      "selection": selection, "accounts": accounts}
    return panel


def report_panel(settings: Settings, engine, period: str) -> LivePanel:
    """The control report of a run of ``period`` (the newest, and each run launched above as it
    is launched): the Excel file to download, anomalies, invoices with their anomalies first,
    summary by item type and zone, period balance."""
    w = _widgets()
    picker = w.Dropdown(description="Run", layout=w.Layout(width="520px"))

    def runs_of_period():
        runs = list_runs(engine, period)
        runs = runs[runs["kind"] == "preprod"]
        return [(f"Run {int(r.id)} · {r.invoices} invoices · {r.created_at:%Y-%m-%d %H:%M}", int(r.id))
                for r in runs.itertuples()]

    def render():
        if picker.value is None:
            return _html(f"<p>No pre-production run of {html.escape(str(period))} yet: launch one above.</p>")
        try:
            sheets = run_report(engine, picker.value, settings)
            name, workbook = jobs.report_workbook(engine, settings, picker.value)
        except WorkbenchError as exc:
            return _html(f'<p style="color:#b00020"><b>{html.escape(str(exc))}</b></p>')
        parts = [f"<h4>Run {picker.value}</h4>" + download_link(workbook, name, XLSX, f"Download {name}"),
                 "<h4>Anomalies</h4>", table_html(sheets["Anomalies"]),
                 "<h4>Invoices (anomalies first)</h4>", table_html(flagged_invoices(sheets)),
                 "<h4>Summary by item type</h4>", table_html(sheets["Summary"]),
                 "<h4>By zone</h4>", table_html(sheets["By zone"])]
        if "Period balance" in sheets:
            parts += ["<h4>Period balance</h4><p>Every record of the switch accounted for, from the files to the "
                      "invoices; a difference that is not 0 blocks production.</p>",
                      table_html(sheets["Period balance"], page_length=25)]
        return _html(*parts)

    def on_launch(*_):
        options = runs_of_period()
        set_choices(picker, options, options[0][1] if options else None, panel.refresh)
        panel.refresh()

    panel = LivePanel(picker, render)
    options = runs_of_period()
    set_choices(picker, options, options[0][1] if options else None)
    picker.observe(panel.refresh, names="value")
    RUNS.listen(on_launch, "launches")
    return panel


def invoice_viewer(settings: Settings, engine, run_id: int | None = None):
    """Pick an invoice of a run (``run_id``, else the newest pre-production run, and each run
    launched above as it is launched): its PDF, every page, and a download link."""
    w = _widgets()
    picker = w.Dropdown(description="Invoice")
    box = w.VBox()

    def numbers_of(chosen: int | None) -> list[str]:
        if chosen is None:
            runs = list_runs(engine)
            runs = runs[runs["kind"] == "preprod"]
            chosen = int(runs["id"].max()) if len(runs) else None
        if chosen is None:
            return []
        with engine.connect() as connection:
            return list(run_invoices(connection, chosen).invoices["number"])

    def show(*_):
        if not picker.value:
            box.children = []
            return
        try:
            pdf = jobs.invoice_pdf(engine, settings, picker.value)
        except WorkbenchError as exc:
            box.children = [w.HTML(f'<p style="color:#b00020">{html.escape(str(exc))}</p>')]
            return
        box.children = [pdf_document(pdf, f"{picker.value}.pdf")]

    def refresh(change=None):
        numbers = numbers_of(RUNS.launched if change else run_id)
        set_choices(picker, numbers, numbers[0] if numbers else None, show)
        show()

    picker.observe(show, names="value")
    RUNS.listen(refresh, "launches")
    refresh()
    return w.VBox([picker, box])


def compare_panel(engine):
    """Compare two runs account by account (the runs listed again when one is launched above)."""
    from IPython.display import display

    tables_ready()
    w = _widgets()
    a = w.Dropdown(description="Run A", layout=w.Layout(width="420px"))
    b = w.Dropdown(description="Run B", layout=w.Layout(width="420px"))
    button = w.Button(description="Compare")
    out = w.Output()

    def refresh(*_):
        runs = list_runs(engine)
        options = [(f"{r.id} · {r.kind} {r.period} · {r.invoices} invoices", int(r.id)) for r in runs.itertuples()]
        for widget, index in ((a, 1), (b, 0)):
            set_choices(widget, options, options[index][1] if len(options) > index else None)

    def on_compare(_):
        out.clear_output()
        if a.value is None or b.value is None:
            _message(out, "Two runs are needed.", error=True)
            return
        diff = compare_runs(engine, a.value, b.value)
        changed = diff[diff["Status"] != "unchanged"]
        _message(out, f"{len(changed)} of {len(diff)} accounts differ")
        with out:
            display(table(changed if len(changed) else diff, order=[("Change", "desc")]))

    button.on_click(on_compare)
    RUNS.listen(refresh, "launches")
    refresh()
    panel = w.VBox([w.HBox([a, b, button]), out])
    panel.controls = {"a": a, "b": b}
    return panel
