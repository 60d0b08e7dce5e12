"""Finding a call again by its key: the index of known calls a load looks candidates up in
(:class:`workbench.integration.matching.CallIndex`)."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from workbench.integration import matching
from workbench.integration.matching import CallIndex


def calls(*keys, value=None) -> pd.DataFrame:
    """Calls from (calling, called, start as 'YYYY-MM-DD HH:MM:SS', duration) and their values."""
    frame = pd.DataFrame(keys, columns=["calling", "called", "start_utc", "duration_s"])
    frame["start_utc"] = pd.to_datetime(frame["start_utc"]).astype("datetime64[s]")
    if value is not None:
        frame["line_no"] = value
    return frame


A = (33145000001, 33155000000, "2026-10-20 10:00:00", 60)
B = (33145000001, 33155000000, "2026-10-05 10:00:00", 60)
C = (33145000002, 442071234567, "2026-10-25 23:59:59", 1)
D = (33145000001, 33155000000, "2026-10-01 00:00:00", 0)
E = (33145000003, 33155000000, "2026-10-15 12:30:00", 3600)
F = (33145000002, 33155000000, "2026-10-31 22:00:00", 59)


def test_keys_added_in_any_order_are_found_with_their_values():
    index = CallIndex("line_no")
    # out of time order, in parts of 2, 1, 1 and 2 keys (the index merges its levels as it grows)
    index.add(calls(A, B, value=[2, 3]))
    index.add(calls(C, value=[4]))
    index.add(calls(D, value=[5]))
    index.add(calls(E, F, value=[7, 9]))
    assert len(index) == 6
    # the same calls, and calls one field away from them (the other number, second, duration)
    near = [(33145000002, 33155000000, "2026-10-20 10:00:00", 60),
            (33145000001, 33155000001, "2026-10-05 10:00:00", 60),
            (33145000002, 442071234567, "2026-10-25 23:59:58", 1),
            (33145000001, 33155000000, "2026-10-01 00:00:00", 1)]
    looked_up = calls(F, *near, D, A, E, C, B)
    looked_up.index = [10, 11, 12, 13, 14, 15, 16, 17, 18, 19]
    found = index.find(looked_up)
    assert found.dtype == "Int64" and found.index.tolist() == looked_up.index.tolist()
    assert found.tolist() == [9, pd.NA, pd.NA, pd.NA, pd.NA, 5, 2, 7, 4, 3]


def test_nothing_is_found_in_an_empty_index_or_for_no_candidates():
    index = CallIndex("line_no")
    assert index.find(calls(A)).isna().all()
    index.add(calls(A, value=[2]))
    assert index.find(calls()).empty


def test_keys_whose_hashes_collide_are_told_apart_by_the_key_itself(monkeypatch):
    # every key hashes to 0: each lookup goes through the run of equal hashes and must still
    # find the one key equal in its four columns
    monkeypatch.setattr(matching, "key_hash", lambda columns: np.zeros(len(columns["calling"]), dtype=np.uint64))
    index = CallIndex("line_no")
    index.add(calls(A, B, C, value=[2, 3, 4]))
    index.add(calls(D, E, value=[5, 6]))
    # and calls one field away from a known one: its start, a number, its duration
    near = [(33145000001, 33155000000, "2026-10-20 10:00:01", 60),
            (33145000001, 33155000009, "2026-10-05 10:00:00", 60),
            (33145000001, 33155000000, "2026-10-01 00:00:00", 1)]
    found = index.find(calls(E, F, B, D, A, C, *near))
    assert found.tolist() == [6, pd.NA, 3, 5, 2, 4, pd.NA, pd.NA, pd.NA]


def test_the_hash_of_a_key_is_that_of_its_columns_not_of_their_order_in_a_frame():
    one, two = calls(A, B, C), calls(C, A, B)
    hashes = [matching.key_hash(matching._key_columns(frame)) for frame in (one, two)]
    assert hashes[0].tolist() == hashes[1][[1, 2, 0]].tolist()
    assert len(set(hashes[0].tolist())) == 3


@pytest.mark.parametrize("in_time_order", [False, True])
@pytest.mark.parametrize("parts", [1, 3, 40])
def test_a_month_of_calls_added_in_parts_finds_each_call_whatever_the_order(parts, in_time_order):
    # 4,000 calls on 300 start seconds of October: the parts of calls in time order meet at
    # seconds that calls of both share (the index then keeps the older part's start as it is
    # and merges the rest)
    rng = np.random.default_rng(parts)
    n = 4000
    seconds = np.sort(rng.choice(31 * 86400, 300, replace=False))
    known = pd.DataFrame({
        "calling": rng.integers(33100000000, 33100000050, n), "called": rng.integers(33600000000, 33600000050, n),
        "start_utc": datetime(2026, 10, 1) + pd.to_timedelta(rng.choice(seconds, n), unit="s"),
        "duration_s": rng.integers(0, 5, n)})
    known = known.drop_duplicates(["calling", "called", "start_utc", "duration_s"], ignore_index=True)
    if in_time_order:
        known = known.sort_values("start_utc", kind="stable", ignore_index=True)
    known["line_no"] = np.arange(2, len(known) + 2)
    index = CallIndex("line_no")
    for part in np.array_split(np.arange(len(known)), parts):
        index.add(known.iloc[part])
    assert len(index) == len(known)
    if not in_time_order:
        assert len(index.levels) <= int(np.log2(parts)) + 1
    shuffled = known.sample(frac=1.0, random_state=1)
    assert index.find(shuffled).tolist() == shuffled["line_no"].tolist()
    moved = shuffled.assign(duration_s=shuffled["duration_s"] + 5)  # no call lasts 5 s or more
    assert index.find(moved).isna().all()
