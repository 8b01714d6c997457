"""Server-side printing: the ``meta.k8s.io/v1`` Table that ``kubectl get`` asks for.

kubectl prints the columns the server gives it, so the server supplies ``Name`` itself; ``rows[].object``
must be a ``PartialObjectMetadata`` (or the full object with ``includeObject=Object``), or the NAMESPACE
column goes blank and ``--sort-by`` panics (KUBECTL_SANDBOX.md §3.3). The deployment columns are those of a
real apiserver.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sandbox.resources import ResourceType
from sandbox.store import Obj, parse_time

TABLE_CONTENT_TYPE = "application/json;as=Table;v=v1;g=meta.k8s.io"


def wants_table(accept: str) -> bool:
    first = accept.split(",", 1)[0]
    return "as=Table" in first


def human_age(seconds: float) -> str:
    """Roughly ``k8s.io/apimachinery/pkg/util/duration.HumanDuration``."""
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        rest = seconds % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 48:
        rest = minutes % 60
        return f"{hours}h{rest}m" if hours < 8 and rest else f"{hours}h"
    days = hours // 24
    return f"{days}d" if days < 365 * 2 else f"{days // 365}y"


def _age(obj: Obj, now: float) -> str:
    created = parse_time((obj.get("metadata") or {}).get("creationTimestamp"))
    return "<unknown>" if created is None else human_age(now - created)


Column = tuple[str, str, int, Callable[[Obj, float], Any]]


def _containers(obj: Obj) -> list[Obj]:
    spec = obj.get("spec") or {}
    template = spec.get("template") or {}
    return (template.get("spec") or {}).get("containers") or spec.get("containers") or []


def _selector(obj: Obj) -> str:
    labels = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


_COMMON_TAIL: list[Column] = [("Age", "string", 0, _age)]

COLUMNS: dict[str, list[Column]] = {
    "Deployment": [
        (
            "Ready",
            "string",
            0,
            lambda o, _n: (
                f"{(o.get('status') or {}).get('readyReplicas', 0)}/{(o.get('spec') or {}).get('replicas', 0)}"
            ),
        ),
        ("Up-to-date", "integer", 0, lambda o, _n: (o.get("status") or {}).get("updatedReplicas", 0)),
        ("Available", "integer", 0, lambda o, _n: (o.get("status") or {}).get("availableReplicas", 0)),
        *_COMMON_TAIL,
        ("Containers", "string", 1, lambda o, _n: ",".join(c.get("name", "") for c in _containers(o))),
        ("Images", "string", 1, lambda o, _n: ",".join(c.get("image", "") for c in _containers(o))),
        ("Selector", "string", 1, lambda o, _n: _selector(o)),
    ],
    "ReplicaSet": [
        ("Desired", "integer", 0, lambda o, _n: (o.get("spec") or {}).get("replicas", 0)),
        ("Current", "integer", 0, lambda o, _n: (o.get("status") or {}).get("replicas", 0)),
        ("Ready", "integer", 0, lambda o, _n: (o.get("status") or {}).get("readyReplicas", 0)),
        *_COMMON_TAIL,
        ("Containers", "string", 1, lambda o, _n: ",".join(c.get("name", "") for c in _containers(o))),
        ("Images", "string", 1, lambda o, _n: ",".join(c.get("image", "") for c in _containers(o))),
    ],
    "Pod": [
        (
            "Ready",
            "string",
            0,
            lambda o, _n: "{}/{}".format(
                sum(1 for c in (o.get("status") or {}).get("containerStatuses") or [] if c.get("ready")),
                len(_containers(o)),
            ),
        ),
        ("Status", "string", 0, lambda o, _n: (o.get("status") or {}).get("phase", "Pending")),
        ("Restarts", "integer", 0, lambda o, _n: 0),
        *_COMMON_TAIL,
    ],
    "Service": [
        ("Type", "string", 0, lambda o, _n: (o.get("spec") or {}).get("type", "ClusterIP")),
        ("Cluster-IP", "string", 0, lambda o, _n: (o.get("spec") or {}).get("clusterIP", "<none>")),
        ("External-IP", "string", 0, lambda o, _n: "<none>"),
        (
            "Ports",
            "string",
            0,
            lambda o, _n: (
                ",".join(
                    f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in (o.get("spec") or {}).get("ports") or []
                )
                or "<none>"
            ),
        ),
        *_COMMON_TAIL,
        (
            "Selector",
            "string",
            1,
            lambda o, _n: ",".join(
                f"{k}={v}" for k, v in sorted(((o.get("spec") or {}).get("selector") or {}).items())
            ),
        ),
    ],
}


def _partial(obj: Obj) -> Obj:
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata") or {},
    }


def table(rtype: ResourceType, items: list[Obj], resource_version: int, now: float, include: str) -> Obj:
    columns = [
        ("Name", "string", 0, lambda o, _n: o["metadata"]["name"]),
        *COLUMNS.get(rtype.kind, _COMMON_TAIL),
    ]
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": str(resource_version)},
        "columnDefinitions": [
            {
                "name": name,
                "type": kind,
                "format": "name" if name == "Name" else "",
                "description": "",
                "priority": prio,
            }
            for name, kind, prio, _fn in columns
        ],
        "rows": [
            {
                "cells": [fn(obj, now) for _name, _kind, _prio, fn in columns],
                "object": obj if include == "Object" else _partial(obj),
            }
            for obj in items
        ],
    }
