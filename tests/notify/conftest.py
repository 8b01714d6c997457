"""Real parts for the notification tests: a recording loopback HTTP server, a real SMTP server with
STARTTLS and AUTH (aiosmtpd), TLS certificates made on the fly, and a hub factory."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from reactor.notify.config import parse_notification_settings
from reactor.notify.dispatcher import Delivery
from reactor.notify.events import Event, EventKind, Links, Reason, Severity, Step
from reactor.notify.hub import NotificationHub
from strategies.base import TargetRef
from tests.conftest import FIXTURES, free_port

# -- a recording HTTP server ---------------------------------------------------------------------------


@dataclass
class Reply:
    status: int = 200
    body: bytes | str | dict | list = b""
    headers: dict[str, str] = field(default_factory=dict)
    #: Hold the answer until this event is set (or the server stops): a hung remote side.
    hold: threading.Event | None = None


@dataclass
class Captured:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.body.decode())


class RecordingServer:
    """A loopback HTTP server that records every request and answers from per-path scripts."""

    def __init__(self) -> None:
        self.requests: list[Captured] = []
        self._scripts: dict[str, deque[Reply]] = defaultdict(deque)
        self._defaults: dict[str, Reply] = {}
        self._cond = threading.Condition()
        self._holds: list[threading.Event] = []
        self.events: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are two writes: avoid the delayed-ACK stall

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                split = urlsplit(self.path)
                captured = Captured(
                    method=self.command,
                    path=split.path,
                    query=parse_qs(split.query),
                    headers=dict(self.headers.items()),
                    body=body,
                    at=time.monotonic(),
                )
                reply = server._next_reply(split.path)
                with server._cond:
                    server.requests.append(captured)
                    server.events.append(f"request {self.command} {split.path}")
                    server._cond.notify_all()
                if reply.hold is not None:
                    reply.hold.wait(timeout=30)
                payload = reply.body
                if isinstance(payload, dict | list):
                    payload = json.dumps(payload).encode()
                elif isinstance(payload, str):
                    payload = payload.encode()
                try:
                    self.send_response(reply.status)
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client gave up (timeout test)

            do_POST = do_PATCH = do_GET = do_PUT = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(
            target=self.httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="recording-server",
            daemon=True,
        )
        self._thread.start()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, path: str, *replies: Reply) -> None:
        """Answer the next requests to ``path`` with ``replies``, in order."""
        for reply in replies:
            if reply.hold is not None:
                self._holds.append(reply.hold)
            self._scripts[path].append(reply)

    def default(self, path: str, reply: Reply) -> None:
        self._defaults[path] = reply

    def _next_reply(self, path: str) -> Reply:
        with self._cond:
            if self._scripts[path]:
                return self._scripts[path].popleft()
        return self._defaults.get(path, Reply(200, b"ok", {"Content-Type": "text/plain"}))

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Captured]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.requests) >= count, timeout):
                raise AssertionError(f"expected {count} request(s), got {len(self.requests)}: {self.requests}")
            return list(self.requests)

    def to(self, path: str) -> list[Captured]:
        with self._cond:
            return [r for r in self.requests if r.path == path]

    def close(self) -> None:
        for hold in self._holds:
            hold.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    srv = RecordingServer()
    try:
        yield srv
    finally:
        srv.close()


# -- hub factory ---------------------------------------------------------------------------------------


class Records:
    """Collects what the dispatcher reports, in order; waits for final states."""

    def __init__(self) -> None:
        self.items: list[Delivery] = []
        self._cond = threading.Condition()

    def __call__(self, delivery: Delivery) -> None:
        with self._cond:
            self.items.append(delivery)
            self._cond.notify_all()

    def final(self) -> list[Delivery]:
        with self._cond:
            return [d for d in self.items if d.final]

    def wait_items(self, count: int, timeout: float = 30.0) -> list[Delivery]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.items) >= count, timeout):
                raise AssertionError(f"expected {count} record(s), got {self.items}")
            return list(self.items)

    def wait_final(self, count: int, timeout: float = 30.0) -> list[Delivery]:
        with self._cond:
            ok = self._cond.wait_for(lambda: len([d for d in self.items if d.final]) >= count, timeout)
            if not ok:
                raise AssertionError(f"expected {count} final record(s), got {self.items}")
            return [d for d in self.items if d.final]


FAST_DELIVERY = {
    "workers": 2,
    "backoff_initial_seconds": 0.05,
    "backoff_max_seconds": 0.2,
    "backoff_jitter": 0,
    "connect_timeout_seconds": 2,
    "timeout_seconds": 5,
    "max_attempts": 4,
    "shutdown_grace_seconds": 2,
}


@pytest.fixture
def records() -> Records:
    return Records()


@pytest.fixture
def make_hub(records: Records) -> Iterator[Callable[..., NotificationHub]]:
    hubs: list[NotificationHub] = []

    def make(
        channels: dict[str, Any] | None = None,
        *,
        routes: list[Any] | None = None,
        delivery: dict[str, Any] | None = None,
        environ: dict[str, str] | None = None,
        **sections: Any,
    ) -> NotificationHub:
        data: dict[str, Any] = {
            "channels": channels or {},
            "delivery": {**FAST_DELIVERY, **(delivery or {})},
            **sections,
        }
        if routes is not None:
            data["routes"] = routes
        hub = NotificationHub(parse_notification_settings(data), record=records, environ=environ or {})
        hubs.append(hub)
        return hub

    yield make
    for hub in hubs:
        hub.close(timeout=2)


def make_event(kind: EventKind = EventKind.ROLLBACK_FAILED, decision_id: str = "dec-1", **overrides: Any) -> Event:
    now = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)
    fields: dict[str, Any] = {
        "kind": kind,
        "decision_id": decision_id,
        "target": TargetRef("kubernetes", "prod-eu", "shop", "checkout"),
        "severity": Severity.CRITICAL,
        "strategy": "progressive",
        "mode": "auto",
        "reasons": (
            Reason("error ratio 12.4% vs baseline 0.8%", 18.0, "error_ratio"),
            Reason("p99 latency 1.9 s vs 0.4 s", 31.0, "latency_p99"),
        ),
        "steps": (Step("set_weights", "done", "stable=100 canary=0", now),),
        "links": Links(
            explanation="https://rollback.example.com/ui/decisions/dec-1",
            grafana="https://grafana.example.com/d/abc",
            alertmanager="https://am.example.com/#/alerts",
        ),
        "health_score": 23.0,
        "from_revision": "7",
        "to_revision": "6",
        "occurred_at": now + dt.timedelta(minutes=3),
        "started_at": now,
    }
    fields.update(overrides)
    return Event(**fields)


def load_fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


#: Free-form maps in the captured bodies: their keys are the sender's choice, only value types matter.
FREE_FORM = frozenset({"details", "custom_details"})


def assert_shape_covers(expected: Any, actual: Any, path: str = "$") -> None:
    """Every key of the captured ``expected`` is in ``actual`` with a value of the same JSON type."""
    if isinstance(expected, dict) and path.rsplit(".", 1)[-1] in FREE_FORM:
        assert isinstance(actual, dict) and actual, f"{path}: expected a non-empty object"
        kinds = {type(v) for v in expected.values()}
        if kinds == {str}:  # Opsgenie details: a string map
            assert all(isinstance(v, str) for v in actual.values()), f"{path}: values must be strings: {actual}"
    elif isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: expected an object, got {type(actual).__name__}"
        for key, value in expected.items():
            assert key in actual, f"{path}.{key} is missing (captured shape has it)"
            assert_shape_covers(value, actual[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), f"{path}: expected an array, got {type(actual).__name__}"
        if expected and actual and all(isinstance(e, dict) and "type" in e for e in expected):
            # Heterogeneous arrays (Block Kit blocks): each captured element must be matched by one of
            # ours of the same "type" (a section may also come with "text" instead of "fields").
            for wanted in expected:
                candidates = [a for a in actual if isinstance(a, dict) and a.get("type") == wanted["type"]]
                assert candidates, f"{path}: no element of type {wanted['type']!r}"
                errors = []
                for candidate in candidates:
                    try:
                        assert_shape_covers(wanted, candidate, f"{path}[type={wanted['type']}]")
                        break
                    except AssertionError as exc:
                        errors.append(str(exc))
                else:
                    raise AssertionError("; ".join(errors))
        elif expected and actual:
            for item in actual:
                assert_shape_covers(expected[0], item, f"{path}[]")
    elif isinstance(expected, bool):
        assert isinstance(actual, bool), f"{path}: expected a boolean"
    elif isinstance(expected, int | float):
        assert isinstance(actual, int | float) and not isinstance(actual, bool), f"{path}: expected a number"
    elif isinstance(expected, str):
        assert isinstance(actual, str), f"{path}: expected a string, got {actual!r}"


# -- TLS and SMTP --------------------------------------------------------------------------------------


@dataclass
class Pki:
    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A throw-away CA and a server certificate for 127.0.0.1/localhost."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder = tmp_path_factory.mktemp("pki")
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "smart-rollback test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pki = Pki(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    pki.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    pki.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pki.key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return pki


@dataclass
class SmtpServer:
    host: str
    port: int
    username: str
    password: str
    messages: list[Any]
    auth_attempts: list[str]
    cond: threading.Condition

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Any]:
        with self.cond:
            if not self.cond.wait_for(lambda: len(self.messages) >= count, timeout):
                raise AssertionError(f"expected {count} mail(s), got {len(self.messages)}")
            return list(self.messages)


@pytest.fixture
def smtp_server(pki: Pki) -> Iterator[SmtpServer]:
    """aiosmtpd on loopback requiring STARTTLS, then AUTH (PLAIN/LOGIN) as rollback/s3cret-pass."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    messages: list[Any] = []
    attempts: list[str] = []
    cond = threading.Condition()

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            with cond:
                messages.append(envelope)
                cond.notify_all()
            return "250 Message accepted for delivery"

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        attempts.append(auth_data.login.decode())
        ok = auth_data.login == b"rollback" and auth_data.password == b"s3cret-pass"
        return AuthResult(success=ok, handled=False)

    port = free_port()
    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=port,
        tls_context=pki.server_context(),
        require_starttls=True,
        auth_required=True,
        authenticator=authenticator,
    )
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", port, "rollback", "s3cret-pass", messages, attempts, cond)
    finally:
        controller.stop()
