"""The what-if panel: edit a few rates (or name a plan file) and see what a past period would
have cost, by customer, zone and band, against what was billed. Each run calls one job
(:func:`workbench.jobs.what_if_rates` or :func:`workbench.jobs.what_if`) and displays its result;
the period's calls are read once and kept while rates are tried. Nothing is stored."""

from __future__ import annotations

import html

import pandas as pd

from workbench import jobs
from workbench.config import Settings
from workbench.errors import WorkbenchError
from workbench.money import PRICE_SCALE, format_money
from workbench.rating.whatif import WhatIf
from workbench.ui.display import LOCALE, _message, _widgets, shown
from workbench.ui.inputs import project_path


def signed_money(amount: int, scale: int = 100) -> str:
    """A difference written with its sign, in English: ``+€0.30``, ``-€1.20``, ``€0.00``
    (``scale``: cents by default, ``PRICE_SCALE`` for 1/10,000)."""
    return ("+" if amount > 0 else "") + format_money(int(amount), locale=LOCALE, scale=scale)


def _euros(frame: pd.DataFrame, scale: int = 100, suffix: str = "cents") -> dict:
    """The billed, candidate and difference columns of ``frame`` written for people."""
    return {"Billed": frame[f"billed_{suffix}"].map(lambda v: format_money(int(v), locale=LOCALE, scale=scale)),
            "Candidate": frame[f"candidate_{suffix}"].map(lambda v: format_money(int(v), locale=LOCALE, scale=scale)),
            "Difference": frame[f"difference_{suffix}"].map(lambda v: signed_money(v, scale))}


def what_if_tables(result: WhatIf, count: int = 10) -> dict[str, pd.DataFrame]:
    """The what-if's tables with columns named for people and amounts in EUR: the customers
    most affected (``count``), by zone (cents, as invoice lines round), by zone and band (exact,
    1/10,000 EUR)."""
    affected = result.most_affected(count)
    customers = pd.DataFrame({"Account": affected.get("account_number", affected["customer_id"]),
                              "Customer": affected.get("name", ""), "Calls billed": affected["billed_calls"],
                              **_euros(affected)})
    zones = pd.DataFrame({"Zone": result.zones["zone_code"], "Calls billed": result.zones["billed_calls"],
                          "Calls (candidate)": result.zones["candidate_calls"], **_euros(result.zones)})
    bands = pd.DataFrame({"Zone": result.bands["zone_code"], "Band": result.bands["band"],
                          "Calls billed": result.bands["billed_calls"],
                          "Calls (candidate)": result.bands["candidate_calls"],
                          **_euros(result.bands, PRICE_SCALE, "units")})
    return {"Customers most affected": customers, "By zone": zones, "By zone and band (exact, 1/10,000 EUR)": bands}


def what_if_chart(result: WhatIf, count: int = 10):
    """Bar charts of the difference by zone and for the customers most affected, in EUR (the
    exact amounts become floats only for drawing)."""
    import matplotlib.pyplot as plt

    figure, (by_zone, by_customer) = plt.subplots(1, 2, figsize=(11, 4))
    zones = result.zones.sort_values("difference_cents")
    by_zone.barh(zones["zone_code"].astype(str), zones["difference_cents"].astype(float) / 100,
                 color=["#b00020" if v < 0 else "#1f4e79" for v in zones["difference_cents"]])
    by_zone.set_title(f"Difference by zone, {result.period} (EUR)")
    by_zone.axvline(0, color="grey", linewidth=0.8)
    affected = result.most_affected(count).iloc[::-1]
    labels = affected["account_number"] if "account_number" in affected else affected["customer_id"].astype(str)
    by_customer.barh(labels.astype(str), affected["difference_cents"].astype(float) / 100,
                     color=["#b00020" if v < 0 else "#1f4e79" for v in affected["difference_cents"]])
    by_customer.set_title("Customers most affected (EUR)")
    by_customer.axvline(0, color="grey", linewidth=0.8)
    figure.tight_layout()
    return figure


def show_what_if(report: jobs.WhatIfReport, count: int = 10) -> None:
    """Display a what-if's summary, tables and chart (in a notebook cell or a panel's output)."""
    import matplotlib.pyplot as plt
    from IPython.display import HTML, display

    display(HTML(what_if_summary(report)))
    for title, table in what_if_tables(report.result, count).items():
        display(HTML(f"<h4>{html.escape(title)}</h4>"), shown(table).hide(axis="index"))
    figure = what_if_chart(report.result, count)
    display(figure)
    plt.close(figure)


