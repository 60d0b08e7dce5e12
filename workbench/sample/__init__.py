"""Deterministic generators: the sample operator in ``data/sample`` and benchmark data.

Everything is drawn from one ``numpy.random.Generator`` seeded by the caller, so the same seed
gives byte-identical files. The sample operator ("Opérateur Exemple") has:

* one rate plan (``PRO-2026``) with French numbering — geographic 01-05, mobile 06/07, VoIP 09,
  free 0800-0805, shared-cost 081/082 and premium 089 numbers — and every international country
  code of the ITU list by zone, with mobile ranges of European countries (``44`` and ``447``...);
  peak on working days 08:00-20:00, off-peak otherwise;
* about 200 business customers (a few with hostile names, as real data has), contacts, SEPA
  mandates with valid IBANs, lines, subscriptions starting and ending mid-month, one-off charges;
* one month of calls split between a native CDR file and an Asterisk ``Master.csv`` that
  overlap, with unanswered calls and records wrong on purpose (see :data:`ERRORS`).

:mod:`workbench.sample.benchmark` makes the benchmark's 10 million CDRs and 50,000-prefix plan.
"""

from workbench.sample.benchmark import benchmark_lines, benchmark_plan, write_benchmark_cdrs
from workbench.sample.customers import belgian_vat, french_iban, french_vat, luhn_digit
from workbench.sample.operator import generate_operator
from workbench.sample.plan import PERIOD, PLAN, TIMEZONE, plan_rows

__all__ = ["PERIOD", "PLAN", "TIMEZONE", "belgian_vat", "benchmark_lines", "benchmark_plan", "french_iban",
           "french_vat", "generate_operator", "luhn_digit", "plan_rows", "write_benchmark_cdrs"]
