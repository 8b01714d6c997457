"""``smart-rollback notify test``: send a sample event to each configured channel, before an incident does."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import click

from reactor.cli import main

if TYPE_CHECKING:
    from reactor.notify.channels import Channel
    from reactor.notify.events import EventKind

CONFIG_ENV = "SMART_ROLLBACK_CONFIG"


@main.group("notify")
def notify() -> None:
    """Notification channels: check the wiring."""


@notify.command("test")
@click.option(
    "--config",
    "-c",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"The reactor's YAML file (its notifications: section is used). Default: ${CONFIG_ENV}.",
)
@click.option(
    "--channel",
    "names",
    multiple=True,
    metavar="NAME",
    help="Only this channel (repeat for several); 'grafana' tests the annotations.",
)
@click.option(
    "--event",
    "kind_name",
    metavar="KIND",
    help="Send this event kind (decision_made, held_for_approval, rollback_started, step_done, "
    "rollback_succeeded, rollback_failed, recovered) instead of each channel's usual test.",
)
@click.option("-v", "--verbose", is_flag=True, help="Log every request attempt.")
def notify_test(config_path: Path | None, names: tuple[str, ...], kind_name: str | None, verbose: bool) -> None:
    """Send a sample event to each configured channel and report, per channel, delivered or the error.

    Incident channels (PagerDuty, Opsgenie) get a trigger and then the matching resolve, so the test
    leaves no open incident; Grafana gets a region that opens and closes at once. Exits 1 if any
    channel failed, 2 if the configuration is unusable.
    """
    import logging

    from reactor.notify.config import load_notification_settings
    from reactor.notify.errors import NotificationConfigError
    from reactor.notify.events import EventKind, sample_event
    from reactor.notify.hub import NotificationHub

    logging.basicConfig(level=logging.DEBUG if verbose else logging.CRITICAL, format="%(levelname)s %(message)s")
    path = config_path or (Path(os.environ[CONFIG_ENV]) if os.environ.get(CONFIG_ENV) else None)
    if path is None:
        raise click.UsageError(f"no configuration: pass --config FILE or set {CONFIG_ENV}")
    kind: EventKind | None = None
    if kind_name:
        try:
            kind = EventKind(kind_name)
        except ValueError:
            raise click.BadParameter(
                f"{kind_name!r} is not an event kind; use one of {', '.join(k.value for k in EventKind)}",
                param_hint="--event",
            ) from None
    try:
        settings = load_notification_settings(path)
        hub = NotificationHub(settings, record=lambda delivery: None)
    except NotificationConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    try:
        available: dict[str, Channel] = dict(hub.channels)
        if hub.grafana is not None:
            available["grafana"] = hub.grafana
        if not available:
            click.echo(f"{path}: no channels configured under notifications:", err=True)
            sys.exit(2)
        unknown = [name for name in names if name not in available]
        if unknown:
            click.echo(
                f"error: no channel named {', '.join(unknown)} (configured: {', '.join(sorted(available))})",
                err=True,
            )
            sys.exit(2)
        decision_id = f"test-{uuid.uuid4().hex[:8]}"
        failed = 0
        width = max(len(name) for name in available)
        for name in names or tuple(available):
            channel = available[name]
            kinds = [kind] if kind is not None else _test_kinds(channel)
            if not kinds or not all(channel.accepts(k) for k in kinds):
                what = kind.value if kind is not None else "any test event"
                click.echo(f"{name:<{width}}  skipped: this {channel.type} channel does not act on {what}")
                continue
            outcome = []
            ok = True
            for event_kind in kinds:
                delivery = hub.send_now(name, sample_event(event_kind, decision_id=decision_id))
                if delivery.status.value != "delivered":
                    ok = False
                    hint = " (temporary: the reactor would retry)" if delivery.status.value == "retrying" else ""
                    outcome.append(f"{event_kind.value} FAILED: {delivery.error}{hint}")
                    break
                extra = f" {delivery.detail}" if delivery.detail else ""
                outcome.append(f"{event_kind.value} delivered{extra}")
            failed += not ok
            click.echo(f"{name:<{width}}  {'ok    ' if ok else 'FAILED'}  {'; '.join(outcome)}")
        if failed:
            click.echo(f"{failed} channel(s) failed", err=True)
            sys.exit(1)
    finally:
        hub.close(timeout=0)


def _test_kinds(channel: Channel) -> list[EventKind]:
    """What to send so the test shows the channel's real behaviour and leaves nothing open."""
    from reactor.notify.events import EventKind

    if channel.type == "grafana":
        return [EventKind.ROLLBACK_STARTED, EventKind.ROLLBACK_SUCCEEDED]
    first = next(
        (
            k
            for k in (
                EventKind.ROLLBACK_SUCCEEDED,
                EventKind.ROLLBACK_FAILED,
                EventKind.HELD_FOR_APPROVAL,
                *EventKind,
            )
            if channel.accepts(k)
        ),
        None,
    )
    if first is None:
        return []
    kinds = [first]
    options = getattr(channel, "options", None)
    closing = getattr(options, "resolve_on", None) or getattr(options, "close_on", None)
    if closing and first not in closing:
        kinds.append(closing[0])
    return kinds
