"""Commands that run or inspect the reactor: serve, run, check-config, db, history, explain, rollback,
kill-switch."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from reactor.cli import main

#: set when serve created the multiprocess directory itself, so it removes it on exit.
_OWNED_METRICS_DIR = "SMART_ROLLBACK_OWNED_METRICS_DIR"
CONFIG_HELP = "YAML settings file (also SMART_ROLLBACK_CONFIG); see docs/configuration.md"


def _load(config: str | None, overrides: dict[str, Any], *, serving: bool = True) -> Any:
    from reactor.settings import ConfigError, load_settings

    if not serving:
        overrides = {"auth.insecure": True, **overrides}
    try:
        return load_settings(config, overrides=overrides)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _store(config: str | None, db: str | None) -> Any:
    from reactor.store import Store, StoreUnavailable

    settings = _load(config, {"database.url": db}, serving=False)
    try:
        return Store.connect(settings.database.url, upgrade=False)
    except StoreUnavailable as exc:
        raise click.ClickException(str(exc)) from None


# ------------------------------------------------------------------------------------------------- serve


@main.command()
@click.option("--config", "-c", type=click.Path(dir_okay=False), help=CONFIG_HELP)
@click.option("--bind", help="HOST:PORT to listen on (default 127.0.0.1:8080)")
@click.option("--db", help="database URL: sqlite:///PATH (default) or postgresql://...")
@click.option("--token", multiple=True, help="bearer token accepted on webhooks and the API (repeatable)")
@click.option("--basic-auth", help="USER:PASSWORD accepted as HTTP basic auth")
@click.option("--workers", type=int, help="gunicorn worker processes (default 2)")
@click.option("--insecure", is_flag=True, default=None, help="accept unauthenticated requests (local experiments only)")
@click.option("--access-log", is_flag=True, help="log every request")
def serve(
    config: str | None,
    bind: str | None,
    db: str | None,
    token: tuple[str, ...],
    basic_auth: str | None,
    workers: int | None,
    insecure: bool | None,
    access_log: bool,
) -> None:
    """Run the reactor (webhooks, API, job workers) under gunicorn."""
    _ensure_multiprocess_env()
    overrides: dict[str, Any] = {
        "server.bind": bind,
        "database.url": db,
        "server.workers": workers,
        "auth.insecure": insecure,
        "auth.tokens": list(token) or None,
    }
    if basic_auth:
        user, sep, password = basic_auth.partition(":")
        if not sep:
            raise click.BadParameter("must be USER:PASSWORD", param_hint="--basic-auth")
        overrides["auth.basic"] = [{"username": user, "password": password}]
    settings = _load(config, overrides)
    _run_server(settings, access_log=access_log)


def _ensure_multiprocess_env() -> None:
    """prometheus_client reads PROMETHEUS_MULTIPROC_DIR when first imported: set it, then re-exec."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="smart-rollback-metrics-")
    os.environ[_OWNED_METRICS_DIR] = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    if "prometheus_client" in sys.modules:
        os.execv(sys.executable, [sys.executable, "-m", "reactor", *sys.argv[1:]])  # noqa: S606


