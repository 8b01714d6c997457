"""Asynchronous delivery: a bounded queue, worker threads, retries with backoff, per-delivery records.

Why this shape:

* **The caller never waits.** :meth:`Dispatcher.submit` only appends to a bounded in-memory queue and
  returns; when the queue is full the delivery is dropped (and recorded as ``dropped``), because a
  rollback must not slow down for a chat message.
* **One lane per (channel, decision).** Deliveries of one decision to one channel run strictly in order:
  the Slack thread's first message must exist before replies, a PagerDuty resolve must not overtake its
  trigger, a Grafana region must be created before it is closed. Different lanes run in parallel.
* **Retries are scheduled, not slept.** A failed attempt puts its lane back on a timer heap; worker
  threads only ever wait on the heap's next due time, so a channel in backoff holds no thread, and a slow
  channel (up to its request timeout) holds one worker at most per in-flight delivery.
* **Records go through their own thread.** The ``record`` callback (the reactor writes it to the audit
  trail) may be slow; it runs on one recorder thread, in order, and its failures are logged, never raised.
"""

from __future__ import annotations

import enum
import heapq
import itertools
import logging
import os
import queue
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from reactor.notify.channels.base import Channel, SendContext
from reactor.notify.errors import PermanentDeliveryError, TemporaryDeliveryError
from reactor.notify.events import Event
from reactor.notify.ratelimit import TokenBucket
from reactor.notify.redact import Redactor

LOG = logging.getLogger("reactor.notify")


class DeliveryStatus(enum.StrEnum):
    #: The channel accepted the message.
    DELIVERED = "delivered"
    #: An attempt failed temporarily; another is scheduled in ``retry_in`` seconds.
    RETRYING = "retrying"
    #: Given up: permanent error, or attempts exhausted.
    FAILED = "failed"
    #: Never attempted: queue full, or the reactor shut down first.
    DROPPED = "dropped"
    #: Held back by the channel's rate limit for longer than its ``max_wait_seconds``.
    RATE_LIMITED = "rate_limited"


TERMINAL = frozenset(
    {DeliveryStatus.DELIVERED, DeliveryStatus.FAILED, DeliveryStatus.DROPPED, DeliveryStatus.RATE_LIMITED}
)


