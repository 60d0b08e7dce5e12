"""The reviewers' dashboards (served by Voila): the review of a pre-production run and a
customer's profile. They read (:mod:`workbench.reads`) and display; they change nothing."""

from __future__ import annotations

import html

from workbench import jobs
from workbench.config import Settings
from workbench.money import format_money
from workbench.reads.calls import monthly_consumption
from workbench.reads.customers import customer_list, customer_profile
from workbench.reads.runs import compare_runs, list_runs, run_report
from workbench.ui.approval import approval_panel
from workbench.ui.display import LOCALE, _message, _widgets, download_link, html_text, shown, styled_invoices
from workbench.ui.panels import invoice_viewer


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
        totals.value = (f"<h3>Run {run_id}</h3><p><b>{len(inv)}</b> invoices · total billed "
                        f"<b>{html.escape(format_money(total, locale=LOCALE))}</b> · net payable "
                        f"<b>{html.escape(format_money(net, locale=LOCALE))}</b> · "
                        f"<b>{len(sheets['Anomalies'])}</b> anomalies</p>")
        with report_out:
            display(HTML("<h4>Anomalies</h4>"), shown(sheets["Anomalies"]))
            if "Period balance" in sheets:
                display(HTML("<h4>Period balance: from the switch's records to the invoices</h4>"),
                        shown(sheets["Period balance"]))
            display(HTML("<h4>Invoices (anomalies first)</h4>"), styled_invoices(sheets))
        viewer_box.children = [approval_panel(settings, engine, run_id), w.HTML("<h4>Invoice</h4>"),
                               invoice_viewer(settings, engine, run_id)]
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
                        shown(changed))

    picker.observe(show, names="value")
    show()
    return w.VBox([w.HTML("<h2>Pre-production review</h2>"), picker, totals, report_out, viewer_box, compare_out])


def profile_dashboard(settings: Settings, engine, account: str | None = None):
    """A customer's profile: search, details, contacts, subscriptions, mandates, invoices with
    their PDFs, and the last months' consumption as a chart."""
    import matplotlib.pyplot as plt
    from IPython.display import HTML, display

    w = _widgets()
    customers = customer_list(engine)
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
            display(HTML(f"<h3>{html_text(details['name'])} ({html_text(number)})</h3>"
                         f"<p>{html_text(details['address_line1'])}, {html_text(details['postcode'])} "
                         f"{html_text(details['city'])} · VAT {html_text(details['vat_number'] or '-')}"
                         f" · pays by {html_text(details['payment_method'])} · group "
                         f"{html_text(details['billing_group'])}</p>"))
            for title in ("contacts", "subscriptions", "mandates"):
                display(HTML(f"<h4>{title.capitalize()}</h4>"), shown(profile[title]))
            invoices = profile["invoices"]
            display(HTML("<h4>Invoices and credit notes</h4>"), shown(invoices.drop(columns=["link"], errors="ignore")))
            for number_, document in zip(invoices["number"], invoices["document"], strict=True):
                if isinstance(document, str) and document:
                    pdf = jobs.invoice_pdf(engine, settings, number_)
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

