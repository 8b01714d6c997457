"""Scoring commands: ``judge`` (offline canary judgement), ``detect`` (anomaly scores), ``exporter``."""

from __future__ import annotations

import json
import sys

import click

from reactor.cli import main


@main.command()
@click.option(
    "--baseline", "baseline_path", required=True, type=click.Path(dir_okay=False), help="Baseline CSV."
)
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
@click.option(
    "--input", "input_path", required=True, type=click.Path(dir_okay=False), help="timestamp,value CSV."
)
@click.option(
    "--output", "output_path", required=True, type=click.Path(dir_okay=False), help="Where to write."
)
@click.option(
    "--detector", "detector_name", default=None, help="Detector name (default: the tuned ensemble)."
)
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