def what_if_summary(report: jobs.WhatIfReport) -> str:
    """The what-if's totals as HTML (the plan's name escaped)."""
    result, inputs = report.result, report.inputs
    warning = ""
    if len(result.errors):
        reasons = ", ".join(f"{k} {v}" for k, v in result.errors["reason"].value_counts().sort_index().items())
        warning = (f'<p style="color:#b00020">{len(result.errors)} rated calls cannot be rated under the candidate '
                   f"plan ({html.escape(reasons)}): counted at {format_money(0, locale=LOCALE)}. "
                   f"{html.escape(str(result.errors['message'].iloc[0]))}</p>")
    return (f'<div class="what-if-total"><h3>What-if {html.escape(result.period)} under '
            f"{html.escape(report.plan)}</h3><p>{len(inputs.calls)} calls, {len(inputs.billed)} rated "
            f"({inputs.invoiced_calls} on issued invoices). Consumption billed "
            f"<b>{format_money(result.billed_cents, locale=LOCALE)}</b>, under the candidate plan "
            f"<b>{format_money(result.candidate_cents, locale=LOCALE)}</b> (excl. VAT). "
            f"Difference: <b>{signed_money(result.difference_cents)}</b></p></div>{warning}")


def what_if_panel(settings: Settings, engine, period: str, plan: str = ""):
    """Edit the rates the period was rated with (connect fee and intervals, as ``rates.csv``
    writes them), or name a plan folder or ``rates.csv``, and see the difference against what
    was billed. The period's calls are read when the panel opens and when the period changes."""
    w = _widgets()
    period_box = w.Text(value=period, description="Period")
    plan_box = w.Text(value=plan or "", description="Plan", placeholder="a folder or rates.csv; empty: the rates below",
                      layout=w.Layout(width="520px"))
    read = w.Button(description="Read the period", icon="refresh")
    run = w.Button(description="Run what-if", button_style="primary", icon="play")
    rates_box, out = w.VBox(), w.Output()
    state: dict = {"inputs": None, "rates": None, "editors": []}

    def read_period(*_):
        out.clear_output()
        try:
            state["inputs"] = jobs.what_if_inputs(engine, settings, period_box.value)
        except WorkbenchError as exc:
            _message(out, str(exc), error=True)
            return False
        rates = jobs.current_rates(state["inputs"])
        state["rates"], state["editors"] = rates, []
        rows = []
        for row in rates.itertuples(index=False):
            label = w.HTML(f"<code>{html.escape(f'{row.plan} · {row.zone} · {row.band}')}</code>",
                           layout=w.Layout(width="300px"))
            connect = w.Text(value=row.connect_fee, description="Connect fee", layout=w.Layout(width="180px"))
            intervals = w.Text(value=row.intervals, description="Intervals", layout=w.Layout(width="360px"))
            state["editors"].append((connect, intervals))
            box = w.HBox([label, connect, intervals])
            box.add_class("what-if-rate")
            rows.append(box)
        rates_box.children = [w.HTML("<h4>Rates (per minute, <code>from_second:price/increment</code>)</h4>"),
                              *rows]
        return True

    def on_run(*_):

        if state["inputs"] is None or state["inputs"].period != period_box.value.strip():
            if not read_period():
                return
        out.clear_output()
        try:
            if plan_box.value.strip():
                report = jobs.what_if(engine, settings, period_box.value, project_path(plan_box.value.strip()),
                                      state["inputs"])
            else:
                rates = state["rates"].copy()
                rates["connect_fee"] = [c.value for c, _ in state["editors"]]
                rates["intervals"] = [i.value for _, i in state["editors"]]
                report = jobs.what_if_rates(engine, settings, period_box.value, rates, state["inputs"])
        except WorkbenchError as exc:
            _message(out, str(exc), error=True)
            return
        with out:
            show_what_if(report)

    read.on_click(read_period)
    run.on_click(on_run)
    if read_period():
        on_run()
    return w.VBox([w.HBox([period_box, read]), plan_box, rates_box, run, out])


def what_if_now(settings: Settings, engine, period: str, plan: str) -> jobs.WhatIfReport:
    """A what-if under the plan folder or ``rates.csv`` at ``plan`` (without widgets; a relative
    path from the project's root, as on the command line)."""
    return jobs.what_if(engine, settings, period, project_path(plan))


def show_what_if_plan(settings: Settings, engine, period: str, plan: str) -> jobs.WhatIfReport | None:
    """Display the what-if under the plan folder or ``rates.csv`` at ``plan`` (a notebook cell
    without widgets), or, for a bad period or plan, one message naming the problem (never a
    traceback); the report, or None."""
    from IPython.display import HTML, display

    try:
        report = what_if_now(settings, engine, period, plan)
    except WorkbenchError as exc:
        display(HTML(f'<p style="color:#b00020"><b>{html.escape(str(exc))}</b></p>'))
        return None
    show_what_if(report)
    return report
