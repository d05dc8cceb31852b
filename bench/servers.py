"""Starting gunicorn (portal or baseline) on loopback, measuring its workers, driving wrk."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
LUA_DIR = BENCH_DIR / "lua"
HOST = "127.0.0.1"  # bench load only ever targets loopback
# Seconds a server may take to start: a hang guard (a busy machine takes much longer than
# an idle one to import the app), never part of a figure.
READY_TIMEOUT = 120


@dataclass(frozen=True)
class GunicornConfig:
    """The one worker configuration used for the portal and the baseline alike."""

    workers: int = 2
    threads: int = 4

    def args(self) -> list[str]:
        return [
            # The production settings (gunicorn.conf.py), with worker recycling off so a
            # measured worker (its CPU time, RSS, profile) lives through the whole run.
            "--config",
            str(ROOT / "gunicorn.conf.py"),
            "--max-requests",
            "0",
            "--workers",
            str(self.workers),
            "--threads",
            str(self.threads),
            "--worker-class",
            "gthread",
            "--keep-alive",
            "5",
            "--backlog",
            "2048",
        ]

    def describe(self) -> str:
        return (
            f"gunicorn.conf.py: gthread, {self.workers} workers x {self.threads} threads, "
            "no recycling, portal access log on"
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start_spies(pids: list[int], out_dir: Path) -> list[subprocess.Popen[bytes]]:
    """py-spy on each process (only samples holding the GIL) until :func:`stop_spies`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    spies = []
    for pid in pids:
        cmd = [spy, "record", "--gil", "--nonblocking", "-r", "200", "-f", "raw",
               "-p", str(pid), "-o", str(out_dir / f"spy-{pid}.txt")]  # fmt: skip
        spies.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return spies


def stop_spies(spies: list[subprocess.Popen[bytes]]) -> None:
    for spy in spies:
        spy.send_signal(signal.SIGINT)  # py-spy writes its samples on SIGINT
    for spy in spies:
        try:
            spy.wait(timeout=30)
        except subprocess.TimeoutExpired:
            spy.kill()


class Server:
    """A gunicorn master serving ``app_spec`` on a free loopback port; stops on exit."""

    def __init__(
        self,
        app_spec: str,
        env: dict[str, str],
        config: GunicornConfig,
        ready_path: str = "/",
        log_path: Path | None = None,
        profile_dir: Path | None = None,
    ) -> None:
        self.profile_dir = profile_dir
        self._spies: list[subprocess.Popen[bytes]] = []
        self.app_spec = app_spec
        self.env = env
        self.config = config
        self.ready_path = ready_path
        self.port = free_port()
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def __enter__(self) -> Server:
        cmd = [
            sys.executable,
            "-m",
            "gunicorn",
            *self.config.args(),
            "--bind",
            f"{HOST}:{self.port}",
            "--graceful-timeout",
            "5",
            self.app_spec,
        ]
        env = {**os.environ, **self.env, "PYTHONPATH": str(ROOT)}
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited early ({self.app_spec}), see {self.log_path}")
            try:
                with urllib.request.urlopen(self.url + self.ready_path, timeout=2) as resp:
                    if resp.status == 200 and len(self.worker_pids()) == self.config.workers:
                        self._start_profilers()
                        return self
            except OSError:
                pass
            time.sleep(0.2)
        self.__exit__(None, None, None)
        raise RuntimeError(f"gunicorn did not become ready in {READY_TIMEOUT} s ({self.app_spec})")

    def _start_profilers(self) -> None:
        if self.profile_dir is not None:
            self._spies = start_spies(self.worker_pids(), self.profile_dir)

    def _stop_profilers(self) -> None:
        stop_spies(self._spies)
        self._spies = []

    def __exit__(self, *exc: object) -> None:
        self._stop_profilers()
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def worker_pids(self) -> list[int]:
        assert self.proc is not None
        return children(self.proc.pid)

    def worker_rss_mb(self) -> list[float]:
        return [rss_mb(pid) for pid in self.worker_pids()]


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command may contain spaces and parentheses: fields start after the last ')'.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return sorted(found)


def cpu_seconds(pids: list[int]) -> float:
    """CPU time (user + system) the processes used so far, from /proc."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks
    return total / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def wrk_path() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit(
            "wrk is not installed: run `apt-get install -y wrk` (Debian package), "
            "or `make bench`, which installs it"
        )
    return path


def run_wrk(
    url: str,
    script: str,
    duration_s: int,
    connections: int,
    threads: int = 2,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One wrk run against a loopback URL; returns the figures of ``lua/report.lua``."""
    assert url.startswith(f"http://{HOST}:"), "bench load only targets loopback"
    threads = min(threads, connections)
    cmd = [
        wrk_path(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration_s}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA_DIR / script),
        url,
    ]
    full_env = {
        **os.environ,
        "BENCH_LUA_DIR": str(LUA_DIR),
        "BENCH_THREADS": str(threads),
        **(env or {}),
    }
    out = subprocess.run(
        cmd, env=full_env, capture_output=True, text=True, timeout=duration_s + 60, check=False
    )
    for line in out.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            data = json.loads(line[len("BENCH_JSON ") :])
            seconds = data["duration_us"] / 1e6
            data["rps"] = data["requests"] / seconds if seconds else 0.0
            data["p50_ms"] = data["latency_us"]["p50"] / 1000
            data["p99_ms"] = data["latency_us"]["p99"] / 1000
            data["connections"] = connections
            data["duration_s"] = duration_s
            data["error_count"] = sum(data["errors"].values())
            return data
    raise RuntimeError(f"wrk gave no result: {out.stdout[-2000:]} {out.stderr[-2000:]}")


def measured_wrk(
    server: Server, script: str, duration_s: int, connections: int, env: dict[str, str]
) -> dict[str, Any]:
    """One wrk run, plus the CPU milliseconds per request the gunicorn workers spent over
    the measured window (utime + stime deltas from /proc): stable to about 10 % on a
    noisy machine, where req/s is not."""
    pids = server.worker_pids()
    before = cpu_seconds(pids)
    result = run_wrk(server.url, script, duration_s, connections, env=env)
    cpu = cpu_seconds(pids) - before
    result["worker_cpu_s"] = round(cpu, 3)
    result["cpu_ms_per_req"] = 1000 * cpu / result["requests"] if result["requests"] else None
    return result
