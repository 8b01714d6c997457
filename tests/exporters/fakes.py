"""A Source of our own protocol that serves generated series: the boundary fake for exporter unit tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import numpy as np

from exporters.errors import QueryError
from exporters.sources import Series


class GeneratedSource:
    """``series[query](start, end, step) -> list[Series]``; unknown queries raise QueryError."""

    name: ClassVar[str] = "generated"

    def __init__(self, series: dict[str, Callable[[float, float, float], list[Series]]]) -> None:
        self.series = series
        self.calls: list[tuple[str, float, float, float]] = []
        self.instant: dict[str, float] = {}

    def query_range(self, query: str, start: float, end: float, step: float) -> list[Series]:
        self.calls.append((query, start, end, step))
        if query not in self.series:
            raise QueryError(f"unknown query {query!r}", source=self.name, query=query)
        return self.series[query](start, end, step)

    def query(self, query: str, at: float | None = None) -> list[Series]:
        if query not in self.instant:
            raise QueryError(f"unknown query {query!r}", source=self.name, query=query)
        return [Series({}, np.array([at or 0.0]), np.array([self.instant[query]]))]


def revisions(
    plan: dict[str, tuple[float, float, float]], *, noise: float = 0.01, seed: int = 0
) -> Callable[[float, float, float], list[Series]]:
    """Series per revision: ``{revision: (first_seen, last_seen, level)}`` sampled every step with noise."""

    def make(start: float, end: float, step: float) -> list[Series]:
        rng = np.random.default_rng(seed)
        out = []
        for rev, (first, last, level) in plan.items():
            ts = np.arange(max(start, first), min(end, last) + 1e-9, step)
            if len(ts):
                out.append(Series({"revision": rev}, ts, level + rng.normal(0, noise, len(ts))))
        return out

    return make
