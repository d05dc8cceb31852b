"""Every catalogue is complete, none is fuzzy, and the .pot matches the code."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _i18n():
    spec = importlib.util.spec_from_file_location("i18n", ROOT / "scripts" / "i18n.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_catalogues_complete_and_current():
    module = _i18n()
    assert module.LOCALES == ("en", "fr", "nl", "de")  # German is checked like the others
    assert module.problems() == []


def test_french_spacing_is_checked_and_fixed():
    spacing = _i18n().french_spacing
    narrow = "\u202f"
    assert spacing("Contact :") == f"Contact{narrow}:"
    assert spacing("Contact:") == f"Contact{narrow}:"
    assert spacing("Paiement reçu — merci !") == f"Paiement reçu — merci{narrow}!"
    assert spacing("Pourquoi ? (conservé)") == f"Pourquoi{narrow}? (conservé)"
    assert spacing(f"Date{narrow}: %(date)s") == f"Date{narrow}: %(date)s"  # already right
    assert spacing("%(url)s") == "%(url)s" and spacing("10:30") == "10:30"
