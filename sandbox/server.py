"""The sandbox Kubernetes API server: stdlib HTTP, in-process or as ``smart-rollback sandbox``.

It speaks the subset of the API the project and kubectl 1.32 use (KUBECTL_SANDBOX.md): discovery (legacy and
aggregated v2), get/list/watch/create/replace/patch/delete with label and field selectors, Tables for
``kubectl get``, ``status`` and ``scale`` subresources, ``dryRun=All``, and Status errors. HTTP/1.1 with
keep-alive (the Python client pools connections); watch streams are chunked.

Test hooks: :attr:`SandboxServer.faults` answers chosen requests with an error or drops the connection
(409 storms, an unavailable server), :meth:`SandboxServer.stop` / :meth:`SandboxServer.start` take the
server away and bring it back on the same port with the same state, and :attr:`SandboxServer.requests`
records recent requests for assertions (a bounded log).

    with SandboxServer(seed="demo") as server:
        server.write_kubeconfig(tmp / "kubeconfig")
        ...
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import socket
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sandbox import resources
from sandbox.controllers import Controllers
from sandbox.patch import APPLY_PATCH, STRATEGIC_MERGE_PATCH
from sandbox.resources import ResourceType
from sandbox.store import ApiError, Obj, Store
from sandbox.tables import TABLE_CONTENT_TYPE, table, wants_table

log = logging.getLogger(__name__)

VERSION_INFO = {
    # The minor decides which kubectl the gcloud dispatcher runs: 32 keeps its embedded 1.32 (§0).
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.4-sandbox",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.23.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}


# ------------------------------------------------------------------------------------------ faults
@dataclass
class Fault:
    """Answer matching requests with ``status`` (0: drop the connection without answering).

    ``after`` matching requests pass untouched first; then ``times`` of them (None: all, until cleared)
    get the fault.
    """

    status: int = 503
    times: int | None = 1
    methods: frozenset[str] = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
    path_contains: str = ""
    after: int = 0
    retry_after: int | None = None
    message: str = ""
    hits: int = 0
    seen: int = 0

    def applies(self, method: str, path: str) -> bool:
        return method in self.methods and self.path_contains in path

    @property
    def spent(self) -> bool:
        return self.times is not None and self.hits >= self.times


WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class Faults:
    """The fault plan of one server; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._hooks: list[Callable[[str, str], None]] = []

    def before(self, hook: Callable[[str, str], None]) -> None:
        """Call ``hook(method, path)`` before each request is handled (e.g. to race a write)."""
        with self._lock:
            self._hooks.append(hook)

    def run_hooks(self, method: str, path: str) -> None:
        with self._lock:
            hooks = list(self._hooks)
        for hook in hooks:
            hook(method, path)

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def conflicts(self, times: int, *, path_contains: str = "") -> Fault:
        """The next ``times`` writes answer 409 Conflict, as if someone else kept winning the race."""
        return self.add(Fault(status=409, times=times, methods=WRITES, path_contains=path_contains))

    def unavailable(self, *, times: int | None = None, after: int = 0, methods: frozenset[str] | None = None) -> Fault:
        """Answer 503 (``times`` requests, or until cleared), after letting ``after`` through."""
        return self.add(Fault(status=503, times=times, after=after, methods=methods or Fault.methods))

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self._hooks.clear()

    def match(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.spent or not fault.applies(method, path):
                    continue
                fault.seen += 1
                if fault.seen <= fault.after:
                    continue
                fault.hits += 1
                return fault
        return None


_FAULT_REASONS = {
    409: (
        "Conflict",
        "the object has been modified; please apply your changes to the latest version and try again",
    ),
    429: ("TooManyRequests", "the server has received too many requests and has asked us to try again later"),
    500: ("InternalError", "an error on the server (injected) has prevented the request from succeeding"),
    503: ("ServiceUnavailable", "the server is currently unable to handle the request (injected)"),
    504: ("Timeout", "the server was unable to return a response in the time allotted (injected)"),
}


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    query: dict[str, list[str]]
    content_type: str
    accept: str
    user_agent: str
    body: Any
    authorization: str = ""
    status: int = 0
    fault: bool = False
    at: float = field(default_factory=time.time)


# ------------------------------------------------------------------------------------------ handler
class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    sandbox: SandboxServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer
    #: Idle keep-alive connections are closed after this many seconds.
    timeout = 60
    server_version = "smart-rollback-sandbox"
    sys_version = ""
    _pending: RequestRecord | None = None

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle + delayed ACK add ~40 ms each.
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.sandbox._connections.add(self.connection)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self.server.sandbox._connections.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # ------------------------------------------------------------------------------------ plumbing
    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, code: int, body: Any, content_type: str = "application/json", headers: dict | None = None) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self._log_request(code)
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_error(self, error: ApiError, headers: dict | None = None) -> None:
        self._send(error.code, error.status(), headers=headers)

    def _dispatch(self, method: str) -> None:
        sandbox = self.server.sandbox
        split = urlsplit(self.path)
        path, query = split.path, parse_qs(split.query, keep_blank_values=True)
        raw = self._read_body()
        content_type = self.headers.get("Content-Type", "")
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
            if method in WRITES:
                self._send_error(ApiError(400, "BadRequest", "the request body is not valid JSON"))
                return
        sandbox.faults.run_hooks(method, path)
        fault = sandbox.faults.match(method, path)
        self._pending = RequestRecord(
            method=method,
            path=path,
            query=query,
            content_type=content_type,
            accept=self.headers.get("Accept", ""),
            user_agent=self.headers.get("User-Agent", ""),
            authorization=self.headers.get("Authorization", ""),
            body=body,
            fault=fault is not None,
        )
        try:
            if fault is not None:
                self._inject(fault)
            else:
                self._route(method, path, query, body, content_type)
        except ApiError as error:
            self._send_error(error)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # a bug must answer 500, not kill the connection silently
            log.exception("sandbox: %s %s failed", method, self.path)
            self._send_error(ApiError(500, "InternalError", f"sandbox error: {exc}"))
        finally:
            self._log_request(0)  # no answer (a dropped connection) is recorded too

    def _log_request(self, status: int) -> None:
        """Record the request once, before its answer leaves: a client that got it can rely on the record."""
        pending, self._pending = self._pending, None
        if pending is not None:
            self.server.sandbox._record(replace(pending, status=status))

    def _inject(self, fault: Fault) -> None:
        if fault.status == 0:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        reason, message = _FAULT_REASONS.get(fault.status, ("InternalError", "injected failure"))
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None
        self._send_error(ApiError(fault.status, reason, fault.message or message), headers=headers)

    # -------------------------------------------------------------------------------------- routing
    def _route(self, method: str, path: str, query: dict[str, list[str]], body: Any, content_type: str) -> None:
        accept = self.headers.get("Accept", "")
        if path == "/version":
            self._send(200, VERSION_INFO)
            return
        if path in ("/healthz", "/livez", "/readyz"):
            self._send(200, b"ok", "text/plain; charset=utf-8")
            return
        if path.startswith("/sandbox/"):
            self._sandbox_endpoint(method, path, query)
            return
        if path in ("/api", "/api/", "/apis", "/apis/"):
            core = path.startswith("/api") and not path.startswith("/apis")
            if "apidiscovery.k8s.io" in accept and "v=v2" in accept:
                self._send(200, resources.aggregated_discovery(core), resources.AGGREGATED_CONTENT_TYPE)
            else:
                self._send(200, resources.api_versions() if core else resources.api_group_list())
            return
        parts = [p for p in path.split("/") if p]
        if parts[0] == "api" and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis" and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not rest:
            document = resources.api_resource_list(group, version)
            if document is None or method != "GET":
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            self._send(200, document)
            return
        namespace: str | None
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespace, plural, tail = rest[1], rest[2], rest[3:]
        else:
            namespace, plural, tail = None, rest[0], rest[1:]
        rtype = resources.lookup(group, version, plural)
        if rtype is None or len(tail) > 2:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = tail[0] if tail else None
        sub = tail[1] if len(tail) > 1 else None
        if rtype.namespaced and namespace is None and name is not None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if sub is not None and sub not in rtype.subresources:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        Resource(self, rtype, version, namespace or "", name, sub, query, accept).handle(method, body, content_type)

    def _sandbox_endpoint(self, method: str, path: str, query: dict[str, list[str]]) -> None:
        from sandbox.traffic import traffic_split

        if method == "GET" and path.rstrip("/") == "/sandbox/v1/traffic":
            namespace = (query.get("namespace") or [""])[0] or None
            with self.server.sandbox.store.lock:
                self._send(200, traffic_split(self.server.sandbox.store, namespace))
            return
        if method == "POST" and path.rstrip("/") == "/sandbox/v1/reset":
            name = (query.get("seed") or ["demo"])[0]
            try:
                self.server.sandbox.reset(name)
            except ValueError as exc:
                raise ApiError(400, "BadRequest", str(exc)) from exc
            self._send(200, {"seed": name, "resourceVersion": str(self.server.sandbox.store.rv)})
            return
        raise ApiError(404, "NotFound", f"unknown sandbox endpoint {path}")

    # --------------------------------------------------------------------------------------- watch
    def client_gone(self) -> bool:
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if not readable:
                return False
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def start_stream(self) -> None:
        self._log_request(200)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()


