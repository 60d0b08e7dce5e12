"""The pre-production job: a test billing with its control report written and stored.

Repeatable as often as wanted; it changes nothing production depends on (no legal number, no call
marked billed). The control report (:func:`write_report`) is written to
``<output_dir>/reports/control-report-<period>-run<N>.xlsx`` and stored in the FTP space as
``reports/<period>/`` the same name; draft PDFs, when asked for, go to ``drafts/run-<N>/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from sqlalchemy import Engine

from workbench.billing import RunSummary, default_dates
from workbench.billing import delete_run as delete_drafts
from workbench.billing import preprod as store_preprod
from workbench.config import Settings
from workbench.db import ratings as rating_store
from workbench.errors import InputError, UnavailableError, WorkbenchError
from workbench.jobs.documents import PublishReport, publish_documents
from workbench.jobs.production import run_number
from workbench.jobs.rating import rate
from workbench.jobs.workspace import utc_now
from workbench.mail.reports import ReportMailing, ReportSummary, report_summary, send_report
from workbench.period import Period, local_date
from workbench.rated_calls import RatingSummary
from workbench.reads import calls as stored_calls
from workbench.reads.runs import RunOptions, run_report, run_row
from workbench.reads.selection import parse_customers
from workbench.reports.excel import write_control_report
from workbench.storage import Storage


@dataclass(frozen=True)
class ReportFiles:
    """Where a run's control report is: ``path`` on this machine, ``stored_as`` in the FTP space."""

    run_id: int
    path: Path
    stored_as: str
    summary: ReportSummary | None = None


@dataclass(frozen=True)
class PreprodResult:
    """A pre-production run: its summary, its control report, its draft PDFs (when asked for),
    the ratings it ran first for calls loaded but not rated (``rated_first``, oldest period first),
    and ``warnings`` for whoever launched it (a period without rated calls, a control report that
    could not be emailed); ``mailing``: the report emailed to ``report_recipients``."""

    run: RunSummary
    report: ReportFiles
    documents: PublishReport | None = None
    rated_first: tuple[RatingSummary, ...] = ()
    warnings: tuple[str, ...] = field(default=())
    mailing: ReportMailing | None = None


def rate_unrated(engine: Engine, settings: Settings, period: Period | str,
                 now: datetime | None = None) -> tuple[RatingSummary, ...]:
    """Rate the periods (up to ``period``) that hold calls never rated (loaded after their
    period's last rating, or whose rating failed and was rolled back), so that no run bills a
    period as if those calls did not exist; the ratings run, oldest period first. Raises what
    :func:`~workbench.jobs.rating.rate` raises (then nothing of that period's rating is stored)."""
    with engine.connect() as connection:
        pending = stored_calls.unrated_calls(connection, Period.parse(period), settings.timezone)
    return tuple(rate(engine, settings, p, now) for p in pending["period"])


def check_period(text: str | Period, today: date | None = None, timezone: str = "Europe/Paris") -> Period:
    """A billing period that is well formed and not in the future (``today``: by default the
    operator's date in ``timezone``, :func:`workbench.period.local_date`); the one check of the
    command line, the widgets and the notebooks. :class:`~workbench.errors.InputError`
    (``bad_period``): ``period 2027-01 is in the future``."""
    period = Period.parse(str(text or "").strip())
    today = today or local_date(utc_now(), timezone)
    if period.start > today:
        raise InputError(f"period {period} is in the future", code="bad_period")
    return period


def period_without_calls(engine: Engine, period: str) -> str | None:
    """The warning for a period that has no rated call (its CDRs not loaded or not rated yet),
    else None."""
    with engine.connect() as connection:
        calls = rating_store.count(connection, str(period))
    if calls:
        return None
    return (f"period {period} has no rated calls: its invoices have no consumption. Load and rate its CDRs "
            f"(`workbench load-cdrs`, `workbench rate --period {period}`) if that is not expected")


def run_options(settings: Settings, period: str, invoice_date: date | str | None = None,
                due_date: date | str | None = None, customers: str = "all", advance: bool = False,
                pdfs: bool = False, today: date | None = None) -> RunOptions:
    """The options of a run, checked, with the default dates (invoice date: the day after the
    period; due date: ``payment_days`` later); :class:`~workbench.errors.InputError` saying what is
    wrong (a bad period or one in the future, :func:`check_period`; a bad date or customer
    selection, a due date before the invoice date)."""
    checked = check_period(period, today, settings.timezone)
    default_invoice, default_due = default_dates(checked, settings)

    def day(value, name: str, default: date) -> date:
        if value is None or value == "":
            return default
        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(str(value).strip())
        except ValueError:
            raise InputError(f"{value!r} is not a date (YYYY-MM-DD)", source=name, code="bad_date") from None

    invoice_day = day(invoice_date, "invoice date", default_invoice)
    due_day = day(due_date, "due date", invoice_day + (default_due - default_invoice))
    if due_day < invoice_day:
        raise InputError(f"the due date {due_day} is before the invoice date {invoice_day}", code="bad_date")
    return RunOptions(str(checked), invoice_day, due_day, parse_customers(customers), bool(advance), bool(pdfs))


