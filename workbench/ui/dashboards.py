"""The reviewers' dashboards (served by Voila): the review of a pre-production run and a
customer's profile. They read (:mod:`workbench.reads`) and display; they change nothing."""

from __future__ import annotations

import html

import pandas as pd

from workbench import jobs
from workbench.config import Settings
from workbench.errors import WorkbenchError
from workbench.money import format_money
from workbench.reads.customers import (
    customer_documents,
    customer_lines,
    customer_list,
    customer_profile,
    mask_iban,
    monthly_billed,
)
from workbench.reads.review import anomaly_counts, previous_period_comparison, review_runs
from workbench.reads.runs import compare_runs, run_invoices, run_report
from workbench.ui.approval import approval_panel
from workbench.ui.display import (
    LOCALE,
    _message,
    _widgets,
    change_chart,
    download_link,
    flagged_invoices,
    html_text,
    monthly_chart,
    pdf_document,
    set_choices,
)
from workbench.ui.tables import table, tables_ready

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _money(amount) -> str:
    return html.escape(format_money(amount, locale=LOCALE))


def _show_figure(figure) -> None:
    import matplotlib.pyplot as plt
    from IPython.display import display

    display(figure)
    plt.close(figure)


def run_label(run) -> str:
    """How a run is named in a choice list: id, period, review status, invoices and total."""
    return (f"Run {int(run.id)} · {run.period} · {run.review_status} · {run.customers} · {int(run.invoices)} "
            f"invoices · {format_money(int(run.total_incl_cents), locale=LOCALE)}")