def _run_server(settings: Any, *, access_log: bool = False, banner: str = "") -> None:
    from sqlalchemy.exc import SQLAlchemyError

    from reactor.server import prepare_multiprocess_dir, serve
    from reactor.store import StoreUnavailable, make_engine, migrate

    prepare_multiprocess_dir(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    try:
        engine = make_engine(settings.database.url, sqlite_synchronous=settings.database.sqlite_synchronous)
        revision = migrate(engine)
        engine.dispose()
    except (StoreUnavailable, SQLAlchemyError, OSError) as exc:
        raise click.ClickException(f"cannot prepare the database {_redact(settings.database.url)}: {exc}") from None
    auth = settings.auth
    if auth.insecure:
        click.secho(
            "WARNING: --insecure: webhooks and the API accept unauthenticated requests. Never expose this.",
            fg="yellow",
            err=True,
        )
    click.echo(
        f"smart-rollback reactor on http://{settings.server.bind} "
        f"({settings.server.workers} workers, database {_redact(settings.database.url)} at schema {revision})",
        err=True,
    )
    if banner:
        click.echo(banner, err=True)
    try:
        serve(settings, access_log=access_log)
    finally:
        owned = os.environ.get(_OWNED_METRICS_DIR)
        if owned and owned == os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            shutil.rmtree(owned, ignore_errors=True)


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@main.command()
@click.option("--scenario", default="bad-deploy", show_default=True, help="what to deploy (see docs/live-loop.md)")
@click.option("--headless", is_flag=True, help="run the scenario and exit (status 0: it behaved as expected)")
@click.option("--json", "as_json", is_flag=True, help="print the result as one JSON object, last line")
@click.option("--dir", "run_dir", default=".run", show_default=True, help="run directory: configs, data, logs")
def run(scenario: str, headless: bool, as_json: bool, run_dir: str) -> None:
    """The whole loop on this machine: sandbox cluster, traffic simulator, exporter, Prometheus, Alertmanager and
    the reactor; then a faulty deploy that is detected and rolled back with no human input.

    Without --headless it keeps running after the scenario (look at the printed URLs); Ctrl-C stops everything.
    """
    from reactor.liveloop import SCENARIOS, LiveLoop, StartError, Supervisor
    from reactor.liveloop.loop import result_line, timeline

    if scenario not in SCENARIOS:
        raise click.BadParameter(f"unknown scenario; known: {', '.join(SCENARIOS)}", param_hint="--scenario")
    chosen = SCENARIOS[scenario]
    missing = [b for b in ("prometheus", "prometheus-alertmanager") if shutil.which(b) is None]
    if missing:
        raise click.ClickException(
            f"{', '.join(missing)} not installed: run `bash scripts/system-deps.sh` (make run does)"
        )
    loop = LiveLoop(Path(run_dir), echo=lambda line: click.echo(line, err=as_json))
    say = loop.echo
    ok = False
    try:
        say(f"starting the live loop in {loop.run_dir} ...")
        Supervisor.install_signal_handlers()
        loop.start()
        assert loop.supervisor is not None
        say(_urls(loop))
        say(f"scenario {chosen.name}: {chosen.description}")
        outcome = loop.play(chosen)
        say("timeline:\n" + timeline(outcome))
        verdict = "as expected" if outcome.ok else "NOT as expected: " + "; ".join(outcome.problems)
        say(f"{chosen.name}: {outcome.rollbacks} rollback(s), {outcome.state}; {verdict}")
        ok = outcome.ok
        if as_json:
            click.echo(result_line(outcome))
        if not headless:
            say("\nStill running: look around at the URLs above. Ctrl-C stops everything.")
            while True:
                loop.supervisor.check()
                time.sleep(1)
    except StartError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        say("\nstopping ...")
        ok = ok and headless
    finally:
        loop.stop()
    if headless:
        sys.exit(0 if ok else 1)


def _urls(loop: Any) -> str:
    token_file = loop.run_dir / "token"
    return f"""
Sandbox cluster (Kubernetes API): {loop.sandbox.url}   traffic split: {loop.sandbox.url}/sandbox/v1/traffic
Simulator metrics:  {loop.simulator.url}/metrics
Prometheus:         {loop.url("prometheus")}/alerts
  health scores:    {loop.url("prometheus")}/graph?g0.expr=smart_rollback_health_score
Alertmanager:       {loop.url("alertmanager")}
Exporter:           {loop.url("exporter")}/metrics
Reactor decisions:  {loop.url("reactor")}/api/v1/decisions   (Authorization: Bearer $(cat {token_file}))
  its metrics:      {loop.url("reactor")}/metrics
Logs:               {loop.run_dir / "logs"}
"""


# ------------------------------------------------------------------------------------------ configuration


#: Top-level keys that only an exporter config (docs/exporter.md) or a judge config (docs/judge.md) has.
_EXPORTER_KEYS = frozenset(
    {"sources", "targets", "target_files", "interval", "listen", "sinks", "stale_after", "judge"}
)
_JUDGE_KEYS = frozenset({"confidence", "tolerance", "min_samples", "spread_ratio", "serial_correlation", "thresholds",
                         "groups", "defaults", "metrics"})  # fmt: skip


def _kind_of(file: str) -> str:
    """Guess what FILE configures from its top-level keys (the reactor's settings when in doubt)."""
    from exporters.errors import ConfigError
    from exporters.tables import load_document

    try:
        keys = set(load_document(file))
    except (ConfigError, OSError, ValueError, TypeError):
        return "reactor"  # the reactor's loader gives the precise error
    if keys & _EXPORTER_KEYS:
        return "exporter"
    if keys and keys <= _JUDGE_KEYS | {"mode", "seed"}:
        return "judge"
    return "reactor"


@main.command("check-config")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--kind",
    type=click.Choice(["auto", "reactor", "exporter", "judge"]),
    default="auto",
    show_default=True,
    help="What FILE configures; auto tells by its top-level keys.",
)
def check_config(file: str, kind: str) -> None:
    """Validate a reactor, exporter or judge config FILE (and the environment it reads), starting nothing."""
    kind = _kind_of(file) if kind == "auto" else kind
    if kind == "exporter":
        _check_exporter(file)
    elif kind == "judge":
        _check_judge(file)
    else:
        _check_reactor(file)


