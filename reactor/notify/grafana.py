"""Grafana annotations: a region from rollback start to end on every dashboard that shows them.

``rollback_started`` creates the region (``POST /api/annotations`` with ``time``); the outcome
(``rollback_succeeded`` / ``rollback_failed``) closes it (``PATCH /api/annotations/:id`` with
``timeEnd``, the final text and an ``outcome:`` tag). If the start was missed (the reactor restarted in
between), the end posts the whole region at once from the event's ``started_at``.

Without ``dashboard_uid`` these are organisation annotations; a dashboard shows them with an annotation
query on the Grafana data source filtered by tag ``smart-rollback`` (CONTRACTS.md section 4.4). The token
is a service-account token with the ``annotations:create`` and ``annotations:write`` permissions
(role Editor, or a custom role).

The annotator is a channel like the others (same dispatcher, retries, records and per-decision order,
which is what guarantees the PATCH follows the POST), but it is configured under ``grafana:`` and
receives every rollback of the targets it matches, without routes.
"""

from __future__ import annotations

import fnmatch
from datetime import datetime
from typing import Any, ClassVar

from pydantic import Field

from reactor.notify import http
from reactor.notify.channels.base import ChannelBase, SendContext, Sent
from reactor.notify.errors import PermanentDeliveryError
from reactor.notify.events import Event, EventKind
from reactor.notify.options import ChannelOptions, SecretRef
from reactor.notify.render import compose

_END_KINDS = (EventKind.ROLLBACK_SUCCEEDED, EventKind.ROLLBACK_FAILED)
_OUTCOME = {EventKind.ROLLBACK_SUCCEEDED: "succeeded", EventKind.ROLLBACK_FAILED: "failed"}


class GrafanaOptions(ChannelOptions):
    required_secrets = ("token",)
    #: Grafana's base URL, e.g. https://grafana.example.com (with the sub-path if served under one).
    url: str = Field(min_length=1, pattern=r"^https?://")
    #: Service-account token (``token_env`` / ``token_file`` recommended).
    token: SecretRef | None = None
    #: Pin the annotations to one dashboard (and panel) instead of the organisation.
    dashboard_uid: str | None = None
    panel_id: int | None = None
    #: ``X-Grafana-Org-Id`` for a token that can see several organisations.
    org_id: int | None = None
    tags: tuple[str, ...] = ("smart-rollback", "rollback")
    #: Target globs (``platform/cluster/namespace/name``) to annotate; default all.
    targets: tuple[str, ...] = ("*",)


class GrafanaAnnotator(ChannelBase):
    type: ClassVar[str] = "grafana"
    Options = GrafanaOptions
    handles = frozenset({EventKind.ROLLBACK_STARTED, *_END_KINDS})

    def matches(self, event: Event) -> bool:
        options = self.options
        assert isinstance(options, GrafanaOptions)
        target = str(event.target)
        return self.accepts(event.kind) and any(fnmatch.fnmatchcase(target, glob) for glob in options.targets)

    def tags(self, event: Event) -> list[str]:
        options = self.options
        assert isinstance(options, GrafanaOptions)
        tags = [*options.tags, event.target.name, f"target:{event.target}", f"decision:{event.decision_id}"]
        if event.strategy:
            tags.append(f"strategy:{event.strategy}")
        if event.kind in _OUTCOME:
            tags.append(f"outcome:{_OUTCOME[event.kind]}")
        return tags

    def text(self, event: Event) -> str:
        message = compose(event, max_reasons=2)
        lines = [message.headline]
        if event.strategy:
            lines.append(f"strategy {event.strategy}, decision {event.decision_id}")
        lines += list(message.reasons)
        if event.summary:
            lines.append(event.summary)
        if event.links.explanation:
            lines.append(f'<a href="{event.links.explanation}">Decision explanation</a>')
        return "\n".join(lines)

    def send(self, event: Event, ctx: SendContext) -> Sent:
        options = self.options
        assert isinstance(options, GrafanaOptions)
        base = options.url.rstrip("/") + "/api/annotations"
        annotation_id = ctx.state.get("annotation")
        body: dict[str, Any] = {"tags": self.tags(event), "text": self.text(event)}
        if event.kind is EventKind.ROLLBACK_STARTED:
            body["time"] = _ms(event.started_at or event.occurred_at)
            method, url, action = "POST", base, "region opened"
            if annotation_id:
                # A duplicate start (retried job): move the existing region's start, do not open another.
                method, url, action = "PATCH", f"{base}/{annotation_id}", "region start updated"
        elif annotation_id:
            body["timeEnd"] = _ms(event.occurred_at)
            method, url, action = "PATCH", f"{base}/{annotation_id}", "region closed"
        else:
            body["time"] = _ms(event.started_at or event.occurred_at)
            body["timeEnd"] = _ms(event.occurred_at)
            method, url, action = "POST", base, "region posted whole (start not seen)"
        if method == "POST":
            if options.dashboard_uid:
                body["dashboardUID"] = options.dashboard_uid
            if options.panel_id is not None:
                body["panelId"] = options.panel_id
        headers = {"Authorization": f"Bearer {self.secrets['token']}", "Accept": "application/json"}
        if options.org_id is not None:
            headers["X-Grafana-Org-Id"] = str(options.org_id)
        service = f"Grafana annotations ({method})"
        response = http.send(
            self.deps.http,
            method,
            url,
            service=service,
            timeout=self.deps.timeout,
            json=body,
            headers=headers,
        )
        if response.status_code in (401, 403):
            raise PermanentDeliveryError(
                f"{service}: HTTP {response.status_code}: the service-account token is invalid or lacks "
                "annotations:create / annotations:write",
                status=response.status_code,
            )
        http.check(response, service=service)
        if method == "POST":
            try:
                new_id = response.json().get("id")
            except (ValueError, AttributeError):
                new_id = None
            if new_id is None:
                raise PermanentDeliveryError(f"{service}: answer has no annotation id ({http.excerpt(response.text)})")
            annotation_id = str(new_id)
            if event.kind is EventKind.ROLLBACK_STARTED:
                ctx.state.set("annotation", annotation_id)
        return Sent(remote_id=annotation_id, detail=action)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
