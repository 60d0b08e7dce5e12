"""Billing runs in the database: inputs and fingerprints, pre-production and production runs,
legal invoice numbering and credit notes.

* :mod:`workbench.billing.inputs`: what a run is built from, its fingerprint, the invoices built;
* :mod:`workbench.billing.runs`: pre-production (drafts) and production (issued invoices);
* :mod:`workbench.billing.invoice_numbers`: legal numbers, sequential and without gaps;
* :mod:`workbench.billing.credit_notes`: cancelling an issued invoice (and reopening its period).

The invoices themselves are computed by the pure :mod:`workbench.invoicing`; stored runs are read
back by :mod:`workbench.reads.runs`.
"""

from workbench.billing.credit_notes import issue_credit_note
from workbench.billing.inputs import default_dates
from workbench.billing.runs import RunSummary, delete_run, preprod, production

__all__ = ["RunSummary", "default_dates", "delete_run", "issue_credit_note", "preprod", "production"]
