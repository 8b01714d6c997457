"""The RBAC rules in deploy/kubernetes/clusterrole.yaml are exactly what the platform uses: checked on the wire.

Every strategy × router case of test_matrix.py runs on a fresh demo sandbox, plus the per-target Lease
lock; each request the sandbox received becomes the (API group, resource, verb) an RBAC authorizer would
check. Every one of them must be granted by the documented rules, and every documented grant must be used
here or be listed in ``NOT_EXERCISED`` with the code path that needs it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import yaml

from sandbox.server import RequestRecord, SandboxServer
from strategies import STRATEGIES, OutcomeStatus, RollbackRequest, TargetRef
from strategies.context import MemoryContext
from strategies.kubernetes.platform import KubernetesPlatform
from tests.conftest import ROOT
from tests.strategies.test_matrix import CASES

#: The platform's RBAC rules; docs/kubernetes.md#rbac points here instead of repeating them.
RULES = ROOT / "deploy" / "kubernetes" / "clusterrole.yaml"
Grant = tuple[str, str, str]  # (API group, resource[/subresource], verb)

#: Documented grants this test cannot reach on the demo seed, and the code that needs them.
NOT_EXERCISED: dict[Grant, str] = {
    ("", "configmaps", "create"): "snapshot of config that has none yet; restore of a deleted ConfigMap",
    ("", "secrets", "get"): "templates that reference a Secret (the demo references ConfigMaps only)",
    ("", "secrets", "create"): "snapshot / restore of a referenced Secret",
    ("", "secrets", "update"): "restore of a referenced Secret",
}

PATH = re.compile(
    r"^/(?:api/v1|apis/(?P<group>[^/]+)/[^/]+)(?:/namespaces/[^/]+)?/(?P<res>[^/]+)(?:/(?P<name>[^/]+)(?:/(?P<sub>[^/]+))?)?$"
)


def grants_used(records: Iterable[RequestRecord]) -> set[Grant]:
    """What an RBAC authorizer checks for each request: a GET of a collection is ``list``, and so on."""
    used: set[Grant] = set()
    for record in records:
        method, path, query = record.method, record.path, record.query
        match = PATH.match(path)
        assert match, f"a request outside the resource API: {method} {path}"
        resource = match["res"] + (f"/{match['sub']}" if match["sub"] else "")
        if method == "GET":
            verb = "get" if match["name"] else ("watch" if query.get("watch") else "list")
        else:
            verb = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}[method]
        used.add((match["group"] or "", resource, verb))
    return used


def documented_grants() -> set[Grant]:
    """The grants of the ClusterRole the manifests install: the one place the rules are written."""
    role = yaml.safe_load(RULES.read_text())
    assert role["kind"] == "ClusterRole", f"{RULES}: expected the ClusterRole, got {role['kind']}"
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_the_documented_rbac_rules_are_what_the_platform_uses(
    platform: KubernetesPlatform, sandbox: SandboxServer
) -> None:
    used: set[Grant] = set()
    for strategy, name, options, _entry, _workload in CASES:
        sandbox.reset("demo")
        sandbox.clear_requests()
        target = TargetRef("kubernetes", "demo", "shop", name)
        implementation = STRATEGIES[strategy]()
        plan = implementation.plan(platform, RollbackRequest(target, wait_timeout=5, **options))
        outcome = implementation.execute(platform, plan, MemoryContext(sleep=lambda _s: None))
        assert outcome.status is OutcomeStatus.SUCCEEDED, (strategy, name, outcome.message)
        assert implementation.verify(platform, plan)
        used |= grants_used(sandbox.requests)
    sandbox.clear_requests()
    lock = platform.lock(TargetRef("kubernetes", "demo", "shop", "payments"), "reactor-0", duration=15)
    assert lock.acquire() and lock.renew()
    lock.release()
    used |= grants_used(sandbox.requests)

    documented = documented_grants()
    assert not used - documented, f"used but not granted in {RULES.relative_to(ROOT)}: {sorted(used - documented)}"
    unused = documented - used - set(NOT_EXERCISED)
    assert not unused, f"granted in {RULES.relative_to(ROOT)} but never used: {sorted(unused)}"
    assert not set(NOT_EXERCISED) - documented


def test_the_docs_point_to_the_rules_instead_of_repeating_them() -> None:
    """A second copy of the rules in the docs would drift from the one this test checks."""
    text = (ROOT / "docs" / "kubernetes.md").read_text()
    section = text[text.index("## RBAC") : text.index("\n## ", text.index("## RBAC") + 1)]
    assert "deploy/kubernetes/clusterrole.yaml" in section
    assert "apiGroups" not in section, "docs/kubernetes.md#rbac repeats rules: link the file instead"
