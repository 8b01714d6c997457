"""Shared benchmark plumbing: servers as subprocesses, machine notes, and RESULTS.md sections."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import requests

from benchmarks._results import machine_notes, write_section  # noqa: F401  (re-exported)
from reactor.liveloop.processes import free_port  # noqa: F401  (re-exported for the benchmarks)

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class Server:
    """A server subprocess in its own process group (so kill -9 reaches gunicorn's workers too)."""

    def __init__(self, args: Sequence[str], url: str, env: dict[str, str] | None = None, log_path: Path | None = None):
        self.url = url
        self.args = list(args)
        self._log = open(log_path or os.devnull, "ab")  # noqa: SIM115 - closed in stop()
        full_env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            self.args, cwd=ROOT, env=full_env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.wait_ready()

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {' '.join(self.args)}")
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError(f"server not ready after {timeout}s")

    def worker_pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], check=False, capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def wait_workers(self, count: int = 2, timeout: float = 60) -> list[int]:
        """Wait until ``count`` gunicorn workers exist and have finished booting (their CPU time stands still).

        ``/healthz`` answers as soon as the first worker is up. A load generator started then opens all its
        keep-alive connections to that worker, and the second one, once booted, gets none: half the
        throughput, at random. Throughput benchmarks call this before they start the load.
        """
        deadline = time.monotonic() + timeout
        previous: dict[int, float] = {}
        while time.monotonic() < deadline:
            pids = self.worker_pids()
            ticks = {pid: cpu_seconds(pid) for pid in pids}
            if len(pids) >= count and ticks == previous:
                return pids
            previous = ticks
            time.sleep(0.5)
        raise RuntimeError(f"{count} workers did not finish booting within {timeout:.0f}s")

    def kill9(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self._log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process (all its threads) has used; -1 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return -1.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(match.group(1)) if match else 0


def reactor_args(port: int, db_url: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "reactor", "serve", "--bind", f"127.0.0.1:{port}", "--db", db_url,
            "--token", "bench", *extra]  # fmt: skip


def create_pg_database(name: str) -> str:
    import psycopg

    admin = os.environ.get("SMART_ROLLBACK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1) + f"/{name}"


def drop_pg_database(name: str) -> None:
    import psycopg

    admin = os.environ.get("SMART_ROLLBACK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
