"""Registered deployments at work: gathering the facts, reaching and storing verdicts, the last known good.

Where the verdict is reached (see :mod:`reactor.verdicts` for the rules):

* **at the end of the soak**, by the ``deployment:<id>:soak`` job that registration queued with
  ``run_after`` = the end of the soak. Any worker process of any replica runs it, after any restart; while
  the verdict depends on someone else (an alert not decided yet, a rollback running, an approval), the job
  puts itself back and looks again;
* **at once after every decision about the target**: the worker calls :meth:`Deployments.settle` after it
  records a decision and after a rollback finishes, so ``rolled_back`` and ``bad`` reach a waiting pipeline
  gate without waiting for the soak to end;
* **by a person**: :meth:`Deployments.mark` and :meth:`Deployments.mark_target` (``deploy mark-good`` /
  ``mark-bad``), audited with who and why.

A ``healthy`` verdict marks the registered revision ``good`` (and the platform's own revision, when it can
say which one ran), so later rollbacks return to it; ``rolled_back`` and ``bad`` mark them ``bad``, so the
engine never rolls onto them.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import requests

from reactor.engine import NO_DATA_KINDS
from reactor.settings import Settings
from reactor.store import Job, Store
from reactor.verdicts import BAD, FINAL, HEALTHY, IN_PROGRESS, INSUFFICIENT, ROLLED_BACK, Facts, Judgement, judge
from strategies import PermanentError, Platform, PlatformError, TargetRef, TemporaryError

log = logging.getLogger(__name__)

REACTOR = "reactor"


class Reschedule(Exception):
    """The job is not finished: run it again in ``delay`` seconds (not a failure, no backoff)."""

    def __init__(self, delay: float, reason: str) -> None:
        super().__init__(reason)
        self.delay = max(0.05, delay)
        self.reason = reason


class SufficiencyUnknown(Exception):
    """Prometheus could not say whether the exporter had sufficient data."""


class Deployments:
    """The deployment lifecycle over the store. ``platforms`` is the worker's :class:`~reactor.worker.Platforms`
    (anything with ``for_target(ref, policy) -> (name, platform)``)."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        platforms: Any = None,
        clock: Callable[[], float] = time.time,
        session: requests.Session | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.platforms = platforms
        self.clock = clock
        self._session = session

    @property
    def session(self) -> requests.Session:
        """The HTTP session for Prometheus, made on first use (most instances never ask Prometheus)."""
        if self._session is None:
            self._session = requests.Session()
        return self._session

    # ------------------------------------------------------------------------------------------ facts

    def facts(self, row: Mapping[str, Any], *, sufficient: bool | None = None, detail: str = "") -> Facts:
        activity = self.store.deployment_activity(row["target"], float(row["started_at"]))
        return build_facts(row, activity, sufficient=sufficient, detail=detail)

    def judge(self, row: Mapping[str, Any], *, now: float | None = None) -> Judgement:
        return current(self.store, row, now=self.clock() if now is None else now)

    # ------------------------------------------------------------------------------------ the worker

    def settle(self, target: str) -> list[str]:
        """After a decision about ``target``: store the verdicts the decisions imply now. Returns the ids."""
        settled = []
        for row in self.store.list_deployments(target=target, status=IN_PROGRESS, limit=20):
            judgement = judge(row, self.facts(row), now=self.clock())
            if judgement.status in (ROLLED_BACK, BAD) and self._store_verdict(row, judgement):
                settled.append(row["id"])
        return settled

    def soak(self, job: Job) -> None:
        """The soak job: store the verdict, or raise :class:`Reschedule` to look again later."""
        row = self.store.get_deployment(_deployment_id(job))
        if row is None or row["status"] in FINAL:
            return
        now = self.clock()
        if row.get("soak_until") is None:
            # Registered before schema 0002: the soak of the current settings applies.
            soak_until = float(row["started_at"]) + self.settings.soak_for(row["target"])
            self.store.update_deployment(row["id"], f"soak of deployment {row['id']} ends at {soak_until:.0f}",
                                         soak_until=soak_until)  # fmt: skip
            row = {**row, "soak_until": soak_until}
        judgement = judge(row, self.facts(row), now=now)
        if judgement.status == HEALTHY and self.settings.deployments.require_health_data:
            try:
                sufficient, detail = self.sufficiency(row)
            except SufficiencyUnknown as exc:
                waited = now - float(row["soak_until"])
                worker = self.settings.worker
                if waited < worker.backoff_max_seconds * worker.max_attempts:
                    raise Reschedule(min(worker.backoff_max_seconds, 5.0 + waited), str(exc)) from None
                sufficient, detail = False, f"Prometheus did not answer for {waited:.0f}s after the soak: {exc}"
            judgement = judge(row, self.facts(row, sufficient=sufficient, detail=detail), now=now)
        if not judgement.final:
            delay = (judgement.recheck_at or now + 5.0) - now
            raise Reschedule(delay, judgement.message)
        self._store_verdict(row, judgement)

    def record(self, job: Job) -> None:
        """Right after registration: let the platform record the revision now running (best effort).

        Platforms that keep no deep history of their own (Swarm keeps two specs) have a ``record(target)``
        method; it returns the revision number running now, which the deployment keeps for the record: usually
        the revision the deploy replaces (pipelines register before they roll out), so no mark uses it.
        Temporary errors are retried by the worker; anything else is audited and ignored.
        """
        row = self.store.get_deployment(_deployment_id(job))
        if row is None or self.platforms is None:
            return
        target = TargetRef.parse(row["target"])
        policy = self.settings.policy_for(row["target"])
        try:
            name, platform = self.platforms.for_target(target, policy)
            recorder = getattr(platform, "record", None)
            if not callable(recorder):
                return
            number = recorder(target)
        except TemporaryError:
            raise
        except (PlatformError, ValueError, ImportError, TypeError) as exc:
            self.store.audit(None, "deployment", f"could not record the platform's revision of {target}: {exc} "
                             "(best effort: rollbacks still use the platform's own history)", target=row["target"],
                             data={"deployment": row["id"], "error": str(exc)})  # fmt: skip
            return
        if isinstance(number, int) and not isinstance(number, bool):
            self.store.set_platform_revision(
                row["id"], number, f"platform {name} recorded revision {number} of {target} for deployment {row['id']}"
            )

    def sufficiency(self, row: Mapping[str, Any]) -> tuple[bool, str]:
        """Ask Prometheus whether the exporter had sufficient data at any time during the soak."""
        health, config = self.settings.health, self.settings.deployments
        if not health.prometheus_url:
            raise SufficiencyUnknown("health.prometheus_url is not set")
        target = TargetRef.parse(row["target"])
        soak_until = float(row["soak_until"])
        window = f"{max(1, math.ceil(soak_until - float(row['started_at'])))}s"
        query = config.sufficiency_query.format(
            target=target.name, namespace=target.namespace, cluster=target.cluster, platform=target.platform,
            window=window,
        )  # fmt: skip
        try:
            response = self.session.get(
                health.prometheus_url.rstrip("/") + "/api/v1/query",
                params={"query": query, "time": f"{soak_until:.3f}"},
                timeout=health.timeout_seconds,
            )
            if response.status_code == 400:
                raise SufficiencyUnknown(f"Prometheus refused the query {query!r}: {response.text[:300]}")
            response.raise_for_status()
            result = response.json()["data"]["result"]
        except (requests.RequestException, ValueError, KeyError) as exc:
            raise SufficiencyUnknown(f"cannot query Prometheus at {health.prometheus_url}: {exc}") from exc
        values = []
        for series in result:
            try:
                values.append(float(series["value"][1]))
            except (KeyError, IndexError, TypeError, ValueError):
                continue
        if not values:
            return False, f"no series answers {query}"
        if not any(v > 0 for v in values if not math.isnan(v)):
            return False, f"{query} is 0"
        return True, ""

    # ------------------------------------------------------------------------------------------ people

    def mark(
        self, deployment_id: str, verdict: str, *, actor: str, reason: str, authenticated_as: str | None = None
    ) -> dict[str, Any] | None:
        """A person's verdict on a deployment: ``good`` makes it healthy, ``bad`` makes it bad, from any
        status. Its revision (and the platform's, when recorded) gets the mark. None: no such deployment."""
        row = self.store.get_deployment(deployment_id)
        if row is None:
            return None
        status = HEALTHY if verdict == "good" else BAD
        marks = {row["revision"]: verdict}
        # Not the revision recorded at registration: pipelines register before they roll out, so that one
        # is the revision being replaced. The deploy's own platform revision is known when a rollback left it.
        rolled_back_from = self._rolled_back_from((row.get("data") or {}).get("decision_id"))
        if rolled_back_from:
            marks.setdefault(rolled_back_from, verdict)
        self.store.settle_deployment(
            deployment_id,
            status,
            f"marked {verdict} by {actor}: {reason}",
            by=actor,
            marks=list(marks.items()),
            expect=None,
            data={"authenticated_as": authenticated_as, "manual": True},
        )
        return self.store.get_deployment(deployment_id)

    def mark_target(
        self, target: str, revision: str, verdict: str, *, actor: str, reason: str, authenticated_as: str | None = None
    ) -> list[str]:
        """A person's mark on ``revision`` of ``target``; deployments of it still in progress get the verdict.
        Returns their ids."""
        waiting = self.store.list_deployments(target=target, status=IN_PROGRESS, revision=revision, limit=20)
        if not waiting:
            self.store.mark_revision(target, revision, verdict, actor=actor, reason=reason)
            return []
        status = HEALTHY if verdict == "good" else BAD
        for index, row in enumerate(waiting):
            self.store.settle_deployment(
                row["id"],
                status,
                f"revision {revision} marked {verdict} by {actor}: {reason}",
                by=actor,
                marks=[(revision, verdict)] if index == 0 else [],
                expect=None,
                data={"authenticated_as": authenticated_as, "manual": True},
            )
        return [r["id"] for r in waiting]

    # ------------------------------------------------------------------------------------------ storing

    def _store_verdict(self, row: Mapping[str, Any], judgement: Judgement) -> bool:
        verdict = {HEALTHY: "good", ROLLED_BACK: "bad", BAD: "bad"}.get(judgement.status)
        marks: dict[str, str] = {}
        data: dict[str, Any] = {"decision": judgement.decision_id}
        if verdict is not None:
            marks[str(row["revision"])] = verdict
            platform_revision, note = self._platform_revision(row, judgement)
            if platform_revision:
                marks.setdefault(platform_revision, verdict)
            if note:
                data["platform_revision_note"] = note
        if judgement.status == INSUFFICIENT:
            data["sufficiency"] = judgement.message
        return self.store.settle_deployment(
            row["id"], judgement.status, judgement.message, by=REACTOR, marks=list(marks.items()), data=data,
            decision_id=judgement.decision_id,
        )  # fmt: skip

    def _platform_revision(self, row: Mapping[str, Any], judgement: Judgement) -> tuple[str | None, str]:
        """The platform's name for the revision the verdict is about (stable across renumbering where the
        platform has one, e.g. a ReplicaSet name), or its number; and a note when it cannot tell.

        A healthy deploy's is the revision running when the soak ends, not the one recorded at registration
        (pipelines register before they roll out, so that is the revision the deploy replaced)."""
        if judgement.status in (ROLLED_BACK, BAD) and judgement.decision_id:
            return self._rolled_back_from(judgement.decision_id), ""
        if judgement.status != HEALTHY or self.platforms is None:
            return None, ""
        target = TargetRef.parse(row["target"])
        try:
            _, platform = self.platforms.for_target(target, self.settings.policy_for(row["target"]))
            state = _describe(platform, target)
        except (PlatformError, ValueError, ImportError) as exc:
            return None, f"the platform could not describe {target}: {exc}"
        number = state.current_revision
        if number is None:
            return None, ""
        revision = state.revision(number)
        return (revision.name if revision and revision.name else str(number)), ""

    def _rolled_back_from(self, decision_id: str | None) -> str | None:
        """The platform revision a decision rolled back from, by name when the platform gave one."""
        decision = (self.store.get_decision(decision_id) if decision_id else None) or {}
        number = decision.get("from_revision")
        if number is None:
            return None
        state = (decision.get("inputs") or {}).get("state") or {}
        for revision in state.get("revisions") or ():
            if revision.get("number") == number and revision.get("name"):
                return str(revision["name"])
        return str(number)


