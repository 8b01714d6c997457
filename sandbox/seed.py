"""Seeds for the sandbox, and the small "deploy" helpers a seed (or the live loop) builds revisions with.

The ``demo`` seed, namespace ``shop``, release ``shop`` (docs/kubernetes.md has the picture). Each workload
has two revisions, so every strategy has somewhere to go back to:

- ``payments``: Deployment; revision 2 also edited ConfigMap ``payments-config`` in place (snapshots of
  both revisions exist): ``undo`` brings the config back too.
- ``checkout``: Deployment depending on ``payments``, ConfigMap ``checkout-config``: ``partial``.
- ``frontend``: canary pair ``frontend`` / ``frontend-canary``, Istio VirtualService 40/60: ``progressive``.
- ``catalog``: canary pair, NGINX canary Ingress at 60 %: ``progressive``.
- ``reviews``: canary pair, Gateway API HTTPRoute at 40/60: ``progressive``.
- ``inventory``: canary pair behind one Service, 2 + 2 replicas (replica ratio): ``progressive``.
- ``cart``: Service ``cart`` switching ``cart-blue`` / ``cart-green`` (green active): ``blue_green``.
- ``search``: Argo Rollout, canary at 25 % through Istio (Argo owns the weights): ``undo`` (abort + undo),
  ``progressive`` (one step to 0).
- ``recommendations``: Argo blue-green Rollout, revision 2 promoted, revision 1 still up: ``blue_green``.

Dependencies: ``frontend`` → ``checkout``, ``cart``; ``checkout`` → ``payments``.

The live loop deploys a faulty revision with :func:`roll` (after :func:`snapshot`, as the reactor does when
a deploy is registered).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence

from sandbox.controllers import ARGO_HASH_LABEL, HASH_LABEL, controlled_by, templates_equal
from sandbox.resources import BY_ID, BY_KIND
from sandbox.store import ApiError, Obj, Store, clone, rfc3339
from strategies.kubernetes import names, snapshots

REGISTRY = "registry.local/shop"


def apply(store: Store, obj: Obj) -> Obj:
    """Create ``obj``, or replace the stored one keeping its status (a small ``kubectl apply``)."""
    rtype = BY_KIND[obj["kind"]]
    meta = obj["metadata"]
    namespace = meta.get("namespace", "")
    current = store.find(rtype, namespace, meta["name"])
    if current is None:
        return store.create(rtype, namespace, obj)
    body = copy.deepcopy(obj)
    body["metadata"] = {**current["metadata"], **meta}
    body["metadata"].pop("resourceVersion", None)
    return store.replace(rtype, namespace, meta["name"], body)


def workload(
    kind: str,
    name: str,
    namespace: str,
    image: str,
    *,
    app: str,
    replicas: int = 2,
    labels: Mapping[str, str] | None = None,
    pod_labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    config_map: str | None = None,
    change_cause: str = "initial",
) -> Obj:
    """A Deployment (or Argo Rollout, ``kind="Rollout"``) running one container ``app`` with ``image``."""
    selector = {"app": app, **(pod_labels or {})}
    container: Obj = {"name": app, "image": image, "ports": [{"containerPort": 8080}]}
    if config_map:
        container["envFrom"] = [{"configMapRef": {"name": config_map}}]
    return {
        "apiVersion": "argoproj.io/v1alpha1" if kind == "Rollout" else "apps/v1",
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app": app, **(labels or {})},
            "annotations": {names.CHANGE_CAUSE: change_cause, **(annotations or {})},
        },
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": 10,
            "selector": {"matchLabels": selector},
            "template": {"metadata": {"labels": dict(selector)}, "spec": {"containers": [container]}},
        },
    }


def service(
    name: str, namespace: str, selector: Mapping[str, str], annotations: Mapping[str, str] | None = None
) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "annotations": dict(annotations or {})},
        "spec": {"selector": dict(selector), "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
    }


def config_map(name: str, namespace: str, data: Mapping[str, str]) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": dict(data),
    }


def roll(
    store: Store,
    namespace: str,
    name: str,
    image: str,
    *,
    change_cause: str,
    kind: str = "Deployment",
    config: Mapping[str, Mapping[str, str]] | None = None,
    pod_annotations: Mapping[str, str] | None = None,
) -> Obj:
    """Deploy a new revision: edit ``config`` ConfigMaps in place, then ``kubectl set image``."""
    for cm_name, data in (config or {}).items():
        cm = store.get(BY_KIND["ConfigMap"], namespace, cm_name)
        cm["data"] = {**(cm.get("data") or {}), **data}
        store.replace(BY_KIND["ConfigMap"], namespace, cm_name, cm)
    rtype = BY_KIND[kind]
    obj = store.get(rtype, namespace, name)
    template = obj["spec"]["template"]
    template["spec"]["containers"][0]["image"] = image
    if pod_annotations:
        template["metadata"].setdefault("annotations", {}).update(pod_annotations)
    obj["metadata"].setdefault("annotations", {})[names.CHANGE_CAUSE] = change_cause
    return store.replace(rtype, namespace, name, obj)


def snapshot(store: Store, namespace: str, name: str, *, kind: str = "Deployment") -> list[str]:
    """Snapshot the config the current revision of ``name`` references (as the platform does)."""
    rtype = BY_KIND[kind]
    owner = store.get(rtype, namespace, name)
    label = ARGO_HASH_LABEL if kind == "Rollout" else HASH_LABEL
    replicasets, _ = store.list(BY_ID["apps/replicasets"], namespace)
    current = next(
        (
            rs
            for rs in replicasets
            if controlled_by(rs, owner["metadata"]["uid"])
            and templates_equal(rs["spec"]["template"], owner["spec"]["template"], label)
        ),
        None,
    )
    if current is None:
        raise ApiError(409, "Conflict", f"{kind} {name} has no ReplicaSet for its current template yet")
    digest = current["metadata"]["labels"][label]
    made = []
    for ref_kind, ref_name in snapshots.referenced_config(owner["spec"]["template"]):
        source = store.find(BY_KIND[ref_kind], namespace, ref_name)
        snap_name = snapshots.snapshot_name(ref_name, digest)
        if source is None or store.find(BY_KIND[ref_kind], namespace, snap_name) is not None:
            continue
        body = snapshots.snapshot_object(
            ref_kind,
            source,
            workload=name,
            template_hash=digest,
            owner=current,
            taken_at=rfc3339(store.clock()),
        )
        store.create(BY_KIND[ref_kind], namespace, body)
        made.append(snap_name)
    return made


def _pair(
    store: Store,
    ns: str,
    app: str,
    versions: Sequence[str],
    canary_version: str,
    *,
    annotations: Mapping[str, str],
    stable_replicas: int = 2,
    canary_replicas: int = 1,
    canary_service: bool = False,
) -> None:
    """A stable Deployment with two revisions and a ``<app>-canary`` Deployment running the canary.

    Pods carry ``track: stable|canary``. With ``canary_service`` each side gets its own Service (what
    NGINX and Gateway API routers point at); otherwise one Service ``<app>`` selects both.
    """
    apply(
        store,
        workload(
            "Deployment",
            app,
            ns,
            f"{REGISTRY}/{app}:{versions[0]}",
            app=app,
            replicas=stable_replicas,
            pod_labels={"track": "stable"},
            labels={names.RELEASE: "shop"},
            annotations=annotations,
        ),
    )
    roll(store, ns, app, f"{REGISTRY}/{app}:{versions[1]}", change_cause=f"release {versions[1]}")
    apply(
        store,
        workload(
            "Deployment",
            f"{app}-canary",
            ns,
            f"{REGISTRY}/{app}:{canary_version}",
            app=app,
            replicas=canary_replicas,
            pod_labels={"track": "canary"},
            change_cause=f"canary {canary_version}",
        ),
    )
    if canary_service:
        apply(store, service(app, ns, {"app": app, "track": "stable"}))
        apply(store, service(f"{app}-canary", ns, {"app": app, "track": "canary"}))
    else:
        apply(store, service(app, ns, {"app": app}))


def seed_demo(store: Store) -> None:
    ns = "shop"
    release = {names.RELEASE: "shop"}

    # payments: plain Deployment whose revision 2 also edited its ConfigMap in place.
    apply(store, config_map("payments-config", ns, {"TIMEOUT_MS": "800", "FEATURE_3DS": "off"}))
    apply(
        store,
        workload(
            "Deployment",
            "payments",
            ns,
            f"{REGISTRY}/payments:1.4.0",
            app="payments",
            labels=release,
            config_map="payments-config",
        ),
    )
    snapshot(store, ns, "payments")
    roll(store, ns, "payments", f"{REGISTRY}/payments:1.5.0", change_cause="release 1.5.0",
         config={"payments-config": {"TIMEOUT_MS": "1200", "FEATURE_3DS": "on"}})  # fmt: skip
    snapshot(store, ns, "payments")
    apply(store, service("payments", ns, {"app": "payments"}))

    # checkout: depends on payments.
    apply(store, config_map("checkout-config", ns, {"PAYMENTS_URL": "http://payments", "RETRIES": "2"}))
    apply(
        store,
        workload(
            "Deployment",
            "checkout",
            ns,
            f"{REGISTRY}/checkout:3.1.0",
            app="checkout",
            labels=release,
            annotations={names.DEPENDS_ON: "payments"},
            config_map="checkout-config",
        ),
    )
    snapshot(store, ns, "checkout")
    roll(store, ns, "checkout", f"{REGISTRY}/checkout:3.2.0", change_cause="release 3.2.0",
         config={"checkout-config": {"RETRIES": "5"}})  # fmt: skip
    snapshot(store, ns, "checkout")
    apply(store, service("checkout", ns, {"app": "checkout"}))

    # frontend: Istio canary pair, the canary at 60 % (every default step applies: 50, 20, 0).
    _pair(
        store,
        ns,
        "frontend",
        ("2.0.0", "2.1.0"),
        "2.2.0",
        annotations={
            names.ROUTER: "istio",
            names.CANARY: "frontend-canary",
            names.STABLE_BACKEND: "stable",
            names.CANARY_BACKEND: "canary",
            names.DEPENDS_ON: "checkout,cart",
        },
    )
    apply(
        store,
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "DestinationRule",
            "metadata": {"name": "frontend", "namespace": ns},
            "spec": {
                "host": "frontend",
                "subsets": [
                    {"name": "stable", "labels": {"track": "stable"}},
                    {"name": "canary", "labels": {"track": "canary"}},
                ],
            },
        },
    )
    apply(store, _virtual_service(ns, "frontend", [("frontend", "stable", 40), ("frontend", "canary", 60)]))

    # catalog: NGINX canary Ingress at 60.
    _pair(
        store,
        ns,
        "catalog",
        ("1.8.0", "1.9.0"),
        "2.0.0",
        annotations={names.ROUTER: "nginx"},
        canary_service=True,
    )
    apply(store, _ingress(ns, "catalog", "catalog", canary_weight=None))
    apply(store, _ingress(ns, "catalog-canary", "catalog-canary", canary_weight=60))

    # reviews: Gateway API HTTPRoute 40/60.
    _pair(
        store,
        ns,
        "reviews",
        ("5.0.0", "5.1.0"),
        "5.2.0",
        annotations={names.ROUTER: "gateway"},
        canary_service=True,
    )
    apply(
        store,
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "reviews", "namespace": ns},
            "spec": {
                "parentRefs": [{"name": "shop-gateway"}],
                "hostnames": ["reviews.shop.local"],
                "rules": [
                    {
                        "backendRefs": [
                            {"name": "reviews", "port": 80, "weight": 40},
                            {"name": "reviews-canary", "port": 80, "weight": 60},
                        ]
                    }
                ],
            },
        },
    )

    # inventory: no router, replica ratio 2:2 behind one Service.
    _pair(
        store,
        ns,
        "inventory",
        ("0.9.0", "1.0.0"),
        "1.1.0",
        annotations={names.ROUTER: "replicas"},
        stable_replicas=2,
        canary_replicas=2,
    )

    # cart: blue-green Service pair, green (new) active.
    for color, versions in (("blue", ("2.2.0", "2.3.0")), ("green", ("2.3.0", "2.4.0"))):
        apply(
            store,
            workload(
                "Deployment",
                f"cart-{color}",
                ns,
                f"{REGISTRY}/cart:{versions[0]}",
                app="cart",
                pod_labels={"color": color},
            ),
        )
        roll(
            store,
            ns,
            f"cart-{color}",
            f"{REGISTRY}/cart:{versions[1]}",
            change_cause=f"release {versions[1]}",
        )
    cart = service(
        "cart",
        ns,
        {"app": "cart", "color": "green"},
        {names.COLOR_LABEL: "color", names.COLORS: "blue=cart-blue,green=cart-green"},
    )
    cart["metadata"]["labels"] = dict(release)
    apply(store, cart)

    # search: Argo canary through Istio, revision 2 at 25 %.
    apply(
        store,
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "DestinationRule",
            "metadata": {"name": "search", "namespace": ns},
            "spec": {
                "host": "search",
                "subsets": [
                    {"name": "stable", "labels": {"app": "search"}},
                    {"name": "canary", "labels": {"app": "search"}},
                ],
            },
        },
    )
    apply(store, _virtual_service(ns, "search", [("search", "stable", 100), ("search", "canary", 0)]))
    apply(store, service("search", ns, {"app": "search"}))
    rollout = workload("Rollout", "search", ns, f"{REGISTRY}/search:1.0.0", app="search", labels=release)
    rollout["spec"]["strategy"] = {
        "canary": {
            "steps": [{"setWeight": 25}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}],
            "trafficRouting": {
                "istio": {
                    "virtualService": {"name": "search", "routes": ["primary"]},
                    "destinationRule": {
                        "name": "search",
                        "stableSubsetName": "stable",
                        "canarySubsetName": "canary",
                    },
                }
            },
        }
    }
    apply(store, rollout)
    roll(store, ns, "search", f"{REGISTRY}/search:1.1.0", change_cause="release 1.1.0", kind="Rollout")

    # recommendations: Argo blue-green, revision 2 promoted, revision 1 kept up for an hour.
    apply(store, service("recommendations", ns, {"app": "recommendations"}))
    apply(store, service("recommendations-preview", ns, {"app": "recommendations"}))
    bg = workload(
        "Rollout",
        "recommendations",
        ns,
        f"{REGISTRY}/recommendations:4.0.0",
        app="recommendations",
        labels=release,
    )
    bg["spec"]["strategy"] = {
        "blueGreen": {
            "activeService": "recommendations",
            "previewService": "recommendations-preview",
            "autoPromotionEnabled": True,
            "scaleDownDelaySeconds": 3600,
        }
    }
    apply(store, bg)
    roll(
        store,
        ns,
        "recommendations",
        f"{REGISTRY}/recommendations:4.1.0",
        change_cause="release 4.1.0",
        kind="Rollout",
    )


def _virtual_service(namespace: str, name: str, routes: Sequence[tuple[str, str, int]]) -> Obj:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "hosts": [name],
            "http": [
                {
                    "name": "primary",
                    "route": [
                        {"destination": {"host": host, "subset": subset}, "weight": weight}
                        for host, subset, weight in routes
                    ],
                }
            ],
        },
    }


def _ingress(namespace: str, name: str, backend: str, *, canary_weight: int | None) -> Obj:
    annotations = {}
    if canary_weight is not None:
        annotations = {names.NGINX_CANARY: "true", names.NGINX_WEIGHT: str(canary_weight)}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
        "spec": {
            "ingressClassName": "nginx",
            "rules": [
                {
                    "host": "shop.local",
                    "http": {
                        "paths": [
                            {
                                "path": f"/{backend.removesuffix('-canary')}",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": backend, "port": {"number": 80}}},
                            }
                        ]
                    },
                }
            ],
        },
    }


def empty(_store: Store) -> None:
    """No objects at all."""


#: Seed name -> function that fills a fresh store (with the controllers attached).
SEEDS: dict[str, Callable[[Store], None]] = {"demo": seed_demo, "empty": empty}
_SEEDED: dict[str, Obj] = {}


def seeded_state(name: str) -> Obj:
    """A dump of a store filled by seed ``name``; computed once per process, a fresh copy each call.

    Seeding runs every controller reaction of dozens of writes; loading the settled result is what makes
    a fresh sandbox per test cheap.
    """
    if name not in SEEDS:
        raise ValueError(f"unknown seed {name!r}; known: {', '.join(sorted(SEEDS))}")
    if name not in _SEEDED:
        from sandbox.controllers import Controllers

        store = Store()
        Controllers(store)
        SEEDS[name](store)
        _SEEDED[name] = store.dump()
    return clone(_SEEDED[name])
