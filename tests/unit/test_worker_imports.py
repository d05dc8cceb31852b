"""What a web worker imports: the heavy libraries that only a command or a rare page needs
stay out of every worker's memory (bench/README.md, "Memory"), and what they did instead
still gives the same answers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from portal.config import ROOT
from portal.observability import migrations_head

# Alembic through Flask-Migrate (11 MB), Pillow (2 MB, logo uploads), WeasyPrint (PDFs),
# the Stripe SDK (the sandbox provider is configured here), segno (1.2 MB, QR codes),
# urllib3 (1.3 MB, the worker's callbacks), phonenumbers (1.1 MB, numbers and countries).
LEFT_OUT = (
    "alembic", "flask_migrate", "PIL", "weasyprint", "stripe", "segno", "urllib3", "phonenumbers",
)  # fmt: skip


def test_create_app_leaves_the_heavy_libraries_out(tmp_path: Path) -> None:
    script = (
        "import sys, portal\n"
        "portal.create_app()\n"
        f"print(sorted(m for m in {LEFT_OUT!r} if m in sys.modules))\n"
    )
    env = {
        **os.environ,
        "PORTAL_ENV": "development",
        "PORTAL_DATABASE_URL": f"sqlite:///{tmp_path / 'imports.db'}",
        "PORTAL_PAYMENT_PROVIDER": "sandbox",
        "PORTAL_EMBEDDED_WORKER": "0",
    }
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout


def test_the_migrations_head_is_alembic_s() -> None:
    alembic_head = ScriptDirectory(str(ROOT / "migrations")).get_current_head()
    assert alembic_head is not None
    assert migrations_head(ROOT / "migrations" / "versions") == alembic_head


def _script(folder: Path, name: str, revision: str, down: str) -> None:
    (folder / f"{name}.py").write_text(
        f'"""{name}"""\nrevision: str = "{revision}"\ndown_revision = {down}\n'
        "branch_labels = None\n",
        encoding="utf-8",
    )


@pytest.mark.parametrize(
    ("scripts", "head"),
    [
        ([("a", "a1", "None"), ("b", "b2", "'a1'")], "b2"),
        # a merge revises two heads at once: one head again
        (
            [
                ("a", "a1", "None"),
                ("b", "b2", "'a1'"),
                ("c", "c3", "'a1'"),
                ("m", "m4", "('b2', 'c3')"),
            ],
            "m4",
        ),
        # two heads: none to compare with (readiness then reports the mismatch)
        ([("a", "a1", "None"), ("b", "b2", "'a1'"), ("c", "c3", "'a1'")], None),
        ([], None),
    ],
)
def test_the_head_is_the_one_revision_nothing_revises(
    tmp_path: Path, scripts: list[tuple[str, str, str]], head: str | None
) -> None:
    for name, revision, down in scripts:
        _script(tmp_path, name, revision, down)
    assert migrations_head(tmp_path) == head