def _check_exporter(file: str) -> None:
    from exporters.config import load_config
    from exporters.errors import ConfigError

    try:
        config = load_config(file)
    except ConfigError as exc:
        raise click.ClickException(f"invalid exporter configuration:\n  {exc}") from None
    click.echo(
        f"{file}: OK (exporter). {len(config.targets)} target(s) every {config.interval:g} s, "
        f"sources: {', '.join(sorted(config.sources)) or 'none'}"
    )


def _check_judge(file: str) -> None:
    from pydantic import ValidationError

    from exporters.errors import ConfigError
    from exporters.judge import JudgeConfig
    from exporters.tables import format_validation_error, load_document

    try:
        config = JudgeConfig.model_validate(load_document(file))
    except ValidationError as exc:
        raise click.ClickException(f"invalid judge configuration:\n  {format_validation_error(file, exc)}") from None
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"{file}: OK (judge). Mode {config.mode}, confidence {config.confidence}, {len(config.metrics)} metric(s)"
    )


def _check_reactor(file: str) -> None:
    from strategies import PlatformError, load_platform

    settings = _load(file, {})
    problems = []
    for name, instance in settings.platforms.items():
        try:
            load_platform(instance.type)(**instance.options)
        except (TypeError, ValueError, ImportError, PlatformError) as exc:
            problems.append(f"platforms.{name} ({instance.type}): {exc}")
    from reactor.notify import NotificationHub, SecretError

    try:
        NotificationHub(settings.notifications).close()
    except SecretError as exc:
        problems.append(str(exc))
    if problems:
        raise click.ClickException("invalid configuration:\n  - " + "\n  - ".join(problems))
    policy = settings.policies.defaults
    click.echo(
        f"{file}: OK. Reactor on {settings.server.bind}, database {_redact(settings.database.url)}, "
        f"default mode {policy.mode}, {len(settings.policies.targets)} target polic(ies), "
        f"platforms: {', '.join(f'{k} ({v.type})' for k, v in sorted(settings.platforms.items()))}"
    )


@main.group()
def db() -> None:
    """Database schema management."""


