"""The production notebook run headless (papermill), kept as the audit trail of the run.

:func:`run_production_notebook` executes ``notebooks/04_production.ipynb`` (which calls
:func:`workbench.jobs.production`) and keeps the executed notebook under
``<output_dir>/runs/`` and in the FTP space under ``audit/<period>/``.
"""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from workbench.billing.approvals import approved_run
from workbench.config import Settings, environment
from workbench.errors import RefusedError
from workbench.jobs.production import ProductionSummary, run_number
from workbench.jobs.workspace import open_database
from workbench.period import Period
from workbench.storage import Storage

NOTEBOOK = Path(__file__).resolve().parent.parent.parent / "notebooks" / "04_production.ipynb"
#: the key of the notebook's JSON output that holds the job's summary (:class:`ProductionSummary`)
SUMMARY_KEY = "production_summary"


@dataclass(frozen=True)
class NotebookRun:
    """An executed production notebook: where it is kept, the run it promoted, and the job's
    summary as the notebook shows it (``None`` when it stopped before)."""

    path: Path
    run_id: int
    summary: ProductionSummary | None


def notebook_summary(path: Path) -> ProductionSummary | None:
    """The job's summary an executed production notebook shows (its JSON output), or ``None``."""
    try:
        cells = json.loads(Path(path).read_text(encoding="utf-8")).get("cells", [])
    except (OSError, ValueError):
        return None
    for cell in reversed(cells):
        for output in cell.get("outputs", []):
            value = output.get("data", {}).get("application/json")
            if isinstance(value, dict) and isinstance(value.get(SUMMARY_KEY), dict):
                return ProductionSummary.from_dict(value[SUMMARY_KEY])
    return None


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """``values`` in the environment for the ``with`` block (the kernel papermill starts inherits it)."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_production_notebook(run_id: int | None, period: str, deliver: bool, settings: Settings,
                            output: Path | None = None, config_file: str | None = None,
                            balance_note: str = "", approved: bool = False, force_reason: str = "",
                            launched_by: str | None = None) -> NotebookRun:
    """Execute the production notebook with papermill for run ``run_id`` (or, with ``approved``
    and no ``run_id``, the approved run of ``period``, :func:`~workbench.billing.approvals.approved_run`);
    returns the executed notebook, its run and the job's summary.

    The parameters are checked before they are used in a path (:class:`~workbench.errors.InputError`);
    :class:`~workbench.errors.RefusedError` when no run of the period is approved, or when the
    notebook fails (the executed notebook is kept and its error is in the message);
    :class:`~workbench.errors.ConfigError` (``no_database``) when the SQLite database file of the
    settings does not exist."""
    import papermill

    period = str(Period.parse(period))
    engine = open_database(settings, create=False)  # a mistyped database path: refused, not created
    if approved and run_id is None:
        run_id = approved_run(engine, period)
    run_id = run_number(run_id)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    output = output or Path(settings.output_dir) / "runs" / f"production-{period}-run{run_id}-{stamp}.ipynb"
    output.parent.mkdir(parents=True, exist_ok=True)
    failure = None
    # the kernel works with exactly these settings, their relative paths taken from here: they
    # reach it through its environment, never as parameters written into the executed notebook
    # (which is kept and stored in the FTP space), so no URL or password is in it
    try:
        values = environment(settings.anchored(Path.cwd()))
        if config_file:
            values["WORKBENCH_CONFIG"] = str(Path(config_file).resolve())
        with _environment(values):
            papermill.execute_notebook(
                str(NOTEBOOK), str(output), cwd=str(NOTEBOOK.parent), progress_bar=False,
                parameters={"run_id": run_id, "period": period, "deliver": deliver,
                            "balance_note": str(balance_note or ""), "force_reason": str(force_reason or ""),
                            "launched_by": launched_by or getpass.getuser()},
            )
    except papermill.PapermillExecutionError as exc:
        failure = f"{exc.ename}: {exc.evalue}"
    try:
        Storage(settings.storage_url).put(f"audit/{period}/{output.name}", output.read_bytes())
    except Exception as exc:  # noqa: BLE001 - the local copy stays; say so
        failure = (failure + "; " if failure else "") + f"audit copy not stored in the FTP space: {exc}"
    if failure:
        raise RefusedError(f"production notebook failed ({output}): {failure}", code="notebook_failed")
    return NotebookRun(output, run_id, notebook_summary(output))
