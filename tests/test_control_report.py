"""The Excel control report as a reviewer prints it (number formats, the anomaly column, the print
set-up), and the report emailed to the billing team once per run, to the outbox folder and to a
real SMTP server on 127.0.0.1 (aiosmtpd)."""

from __future__ import annotations

import email
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal
from email.policy import default as default_policy

import openpyxl
import pandas as pd
import pytest
from sqlalchemy import select
from test_billing import NOW, OPTIONS, october  # noqa: F401 - the October scenario, a fixture
from test_mail import Recorder, SmtpServer

from workbench import jobs
from workbench.db import schema as s
from workbench.invoicing.report import anomaly_codes
from workbench.reports.excel import write_control_report


def _sheets() -> dict[str, pd.DataFrame]:
    invoices = pd.DataFrame({"Invoice number": ["PRE-1-0001", "PRE-1-0002"], "Account number": ["C1", "C2"],
                             "Customer name": ["Alpha", "Beta"],
                             "Total amount billed": [Decimal("12.50"), Decimal("100.00")],
                             "Calls": [3, 20], "Anomalies": ["late_calls", ""]})
    lines = pd.DataFrame({"Invoice number": ["PRE-1-0001"] * 3, "Quantity": [Decimal("1"), Decimal("2.08"),
                                                                           Decimal("20")],
                          "VAT rate (%)": [Decimal("20"), Decimal("5.5"), Decimal("0")],
                          "Amount excl. VAT": [Decimal("19.90"), Decimal("0.31"), Decimal("1.00")]})
    return {"Invoices": invoices, "Lines": lines}


def test_whole_numbers_are_shown_without_a_decimal_point_and_decimals_with_theirs(tmp_path):
    path = write_control_report(_sheets(), tmp_path / "report.xlsx", title="Billing control report, 2026-10, run 1")
    lines = openpyxl.load_workbook(path)["Lines"]
    quantity, vat = (c.value for c in lines[1][1:3])
    assert (quantity, vat) == ("Quantity", "VAT rate (%)")
    shown = [(lines.cell(r, 2).value, lines.cell(r, 2).number_format, lines.cell(r, 3).value,
              lines.cell(r, 3).number_format) for r in range(2, 5)]
    # 1 and 20 (quantities), 20 and 0 (VAT rates) are whole: no decimals, so never "1." or "20.";
    # 2.08 and 5.5 keep what they have (at least one decimal, up to four)
    assert shown == [(1, "#,##0", 20, "#,##0"), (pytest.approx(2.08), "#,##0.0###", pytest.approx(5.5), "#,##0.0###"),
                     (20, "#,##0", 0, "#,##0")]
    assert lines.cell(2, 4).number_format == '#,##0.00 "€";[Red]-#,##0.00 "€"'  # money stays money
    invoices = openpyxl.load_workbook(path)["Invoices"]
    assert [c.value for c in invoices[1]][-1] == "Anomalies"
    assert [invoices.cell(r, 6).value for r in (2, 3)] == ["late_calls", ""]
    assert invoices.cell(4, 5).value == 23  # the totals row: 3 + 20 calls


def test_every_sheet_prints_landscape_one_page_wide_with_its_header_on_each_page(tmp_path):
    path = write_control_report(_sheets(), tmp_path / "report.xlsx", title="Billing control report, 2026-10, run 1")
    book = openpyxl.load_workbook(path)
    for sheet in book.worksheets:
        setup = sheet.page_setup
        assert (setup.orientation, int(setup.paperSize)) == ("landscape", 9), sheet.title  # A4
        assert sheet.sheet_properties.pageSetUpPr.fitToPage is True
        # one page wide (1, the default, is left out of the file), as many pages long as needed (0)
        assert (int(setup.fitToWidth or 1), int(setup.fitToHeight)) == (1, 0)
        assert sheet.print_title_rows == "$1:$1"  # the header row on every page
        assert "Billing control report, 2026-10, run 1" in sheet.oddFooter.left.text
        assert "&P" in sheet.oddFooter.right.text and "&N" in sheet.oddFooter.right.text


def test_the_anomaly_column_names_the_kinds_of_each_invoices_anomalies():
    anomalies = pd.DataFrame({"Source": ["PRE-1-0001", "PRE-1-0001", "rating", "PRE-1-0003", "PRE-1-0001"],
                              "Problem": ["late_calls", "change_vs_previous_invoice", "no_rate", "already_invoiced",
                                          "late_calls"]})
    codes = anomaly_codes(pd.Series(["PRE-1-0001", "PRE-1-0002", "PRE-1-0003"]), anomalies)
    # each kind once, in the order met; the rating's anomaly belongs to no invoice
    assert codes.tolist() == ["late_calls, change_vs_previous_invoice", "", "already_invoiced"]


def test_the_invoices_sheet_of_a_run_flags_its_anomalies(october):  # noqa: F811
    from workbench.billing import preprod
    from workbench.reads.runs import run_report

    run = preprod(october.engine, OPTIONS, october.settings, NOW)
    invoices = run_report(october.engine, run.run_id, october.settings)["Invoices"].set_index("Account number")
    # C3 pays by direct debit without a mandate (see test_excel_control_report)
    assert "no_mandate_for_direct_debit" in invoices.loc["C3", "Anomalies"].split(", ")
    assert "no_mandate_for_direct_debit" not in invoices.loc["C1", "Anomalies"]