def review_dashboard(settings: Settings, engine, run_id: int | None = None):
    """The reviewers' view of a pre-production run.

    The runs with their review status (:func:`~workbench.reads.review.review_runs`) and totals,
    and a run picker (default ``run_id``, else the newest draft). For the run picked: its
    totals and the Excel control report to download; its anomalies counted by kind with a
    drill-down; the control report's invoices (anomalies first), its period balance; the
    run against the previous period by item type and zone (with a chart) and the accounts
    that moved most; an invoice's PDF, every page; a comparison with any other run."""
    from IPython.display import HTML, display

    tables_ready()  # in the cell's output: the tables of every Output widget below use it
    w = _widgets()
    runs = review_runs(engine)
    preprod = runs[runs["kind"] == "preprod"]
    options = [(run_label(r), int(r.id)) for r in preprod.itertuples()]
    drafts = preprod[preprod["review_status"] == "draft"]
    default = run_id if run_id in {v for _, v in options} else (
        int(drafts["id"].iloc[0]) if len(drafts) else (options[0][1] if options else None))
    picker = w.Dropdown(options=options, value=default, description="Run", layout=w.Layout(width="760px"))
    runs_out = w.Output()
    with runs_out:
        listed = preprod[["id", "period", "review_status", "customers", "invoices", "total_incl_cents", "created_by",
                          "created_at"]].rename(columns={"review_status": "Review status", "customers": "Customers"})
        display(table(listed, page_length=5))
    totals = w.HTML()
    # the approval panel of the run picked (workbench.ui.approval) goes in this box
    approval_box = w.VBox()
    summary_out, invoices_out, anomalies_out, balance_out = w.Output(), w.Output(), w.Output(), w.Output()
    previous_out, document_box, compare_out = w.Output(), w.VBox(), w.Output()
    anomalies_tab = w.VBox([anomalies_out])
    tabs = w.Tab(children=[invoices_out, anomalies_tab, balance_out, previous_out, document_box, compare_out])
    for index, title in enumerate(("Control report", "Anomalies", "Period balance", "Previous period", "Invoice PDF",
                                   "Compare with a run")):
        tabs.set_title(index, title)
    state: dict = {}

    def show_anomalies(kind: str | None, anomalies: pd.DataFrame) -> None:
        anomalies_out.clear_output()
        with anomalies_out:
            chosen = anomalies if kind in (None, "(all)") else anomalies[anomalies["Problem"] == kind]
            display(table(chosen, page_length=25))

    def show_document(*_):
        number = state.get("invoice")
        if number is None or number.value is None:
            return
        try:
            pdf = jobs.invoice_pdf(engine, settings, number.value)
        except WorkbenchError as exc:
            document_box.children = [number, w.HTML(f"<p style='color:#b00020'>{html.escape(str(exc))}</p>")]
            return
        document_box.children = [number, pdf_document(pdf, f"{number.value}.pdf")]

    def show_compare(*_):
        other = state.get("other")
        compare_out.clear_output()
        if other is None or other.value is None:
            return
        diff = compare_runs(engine, other.value, picker.value)
        changed = diff[diff["Status"] != "unchanged"]
        with compare_out:
            display(other, HTML(f"<h4>Run {other.value} (A) against run {picker.value} (B): {len(changed)} of "
                                f"{len(diff)} accounts differ</h4>"), table(changed, order=[("Change", "desc")]))

    def show(*_):
        for out in (summary_out, invoices_out, anomalies_out, balance_out, previous_out, compare_out):
            out.clear_output()
        approval_box.children = []
        if picker.value is None:
            totals.value = "<p>No pre-production run yet.</p>"
            return
        chosen = picker.value
        row = preprod[preprod["id"] == chosen].iloc[0]
        try:
            sheets = run_report(engine, chosen, settings)
            name, workbook = jobs.report_workbook(engine, settings, chosen)
            comparison = previous_period_comparison(engine, chosen)
        except WorkbenchError as exc:
            totals.value = f'<h3>Run {chosen}</h3><p style="color:#b00020">{html.escape(str(exc))}</p>'
            return
        invoices = sheets["Invoices"]
        totals.value = (f"<h3>Run {chosen}</h3><p>{html.escape(str(row['period']))} · "
                        f"<b>{html.escape(str(row['review_status']))}</b> · <b>{len(invoices)}</b> invoices · "
                        f"total billed <b>{_money(sum(invoices['Total amount billed'].dropna(), start=0))}</b> · "
                        f"net payable <b>{_money(sum(invoices['Net payable amount'].dropna(), start=0))}</b> · "
                        f"<b>{len(sheets['Anomalies'])}</b> anomalies · "
                        f"{download_link(workbook, name, XLSX, 'Download the Excel control report')}</p>")
        approval_box.children = [approval_panel(settings, engine, chosen)]
        counts = anomaly_counts(sheets["Anomalies"])
        with summary_out:
            if len(counts):
                display(HTML("<h4>Anomalies by kind</h4>"), table(counts, page_length=10))
            else:
                display(HTML("<p>No anomaly.</p>"))
        with invoices_out:
            display(table(flagged_invoices(sheets), page_length=25))
        kind = w.Dropdown(options=["(all)", *counts["Problem"]], description="Kind")
        kind.observe(lambda change: show_anomalies(change["new"], sheets["Anomalies"]), names="value")
        show_anomalies(None, sheets["Anomalies"])
        anomalies_tab.children = [kind, anomalies_out]
        with balance_out:
            if "Period balance" in sheets:
                display(HTML("<p>From the switch's records to the invoices; a difference that is not 0 blocks "
                             "production.</p>"), table(sheets["Period balance"], page_length=25))
        with previous_out:
            if not comparison.previous:
                display(HTML("<p>Nothing billed for the previous period to compare with.</p>"))
            else:
                display(HTML(f"<h4>Against the {html.escape(comparison.previous)}</h4><h4>By item type</h4>"),
                        table(comparison.by_type))
                _show_figure(change_chart(comparison.by_type, title="By item type, EUR excl. VAT"))
                display(HTML("<h4>By zone (calls)</h4>"), table(comparison.by_zone))
                display(HTML("<h4>The accounts that moved most</h4>"),
                        table(comparison.accounts[["Account number", "Customer name", "Status", "Total A", "Total B",
                                                   "Change"]].rename(columns={"Total A": "Previous",
                                                                              "Total B": "This run"})))
        with engine.connect() as connection:
            numbers = list(run_invoices(connection, chosen).invoices["number"])
        state["invoice"] = w.Dropdown(options=numbers, value=None, description="Invoice")
        state["invoice"].observe(show_document, names="value")
        document_box.children = [state["invoice"], w.HTML("<p>Pick an invoice to read it, every page.</p>")]
        others = [(label, value) for label, value in
                  [(run_label(r), int(r.id)) for r in runs.itertuples()] if value != chosen]
        earlier = preprod[(preprod["period"] == row["period"]) & (preprod["id"] < chosen)]
        state["other"] = w.Dropdown(options=others, value=int(earlier["id"].max()) if len(earlier) else None,
                                    description="Run A", layout=w.Layout(width="760px"))
        state["other"].observe(show_compare, names="value")
        show_compare()
        if state["other"].value is None:
            with compare_out:
                display(state["other"], HTML("<p>Pick a run to compare with.</p>"))

    picker.observe(show, names="value")
    show()
    return w.VBox([w.HTML("<h2>Pre-production review</h2>"), runs_out, picker, totals, approval_box, summary_out,
                   tabs])


