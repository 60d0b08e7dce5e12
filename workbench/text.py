"""Customer text made safe to show: bidirectional control characters removed.

A name, an address or a label comes from the operator's reference files, that is from customers.
Unicode's explicit directional formatting characters (Unicode Standard Annex #9, "Explicit
Directional Embeddings, Overrides and Isolates", and the implicit marks) change the order in which
the text *around* them is displayed: a right-to-left override (U+202E) in a name prints the rest
of the line backwards on an invoice, an email or a screen ("Trojan Source", CVE-2021-42574).
:func:`strip_bidi` removes them; the reference files are cleaned at load
(:mod:`workbench.reference`) and the texts are cleaned again where they are rendered (PDFs,
emails, dashboards), for text stored before.

Pure: no edge, no settings.
"""

from __future__ import annotations

import re

#: ALM, LRM, RLM; LRE, RLE, PDF, LRO, RLO; LRI, RLI, FSI, PDI (UAX #9, table 4 and 2.1-2.4)
BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"

_BIDI = re.compile(f"[{BIDI_CONTROLS}]")


def strip_bidi(value):
    """``value`` without its bidirectional control characters (:data:`BIDI_CONTROLS`) when it is a
    ``str``; any other value (``None``, a number, a missing value) is returned as it is.

    >>> strip_bidi("Acme \\u202eLtd")
    'Acme Ltd'
    """
    if not isinstance(value, str):
        return value
    return _BIDI.sub("", value)
