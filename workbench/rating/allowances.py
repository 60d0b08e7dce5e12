"""Included allowances ("bundles"): calls to a zone that a subscription includes.

An allowance gives ``seconds`` per unit subscribed and month to one zone (unlimited when
``seconds`` is empty). For a period, each (customer, zone) has one bucket: the sum of its
subscriptions' allowances (unlimited if any is), usable by calls made between the earliest
start and the latest end of those subscriptions within the period. The allowance is not
prorated: a subscription active for part of the month brings its whole allowance.

Calls consume a bucket in chronological order, by their real duration in seconds. The call that
crosses the limit is covered up to it; its remaining seconds are priced by the rate's intervals
as a call of that length, without connect fee. Answered calls only consume allowances.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from workbench.period import Period
from workbench.rating.classify import local_midnight_utc

UNLIMITED = -1


def allowance_buckets(
    subscriptions: pd.DataFrame, allowances: pd.DataFrame, period: Period, timezone: str
) -> pd.DataFrame:
    """One row per (customer_id, zone_code): ``cap_s`` (``UNLIMITED`` = -1), ``from_s`` and
    ``to_s`` (UTC seconds) for the period.

    ``subscriptions``: customer_id, product_id, quantity, start_date, end_date (inclusive, empty
    for open-ended). ``allowances``: product_id, zone_code, seconds (empty for unlimited).
    """
    columns = ["customer_id", "zone_code", "cap_s", "from_s", "to_s"]
    if len(subscriptions) == 0 or len(allowances) == 0:
        return pd.DataFrame(columns=columns)
    subs = subscriptions.copy()
    start = pd.to_datetime(subs["start_date"])
    end = pd.to_datetime(subs["end_date"]) + pd.Timedelta(days=1)  # exclusive
    p_start, p_end = pd.Timestamp(period.start), pd.Timestamp(period.end)
    active = (start < p_end) & (end.isna() | (end > p_start))
    subs = subs[active]
    subs["from_day"] = start[active].clip(lower=p_start)
    subs["to_day"] = end[active].fillna(p_end).clip(upper=p_end)
    rows = subs.merge(allowances, on="product_id")
    if rows.empty:
        return pd.DataFrame(columns=columns)
    seconds = pd.to_numeric(rows["seconds"])
    rows["unlimited"] = seconds.isna()
    rows["cap_s"] = (seconds.fillna(0) * rows["quantity"]).astype(np.int64)
    rows["from_s"] = local_midnight_utc(rows["from_day"], timezone)
    rows["to_s"] = local_midnight_utc(rows["to_day"], timezone)
    out = rows.groupby(["customer_id", "zone_code"], as_index=False).agg(
        cap_s=("cap_s", "sum"), unlimited=("unlimited", "any"), from_s=("from_s", "min"),
        to_s=("to_s", "max"),
    )
    out.loc[out["unlimited"], "cap_s"] = UNLIMITED
    return out[columns]


def consume(
    bucket: np.ndarray,
    start_s: np.ndarray,
    order_key: np.ndarray,
    seconds: np.ndarray,
    cap_s: np.ndarray,
    already_used_s: np.ndarray,
) -> np.ndarray:
    """Seconds of each call covered by its bucket (``bucket`` -1: none), in chronological order.

    ``cap_s`` and ``already_used_s`` are per bucket; ``order_key`` breaks ties of equal start.
    """
    covered = np.zeros(len(bucket), dtype=np.int64)
    if len(cap_s) == 0:
        return covered
    eligible = (bucket >= 0) & (seconds > 0)
    unlimited = eligible & (cap_s[np.maximum(bucket, 0)] == UNLIMITED)
    covered[unlimited] = seconds[unlimited]
    eligible = np.flatnonzero(eligible & ~unlimited)  # only capped buckets need the order
    if len(eligible) == 0:
        return covered
    order = eligible[np.lexsort((order_key[eligible], start_s[eligible], bucket[eligible]))]
    b = bucket[order]
    d = seconds[order].astype(np.int64)
    running = np.cumsum(d)
    first = np.r_[True, b[1:] != b[:-1]]
    group_base = np.maximum.accumulate(np.where(first, running - d, 0))
    used_before = running - d - group_base + already_used_s[b]
    cap = cap_s[b]
    cover = np.clip(cap - used_before, 0, d)
    covered[order] = cover
    return covered