def _report_settings(october, tmp_path, **values):  # noqa: F811
    return replace(october.settings, output_dir=str(tmp_path / "out"), storage_url=str(tmp_path / "ftp"),
                   outbox_dir=str(tmp_path / "outbox"), **values)


def _deliveries(engine) -> list[tuple]:
    with engine.connect() as connection:
        return [tuple(r) for r in connection.execute(select(
            s.ReportDelivery.run_id, s.ReportDelivery.recipient, s.ReportDelivery.state, s.ReportDelivery.attempts)
            .order_by(s.ReportDelivery.recipient))]


def test_each_preproduction_run_emails_its_report_once_to_the_outbox(october, tmp_path):  # noqa: F811
    settings = _report_settings(october, tmp_path, report_recipients="billing@operateur.example, "
                                                                     "controller@operateur.example")
    result = jobs.preprod(october.engine, settings, jobs.run_options(settings, "2026-10", today=date(2026, 11, 2)),
                          NOW)
    run_id = result.run.run_id
    assert result.mailing.sent == ["billing@operateur.example", "controller@operateur.example"]
    files = sorted((tmp_path / "outbox").glob("*.eml"))
    assert [f.name for f in files] == [f"control-report-2026-10-run{run_id}-billing@operateur.example.eml",
                                       f"control-report-2026-10-run{run_id}-controller@operateur.example.eml"]
    message = email.message_from_bytes(files[0].read_bytes(), policy=default_policy)
    body = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    # 4 invoices: total billed 300.34, net payable 226.34 (EXPECTED_TOTALS of test_billing)
    assert message["Subject"].startswith(f"Billing control report 2026-10, run {run_id}: 4 invoices, €300.34, ")
    assert "Invoices: 4\nTotal billed: €300.34\nNet payable: €226.34\n" in body
    assert "  no_mandate_for_direct_debit: 1\n" in body
    (name, data), = [(p.get_filename(), p.get_content()) for p in message.iter_attachments()]
    assert name == f"control-report-2026-10-run{run_id}.xlsx" and data == result.report.path.read_bytes()
    # shown or written again, it is not sent again
    for file in files:
        file.unlink()
    report = jobs.write_report(october.engine, settings, run_id)
    again = jobs.mail_report(october.engine, settings, report)
    assert (again.sent, again.already) == ([], ["billing@operateur.example", "controller@operateur.example"])
    assert list((tmp_path / "outbox").glob("*.eml")) == []
    assert _deliveries(october.engine) == [(run_id, "billing@operateur.example", "sent", 1),
                                           (run_id, "controller@operateur.example", "sent", 1)]


def test_the_report_goes_through_smtp_and_a_refused_recipient_gets_it_next_time(october, tmp_path):  # noqa: F811
    handler = Recorder()
    handler.refuse = {"gone@operateur.example"}
    server = SmtpServer(handler).start()
    try:
        settings = _report_settings(october, tmp_path, smtp_url=server.url,
                                    report_recipients="billing@operateur.example,gone@operateur.example")
        result = jobs.preprod(october.engine, settings,
                              jobs.run_options(settings, "2026-10", today=date(2026, 11, 2)), NOW)
        run_id = result.run.run_id
        assert result.mailing.sent == ["billing@operateur.example"]
        assert [r for r, _ in result.mailing.failed] == ["gone@operateur.example"]
        assert any("not emailed to gone@operateur.example: recipient refused by the server: 550" in w
                   and f"workbench report {run_id}" in w for w in result.warnings)
        assert [m["rcpt_tos"] for m in handler.messages] == [["billing@operateur.example"]]
        received = handler.parsed()[0]
        assert "Net payable: €226.34\r\n" in received.get_body(("plain",)).get_content()
        # the address fixed, the next `workbench report` sends it there, and only there
        handler.refuse = set()
        report = jobs.write_report(october.engine, settings, run_id)
        again = jobs.mail_report(october.engine, settings, report, datetime(2026, 11, 2, 8, 0))
        assert (again.sent, again.already) == (["gone@operateur.example"], ["billing@operateur.example"])
        assert [m["rcpt_tos"] for m in handler.messages] == [["billing@operateur.example"], ["gone@operateur.example"]]
        assert _deliveries(october.engine) == [(run_id, "billing@operateur.example", "sent", 1),
                                               (run_id, "gone@operateur.example", "sent", 2)]
    finally:
        server.stop()


def test_without_recipients_nothing_is_emailed(october, tmp_path):  # noqa: F811
    settings = _report_settings(october, tmp_path)
    result = jobs.preprod(october.engine, settings, jobs.run_options(settings, "2026-10", today=date(2026, 11, 2)),
                          NOW)
    assert (result.mailing.sent, result.mailing.failed) == ([], [])
    assert not (tmp_path / "outbox").exists() and _deliveries(october.engine) == []
