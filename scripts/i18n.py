"""Catalogue chores: ``fill-en`` copies msgid to msgstr in the English catalogue;
``check`` fails when a catalogue is incomplete or fuzzy, the .pot is stale, or French
lacks its narrow no-break space before ``: ; ! ?``; ``fix-fr`` puts that space in."""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

import polib

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "translations"
LOCALES = ("en", "fr", "nl", "de")
NARROW_NBSP = "\u202f"
# French typography: a narrow no-break space before ``: ; ! ?`` (never a plain space, which
# lets the sign wrap to the next line, nor none at all). ``%(url)s`` and the like carry
# their own colons at run time, so only the catalogue's text is checked.
FRENCH_SIGN = re.compile(r"(?:[ \u00a0]|(?<=[^\s\u202f]))([:;!?])(?=\s|$)")


def french_spacing(text: str) -> str:
    """``Contact :`` and ``Contact:`` become ``Contact\u202f:``."""
    return FRENCH_SIGN.sub(NARROW_NBSP + r"\1", text)


def fix_fr() -> None:
    po = polib.pofile(str(TRANSLATIONS / "fr/LC_MESSAGES/messages.po"), wrapwidth=10_000)
    for entry in po:
        entry.msgstr = french_spacing(entry.msgstr)
    po.save()


def french_problems() -> list[str]:
    po = polib.pofile(str(TRANSLATIONS / "fr/LC_MESSAGES/messages.po"))
    bad = [e.msgstr for e in po if e.msgstr and french_spacing(e.msgstr) != e.msgstr]
    if not bad:
        return []
    return [f"fr: a narrow no-break space belongs before : ; ! ? (`fix-fr`): {bad[:3]}"]


def fill_en() -> None:
    po = polib.pofile(str(TRANSLATIONS / "en/LC_MESSAGES/messages.po"))
    for entry in po:
        if entry.msgid_plural:
            entry.msgstr_plural = {0: entry.msgid, 1: entry.msgid_plural}
        elif not entry.msgstr:
            entry.msgstr = entry.msgid
        if "fuzzy" in entry.flags:
            entry.flags.remove("fuzzy")
    po.save()


def extract(target: Path) -> None:
    subprocess.run(  # noqa: S603 - fixed argv, no shell
        [
            sys.executable, "-m", "babel.messages.frontend", "-q", "extract",
            "-F", str(ROOT / "babel.cfg"), "-k", "_l", "-k", "lazy_gettext",
            "--no-location", "--sort-output", "-o", str(target), str(ROOT),
        ],
        check=True,
        cwd=ROOT,
    )  # fmt: skip


def problems() -> list[str]:
    found: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "messages.pot"
        extract(fresh)
        current = {e.msgid for e in polib.pofile(str(TRANSLATIONS / "messages.pot"))}
        wanted = {e.msgid for e in polib.pofile(str(fresh))}
        if current != wanted:
            found.append(
                "translations/messages.pot is stale: run `make translations` "
                f"(missing {sorted(wanted - current)[:5]}, extra {sorted(current - wanted)[:5]})"
            )
    for locale in LOCALES:
        po = polib.pofile(str(TRANSLATIONS / locale / "LC_MESSAGES/messages.po"))
        ids = {e.msgid for e in po if not e.obsolete}
        missing = wanted - ids
        if missing:
            found.append(f"{locale}: not in catalogue: {sorted(missing)[:5]}")
        untranslated = [e.msgid for e in po.untranslated_entries()]
        if untranslated:
            found.append(f"{locale}: untranslated: {untranslated[:5]}")
        fuzzy = [e.msgid for e in po.fuzzy_entries()]
        if fuzzy:
            found.append(f"{locale}: fuzzy: {fuzzy[:5]}")
    return found + french_problems()


def set_translations(json_file: str) -> None:
    """Apply ``{"fr": {msgid: msgstr}, "nl": {...}}`` to the catalogues."""
    import json

    table = json.loads(Path(json_file).read_text(encoding="utf-8"))
    for locale, strings in table.items():
        path = TRANSLATIONS / locale / "LC_MESSAGES/messages.po"
        po = polib.pofile(str(path))
        for entry in po:
            if entry.msgid in strings:
                entry.msgstr = strings[entry.msgid]
                if "fuzzy" in entry.flags:
                    entry.flags.remove("fuzzy")
        po.save()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "set":
        set_translations(sys.argv[2])
    elif sys.argv[1:] == ["fill-en"]:
        fill_en()
    elif sys.argv[1:] == ["fix-fr"]:
        fix_fr()
    elif sys.argv[1:] == ["check"]:
        issues = problems()
        print("\n".join(issues) or "catalogues complete")
        sys.exit(1 if issues else 0)
    else:
        sys.exit("usage: python scripts/i18n.py fill-en|fix-fr|check|set FILE.json")
