"""A traffic simulator: per-revision request, error and latency metrics that follow the sandbox's live split.

Every ``tick`` it reads :func:`sandbox.traffic.traffic_split` (the same objects the strategies write), gives
each serving backend its share of the entry point's request rate, and counts requests, 5xx responses and
latencies for the backend's revision (its image tag). A revision whose image is marked faulty answers with
its configured error ratio and latency, so the metrics Prometheus scrapes change the moment a faulty
revision takes traffic, and change back the moment a rollback moves the traffic away.

Series: ``http_requests_total{namespace,target,component,revision,code}`` and
``http_request_duration_seconds`` (histogram, same labels without ``code``). A backend that stops serving
(scaled down, weight 0, colour switched away) loses its series, so Prometheus marks them stale at once.
Counts are drawn from a seeded generator: runs are reproducible.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from sandbox.store import Store
from sandbox.traffic import traffic_split

#: Latency buckets (seconds): fine around the demo's healthy 40 ms and faulty 400 ms.
BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 2.5)


@dataclass(frozen=True)
class Behaviour:
    """How a revision answers: share of 5xx responses and mean latency (seconds, exponential spread).

    ``flap``: when set, the behaviour holds only every other ``flap`` seconds (healthy in between).
    """

    error_ratio: float = 0.002
    latency: float = 0.04
    flap: float = 0.0


@dataclass
class EntryPoint:
    """A way requests enter ``target``: ``service:cart``, ``virtualservice:frontend``..."""

    target: str
    entry: str
    rate: float = 40.0
    component: str = ""


@dataclass
class Simulator:
    """Counts synthetic traffic over ``store``'s live split and serves it on ``/metrics``.

    ``faults`` maps an image tag (``1.6.0-bad``) or ``workload:tag`` to its :class:`Behaviour`; anything
    else behaves as ``healthy``. Change it at any time with :meth:`set_fault` (a flapping metric does).
    """

    store: Store
    namespace: str
    entries: list[EntryPoint]
    healthy: Behaviour = field(default_factory=Behaviour)
    faults: dict[str, Behaviour] = field(default_factory=dict)
    tick: float = 0.2
    seed: int = 7
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ["namespace", "target", "component", "revision"]
        self.requests = Counter(
            "http_requests", "Requests served, by revision and status code.", [*labels, "code"], registry=self.registry
        )
        self.latency = Histogram(
            "http_request_duration_seconds", "Request latency.", labels, buckets=BUCKETS, registry=self.registry
        )
        self._rng = random.Random(self.seed)
        self._carry: dict[tuple[str, ...], float] = {}
        self._live: set[tuple[str, ...]] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._httpd: ThreadingHTTPServer | None = None
        self._http_thread: threading.Thread | None = None
        #: The newest split per target: ``{target: [(revision, weight), ...]}``, for the timeline.
        self.split: dict[str, list[tuple[str, float]]] = {}

    # ---- faults ----------------------------------------------------------------------------------
    def set_fault(self, revision: str, behaviour: Behaviour | None) -> None:
        with self._lock:
            if behaviour is None:
                self.faults.pop(revision, None)
            else:
                self.faults[revision] = behaviour

    def behaviour(self, workload: str, revision: str) -> Behaviour:
        """``workload:tag``, then ``tag``, then ``workload:*`` (every revision of the workload), else healthy."""
        app = workload.split("-")[0]
        how = self.faults.get(f"{workload}:{revision}") or self.faults.get(revision) or self.faults.get(f"{app}:*")
        if how is None or (how.flap and int(self.clock() / how.flap) % 2 == 1):
            return self.healthy
        return how

    # ---- counting --------------------------------------------------------------------------------
    def step(self, seconds: float) -> None:
        """Count ``seconds`` worth of traffic on the current split (the ticker calls this)."""
        split = traffic_split(self.store, self.namespace)["namespaces"].get(self.namespace, {})
        live: set[tuple[str, ...]] = set()
        current: dict[str, list[tuple[str, float]]] = {}
        with self._lock:
            for ep in self.entries:
                backends = (split.get(ep.entry) or {}).get("backends") or []
                shares: dict[tuple[str, str], float] = {}
                for backend in backends:
                    if backend["weight"] <= 0 or not backend["images"]:
                        continue
                    tag = backend["images"][0].rpartition(":")[2]
                    shares[(backend["workload"], tag)] = shares.get((backend["workload"], tag), 0.0) + backend["weight"]
                current[ep.target] = sorted(((t, w) for (_, t), w in shares.items()), key=lambda x: -x[1])
                for (workload, tag), weight in shares.items():
                    key = (self.namespace, ep.target, ep.component or ep.target, tag)
                    live.add(key)
                    self._count(key, self.behaviour(workload, tag), ep.rate * weight / 100.0 * seconds)
            for gone in self._live - live:
                for code in ("200", "500"):
                    self.requests.remove(*gone, code)
                self.latency.remove(*gone)
                self._carry.pop(gone, None)
            self._live = live
            self.split = current

    def _count(self, key: tuple[str, ...], how: Behaviour, expected: float) -> None:
        carried = self._carry.get(key, 0.0) + expected
        n = int(carried)
        self._carry[key] = carried - n
        errors = sum(1 for _ in range(n) if self._rng.random() < how.error_ratio)
        ok = self.requests.labels(*key, "200")
        bad = self.requests.labels(*key, "500")
        ok.inc(n - errors)
        bad.inc(errors)  # inc(0) creates the series: a revision without errors still has a 0 to divide
        hist = self.latency.labels(*key)
        for _ in range(n):
            hist.observe(-how.latency * math.log(1.0 - self._rng.random()))

    def _run(self) -> None:
        last = self.clock()
        while not self._stop.wait(self.tick):
            now = self.clock()
            self.step(now - last)
            last = now

    # ---- serving ---------------------------------------------------------------------------------
    def exposition(self) -> bytes:
        with self._lock:
            return generate_latest(self.registry)

    def start(self, bind: str = "127.0.0.1:0") -> Simulator:
        """Count in a thread and serve ``/metrics`` on ``bind`` (port 0: any free port, see :attr:`url`)."""
        host, _, port = bind.rpartition(":")
        simulator = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                body = simulator.exposition()
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE_LATEST)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                """Prometheus scrapes every second: no access log."""

        self._httpd = ThreadingHTTPServer((host, int(port)), Handler)
        self._httpd.daemon_threads = True
        self._http_thread = threading.Thread(target=self._httpd.serve_forever, name="simulator-http", daemon=True)
        self._http_thread.start()
        self.step(0.0)
        self._thread = threading.Thread(target=self._run, name="simulator", daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        assert self._httpd is not None
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._http_thread is not None:
            self._http_thread.join(timeout=5)


def demo_entries(rates: Mapping[str, float] | None = None) -> list[EntryPoint]:
    """The demo release's entry points: how traffic reaches each target the live loop watches."""
    rates = dict(rates or {})
    return [
        EntryPoint("payments", "service:payments", rates.get("payments", 40.0)),
        EntryPoint("checkout", "service:checkout", rates.get("checkout", 40.0)),
        EntryPoint("frontend", "virtualservice:frontend", rates.get("frontend", 60.0)),
        EntryPoint("cart", "service:cart", rates.get("cart", 40.0)),
    ]
