"""Metric sources: one module per backend behind :class:`~exporters.sources.base.Source`, one registry.

Sources whose client library is heavy are imported on first use through the registry's import path.
"""

from __future__ import annotations

import importlib

from exporters.sources.base import Series, Source

#: The one source registry: type name -> "module:Class". Config validation derives its allowed names here.
SOURCES: dict[str, str] = {
    "prometheus": "exporters.sources.prometheus:PrometheusSource",
    "datadog": "exporters.sources.datadog:DatadogSource",
    "newrelic": "exporters.sources.newrelic:NewRelicSource",
    "elasticsearch": "exporters.sources.elasticsearch:ElasticsearchSource",
}


def load_source(kind: str) -> type:
    """The source class registered as ``kind``; ValueError lists the known kinds."""
    try:
        module_name, _, attr = SOURCES[kind].partition(":")
    except KeyError:
        raise ValueError(f"unknown source type {kind!r}; known: {', '.join(sorted(SOURCES))}") from None
    return getattr(importlib.import_module(module_name), attr)


__all__ = ["SOURCES", "Series", "Source", "load_source"]
