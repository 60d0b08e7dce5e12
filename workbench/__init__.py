"""Telecom billing workbench: CDR integration, rating and billing for telecom operators.

Layers, from the top down (imports only go downwards; ``lint-imports`` checks the contracts of
``pyproject.toml``):

* interfaces — ``cli``, ``ui`` (notebook widgets and Voila dashboards): they call the jobs and
  format their results;
* jobs — ``jobs``: each step of the monthly cycle, once;
* services over the database — ``billing``, ``integration``, ``reference``, ``rated_calls``,
  ``mail``, ``documents``, ``sample``; the read layer ``reads`` and the Excel ``reports``;
* edges — ``db`` (schema, migrations, bulk storage, job locks), ``storage`` (the FTP space by URL),
  ``config`` (settings);
* the pure core — ``sepa``, ``invoicing``, ``rating``, ``cdr``, then ``money``, ``period``,
  ``phone_numbers`` and ``errors``: functions of frames and plain values, no I/O, no clock.
"""

__version__ = "0.1.0"
