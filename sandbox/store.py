"""Object storage with the API server's write semantics: resourceVersion, generation, conflicts, GC, events.

Everything happens under one re-entrant lock. A committed write is appended to the event log (for watches)
and handed to the listeners (the controllers) *before* the write returns, so a client that patches a
Deployment and then lists its ReplicaSets sees what the deployment controller did, as kubectl expects
right after ``rollout undo``. Controller writes made from a listener are queued and drained by the
outermost write, so listeners never recurse into each other.
"""

from __future__ import annotations

import builtins
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sandbox.patch import PatchError, PatchTestFailed, apply_patch
from sandbox.resources import BY_ID, RESOURCES, ResourceType
from sandbox.selectors import field_matcher, label_matcher

Obj = dict[str, Any]


def clone(value: Any) -> Any:
    """A deep copy of JSON-shaped data (dicts, lists, scalars); several times faster than copy.deepcopy."""
    if isinstance(value, dict):
        return {k: clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clone(v) for v in value]
    return value


class ApiError(Exception):
    """An error answered as a ``Status`` object (KUBECTL_SANDBOX.md §1.4)."""

    def __init__(self, code: int, reason: str, message: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = dict(details or {})

    def status(self) -> Obj:
        body: Obj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def _qualified(rtype: ResourceType) -> str:
    return f"{rtype.plural}.{rtype.group}" if rtype.group else rtype.plural


def not_found(rtype: ResourceType, name: str) -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'{_qualified(rtype)} "{name}" not found',
        {"name": name, "group": rtype.group, "kind": rtype.plural},
    )


def conflict(rtype: ResourceType, name: str, why: str = "") -> ApiError:
    message = why or "the object has been modified; please apply your changes to the latest version and try again"
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {_qualified(rtype)} "{name}": {message}',
        {"name": name, "group": rtype.group, "kind": rtype.plural},
    )


def invalid(rtype: ResourceType, name: str, message: str) -> ApiError:
    return ApiError(
        422,
        "Invalid",
        f'{rtype.kind} "{name}" is invalid: {message}',
        {"name": name, "group": rtype.group, "kind": rtype.kind},
    )


@dataclass(frozen=True)
class Event:
    rv: int
    rtype: str
    type: str  # ADDED, MODIFIED, DELETED
    object: Obj


#: Admission hook: (store, rtype, new object, old object or None) -> the object to store; raises ApiError.
Admission = Callable[["Store", ResourceType, Obj, "Obj | None"], Obj]
Listener = Callable[["Store", Event], None]


def rfc3339(ts: float, *, micro: bool = False) -> str:
    moment = datetime.fromtimestamp(ts, UTC)
    if micro:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> float | None:
    """Parse ``...Z``, ``...+00:00`` (the Python client's isoformat) and naive forms; None if absent."""
    if not text:
        return None
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


