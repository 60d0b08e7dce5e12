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


def test_digits_other_than_ascii_ones_are_not_read_as_digits():
    """What is written into a file (a period, a SEPA creditor identifier, a SIREN in a Factur-X
    document, a postcode) takes ASCII digits only: Arabic-Indic or fullwidth digits, which a
    regular expression's ``\\d`` matches and ``int()`` reads, are refused or left out, never
    copied into XML."""
    from workbench.documents.facturx import buyer_siren, siren_of
    from workbench.sepa.identifiers import validate_creditor_id

    arabic = str.maketrans("0123456789", "".join(chr(0x0660 + d) for d in range(10)))
    fullwidth = str.maketrans("0123456789", "".join(chr(0xFF10 + d) for d in range(10)))
    for table in (arabic, fullwidth):
        with pytest.raises(InputError, match="is not a billing period"):
            Period.parse("2026-10".translate(table))
        with pytest.raises(InputError, match="invalid creditor identifier"):
            validate_creditor_id("FR" + "72".translate(table) + "ZZZ123456")  # FR72ZZZ123456 is valid
        assert siren_of("404833048".translate(table)) is None
        assert buyer_siren({"customer": {"vat_number": "FR83" + "404833048".translate(table)}}) is None
    assert siren_of("404 833 048") == "404833048"
    assert buyer_siren({"customer": {"vat_number": "FR83404833048"}}) == "404833048"
    assert Period.parse("2026-10") == Period.parse(" 2026-10 ")
