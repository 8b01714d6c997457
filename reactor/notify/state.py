"""What the hub remembers per decision: the Slack thread's ``ts``, the Grafana annotation id.

The default keeps it in memory (bounded), which is enough for one reactor process: a decision's events
are published by the worker that runs it. The reactor may inject a :class:`StateStore` backed by its
durable store so threads survive a restart; two methods are all it takes.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Protocol, runtime_checkable


@runtime_checkable
class StateStore(Protocol):
    def get(self, key: str) -> str | None: ...

    def set(self, key: str, value: str) -> None: ...


class MemoryStateStore:
    """A thread-safe LRU map; the oldest decisions are forgotten past ``max_entries``."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self._data: OrderedDict[str, str] = OrderedDict()
        self._max = max_entries
        self._lock = threading.Lock()

    def get(self, key: str) -> str | None:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def set(self, key: str, value: str) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self._max:
                self._data.popitem(last=False)


class DecisionState:
    """The state of one (channel, decision) pair: a namespaced view of the store."""

    def __init__(self, store: StateStore, channel: str, decision_id: str) -> None:
        self._store = store
        self._prefix = f"{channel}/{decision_id}/"

    def get(self, key: str) -> str | None:
        return self._store.get(self._prefix + key)

    def set(self, key: str, value: str) -> None:
        self._store.set(self._prefix + key, value)