@dataclass(frozen=True)
class Delivery:
    """One status report of one delivery (one event to one channel). Safe to store: no secrets."""

    id: str
    channel: str
    channel_type: str
    event_id: str
    decision_id: str
    kind: str
    target: str
    status: DeliveryStatus
    attempts: int
    queued_at: datetime
    updated_at: datetime
    error: str | None = None
    #: HTTP status or SMTP reply code of the last answer, if any.
    status_code: int | None = None
    #: Seconds until the next attempt (``retrying`` only).
    retry_in: float | None = None
    #: The id the remote side gave the message (Slack ts, Twilio sid, Opsgenie request id...).
    remote_id: str | None = None
    detail: str = ""

    @property
    def final(self) -> bool:
        return self.status in TERMINAL

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "channel": self.channel,
            "channel_type": self.channel_type,
            "event_id": self.event_id,
            "decision_id": self.decision_id,
            "kind": self.kind,
            "target": self.target,
            "status": self.status.value,
            "attempts": self.attempts,
            "queued_at": self.queued_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "error": self.error,
            "status_code": self.status_code,
            "retry_in": self.retry_in,
            "remote_id": self.remote_id,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter; ``Retry-After`` from the server wins over the computed delay."""

    max_attempts: int = 6
    initial: float = 1.0
    factor: float = 2.0
    max_delay: float = 300.0
    #: +/- this fraction of the delay, so many reactors do not retry in lockstep.
    jitter: float = 0.2
    #: A server asking for a longer wait than this gets the delivery given up instead.
    max_retry_after: float = 900.0

    def delay(self, attempt: int, retry_after: float | None, rand: Callable[[], float] = random.random) -> float:
        if retry_after is not None:
            return max(0.0, retry_after)
        base = min(self.max_delay, self.initial * self.factor ** max(0, attempt - 1))
        spread = base * self.jitter * (2.0 * rand() - 1.0)
        return max(0.0, min(self.max_delay, base + spread))


@dataclass(eq=False)
class Job:
    """One delivery in flight: the event, the channel, and what survives between attempts."""

    id: str
    channel: Channel
    event: Event
    ctx: SendContext
    queued_at: datetime
    limiter: TokenBucket | None = None
    attempts: int = 0
    admitted: bool = False
    deferred_since: float | None = None
    key: tuple[str, str] = ("", "")
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.key = (self.channel.name, self.event.decision_id)


Record = Callable[[Delivery], None]


class Dispatcher:
    """Runs deliveries on its own threads. See the module docstring for the guarantees."""

    def __init__(
        self,
        *,
        record: Record,
        workers: int = 2,
        queue_size: int = 1000,
        policy: RetryPolicy | None = None,
        redactor: Redactor | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
        record_queue_size: int = 10_000,
    ) -> None:
        if workers < 1 or queue_size < 1:
            raise ValueError("workers and queue_size must be >= 1")
        self._record = record
        self._workers_wanted = workers
        self._queue_size = queue_size
        self.policy = policy or RetryPolicy()
        self._redact = redactor or Redactor()
        self._clock = clock
        self._wall = wall
        self._rand = rand
        self._record_queue_size = record_queue_size
        self._seq = itertools.count()
        self._pid: int | None = None
        self._reset()

    def _reset(self) -> None:
        self._cond = threading.Condition()
        self._lanes: dict[tuple[str, str], deque[Job]] = {}
        self._timers: list[tuple[float, int, tuple[str, str]]] = []
        self._pending = 0
        self._closing = False
        self._stopped = False
        self._threads: list[threading.Thread] = []
        self._records: queue.Queue[Delivery | None] = queue.Queue(self._record_queue_size)
        self._recorder: threading.Thread | None = None
        self.dropped_records = 0

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the threads (again, in a forked child: threads do not survive ``fork``)."""
        pid = os.getpid()
        if self._pid == pid:
            return
        if self._pid is not None:
            self._reset()
        self._pid = pid
        self._recorder = threading.Thread(target=self._record_loop, name="notify-recorder", daemon=True)
        self._recorder.start()
        for n in range(self._workers_wanted):
            thread = threading.Thread(target=self._work_loop, name=f"notify-worker-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    @property
    def pending(self) -> int:
        """Deliveries queued, in flight or waiting for a retry."""
        return self._pending

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every submitted delivery reached a final state (and was recorded)."""
        deadline = None if timeout is None else self._clock() + timeout
        with self._cond:
            done = self._cond.wait_for(lambda: self._pending == 0, timeout)
        if not done:
            return False
        remaining = None if deadline is None else max(0.0, deadline - self._clock())
        return self._drain_records(remaining)

    def close(self, timeout: float = 5.0) -> None:
        """Stop taking deliveries, give queued ones ``timeout`` seconds, record the rest as dropped."""
        with self._cond:
            if self._stopped:
                return
            self._closing = True
            self._cond.notify_all()
        if self._pid == os.getpid():
            with self._cond:
                self._cond.wait_for(lambda: self._pending == 0, timeout)
        with self._cond:
            self._stopped = True
            leftovers = [job for lane in self._lanes.values() for job in lane]
            self._lanes.clear()
            self._timers.clear()
            self._pending = 0
            self._cond.notify_all()
        for job in leftovers:
            self._emit(self._report(job, DeliveryStatus.DROPPED, error="reactor shut down before delivery"))
        for thread in self._threads:
            thread.join(timeout=1.0)
        if self._recorder is not None:
            self._drain_records(timeout=2.0)
            self._records.put(None)
            self._recorder.join(timeout=1.0)

    # -- submitting ----------------------------------------------------------------------------------

    def submit(self, job: Job) -> bool:
        """Queue ``job``; ``False`` (and a ``dropped`` record) when the queue is full or closed."""
        self.start()
        with self._cond:
            if self._closing:
                reason = "reactor is shutting down"
            elif self._pending >= self._queue_size:
                reason = f"notification queue full ({self._queue_size} pending); raise delivery.queue_size"
            else:
                lane = self._lanes.get(job.key)
                if lane is None:
                    lane = self._lanes[job.key] = deque()
                    heapq.heappush(self._timers, (self._clock(), next(self._seq), job.key))
                lane.append(job)
                self._pending += 1
                self._cond.notify()
                return True
        LOG.warning("notification to %s dropped: %s", job.channel.name, reason)
        self._emit(self._report(job, DeliveryStatus.DROPPED, error=reason))
        return False

    def attempt_now(self, job: Job) -> Delivery:
        """One synchronous attempt, no retry, no queue: ``smart-rollback notify test`` uses it."""
        job.attempts += 1
        job.ctx.attempt = job.attempts
        return self._attempt(job)[0]

    # -- workers -------------------------------------------------------------------------------------

    def _work_loop(self) -> None:
        while True:
            with self._cond:
                job = None
                while job is None:
                    if self._stopped:
                        return
                    now = self._clock()
                    if self._timers and self._timers[0][0] <= now:
                        _, _, key = heapq.heappop(self._timers)
                        lane = self._lanes.get(key)
                        if lane:
                            job = lane[0]
                    else:
                        self._cond.wait(None if not self._timers else self._timers[0][0] - now)
            try:
                self._process(job)
            except Exception:
                LOG.exception("notification worker failed on delivery %s", job.id)
                self._finish(job, self._report(job, DeliveryStatus.FAILED, error="internal error (see logs)"))

    def _process(self, job: Job) -> None:
        now = self._clock()
        if job.limiter is not None and not job.admitted:
            wait = job.limiter.reserve(now)
            if wait > 0:
                if job.deferred_since is None:
                    job.deferred_since = now
                if now + wait - job.deferred_since > job.limiter.max_wait:
                    error = (
                        f"rate limit of channel {job.channel.name} ({job.limiter.rate * 60:g}/min, burst "
                        f"{job.limiter.burst:g}) would hold this message over {job.limiter.max_wait:g} s"
                    )
                    self._finish(job, self._report(job, DeliveryStatus.RATE_LIMITED, error=error))
                else:
                    self._schedule(job, now + wait)
                return
            job.admitted = True
        job.attempts += 1
        job.ctx.attempt = job.attempts
        report, retry_in = self._attempt(job)
        if retry_in is None:
            self._finish(job, report)
        else:
            self._emit(report)
            self._schedule(job, self._clock() + retry_in)

    def _attempt(self, job: Job) -> tuple[Delivery, float | None]:
        """Run one send; return the report and, if it should be retried, the delay."""
        try:
            sent = job.channel.send(job.event, job.ctx)
        except TemporaryDeliveryError as exc:
            error = self._redact(exc.message)
            if exc.retry_after is not None and exc.retry_after > self.policy.max_retry_after:
                error += f" (asked to retry after {exc.retry_after:g} s, over max_retry_after; giving up)"
                return self._report(job, DeliveryStatus.FAILED, error=error, status_code=exc.status), None
            if job.attempts >= self.policy.max_attempts or self._closing:
                if job.attempts >= self.policy.max_attempts:
                    error += f" (gave up after {job.attempts} attempts)"
                return self._report(job, DeliveryStatus.FAILED, error=error, status_code=exc.status), None
            delay = self.policy.delay(job.attempts, exc.retry_after, self._rand)
            LOG.info(
                "notification to %s failed (attempt %d), retrying in %.1f s: %s",
                job.channel.name,
                job.attempts,
                delay,
                error,
            )
            report = self._report(job, DeliveryStatus.RETRYING, error=error, status_code=exc.status, retry_in=delay)
            return report, delay
        except PermanentDeliveryError as exc:
            error = self._redact(exc.message)
            LOG.warning("notification to %s failed permanently: %s", job.channel.name, error)
            return self._report(job, DeliveryStatus.FAILED, error=error, status_code=exc.status), None
        except Exception as exc:
            LOG.exception("notification channel %s raised unexpectedly", job.channel.name)
            error = self._redact(f"unexpected {type(exc).__name__}: {exc}")
            return self._report(job, DeliveryStatus.FAILED, error=error), None
        return self._report(job, DeliveryStatus.DELIVERED, remote_id=sent.remote_id, detail=sent.detail), None

    def _schedule(self, job: Job, due: float) -> None:
        with self._cond:
            if job.key in self._lanes:
                heapq.heappush(self._timers, (due, next(self._seq), job.key))
                self._cond.notify()

    def _finish(self, job: Job, report: Delivery) -> None:
        self._emit(report)
        with self._cond:
            lane = self._lanes.get(job.key)
            if lane and lane[0] is job:
                lane.popleft()
                self._pending -= 1
                if lane:
                    heapq.heappush(self._timers, (self._clock(), next(self._seq), job.key))
                else:
                    del self._lanes[job.key]
            self._cond.notify_all()

    # -- records -------------------------------------------------------------------------------------

    def _report(self, job: Job, status: DeliveryStatus, **fields: Any) -> Delivery:
        base = job.extra.get("report")
        now = datetime.fromtimestamp(self._wall(), UTC)
        if base is None:
            base = Delivery(
                id=job.id,
                channel=job.channel.name,
                channel_type=job.channel.type,
                event_id=job.event.event_id,
                decision_id=job.event.decision_id,
                kind=job.event.kind.value,
                target=str(job.event.target),
                status=status,
                attempts=job.attempts,
                queued_at=job.queued_at,
                updated_at=now,
            )
            job.extra["report"] = base
        defaults: dict[str, Any] = {
            "error": None,
            "status_code": None,
            "retry_in": None,
            "remote_id": None,
            "detail": "",
        }
        return replace(base, status=status, attempts=job.attempts, updated_at=now, **{**defaults, **fields})

    def _emit(self, report: Delivery) -> None:
        try:
            self._records.put_nowait(report)
        except queue.Full:
            self.dropped_records += 1
            LOG.error(
                "delivery record lost (record callback too slow): %s %s %s",
                report.channel,
                report.decision_id,
                report.status.value,
            )

    def _record_loop(self) -> None:
        while True:
            report = self._records.get()
            try:
                if report is None:
                    return
                try:
                    self._record(report)
                except Exception:
                    LOG.exception("recording delivery %s failed", report.id)
            finally:
                self._records.task_done()

    def _drain_records(self, timeout: float | None) -> bool:
        if self._recorder is None or not self._recorder.is_alive():
            return True
        deadline = None if timeout is None else self._clock() + timeout
        while self._records.unfinished_tasks:
            if deadline is not None and self._clock() >= deadline:
                return False
            time.sleep(0.005)
        return True
