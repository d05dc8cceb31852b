"""A private PostgreSQL cluster that tests may stop and start.

The shared server at 127.0.0.1:5432 serves every other test at the same time,
so outages are played on a cluster of our own: ``initdb`` in a temporary
folder, run as the ``postgres`` user on a free loopback port.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.conftest import PG_URL
from tests.factories import statement_body
from tests.servers import free_port


def _pg_bin() -> Path:
    if os.environ.get("PORTAL_TEST_PG_BIN"):
        return Path(os.environ["PORTAL_TEST_PG_BIN"])
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))  # Debian's layout
    return found[-1].parent if found else Path("/usr/lib/postgresql/15/bin")


PG_BIN = _pg_bin()


class Cluster:
    def __init__(self, folder: Path, port: int) -> None:
        self.folder, self.port = folder, port
        self.data = folder / "data"
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"

    def _pg(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(PG_BIN / args[0]), *args[1:]]
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, check=check, capture_output=True, text=True, timeout=60)

    def init(self) -> None:
        self._pg("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
                 "--no-sync", "-E", "UTF8")  # fmt: skip

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
            "-c fsync=off"  # commits still reach the OS: a crash (-m immediate) keeps them
        )
        self._pg("pg_ctl", "-D", str(self.data), "-o", options, "-l",
                 str(self.folder / "server.log"), "-w", "-t", "30", "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._pg("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")

    def running(self) -> bool:
        return self._pg("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    if not PG_URL:
        if os.environ.get("CI"):
            pytest.fail("PORTAL_TEST_DATABASE_URL is not set: outage tests cannot run in CI")
        pytest.skip("PORTAL_TEST_DATABASE_URL not set: PostgreSQL tests skipped locally")
    if not (PG_BIN / "initdb").exists():
        pytest.fail(f"PostgreSQL server binaries not found in {PG_BIN} (PORTAL_TEST_PG_BIN)")
    folder = Path(tempfile.mkdtemp(prefix="portal-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    cluster = Cluster(folder, free_port())
    cluster.init()
    cluster.start()
    try:
        yield cluster
    finally:
        if cluster.running():
            cluster.stop("immediate")
        shutil.rmtree(folder, ignore_errors=True)


def traffic(base: str, path: str, headers: dict[str, str], key: str, timeout: float) -> list[int]:
    """Status codes of the customer's page ``path``, an API read and an API create (with
    ``key`` as its reference and Idempotency-Key), sent at once."""
    calls = [
        lambda: requests.get(f"{base}{path}", timeout=timeout),
        lambda: requests.get(f"{base}/api/v1/payment-requests", headers=headers, timeout=timeout),
        lambda: requests.post(
            f"{base}/api/v1/payment-requests",
            headers={**headers, "Idempotency-Key": key},
            json=statement_body(reference=key),
            timeout=timeout,
        ),
    ]
    with ThreadPoolExecutor(len(calls)) as pool:
        return [r.status_code for r in pool.map(lambda call: call(), calls)]
