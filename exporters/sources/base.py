"""The metric-source protocol and the value it returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Series:
    """One labelled time series: ``timestamps`` in Unix seconds, ``values`` as floats (NaN for gaps)."""

    labels: Mapping[str, str]
    timestamps: np.ndarray
    values: np.ndarray
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.timestamps) != len(self.values):
            raise ValueError(
                f"series {dict(self.labels)}: {len(self.timestamps)} timestamps, {len(self.values)} values"
            )


@runtime_checkable
class Source(Protocol):
    """A metric backend. ``query`` is in the backend's own language (PromQL, Datadog query, NRQL, ES DSL).

    Implementations raise :class:`~exporters.errors.QueryError` when the backend rejects the query (the
    message quotes it) and :class:`~exporters.errors.SourceUnavailable` on timeouts and server errors.
    """

    name: ClassVar[str]

    def query_range(self, query: str, start: float, end: float, step: float) -> list[Series]:
        """Samples from ``start`` to ``end`` (Unix s) every ``step`` s; one Series per label set."""
        ...
