"""Widgets for the analysts' notebooks and the reviewers' Voila dashboards.

Every panel is built here (a notebook cell only calls one function and displays it), on top of
the jobs (:mod:`workbench.jobs`) and the read layer (:mod:`workbench.reads`):

* :mod:`workbench.ui.inputs`: :func:`connect`, checked widget values, the one-line job calls;
* :mod:`workbench.ui.panels`: the analysts' panels;
* :mod:`workbench.ui.dashboards`: the reviewers' dashboards;
* :mod:`workbench.ui.display`: tables, links, charts and previews, customer text escaped;
* :mod:`workbench.ui.whatif`: the what-if tariffs panel, tables and chart.
"""

from workbench.reads.calls import monthly_consumption, rejects_frame, traffic_frame, unrated_frame
from workbench.reads.runs import run_report
from workbench.ui.dashboards import profile_dashboard, review_dashboard
from workbench.ui.display import download_link, pdf_preview_png, revenue_chart, shown, styled_invoices
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
from workbench.ui.panels import cdr_panel, compare_panel, invoice_viewer, preprod_panel, rating_panel
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
    "latest_run", "load_folder", "loads_frame", "monthly_consumption", "pdf_preview_png", "preprod_now",
    "preprod_panel", "profile_dashboard", "project_path", "rate_now", "rating_panel", "rejects_frame",
    "review_dashboard", "revenue_chart", "run_report", "shown", "styled_invoices", "traffic_frame", "unrated_frame",
    "show_what_if", "show_what_if_plan", "what_if_chart", "what_if_now", "what_if_panel", "what_if_tables",
]
