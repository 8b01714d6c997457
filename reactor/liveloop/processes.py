"""A small supervisor: child processes in their own process groups, logs in the run directory, clean stops.

Every child is started with ``start_new_session=True`` so stopping it signals its whole group (gunicorn's
workers included), and :meth:`Supervisor.stop_all` runs from ``atexit`` and from the SIGINT/SIGTERM
handlers: Ctrl-C, a kill or a failed start leaves no process behind.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import random
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import requests


class StartError(RuntimeError):
    """A component did not start; the message names it and its log file."""


#: Ports this process has handed out: never twice, even once their first user has closed them.
_ISSUED: set[int] = set()
_ISSUED_LOCK = threading.Lock()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A port nobody listens on right now (the child binds it a moment later).

    Chosen outside the kernel's ephemeral range: a port the kernel picked (``bind(0)``) is also what it gives
    the next outgoing connection, so a Prometheus scrape or a client could take it before the child binds it
    (seen: the reactor's port in use by the time gunicorn started).
    """
    low, high = _ephemeral_range()
    first, last = (20000, low) if low > 21000 else (high + 1, 65536)
    with _ISSUED_LOCK:
        for _ in range(200):
            port = random.randrange(first, last)
            if port in _ISSUED:
                continue
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    continue
            _ISSUED.add(port)
            return port
    with socket.socket() as sock:  # a crowded range: fall back on the kernel's choice
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Supervisor:
    """Starts, watches and stops the live loop's processes."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.logs = run_dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.children: list[Child] = []
        self._stopped = False
        atexit.register(self.stop_all)

    @staticmethod
    def install_signal_handlers() -> None:
        """SIGTERM (and SIGHUP) raise KeyboardInterrupt, so one ``finally`` path stops everything."""

        def interrupt(signum: int, _frame: FrameType | None) -> None:
            raise KeyboardInterrupt(signal.Signals(signum).name)

        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, interrupt)

    def start(self, name: str, argv: Sequence[str], *, env: dict[str, str] | None = None) -> Child:
        log = self.logs / f"{name}.log"
        handle = log.open("ab")
        try:
            process = subprocess.Popen(
                list(argv),
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.run_dir,
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )
        except OSError as exc:
            raise StartError(f"{name}: cannot start {argv[0]}: {exc}") from None
        finally:
            handle.close()
        child = Child(name, process, log)
        self.children.append(child)
        return child

    def wait_ready(
        self,
        child: Child,
        url: str,
        *,
        timeout: float = 30.0,
        ok: Callable[[requests.Response], bool] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Poll ``url`` until it answers 2xx (and ``ok``); fail naming the component and its log."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            code = child.process.poll()
            if code is not None:
                raise StartError(
                    f"{child.name} exited with code {code} while starting; see {child.log}:\n{child.tail()}"
                )
            try:
                response = requests.get(url, timeout=1.0, headers=headers)
                if response.ok and (ok is None or ok(response)):
                    return
                last = f"HTTP {response.status_code}"
            except requests.RequestException as exc:
                last = type(exc).__name__
            time.sleep(0.1)
        raise StartError(f"{child.name} not ready at {url} after {timeout:.0f}s ({last}); see {child.log}")

    def check(self) -> None:
        """Raise if a child died (the loop cannot be trusted without all of its parts)."""
        for child in self.children:
            code = child.process.poll()
            if code is not None and not self._stopped:
                raise StartError(f"{child.name} exited with code {code}; see {child.log}:\n{child.tail()}")

    def stop_all(self, timeout: float = 10.0) -> None:
        """SIGTERM every child's process group, newest first; SIGKILL what is still there after ``timeout``."""
        if self._stopped:
            return
        self._stopped = True
        for child in reversed(self.children):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in reversed(self.children):
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            # The group may outlive its leader (a gunicorn worker): kill whatever is left of it.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.process.wait(timeout=2)
        atexit.unregister(self.stop_all)
