"""The what-if notebook, executed as users run it (papermill), and served by Voila in headless
Chromium: a rate edited in the page changes the result. On the generated operator of
``tests/test_notebooks.py``'s fixtures, its October calls rated."""

from __future__ import annotations

import csv

from servers import open_dashboard

from tests.test_notebooks import browser, execute, outputs, preprod_run, voila, workspace  # noqa: F401
from workbench import jobs
from workbench.ui.whatif import signed_money


def _edited_rates(operator, folder, zone: str, band: str, intervals: str):
    """The workspace's rates.csv with one rate's intervals changed, written into ``folder``."""
    with open(operator["base"] / "data" / "reference" / "rates.csv", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        if (row["zone"], row["band"]) == (zone, band):
            row["intervals"] = intervals
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "rates.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return folder / "rates.csv"


def test_the_what_if_notebook(workspace, preprod_run, tmp_path):  # noqa: F811
    base = workspace["base"]
    # the plan the period was rated with: no difference
    book = execute("05_what_if.ipynb", tmp_path / "05.ipynb", period="2026-10", plan=str(base / "data" / "reference"))
    text = outputs(book)
    assert "Difference: <b>€0.00</b>" in text
    assert "Customers most affected" in text and "By zone and band" in text
    assert any(o.get("output_type") == "display_data" and "image/png" in o.get("data", {})
               for c in book.cells for o in c.get("outputs", []))
    assert "Traceback" not in text
    # mobile calls at peak twice as dear: the notebook shows the job's difference, and nothing was stored
    candidate = _edited_rates(workspace, tmp_path / "candidate", "NAT_MOBILE", "peak", "0:0.24/30 30:0.24/1")
    expected = jobs.what_if(workspace["engine"], workspace["settings"], "2026-10", candidate).result
    assert expected.difference_cents > 0
    book = execute("05_what_if.ipynb", tmp_path / "05b.ipynb", period="2026-10", plan=str(candidate))
    text = outputs(book)
    assert f"Difference: <b>{signed_money(expected.difference_cents)}</b>" in text
    assert expected.most_affected(1)["account_number"].iloc[0] in text
    # a bad plan: one clear message, no traceback
    bad = tmp_path / "bad" / "rates.csv"
    bad.parent.mkdir()
    bad.write_text("plan,zone,band,connect_fee,charge_unanswered,intervals\nPRO-2026,EU,*,-1,no,0:0.1/60\n",
                   encoding="utf-8")
    book = execute("05_what_if.ipynb", tmp_path / "05c.ipynb", period="2026-10", plan=str(bad))
    assert "rates.csv, line 2, column connect_fee" in outputs(book)


def test_editing_a_rate_in_the_browser_changes_the_what_if(workspace, preprod_run, voila, browser,  # noqa: F811
                                                           tmp_path):
    engine, settings = workspace["engine"], workspace["settings"]
    inputs = jobs.what_if_inputs(engine, settings, "2026-10")
    rates = jobs.current_rates(inputs)
    rates.loc[(rates["zone"] == "NAT_MOBILE") & (rates["band"] == "peak"), "intervals"] = "0:0.24/30 30:0.24/1"
    expected = jobs.what_if_rates(engine, settings, "2026-10", rates, inputs).result.difference_cents
    assert expected > 0
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    # opened on the rates the period was rated with: no difference
    open_dashboard(page, voila, "../05_what_if.ipynb", "text=Difference: €0.00")
    row = page.locator(".what-if-rate", has_text="NAT_MOBILE · peak")
    assert row.count() == 1
    intervals = row.locator("input").nth(1)
    assert intervals.input_value() == "0:0.12/30 30:0.12/1"
    intervals.fill("0:0.24/30 30:0.24/1")
    intervals.press("Enter")
    page.get_by_role("button", name="Run what-if").click()
    page.wait_for_selector(f"text=Difference: {signed_money(expected)}", timeout=60_000)
    page.set_viewport_size({"width": 1280, "height": 2200})  # the rates, the tables and the chart
    page.screenshot(path=str(tmp_path / "what-if.png"))
    assert (tmp_path / "what-if.png").stat().st_size > 10_000
    # a price the reference files refuse: the message names the row, the page goes on
    intervals.fill("0:-0.24/30")
    page.get_by_role("button", name="Run what-if").click()
    page.wait_for_selector("text=rates.csv, line", timeout=60_000)