class Resource:
    """One request on one resource type: the REST verbs, in the API server's shapes."""

    def __init__(
        self,
        handler: _Handler,
        rtype: ResourceType,
        version: str,
        namespace: str,
        name: str | None,
        sub: str | None,
        query: dict[str, list[str]],
        accept: str,
    ) -> None:
        self.h = handler
        self.store = handler.server.sandbox.store
        self.rtype = rtype
        self.version = version
        self.namespace = namespace if rtype.namespaced else ""
        self.all_namespaces = rtype.namespaced and not namespace
        self.name = name
        self.sub = sub
        self.query = query
        self.accept = accept

    def q(self, key: str) -> str | None:
        values = self.query.get(key)
        return values[0] if values else None

    @property
    def dry_run(self) -> bool:
        return self.q("dryRun") == "All"

    def out(self, obj: Obj) -> Obj:
        if obj.get("kind") != "Scale":
            obj["apiVersion"] = self.rtype.api_version(self.version)
        return obj

    def handle(self, method: str, body: Any, content_type: str) -> None:
        if method == "GET":
            if self.name is None:
                if self.q("watch") in ("true", "1"):
                    self.watch()
                else:
                    self.list()
                return
            self.get()
            return
        if method == "POST" and self.name is None:
            self.require_object(body)
            created = self.store.create(self.rtype, self.namespace, body, dry_run=self.dry_run)
            self.h._send(201, self.out(created))
            return
        if self.name is None:
            raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on a collection")
        if method == "PUT":
            self.require_object(body)
            if self.sub == "scale":
                result = self.store.replace_scale(self.rtype, self.namespace, self.name, body, dry_run=self.dry_run)
                self.h._send(
                    200,
                    self.store.scale(self.rtype, self.namespace, self.name) if not self.dry_run else result,
                )
                return
            result = self.store.replace(
                self.rtype, self.namespace, self.name, body, subresource=self.sub, dry_run=self.dry_run
            )
            self.h._send(200, self.out(result))
            return
        if method == "PATCH":
            kind = content_type.split(";", 1)[0].strip().lower()
            if kind == APPLY_PATCH or (kind == STRATEGIC_MERGE_PATCH and self.rtype.custom):
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    f"the body of the request was in an unknown format - accepted media types include: "
                    f"application/json-patch+json, application/merge-patch+json"
                    f"{'' if self.rtype.custom else ', application/strategic-merge-patch+json'}",
                )
            if body is None:
                raise ApiError(400, "BadRequest", "the PATCH request has no body")
            result = self.store.patch(
                self.rtype, self.namespace, self.name, body, kind, subresource=self.sub, dry_run=self.dry_run
            )
            if self.sub == "scale":
                result = self.store.scale(self.rtype, self.namespace, self.name) if not self.dry_run else result
                self.h._send(200, result)
                return
            self.h._send(200, self.out(result))
            return
        if method == "DELETE":
            deleted = self.store.delete(self.rtype, self.namespace, self.name, dry_run=self.dry_run)
            self.h._send(200, self.out(deleted))
            return
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported")

    def require_object(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", f"the request body must be a {self.rtype.kind} object")

    def get(self) -> None:
        assert self.name is not None
        if self.sub == "scale":
            self.h._send(200, self.store.scale(self.rtype, self.namespace, self.name))
            return
        obj = self.out(self.store.get(self.rtype, self.namespace, self.name))
        if wants_table(self.accept):
            self.h._send(
                200,
                table(
                    self.rtype,
                    [obj],
                    int(obj["metadata"]["resourceVersion"]),
                    self.store.clock(),
                    self.q("includeObject") or "",
                ),
                TABLE_CONTENT_TYPE,
            )
            return
        self.h._send(200, obj)

    def _items(self) -> tuple[list[Obj], int]:
        return self.store.list(
            self.rtype,
            None if self.all_namespaces else self.namespace,
            label_selector=self.q("labelSelector"),
            field_selector=self.q("fieldSelector"),
        )

    def list(self) -> None:
        items, rv = self._items()
        items = [self.out(i) for i in items]
        if wants_table(self.accept):
            self.h._send(
                200,
                table(self.rtype, items, rv, self.store.clock(), self.q("includeObject") or ""),
                TABLE_CONTENT_TYPE,
            )
            return
        self.h._send(
            200,
            {
                "kind": f"{self.rtype.kind}List",
                "apiVersion": self.rtype.api_version(self.version),
                "metadata": {"resourceVersion": str(rv)},
                "items": items,
            },
        )

    def watch(self) -> None:
        from sandbox.selectors import field_matcher, label_matcher

        sandbox = self.h.server.sandbox
        labels, fields = label_matcher(self.q("labelSelector")), field_matcher(self.q("fieldSelector"))
        timeout = float(self.q("timeoutSeconds") or 1800)
        deadline = time.monotonic() + timeout
        as_table = wants_table(self.accept)
        requested = self.q("resourceVersion")

        def selected(obj: Obj) -> bool:
            meta = obj.get("metadata") or {}
            in_scope = self.all_namespaces or not self.rtype.namespaced or meta.get("namespace") == self.namespace
            return in_scope and labels(obj) and fields(obj)

        def encode(kind: str, obj: Obj) -> bytes:
            obj = self.out(obj)
            if as_table:
                obj = table(self.rtype, [obj], int(obj["metadata"]["resourceVersion"]), self.store.clock(), "")
            return json.dumps({"type": kind, "object": obj}).encode() + b"\n"

        with self.store.lock:
            if requested not in (None, "", "0") and int(requested) < self.store.oldest_event_rv() - 1:
                too_old = ApiError(410, "Expired", f"too old resource version: {requested} ({self.store.rv})")
                initial = [json.dumps({"type": "ERROR", "object": too_old.status()}).encode() + b"\n"]
                last = self.store.rv
            elif requested in (None, "", "0"):
                items, last = self._items()
                initial = [encode("ADDED", obj) for obj in items]
            else:
                initial, last = [], int(requested)
        self.h.start_stream()
        try:
            for chunk in initial:
                self.h.write_chunk(chunk)
            while not sandbox._stopping.is_set() and time.monotonic() < deadline:
                with self.store.changed:
                    if self.store.rv <= last:
                        self.store.changed.wait(timeout=0.5)
                    events = self.store.events_after(last, [self.rtype.id])
                    last = self.store.rv
                for event in events:
                    if selected(event.object):
                        self.h.write_chunk(encode(event.type, event.object))
                if not events and self.h.client_gone():
                    break
            self.h.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass
        self.h.close_connection = True


# ------------------------------------------------------------------------------------------- server
class SandboxServer:
    """The embedded cluster. ``bind`` is ``host:port`` (port 0: any free port, kept across restarts).

    ``state_file``: load the state from it if it exists, and keep it written (atomically, at most every
    ``flush_interval`` seconds, and on :meth:`stop`). ``seed``: the name of a seed in
    :data:`sandbox.seed.SEEDS`, applied only when no state was loaded. ``ready_delay``: seconds from a
    pod's creation to its readiness.
    """

    def __init__(
        self,
        bind: str = "127.0.0.1:0",
        *,
        state_file: str | os.PathLike[str] | None = None,
        seed: str | None = None,
        ready_delay: float = 0.0,
        clock: Callable[[], float] = time.time,
        flush_interval: float = 0.2,
        record_requests: bool = True,
        request_log: int = 20000,
    ) -> None:
        host, _, port = bind.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"bind {bind!r} must be HOST:PORT, e.g. 127.0.0.1:8001 (port 0: any free port)")
        self.host, self.port = host, int(port)
        self.store = Store(clock=clock)
        self.controllers = Controllers(self.store, ready_delay=ready_delay)
        self.faults = Faults()
        self.record_requests = record_requests
        #: The most recent requests (bounded: a long-running sandbox must not grow without end).
        self.requests: deque[RequestRecord] = deque(maxlen=request_log)
        self._requests_lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._flusher: threading.Thread | None = None
        self.flush_interval = flush_interval
        self.state_file = Path(state_file) if state_file else None
        self._flushed = -1
        loaded = False
        if self.state_file is not None and self.state_file.exists():
            try:
                self.store.load(json.loads(self.state_file.read_text()))
            except (ValueError, KeyError) as exc:
                raise ValueError(
                    f"sandbox state file {self.state_file} is not a sandbox dump ({exc}); move it away or delete it"
                ) from exc
            loaded = True
        if seed and not loaded:
            from sandbox.seed import seeded_state

            self.store.load(seeded_state(seed))
        self._flushed = -1

    # ------------------------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._httpd is not None

    def start(self) -> SandboxServer:
        if self._httpd is not None:
            return self
        self._stopping.clear()
        httpd = _HTTPServer((self.host, self.port), _Handler)
        httpd.sandbox = self
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.name = f"sandbox-{self.port}"
        self._thread.start()
        self.controllers.start()
        if self.state_file is not None and self._flusher is None:
            self._flusher = threading.Thread(target=self._flush_loop, name="sandbox-flush", daemon=True)
            self._flusher.start()
        return self

    def stop(self) -> None:
        """Stop serving and drop every connection; the state stays, so :meth:`start` resumes it."""
        self._stopping.set()
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            for conn in list(self._connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.controllers.stop()
        if self._flusher is not None:
            self._flusher.join(timeout=5)
            self._flusher = None
        self.flush()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------------------------- persistence
    def _flush_loop(self) -> None:
        while not self._stopping.wait(self.flush_interval):
            self.flush()

    def flush(self) -> None:
        """Write the state file now if anything changed since the last write."""
        if self.state_file is None:
            return
        with self.store.lock:
            if self.store.writes == self._flushed:
                return
            data = self.store.dump()
            writes = self.store.writes
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".sandbox-", dir=self.state_file.parent)
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle)
        os.replace(tmp, self.state_file)
        self._flushed = writes

    def reset(self, seed: str = "demo") -> None:
        """Replace the whole state with seed ``seed`` (``POST /sandbox/v1/reset?seed=NAME`` does the same).

        resourceVersions keep increasing across a reset, so a client's cached versions stay stale, not
        accidentally current.
        """
        from sandbox.seed import seeded_state

        state = seeded_state(seed)
        with self.store.lock:
            floor = self.store.rv
            state["resourceVersion"] = int(state.get("resourceVersion", 0)) + floor
            for items in state["objects"].values():
                for obj in items:
                    meta = obj["metadata"]
                    meta["resourceVersion"] = str(int(meta.get("resourceVersion", 0)) + floor)
            self.store.load(state)
            self.store.writes += 1

    # ------------------------------------------------------------------------------------- helpers
    def _record(self, record: RequestRecord) -> None:
        if self.record_requests:
            with self._requests_lock:
                self.requests.append(record)

    def clear_requests(self) -> None:
        with self._requests_lock:
            self.requests.clear()

    def kubeconfig(self, *, context: str = "sandbox", namespace: str | None = None) -> dict[str, Any]:
        """A kubeconfig for this server: no auth, no TLS (KUBECTL_SANDBOX.md: ``user: {}`` is enough)."""
        ctx: dict[str, Any] = {"cluster": context, "user": context}
        if namespace:
            ctx["namespace"] = namespace
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": context, "cluster": {"server": self.url}}],
            "users": [{"name": context, "user": {}}],
            "contexts": [{"name": context, "context": ctx}],
            "current-context": context,
            "preferences": {},
        }

    def write_kubeconfig(
        self, path: str | os.PathLike[str], *, context: str = "sandbox", namespace: str | None = None
    ) -> Path:
        """Write :meth:`kubeconfig` as YAML-compatible JSON (kubectl and the client read either)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(self.kubeconfig(context=context, namespace=namespace), indent=2) + "\n")
        return target

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Inside the block the server is gone (connections refused); after it, back with the same state."""
        self.stop()
        try:
            yield
        finally:
            self.start()
