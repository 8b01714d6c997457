"""An in-memory :class:`~strategies.base.ExecutionContext` for the CLI, benchmarks and tests."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from strategies.base import Health, PlanStep, TargetRef


class MemoryContext:
    """Progress in a dict; stable health (HEALTHY) and canary health (UNKNOWN) from callables; real sleep."""

    def __init__(
        self,
        health: Callable[[TargetRef], Health] | None = None,
        stop: Callable[[], str | None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        canary: Callable[[TargetRef], Health] | None = None,
    ) -> None:
        self.results: dict[str, Mapping[str, Any]] = {}
        self.events: list[tuple[str, str]] = []
        self._health = health or (lambda _target: Health.HEALTHY)
        self._canary = canary or (lambda _target: Health.UNKNOWN)
        self._stop = stop or (lambda: None)
        self._sleep = sleep

    def finished(self, step: PlanStep) -> Mapping[str, Any] | None:
        return self.results.get(step.id)

    def started(self, step: PlanStep) -> None:
        self.events.append(("started", step.id))

    def completed(self, step: PlanStep, result: Mapping[str, Any]) -> None:
        self.results[step.id] = result
        self.events.append(("completed", step.id))

    def stable_health(self, target: TargetRef) -> Health:
        return self._health(target)

    def canary_health(self, target: TargetRef) -> Health:
        return self._canary(target)

    def stop_requested(self) -> str | None:
        return self._stop()

    def sleep(self, seconds: float) -> None:
        self._sleep(seconds)
