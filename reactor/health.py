"""Reads a target's health score from Prometheus for strategies that check the stable side between steps."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import requests

from reactor.settings import HealthSettings
from strategies import Health, TargetRef

log = logging.getLogger(__name__)


class HealthProbe:
    """``Health`` of a target from a PromQL query; UNKNOWN when unconfigured or Prometheus cannot answer."""

    def __init__(self, settings: HealthSettings, *, session: requests.Session | None = None) -> None:
        self.settings = settings
        self.session = session or requests.Session()

    def __call__(self, target: TargetRef) -> Health:
        if not self.settings.prometheus_url:
            return Health.UNKNOWN
        query = self.settings.query.format(
            target=target.name, namespace=target.namespace, cluster=target.cluster, platform=target.platform
        )
        try:
            response = self.session.get(
                self.settings.prometheus_url.rstrip("/") + "/api/v1/query",
                params={"query": query},
                timeout=self.settings.timeout_seconds,
            )
            response.raise_for_status()
            result = response.json()["data"]["result"]
        except (requests.RequestException, ValueError, KeyError) as exc:
            log.warning("health query for %s failed: %s", target, exc)
            return Health.UNKNOWN
        if not result:
            return Health.UNKNOWN
        value = float(result[0]["value"][1])
        if math.isnan(value):
            return Health.UNKNOWN
        if value < self.settings.critical_below:
            return Health.CRITICAL
        return Health.HEALTHY if value >= self.settings.healthy_above else Health.UNHEALTHY


HealthFn = Callable[[TargetRef], Health]