def current(store: Store, row: Mapping[str, Any], *, now: float) -> Judgement:
    """The verdict as it stands, for views and gates (Prometheus is not asked here).

    Only the worker stores verdicts (the soak job asks Prometheus first when configured); until it has, a
    deployment is still in progress, in phase ``settling``: a gate only ever reports what is durable.
    """
    if row["status"] in FINAL:
        return judge(row, Facts(), now=now)
    activity = store.deployment_activity(row["target"], float(row["started_at"]))
    judgement = judge(row, build_facts(row, activity), now=now)
    if judgement.final:
        return Judgement(IN_PROGRESS, "settling", f"{judgement.message} (recording the verdict)", judgement.decision_id)
    return judgement


def build_facts(
    row: Mapping[str, Any], activity: Mapping[str, Any], *, sufficient: bool | None = None, detail: str = ""
) -> Facts:
    """:class:`Facts` from :meth:`Store.deployment_activity` (pure)."""
    started = float(row["started_at"])
    decisions = []
    for d in activity["decisions"]:
        inputs = d.get("inputs") or {}
        starts = (inputs.get("alert") or {}).get("starts_at")
        decisions.append(
            {
                **{k: d.get(k) for k in ("id", "action", "status", "mode", "strategy", "to_revision", "reasons")},
                "alert_id": d.get("alert_id"),
                "kill_switch": bool(inputs.get("kill_switch")),
                "alert_started_at": _epoch(starts),
            }
        )
    decided = {d["alert_id"] for d in decisions if d.get("alert_id") is not None}
    evaluating = {j["alert_id"] for j in activity["jobs"] if j["status"] in ("pending", "running")}
    firing, no_data = [], []
    for alert in activity["alerts"]:
        kind = str((alert.get("summary") or {}).get("failure_kind") or "").lower()
        entry = {"id": alert["id"], "name": alert["name"], "starts_at": alert["starts_at"]}
        if kind in NO_DATA_KINDS:
            no_data.append(entry)
        elif float(alert["starts_at"]) >= started:
            firing.append({**entry, "decided": alert["id"] in decided or alert["id"] not in evaluating})
    return Facts(tuple(decisions), tuple(firing), tuple(no_data), sufficient, detail)


def _deployment_id(job: Job) -> str:
    # Keys are deployment:<id>:<what> (see DeploymentStore.register_deployment).
    return job.key.split(":")[1]


def _epoch(value: Any) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return None


def _describe(platform: Platform, target: TargetRef) -> Any:
    try:
        return platform.describe(target)
    except TemporaryError as exc:
        raise PermanentError(str(exc)) from exc
