"""The rule that refuses a CDR file as a whole when too many of its records are malformed."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import pandas as pd

from workbench.config import Settings
from workbench.errors import InputError, Problem

#: the reasons that make a file malformed as a whole when too many of its records have them
#: (:class:`RejectThreshold`): all those of :func:`~workbench.cdr.formats.check` but ``excluded``
#: (a mapping's filter, on purpose), and ``duplicate`` within the file. Not counted:
#: ``unknown_line`` (pending, cured by a reference fix) and ``duplicate`` of a call already stored
#: from another file (an overlapping or re-delivered file is not a bad one).
MALFORMED = ("bad_date", "ambiguous_time", "bad_calling_number", "bad_called_number", "bad_duration",
             "negative_duration", "bad_call_id", "duplicate")
#: how many rejected records a refusal quotes
EXAMPLES = 3


@dataclass
class RejectThreshold:
    """The malformed records of a file as it is read, and the rule that refuses it as a whole.

    A file is refused (:class:`~workbench.errors.InputError`, code ``too_many_rejects``) when its
    first ``records`` records are all malformed (checked as soon as they are read), or when it
    has at least ``records`` records and more than ``percent`` % of them are malformed (checked at
    its end). A file of fewer records is never refused for its rejects. Malformed: a reason of
    :data:`MALFORMED`, within the file (a ``duplicate`` of an earlier line of the same file)."""

    file: str
    percent: Decimal
    records: int
    read: int = 0
    malformed: int = 0
    head_malformed: int = 0  # among the first ``records`` records
    by_reason: dict[str, int] = field(default_factory=dict)
    examples: list[Problem] = field(default_factory=list)

    @classmethod
    def of(cls, file: str, settings: Settings) -> RejectThreshold:
        return cls(file, Decimal(settings.reject_threshold_percent), int(settings.reject_threshold_records))

    def add(self, line_nos: pd.Series, malformed: pd.DataFrame) -> None:
        """Count a chunk: the line numbers of its records (in file order) and its malformed
        rejects (``line_no``, ``reason``, ``message``); refuses the file when its first
        ``records`` records are all malformed."""
        head = min(max(self.records - self.read, 0), len(line_nos))
        if head:
            last_head_line = int(line_nos.iloc[head - 1])
            self.head_malformed += int((malformed["line_no"] <= last_head_line).sum())
        self.read += len(line_nos)
        self.malformed += len(malformed)
        for reason, count in malformed["reason"].value_counts().items():
            self.by_reason[str(reason)] = self.by_reason.get(str(reason), 0) + int(count)
        if len(self.examples) < EXAMPLES and len(malformed):
            first = malformed.sort_values("line_no").head(EXAMPLES - len(self.examples))
            self.examples += [Problem(self.file, int(r.line_no), str(r.reason), str(r.message))
                              for r in first.itertuples(index=False)]
        if head and self.read >= self.records and self.head_malformed == self.records:
            self.refuse(f"its first {self.records:,} records are all malformed (setting reject_threshold_records)")

    def finish(self) -> None:
        """At the end of the file: refuses it when it has at least ``records`` records and more
        than ``percent`` % of them are malformed."""
        if self.read >= self.records and self.malformed * 100 > self.percent * self.read:
            self.refuse(f"{self.malformed:,} of its {self.read:,} records are malformed, more than "
                        f"{self.percent} % (setting reject_threshold_percent)")

    def refuse(self, why: str) -> None:
        counts = ", ".join(f"{reason} {count:,}" for reason, count in sorted(self.by_reason.items()))
        examples = "; ".join(f"line {p.key}: {p.code}: {p.message}" for p in self.examples)
        raise InputError(f"refused as a whole: {why}. Malformed records among the {self.read:,} read: {counts}. "
                         f"For example {examples}. Nothing of the file is stored: correct it, or ask for it "
                         "again, and load it again", source=self.file, code="too_many_rejects", problems=self.examples)
