"""Rating step 2: the price of each call, in 1/10,000 of the currency (``PRICE_SCALE``).

A rate is a connect fee plus intervals. Interval *k* starts at second ``S_k`` of the call and
ends where the next one starts; the seconds of the call that fall in it are billed in whole
increments of ``I_k`` seconds at ``P_k`` per minute::

    billed_k = ceil((min(d, S_{k+1}) - S_k) / I_k) * I_k         (0 when d <= S_k)
    price    = connect + round_half_up(sum_k(billed_k * P_k) / 60)

Rounding happens once per call, to the unit, after summing exact intervals. Example: connect
0.80, 0-60 s at 0.40/min in 60 s steps, then 0.20/min in 10 s steps, 95 s ->
0.80 + 0.40 + 40 s at 0.20/min = 1.33333... -> 1.3333.

A call of 0 seconds costs nothing, or the connect fee when the rate charges unanswered calls.
"""

from __future__ import annotations

import numpy as np

from workbench.money import div_round_half_up
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
    """Price of ``seconds`` of talk under each rate's intervals, without the connect fee."""
    seconds = np.asarray(seconds, dtype=np.int64)
    return div_round_half_up(_interval_part(compiled, rate_row, seconds), 60)  # rounded once


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


def price_calls(compiled: CompiledPlan, rate_row: np.ndarray, seconds: np.ndarray,
                covered: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Price and rule (index into ``RULES``) of calls of which ``covered`` seconds are in an
    allowance: what an allowance covers is free, the rest is priced by :func:`call_prices` as a
    call of that length without connect fee."""
    seconds = np.asarray(seconds, dtype=np.int64)
    billed = seconds - covered
    in_allowance = covered > 0
    amount = call_prices(compiled, rate_row, billed, ~in_allowance)
    # rate 0, allowance 1, allowance_overflow 2, unanswered_free 3, unanswered_fee 4
    rule = np.where(seconds > 0, np.where(in_allowance, 2 - (billed == 0), 0),
                    3 + compiled.charge_unanswered[rate_row])
    return amount, rule.astype(np.int8)
