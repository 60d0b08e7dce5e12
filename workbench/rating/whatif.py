"""What-if tariffs: a past period's calls rated again under a candidate rate plan, against what
was billed. A pure function of frames: nothing is read from or written to the database, the
stored ratings and invoices stay as they are.

**What "billed" means.** The billed amount of a call is its stored rating (``price_units`` of
the period's rated calls, in 1/10,000 EUR): what its customer's invoice bills as consumption
(or the next one bills, for a call rated after its period was invoiced, or a period not yet in
production). Calls that could not be rated were billed nothing.

**The candidate amounts** come from :func:`workbench.rating.rate` itself, on every call of the
period at once (billed or not): the same classification (line, destination, zone, band) and
pricing, and the allowances of the period shared out per account and zone in chronological
order, exactly as a first rating of the period does. So the plan the period was billed with
gives a difference of 0, call for call. A call the candidate cannot rate (no rate for its zone
and band) counts at 0 and is listed in :attr:`WhatIf.errors`.

Rounding, in integer arithmetic (:func:`workbench.money.round_half_up`), as invoices round:

1. each call's price, once, half up to 1/10,000 EUR (:mod:`workbench.rating.pricing`);
2. an invoice bills a customer's calls of a zone as one consumption line: their sum in
   1/10,000, rounded half up to the cent (:mod:`workbench.invoicing`). The what-if rounds the
   billed and the candidate sums of each (customer, zone) that way, so the difference of a
   (customer, zone), in cents, is what that invoice line would change by (3 calls of 120 s at
   0.10/min billed 0.60, at 0.15/min 0.90: +0.30);
3. a customer's and a zone's differences are sums of their lines' cents, and the total the sum
   of all: no further rounding.

Invoices have no lines by time band: the differences by (customer, zone, band) are exact
amounts in 1/10,000 EUR (``*_units``), not rounded (their sum over the bands of a (customer,
zone) is the unrounded amount that point 2 rounds).

The work splits by customer (allowances are per account): :func:`detail` of disjoint groups
of customers' calls, concatenated, gives to :func:`summarise` the same result as the whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from workbench.money import round_half_up
from workbench.period import Period
from workbench.rating import ERROR_COLUMNS as _RATING_ERROR_COLUMNS
from workbench.rating import CompiledPlan, RatePlan, Rater, rate

#: a call's stored rating, as :func:`detail` reads it
BILLED_COLUMNS = ["cdr_id", "customer_id", "zone_code", "band", "price_units"]
#: :attr:`WhatIf.detail`: one row per (customer, zone, band); amounts in 1/10,000 EUR (int64)
DETAIL_COLUMNS = ["customer_id", "zone_code", "band", "billed_calls", "candidate_calls", "billed_units",
                  "candidate_units", "difference_units"]
#: the amounts of :attr:`WhatIf.lines`, ``customers`` and ``zones``, in cents (int64)
CENT_COLUMNS = ["billed_cents", "candidate_cents", "difference_cents"]
_KEYS = ["customer_id", "zone_code", "band"]
_UNITS_PER_CENT = 100  # call prices are in 1/10,000, invoice lines in cents


@dataclass(frozen=True)
class WhatIf:
    """A period's calls under a candidate plan against what was billed (see the module
    docstring for the rounding points).

    * ``detail``: by customer, zone and band (:data:`DETAIL_COLUMNS`), exact in 1/10,000 EUR;
    * ``lines``: by customer and zone, as invoice consumption lines: ``customer_id``,
      ``zone_code``, ``billed_calls``, ``candidate_calls``, then :data:`CENT_COLUMNS`;
    * ``customers``: by customer (``customer_id``, ``billed_calls``, then :data:`CENT_COLUMNS`),
      the most affected first (largest difference either way, then customer id);
    * ``zones``: by zone (``zone_code``, ``billed_calls``, ``candidate_calls``, then
      :data:`CENT_COLUMNS`);
    * ``bands``: by zone and band, exact in 1/10,000 EUR (the columns of ``detail`` but the customer);
    * ``errors``: the billed calls the candidate plan cannot rate (``cdr_id``, ``period``,
      ``reason``, ``message``), counted at 0.
    """

    period: str
    detail: pd.DataFrame
    lines: pd.DataFrame
    customers: pd.DataFrame
    zones: pd.DataFrame
    bands: pd.DataFrame
    errors: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=_RATING_ERROR_COLUMNS))

    @property
    def billed_cents(self) -> int:
        return int(self.lines["billed_cents"].sum())

    @property
    def candidate_cents(self) -> int:
        return int(self.lines["candidate_cents"].sum())

    @property
    def difference_cents(self) -> int:
        """The total difference in cents: candidate minus billed, the sum of every line's."""
        return int(self.lines["difference_cents"].sum())

    def most_affected(self, count: int = 10) -> pd.DataFrame:
        """The ``count`` customers whose consumption changes most, either way (rows of ``customers``)."""
        return self.customers.head(count).reset_index(drop=True)


