"""Anomaly detectors: one small protocol, one registry.

A :class:`StreamingDetector` scores a univariate series *causally*: the score of row ``i`` uses rows
``<= i`` only, so scoring a prefix gives the prefix of the scores (``smart-rollback detect`` and the
exporter rely on it). Scores are in [0, 1]. The multivariate Isolation Forest and the forecaster live in
:mod:`exporters.detectors.isolation` and :mod:`exporters.detectors.forecast`.
"""

from __future__ import annotations

from typing import ClassVar, Protocol, runtime_checkable

import numpy as np

from exporters.detectors.ensemble import NoveltyEnsemble
from exporters.detectors.zscore import RollingZScore


@runtime_checkable
class StreamingDetector(Protocol):
    name: ClassVar[str]

    def score(self, values: np.ndarray) -> np.ndarray:
        """Causal anomaly scores in [0, 1], one per value (NaN values score 0)."""
        ...


#: The one detector registry: name -> class (constructed without arguments gives the tuned defaults).
DETECTORS: dict[str, type[StreamingDetector]] = {cls.name: cls for cls in (NoveltyEnsemble, RollingZScore)}
DEFAULT_DETECTOR = NoveltyEnsemble.name


def get_detector(name: str) -> StreamingDetector:
    """A detector instance by registry name; ValueError lists the known names."""
    try:
        return DETECTORS[name]()
    except KeyError:
        raise ValueError(f"unknown detector {name!r}; known: {', '.join(sorted(DETECTORS))}") from None


__all__ = [
    "DEFAULT_DETECTOR",
    "DETECTORS",
    "NoveltyEnsemble",
    "RollingZScore",
    "StreamingDetector",
    "get_detector",
]
