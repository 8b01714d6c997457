"""Group commit for webhook intake.

Each request must wait until its alerts are durable before it may answer 202, and a commit (an fsync) is
the expensive part of that. One writer thread per process takes every request waiting at that moment and
commits them in a single transaction, so under load many requests share one fsync while an idle reactor
still commits a lone request at once. A full queue or a slow database makes the request fail with
:class:`~reactor.store.StoreUnavailable`, which the HTTP layer turns into 503 so Alertmanager retries.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from reactor.store import IntakeCounts, Store, StoreUnavailable
from webhooks import Notification

log = logging.getLogger(__name__)


class Overloaded(StoreUnavailable):
    """More requests are waiting for the writer than ``intake.queue_max`` allows."""


class _Slot:
    __slots__ = ("done", "error", "note", "result")

    def __init__(self, note: Notification) -> None:
        self.note = note
        self.done = threading.Event()
        self.result: IntakeCounts | None = None
        self.error: BaseException | None = None


class IntakeWriter:
    """Commits notifications in batches; :meth:`submit` blocks until the caller's batch committed."""

    def __init__(
        self,
        store: Store,
        *,
        batch_max: int = 512,
        queue_max: int = 2048,
        commit_timeout: float = 5.0,
        on_commit: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        self._batch_max = batch_max
        self._timeout = commit_timeout
        self._on_commit = on_commit
        self._queue: queue.Queue[_Slot | None] = queue.Queue(maxsize=queue_max)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="smart-rollback-intake", daemon=True)
                self._thread.start()

    def stop(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(10)

    def submit(self, note: Notification) -> IntakeCounts:
        """Store ``note``; raise :class:`StoreUnavailable` (or :class:`Overloaded`) if it could not be."""
        if not note.alerts:
            return IntakeCounts(truncated=note.truncated_alerts)
        self.start()
        slot = _Slot(note)
        try:
            self._queue.put_nowait(slot)
        except queue.Full:
            raise Overloaded("too many requests are waiting for the database; retry shortly") from None
        if not slot.done.wait(self._timeout):
            raise StoreUnavailable(f"the database did not commit within {self._timeout:.1f}s; retry shortly")
        if slot.error is not None:
            raise slot.error
        assert slot.result is not None
        return slot.result

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            try:
                # Lock first, then collect: whatever queued while we waited for the lock joins this commit.
                with self._store.exclusive():
                    stop = self._drain(batch)
                    self._commit(batch)
            except Exception as exc:  # the lock itself failed (disk gone): fail these requests, keep serving
                log.exception("intake: could not take the write lock")
                for slot in batch:
                    if not slot.done.is_set():
                        slot.error = StoreUnavailable(f"the database cannot take the write: {exc}")
                        slot.done.set()
                stop = False
            if stop:
                return

    def _drain(self, batch: list[_Slot]) -> bool:
        """Move queued requests into ``batch`` (up to ``batch_max``); True if a stop was queued."""
        while len(batch) < self._batch_max:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return False
            if item is None:
                return True
            batch.append(item)
        return False

    def _commit(self, batch: list[_Slot]) -> None:
        try:
            results = self._store.ingest([slot.note for slot in batch])
        except StoreUnavailable as exc:
            log.warning("intake: %d request(s) not stored: %s", len(batch), exc)
            for slot in batch:
                slot.error = exc
                slot.done.set()
            return
        except Exception as exc:  # a bug: fail these requests (500) rather than the writer thread
            log.exception("intake: unexpected error storing %d request(s)", len(batch))
            for slot in batch:
                slot.error = exc
                slot.done.set()
            return
        for slot, result in zip(batch, results, strict=True):
            slot.result = result
            slot.done.set()
        try:
            self._on_commit()
        except Exception:
            log.exception("intake: on_commit hook failed")
