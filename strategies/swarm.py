"""Docker Swarm platform: services through the Engine API (docker SDK's low-level client plus raw calls).

Target identity: ``swarm/<cluster>/<stack>/<service>``. ``cluster`` names an engine in the options (a manager
node's API address); ``stack`` is the ``com.docker.stack.namespace`` label, and the service is found as
``<stack>_<service>`` (what ``docker stack deploy`` creates) or, failing that, as ``<service>`` carrying that
stack label. Services outside any stack use the namespace ``default`` (``no_stack_namespace``).

**Revisions.** Swarm keeps exactly two specs per service, ``Spec`` and ``PreviousSpec``. To roll back further
than one step, the platform keeps its own record *inside the swarm*: one immutable Docker config per distinct
``TaskTemplate`` (name ``srrev-<service hash>-<template hash>``, labels ``io.smart-rollback.*``, data = the
template as JSON). Records live in the raft store, so every reactor replica and every restart sees the same
history, and no extra database is needed. They are written before every write this platform makes (so the
spec it replaces is never lost) and by :meth:`SwarmPlatform.record` (call it when a deploy is registered);
the oldest beyond ``history_limit`` are removed. Numbers are assigned in recording order; a spec that was
never recorded is shown with the next free number. The same template re-deployed keeps its number.

**Revert.** To the revision held in ``PreviousSpec``: the server-side rollback
``POST /services/{id}/update?version=N&rollback=previous`` with the current spec as body (the docker SDK has
no such argument), which obeys the service's ``RollbackConfig``; then ``UpdateStatus`` goes
``rollback_started`` -> ``rollback_completed``. To any older recorded revision: a normal update that puts
the recorded ``TaskTemplate`` back (obeys ``UpdateConfig``). Replicas, labels, networks and ports are left
as they are, like ``kubectl rollout undo`` leaves replicas.

**Traffic.** Swarm has no weighted router of its own, so blue-green and progressive work on *two services*
that share the traffic (e.g. the same network alias, or one reverse proxy in front): weights are realised
as their replica ratio; switching either scales the chosen colour up to the pair's total and the other to
zero (``switch: replicas``), or flips a label a proxy such as Traefik routes on (``active_label``), which
changes no task.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

import docker
import docker.errors
import docker.tls
import requests
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from strategies.base import ApiCall, Capability, Revision, TargetRef, TargetState, template_fingerprint
from strategies.errors import (
    ConflictError,
    NoPreviousRevisionError,
    PermanentError,
    PlatformError,
    RevisionNotFoundError,
    TargetNotFoundError,
    TemporaryError,
    UnsupportedError,
)
from strategies.platform_kit import (
    parse_options,
    percentages,
    poll,
    split_target_key,
    target_key,
    validate_weights,
)

STACK_LABEL = "com.docker.stack.namespace"
LABEL_SERVICE = "io.smart-rollback.service"
LABEL_REVISION = "io.smart-rollback.revision"
LABEL_IMAGE = "io.smart-rollback.image"
RECORD_PREFIX = "srrev-"
#: UpdateStatus states in which the orchestrator is still converging.
IN_PROGRESS = frozenset({"updating", "rollback_started"})
#: States that need a human (``FailureAction: pause``): waiting longer will not help.
PAUSED = frozenset({"paused", "rollback_paused"})


# -- options -------------------------------------------------------------------------------------------
class SwarmTLS(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ca_cert: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    verify: bool = True


class SwarmCluster(BaseModel):
    """One engine (a manager node) by name: ``clusters: {local: {base_url: unix:///var/run/docker.sock}}``."""

    model_config = ConfigDict(extra="forbid")
    base_url: str = "unix:///var/run/docker.sock"
    #: ``auto`` negotiates; pin (e.g. ``"1.41"``) only for an engine that cannot negotiate.
    api_version: str = "auto"
    timeout: float = Field(30.0, gt=0)
    tls: SwarmTLS | None = None


class SwarmTarget(BaseModel):
    """Per-target settings, keyed ``cluster/namespace/name``."""

    model_config = ConfigDict(extra="forbid")
    #: Exact service name, when it is not ``<stack>_<name>`` or ``<name>``.
    service: str | None = None
    #: Blue-green: colour -> service name (exactly two).
    colors: dict[str, str] | None = None
    #: Progressive: ``{stable: service, canary: service}``; weights become their replica ratio.
    canary: dict[str, str] | None = None
    #: Switch colours by setting this service label to "true"/"false" instead of by replicas.
    active_label: str | None = None

    @field_validator("colors")
    @classmethod
    def _two_colors(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is not None and len(value) != 2:
            raise ValueError(f"colors needs exactly two entries (colour: service), got {len(value)}")
        return value

    @field_validator("canary")
    @classmethod
    def _stable_canary(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is not None and set(value) != {"stable", "canary"}:
            raise ValueError(f"canary needs exactly the keys stable and canary, got {sorted(value)}")
        return value


class SwarmOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    clusters: dict[str, SwarmCluster] = Field(default_factory=lambda: {"local": SwarmCluster.model_validate({})})
    targets: dict[str, SwarmTarget] = Field(default_factory=dict)
    #: Revision records kept per service (Docker configs).
    history_limit: int = Field(10, ge=2, le=100)
    #: Seconds between polls while waiting for convergence.
    poll_interval: float = Field(0.5, gt=0)
    #: Seconds ``switch`` (replicas mode) waits for the new colour before scaling the old one to zero.
    switch_timeout: float = Field(60.0, ge=0)
    no_stack_namespace: str = "default"

    @model_validator(mode="after")
    def _targets_name_clusters(self) -> SwarmOptions:
        for key in self.targets:
            cluster, _, _ = split_target_key(key)
            if cluster not in self.clusters:
                raise ValueError(f"target {key!r} names cluster {cluster!r}; configured: {sorted(self.clusters)}")
        return self


# -- helpers -------------------------------------------------------------------------------------------
def _template(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a service spec that defines what runs; ``ForceUpdate`` (a restart counter) left out."""
    template = copy.deepcopy(dict(spec.get("TaskTemplate") or {}))
    template.pop("ForceUpdate", None)
    return template


def _image(template: Mapping[str, Any]) -> str:
    return str((template.get("ContainerSpec") or {}).get("Image", ""))


def _config_refs(template: Mapping[str, Any]) -> dict[str, Any]:
    """Configs and secrets the template mounts: immutable objects, so reverting the template restores them."""
    cs = template.get("ContainerSpec") or {}
    refs: dict[str, Any] = {}
    for c in cs.get("Configs") or []:
        refs[f"config:{c.get('ConfigName')}"] = c.get("ConfigID")
    for s in cs.get("Secrets") or []:
        refs[f"secret:{s.get('SecretName')}"] = s.get("SecretID")
    return refs


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        # Docker prints nanoseconds; fromisoformat takes at most microseconds.
        head, _, frac = text.rstrip("Z").partition(".")
        return datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}").replace(tzinfo=UTC)
    except ValueError:
        return None


def _replicas(spec: Mapping[str, Any]) -> int | None:
    replicated = (spec.get("Mode") or {}).get("Replicated")
    return None if replicated is None else int(replicated.get("Replicas", 1))


def _task_matches(task: Mapping[str, Any], template: Mapping[str, Any], force: int) -> bool:
    spec = task.get("Spec") or {}
    return spec.get("ContainerSpec") == template.get("ContainerSpec") and int(spec.get("ForceUpdate", 0)) == force


@dataclass(frozen=True)
class _Record:
    number: int
    fingerprint: str
    template: dict[str, Any]
    config_id: str
    created_at: datetime | None


@dataclass(frozen=True)
class _History:
    """A service's revisions: the platform's records plus ``PreviousSpec``/``Spec`` if not yet recorded."""

    revisions: tuple[Revision, ...]
    current: int
    previous: int | None
    records: tuple[_Record, ...]
    #: (number, template) of specs the service holds that no record has yet, oldest first.
    unrecorded: tuple[tuple[int, dict[str, Any]], ...]


# -- the platform --------------------------------------------------------------------------------------
class SwarmPlatform:
    """Docker Swarm through the Engine API. Options: see :class:`SwarmOptions` and docs/platforms.md.

    ``client_factory`` builds a low-level ``docker.APIClient`` for a :class:`SwarmCluster` (tests and the
    benchmark use the default, pointed at a local engine); ``clock``/``sleep`` drive the waits.
    """

    name: ClassVar[str] = "swarm"
    Options: ClassVar[type[BaseModel]] = SwarmOptions

    def __init__(
        self,
        *,
        client_factory: Callable[[SwarmCluster], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        **options: Any,
    ) -> None:
        self.options = parse_options(SwarmOptions, self.name, options)
        self._client_factory = client_factory or _default_client
        self._clock = clock
        self._sleep = sleep
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    # -- protocol: describe ----------------------------------------------------------------------------
    def describe(self, target: TargetRef) -> TargetState:
        api = self._api(target)
        settings = self._settings(target)
        svc = self._find_primary(api, target, required=not (settings.colors or settings.canary))
        revisions: tuple[Revision, ...] = ()
        current = stable = None
        details: dict[str, Any] = {}
        capabilities: set[Capability] = set()
        ready = True
        desired = running = None
        components: tuple[str, ...] = ()
        if svc is not None:
            hist = self._history(api, svc)
            revisions, current = hist.revisions, hist.current
            state = (svc.get("UpdateStatus") or {}).get("State")
            # Swarm's own verdict: a finished update or rollback is good; one in flight or paused is not yet.
            stable = hist.previous if state in ("updating", "paused") and hist.previous else current
            stable_rev = next((r for r in revisions if r.number == stable), None)
            tasks = self._tasks(api, svc)
            ok, desired, running, why = self._convergence(api, svc, tasks)
            ready = ok
            capabilities.add(Capability.REVERT)
            details.update(
                service_id=svc["ID"],
                service=svc["Spec"]["Name"],
                version=svc["Version"]["Index"],
                update_status=svc.get("UpdateStatus"),
                image=_image(svc["Spec"].get("TaskTemplate") or {}),
                previous_image=_image((svc.get("PreviousSpec") or {}).get("TaskTemplate") or {}) or None,
                last_known_good_image=stable_rev.image if stable_rev else None,
                previous_revision=hist.previous,
                unrecorded_revisions=[n for n, _ in hist.unrecorded],
                convergence=why,
                tasks=_task_summary(tasks),
            )
            components = self._components(api, target, svc)
            if len(components) > 1:
                capabilities.add(Capability.COMPONENTS)
        traffic: dict[str, int] = {}
        router = None
        if settings.canary:
            pair = self._pair(api, target, settings.canary)
            traffic = percentages({side: _replicas(s["Spec"]) or 0 for side, s in pair.items()})
            router = "replica-ratio"
            capabilities.add(Capability.WEIGHTS)
            details["canary"] = {
                side: {"service": s["Spec"]["Name"], "replicas": _replicas(s["Spec"])} for side, s in pair.items()
            }
            ready = ready and all(self._convergence(api, s)[0] for s in pair.values())
        active = None
        colors: tuple[str, ...] = ()
        if settings.colors:
            pair = self._pair(api, target, settings.colors)
            colors = tuple(settings.colors)
            active = self._active_color(pair, settings.active_label)
            capabilities.add(Capability.SWITCH)
            details["colors"] = {
                c: {
                    "service": s["Spec"]["Name"],
                    "replicas": _replicas(s["Spec"]),
                    "labels": s["Spec"].get("Labels") or {},
                }
                for c, s in pair.items()
            }
            ready = ready and all(self._convergence(api, s)[0] for s in pair.values())
        return TargetState(
            target=target,
            current_revision=current,
            revisions=revisions,
            stable_revision=stable,
            traffic=traffic,
            router=router,
            active_color=active,
            colors=colors,
            components=components,
            ready=ready,
            desired_replicas=desired,
            ready_replicas=running,
            capabilities=frozenset(capabilities),
            details=details,
        )

    # -- protocol: writes ------------------------------------------------------------------------------
    def revert(self, target: TargetRef, revision: int | None = None, *, dry_run: bool = False) -> list[ApiCall]:
        api = self._api(target)
        for attempt in range(3):
            svc = self._find_primary(api, target, required=True)
            assert svc is not None
            hist = self._history(api, svc)
            try:
                return self._revert(api, target, svc, hist, revision, dry_run)
            except ConflictError:
                # Another writer moved Version.Index between our read and write: re-read and try again.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def set_weights(self, target: TargetRef, weights: Mapping[str, int], *, dry_run: bool = False) -> list[ApiCall]:
        settings = self._settings(target)
        if not settings.canary:
            raise UnsupportedError(
                f"{target} has no canary pair: set platforms.swarm.targets.{target_key(target)}.canary "
                "to {stable: <service>, canary: <service>}"
            )
        wanted = validate_weights(target, weights, ("stable", "canary"))
        api = self._api(target)
        pair = self._pair(api, target, settings.canary)
        counts = {side: _replicas(s["Spec"]) for side, s in pair.items()}
        if any(n is None for n in counts.values()):
            raise UnsupportedError(f"{target}: weights need replicated services, not global ones")
        current = {side: n or 0 for side, n in counts.items()}
        total = sum(current.values())
        if total == 0:
            raise UnsupportedError(f"{target}: both services of the canary pair have 0 replicas; scale one up first")
        target_counts = _split_replicas(total, wanted)
        if target_counts == current:
            return []
        # Grow the side that gains traffic first, then shrink the other, so capacity never dips.
        order = sorted(pair, key=lambda side: target_counts[side] - current[side], reverse=True)
        calls: list[ApiCall] = []
        for side in order:
            if target_counts[side] != current[side]:
                calls += self._scale(api, pair[side], target_counts[side], dry_run, f"{side} side -> {wanted[side]}%")
        return calls

    def switch(self, target: TargetRef, color: str, *, dry_run: bool = False) -> list[ApiCall]:
        settings = self._settings(target)
        if not settings.colors:
            raise UnsupportedError(
                f"{target} has no colours: set platforms.swarm.targets.{target_key(target)}.colors "
                "to {blue: <service>, green: <service>}"
            )
        if color not in settings.colors:
            raise UnsupportedError(f"{target} has colours {list(settings.colors)}, not {color!r}")
        api = self._api(target)
        pair = self._pair(api, target, settings.colors)
        other = next(c for c in pair if c != color)
        if settings.active_label:
            return self._switch_by_label(api, pair, color, other, settings.active_label, dry_run)
        chosen_n, other_n = _replicas(pair[color]["Spec"]), _replicas(pair[other]["Spec"])
        if chosen_n is None or other_n is None:
            raise UnsupportedError(f"{target}: switching by replicas needs replicated services")
        if other_n == 0 and chosen_n > 0:
            return []
        total = max(chosen_n + other_n, 1)
        calls = self._scale(api, pair[color], total, dry_run, f"make {color} active") if chosen_n != total else []
        if not dry_run and calls:
            # Only take the old colour away once the new one runs: a failed start leaves traffic where it was.
            svc_id = pair[color]["ID"]
            done = poll(
                lambda: True if self._convergence(api, self._inspect(api, svc_id))[0] else None,
                timeout=self.options.switch_timeout,
                interval=self.options.poll_interval,
                clock=self._clock,
                sleep=self._sleep,
            )
            if done is None:
                raise TemporaryError(
                    f"{target}: {color} ({pair[color]['Spec']['Name']}) did not converge within "
                    f"{self.options.switch_timeout}s; {other} still serves",
                    delay=self.options.poll_interval,
                )
            pair[other] = self._inspect(api, pair[other]["ID"])
        calls += self._scale(api, pair[other], 0, dry_run, f"retire {other}")
        return calls

    def wait_ready(self, target: TargetRef, timeout: float) -> TargetState:
        api = self._api(target)
        settings = self._settings(target)
        last: list[str] = []

        def check() -> TargetState | None:
            services = []
            svc = self._find_primary(api, target, required=not (settings.colors or settings.canary))
            if svc is not None:
                services.append(svc)
            for mapping in (settings.canary, settings.colors):
                if mapping:
                    services.extend(self._pair(api, target, mapping).values())
            for s in services:
                state = s.get("UpdateStatus") or {}
                if state.get("State") in PAUSED:
                    raise PermanentError(
                        f"{target}: service {s['Spec']['Name']} is {state['State']} "
                        f"({state.get('Message', '')}); "
                        "the orchestrator will not continue on its own: inspect its tasks, then "
                        "`docker service update` or roll back"
                    )
            pending = [why for s in services for ok, _, _, why in [self._convergence(api, s)] if not ok]
            last[:] = pending
            return None if pending else self.describe(target)

        state = poll(check, timeout=timeout, interval=self.options.poll_interval, clock=self._clock, sleep=self._sleep)
        if state is None:
            raise TemporaryError(
                f"{target} not ready after {timeout}s: {'; '.join(last)}", delay=self.options.poll_interval
            )
        return state

    # -- extra: history --------------------------------------------------------------------------------
    def record(self, target: TargetRef) -> int:
        """Record the service's current (and previous) spec as revisions; return the current number.

        Call it when a deploy is registered so that history deeper than ``PreviousSpec`` exists.
        """
        api = self._api(target)
        svc = self._find_primary(api, target, required=True)
        assert svc is not None
        hist = self._history(api, svc)
        self._write_records(api, svc, hist, dry_run=False)
        return hist.current

    # -- internals: revert -----------------------------------------------------------------------------
    def _revert(
        self,
        api: Any,
        target: TargetRef,
        svc: dict[str, Any],
        hist: _History,
        revision: int | None,
        dry_run: bool,
    ) -> list[ApiCall]:
        if revision is None:
            older = sorted((r.number for r in hist.revisions if r.number != hist.current), reverse=True)
            if not older:
                raise NoPreviousRevisionError(
                    f"{target} ({svc['Spec']['Name']}) has no previous revision: it was never updated and no "
                    "earlier spec was recorded"
                )
            revision = older[0]
        wanted = next((r for r in hist.revisions if r.number == revision), None)
        if wanted is None:
            known = sorted(r.number for r in hist.revisions)
            raise RevisionNotFoundError(f"revision {revision} of {target} is not in its history {known}")
        if revision == hist.current:
            return []
        calls = self._write_records(api, svc, hist, dry_run)
        sid, version = svc["ID"], svc["Version"]["Index"]
        spec = svc["Spec"]
        if svc.get("PreviousSpec") and revision == hist.previous:
            calls.append(
                self._post_update(
                    api,
                    sid,
                    version,
                    spec,
                    rollback=True,
                    dry_run=dry_run,
                    note=f"server-side rollback to PreviousSpec = revision {revision} ({wanted.image}); "
                    "follows the service's RollbackConfig",
                )
            )
            return calls
        body = copy.deepcopy(spec)
        template = copy.deepcopy(dict(wanted.template))
        template["ForceUpdate"] = (spec.get("TaskTemplate") or {}).get("ForceUpdate", 0)
        body["TaskTemplate"] = template
        calls.append(
            self._post_update(
                api,
                sid,
                version,
                body,
                rollback=False,
                dry_run=dry_run,
                note=f"update TaskTemplate to recorded revision {revision} ({wanted.image}); "
                "follows the service's UpdateConfig",
            )
        )
        return calls

    def _post_update(
        self,
        api: Any,
        service_id: str,
        version: int,
        spec: Mapping[str, Any],
        *,
        rollback: bool,
        dry_run: bool,
        note: str,
    ) -> ApiCall:
        query = f"version={version}" + ("&rollback=previous" if rollback else "")
        call = ApiCall("POST", f"/services/{service_id}/update?{query}", dict(spec), note=note)
        if dry_run:
            return call
        params: dict[str, Any] = {"version": version}
        if rollback:
            # docker-py's update_service has no rollback argument; this is the request the CLI makes.
            params["rollback"] = "previous"
        url = f"{api.base_url}/v{api.api_version}/services/{service_id}/update"
        self._call(
            lambda: _check(
                api.post(url, params=params, data=json.dumps(spec), headers={"Content-Type": "application/json"})
            ),
            what=f"update service {service_id}",
        )
        return call

    def _scale(self, api: Any, svc: Mapping[str, Any], replicas: int, dry_run: bool, why: str) -> list[ApiCall]:
        hist = self._history(api, svc)
        calls = self._write_records(api, svc, hist, dry_run)
        body = copy.deepcopy(svc["Spec"])
        body["Mode"] = {"Replicated": {"Replicas": replicas}}
        calls.append(
            self._post_update(
                api,
                svc["ID"],
                svc["Version"]["Index"],
                body,
                rollback=False,
                dry_run=dry_run,
                note=f"scale {svc['Spec']['Name']} to {replicas} ({why})",
            )
        )
        return calls

    def _switch_by_label(
        self, api: Any, pair: dict[str, dict[str, Any]], color: str, other: str, label: str, dry_run: bool
    ) -> list[ApiCall]:
        calls: list[ApiCall] = []
        for c, value in ((color, "true"), (other, "false")):
            svc = pair[c]
            labels = dict(svc["Spec"].get("Labels") or {})
            if labels.get(label) == value:
                continue
            hist = self._history(api, svc)
            calls += self._write_records(api, svc, hist, dry_run)
            body = copy.deepcopy(svc["Spec"])
            body["Labels"] = {**labels, label: value}
            calls.append(
                self._post_update(
                    api,
                    svc["ID"],
                    svc["Version"]["Index"],
                    body,
                    rollback=False,
                    dry_run=dry_run,
                    note=f"set label {label}={value} on {svc['Spec']['Name']} ({c}); no task restarts",
                )
            )
        return calls

    # -- internals: history ----------------------------------------------------------------------------
    def _history(self, api: Any, svc: Mapping[str, Any]) -> _History:
        name = svc["Spec"]["Name"]
        raw = self._call(lambda: api.configs(filters={"label": f"{LABEL_SERVICE}={name}"}), what="list configs")
        records: list[_Record] = []
        for cfg in raw:
            spec = cfg.get("Spec") or {}
            labels = spec.get("Labels") or {}
            try:
                data = json.loads(base64.b64decode(spec.get("Data") or ""))
                number = int(labels[LABEL_REVISION])
            except (ValueError, KeyError, TypeError):
                continue  # not one of ours, or damaged: ignore rather than fail the rollback
            template = data.get("template") or {}
            records.append(
                _Record(
                    number,
                    template_fingerprint(template),
                    template,
                    cfg["ID"],
                    _parse_time(cfg.get("CreatedAt")),
                )
            )
        # Two recorders racing may pick the same number; order by (number, creation) and keep numbers unique.
        records.sort(key=lambda r: (r.number, r.created_at or datetime.min.replace(tzinfo=UTC)))
        unique: list[_Record] = []
        for rec in records:
            if unique and rec.number <= unique[-1].number:
                rec = _Record(unique[-1].number + 1, rec.fingerprint, rec.template, rec.config_id, rec.created_at)
            unique.append(rec)
        by_fp = {r.fingerprint: r.number for r in unique}
        next_number = (unique[-1].number if unique else 0) + 1
        unrecorded: list[tuple[int, dict[str, Any]]] = []
        numbers: dict[str, int] = {}
        for key in ("PreviousSpec", "Spec"):
            spec = svc.get(key)
            if not spec:
                continue
            template = _template(spec)
            fp = template_fingerprint(template)
            if fp not in by_fp:
                by_fp[fp] = next_number
                unrecorded.append((next_number, template))
                next_number += 1
            numbers[key] = by_fp[fp]
        revisions = [
            Revision(
                r.number,
                name=f"{name}#{r.number}",
                image=_image(r.template),
                template=r.template,
                config=_config_refs(r.template),
                created_at=r.created_at,
            )
            for r in unique
        ]
        for number, template in unrecorded:
            revisions.append(
                Revision(
                    number,
                    name=f"{name}#{number}",
                    image=_image(template),
                    template=template,
                    config=_config_refs(template),
                    created_at=_parse_time(svc.get("UpdatedAt")) if number == numbers["Spec"] else None,
                )
            )
        revisions.sort(key=lambda r: r.number)
        return _History(
            revisions=tuple(revisions),
            current=numbers["Spec"],
            previous=numbers.get("PreviousSpec"),
            records=tuple(unique),
            unrecorded=tuple(unrecorded),
        )

    def _write_records(self, api: Any, svc: Mapping[str, Any], hist: _History, dry_run: bool) -> list[ApiCall]:
        """Record the specs the service holds that are not recorded yet, then prune the oldest records."""
        name = svc["Spec"]["Name"]
        calls: list[ApiCall] = []
        for number, template in hist.unrecorded:
            service_hash = hashlib.sha256(name.encode()).hexdigest()[:12]
            cfg_name = f"{RECORD_PREFIX}{service_hash}-{template_fingerprint(template)}"
            labels = {LABEL_SERVICE: name, LABEL_REVISION: str(number), LABEL_IMAGE: _image(template)[:200]}
            calls.append(
                ApiCall(
                    "POST",
                    "/configs/create",
                    {"Name": cfg_name, "Labels": labels},
                    note=f"record revision {number} of {name} (Data: its TaskTemplate)",
                )
            )
            if dry_run:
                continue
            data = json.dumps({"service": name, "template": template}, sort_keys=True).encode()
            # A ConflictError means another replica recorded it meanwhile: same template, same name.
            with contextlib.suppress(ConflictError):
                self._call(lambda: api.create_config(cfg_name, data, labels=labels), what="create config")  # noqa: B023
        if not dry_run and hist.unrecorded:
            keep = self.options.history_limit
            alive = {hist.current, hist.previous}
            old = [r for r in hist.records if r.number not in alive]
            excess = len(hist.records) + len(hist.unrecorded) - keep
            for rec in old[: max(excess, 0)]:
                with contextlib.suppress(TargetNotFoundError):
                    self._call(lambda: api.remove_config(rec.config_id), what="remove config")  # noqa: B023
        return calls

    # -- internals: lookups ----------------------------------------------------------------------------
    def _settings(self, target: TargetRef) -> Any:
        if target.cluster not in self.options.clusters:
            raise TargetNotFoundError(
                f"{target}: unknown swarm cluster {target.cluster!r}; configured: {sorted(self.options.clusters)}"
            )
        return self.options.targets.get(target_key(target)) or _NO_SETTINGS

    def _api(self, target: TargetRef) -> Any:
        self._settings(target)
        with self._lock:
            client = self._clients.get(target.cluster)
        if client is None:
            cluster = self.options.clusters[target.cluster]
            client = self._call(lambda: self._client_factory(cluster), what=f"connect to {cluster.base_url}")
            with self._lock:
                self._clients.setdefault(target.cluster, client)
        return client

    def _inspect(self, api: Any, name_or_id: str) -> dict[str, Any]:
        return self._call(lambda: api.inspect_service(name_or_id), what=f"inspect service {name_or_id}")

    def _lookup(self, api: Any, name: str) -> dict[str, Any] | None:
        try:
            svc = self._inspect(api, name)
        except TargetNotFoundError:
            return None
        # The Engine also matches ID prefixes; only an exact name (or ID) counts.
        return svc if name in (svc["Spec"]["Name"], svc["ID"]) else None

    def _find_primary(self, api: Any, target: TargetRef, *, required: bool) -> dict[str, Any] | None:
        settings = self._settings(target)
        if settings.service:
            svc = self._lookup(api, settings.service)
        else:
            ns, name = target.namespace, target.name
            svc = self._lookup(api, f"{ns}_{name}")
            if svc is None:
                candidate = self._lookup(api, name)
                if candidate is not None:
                    stack = (candidate["Spec"].get("Labels") or {}).get(STACK_LABEL)
                    if stack == ns or (stack is None and ns == self.options.no_stack_namespace):
                        svc = candidate
        if svc is None and required:
            raise TargetNotFoundError(
                f"{target}: no swarm service {target.namespace}_{target.name} (stack {target.namespace!r}) "
                f"nor {target.name!r}; services outside a stack use namespace "
                f"{self.options.no_stack_namespace!r}"
            )
        return svc

    def _pair(self, api: Any, target: TargetRef, mapping: Mapping[str, str]) -> dict[str, dict[str, Any]]:
        pair: dict[str, dict[str, Any]] = {}
        for role, service in mapping.items():
            svc = self._lookup(api, service)
            if svc is None:
                raise TargetNotFoundError(f"{target}: service {service!r} ({role}) does not exist")
            pair[role] = svc
        return pair

    def _components(self, api: Any, target: TargetRef, svc: Mapping[str, Any]) -> tuple[str, ...]:
        stack = (svc["Spec"].get("Labels") or {}).get(STACK_LABEL)
        if not stack:
            return ()
        services = self._call(lambda: api.services(filters={"label": f"{STACK_LABEL}={stack}"}), what="list services")
        prefix = f"{stack}_"
        return tuple(sorted(s["Spec"]["Name"].removeprefix(prefix) for s in services))

    def _tasks(self, api: Any, svc: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Every task the manager still keeps for the service (current ones and recent history)."""
        return list(self._call(lambda: api.tasks(filters={"service": svc["ID"]}), what="list tasks"))

    def _convergence(
        self, api: Any, svc: Mapping[str, Any], all_tasks: list[dict[str, Any]] | None = None
    ) -> tuple[bool, int | None, int, str]:
        """(converged, desired, running, why-not) for one service: no update in flight, all tasks current."""
        name = svc["Spec"]["Name"]
        state = (svc.get("UpdateStatus") or {}).get("State")
        if all_tasks is None:
            all_tasks = self._tasks(api, svc)
        tasks = [t for t in all_tasks if t.get("DesiredState") == "running"]
        template = svc["Spec"].get("TaskTemplate") or {}
        force = int(template.get("ForceUpdate", 0))
        current = [t for t in tasks if _task_matches(t, template, force)]
        running = sum(1 for t in current if (t.get("Status") or {}).get("State") == "running")
        desired = _replicas(svc["Spec"])
        want = desired if desired is not None else max(len(tasks), 1)
        if state in IN_PROGRESS or state in PAUSED:
            return False, desired, running, f"{name}: {state}"
        if running != want or len(tasks) != want:
            return (
                False,
                desired,
                running,
                f"{name}: {running}/{want} current tasks running ({len(tasks)} scheduled)",
            )
        return True, desired, running, ""

    @staticmethod
    def _active_color(pair: Mapping[str, Mapping[str, Any]], label: str | None) -> str | None:
        if label:
            active = [c for c, s in pair.items() if (s["Spec"].get("Labels") or {}).get(label) == "true"]
        else:
            counts = {c: _replicas(s["Spec"]) or 0 for c, s in pair.items()}
            top = max(counts.values())
            active = [c for c, n in counts.items() if n == top and n > 0]
        return active[0] if len(active) == 1 else None

    # -- error boundary --------------------------------------------------------------------------------
    def _call(self, fn: Callable[[], Any], *, what: str) -> Any:
        try:
            return fn()
        except PlatformError:
            raise
        except Exception as exc:
            raise wrap_docker_error(exc, what) from exc


_NO_SETTINGS = SwarmTarget()


def _task_summary(tasks: list[dict[str, Any]], limit: int = 10) -> list[dict[str, Any]]:
    """The newest tasks, compactly: what runs where, and why the failed ones failed."""
    newest = sorted(tasks, key=lambda t: str(t.get("UpdatedAt", "")), reverse=True)[:limit]
    return [
        {
            "id": str(t.get("ID", ""))[:12],
            "slot": t.get("Slot"),
            "image": ((t.get("Spec") or {}).get("ContainerSpec") or {}).get("Image"),
            "state": (t.get("Status") or {}).get("State"),
            "desired": t.get("DesiredState"),
            "message": (t.get("Status") or {}).get("Err") or (t.get("Status") or {}).get("Message"),
        }
        for t in newest
    ]


def _split_replicas(total: int, weights: Mapping[str, int]) -> dict[str, int]:
    """Replica counts for a split: rounded, but a side with a non-zero weight keeps at least one replica."""
    canary = round(total * weights["canary"] / 100)
    if weights["canary"] > 0 and canary == 0:
        canary = 1
    if weights["stable"] > 0 and canary == total and total > 1:
        canary = total - 1
    return {"stable": total - canary, "canary": canary}


def _check(response: Any) -> Any:
    """Raise docker's APIError for an error status, as the SDK's own calls do."""
    try:
        response.raise_for_status()
    except requests.exceptions.HTTPError as exc:
        raise docker.errors.create_api_error_from_http_exception(exc) from None
    return response


def _default_client(cluster: SwarmCluster) -> Any:
    tls: Any = False
    if cluster.tls is not None:
        client_cert = (
            (cluster.tls.client_cert, cluster.tls.client_key)
            if cluster.tls.client_cert and cluster.tls.client_key
            else None
        )
        tls = docker.tls.TLSConfig(
            client_cert=client_cert,
            ca_cert=cluster.tls.ca_cert,
            verify=cluster.tls.ca_cert or cluster.tls.verify,
        )
    return docker.APIClient(base_url=cluster.base_url, version=cluster.api_version, timeout=cluster.timeout, tls=tls)


def wrap_docker_error(exc: Exception, what: str) -> PlatformError:
    """Map docker SDK / requests exceptions onto the taxonomy of :mod:`strategies.errors`."""
    if isinstance(exc, docker.errors.NotFound):
        return TargetNotFoundError(f"{what}: {exc.explanation or exc}")
    if isinstance(exc, docker.errors.APIError):
        status = exc.status_code or 0
        text = str(exc.explanation or exc)
        if status == 409 or "out of sequence" in text:
            return ConflictError(f"{what}: {text}")
        if "does not have a previous spec" in text:
            return NoPreviousRevisionError(f"{what}: {text}")
        if "not a swarm manager" in text:
            return PermanentError(f"{what}: {text}. Point the cluster's base_url at a manager node.")
        if status >= 500 or status == 429:
            return TemporaryError(f"{what}: engine error {status}: {text}", delay=2.0)
        return PermanentError(f"{what}: engine refused ({status}): {text}")
    if isinstance(exc, requests.exceptions.RequestException | docker.errors.DockerException | OSError):
        return TemporaryError(f"{what}: engine unreachable: {exc}", delay=2.0)
    return PermanentError(f"{what}: unexpected {type(exc).__name__}: {exc}")
