"""Widget and notebook inputs checked, and the one-line calls a notebook makes into the jobs.

Relative paths (``var/...``, ``data/...``) mean the same in JupyterLab, Voila and the command line:
a notebook of ``notebooks/`` resolves them against the project's root (:func:`connect`), without
changing the working directory.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pandas as pd
import traitlets
from sqlalchemy import Engine

from workbench import jobs
from workbench.config import Settings, load_settings
from workbench.errors import InputError, WorkbenchError
from workbench.reads.runs import RunOptions, list_runs
from workbench.ui.identity import launcher

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent


def working_root() -> Path:
    """Where relative paths start: the project's root for a notebook of ``notebooks/``, else the
    working directory."""
    here = Path.cwd().resolve()
    return PROJECT_ROOT if here.is_relative_to(PROJECT_ROOT / "notebooks") else here


def project_path(path: str | Path) -> Path:
    """``path`` resolved against :func:`working_root` when relative."""
    path = Path(path)
    return path if path.is_absolute() else working_root() / path


class RunsLaunched(traitlets.HasTraits):
    """Where a notebook's panels hear of a run launched in another one: ``launched`` is the id of
    the newest run launched in this kernel (by :func:`~workbench.ui.panels.preprod_panel` or
    :func:`preprod_now`), ``launches`` how many were; the report, invoice and comparison panels
    observe ``launches`` (a run of another database may have the same id: each launch is heard)."""

    launched = traitlets.Int(allow_none=True, default_value=None)
    launches = traitlets.Int(default_value=0)
    #: how many CDR loads the notebook's panels made (the rejects panel reads them again)
    loads = traitlets.Int(default_value=0)

    def listen(self, callback, name: str) -> None:
        """Call ``callback`` when ``name`` changes; a panel that fails then (one of a cell run
        before, on a database gone since) is left out, and does not keep the others from hearing."""
        def heard(change):
            try:
                callback(change)
            except Exception:  # noqa: BLE001 - a stale panel must not silence the live ones
                self.unobserve(heard, names=name)

        self.observe(heard, names=name)

    def announce(self, run_id: int) -> None:
        """Tell the panels that run ``run_id`` was launched."""
        self.launched = run_id
        self.launches += 1


#: the kernel's one :class:`RunsLaunched`
RUNS = RunsLaunched()


def error_lines(error: WorkbenchError) -> str:
    """An error as the command line prints it: ``error: <message>``, then each of its problems
    when there are several."""
    lines = [f"error: {error}"]
    if len(error.problems) > 1:
        lines += [f"  {problem}" for problem in error.problems]
    return "\n".join(lines)


def one_line_errors() -> None:
    """In IPython, a :class:`~workbench.errors.WorkbenchError` raised by a cell shows as the
    command line shows it (:func:`error_lines`), not as a traceback; the cell still fails, so a
    headless run (papermill) stops there. Other exceptions, bugs, keep their traceback."""
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        return

    def handler(shell, etype, value, tb, tb_offset=None):
        # shown here: IPython (8.x) calls the handler for the cell's error and shows nothing itself
        shell._showtraceback(etype, value, [error_lines(value)])

    shell.set_custom_exc((WorkbenchError,), handler)


def connect(database_url: str | None = None, config_file: str | None = None,
            create: bool = True) -> tuple[Settings, Engine]:
    """Settings (from the environment and ``workbench.toml``, relative paths anchored at
    :func:`working_root`) and the migrated database. From here on, an error of the workbench is
    one line in a cell's output (:func:`one_line_errors`), this call's own included. Unless
    ``create`` (the reviewers' dashboards), a database that does not exist is refused, not
    created (:func:`workbench.jobs.open_database`)."""
    one_line_errors()
    root = working_root()
    config_file = config_file or os.environ.get("WORKBENCH_CONFIG") or None
    if config_file:
        config_file = str(project_path(config_file))  # relative to the project, as on the command line
    elif (root / "workbench.toml").exists():
        config_file = str(root / "workbench.toml")
    settings = load_settings(config_file or None, database_url=database_url or None).anchored(root)
    return settings, jobs.open_database(settings, create=create)


#: the one period check, shared with the command line (:func:`workbench.jobs.check_period`)
check_period = jobs.check_period


def check_run_options(period: str, invoice_date: date | None, due_date: date | None, selection: str,
                      accounts: str, advance: bool, pdfs: bool, settings: Settings,
                      today: date | None = None) -> RunOptions:
    """The options of a pre-production run from widget values, or an
    :class:`~workbench.errors.InputError` saying what is wrong."""
    check_period(period, today, settings.timezone)  # first, as the command line checks it
    if selection == "accounts":
        wanted = [a.strip() for a in (accounts or "").replace(";", ",").split(",") if a.strip()]
        if not wanted:
            raise InputError("the customer list is empty: give account numbers, e.g. C100001, C100002")
        customers = "accounts:" + ",".join(wanted)
    elif selection == "all":
        customers = "all"
    else:
        if not (accounts or "").strip():
            raise InputError("give the billing group's name")
        customers = f"group:{accounts.strip()}"
    return jobs.run_options(settings, period, invoice_date, due_date, customers, advance, pdfs, today)


def loads_frame(load: jobs.CdrLoad) -> pd.DataFrame:
    """What became of each CDR file, one row per file."""
    return pd.DataFrame([{"file": Path(r.file).name, "status": r.status, "format": r.format, "records": r.records,
                          "accepted": r.accepted, "rejected": r.rejected} for r in load.files])


def load_folder(settings: Settings, engine: Engine, folder: str | Path) -> pd.DataFrame:
    """Load every CDR file of a folder (without widgets); what became of each file."""
    return loads_frame(jobs.load_cdrs(engine, settings, jobs.cdr_files(project_path(folder)), progress=True))


def rate_now(settings: Settings, engine: Engine, period: str):
    """Rate a period (without widgets); the rating summary."""
    return jobs.rate(engine, settings, check_period(period, timezone=settings.timezone), progress=True)


def preprod_now(settings: Settings, engine: Engine, period: str, customers: str = "all") -> int:
    """Run a pre-production billing with default dates (without widgets), its report written
    and stored; its run id."""
    options = jobs.run_options(settings, period, customers=customers)
    run_id = jobs.preprod(engine, settings, options, created_by=launcher()).run.run_id
    RUNS.announce(run_id)
    return run_id


def latest_run(engine: Engine, period: str, kind: str = "preprod") -> int | None:
    """The newest run of ``kind`` for ``period``, or None."""
    runs = list_runs(engine, period)
    runs = runs[runs["kind"] == kind]
    return int(runs["id"].max()) if len(runs) else None
