"""What a notification costs the rollback, and how fast the dispatcher drains.

Run: ``python -m benchmarks.notify_dispatch``. Figures:

* **caller cost**: how long ``NotificationHub.publish`` blocks the worker, against a channel that takes
  200 ms to answer and against one that refuses connections, compared in the same run with one
  synchronous send to the slow channel (what a naive implementation would cost per message);
* **throughput**: deliveries per second to a loopback webhook for 1, 2 and 4 delivery threads.

Rewrites only the ``notify_dispatch`` section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import socket
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from benchmarks._results import machine_notes, write_section
from reactor.notify.config import parse_notification_settings
from reactor.notify.events import EventKind, sample_event
from reactor.notify.hub import NotificationHub

SECTION = "notify_dispatch"


@contextmanager
def loopback(delay: float) -> Iterator[str]:
    """A webhook receiver on 127.0.0.1 answering 200 after ``delay`` seconds."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes; without TCP_NODELAY, Nagle + delayed ACK add ~40 ms each.
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if delay:
                time.sleep(delay)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


def refused_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/hook"


def hub_for(url: str, workers: int, **delivery: Any) -> tuple[NotificationHub, list[Any]]:
    records: list[Any] = []
    settings = parse_notification_settings(
        {
            "channels": {"hook": {"type": "webhook", "url": url}},
            "delivery": {
                "workers": workers,
                "queue_size": 100_000,
                "backoff_initial_seconds": 0.2,
                **delivery,
            },
        }
    )
    return NotificationHub(settings, record=records.append), records


def publish_latencies(url: str, count: int) -> list[float]:
    hub, _ = hub_for(url, workers=2, max_attempts=2)
    try:
        hub.publish(sample_event(EventKind.ROLLBACK_STARTED, decision_id="warm-up"))
        latencies = []
        for n in range(count):
            event = sample_event(EventKind.ROLLBACK_FAILED, decision_id=f"lat-{n}")
            start = time.perf_counter()
            hub.publish(event)
            latencies.append(time.perf_counter() - start)
        return latencies
    finally:
        hub.close(timeout=0)


def sync_send(url: str, count: int) -> list[float]:
    hub, _ = hub_for(url, workers=1)
    try:
        durations = []
        for n in range(count):
            start = time.perf_counter()
            hub.send_now("hook", sample_event(EventKind.ROLLBACK_FAILED, decision_id=f"sync-{n}"))
            durations.append(time.perf_counter() - start)
        return durations
    finally:
        hub.close(timeout=0)


def throughput(url: str, workers: int, count: int) -> float:
    hub, records = hub_for(url, workers=workers)
    try:
        start = time.perf_counter()
        for n in range(count):
            hub.publish(sample_event(EventKind.ROLLBACK_SUCCEEDED, decision_id=f"tp-{workers}-{n}"))
        if not hub.flush(timeout=600):
            raise RuntimeError("deliveries did not finish within 10 minutes")
        elapsed = time.perf_counter() - start
        delivered = sum(1 for r in records if r.status.value == "delivered")
        if delivered != count:
            raise RuntimeError(f"only {delivered} of {count} delivered")
        return count / elapsed
    finally:
        hub.close(timeout=0)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    count = 500
    print(f"[1/4] publish() against a channel answering after 200 ms ({count} events)...", flush=True)
    with loopback(0.2) as slow_url:
        slow = publish_latencies(slow_url, count)
        print("[2/4] synchronous sends to the same channel (10)...", flush=True)
        sync = sync_send(slow_url, 10)
    print(f"[3/4] publish() against a channel refusing connections ({count} events)...", flush=True)
    refused = publish_latencies(refused_url(), count)
    print("[4/4] throughput to a loopback webhook, 1/2/4 delivery threads (2000 each)...", flush=True)
    rates = {}
    with loopback(0.0) as fast_url:
        for workers in (1, 2, 4):
            rates[workers] = throughput(fast_url, workers, 2000)
            print(f"      {workers} thread(s): {rates[workers]:.0f} deliveries/s", flush=True)

    sync_median = statistics.median(sync)

    def row(label: str, values: list[float]) -> str:
        ratio = sync_median / statistics.median(values)
        return (
            f"| {label} | {statistics.median(values) * 1e6:.0f} us | {pct(values, 0.99) * 1e6:.0f} us "
            f"| {max(values) * 1e6:.0f} us | {ratio:,.0f}x less |\n"
        )

    body = (
        "## Notifications: what `publish()` costs the rollback, and dispatcher throughput\n\n"
        f"{machine_notes()}\n\n"
        "`NotificationHub.publish` only routes and queues; channels run on the dispatcher's threads. Caller\n"
        f"time per `publish()` (one webhook channel, {count} events), against one synchronous send to the\n"
        "slow channel measured in the same run:\n\n"
        "| channel behaviour | median | p99 | max | vs one synchronous send (median) |\n"
        "|---|---|---|---|---|\n"
        + row("answers after 200 ms", slow)
        + row("refuses connections (retrying)", refused)
        + f"| *synchronous send (reference)* | {sync_median * 1000:.0f} ms | "
        f"| {max(sync) * 1000:.0f} ms | 1x |\n\n"
        "Throughput to a loopback webhook answering at once (2000 deliveries, keep-alive, records\n"
        "included):\n\n"
        "| delivery threads | deliveries/s | vs 1 thread |\n"
        "|---|---|---|\n" + "".join(f"| {w} | {r:.0f} | {r / rates[1]:.2f}x |\n" for w, r in rates.items())
    )
    print(body)
    write_section(SECTION, body)


if __name__ == "__main__":
    main()
