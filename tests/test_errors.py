"""One error family and one record of data problems, shown the same way everywhere."""

from __future__ import annotations

import pytest

from workbench.errors import (
    PROBLEM_COLUMNS,
    ConfigError,
    InputError,
    Problem,
    RefusedError,
    UnavailableError,
    WorkbenchError,
    problems_frame,
    problems_of,
    problems_table,
)
from workbench.period import Period


def test_an_error_says_where_and_what():
    error = InputError("bad duration '-5'", source="switch.csv", line=12, column="duration_s", code="bad_duration")
    assert str(error) == "switch.csv, line 12, column duration_s: bad duration '-5'"
    assert (error.source, error.line, error.column, error.code) == ("switch.csv", 12, "duration_s", "bad_duration")
    assert error.problem == Problem("switch.csv", 12, "bad_duration", "bad duration '-5'")
    assert str(RefusedError("run 3 was already issued")) == "run 3 was already issued"
    assert RefusedError("x").code == "refused" and UnavailableError("x").code == "unavailable"
    for kind in (ConfigError, InputError, RefusedError, UnavailableError):
        assert issubclass(kind, WorkbenchError)
    assert issubclass(InputError, ValueError)  # bad values stay ValueErrors for callers that catch those


def test_the_pure_core_raises_the_family():
    with pytest.raises(InputError, match="'2026-13' is not a billing period") as caught:
        Period.parse("2026-13")
    assert caught.value.code == "bad_period"


def test_problems_as_a_frame_and_a_table():
    problems = [Problem("october.csv", 4, "unknown_line", "calling number +33145000009 is no customer's line"),
                Problem("sepa", "F2026-000007", "not_debited", "nothing to debit"),
                Problem("rating 2026-10", None, "no_rate", "3 calls")]
    frame = problems_frame(problems)
    assert list(frame.columns) == PROBLEM_COLUMNS
    assert frame["key"].tolist() == ["4", "F2026-000007", ""]
    assert list(problems_table(problems).columns) == ["Source", "Line or key", "Problem", "Detail"]
    assert [str(p) for p in problems] == [
        "october.csv, line 4: calling number +33145000009 is no customer's line",
        "sepa, F2026-000007: nothing to debit",
        "rating 2026-10: 3 calls",
    ]
    assert problems_of(frame)[1] == Problem("sepa", "F2026-000007", "not_debited", "nothing to debit")
