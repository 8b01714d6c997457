"""Per-channel rate limits: a token bucket that says how long to wait instead of blocking."""

from __future__ import annotations

import threading


class TokenBucket:
    """``per_minute`` tokens a minute, at most ``burst`` saved up. Thread-safe; time is passed in.

    :meth:`reserve` either takes a token (returns 0) or returns the seconds until one is due, without
    taking it: the dispatcher reschedules the delivery instead of holding a thread.
    """

    def __init__(self, per_minute: float, burst: int, *, max_wait: float = 300.0, now: float = 0.0) -> None:
        if per_minute <= 0 or burst < 1:
            raise ValueError("per_minute must be > 0 and burst >= 1")
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.max_wait = max_wait
        self._tokens = float(burst)
        self._stamp = now
        self._lock = threading.Lock()

    def reserve(self, now: float) -> float:
        with self._lock:
            if now > self._stamp:
                self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return 0.0
            return (1.0 - self._tokens) / self.rate
