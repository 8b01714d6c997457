"""The exporter service: every ``interval`` it scores each target of its shard and hands the reports to sinks.

One cycle: for every target, query each metric over the lookback; split the samples into canary and
baseline (by the newest value of a label, or before/after a deploy time); judge all targets in one
vectorised batch; add streaming-detector and Isolation-Forest anomaly scores and breach forecasts;
then publish. A source failure marks that target's data insufficient for the cycle (never a failure),
counts ``smart_rollback_exporter_source_errors_total`` and leaves other targets untouched.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from exporters.config import ExporterConfig, SourceConfig, TargetConfig, load_target_file
from exporters.detectors import DETECTORS
from exporters.detectors.forecast import BreachForecast, predict_breach
from exporters.detectors.isolation import IsolationScorer
from exporters.errors import ConfigError, ExporterError, SourceError
from exporters.judge import Judge, JudgeConfig, Judgement
from exporters.sources import Series, Source, load_source

log = logging.getLogger(__name__)

#: How many recent points a streaming detector sees per metric each cycle.
DETECTOR_POINTS = 400


def shard_of(key: str, shards: int) -> int:
    """Stable shard of a target key: the same on every replica and restart (not Python's salted hash)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % shards


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/N"`` -> (i, N) with 0 <= i < N."""
    try:
        i_text, n_text = text.split("/")
        i, n = int(i_text), int(n_text)
    except ValueError:
        raise ConfigError(f"--shard {text!r} must be i/N, e.g. 0/3") from None
    if n < 1 or not 0 <= i < n:
        raise ConfigError(f"--shard {text!r}: need N >= 1 and 0 <= i < N")
    return i, n


def build_source(name: str, cfg: SourceConfig, environ: Mapping[str, str]) -> Source:
    cls = load_source(cfg.type)
    if cfg.type == "prometheus":
        return cls(cfg.url, timeout=cfg.timeout, headers=cfg.headers or None)
    if cfg.type == "datadog":
        return cls(
            api_key=environ[cfg.api_key_env or ""],
            app_key=environ[cfg.app_key_env or ""],
            host=cfg.host or "https://api.datadoghq.com",
            timeout=cfg.timeout,
        )
    if cfg.type == "newrelic":
        kwargs: dict[str, Any] = {"url": cfg.url} if cfg.url else {}
        return cls(api_key=environ[cfg.api_key_env or ""], account_id=cfg.account_id, timeout=cfg.timeout, **kwargs)
    return cls(
        cfg.url,
        time_field=cfg.time_field,
        api_key=environ.get(cfg.api_key_env) if cfg.api_key_env else None,
        timeout=cfg.timeout,
    )


@dataclass
class MetricExplanation:
    name: str
    classification: str
    critical: bool
    reason: str
    mean_ratio: float | None
    #: Unix time of the first cycle in the current run of non-pass classifications.
    since: float | None


@dataclass
class TargetReport:
    """Everything the sinks publish about one target after one cycle."""

    target: TargetConfig
    revision: str
    judgement: Judgement | None
    sufficient: bool
    anomaly: dict[str, float] = field(default_factory=dict)
    contributions: dict[str, float] = field(default_factory=dict)
    breaches: dict[str, BreachForecast] = field(default_factory=dict)
    explanations: list[MetricExplanation] = field(default_factory=list)
    scored_at: float = 0.0
    error: str | None = None
    #: While a canary shares traffic with its baseline: the baseline revision(s) serving, and their latest
    #: window judged against the window before it. A progressive rollback reads it between steps: the side
    #: taking the traffic back must stay as healthy as it was (reactor ``health.query``).
    stable_revision: str = ""
    stable_judgement: Judgement | None = None

    @property
    def labels(self) -> dict[str, str]:
        t = self.target
        out = {
            "platform": t.platform,
            "cluster": t.cluster,
            "namespace": t.namespace,
            "target": t.name,
            "component": t.component or t.name,
            "revision": self.revision,
        }
        if t.release:
            out["release"] = t.release
        return out

    @property
    def score(self) -> float | None:
        return None if self.judgement is None else self.judgement.score

    @property
    def stable_score(self) -> float | None:
        """The live baseline's score, when at least one unmuted metric was judged on its data. Its error count
        often cannot decide (rare errors) while its latency can; a score over no data at all would read 100."""
        j = self.stable_judgement
        if j is None or not any(
            m.classification in ("pass", "high", "low") and not m.muted for m in j.metrics.values()
        ):
            return None
        return float(j.score)

    @property
    def verdict(self) -> str:
        return "insufficient" if self.judgement is None else self.judgement.verdict


@dataclass
class _Prepared:
    target: TargetConfig
    revision: str
    baseline: dict[str, np.ndarray]
    canary: dict[str, np.ndarray]
    history: dict[str, np.ndarray]
    matrix_train: np.ndarray | None
    matrix_now: np.ndarray | None
    error: str | None = None
    #: The live baseline's revision(s) and its (previous window, latest window), when it serves with the canary.
    stable: tuple[str, dict[str, np.ndarray], dict[str, np.ndarray]] | None = None


class Exporter:
    """Runs cycles and keeps the latest report per target for the sinks.

    Collaborators are injectable: ``sources`` (name -> Source; built from the config by default), ``clock``
    (Unix time), ``environ`` (where ``*_env`` secrets are read, at construction only).
    """

    def __init__(
        self,
        config: ExporterConfig,
        *,
        shard: tuple[int, int] = (0, 1),
        sources: Mapping[str, Source] | None = None,
        clock: Callable[[], float] = time.time,
        environ: Mapping[str, str] | None = None,
        registry: Any = None,
    ) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.config = config
        self.shard = shard
        self.clock = clock
        env = os.environ if environ is None else environ
        self.sources: dict[str, Source] = (
            dict(sources)
            if sources is not None
            else {name: build_source(name, cfg, env) for name, cfg in config.sources.items()}
        )
        self.reports: dict[str, TargetReport] = {}
        self._since: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self._judges: dict[tuple[str, ...], tuple[Judge, Judge]] = {}
        self.isolation = IsolationScorer()
        #: Seconds before a target's Isolation Forest is refitted (also refitted on a new canary revision).
        self.isolation_refit = 600.0
        self._models: dict[str, tuple[str, float, Any]] = {}
        self.registry = registry if registry is not None else CollectorRegistry()
        self.cycle_duration = Histogram(
            "smart_rollback_exporter_cycle_duration_seconds",
            "Duration of one scoring cycle.",
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=self.registry,
        )
        self.source_errors = Counter(
            "smart_rollback_exporter_source_errors",
            "Failed source queries by source and kind (query: fix the query; unavailable: retried).",
            ["source", "kind"],
            registry=self.registry,
        )
        self.targets_scored = Gauge(
            "smart_rollback_exporter_targets_scored",
            "Targets scored in the last cycle.",
            registry=self.registry,
        )
        self.targets_assigned = Gauge(
            "smart_rollback_exporter_targets_assigned",
            "Targets of the configuration assigned to this shard.",
            registry=self.registry,
        )
        self.last_success = Gauge(
            "smart_rollback_exporter_last_success_timestamp_seconds",
            "Unix time of the last cycle that completed.",
            registry=self.registry,
        )
        self.shard_info = Gauge(
            "smart_rollback_exporter_shard",
            "This replica's shard (value 1).",
            ["shard", "shards"],
            registry=self.registry,
        )
        self.shard_info.labels(str(shard[0]), str(shard[1])).set(1)

    # ---- targets ----------------------------------------------------------------------------------
    def targets(self) -> list[TargetConfig]:
        """This shard's targets: the config's plus those of ``target_files`` (re-read every cycle)."""
        targets = list(self.config.targets)
        for path in self.config.target_files:
            try:
                targets.extend(load_target_file(path, self.config.sources))
            except ConfigError as exc:
                log.error("skipping target file: %s", exc)
        i, n = self.shard
        return [t for t in targets if shard_of(t.key + "/" + (t.component or t.name), n) == i]

    # ---- one cycle ----------------------------------------------------------------------------------
    def run_cycle(self) -> list[TargetReport]:
        started = time.perf_counter()
        now = self.clock()
        targets = self.targets()
        self.targets_assigned.set(len(targets))
        prepared = [self._prepare(t, now) for t in targets]
        reports = self._score(prepared, now)
        with self._lock:
            for r in reports:
                self.reports[_report_key(r.target)] = r
            live = {_report_key(t) for t in targets}
            for key in list(self.reports):
                if key not in live and now - self.reports[key].scored_at > self.config.stale_after:
                    del self.reports[key]
                elif key not in live and now - self.reports[key].scored_at > 0:
                    # Removed from the config or from this shard: keep until stale_after, then drop.
                    pass
        self.targets_scored.set(sum(1 for r in reports if r.error is None))
        self.cycle_duration.observe(time.perf_counter() - started)
        self.last_success.set(now)
        return reports

    def snapshot(self) -> list[TargetReport]:
        with self._lock:
            return list(self.reports.values())

    def _fetch(
        self, target: TargetConfig, name: str, query: str, source_name: str, start: float, end: float
    ) -> list[Series]:
        source = self.sources[source_name]
        try:
            return source.query_range(query, start, end, target.step)
        except SourceError as exc:
            kind = "query" if type(exc).__name__ == "QueryError" else "unavailable"
            self.source_errors.labels(source_name, kind).inc()
            raise

    def _prepare(self, target: TargetConfig, now: float) -> _Prepared:
        queries = target.metric_queries()
        split = target.split
        try:
            if split.mode == "time":
                return self._prepare_time(target, queries, now)
            fetched: dict[str, list[Series]] = {}
            for name, query, src, _ in queries:
                fetched[name] = self._fetch(target, name, query, src or target.source, now - target.lookback, now)
        except SourceError as exc:
            log.warning("target %s: %s", target.key, exc)
            return _Prepared(target, "", {}, {}, {}, None, None, error=str(exc))
        label = split.label
        started: dict[str, float] = {}
        last_seen: dict[str, float] = {}
        for series_list in fetched.values():
            for s in series_list:
                ok = ~np.isnan(s.values)
                if not ok.any():
                    continue
                value = s.labels.get(label, "")
                t0, t1 = _latest_run(s.timestamps[ok], 2 * target.step), float(s.timestamps[ok][-1])
                started[value] = min(started.get(value, t0), t0)
                last_seen[value] = max(last_seen.get(value, t1), t1)
        if not started:
            return _Prepared(target, "", {}, {}, {}, None, None)
        for name, fresh in target.counters.items():
            fetched[name] = _increases(fetched[name], label, now - target.lookback, 2 * target.step, fresh=fresh)
        # The canary is the value that most recently started serving and still serves: once a rollback stops a
        # revision's series, the revision that serves again is judged against it (so the score recovers) instead
        # of an empty canary window; and a revision deployed again after a rollback is the canary again, even
        # though it also served earlier in the lookback ("started" is the start of its latest unbroken run).
        newest = max(last_seen.values())
        serving = [v for v in started if last_seen[v] >= newest - 2 * target.step] or list(started)
        canary_value = max(serving, key=lambda v: (started[v], v))
        others = [v for v in started if v != canary_value]
        window = target.window
        baseline: dict[str, np.ndarray] = {}
        canary: dict[str, np.ndarray] = {}
        history: dict[str, np.ndarray] = {}
        stable_before: dict[str, np.ndarray] = {}
        stable_now: dict[str, np.ndarray] = {}
        for name, series_list in fetched.items():
            by_value: dict[str, list[Series]] = {}
            for s in series_list:
                by_value.setdefault(s.labels.get(label, ""), []).append(s)
            can_ts, can_vs = _merge(by_value.get(canary_value, []))
            if others:
                live = [v for v in others if v in serving]
                base_ts, base_vs = _merge([s for v in live or others for s in by_value.get(v, [])])
                canary[name] = can_vs[can_ts > now - window]
                concurrent = base_ts > now - window
                if live and concurrent.any():
                    baseline[name] = base_vs[concurrent]
                    stable_now[name] = baseline[name]
                    stable_before[name] = base_vs[(base_ts > now - 2 * window) & (base_ts <= now - window)]
                elif len(base_ts):
                    # The baseline stopped serving (a full rollout, or a rollback restored the canary): its whole
                    # last window, even while part of it still lies in the canary's window. Cutting it there
                    # would leave a short-lived revision (one rolled back within seconds) a point or two.
                    baseline[name] = base_vs[base_ts > base_ts[-1] - window]
                else:
                    baseline[name] = np.array([])
            else:
                # No change within the lookback: the last window against the one before it.
                canary[name] = can_vs[can_ts > now - window]
                baseline[name] = can_vs[(can_ts > now - 2 * window) & (can_ts <= now - window)]
            history[name] = _merge(series_list, reduce="mean")[1]
        train, current = _matrix(fetched, label, canary_value, others, now, window)
        live = sorted(v for v in others if v in serving)
        stable = (",".join(live), stable_before, stable_now) if live and stable_now else None
        return _Prepared(target, canary_value, baseline, canary, history, train, current, stable=stable)

    def _prepare_time(
        self, target: TargetConfig, queries: list[tuple[str, str, str | None, dict[str, Any]]], now: float
    ) -> _Prepared:
        source = self.sources[target.source]
        query = target.split.deploy_time_query or ""
        instant = getattr(source, "query", None)
        if instant is None:
            raise SourceError(
                f"source {target.source!r} has no instant query for deploy_time_query", source=target.source
            )
        try:
            found = instant(query, now)
        except SourceError:
            self.source_errors.labels(target.source, "query").inc()
            raise
        values = [float(s.values[-1]) for s in found if len(s.values) and np.isfinite(s.values[-1])]
        if not values:
            return _Prepared(target, "", {}, {}, {}, None, None, error=f"deploy_time_query {query!r} returned nothing")
        deployed = max(values)
        window = target.window
        start = max(deployed - window, now - target.lookback - window)
        baseline: dict[str, np.ndarray] = {}
        canary: dict[str, np.ndarray] = {}
        history: dict[str, np.ndarray] = {}
        counters = target.counters
        for name, q, src, _ in queries:
            series_list = self._fetch(target, name, q, src or target.source, start, now)
            if name in counters:
                series_list = _increases(series_list, None, start, 2 * target.step, fresh=counters[name])
            ts, vs = _merge(series_list, reduce="mean")
            canary[name] = vs[(ts >= deployed) & (ts > now - window)]
            baseline[name] = vs[(ts < deployed) & (ts >= deployed - window)]
            history[name] = vs
        return _Prepared(target, "", baseline, canary, history, None, None)

    def _judge_for(self, targets: list[TargetConfig]) -> tuple[Judge, Judge]:
        """The cycle's Judges, metric names namespaced per target (built once per target set): the canaries', and
        the live baselines' (against their own previous window) without the spread test: a baseline whose share
        of the traffic fell while the canary took some is noisier for that alone, not unhealthy."""
        key = tuple(sorted(_report_key(t) for t in targets))
        cached = self._judges.get(key)
        if cached is not None:
            return cached
        metrics: dict[str, dict[str, Any]] = {}
        for t in targets:
            for name, _, _, judge in t.metric_queries():
                settings = dict(judge)
                if settings.get("denominator"):
                    settings["denominator"] = f"{_report_key(t)}|{settings['denominator']}"
                metrics[f"{_report_key(t)}|{name}"] = settings
        base: JudgeConfig = self.config.judge
        cfg = JudgeConfig.model_validate({**base.model_dump(by_alias=True, exclude={"metrics"}), "metrics": metrics})
        steady = cfg.model_copy(update={"spread_ratio": math.inf})
        self._judges = {key: (Judge(cfg), Judge(steady))}
        return self._judges[key]

    def _score(self, prepared: list[_Prepared], now: float) -> list[TargetReport]:
        ok = [p for p in prepared if p.error is None]
        judge, stable_judge = self._judge_for([p.target for p in prepared])
        pairs = []
        for p in ok:
            k = _report_key(p.target)
            pairs.append(({f"{k}|{n}": v for n, v in p.baseline.items()}, {f"{k}|{n}": v for n, v in p.canary.items()}))
        judgements = judge.judge_many(pairs) if pairs else []
        by_id = {id(p): j for p, j in zip(ok, judgements, strict=True)}
        # The stable side against its own previous window.
        steady = [p for p in ok if p.stable is not None]
        stable_pairs = []
        for p in steady:
            assert p.stable is not None
            k = _report_key(p.target)
            stable_pairs.append(
                ({f"{k}|{n}": v for n, v in p.stable[1].items()}, {f"{k}|{n}": v for n, v in p.stable[2].items()})
            )
        stable_by_id = {
            id(p): _strip_namespace(j, _report_key(p.target))
            for p, j in zip(steady, stable_judge.judge_many(stable_pairs) if stable_pairs else [], strict=True)
        }
        reports = []
        detect: list[tuple[TargetReport, _Prepared]] = []
        for p in prepared:
            j = by_id.get(id(p))
            if j is not None:
                j = _strip_namespace(j, _report_key(p.target))
            report = TargetReport(
                target=p.target,
                revision=p.revision,
                judgement=j,
                sufficient=j is not None and j.sufficient,
                scored_at=now,
                error=p.error,
                stable_revision=p.stable[0] if p.stable is not None else "",
                stable_judgement=stable_by_id.get(id(p)),
            )
            if j is not None:
                self._explain(report, j, now)
                detect.append((report, p))
            reports.append(report)
        self._detect_all(detect, now)
        return reports

    def _explain(self, report: TargetReport, j: Judgement, now: float) -> None:
        key = _report_key(report.target)
        for name, m in j.metrics.items():
            bad = m.classification != "pass"
            skey = (key, name)
            if bad:
                self._since.setdefault(skey, now)
            else:
                self._since.pop(skey, None)
            if bad:
                report.explanations.append(
                    MetricExplanation(
                        name=name,
                        classification=m.classification,
                        critical=m.critical,
                        reason=m.reason,
                        mean_ratio=m.details.get("mean_ratio"),
                        since=self._since.get(skey),
                    )
                )

    def _detect_all(self, pairs: list[tuple[TargetReport, _Prepared]], now: float) -> None:
        """Streaming detectors batched over every metric of every target; Isolation Forest per target."""
        names = {d for _, p in pairs for d in p.target.detectors if d != "isolation_forest"}
        for det_name in sorted(names):
            detector = DETECTORS[det_name]()
            jobs = [
                (report, values[-DETECTOR_POINTS:])
                for report, p in pairs
                if det_name in p.target.detectors
                for values in p.history.values()
                if len(values)
            ]
            for report, p in pairs:
                if det_name in p.target.detectors:
                    report.anomaly[det_name] = 0.0
            many = getattr(detector, "score_many", None)
            scored = many([v for _, v in jobs]) if many else [detector.score(v) for _, v in jobs]
            for (report, _), scores in zip(jobs, scored, strict=True):
                report.anomaly[det_name] = max(report.anomaly[det_name], float(scores[-1]))
        for report, p in pairs:
            if "isolation_forest" in p.target.detectors:
                self._isolation(report, p, now)
            self._forecast(report, p)

    def _isolation(self, report: TargetReport, p: _Prepared, now: float) -> None:
        if p.matrix_train is None or p.matrix_now is None or len(p.matrix_now) == 0:
            return
        key = _report_key(p.target)
        cached = self._models.get(key)
        if cached is None or cached[0] != p.revision or now - cached[1] > self.isolation_refit:
            model = self.isolation.fit(p.matrix_train)
            if model is None:
                return
            cached = self._models[key] = (p.revision, now, model)
        res = self.isolation.explain(cached[2], list(p.history), p.matrix_now)
        report.anomaly["isolation_forest"] = res.score
        report.contributions = res.contributions

    def _forecast(self, report: TargetReport, p: _Prepared) -> None:
        for spec in p.target.metrics:
            if spec.breach_threshold is None:
                continue
            name = spec.name or spec.template or ""
            series = p.history.get(name)
            if series is None or len(series) < 10:
                continue
            try:
                fc = predict_breach(series, p.target.step, spec.breach_threshold)
            except (ValueError, np.linalg.LinAlgError) as exc:
                log.warning("target %s metric %s: forecast failed: %s", p.target.key, name, exc)
                continue
            if fc is not None:
                report.breaches[name] = fc

    # ---- the loop -----------------------------------------------------------------------------------
    def run_forever(self, stop: threading.Event, on_cycle: Callable[[list[TargetReport]], None] | None = None) -> None:
        """Cycle every ``interval`` seconds until ``stop`` is set; a failing cycle does not stop the loop."""
        while not stop.is_set():
            started = time.monotonic()
            try:
                reports = self.run_cycle()
                if on_cycle is not None:
                    on_cycle(reports)
            except ExporterError as exc:
                log.error("cycle failed: %s", exc)
            stop.wait(max(0.0, self.config.interval - (time.monotonic() - started)))


def _report_key(t: TargetConfig) -> str:
    return f"{t.key}/{t.component or t.name}"


def _strip_namespace(j: Judgement, key: str) -> Judgement:
    prefix = f"{key}|"
    metrics = {}
    for name, m in j.metrics.items():
        short = name.removeprefix(prefix)
        m.name = short
        metrics[short] = m
    groups = {
        g: {**info, "metrics": {n.removeprefix(prefix): c for n, c in info["metrics"].items()}}
        for g, info in j.groups.items()
    }
    reason = j.reason.replace(prefix, "")
    return Judgement(j.score, j.verdict, metrics, groups, reason)


def _latest_run(timestamps: np.ndarray, gap: float) -> float:
    """Start of the last run of ``timestamps`` with no hole longer than ``gap``: when this series last began."""
    holes = np.flatnonzero(np.diff(timestamps) > gap)
    return float(timestamps[holes[-1] + 1]) if len(holes) else float(timestamps[0])


def _increases(series: list[Series], label: str | None, start: float, gap: float, *, fresh: bool) -> list[Series]:
    """Per-step increases of raw counters, summed per ``label`` value (all together when None).

    ``sum by (label) (increase(...))`` computed here rather than in PromQL, because here the first sample of
    a series that appeared inside the range is known. Within a series a drop is a restart from zero (the new
    value is the increase, as ``rate()`` assumes), which also covers a series that went away and came back
    from a new process. With ``fresh``, a series first seen more than ``gap`` after ``start`` started at
    zero then (a new revision's pod), so its first value is its first increase; otherwise, as for a series
    that was already there when the range began, the first value only anchors the next.
    """
    parts: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}
    for s in series:
        ok = ~np.isnan(s.values)
        ts, vs = s.timestamps[ok], s.values[ok]
        if not len(ts):
            continue
        steps = np.diff(vs)
        inc, at = np.where(steps < 0, vs[1:], steps), ts[1:]
        if fresh and ts[0] > start + gap:
            inc, at = np.concatenate([vs[:1], inc]), ts
        times, values = parts.setdefault("" if label is None else s.labels.get(label, ""), ([], []))
        times.append(at)
        values.append(inc)
    out = []
    for value, (times, values) in parts.items():
        at, where = np.unique(np.concatenate(times), return_inverse=True)
        labels = {} if label is None else {label: value}
        out.append(Series(labels, at, np.bincount(where, weights=np.concatenate(values), minlength=len(at))))
    return out


