"""The notification hub: what the reactor calls. Settings in, ``publish(event)`` out.

Integration (the reactor's worker and app)::

    hub = NotificationHub(settings.notifications, record=audit.record_delivery)  # at start-up
    hub.publish(event)         # from the worker, at each step of a decision; returns at once
    hub.close()                # at shutdown: queued deliveries get delivery.shutdown_grace_seconds

``publish`` never raises and never blocks on a channel: routing happens in the caller's thread (pure and
cheap); rendering and sending happen on the dispatcher's threads. Each delivery's status reaches
``record`` (on one recorder thread, in order): ``retrying`` after a failed attempt, then one final
``delivered`` / ``failed`` / ``dropped`` / ``rate_limited``.

Building the hub reads every secret (environment variables, files) and fails with one
:class:`~reactor.notify.errors.SecretError` listing all that are missing, so a broken configuration
stops the reactor at start-up, not at the first incident. Threads start on the first ``publish`` (after
gunicorn forked its workers).
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

import requests
from requests.adapters import HTTPAdapter

from reactor import __version__
from reactor.notify.channels import CHANNELS, ApprovalLinks, Channel, ChannelBase, ChannelDeps, SendContext
from reactor.notify.config import NotificationSettings, rate_limit_of
from reactor.notify.dispatcher import Delivery, DeliveryStatus, Dispatcher, Job, Record, RetryPolicy
from reactor.notify.errors import NotificationConfigError, SecretError
from reactor.notify.events import Event
from reactor.notify.grafana import GrafanaAnnotator
from reactor.notify.ratelimit import TokenBucket
from reactor.notify.redact import Redactor, guard_logs, unguard_logs
from reactor.notify.routing import Router
from reactor.notify.signing import ActionSigner
from reactor.notify.state import DecisionState, MemoryStateStore, StateStore

LOG = logging.getLogger("reactor.notify")
#: The Grafana annotator's lane name; not a valid channel name, so it cannot collide with one.
GRAFANA = "@grafana"
_SEEN_EVENTS = 10_000


def log_record(delivery: Delivery) -> None:
    """The default ``record``: a log line per status (the reactor passes its audit-trail writer)."""
    level = logging.INFO if delivery.status in (DeliveryStatus.DELIVERED, DeliveryStatus.RETRYING) else logging.WARNING
    LOG.log(
        level,
        "delivery %s of %s to %s: %s after %d attempt(s)%s",
        delivery.id,
        delivery.event_id,
        delivery.channel,
        delivery.status.value,
        delivery.attempts,
        f": {delivery.error}" if delivery.error else "",
    )


def default_session(pool_size: int = 10) -> requests.Session:
    session = requests.Session()
    session.headers["User-Agent"] = f"smart-rollback/{__version__} (+notifications)"
    adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


class NotificationHub:
    def __init__(
        self,
        settings: NotificationSettings,
        *,
        record: Record | None = None,
        http: requests.Session | None = None,
        state: StateStore | None = None,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
        registry: Mapping[str, type[ChannelBase]] = CHANNELS,
    ) -> None:
        self.settings = settings
        self.redactor = Redactor()
        self._clock = clock
        self._state = state or MemoryStateStore()
        delivery = settings.delivery
        self._own_session = http is None
        self._http = http or default_session(pool_size=max(10, delivery.workers * 2))
        deps = ChannelDeps(
            http=self._http,
            timeout=(delivery.connect_timeout_seconds, delivery.timeout_seconds),
            redactor=self.redactor,
            environ=environ,
            clock=clock,
        )
        problems: list[str] = []
        self.channels: dict[str, Channel] = {}
        self._limiters: dict[str, TokenBucket] = {}
        now = monotonic()
        for name, channel_settings in settings.channels.items():
            cls = registry.get(channel_settings.type)
            if cls is None:
                problems.append(f"channels.{name}: unknown channel type {channel_settings.type!r}")
                continue
            try:
                self.channels[name] = cls(name, channel_settings, deps)
            except SecretError as exc:
                problems.append(f"channels.{name}.{exc}")
                continue
            limit = rate_limit_of(channel_settings, cls.default_rate_limit)
            if limit is not None:
                self._limiters[name] = TokenBucket(
                    limit.per_minute, limit.burst, max_wait=limit.max_wait_seconds, now=now
                )
        self.grafana: GrafanaAnnotator | None = None
        if settings.grafana is not None:
            try:
                self.grafana = GrafanaAnnotator(GRAFANA, settings.grafana, deps)
            except SecretError as exc:
                problems.append(f"grafana.{exc}")
        chatops = settings.chatops
        self.signer: ActionSigner | None = None
        self.slack_interactive = False
        try:
            if chatops.link_secret is not None:
                secret = chatops.link_secret.resolve(environ)
                previous = chatops.resolve_previous(environ)
                for value in (secret, *previous):
                    self.redactor.add(value)
                self.signer = ActionSigner(secret, previous_secrets=previous, clock=clock)
            if chatops.slack_signing_secret is not None:
                self.redactor.add(chatops.slack_signing_secret.resolve(environ))
                self.slack_interactive = True
        except SecretError as exc:
            problems.append(f"chatops: {exc}")
        if problems:
            raise SecretError(
                "notifications cannot start:\n" + "\n".join(f"notifications.{problem}" for problem in problems)
            )
        self.router = Router(settings.routes, self.channels)
        self.dispatcher = Dispatcher(
            record=record or log_record,
            workers=delivery.workers,
            queue_size=delivery.queue_size,
            policy=RetryPolicy(
                max_attempts=delivery.max_attempts,
                initial=delivery.backoff_initial_seconds,
                max_delay=delivery.backoff_max_seconds,
                jitter=delivery.backoff_jitter,
                max_retry_after=delivery.max_retry_after_seconds,
            ),
            redactor=self.redactor,
            clock=monotonic,
            wall=clock,
            rand=rand,
        )
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._seen_lock = threading.Lock()
        self._closed = False
        guard_logs(self.redactor)

    # -- the reactor's side --------------------------------------------------------------------------

    def publish(self, event: Event) -> list[str]:
        """Queue ``event`` for every channel its routes name; return the delivery ids. Never raises."""
        try:
            if not self.settings.enabled or self._closed:
                return []
            with self._seen_lock:
                if event.event_id in self._seen:
                    LOG.debug("event %s already published; not sending it again", event.event_id)
                    return []
                self._seen[event.event_id] = None
                while len(self._seen) > _SEEN_EVENTS:
                    self._seen.popitem(last=False)
            recipients = self.recipients(event)
            ids = []
            for channel in recipients:
                job = self._job(channel, event)
                if self.dispatcher.submit(job):
                    ids.append(job.id)
            if recipients and not ids:
                # Nothing was queued (queue full): let a later publish of the same event try again.
                with self._seen_lock:
                    self._seen.pop(event.event_id, None)
            return ids
        except Exception:
            LOG.exception("could not publish the notification for decision %s", getattr(event, "decision_id", "?"))
            return []

    def recipients(self, event: Event) -> list[Channel]:
        """The channels (and the Grafana annotator) that ``event`` goes to."""
        chosen: list[Channel] = [
            self.channels[name] for name in self.router.channels_for(event) if self.channels[name].accepts(event.kind)
        ]
        if self.grafana is not None and self.grafana.matches(event):
            chosen.append(self.grafana)
        return chosen

    def send_now(self, name: str, event: Event) -> Delivery:
        """One synchronous attempt to one channel (``grafana`` for the annotator), bypassing routes."""
        channel: Channel | None = self.grafana if name in ("grafana", GRAFANA) else self.channels.get(name)
        if channel is None:
            known = ", ".join([*sorted(self.channels), *(["grafana"] if self.grafana else [])]) or "none"
            raise NotificationConfigError(f"no channel named {name!r} (configured: {known})")
        return self.dispatcher.attempt_now(self._job(channel, event))

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued delivery is final and recorded (tests, ``notify test``, shutdown)."""
        return self.dispatcher.flush(timeout)

    def close(self, timeout: float | None = None) -> None:
        """Stop: queued deliveries get ``timeout`` (default ``delivery.shutdown_grace_seconds``)."""
        if self._closed:
            return
        self._closed = True
        grace = self.settings.delivery.shutdown_grace_seconds if timeout is None else timeout
        self.dispatcher.close(grace)
        unguard_logs(self.redactor)
        if self._own_session:
            self._http.close()

    def __enter__(self) -> NotificationHub:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- ChatOps links ---------------------------------------------------------------------------------

    def approval_links(self, event: Event, source: str) -> ApprovalLinks | None:
        """Signed approve/reject URLs for a held decision, or ``None`` without ``chatops.link_secret``."""
        chatops = self.settings.chatops
        if self.signer is None or not chatops.public_url:
            return None
        expires = self._clock() + chatops.link_ttl_seconds
        base = f"{chatops.public_url.rstrip('/')}{chatops.url_prefix.rstrip('/')}/action/"
        return ApprovalLinks(
            approve=base + self.signer.sign_action(event.decision_id, "approve", expires, source=source),
            reject=base + self.signer.sign_action(event.decision_id, "reject", expires, source=source),
            expires_at=expires,
        )

    # -- internals ------------------------------------------------------------------------------------

    def _job(self, channel: Channel, event: Event) -> Job:
        delivery_id = uuid.uuid4().hex
        ctx = SendContext(
            delivery_id=delivery_id,
            attempt=0,
            state=DecisionState(self._state, channel.name, event.decision_id),
            approval_links=lambda source: self.approval_links(event, source),
            slack_interactive=self.slack_interactive,
        )
        return Job(
            id=delivery_id,
            channel=channel,
            event=event,
            ctx=ctx,
            queued_at=datetime.fromtimestamp(self._clock(), UTC),
            limiter=self._limiters.get(channel.name),
        )
