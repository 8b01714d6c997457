"""Config snapshots: the ConfigMaps and Secrets a revision referenced, kept so a rollback restores them.

Rolling a pod template back does not roll back a ConfigMap edited in place (argo-rollouts #1297/#2669:
stable pods come back with the new config). So, for each revision, we keep a copy of every ConfigMap and
Secret its pod template references:

- **name** ``<source>.snapshot-<hash>``, where ``<hash>`` is the revision's ReplicaSet
  ``pod-template-hash`` (``rollouts-pod-template-hash`` for Argo). The hash, unlike the revision number,
  survives ``rollout undo`` re-numbering;
- **labels** ``smart-rollback.io/snapshot=true``, ``smart-rollback.io/workload=<deployment>``,
  ``smart-rollback.io/pod-template-hash=<hash>``, ``smart-rollback.io/snapshot-kind=ConfigMap|Secret``;
  **annotation** ``smart-rollback.io/snapshot-of=<source name>`` (names may exceed a label's 63 chars);
- **owner reference** to the revision's ReplicaSet, so the cluster's garbage collector deletes the
  snapshot when ``revisionHistoryLimit`` prunes that revision: retention follows the rollout history;
- ``immutable: true``: a snapshot never changes after it is taken.

A snapshot is taken by :meth:`KubernetesPlatform.snapshot` (call it when a deploy is registered, before the
new revision rolls out) and automatically for the current revision before every revert (so rolling
forward again restores the newer config). Restoring writes the snapshot's data back into the live object
(PUT with its resourceVersion; 409 retried on a fresh read), or re-creates it if it was deleted.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from strategies.kubernetes import names

KINDS = ("ConfigMap", "Secret")


def referenced_config(template: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``[(kind, name)]`` of every ConfigMap/Secret a pod template references, in a stable order."""
    found: set[tuple[str, str]] = set()
    spec = template.get("spec") or {}
    for volume in spec.get("volumes") or []:
        if (volume.get("configMap") or {}).get("name"):
            found.add(("ConfigMap", volume["configMap"]["name"]))
        if (volume.get("secret") or {}).get("secretName"):
            found.add(("Secret", volume["secret"]["secretName"]))
        for source in (volume.get("projected") or {}).get("sources") or []:
            if (source.get("configMap") or {}).get("name"):
                found.add(("ConfigMap", source["configMap"]["name"]))
            if (source.get("secret") or {}).get("name"):
                found.add(("Secret", source["secret"]["name"]))
    for key in ("containers", "initContainers"):
        for container in spec.get(key) or []:
            for env_from in container.get("envFrom") or []:
                if (env_from.get("configMapRef") or {}).get("name"):
                    found.add(("ConfigMap", env_from["configMapRef"]["name"]))
                if (env_from.get("secretRef") or {}).get("name"):
                    found.add(("Secret", env_from["secretRef"]["name"]))
            for env in container.get("env") or []:
                source = env.get("valueFrom") or {}
                if (source.get("configMapKeyRef") or {}).get("name"):
                    found.add(("ConfigMap", source["configMapKeyRef"]["name"]))
                if (source.get("secretKeyRef") or {}).get("name"):
                    found.add(("Secret", source["secretKeyRef"]["name"]))
    return sorted(found)


def snapshot_name(source: str, template_hash: str) -> str:
    return f"{source}.snapshot-{template_hash}"[:253].rstrip(".-")


def content(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a ConfigMap/Secret a rollback restores."""
    keys = ("data", "binaryData") if obj.get("kind", "ConfigMap") == "ConfigMap" else ("data", "stringData", "type")
    return {k: copy.deepcopy(obj[k]) for k in keys if obj.get(k) not in (None, {})}


def snapshot_object(
    kind: str,
    source: Mapping[str, Any],
    *,
    workload: str,
    template_hash: str,
    owner: Mapping[str, Any],
    taken_at: str,
) -> dict[str, Any]:
    """The snapshot of ``source`` for the revision whose ReplicaSet is ``owner``."""
    meta = source.get("metadata") or {}
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": kind,
        "metadata": {
            "name": snapshot_name(meta["name"], template_hash),
            "namespace": meta.get("namespace"),
            "labels": {
                names.SNAPSHOT: "true",
                names.SNAPSHOT_WORKLOAD: names.label_value(workload),
                names.SNAPSHOT_HASH: template_hash,
                names.SNAPSHOT_KIND: kind,
            },
            "annotations": {
                names.SNAPSHOT_OF: meta["name"],
                names.SNAPSHOT_TAKEN: taken_at,
                names.SNAPSHOT_SOURCE_RV: str(meta.get("resourceVersion", "")),
            },
            "ownerReferences": [
                {
                    "apiVersion": owner.get("apiVersion", "apps/v1"),
                    "kind": owner.get("kind", "ReplicaSet"),
                    "name": owner["metadata"]["name"],
                    "uid": owner["metadata"]["uid"],
                    "controller": False,
                }
            ],
        },
        "immutable": True,
    }
    body.update(content({**source, "kind": kind}))
    body.pop("stringData", None)
    return body


def restored(live: Mapping[str, Any] | None, snapshot: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """The live object with the snapshot's content (or a new one named after the source, if it is gone)."""
    source = (snapshot.get("metadata") or {}).get("annotations", {}).get(names.SNAPSHOT_OF)
    if live is None:
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": kind,
            "metadata": {"name": source, "namespace": snapshot["metadata"].get("namespace")},
        }
    else:
        body = copy.deepcopy(dict(live))
        for key in ("data", "binaryData", "stringData"):
            body.pop(key, None)
        body["metadata"] = {
            k: v for k, v in (live.get("metadata") or {}).items() if k not in ("managedFields", "creationTimestamp")
        }
    body.update(content({**snapshot, "kind": kind}))
    return body