def detail(
    calls: pd.DataFrame,
    billed: pd.DataFrame,
    lines: pd.DataFrame,
    plans: Mapping[int, RatePlan | CompiledPlan],
    period: Period | str,
    buckets: pd.DataFrame | None = None,
    timezone: str = "Europe/Paris",
    rater: Rater = rate,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rate ``calls`` under ``plans`` and set them against ``billed``: the frame
    :attr:`WhatIf.detail` and the errors of the billed calls the candidate cannot rate.

    ``calls``, ``lines``, ``plans``, ``buckets``, ``timezone``: as :func:`workbench.rating.rate`
    takes them (every call of the period, billed or not; the candidate plans by the ids the
    lines name); ``billed``: the stored ratings of the period's calls (:data:`BILLED_COLUMNS`,
    ``price_units`` in 1/10,000 EUR). ``rater``: what rates them, :func:`workbench.rating.rate` or
    anything with its signature and result (the same function on the workers of a cluster,
    :func:`workbench.jobs.cluster.partitioned_rater`).
    """
    period = Period.parse(period)
    result = rater(calls, lines, plans, period, buckets=buckets, consumed=None, timezone=timezone)
    billed_side = _side(billed, "billed")
    candidate_side = _side(result.rated, "candidate")
    merged = billed_side.join(candidate_side, how="outer")
    merged = merged.fillna(0).astype(np.int64).reset_index()
    merged["difference_units"] = merged["candidate_units"] - merged["billed_units"]
    errors = result.errors[result.errors["cdr_id"].isin(billed["cdr_id"])].reset_index(drop=True)
    return merged[DETAIL_COLUMNS], errors


def _side(ratings: pd.DataFrame, name: str) -> pd.DataFrame:
    """Calls and amounts of one side by (customer, zone, band), indexed by them."""
    sums = ratings.groupby(_KEYS, observed=True).agg(**{f"{name}_calls": ("price_units", "size"),
                                                         f"{name}_units": ("price_units", "sum")})
    # the keys as plain values once aggregated (categories from rating, text from the database)
    sums = sums.reset_index().astype({"customer_id": np.int64, "zone_code": str, "band": str,
                                      f"{name}_calls": np.int64, f"{name}_units": np.int64})
    return sums.set_index(_KEYS)


def summarise(detail_frame: pd.DataFrame, period: Period | str, errors: pd.DataFrame | None = None) -> WhatIf:
    """The :class:`WhatIf` of a detail frame (:data:`DETAIL_COLUMNS`; rows of the same
    customer, zone and band, from several parts of the calls, are added up first)."""
    amounts = ["billed_calls", "candidate_calls", "billed_units", "candidate_units", "difference_units"]
    frame = detail_frame[DETAIL_COLUMNS].astype({c: np.int64 for c in amounts} | {"customer_id": np.int64})
    frame = frame.groupby(_KEYS, as_index=False)[amounts].sum().sort_values(_KEYS, ignore_index=True)
    lines = frame.groupby(["customer_id", "zone_code"], as_index=False)[
        ["billed_calls", "candidate_calls", "billed_units", "candidate_units"]].sum()
    for side in ("billed", "candidate"):  # rounding point 2: one invoice line per customer and zone
        lines[f"{side}_cents"] = round_half_up(lines[f"{side}_units"].to_numpy(np.int64), _UNITS_PER_CENT)
    lines["difference_cents"] = lines["candidate_cents"] - lines["billed_cents"]
    lines = lines[["customer_id", "zone_code", "billed_calls", "candidate_calls", *CENT_COLUMNS]]
    customers = lines.groupby("customer_id", as_index=False)[["billed_calls", *CENT_COLUMNS]].sum()
    customers = (customers.assign(_size=customers["difference_cents"].abs())
                 .sort_values(["_size", "customer_id"], ascending=[False, True], ignore_index=True)
                 .drop(columns="_size"))
    zones = lines.groupby("zone_code", as_index=False)[["billed_calls", "candidate_calls", *CENT_COLUMNS]].sum()
    bands = frame.groupby(["zone_code", "band"], as_index=False)[amounts].sum()
    if errors is None:
        errors = pd.DataFrame(columns=_RATING_ERROR_COLUMNS)
    return WhatIf(str(Period.parse(period)), frame, lines, customers, zones, bands, errors)


def what_if(
    calls: pd.DataFrame,
    billed: pd.DataFrame,
    lines: pd.DataFrame,
    plans: Mapping[int, RatePlan | CompiledPlan],
    period: Period | str,
    buckets: pd.DataFrame | None = None,
    timezone: str = "Europe/Paris",
    rater: Rater = rate,
) -> WhatIf:
    """The calls of ``period`` rated under the candidate ``plans``, against ``billed`` (see
    :func:`detail` for the frames, the module docstring for what "billed" means and the rounding
    points). Raises :class:`~workbench.errors.InputError` for a plan that cannot be compiled."""
    frame, errors = detail(calls, billed, lines, plans, period, buckets, timezone, rater)
    return summarise(frame, period, errors)
