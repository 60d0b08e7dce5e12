"""Customer text made safe to show (:mod:`workbench.text`)."""

from __future__ import annotations

import pytest

from workbench.text import BIDI_CONTROLS, strip_bidi


@pytest.mark.parametrize(("raw", "clean"), [
    ("Acme \u202eLtd", "Acme Ltd"),  # right-to-left override
    ("\u2067\u0634\u0631\u0643\u0629\u2069 SARL", "\u0634\u0631\u0643\u0629 SARL"),  # an isolate: Arabic letters kept
    ("a\u200eb\u200fc\u061cd", "abcd"),  # the implicit marks
    ("Zoé & Fils", "Zoé & Fils"),  # nothing else changes
    ("", ""),
])
def test_bidirectional_controls_are_removed(raw, clean):
    assert strip_bidi(raw) == clean


def test_every_explicit_control_is_removed_and_other_values_pass_through():
    assert len(BIDI_CONTROLS) == 12  # UAX #9: ALM, LRM, RLM, LRE, RLE, PDF, LRO, RLO, LRI, RLI, FSI, PDI
    assert strip_bidi("x" + BIDI_CONTROLS + "y") == "xy"
    assert strip_bidi(None) is None and strip_bidi(12) == 12