def profile_dashboard(settings: Settings, engine, account: str | None = None):
    """A customer's profile. A search box with the customers as a choice list: an account
    number or a choice opens the profile; a partial text lists the customers it matches to
    pick from (it never opens one of them by itself). Then identity, contacts, phone lines with
    their validity, subscriptions with their prices, mandates (IBAN masked), invoices and credit
    notes with their PDFs, whom they were emailed to (or why not) and the SEPA file that debits
    them (or why none), and the last twelve months billed by item type, charted."""
    from IPython.display import HTML, display

    tables_ready()
    w = _widgets()
    customers = customer_list(engine)
    labels = {f"{r.account_number} · {r.name}": r.account_number for r in customers.itertuples()}
    numbers = {str(v).lower(): v for v in labels.values()}
    search = w.Combobox(options=list(labels), placeholder="account number or name", description="Customer",
                        ensure_option=False, continuous_update=False, layout=w.Layout(width="520px"))
    matches = w.Select(options=[], rows=6, description="Matches", layout=w.Layout(width="520px", display="none"))
    hint, out = w.HTML(), w.Output()

    def open_profile(number: str) -> None:
        out.clear_output()
        try:
            profile = customer_profile(engine, number, settings)
            documents = customer_documents(engine, number)
        except WorkbenchError as exc:
            _message(out, str(exc), error=True)
            return
        details = profile["details"].iloc[0]
        mandates = profile["mandates"].assign(iban=profile["mandates"]["iban"].map(mask_iban))
        subscriptions = profile["subscriptions"].rename(columns={"code": "Product", "name": "Product name"})
        with out:
            display(HTML(f"<h3>{html_text(details['name'])} ({html_text(number)})</h3>"
                         f"<p>{html_text(details['address_line1'])}, {html_text(details['postcode'])} "
                         f"{html_text(details['city'])} {html_text(details['country'])} · VAT number "
                         f"{html_text(details['vat_number'] or '-')} · pays by "
                         f"{html_text(str(details['payment_method']).replace('_', ' '))} · billing group "
                         f"{html_text(details['billing_group'])} · language {html_text(details['language'])}</p>"))
            display(HTML("<h4>Contacts</h4>"), table(profile["contacts"]))
            display(HTML("<h4>Phone lines</h4>"), table(customer_lines(engine, number)))
            display(HTML("<h4>Subscriptions</h4>"), table(subscriptions))
            display(HTML("<h4>Mandates</h4>"), table(mandates))
            display(HTML("<h4>Invoices and credit notes</h4>"),
                    table(documents.drop(columns=["document"]).rename(columns={
                        "emailed": "Emailed", "direct_debit": "Direct debit"}), order=[("number", "desc")]))
            links = []
            for document_number, document in zip(documents["number"], documents["document"], strict=True):
                if isinstance(document, str) and document:
                    pdf = jobs.invoice_pdf(engine, settings, document_number)
                    if pdf:
                        links.append(download_link(pdf, f"{document_number}.pdf", "application/pdf",
                                                   f"PDF {document_number}"))
            if links:
                display(HTML("<p>" + " · ".join(links) + "</p>"))
            months = monthly_billed(engine, number)
            display(HTML("<h4>The last twelve months</h4>"))
            if len(months):
                _show_figure(monthly_chart(months))
            else:
                display(HTML("<p>Nothing billed yet.</p>"))

    def pick(change):
        if change["new"]:
            open_profile(labels[change["new"]])

    def on_search(*_):
        text = (search.value or "").strip()
        hint.value = ""
        matches.layout.display = "none"
        number = labels.get(text) or numbers.get(text.lower())
        if number is not None:
            open_profile(number)
            return
        out.clear_output()
        if not text:
            return
        found = [label for label in labels if text.lower() in label.lower()]
        if not found:
            _message(out, f"No customer matches {text!r}.", error=True)
            return
        set_choices(matches, found, None, pick)
        matches.layout.display = None
        hint.value = (f"<p>{len(found)} customer{'s match' if len(found) > 1 else ' matches'} "
                      f"<b>{html_text(text)}</b>: pick one.</p>")

    matches.observe(pick, names="value")
    search.observe(on_search, names="value")
    if account:
        search.value = next((k for k, v in labels.items() if v == account), account)
    return w.VBox([w.HTML("<h2>Client profile</h2>"), search, hint, matches, out])
