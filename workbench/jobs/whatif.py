"""The what-if job: what a past period would have cost under a candidate rate plan.

It reads the period's calls, their stored ratings (what was billed), the lines and the
allowances, reads the candidate plan from reference files with every check of a load
(:func:`workbench.reference.candidate_plans`), and rates the calls under it with the pure
:func:`workbench.rating.whatif.what_if`. Nothing is written: the stored ratings, invoices and
plans stay as they are.
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine

from workbench.config import Settings
from workbench.jobs.cluster import HERE, cluster, partitioned_rater
from workbench.jobs.preprod import check_period
from workbench.rating import allowance_buckets, rate
from workbench.rating.whatif import WhatIf
from workbench.rating.whatif import what_if as rate_what_if
from workbench.reads import calls as stored_calls
from workbench.reads.customers import customer_names
from workbench.reference import COLUMNS, candidate_plans, rates_rows


@dataclass(frozen=True)
class WhatIfInputs:
    """What a what-if of ``period`` reads from the database, read once (:func:`what_if_inputs`)
    and reused while candidate plans are tried: the period's ``calls`` (every one, billed or
    not), their stored ratings ``billed`` (:func:`workbench.reads.calls.period_ratings`), the
    ``lines``, the allowance ``buckets`` of the period, the ``customers`` (customer_id,
    account_number, name) and the ``plans`` the period is rated with now (by id)."""

    period: str
    calls: pd.DataFrame
    billed: pd.DataFrame
    lines: pd.DataFrame
    buckets: pd.DataFrame
    customers: pd.DataFrame
    plans: dict

    @property
    def invoiced_calls(self) -> int:
        """How many of the billed calls are on an issued invoice."""
        return int(self.billed["invoiced"].sum())


@dataclass(frozen=True)
class WhatIfReport:
    """A what-if's result (:class:`~workbench.rating.whatif.WhatIf`; its ``customers``,
    ``lines`` and ``most_affected()`` with each customer's ``account_number`` and ``name``),
    the candidate ``plan`` (the path given, or ``edited rates``) and the ``inputs`` read."""

    plan: str
    result: WhatIf
    inputs: WhatIfInputs
    #: where the calls were rated: "on this machine", or "on a Dask cluster of N workers at ADDRESS"
    where: str = HERE


def what_if_inputs(engine: Engine, settings: Settings, period: str) -> WhatIfInputs:
    """Read what a what-if of ``period`` needs (see :class:`WhatIfInputs`);
    :class:`~workbench.errors.InputError` for a bad period or one in the future."""
    period = check_period(period, timezone=settings.timezone)
    tz = settings.timezone
    with engine.connect() as connection:
        calls = stored_calls.period_calls(connection, period, tz, billed=None)
        billed = stored_calls.period_ratings(connection, period)
        lines = stored_calls.lines(connection)
        subs, allowances = stored_calls.subscriptions_with_allowances(connection)
        plans = stored_calls.rate_plans(connection)
    buckets = allowance_buckets(subs, allowances, period, tz)
    return WhatIfInputs(str(period), calls, billed, lines, buckets, customer_names(engine), plans)


def _named(frame: pd.DataFrame, customers: pd.DataFrame) -> pd.DataFrame:
    named = frame.merge(customers, on="customer_id", how="left")
    first = ["customer_id", "account_number", "name"]
    return named[first + [c for c in named.columns if c not in first]]


def what_if(engine: Engine, settings: Settings, period: str, plan: str | Path,
            inputs: WhatIfInputs | None = None) -> WhatIfReport:
    """The calls of ``period`` rated under the candidate plan at ``plan`` (a folder of reference
    files such as ``data/sample/reference``, whose rate plan files are read, or a ``rates.csv``
    alone that replaces the rates it lists: :func:`workbench.reference.candidate_plans`),
    against what was billed (:mod:`workbench.rating.whatif`). ``inputs``: those of an earlier
    call for the same period, not read again.

    Raises :class:`~workbench.errors.InputError` for a bad period, or a candidate plan with a
    bad row (file, line, column, reason) or that cannot be compiled."""
    if inputs is None or inputs.period != str(check_period(period, timezone=settings.timezone)):
        inputs = what_if_inputs(engine, settings, period)
    plans = candidate_plans(engine, plan, settings.home_country_code)
    with cluster(settings.dask_scheduler) as on:  # the dask_scheduler setting: here, or on a Dask cluster
        result = rate_what_if(inputs.calls, inputs.billed, inputs.lines, plans, inputs.period, inputs.buckets,
                              settings.timezone, rater=rate if on is None else partitioned_rater(on))
        where = HERE if on is None else on.where
    result = dataclasses.replace(result, customers=_named(result.customers, inputs.customers),
                                 lines=_named(result.lines, inputs.customers))
    return WhatIfReport(str(plan), result, inputs, where)


def current_rates(inputs: WhatIfInputs) -> pd.DataFrame:
    """The rates the period is rated with now, as rows of ``rates.csv`` (text, as the reference
    files write them): what the what-if widget lets an analyst edit."""
    return rates_rows(inputs.plans)


def what_if_rates(engine: Engine, settings: Settings, period: str, rates: pd.DataFrame,
                  inputs: WhatIfInputs | None = None) -> WhatIfReport:
    """:func:`what_if` with rates given as rows of ``rates.csv`` (the columns of the reference
    file, text: e.g. :func:`current_rates` with a few edited), checked as a load checks them."""
    with tempfile.TemporaryDirectory(prefix="what-if-") as folder:
        path = Path(folder) / "rates.csv"
        rates[COLUMNS["rates"]].to_csv(path, index=False)
        report = what_if(engine, settings, period, path, inputs)
    return dataclasses.replace(report, plan="edited rates")
