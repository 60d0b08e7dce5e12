"""The production job's summary shown in a notebook (:class:`workbench.jobs.ProductionSummary`).

The summary is built by the job; here it is only written out: as HTML for people (customer text
escaped), as plain text, and as JSON (``application/json``, key :data:`~workbench.jobs.notebook.SUMMARY_KEY`) from which
``workbench production-notebook`` prints the same summary to its log.
"""

from __future__ import annotations

import html

from workbench.jobs import ProductionSummary
from workbench.jobs.notebook import SUMMARY_KEY
from workbench.ui.display import LOCALE


class SummaryView:
    """A notebook output of a :class:`~workbench.jobs.ProductionSummary` (HTML, text, JSON)."""

    def __init__(self, summary: ProductionSummary, locale: str = LOCALE):
        self.summary, self.locale = summary, locale

    def _repr_mimebundle_(self, include=None, exclude=None):
        parts = ["<div class='production-summary'><h3>Production</h3>"]
        for title, lines in self.summary.lines(self.locale):
            parts.append(f"<h4>{html.escape(title)}</h4><ul>"
                         + "".join(f"<li>{html.escape(line)}</li>" for line in lines) + "</ul>")
        parts.append("</div>")
        return {"text/html": "".join(parts), "text/plain": self.summary.text(self.locale),
                "application/json": {SUMMARY_KEY: self.summary.to_dict()}}


def production_summary(summary: ProductionSummary, locale: str = LOCALE) -> SummaryView:
    """The summary as the production notebook shows it (its last cell's output)."""
    return SummaryView(summary, locale)

