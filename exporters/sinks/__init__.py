"""Sinks publish the exporter's reports: one small protocol, one registry.

``prometheus`` is the custom collector served on ``/metrics`` (and pushed to a Pushgateway when
configured); ``datadog`` submits the same values as Datadog v2 series with tags.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Protocol, runtime_checkable

from exporters.sinks.datadog import DatadogSeriesSink
from exporters.sinks.prometheus import HealthCollector, PushgatewayPusher


@runtime_checkable
class Sink(Protocol):
    name: ClassVar[str]

    def publish(self, reports: Sequence[object]) -> None:
        """Publish one cycle's reports; raise ExporterError subclasses on failure."""
        ...


#: The one sink registry (the collector is always on; these run after each cycle).
SINKS: dict[str, type[Sink]] = {cls.name: cls for cls in (PushgatewayPusher, DatadogSeriesSink)}

__all__ = ["SINKS", "DatadogSeriesSink", "HealthCollector", "PushgatewayPusher", "Sink"]