@db.command("upgrade")
@click.option("--config", "-c", type=click.Path(dir_okay=False), help=CONFIG_HELP)
@click.option("--db", "url", help="database URL (overrides the config)")
def db_upgrade(config: str | None, url: str | None) -> None:
    """Apply every pending schema migration."""
    from reactor.store import current_revision, make_engine, migrate

    settings = _load(config, {"database.url": url}, serving=False)
    engine = make_engine(settings.database.url)
    before = current_revision(engine)
    after = migrate(engine)
    click.echo(f"schema: {before or 'empty'} -> {after}" if before != after else f"schema already at {after}")


@db.command("current")
@click.option("--config", "-c", type=click.Path(dir_okay=False), help=CONFIG_HELP)
@click.option("--db", "url", help="database URL (overrides the config)")
def db_current(config: str | None, url: str | None) -> None:
    """Print the schema revision of the database and of this release."""
    from reactor.store import current_revision, head_revision, make_engine

    settings = _load(config, {"database.url": url}, serving=False)
    have, want = current_revision(make_engine(settings.database.url)), head_revision()
    click.echo(f"database: {have or 'empty'}; this release: {want}" + ("" if have == want else " (run db upgrade)"))


# ------------------------------------------------------------------------------------------ audit trail


def _when(epoch: float) -> str:
    from reactor.views import iso

    return (iso(epoch) or "")[:23]


@main.command()
@click.option("--config", "-c", type=click.Path(dir_okay=False), help=CONFIG_HELP)
@click.option("--db", help="database URL (overrides the config)")
@click.option("--target", help="only this target (platform/cluster/namespace/name)")
@click.option("--limit", default=50, show_default=True, help="newest entries to show")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per line")
def history(config: str | None, db: str | None, target: str | None, limit: int, as_json: bool) -> None:
    """The audit trail: alerts, decisions, steps and outcomes, oldest first."""
    store = _store(config, db)
    rows = store.audit_trail(target=target, limit=limit)
    if not rows:
        click.echo("no entries yet")
    for row in rows:
        if as_json:
            click.echo(json.dumps({**row, "at": _when(row["at"])}, default=str))
            continue
        decision = f" [{row['decision_id']}]" if row["decision_id"] else ""
        click.echo(f"{_when(row['at'])}  {row['kind']:<10} {row['target'] or '-'}{decision}  {row['message']}")


@main.command()
@click.argument("decision_id")
@click.option("--config", "-c", type=click.Path(dir_okay=False), help=CONFIG_HELP)
@click.option("--db", help="database URL (overrides the config)")
@click.option("--json", "as_json", is_flag=True, help="the full explanation as JSON")
def explain(decision_id: str, config: str | None, db: str | None, as_json: bool) -> None:
    """Why a decision was made and what was done: inputs, reasons, plan, steps, audit trail."""
    from reactor.views import decision_view

    store = _store(config, db)
    row = store.get_decision(decision_id, with_trail=True)
    if row is None:
        raise click.ClickException(f"no decision {decision_id!r} (list them with `smart-rollback history`)")
    view = decision_view(row)
    if as_json:
        click.echo(json.dumps(view, indent=2, default=str))
        return
    alert = row.get("alert") or {}
    click.echo(f"decision {view['id']}: {view['explanation']}")
    click.echo(f"  target:   {view['target']}")
    click.echo(f"  mode:     {view['mode']}   status: {view['status']}   strategy: {view['strategy'] or '-'}")
    if view["to_revision"] is not None:
        click.echo(f"  revision: {view['from_revision']} -> {view['to_revision']}")
    if alert:
        click.echo(
            f"  alert:    {alert.get('name')} ({alert.get('status')}, severity {alert.get('severity')}, "
            f"started {alert.get('starts_at')}, fingerprint {alert.get('fingerprint')})"
        )
    click.echo("  reasons:")
    for reason in view["reasons"]:
        click.echo(f"    - {reason}")
    plan = view.get("plan") or {}
    if plan.get("steps"):
        click.echo("  plan:")
        for step in plan["steps"]:
            click.echo(f"    - {step['id']}: {step['action']} {step['target']}")
            for call in step.get("calls", []):
                click.echo(f"        {call['method']} {call['path']}")
    if view["steps"]:
        click.echo("  steps:")
        for step in view["steps"]:
            click.echo(f"    - {step['step_id']}: {step['status']} ({step['started_at']} -> {step['finished_at']})")
    click.echo("  audit trail:")
    for entry in view["audit"]:
        click.echo(f"    {entry['at'][:23]}  {entry['kind']:<10} {entry['message']}")


