"""What the deploy tests share: the manifests as kubectl renders them, and lookups across them."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from reactor.cli import main
from tests.conftest import ROOT
from tests.sandbox.support import kubectl_path

KUBE = ROOT / "deploy" / "kubernetes"
#: Applied by hand (docs/deploy.md), so outside kustomization.yaml: placeholder credentials must never be
#: installed by `kubectl apply -k`, and the target namespaces are the user's.
EXAMPLES = (KUBE / "secret.example.yaml", KUBE / "rolebinding-target.example.yaml")

Obj = dict[str, Any]


@pytest.fixture(scope="session")
def kubectl() -> str:
    return kubectl_path()


@pytest.fixture(scope="session")
def rendered(kubectl: str) -> list[Obj]:
    """``kubectl kustomize deploy/kubernetes`` (what ``apply -k`` sends), then the example files."""
    result = subprocess.run([kubectl, "kustomize", str(KUBE)], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    for example in EXAMPLES:
        docs += [d for d in yaml.safe_load_all(example.read_text()) if d]
    return docs


def find(docs: list[Obj], kind: str, name: str | None = None) -> Obj:
    """The one object of ``kind`` (and ``name``); a clear failure when there are none or several."""
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {[d['metadata']['name'] for d in found]}"
    return found[0]


def container(deployment: Obj) -> Obj:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, f"{deployment['metadata']['name']}: one container expected"
    return containers[0]


def parse_cli(args: list[str]) -> tuple[str, dict[str, Any]]:
    """Parse ``smart-rollback ARGS`` with the real command line, without running it: unknown commands,
    options or bad values fail here as they would when the container starts."""
    command = main.commands.get(args[0])
    assert command is not None, f"smart-rollback has no command {args[0]!r}"
    try:
        context = command.make_context(args[0], list(args[1:]))
    except click.ClickException as exc:
        raise AssertionError(f"smart-rollback {' '.join(args)}: {exc.format_message()}") from None
    return args[0], context.params


def port_of(container_spec: Obj, port: int | str) -> int:
    """A container port by number or by name, as a Service's targetPort or a probe's port resolves it."""
    for entry in container_spec.get("ports", []):
        if port in (entry["containerPort"], entry.get("name")):
            return int(entry["containerPort"])
    raise AssertionError(f"port {port!r} is not a port of container {container_spec['name']}")


def write_mounted(deployment: Obj, docs: list[Obj], path: str, into: Path) -> Path:
    """The file the container sees at ``path``, written under ``into``: a key of a mounted ConfigMap."""
    spec = deployment["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for mount in container(deployment).get("volumeMounts", []):
        prefix = mount["mountPath"].rstrip("/") + "/"
        source = volumes[mount["name"]].get("configMap")
        if source and path.startswith(prefix):
            data = find(docs, "ConfigMap", source["name"])["data"]
            key = path.removeprefix(prefix)
            assert key in data, f"{path}: ConfigMap {source['name']} has no key {key!r}"
            target = into / key
            target.write_text(data[key])
            return target
    raise AssertionError(f"{path} is not in a ConfigMap mounted into {deployment['metadata']['name']}")
