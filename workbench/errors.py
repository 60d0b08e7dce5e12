"""The workbench's errors and its record of data problems.

**Errors** are for what stops a request. They form one family, so that every caller (the
command line, a widget, the papermill job) catches one class and shows one message:

* :class:`WorkbenchError`: the base; ``str(error)`` is the whole message. Its fields say where
  the problem is (``source``: a file, a setting, a run; ``line``; ``column``) and what it is
  (``code``, a short stable identifier such as ``bad_period``), and ``problems`` lists every
  problem found when a check finds several (the command line then names each).
* :class:`ConfigError`: a setting that cannot be used (``source`` is the setting's name).
* :class:`InputError`: data a person or a file got wrong: a CDR file, a reference row, a
  period, an amount, a rate plan, an IBAN, a widget or papermill parameter. Nothing is stored.
* :class:`RefusedError`: a request that cannot be carried out in the present state (no such run,
  a run already issued, data changed since the review, a credit note twice). Nothing is changed.
* :class:`UnavailableError`: an outside service failed or is busy (the FTP space, the SMTP
  server, a job lock held by another run). What was done before it stays done; running the same
  job again finishes it.

**Problems** are data, not exceptions: a rejected CDR record, a call that could not be rated, an
invoice left out of the SEPA file, an anomaly of a billing run, a customer who cannot be
emailed. Each is a :class:`Problem` ``(source, key, code, message)`` and a list of them is the
frame of :func:`problems_frame`, so that every screen and report shows them the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import pandas as pd

#: the columns of a frame of problems, in this order
PROBLEM_COLUMNS = ["source", "key", "code", "message"]
#: the same columns named for people (screens and reports)
PROBLEM_LABELS = {"source": "Source", "key": "Line or key", "code": "Problem", "message": "Detail"}


class Problem(NamedTuple):
    """One data problem: where (``source``: a file name, ``rating 2026-10``, ``run 12``, ``sepa``),
    which record (``key``: a line number, a call id, an invoice or account number; ``None`` for
    the whole source), what (``code``: a short stable identifier such as ``unknown_line``) and a
    message for people."""

    source: str
    key: str | int | None
    code: str
    message: str

    def __str__(self) -> str:
        where = self.source if self.key is None or self.key == "" else f"{self.source}, {_key_text(self.key)}"
        return f"{where}: {self.message}" if where else self.message


def _key_text(key: str | int) -> str:
    return f"line {key}" if isinstance(key, int) else str(key)


def problems_frame(problems: Iterable[Problem] | pd.DataFrame = ()) -> pd.DataFrame:
    """A frame of :data:`PROBLEM_COLUMNS` (``key`` as text) from problems, or a frame that has
    those columns (other columns are dropped)."""
    if isinstance(problems, pd.DataFrame):
        frame = problems[PROBLEM_COLUMNS].copy()
    else:
        frame = pd.DataFrame([tuple(p) for p in problems], columns=PROBLEM_COLUMNS)
    frame["key"] = frame["key"].map(lambda k: "" if k is None or (isinstance(k, float) and k != k) else str(k))
    return frame.reset_index(drop=True)


def problems_table(problems: Iterable[Problem] | pd.DataFrame = ()) -> pd.DataFrame:
    """:func:`problems_frame` with the columns named for people (:data:`PROBLEM_LABELS`): how
    every screen and report shows problems. A frame's other columns (a rejected record's ``raw``
    text, say) follow the four."""
    table = problems_frame(problems).rename(columns=PROBLEM_LABELS)
    if isinstance(problems, pd.DataFrame):
        extra = [c for c in problems.columns if c not in PROBLEM_COLUMNS]
        table = table.join(problems[extra].reset_index(drop=True))
    return table


def problems_of(frame: pd.DataFrame) -> list[Problem]:
    """The problems of a frame of :data:`PROBLEM_COLUMNS`."""
    return [Problem(*row) for row in frame[PROBLEM_COLUMNS].itertuples(index=False, name=None)]


class WorkbenchError(Exception):
    """A request that cannot be carried out; ``str()`` is the message for people.

    ``source``, ``line``, ``column`` say where, ``code`` what (a stable identifier), and
    ``problems`` every problem when several were found (then the message sums them up)."""

    default_code = "error"

    def __init__(self, message: str, *, source: str | None = None, line: int | None = None,
                 column: str | None = None, code: str | None = None, problems: Iterable[Problem] = ()):
        self.message = message
        self.source, self.line, self.column = source, line, column
        self.code = code or self.default_code
        self.problems = list(problems)
        super().__init__(self._text())

    def _text(self) -> str:
        where = ", ".join(x for x in (self.source, f"line {self.line}" if self.line is not None else None,
                                      f"column {self.column}" if self.column else None) if x)
        return f"{where}: {self.message}" if where else self.message

    @property
    def problem(self) -> Problem:
        """This error as a data problem."""
        return Problem(self.source or "", self.line, self.code, self.message)


class ConfigError(WorkbenchError):
    """A setting that cannot be used (``source`` names the setting)."""

    default_code = "bad_setting"


class InputError(WorkbenchError, ValueError):
    """Data a person or a file got wrong; nothing of it is stored."""

    default_code = "bad_input"


class RefusedError(WorkbenchError):
    """A request that cannot be carried out in the present state; nothing is changed."""

    default_code = "refused"


class UnavailableError(WorkbenchError):
    """An outside service (the FTP space, the SMTP server, a job lock) failed or is busy; what was
    done before stays done, and running the job again finishes it."""

    default_code = "unavailable"
