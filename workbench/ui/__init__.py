"""Widgets for the analysts' notebooks and the reviewers' Voila dashboards.

Every panel is built here (a notebook cell only calls one function and displays it), on top of
the jobs (:mod:`workbench.jobs`) and the read layer (:mod:`workbench.reads`):

* :mod:`workbench.ui.inputs`: :func:`connect`, checked widget values, the one-line job calls;
* :mod:`workbench.ui.panels`: the analysts' panels;
* :mod:`workbench.ui.dashboards`: the reviewers' dashboards;
* :mod:`workbench.ui.tables`: the interactive tables (sort, filter, search, pages; amounts in euros);
* :mod:`workbench.ui.display`: links, charts and PDF pages, customer text escaped;

* :mod:`workbench.ui.whatif`: the what-if tariffs panel, tables and chart.
"""

from workbench.reads.calls import monthly_consumption, reject_counts, rejects_frame, traffic_frame, unrated_frame
from workbench.reads.runs import run_report
from workbench.ui.dashboards import profile_dashboard, review_dashboard
from workbench.ui.display import (
    download_link,
    pdf_document,
    pdf_pages_png,
    pdf_preview_png,
    revenue_chart,
    shown,
    styled_invoices,
)
from workbench.ui.inputs import (
    check_period,
    check_run_options,
    connect,
    latest_run,
    load_folder,
    loads_frame,
    preprod_now,
    project_path,
    rate_now,
)
from workbench.ui.panels import (
    cdr_panel,
    compare_panel,
    invoice_viewer,
    preprod_panel,
    rating_panel,
    rejects_panel,
    report_panel,
)
from workbench.ui.summary import production_summary
from workbench.ui.tables import table
from workbench.ui.whatif import (
    show_what_if,
    show_what_if_plan,
    what_if_chart,
    what_if_now,
    what_if_panel,
    what_if_tables,
)

__all__ = [
    "cdr_panel", "check_period", "check_run_options", "compare_panel", "connect", "download_link", "invoice_viewer",
    "latest_run", "load_folder", "loads_frame", "monthly_consumption", "pdf_document", "pdf_pages_png",
    "pdf_preview_png", "preprod_now",
    "preprod_panel", "production_summary", "profile_dashboard", "project_path", "rate_now", "rating_panel",
    "reject_counts", "rejects_frame", "rejects_panel", "report_panel",
    "review_dashboard", "revenue_chart", "run_report", "shown", "styled_invoices", "table", "traffic_frame",
    "unrated_frame",
    "show_what_if", "show_what_if_plan", "what_if_chart", "what_if_now", "what_if_panel", "what_if_tables",
]
