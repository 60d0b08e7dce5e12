"""Rating step 2: the price of each call, in 1/10,000 of the currency (``PRICE_SCALE``).

A rate is a connect fee (in 1/10,000, ``PRICE_SCALE``) plus intervals whose per-minute prices
are in 1/1,000,000 (micro units, ``RATE_SCALE``: wholesale decks price to 5 or 6 decimals).
Interval *k* starts at second ``S_k`` of the call and ends where the next one starts; the
seconds of the call that fall in it are billed in whole increments of ``I_k`` seconds at ``P_k``
micro units per minute::

    billed_k = ceil((min(d, S_{k+1}) - S_k) / I_k) * I_k         (0 when d <= S_k)
    price    = connect + round_half_up(sum_k(billed_k * P_k) / (60 * 100))

Rounding happens once per call, half up, from the exact sum in micro units x 60 to the unit
(1/10,000), after summing exact intervals. Example: connect 0.80, 0-60 s at 0.40/min in 60 s
steps, then 0.20/min in 10 s steps, 95 s -> 0.80 + 0.40 + 40 s at 0.20/min = 1.33333... ->
1.3333; 61 s at 0.00625/min in 1 s steps -> 0.00625 x 61 / 60 = 0.00635416... -> 0.0064.

Integer arithmetic throughout, in int64: ``billed_k * P_k`` is below 2**31 s (``duration_s``)
x 10**9 (the dearest rate accepted, 1,000/min, :data:`workbench.reference.MAX_RATE_MICROS`)
~ 2.1e18, and twice that in :func:`~workbench.money.round_half_up` is below 2**63 ~ 9.2e18.

A call of 0 seconds costs nothing, or the connect fee when the rate charges unanswered calls.

:func:`call_prices` is the formula. :func:`price_calls`, which rating uses, looks the price of
calls of up to ``TABLE_SECONDS`` up in a table of that formula's values per (rate, duration),
computed once per plan: one gather per call instead of a walk through the intervals. Longer
calls, and calls with seconds covered by an allowance, go through the formula.
"""

from __future__ import annotations

import numpy as np

from workbench.money import RATE_PER_PRICE, round_half_up
from workbench.rating.plan import CompiledPlan


def _interval_part(compiled: CompiledPlan, rate_row: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    """Sum over the intervals of ``seconds`` of talk, x 60 (not yet rounded): the whole intervals
    before the one where the call ends (precomputed per rate), plus the billed part of that one."""
    width = compiled.iv_start.shape[1]
    flat = rate_row.astype(np.int64) * width
    starts = compiled.iv_start.ravel()
    for _ in range(1, width):  # walk to the interval the call ends in (starts go up)
        flat += starts[flat + 1] < seconds
    params = compiled.iv_params[flat]  # one gather: start, increment, amount before, price
    increment = params[:, 1]
    steps = -(-(seconds - params[:, 0]) // increment)
    return params[:, 2] + steps * increment * params[:, 3]


def interval_amounts(compiled: CompiledPlan, rate_row: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    """Price of ``seconds`` of talk under each rate's intervals, without the connect fee, in
    units (1/10,000): the exact amount in micro units x 60, rounded once, half up."""
    seconds = np.asarray(seconds, dtype=np.int64)
    return round_half_up(_interval_part(compiled, rate_row, seconds), 60 * RATE_PER_PRICE)  # rounded once


def call_prices(
    compiled: CompiledPlan, rate_row: np.ndarray, seconds: np.ndarray, connect: np.ndarray
) -> np.ndarray:
    """Price of each call: ``connect`` says whether its connect fee applies (a call whose start
    is covered by an allowance pays none); unanswered calls follow the rate's rule."""
    seconds = np.asarray(seconds, dtype=np.int64)
    fee = np.where(connect, compiled.connect_units[rate_row], 0)
    answered = seconds > 0
    unanswered_fee = np.where(compiled.charge_unanswered[rate_row], fee, 0)
    return np.where(answered, fee + interval_amounts(compiled, rate_row, seconds), unanswered_fee)


TABLE_SECONDS = 3_600  # calls up to an hour are priced from the table
_TABLE_CELLS = 1 << 22  # at most 32 MiB of table: plans with many rates get a shorter one


def price_table(compiled: CompiledPlan) -> np.ndarray:
    """Price with connect fee of a call of ``d`` seconds under rate ``r``, at ``[r, d]`` for
    ``d`` from 0 to the table's width - 1 (built once per plan, then kept with it)."""
    table = compiled.cache.get("price_table")
    if table is None:
        rates = len(compiled.rate_ids)
        width = max(1, min(TABLE_SECONDS + 1, _TABLE_CELLS // max(rates, 1)))
        seconds = np.tile(np.arange(width, dtype=np.int64), rates)
        rate_row = np.repeat(np.arange(rates, dtype=np.int64), width)
        table = call_prices(compiled, rate_row, seconds, np.ones(len(seconds), dtype=bool)).reshape(rates, width)
        compiled.cache["price_table"] = table
    return table


def price_calls(compiled: CompiledPlan, rate_row: np.ndarray, seconds: np.ndarray,
                covered: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Price and rule (index into ``RULES``) of calls of which ``covered`` seconds are in an
    allowance: what an allowance covers is free, the rest is priced by :func:`call_prices` as a
    call of that length without connect fee."""
    seconds = np.asarray(seconds, dtype=np.int64)
    table = price_table(compiled)
    width = table.shape[1]
    amount = np.take(table.ravel(), rate_row * np.int64(width) + seconds, mode="clip")
    in_allowance = np.flatnonzero(covered)
    # beyond the table (negative durations included, as huge unsigned values): the formula
    odd = np.flatnonzero(seconds.view(np.uint64) >= width)
    if len(odd):
        amount[odd] = call_prices(compiled, rate_row[odd], seconds[odd], np.ones(len(odd), dtype=bool))
    # rate 0, allowance 1, allowance_overflow 2, unanswered_free 3, unanswered_fee 4
    rule = np.zeros(len(seconds), dtype=np.int8)
    unanswered = np.flatnonzero(seconds <= 0)
    rule[unanswered] = 3 + compiled.charge_unanswered[rate_row[unanswered]]
    if len(in_allowance):
        billed = seconds[in_allowance] - covered[in_allowance]
        amount[in_allowance] = call_prices(compiled, rate_row[in_allowance], billed,
                                           np.zeros(len(billed), dtype=bool))
        rule[in_allowance] = 2 - (billed == 0)
    return amount, rule
