"""gunicorn.conf.py caps glibc's malloc arenas in the master, so every worker inherits the
cap: four threads per worker otherwise each get an arena of their own, and memory freed in
one is never reused by another (about 3.5 MB of RSS per worker, bench/README.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Eight threads, all alive at once (a barrier holds them), each making allocations too big
# for Python's own small-object allocator, so each asks glibc's malloc from its own thread;
# then glibc's own account of its heaps (malloc_info) is counted.
PROBE = r"""
import ctypes, runpy, sys, threading
if sys.argv[1] == "conf":
    runpy.run_path("gunicorn.conf.py")
libc = ctypes.CDLL("libc.so.6")
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]
barrier = threading.Barrier(8)
kept = []
def work():
    kept.append([bytearray(64 * 1024) for _ in range(20)])
    barrier.wait()
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
fp = libc.fopen(sys.argv[2].encode(), b"w")
libc.malloc_info(0, fp)
libc.fclose(fp)
"""


def heaps(tmp_path: Path, mode: str, **env: str) -> int:
    out = tmp_path / "malloc_info.xml"
    unset = ("MALLOC_ARENA_MAX", "WEB_MALLOC_ARENAS")
    clean = {k: v for k, v in os.environ.items() if k not in unset}
    subprocess.run(
        [sys.executable, "-c", PROBE, mode, str(out)],
        # The configuration makes a metrics folder unless it is given one.
        env={**clean, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), **env},
        cwd=ROOT, check=True, timeout=120,
    )  # fmt: skip
    return out.read_text().count("<heap nr=")


@pytest.fixture(autouse=True)
def _glibc_only():
    if not sys.platform.startswith("linux"):
        pytest.fail("the portal is deployed on glibc Linux; this test runs there")


def test_without_the_configuration_each_thread_gets_an_arena(tmp_path):
    # The control: what the cap saves is real on this machine.
    assert heaps(tmp_path, "bare") > 2


def test_the_configuration_caps_arenas_at_two(tmp_path):
    assert heaps(tmp_path, "conf") <= 2


def test_the_cap_follows_web_malloc_arenas(tmp_path):
    assert heaps(tmp_path, "conf", WEB_MALLOC_ARENAS="1") == 1


def test_malloc_arena_max_in_the_environment_wins(tmp_path):
    # glibc reads MALLOC_ARENA_MAX itself; the configuration leaves it alone.
    assert heaps(tmp_path, "conf", MALLOC_ARENA_MAX="1", WEB_MALLOC_ARENAS="4") == 1
