"""Telecom billing workbench: CDR integration, rating and billing for telecom operators.

Layers, from the bottom up (imports only go downwards; ``tests/test_layers.py`` checks it):

* pure logic — ``money``, ``period``, ``numbering``, ``cdr.formats``, ``rating``:
  functions of data frames and plain values, no I/O, no clock;
* edges — ``db`` (SQLAlchemy schema, migrations, bulk storage), ``integration`` (files into
  the database), ``reference`` (reference CSVs), ``repository`` (frames in and out);
* entry points — ``cli``, the notebooks.
"""

__version__ = "0.1.0"
