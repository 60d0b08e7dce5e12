"""The production notebook run headless (papermill), kept as the audit trail of the run.

:func:`run_production_notebook` executes ``notebooks/04_production.ipynb`` (which calls
:func:`workbench.jobs.production`) and keeps the executed notebook under
``<output_dir>/runs/`` and in the FTP space under ``audit/<period>/``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from workbench.config import Settings, environment
from workbench.errors import RefusedError
from workbench.jobs.production import run_number
from workbench.period import Period
from workbench.storage import Storage

NOTEBOOK = Path(__file__).resolve().parent.parent.parent / "notebooks" / "04_production.ipynb"


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


def run_production_notebook(run_id: int, period: str, deliver: bool, settings: Settings,
                            output: Path | None = None, config_file: str | None = None,
                            balance_note: str = "") -> Path:
    """Execute the production notebook with papermill; returns the executed notebook's path.

    The parameters are checked before they are used in a path (:class:`~workbench.errors.InputError`);
    :class:`~workbench.errors.RefusedError` when the notebook fails (the executed notebook is kept
    and its error is in the message)."""
    import papermill

    run_id, period = run_number(run_id), str(Period.parse(period))
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
                            "balance_note": str(balance_note or "")},
            )
    except papermill.PapermillExecutionError as exc:
        failure = f"{exc.ename}: {exc.evalue}"
    try:
        Storage(settings.storage_url).put(f"audit/{period}/{output.name}", output.read_bytes())
    except Exception as exc:  # noqa: BLE001 - the local copy stays; say so
        failure = (failure + "; " if failure else "") + f"audit copy not stored in the FTP space: {exc}"
    if failure:
        raise RefusedError(f"production notebook failed ({output}): {failure}", code="notebook_failed")
    return output