@main.command("kill-switch")
@click.argument("state", type=click.Choice(["on", "off", "status"]))
@click.option("--config", "-c", type=click.Path(dir_okay=False), help=CONFIG_HELP)
@click.option("--db", help="database URL (overrides the config)")
@click.option("--actor", default=lambda: os.environ.get("USER", "cli"), help="who flips it (audited)")
def kill_switch(state: str, config: str | None, db: str | None, actor: str) -> None:
    """Stop (on) or allow (off) every automatic rollback, across all replicas sharing the database."""
    store = _store(config, db)
    if state != "status":
        store.set_flag("kill_switch", state == "on", actor=actor)
    click.echo(f"kill switch is {'on' if store.flag('kill_switch') else 'off'}")


# ------------------------------------------------------------------------------------------ rollback


@main.command()
@click.argument("target")
@click.option(
    "--to",
    "to_revision",
    help="revision to return to: a number, or a revision name or image tag such as v1.4.2 "
    "(default: last known good / previous)",
)
@click.option("--strategy", help="undo, blue_green, progressive or partial (default: chosen by the engine)")
@click.option("--reason", default="", help="why (goes to the audit trail and notifications)")
@click.option("--url", envvar="SMART_ROLLBACK_URL", default="http://127.0.0.1:8080", show_default=True)
@click.option("--token", envvar="SMART_ROLLBACK_TOKEN", help="bearer token of the reactor")
@click.option("--wait/--no-wait", default=True, show_default=True, help="follow the rollback until it ends")
@click.option("--timeout", default=600.0, show_default=True, help="seconds to follow it")
def rollback(
    target: str,
    to_revision: str | None,
    strategy: str | None,
    reason: str,
    url: str,
    token: str | None,
    wait: bool,
    timeout: float,
) -> None:
    """Manual (emergency) rollback of TARGET through the running reactor's engine and audit trail."""
    import requests

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    headers["Idempotency-Key"] = secrets.token_hex(8)
    wanted: int | str | None = int(to_revision) if to_revision and to_revision.isdigit() else to_revision
    body = {"target": target, "to_revision": wanted, "strategy": strategy, "reason": reason}
    try:
        response = requests.post(f"{url}/api/v1/rollbacks", json=body, headers=headers, timeout=10)
    except requests.RequestException as exc:
        raise click.ClickException(f"cannot reach the reactor at {url}: {exc}") from None
    if response.status_code >= 300:
        raise click.ClickException(f"the reactor refused ({response.status_code}): {response.text.strip()}")
    decision_id = response.json()["decision_id"]
    click.echo(f"rollback queued as decision {decision_id}")
    if not wait:
        return
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            view = requests.get(f"{url}/api/v1/decisions/{decision_id}", headers=headers, timeout=10).json()
        except (requests.RequestException, ValueError):
            time.sleep(1)  # a restart or an idle keep-alive closed by the server: ask again
            continue
        if view.get("status") != last:
            last = view.get("status")
            click.echo(f"  {time.strftime('%H:%M:%S')}  {last}: {view.get('explanation', '')}")
        if last in ("succeeded", "failed", "stopped", "held", "ignored"):
            sys.exit(0 if last == "succeeded" else 1)
        time.sleep(1)
    raise click.ClickException(
        f"still {last} after {timeout:.0f}s; follow it with `smart-rollback explain {decision_id}`"
    )