def _merge(series: list[Series], reduce: str = "concat") -> tuple[np.ndarray, np.ndarray]:
    """Samples of several series ordered by time; ``mean`` averages samples sharing a timestamp."""
    if not series:
        return np.array([]), np.array([])
    ts = np.concatenate([s.timestamps for s in series])
    vs = np.concatenate([s.values for s in series])
    keep = ~np.isnan(vs)
    ts, vs = ts[keep], vs[keep]
    order = np.argsort(ts, kind="stable")
    ts, vs = ts[order], vs[order]
    if reduce == "mean" and len(ts):
        uniq, inv = np.unique(ts, return_inverse=True)
        sums = np.bincount(inv, weights=vs)
        counts = np.bincount(inv)
        return uniq, sums / counts
    return ts, vs


def _matrix(
    fetched: Mapping[str, list[Series]], label: str, canary: str, others: list[str], now: float, window: float
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Rows = timestamps, columns = metrics: baseline rows to train on, the canary's newest row to score."""
    names = list(fetched)
    if not names:
        return None, None

    def table(values: list[str]) -> tuple[np.ndarray, np.ndarray]:
        cols = []
        stamps: set[float] = set()
        merged = []
        for n in names:
            ts, vs = _merge([s for s in fetched[n] if s.labels.get(label, "") in values], reduce="mean")
            merged.append(dict(zip(ts.tolist(), vs.tolist(), strict=True)))
            stamps.update(ts.tolist())
        order = sorted(stamps)
        for m in merged:
            cols.append([m.get(t, np.nan) for t in order])
        return np.array(order), (np.array(cols).T if order else np.empty((0, len(names))))

    if others:
        train = table(others)[1]
        can_ts, can = table([canary])
        current = can[can_ts > now - window]
    else:
        ts, all_rows = table([canary])
        train = all_rows[ts <= now - window]
        current = all_rows[ts > now - window]
    if len(current) == 0:
        return None, None
    return train, current
