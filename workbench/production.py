"""The production job, as the production notebook runs it headless (papermill).

:func:`production_job` checks its parameters, issues the reviewed pre-production run, renders
and stores the PDFs, emails them (when ``deliver``) and generates the SEPA file, and returns a
summary. Any problem raises :class:`ProductionError` with a clear message, so the notebook (and
papermill, and the ``workbench production-notebook`` command) fail.

:func:`run_notebook` executes ``notebooks/04_production.ipynb`` with papermill and keeps the
executed notebook as the run's audit trail (under ``<output_dir>/runs/`` and in the FTP space).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from workbench.config import Settings

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "04_production.ipynb"


class ProductionError(RuntimeError):
    """The production run did not happen, or not completely (says what and why)."""


def production_job(run_id, period: str, deliver: bool, settings: Settings, now: datetime | None = None) -> dict:
    """Issue pre-production run ``run_id`` of ``period``; returns what was done."""
    from workbench.billing import BillingError, list_runs, production
    from workbench.db.engine import make_engine, upgrade
    from workbench.mail import MailError, plan_deliveries, send_pending
    from workbench.period import Period, PeriodError
    from workbench.publishing import publish_documents
    from workbench.sepa import generate_direct_debits

    now = now or datetime.now(UTC).replace(tzinfo=None)
    try:
        run_id = int(run_id)
    except (TypeError, ValueError):
        raise ProductionError(f"run_id must be the number of a pre-production run, not {run_id!r}") from None
    try:
        period = str(Period.parse(str(period)))
    except PeriodError as exc:
        raise ProductionError(str(exc)) from None
    engine = make_engine(settings.database_url)
    upgrade(engine)
    runs = list_runs(engine)
    row = runs[runs["id"] == run_id]
    if row.empty:
        raise ProductionError(f"there is no billing run {run_id}")
    if row["kind"].iloc[0] != "preprod":
        raise ProductionError(f"run {run_id} is a production run; give the pre-production run to promote")
    if row["period"].iloc[0] != period:
        raise ProductionError(f"run {run_id} bills {row['period'].iloc[0]}, not {period}")
    try:
        summary = production(engine, run_id, settings, now)
    except BillingError as exc:
        raise ProductionError(str(exc)) from None
    result = {"run": run_id, "period": period, "production_run": summary.run_id, "invoices": summary.invoices,
              "total_incl_cents": summary.total_incl_cents, "net_payable_cents": summary.net_payable_cents,
              "numbers": list(summary.numbers) if summary.numbers else [], "skipped": summary.skipped,
              "message": summary.message}
    if not summary.run_id:
        return result
    # what follows only does what is missing: a re-run after a failure finishes the job
    documents = publish_documents(engine, settings, run_id=summary.run_id)
    result["pdfs_stored"] = len(documents.stored) + len(documents.already)
    if documents.failed:
        raise ProductionError(f"{len(documents.failed)} PDFs could not be stored (run `workbench documents --run "
                              f"{summary.run_id}` again): {documents.failed}")
    if deliver:
        plan_deliveries(engine, run_id=summary.run_id)
        try:
            mail = send_pending(engine, settings, now)
        except MailError as exc:  # e.g. another mail run in progress: this job's emails wait for a re-run
            raise ProductionError(f"email delivery not started: {exc} (run this job or `workbench mail --retry` "
                                  "again)") from None
        result.update(emails_sent=len(mail.sent), emails_failed=len(mail.failed), emails_pending=mail.pending)
        if mail.stopped:
            raise ProductionError(f"email delivery stopped: {mail.stopped} (run `workbench mail --retry`)")
    debit = generate_direct_debits(engine, settings, now, period=period)
    result.update(sepa_file=debit.path, sepa_debits=debit.transactions, sepa_total_cents=debit.total_cents)
    return result


def run_notebook(run_id: int, period: str, deliver: bool, settings: Settings, output: Path | None = None,
                 config_file: str | None = None) -> Path:
    """Execute the production notebook with papermill; returns the executed notebook's path.
    Raises :class:`ProductionError` when the notebook fails (the executed notebook is kept)."""
    import papermill

    from workbench.storage import Storage

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    output = output or Path(settings.output_dir) / "runs" / f"production-{period}-run{run_id}-{stamp}.ipynb"
    output.parent.mkdir(parents=True, exist_ok=True)
    failure = None
    try:
        papermill.execute_notebook(
            str(NOTEBOOK), str(output), cwd=str(NOTEBOOK.parent), progress_bar=False,
            parameters={"run_id": run_id, "period": period, "deliver": deliver,
                        "database_url": settings.database_url, "config_file": config_file},
        )
    except papermill.PapermillExecutionError as exc:
        failure = f"{exc.ename}: {exc.evalue}"
    try:
        Storage(settings.storage_url).put(f"audit/{period}/{output.name}", output.read_bytes())
    except Exception as exc:  # noqa: BLE001 - the local copy stays; say so
        failure = (failure + "; " if failure else "") + f"audit copy not stored in the FTP space: {exc}"
    if failure:
        raise ProductionError(f"production notebook failed ({output}): {failure}")
    return output
