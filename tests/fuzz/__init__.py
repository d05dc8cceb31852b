"""Fuzz and property tests, all sized by one knob.

``PORTAL_FUZZ_EXAMPLES`` (default 100, the size CI runs) is the number of schemathesis
cases per API operation and way; the hypothesis suites scale with it (:func:`scaled`).
``PORTAL_FUZZ_EXAMPLES=800`` is a deeper run (about eight times as long).
"""

from __future__ import annotations

import os

FUZZ_EXAMPLES = int(os.environ.get("PORTAL_FUZZ_EXAMPLES", "100"))


def scaled(at_default: int) -> int:
    """``at_default`` examples at the default size, in proportion to PORTAL_FUZZ_EXAMPLES."""
    return max(1, at_default * FUZZ_EXAMPLES // 100)
