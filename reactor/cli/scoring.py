"""Scoring commands: ``judge`` (offline canary judgement), ``detect`` (anomaly scores), ``exporter``."""

from __future__ import annotations

import json
import sys

import click

from reactor.cli import main

_FILE = click.Path(dir_okay=False)


@main.command()
@click.option("--baseline", "baseline_path", required=True, type=click.Path(dir_okay=False), help="Baseline CSV.")
@click.option("--canary", "canary_path", required=True, type=click.Path(dir_okay=False), help="Canary CSV.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="Judge config (YAML/JSON): direction, kind, criticality, groups, thresholds. See docs/judge.md.",
)
def judge(baseline_path: str, canary_path: str, config_path: str | None) -> None:
    """Judge a canary against its baseline and print the verdict as JSON.

    Each CSV has a header and one column per metric (a ``timestamp`` column is ignored). Exit status: 0
    pass, 1 fail, 2 bad input, 3 marginal, 4 insufficient data.
    """
    from pydantic import ValidationError

    from exporters.errors import ConfigError
    from exporters.judge import Judge, JudgeConfig
    from exporters.tables import format_validation_error, load_document, read_columns

    try:
        config = JudgeConfig.model_validate(load_document(config_path)) if config_path else JudgeConfig()
        baseline = read_columns(baseline_path)
        canary = read_columns(canary_path)
    except ValidationError as exc:
        raise click.UsageError(format_validation_error(config_path or "config", exc)) from None
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    if not baseline and not canary:
        raise click.UsageError("no metric columns in either CSV")
    result = Judge(config).judge(baseline, canary)
    click.echo(json.dumps(result.as_dict(), indent=2, allow_nan=False))
    sys.exit({"pass": 0, "fail": 1, "marginal": 3, "insufficient": 4}[result.verdict])


@main.command()
@click.option("--input", "input_path", required=True, type=click.Path(dir_okay=False), help="timestamp,value CSV.")
@click.option("--output", "output_path", required=True, type=click.Path(dir_okay=False), help="Where to write.")
@click.option("--detector", "detector_name", default=None, help="Detector name (default: the tuned ensemble).")
def detect(input_path: str, output_path: str, detector_name: str | None) -> None:
    """Score a series causally; write ``timestamp,value,anomaly_score`` with scores in [0, 1]."""
    import csv

    from exporters.detectors import DEFAULT_DETECTOR, get_detector
    from exporters.errors import ConfigError
    from exporters.tables import read_series

    try:
        detector = get_detector(detector_name or DEFAULT_DETECTOR)
        stamps, values = read_series(input_path)
    except (ValueError, ConfigError) as exc:
        raise click.UsageError(str(exc)) from None
    scores = detector.score(values)
    with open(output_path, "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["timestamp", "value", "anomaly_score"])
        for stamp, value, score in zip(stamps, values, scores):
            writer.writerow([stamp, repr(float(value)) if value == value else "", f"{float(score):.6f}"])


@main.command()
@click.option(
    "--config",
    "-c",
    "config_path",
    required=True,
    type=_FILE,
    envvar="SMART_ROLLBACK_EXPORTER_CONFIG",
    show_envvar=True,
    help="Exporter config (docs/exporter.md).",
)
@click.option("--shard", "shard_text", default="0/1", show_default=True, help="This replica's shard i/N.")
@click.option("--once", is_flag=True, help="Run one cycle, print the reports as JSON and exit.")
@click.option("--listen", default=None, help="Override the config's listen address (host:port).")
def exporter(config_path: str, shard_text: str, once: bool, listen: str | None) -> None:
    """Run the health-score exporter: score targets every interval, serve /metrics, push to sinks."""
    import logging
    import os
    import signal
    import threading

    from exporters.config import load_config
    from exporters.errors import ConfigError, ExporterError
    from exporters.service import Exporter, parse_shard
    from exporters.sinks import DatadogSeriesSink, HealthCollector, PushgatewayPusher

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(config_path)
        shard = parse_shard(shard_text)
        service = Exporter(config, shard=shard)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    service.registry.register(HealthCollector(service.snapshot))
    sinks: list = []
    if config.sinks.pushgateway:
        pg = config.sinks.pushgateway
        sinks.append(PushgatewayPusher(pg.url, job=pg.job, grouping=pg.grouping, timeout=pg.timeout, registry=None))
    if config.sinks.datadog:
        dd = config.sinks.datadog
        sinks.append(
            DatadogSeriesSink(api_key=os.environ[dd.api_key_env], host=dd.host, prefix=dd.prefix, tags=dd.tags)
        )

    def publish(reports: list) -> None:
        current = service.snapshot()
        for sink in sinks:
            try:
                sink.publish(current)
            except ExporterError as exc:
                logging.getLogger("smart_rollback.exporter").error("%s", exc)

    if once:
        reports = service.run_cycle()
        publish(reports)
        click.echo(json.dumps([_report_json(r) for r in reports], indent=2, allow_nan=False))
        return
    from prometheus_client import start_http_server

    host, _, port = (listen or config.listen).rpartition(":")
    server, thread = start_http_server(int(port), addr=host, registry=service.registry)
    click.echo(f"smart-rollback exporter: /metrics on http://{host}:{port}/metrics, shard {shard_text}", err=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        service.run_forever(stop, on_cycle=publish)
    finally:
        server.shutdown()
        thread.join(timeout=5)


def _report_json(r: object) -> dict:
    from exporters.service import TargetReport

    assert isinstance(r, TargetReport)
    return {
        "target": r.target.key,
        "labels": r.labels,
        "score": r.score,
        "verdict": r.verdict,
        "data_sufficient": r.sufficient,
        "anomaly": r.anomaly,
        "contributions": r.contributions,
        "predicted_breach_seconds": {k: v.seconds for k, v in r.breaches.items()},
        "explanations": [e.__dict__ for e in r.explanations],
        "error": r.error,
        "judgement": r.judgement.as_dict() if r.judgement else None,
    }