def delete_run(engine: Engine, settings: Settings, run_id: int) -> int:
    """Delete a pre-production run and its drafts (see :func:`workbench.billing.runs.delete_run`);
    the number of drafts deleted. :class:`~workbench.errors.RefusedError` for a production run or
    a promoted one (kept as its review record)."""
    return delete_drafts(engine, run_id)


def report_path(settings: Settings, run_id: int, period: str) -> Path:
    """The local file of a run's control report; ``run_id`` and ``period`` are checked before they
    name the file (:class:`~workbench.errors.InputError`)."""
    return Path(settings.output_dir) / "reports" / f"control-report-{Period.parse(period)}-run{run_number(run_id)}.xlsx"


def write_report(engine: Engine, settings: Settings, run_id: int) -> ReportFiles:
    """Write the control report of a stored run (:func:`~workbench.reads.runs.run_report`) and store
    it in the FTP space; :class:`~workbench.errors.InputError` for an unknown run,
    :class:`~workbench.errors.UnavailableError` if the local file cannot be written or the FTP
    space cannot take it (then the local file stays)."""
    with engine.connect() as connection:
        period = run_row(connection, run_id)["period"]
    target = report_path(settings, run_id, period)
    sheets = run_report(engine, run_id, settings)
    try:
        path = write_control_report(sheets, target, title=f"Billing control report, {period}, run {run_id}")
    except OSError as exc:
        raise UnavailableError(f"{target}: cannot be written ({exc.strerror or exc})", code="report") from None
    stored_as = f"reports/{period}/{path.name}"
    Storage(settings.storage_url).put(stored_as, path.read_bytes())
    return ReportFiles(run_id, path, stored_as, report_summary(run_id, period, sheets))


def mail_report(engine: Engine, settings: Settings, report: ReportFiles, now: datetime | None = None) -> ReportMailing:
    """Email the control report of a pre-production run to ``report_recipients``, each recipient
    once (:func:`workbench.mail.reports.send_report`: those it failed for get it now); nothing
    for a production run's report. :class:`~workbench.errors.ConfigError` for an unusable mail set-up."""
    with engine.connect() as connection:
        run = run_row(connection, report.run_id)
    if run["kind"] != "preprod":
        return ReportMailing()
    summary = report.summary or report_summary(report.run_id, run["period"],
                                               run_report(engine, report.run_id, settings))
    return send_report(engine, settings, summary, report.path, now or utc_now())


def mailing_warnings(mailing: ReportMailing, run_id: int) -> tuple[str, ...]:
    """What a person must know of a report not emailed: one line per recipient, with how to send it."""
    return tuple(f"the control report was not emailed to {recipient}: {error} (`workbench report {run_id}` sends "
                 "it again)" for recipient, error in mailing.failed)


def report_workbook(engine: Engine, settings: Settings, run_id: int) -> tuple[str, bytes]:
    """The control report of a stored run as a reviewer downloads it: its file name and bytes,
    the file :func:`write_report` wrote (:func:`report_path`) when it is there, else the workbook
    written now from the stored run, as :func:`write_report` writes it, but neither kept nor
    stored. :class:`~workbench.errors.InputError` for an unknown run."""
    import tempfile

    with engine.connect() as connection:
        period = run_row(connection, run_id)["period"]
    written = report_path(settings, run_id, period)
    name = written.name
    if written.is_file():
        return name, written.read_bytes()
    with tempfile.TemporaryDirectory() as folder:
        path = write_control_report(run_report(engine, run_id, settings), Path(folder) / name,
                                    title=f"Billing control report, {period}, run {run_id}")
        return name, path.read_bytes()


def preprod(engine: Engine, settings: Settings, options: RunOptions, now: datetime | None = None,
            created_by: str | None = None) -> PreprodResult:
    """Run a pre-production billing (:func:`workbench.billing.runs.preprod`), write and store its
    control report, and render its draft PDFs when ``options.pdfs``. When the report or the PDFs
    cannot be written or stored, the error says that the run is stored and how to finish it.

    Calls loaded but never rated (of the period, or late ones of earlier periods) are rated
    first (:func:`rate_unrated`), so the drafts bill them."""
    now = now or utc_now()
    rated_first = rate_unrated(engine, settings, options.period, now)
    summary = store_preprod(engine, options, settings, now, created_by)
    try:
        report = write_report(engine, settings, summary.run_id)
        documents = publish_documents(engine, settings, run_id=summary.run_id) if options.pdfs else None
        mailing = mail_report(engine, settings, report, now)
    except WorkbenchError as exc:  # the run is stored: say so, so that nobody launches it twice
        raise type(exc)(f"{exc}. Pre-production run {summary.run_id} is stored ({summary.invoices} drafts); write its "
                        f"report again with `workbench report {summary.run_id}` (or its PDFs with `workbench documents "
                        f"--run {summary.run_id}`) once this is fixed", code=exc.code) from None
    warning = period_without_calls(engine, options.period)
    return PreprodResult(summary, report, documents, rated_first,
                         ((warning,) if warning else ()) + mailing_warnings(mailing, summary.run_id), mailing)
