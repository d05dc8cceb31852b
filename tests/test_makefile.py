"""The Makefile's promises, read from ``make -n`` (nothing is run) in a scratch folder:
``make run`` installs the runtime dependencies only, ``make test`` adds the test extra,
and once installed neither runs pip again until pyproject.toml changes."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    if not shutil.which("make"):
        pytest.skip("make is not installed")
    shutil.copy(ROOT / "Makefile", tmp_path)
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    for locale in ("en", "fr"):
        folder = tmp_path / "translations" / locale / "LC_MESSAGES"
        folder.mkdir(parents=True)
        (folder / "messages.po").write_text("")
    return tmp_path


def dry_run(folder: Path, *targets: str) -> str:
    out = subprocess.run(
        ["make", "-n", *targets], cwd=folder, capture_output=True, text=True, check=True,
        env={k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "MFLAGS"))},
    )  # fmt: skip
    return out.stdout


def installed(folder: Path, *stamps: str) -> None:
    """A virtualenv with these stamps and compiled catalogues, newer than everything."""
    (folder / ".venv" / "bin").mkdir(parents=True, exist_ok=True)
    (folder / ".venv" / "bin" / "python").touch()
    later = time.time() + 10
    catalogues = [p.with_suffix(".mo") for p in folder.glob("translations/*/LC_MESSAGES/*.po")]
    for path in [*(folder / ".venv" / s for s in stamps), *catalogues]:
        path.touch()
        os.utime(path, (later, later))


def test_a_fresh_make_run_installs_the_runtime_only(scratch):
    plan = dry_run(scratch, "run")
    assert "-m venv .venv" in plan
    assert "pip install -q -e .\n" in plan
    assert "[test]" not in plan
    steps = [plan.index(step) for step in ("pip install", "db upgrade", "flask --app portal run")]
    assert steps == sorted(steps)


def test_make_test_installs_the_test_extra(scratch):
    plan = dry_run(scratch, "test")
    assert "pip install -q -e '.[test]'" in plan
    assert "pytest -n 2" in plan


def test_a_second_run_starts_without_pip_or_a_compile(scratch):
    installed(scratch, ".installed-runtime")
    plan = dry_run(scratch, "run")
    assert "pip" not in plan and "-m venv" not in plan and "pybabel" not in plan
    assert "flask --app portal demo" in plan and "flask --app portal run" in plan


def test_after_make_test_make_run_needs_nothing_more(scratch):
    installed(scratch, ".installed-runtime", ".installed-test")
    assert "pip" not in dry_run(scratch, "run")
    assert "pip" not in dry_run(scratch, "test")


def test_pip_runs_again_when_pyproject_changes(scratch):
    installed(scratch, ".installed-runtime", ".installed-test")
    later = time.time() + 60
    os.utime(scratch / "pyproject.toml", (later, later))
    assert "pip install -q -e .\n" in dry_run(scratch, "run")
    assert "pip install -q -e '.[test]'" in dry_run(scratch, "test")
