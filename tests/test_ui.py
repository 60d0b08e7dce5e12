"""The checks behind the notebooks' widgets: bad values give a clear message, not a traceback."""

from datetime import date
from decimal import Decimal

import pytest

from workbench.config import Settings
from workbench.errors import InputError
from workbench.ui import check_period, check_run_options, download_link

SETTINGS = Settings()
TODAY = date(2026, 11, 26)


def test_period_must_be_well_formed_and_not_in_the_future():
    assert str(check_period("2026-10", TODAY)) == "2026-10"
    assert str(check_period(" 2026-11 ", TODAY)) == "2026-11"
    with pytest.raises(InputError, match="in the future"):
        check_period("2026-12", TODAY)
    with pytest.raises(InputError):
        check_period("October", TODAY)


def test_run_options_from_widget_values():
    options = check_run_options("2026-10", None, None, "all", "", False, False, SETTINGS, TODAY)
    assert (options.invoice_date, options.due_date, options.customers) == (date(2026, 11, 1), date(2026, 12, 1), "all")
    options = check_run_options("2026-10", date(2026, 11, 3), date(2026, 11, 20), "accounts", " C1; C2 ,", True,
                                True, SETTINGS, TODAY)
    assert (options.customers, options.advance, options.pdfs) == ("accounts:C1,C2", True, True)
    assert check_run_options("2026-10", None, None, "group", "key_accounts", False, False, SETTINGS,
                             TODAY).customers == "group:key_accounts"


@pytest.mark.parametrize(("values", "message"), [
    (("2026-10", date(2026, 11, 10), date(2026, 11, 1), "all", ""), "before the invoice date"),
    (("2026-10", None, None, "accounts", "  "), "customer list is empty"),
    (("2026-10", None, None, "group", ""), "billing group"),
])
def test_bad_run_options_say_what_is_wrong(values, message):
    with pytest.raises(InputError, match=message):
        check_run_options(*values, False, False, SETTINGS, TODAY)


def test_download_links_escape_the_file_name():
    link = download_link(b"x", '<b>"a".xlsx', "application/octet-stream")
    assert 'download="&lt;b&gt;&quot;a&quot;.xlsx"' in link and "base64,eA==" in link


def test_the_invoice_table_escapes_customer_text_and_writes_money_for_people():
    import pandas as pd

    from workbench.invoicing.report import REPORT_COLUMNS
    from workbench.ui import styled_invoices

    invoices = pd.DataFrame([{c: None for c in REPORT_COLUMNS}] * 2)
    invoices["Invoice number"] = ["PRE-1-0001", "PRE-1-0002"]
    invoices["Account number"] = ["C1", "C2"]
    invoices["Customer name"] = ['<img src="http://attacker.example/p.png" onerror=alert(1)>', "Beta"]
    invoices["Total amount billed"] = [Decimal("1234.50"), Decimal("20")]
    anomalies = pd.DataFrame({"Source": ["PRE-1-0002"], "Line or key": ["C2"], "Problem": ["already_invoiced"],
                              "Detail": ["Beta: ..."]})
    html = styled_invoices({"Invoices": invoices, "Anomalies": anomalies}).to_html()
    assert "<img" not in html and "&lt;img src=&#34;http://attacker.example/p.png&#34; onerror=alert(1)&gt;" in html
    assert "€1,234.50" in html and "€20.00" in html
    assert html.index("PRE-1-0002") < html.index("PRE-1-0001")  # the anomaly first


def test_tables_on_screens_show_missing_values_empty():
    import pandas as pd

    from workbench.ui import shown

    frame = pd.DataFrame({"VAT number": ["FR40303265045", None], "Calls": pd.array([3, None], dtype="Int64"),
                          "Name": ["<b>Alpha</b>", "Beta"]})
    markup = shown(frame).to_html()
    assert "None" not in markup and "nan" not in markup.lower() and "&lt;NA&gt;" not in markup and "<NA>" not in markup
    assert "FR40303265045" in markup and "&lt;b&gt;Alpha&lt;/b&gt;" in markup


def test_screens_show_customer_text_escaped_and_without_bidirectional_controls():
    import pandas as pd

    from workbench.ui import shown
    from workbench.ui.display import html_text

    # stored before the load refused them: the override must not reverse what follows on screen
    frame = pd.DataFrame({"name": ["Acme \u202eLtd\u202c <b>x</b>", None], "calls": [3, 4]})
    html = shown(frame).to_html()
    assert "\u202e" not in html and "\u202c" not in html
    assert "Acme Ltd &lt;b&gt;x&lt;/b&gt;" in html and "<b>x</b>" not in html
    assert html_text('\u2067<img src="x">\u2069') == "&lt;img src=&quot;x&quot;&gt;"
    assert frame["name"][0].startswith("Acme \u202e")  # the frame itself is left as it is


def test_a_month_without_calls_has_no_chart_but_a_message(capsys):
    import pandas as pd

    from workbench.ui import revenue_chart

    empty = pd.DataFrame({"zone_code": [], "band": [], "calls": [], "minutes": [], "revenue_eur": []})
    assert revenue_chart(empty, "2026-09") is None  # no "no numeric data to plot"
    assert "No rated call in 2026-09" in capsys.readouterr().out


def test_the_dates_follow_the_period_and_a_launched_run_reaches_the_panels_below(engine, database_url, tmp_path):
    from factories import billing_reference_folder
    from sqlalchemy import func, select

    from workbench.db import schema as s
    from workbench.reference import load_reference
    from workbench.ui import compare_panel, invoice_viewer, preprod_panel, report_panel

    settings = Settings(database_url=database_url, output_dir=str(tmp_path / "out"), storage_url=str(tmp_path / "ftp"))
    load_reference(engine, billing_reference_folder(tmp_path / "reference"))
    panel = preprod_panel(settings, engine, "2026-10")
    controls = panel.controls
    dates = (controls["invoice_date"], controls["due_date"])
    # the day after the period, then 30 days to pay: 1 November and 1 December
    assert tuple(d.value for d in dates) == (date(2026, 11, 1), date(2026, 12, 1))
    controls["period"].value = "2026-09"  # 1 October, then 1 October + 30 days = 31 October
    assert tuple(d.value for d in dates) == (date(2026, 10, 1), date(2026, 10, 31))
    controls["invoice_date"].value = date(2026, 9, 3)  # chosen by hand: it stays
    controls["period"].value = "2026-08"  # the due date follows: 1 September + 30 days = 1 October
    assert tuple(d.value for d in dates) == (date(2026, 9, 3), date(2026, 10, 1))
    controls["period"].value = "2026-13"  # not a period: said so, the dates stay
    assert tuple(d.value for d in dates) == (date(2026, 9, 3), date(2026, 10, 1))
    assert "2026-13" in panel.children[1].value

    # the panels below, built before any run exists, hear of the run launched above
    report, viewer, compare = report_panel(settings, engine, "2026-10"), invoice_viewer(settings, engine), \
        compare_panel(engine)
    assert report.controls.value is None and viewer.children[0].options == ()
    controls["period"].value = "2026-10"
    controls["invoice_date"].value, controls["due_date"].value = date(2026, 11, 1), date(2026, 12, 1)
    controls["launch"].click()
    with engine.connect() as connection:
        run_id = connection.execute(select(func.max(s.BillingRun.id))).scalar_one()
    assert run_id is not None
    assert report.controls.value == run_id
    # the billing operator's four customers: four drafts
    assert viewer.children[0].options == tuple(f"PRE-{run_id}-{n:04d}" for n in range(1, 5))
    assert compare.controls["b"].value == run_id
