"""The monthly cycle, one job per step: the only place each step is written.

==============================  ==================================================================
step                            job (result record)
==============================  ==================================================================
load reference data             :func:`load_reference` (:class:`ReferenceLoad`)
load CDR files                  :func:`load_cdrs` (:class:`CdrLoad`)
rejects cured by the reference  :func:`reprocess_rejects` (also run by :func:`load_reference`)
rate a period                   :func:`rate` (:class:`~workbench.rated_calls.RatingSummary`)
pre-production run + report     :func:`preprod` (:class:`PreprodResult`), :func:`write_report`, :func:`delete_run`,
                                :func:`report_workbook` (the report to download)
report emailed (once per run)   :func:`mail_report` (also run by :func:`preprod`)
approval (four eyes)            :func:`approve_run`, :func:`approved_run`, :func:`run_approvals`
reviewers' logins               :func:`add_reviewer`
promotion (production)          :func:`promote` (:class:`Promotion`), approved or forced with a reason
documents (PDFs)                :func:`publish_run`, :func:`publish_invoices` (:class:`PublishReport`)
delivery (email)                :func:`deliver` (:class:`DeliveryResult`)
SEPA direct debits              :func:`generate_direct_debits` (:class:`DirectDebitRun`)
platform export (e-invoicing)   :func:`export_einvoices` (:class:`PlatformExport`)
credit note                     :func:`credit_note` (:class:`CreditNoteResult`)
what-if tariffs (nothing kept)  :func:`what_if`, :func:`what_if_rates` (:class:`WhatIfReport`),
                                :func:`what_if_inputs`, :func:`current_rates`
the production job (papermill)  :func:`production` (:class:`ProductionResult`, its
                                :class:`ProductionSummary`), run headless by :func:`run_production_notebook`
==============================  ==================================================================

Every job takes the engine of :func:`open_database` and the settings first (the papermill runner
:func:`run_production_notebook`, which starts a kernel of its own, takes the settings). The command line,
the notebook widgets, the dashboards and the production notebook call these and only format
their results; errors are the :mod:`workbench.errors` family. Rating, what-if and the PDFs run on
this machine or on the Dask cluster the ``dask_scheduler`` setting names (:mod:`workbench.jobs.cluster`).
"""

from workbench.jobs.approvals import approve_run, approved_run, run_approvals, run_state
from workbench.jobs.credit_notes import CreditNoteResult, credit_note
from workbench.jobs.delivery import DeliveryResult, deliver
from workbench.jobs.documents import PublishReport, invoice_pdf, publish_documents, publish_invoices, publish_run
from workbench.jobs.einvoicing import PlatformExport, export_einvoices
from workbench.jobs.loading import CdrLoad, ReferenceLoad, cdr_files, load_cdrs, load_reference, reprocess_rejects
from workbench.jobs.notebook import run_production_notebook
from workbench.jobs.preprod import (
    PreprodResult,
    ReportFiles,
    check_period,
    delete_run,
    mail_report,
    mailing_warnings,
    preprod,
    report_path,
    report_workbook,
    run_options,
    write_report,
)
from workbench.jobs.production import (
    ProductionResult,
    ProductionSummary,
    Promotion,
    check_parameters,
    production,
    promote,
)
from workbench.jobs.rating import rate
from workbench.jobs.reviewers import add_reviewer
from workbench.jobs.sepa import DirectDebitRun, generate_direct_debits
from workbench.jobs.whatif import WhatIfInputs, WhatIfReport, current_rates, what_if, what_if_inputs, what_if_rates
from workbench.jobs.workspace import clear_demo, open_database, utc_now

__all__ = [
    "CdrLoad", "CreditNoteResult", "DeliveryResult", "DirectDebitRun", "PlatformExport", "PreprodResult",
    "ProductionResult", "ProductionSummary",
    "Promotion", "PublishReport", "ReferenceLoad", "ReportFiles", "cdr_files", "check_parameters", "check_period",
    "add_reviewer", "approve_run", "approved_run", "clear_demo",
    "credit_note", "delete_run", "deliver", "export_einvoices", "generate_direct_debits", "invoice_pdf", "load_cdrs",
    "load_reference",
    "mail_report", "mailing_warnings",
    "open_database", "preprod", "production", "promote", "publish_documents", "publish_invoices", "publish_run",
    "rate", "report_path", "report_workbook", "run_approvals", "run_state", "reprocess_rejects", "run_options",
    "run_production_notebook", "utc_now", "write_report",
    "WhatIfInputs", "WhatIfReport", "current_rates", "what_if", "what_if_inputs", "what_if_rates",
]
