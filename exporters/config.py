"""The exporter's configuration: sources, sinks, targets and how each target splits canary from baseline.

Validated once at start-up (:func:`load_config`); every error names the field and says how to fix it.
Secrets are never written in the file: ``api_key_env: DD_API_KEY`` names an environment variable that
is read when the exporter starts (not at import).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from exporters.catalogue import CATALOGUE, render_template
from exporters.detectors import DETECTORS
from exporters.errors import ConfigError
from exporters.judge import JudgeConfig, MetricConfig
from exporters.sources import SOURCES
from exporters.tables import format_validation_error, load_document

_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class SourceConfig(_Strict):
    """One metric backend. ``type`` is a key of :data:`exporters.sources.SOURCES`."""

    type: str
    url: str | None = None
    host: str | None = None
    timeout: float = Field(default=10.0, gt=0)
    headers: dict[str, str] = Field(default_factory=dict)
    api_key_env: str | None = None
    app_key_env: str | None = None
    account_id: int | None = None
    time_field: str = "@timestamp"

    @field_validator("type")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in SOURCES:
            raise ValueError(f"unknown source type {value!r}; known: {', '.join(sorted(SOURCES))}")
        return value

    @model_validator(mode="after")
    def _needs(self) -> SourceConfig:
        if self.type in ("prometheus", "elasticsearch") and not self.url:
            raise ValueError(f"a {self.type} source needs 'url', e.g. http://127.0.0.1:9090")
        if self.type == "datadog" and not (self.api_key_env and self.app_key_env):
            raise ValueError("a datadog source needs api_key_env and app_key_env (names of environment variables)")
        if self.type == "newrelic" and not (self.api_key_env and self.account_id):
            raise ValueError("a newrelic source needs api_key_env and account_id")
        return self


class Split(_Strict):
    """How a target's samples divide into canary and baseline; re-evaluated every cycle.

    ``label``: the series carry a label (``revision``); the value that appeared most recently within
    ``lookback`` is the canary, all other values the baseline. When only one value is present (a full
    rollout), the samples since it appeared are the canary and the older ones (the previous value's) the
    baseline, so a new revision is judged against the one it replaced without any restart.
    ``time``: the queries return one series; ``deploy_time_query`` (instant, on the same source) gives the
    deploy's Unix time; the ``window`` after it is the canary and the ``window`` before it the baseline.
    """

    mode: Literal["label", "time"] = "label"
    label: str = "revision"
    deploy_time_query: str | None = None

    @model_validator(mode="after")
    def _time_needs_query(self) -> Split:
        if self.mode == "time" and not self.deploy_time_query:
            raise ValueError("split mode 'time' needs deploy_time_query (an instant query returning a Unix time)")
        return self


class MetricSpec(_Strict):
    """A metric of a target: a catalogue ``template`` (with ``params``) or an explicit ``query``."""

    name: str | None = None
    template: str | None = None
    params: dict[str, str] = Field(default_factory=dict)
    query: str | None = None
    source: str | None = None
    #: Judge settings for this metric (group, direction, kind, critical, effectSize...).
    judge: dict[str, Any] = Field(default_factory=dict)
    #: When set, forecast the time until the metric crosses this value (predictive failure analysis).
    breach_threshold: float | None = None
    #: The query returns raw cumulative counters (``http_requests_total{...}``: no ``rate()``, no ``sum``);
    #: the exporter takes each series' increase per step and sums them per split label value. A series that
    #: appears inside the lookback belongs to a new process whose counter started at zero, so its first value
    #: already is its events since then; ``rate()`` throws that value away and needs a second scrape. The
    #: first value's span (process start to first scrape) is unknown, so it counts only where the span
    #: cancels out: a counter judged per a counter ``denominator`` (errors per request), and that denominator.
    counter: bool = False

    @model_validator(mode="after")
    def _one_of(self) -> MetricSpec:
        if bool(self.template) == bool(self.query):
            raise ValueError("give exactly one of 'template' (a catalogue name) or 'query'")
        if self.template and self.template not in CATALOGUE:
            close = [n for n in CATALOGUE if self.template.split("_")[0] in n][:5]
            hint = f"; similar: {', '.join(close)}" if close else ""
            raise ValueError(f"unknown template {self.template!r}{hint}; see docs/metrics-catalogue.md")
        if self.query and not self.name:
            raise ValueError("a metric with an explicit query needs a 'name'")
        MetricConfig.model_validate(self.judge)
        return self


class TargetConfig(_Strict):
    platform: str = "kubernetes"
    cluster: str
    namespace: str
    name: str
    component: str | None = None
    release: str | None = None
    source: str
    split: Split = Field(default_factory=Split)
    #: Seconds of samples per side.
    window: float = Field(default=600.0, gt=0)
    #: Seconds looked back to find when the canary appeared (label mode) — at least ``window``.
    lookback: float = Field(default=3600.0, gt=0)
    step: float = Field(default=15.0, gt=0)
    metrics: list[MetricSpec] = Field(min_length=1)
    #: Streaming detectors run on each metric's recent samples; ``isolation_forest`` (opt-in: it costs a
    #: forest fit per target every 10 minutes) on the metric vector with per-metric contributions.
    detectors: list[str] = Field(default_factory=lambda: ["ensemble"])

    @property
    def key(self) -> str:
        return f"{self.platform}/{self.cluster}/{self.namespace}/{self.name}"

    @field_validator("detectors")
    @classmethod
    def _detectors(cls, value: list[str]) -> list[str]:
        known = {*DETECTORS, "isolation_forest"}
        for name in value:
            if name not in known:
                raise ValueError(f"unknown detector {name!r}; known: {', '.join(sorted(known))}")
        return value

    @model_validator(mode="after")
    def _names(self) -> TargetConfig:
        names = [m.name or m.template or "" for m in self.metrics]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"target {self.key}: metric names must be unique; repeated: {sorted(dupes)}")
        if self.lookback < self.window:
            raise ValueError(f"target {self.key}: lookback ({self.lookback}) must be >= window ({self.window})")
        counters = {m.name or m.template or "": m.counter for m in self.metrics}
        for name, denominator in self._denominators():
            if denominator in counters and counters[denominator] != counters[name]:
                raise ValueError(
                    f"target {self.key}: metric {name!r} and its denominator {denominator!r} must both be counters "
                    "(counter: true, per-step increases) or both not (rates per second): mixed, the ratio is off "
                    "by the step"
                )
        return self

    @cached_property
    def counters(self) -> dict[str, bool]:
        """Counter metrics (``counter: true``) -> whether a fresh series' first value counts (see MetricSpec).
        Read every cycle; the configuration does not change while it runs."""
        names = {m.name or m.template or "" for m in self.metrics if m.counter}
        fresh: set[str] = set()
        for name, denominator in self._denominators():
            if name in names and denominator in names:
                fresh.update((name, denominator))
        return {name: name in fresh for name in names}

    def _denominators(self) -> list[tuple[str, str]]:
        """``(metric, its judge denominator)`` for every metric that has one (template defaults included)."""
        out = []
        for m in self.metrics:
            judge = {**(CATALOGUE[m.template].judge if m.template else {}), **m.judge}
            if judge.get("denominator"):
                out.append((m.name or m.template or "", str(judge["denominator"])))
        return out

    def metric_queries(self) -> list[tuple[str, str, str | None, dict[str, Any]]]:
        """``(name, query, source override, judge settings)`` with templates rendered."""
        out = []
        for m in self.metrics:
            if m.template:
                tpl = CATALOGUE[m.template]
                params = {"namespace": self.namespace, "name": self.name, **m.params}
                query = render_template(m.template, params, split_label=self.split.label, mode=self.split.mode)
                judge = {**tpl.judge, **m.judge}
                out.append((m.name or m.template, query, m.source, judge))
            else:
                assert m.query and m.name
                out.append((m.name, m.query, m.source, m.judge))
        return out


class PushgatewaySink(_Strict):
    url: str
    job: str = "smart-rollback"
    grouping: dict[str, str] = Field(default_factory=dict)
    timeout: float = Field(default=10.0, gt=0)


class DatadogSink(_Strict):
    host: str = "https://api.datadoghq.com"
    api_key_env: str = "DD_API_KEY"
    #: Metric name prefix: smart_rollback_health_score -> smart_rollback.health_score.
    prefix: str = "smart_rollback"
    tags: list[str] = Field(default_factory=list)


class Sinks(_Strict):
    prometheus: bool = True
    pushgateway: PushgatewaySink | None = None
    datadog: DatadogSink | None = None


class ExporterConfig(_Strict):
    #: Seconds between scoring cycles.
    interval: float = Field(default=30.0, gt=0)
    #: Where ``/metrics`` is served.
    listen: str = "127.0.0.1:9109"
    #: A target missing from the config (or from this shard) for this many seconds loses its series.
    stale_after: float = Field(default=300.0, gt=0)
    sources: dict[str, SourceConfig]
    sinks: Sinks = Field(default_factory=Sinks)
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    targets: list[TargetConfig] = Field(default_factory=list)
    #: Extra files of targets (``targets:`` lists), re-read every cycle so targets change without restart.
    target_files: list[str] = Field(default_factory=list)

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"listen {value!r} must be host:port, e.g. 127.0.0.1:9109")
        return value

    @model_validator(mode="after")
    def _refs(self) -> ExporterConfig:
        for t in self.targets:
            check_target_sources(t, self.sources)
        keys = [t.key + "/" + (t.component or t.name) for t in self.targets]
        dupes = {k for k in keys if keys.count(k) > 1}
        if dupes:
            raise ValueError(f"targets repeated: {sorted(dupes)}")
        return self


def check_target_sources(target: TargetConfig, sources: Mapping[str, SourceConfig]) -> None:
    refs = {target.source, *(m.source for m in target.metrics if m.source)}
    for ref in refs:
        if ref not in sources:
            raise ValueError(f"target {target.key}: source {ref!r} is not defined; defined: {sorted(sources)}")


def load_config(path: str | Path, *, environ: Mapping[str, str] | None = None) -> ExporterConfig:
    """Read and validate the exporter config; raise :class:`ConfigError` with every problem listed."""
    doc = load_document(path)
    try:
        config = ExporterConfig.model_validate(doc)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(path, exc)) from None
    env = os.environ if environ is None else environ
    for name, src in config.sources.items():
        for var in (src.api_key_env, src.app_key_env):
            if var and var not in env:
                raise ConfigError(f"{path}: sources.{name}: environment variable {var} is not set")
    if config.sinks.datadog and config.sinks.datadog.api_key_env not in env:
        raise ConfigError(f"{path}: sinks.datadog: environment variable {config.sinks.datadog.api_key_env} is not set")
    return config


def load_target_file(path: str | Path, sources: Mapping[str, SourceConfig]) -> list[TargetConfig]:
    """Targets from an extra file (``targets: [...]``); raises ConfigError naming the file and field."""
    doc = load_document(path)
    try:
        targets = [TargetConfig.model_validate(t) for t in doc.get("targets", [])]
        for t in targets:
            check_target_sources(t, sources)
    except (ValidationError, ValueError) as exc:
        if isinstance(exc, ValidationError):
            raise ConfigError(format_validation_error(path, exc)) from None
        raise ConfigError(f"{path}: {exc}") from None
    return targets


def check_label(name: str) -> str:
    if not _LABEL.match(name):
        raise ConfigError(f"{name!r} is not a valid Prometheus label name")
    return name