class Store:
    """The sandbox's objects. Public methods take and return deep copies, never live references."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        uid_factory: Callable[[], str] = lambda: str(uuid.uuid4()),
        history: int = 20000,
    ) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.clock = clock
        self._uid = uid_factory
        self._objects: dict[str, dict[tuple[str, str], Obj]] = {r.id: {} for r in RESOURCES}
        self._uids: dict[str, tuple[str, str, str]] = {}
        self.rv = 0
        self.events: deque[Event] = deque(maxlen=history)
        self.admission: dict[str, list[Admission]] = {}
        self.listeners: list[Listener] = []
        self._pending: deque[Event] = deque()
        self._draining = False
        #: Bumped on every committed write; the persistence flusher compares it.
        self.writes = 0

    # ------------------------------------------------------------------------------------------ reads
    def get(self, rtype: ResourceType, namespace: str, name: str) -> Obj:
        with self.lock:
            obj = self._objects[rtype.id].get((namespace, name))
            if obj is None:
                raise not_found(rtype, name)
            return clone(obj)

    def find(self, rtype: ResourceType, namespace: str, name: str) -> Obj | None:
        with self.lock:
            obj = self._objects[rtype.id].get((namespace, name))
            return clone(obj) if obj is not None else None

    def list(
        self,
        rtype: ResourceType,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> tuple[builtins.list[Obj], int]:
        labels, fields = label_matcher(label_selector), field_matcher(field_selector)
        with self.lock:
            items = [
                clone(obj)
                for (ns, _name), obj in sorted(self._objects[rtype.id].items())
                if (namespace is None or ns == namespace) and labels(obj) and fields(obj)
            ]
            return items, self.rv

    def scan(self, rtype: ResourceType, namespace: str | None, predicate: Callable[[Obj], bool]) -> builtins.list[Obj]:
        """Copies of the objects ``predicate`` accepts; it sees live objects and must not change them."""
        with self.lock:
            return [
                clone(obj)
                for (ns, _name), obj in sorted(self._objects[rtype.id].items())
                if (namespace is None or ns == namespace) and predicate(obj)
            ]

    def by_uid(self, uid: str) -> Obj | None:
        with self.lock:
            where = self._uids.get(uid)
            if where is None:
                return None
            return clone(self._objects[where[0]][(where[1], where[2])])

    # ----------------------------------------------------------------------------------------- writes
    def create(self, rtype: ResourceType, namespace: str, obj: Obj, *, dry_run: bool = False) -> Obj:
        with self.lock:
            obj = clone(obj)
            meta = obj.setdefault("metadata", {})
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
            name = meta.get("name")
            if not name:
                raise ApiError(422, "Invalid", f"{rtype.kind}: metadata.name: Required value: name is required")
            if rtype.namespaced:
                if meta.get("namespace") not in (None, namespace):
                    raise ApiError(
                        400,
                        "BadRequest",
                        f"the namespace of the provided object ({meta['namespace']}) does not match the "
                        f"namespace sent on the request ({namespace})",
                    )
                meta["namespace"] = namespace
            key = (namespace if rtype.namespaced else "", name)
            if key in self._objects[rtype.id]:
                raise ApiError(
                    409,
                    "AlreadyExists",
                    f'{_qualified(rtype)} "{name}" already exists',
                    {"name": name, "group": rtype.group, "kind": rtype.plural},
                )
            obj["kind"] = rtype.kind
            obj["apiVersion"] = rtype.api_version()
            meta["uid"] = self._uid()
            meta["creationTimestamp"] = rfc3339(self.clock())
            meta.pop("resourceVersion", None)
            meta.pop("deletionTimestamp", None)
            if rtype.has_status or rtype.custom:
                meta["generation"] = 1
            if rtype.has_status:
                obj.pop("status", None)
            obj = self._admit(rtype, obj, None)
            if dry_run:
                meta = obj["metadata"]
                meta["resourceVersion"] = str(self.rv)
                return obj
            if rtype.namespaced:
                self._ensure_namespace(namespace)
            return self._commit(rtype, key, obj, "ADDED")

    def replace(
        self,
        rtype: ResourceType,
        namespace: str,
        name: str,
        obj: Obj,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> Obj:
        with self.lock:
            current = self._current(rtype, namespace, name)
            wanted = (obj.get("metadata") or {}).get("resourceVersion")
            if wanted and wanted != current["metadata"]["resourceVersion"]:
                raise conflict(rtype, name)
            body_name = (obj.get("metadata") or {}).get("name")
            if body_name and body_name != name:
                raise ApiError(
                    400,
                    "BadRequest",
                    f"the name of the object ({body_name}) does not match the name on the URL ({name})",
                )
            return self._update(rtype, current, clone(obj), subresource=subresource, dry_run=dry_run)

    def patch(
        self,
        rtype: ResourceType,
        namespace: str,
        name: str,
        body: Any,
        content_type: str,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> Obj:
        with self.lock:
            current = self._current(rtype, namespace, name)
            base = current
            if subresource == "scale":
                base = self._scale_of(rtype, current)
            try:
                patched = apply_patch(base, body, content_type)
            except PatchTestFailed as exc:
                raise conflict(rtype, name, str(exc)) from exc
            except PatchError as exc:
                raise ApiError(422, "Invalid", f'{rtype.kind} "{name}" is invalid: {exc}') from exc
            if not isinstance(patched, dict):
                raise ApiError(422, "Invalid", f"the patch for {rtype.kind} {name!r} does not produce an object")
            rv_after = (patched.get("metadata") or {}).get("resourceVersion")
            if rv_after and rv_after != base["metadata"].get("resourceVersion"):
                raise conflict(rtype, name)
            if subresource == "scale":
                patched = self._apply_scale(current, patched)
            return self._update(rtype, current, patched, subresource=subresource, dry_run=dry_run)

    def delete(self, rtype: ResourceType, namespace: str, name: str, *, dry_run: bool = False) -> Obj:
        with self.lock:
            current = self._current(rtype, namespace, name)
            if dry_run:
                return current
            key = (namespace if rtype.namespaced else "", name)
            del self._objects[rtype.id][key]
            self._uids.pop(current["metadata"]["uid"], None)
            self.rv += 1
            current["metadata"]["resourceVersion"] = str(self.rv)
            self._emit(Event(self.rv, rtype.id, "DELETED", clone(current)))
            self._collect_garbage()
            return current

    # ---------------------------------------------------------------------------------------- helpers
    def _current(self, rtype: ResourceType, namespace: str, name: str) -> Obj:
        key = (namespace if rtype.namespaced else "", name)
        obj = self._objects[rtype.id].get(key)
        if obj is None:
            raise not_found(rtype, name)
        return clone(obj)

    def _scale_of(self, rtype: ResourceType, obj: Obj) -> Obj:
        selector = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                "name": obj["metadata"]["name"],
                "namespace": obj["metadata"].get("namespace"),
                "uid": obj["metadata"]["uid"],
                "resourceVersion": obj["metadata"]["resourceVersion"],
                "creationTimestamp": obj["metadata"].get("creationTimestamp"),
            },
            "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
            "status": {
                "replicas": (obj.get("status") or {}).get("replicas", 0),
                "selector": ",".join(f"{k}={v}" for k, v in sorted(selector.items())),
            },
        }

    def scale(self, rtype: ResourceType, namespace: str, name: str) -> Obj:
        with self.lock:
            return self._scale_of(rtype, self._current(rtype, namespace, name))

    @staticmethod
    def _apply_scale(current: Obj, scale: Obj) -> Obj:
        replicas = (scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise ApiError(422, "Invalid", f"Scale.spec.replicas must be a non-negative integer, got {replicas!r}")
        updated = clone(current)
        updated.setdefault("spec", {})["replicas"] = replicas
        return updated

    def replace_scale(self, rtype: ResourceType, namespace: str, name: str, scale: Obj, *, dry_run: bool) -> Obj:
        with self.lock:
            current = self._current(rtype, namespace, name)
            wanted = (scale.get("metadata") or {}).get("resourceVersion")
            if wanted and wanted != current["metadata"]["resourceVersion"]:
                raise conflict(rtype, name)
            return self._update(rtype, current, self._apply_scale(current, scale), subresource="scale", dry_run=dry_run)

    def _update(self, rtype: ResourceType, current: Obj, new: Obj, *, subresource: str | None, dry_run: bool) -> Obj:
        meta = new.setdefault("metadata", {})
        old_meta = current["metadata"]
        for fixed in ("name", "namespace", "uid", "creationTimestamp"):
            if fixed in old_meta:
                meta[fixed] = old_meta[fixed]
            else:
                meta.pop(fixed, None)
        new["kind"] = rtype.kind
        new["apiVersion"] = current.get("apiVersion") or rtype.api_version()
        if subresource == "status":
            # Only status changes through the status subresource.
            status = new.get("status")
            new = clone(current)
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status
        elif rtype.has_status:
            if "status" in current:
                new["status"] = current["status"]
            else:
                new.pop("status", None)
        if "generation" in old_meta:
            meta = new["metadata"]
            meta["generation"] = old_meta["generation"]
            if subresource != "status" and _spec_of(new) != _spec_of(current):
                meta["generation"] = old_meta["generation"] + 1
        if new.get("metadata", {}).get("deletionTimestamp") != old_meta.get("deletionTimestamp"):
            new["metadata"].pop("deletionTimestamp", None)
        new = self._admit(rtype, new, current)
        new["metadata"]["resourceVersion"] = old_meta["resourceVersion"]
        if _strip_rv(new) == _strip_rv(current):
            return new  # a no-op write does not bump resourceVersion, as in the API server
        if dry_run:
            return new
        key = (new["metadata"].get("namespace", "") if rtype.namespaced else "", new["metadata"]["name"])
        return self._commit(rtype, key, new, "MODIFIED")

    def _admit(self, rtype: ResourceType, obj: Obj, old: Obj | None) -> Obj:
        for hook in self.admission.get(rtype.id, []):
            obj = hook(self, rtype, obj, old)
        return obj

    def _ensure_namespace(self, namespace: str) -> None:
        ns_type = BY_ID["/namespaces"]
        if ("", namespace) in self._objects[ns_type.id]:
            return
        obj = {
            "kind": "Namespace",
            "apiVersion": "v1",
            "metadata": {
                "name": namespace,
                "uid": self._uid(),
                "creationTimestamp": rfc3339(self.clock()),
                "labels": {"kubernetes.io/metadata.name": namespace},
            },
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        }
        self._commit(ns_type, ("", namespace), obj, "ADDED")

    def _commit(self, rtype: ResourceType, key: tuple[str, str], obj: Obj, kind: str) -> Obj:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self._objects[rtype.id][key] = obj
        self._uids[obj["metadata"]["uid"]] = (rtype.id, key[0], key[1])
        self._emit(Event(self.rv, rtype.id, kind, clone(obj)))
        return clone(obj)

    def _emit(self, event: Event) -> None:
        self.writes += 1
        self.events.append(event)
        self.changed.notify_all()
        self._pending.append(event)
        if self._draining:
            return
        self._draining = True
        try:
            while self._pending:
                pending = self._pending.popleft()
                for listener in list(self.listeners):
                    listener(self, pending)
        finally:
            self._draining = False
            self._pending.clear()

    def _collect_garbage(self) -> None:
        """Background-cascade deletion: remove objects whose every owner is gone (owners of any kind)."""
        while True:
            orphans = []
            for rtype_id, objects in self._objects.items():
                for (ns, name), obj in objects.items():
                    owners = obj["metadata"].get("ownerReferences") or []
                    if owners and all(ref.get("uid") not in self._uids for ref in owners):
                        orphans.append((BY_ID[rtype_id], ns, name))
            if not orphans:
                return
            for rtype, ns, name in orphans:
                if (ns, name) in self._objects[rtype.id]:
                    self.delete(rtype, ns, name)

    # ----------------------------------------------------------------------------------------- watch
    def oldest_event_rv(self) -> int:
        with self.lock:
            return self.events[0].rv if self.events else self.rv

    def events_after(self, rv: int, rtypes: Iterable[str]) -> builtins.list[Event]:
        wanted = set(rtypes)
        with self.lock:
            return [e for e in self.events if e.rv > rv and e.rtype in wanted]

    # ----------------------------------------------------------------------------------- persistence
    def dump(self) -> Obj:
        with self.lock:
            return {
                "resourceVersion": self.rv,
                "objects": {
                    rtype_id: [clone(obj) for _key, obj in sorted(objects.items())]
                    for rtype_id, objects in self._objects.items()
                    if objects
                },
            }

    def load(self, data: Mapping[str, Any]) -> None:
        """Replace everything with a :meth:`dump` (no events or controllers: the state is settled)."""
        with self.lock:
            self._objects = {r.id: {} for r in RESOURCES}
            self._uids.clear()
            self.events.clear()
            for rtype_id, items in (data.get("objects") or {}).items():
                rtype = BY_ID.get(rtype_id)
                if rtype is None:
                    continue
                for obj in items:
                    meta = obj["metadata"]
                    key = (meta.get("namespace", "") if rtype.namespaced else "", meta["name"])
                    self._objects[rtype.id][key] = obj
                    self._uids[meta["uid"]] = (rtype.id, key[0], key[1])
            self.rv = int(data.get("resourceVersion", 0))
            self.changed.notify_all()


def _spec_of(obj: Mapping[str, Any]) -> Any:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "kind", "apiVersion")}


def _strip_rv(obj: Mapping[str, Any]) -> Any:
    out = dict(obj)
    out["metadata"] = {k: v for k, v in obj.get("metadata", {}).items() if k != "resourceVersion"}
    return out
