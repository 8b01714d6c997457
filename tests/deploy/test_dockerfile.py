"""deploy/Dockerfile, checked offline: it cannot be built here (no registry to pull python:3.11-slim, no
dockerd), so each instruction is checked against what it relies on: the extras and packages in setup.cfg,
the console script, the real command line, and the port and user the manifests expect."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from setuptools.config.setupcfg import read_configuration

from tests.conftest import ROOT
from tests.deploy.conftest import Obj, container, find, parse_cli, port_of

DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / "deploy" / "Dockerfile.dockerignore"


def instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        keyword, _, rest = (pending + line).strip().partition(" ")
        out.append((keyword.upper(), rest.strip()))
        pending = ""
    return out


def one(keyword: str) -> str:
    found = [rest for key, rest in instructions() if key == keyword]
    assert len(found) == 1, f"expected one {keyword} in deploy/Dockerfile, found {found}"
    return found[0]


@pytest.fixture(scope="module")
def setup_cfg() -> dict:
    return read_configuration(ROOT / "setup.cfg")


def test_base_image_and_extras(setup_cfg: dict) -> None:
    assert one("FROM") == "python:3.11-slim"
    name, _, default = one("ARG").partition("=")
    assert name == "EXTRAS"
    extras = setup_cfg["options"]["extras_require"]
    assert set(default.split(",")) <= extras.keys(), f"setup.cfg has the extras {sorted(extras)}"
    assert "postgres" in default.split(","), "the manifests' database is PostgreSQL: psycopg must be in the image"
    runs = [rest for key, rest in instructions() if key == "RUN"]
    assert any('pip install ".[${EXTRAS}]"' in run for run in runs), "install the package with the EXTRAS argument"


def test_every_package_is_copied_and_shipped(setup_cfg: dict) -> None:
    """What the image installs is what setup.cfg ships, and that is every directory of code, migrations included
    (a non-editable install left Alembic's migrations out until setup.cfg used namespace discovery)."""
    packages = set(setup_cfg["options"]["packages"])
    roots = {p.split(".")[0] for p in packages}
    copied = {src.rstrip("/") for key, rest in instructions() if key == "COPY" for src in shlex.split(rest)[:-1]}
    assert roots <= copied and {"setup.cfg", "pyproject.toml", "README.md"} <= copied
    for root in roots:
        for directory in [ROOT / root, *(p for p in (ROOT / root).rglob("*") if p.is_dir())]:
            if directory.name == "__pycache__" or not any(directory.glob("*.py")):
                continue
            dotted = ".".join(directory.relative_to(ROOT).parts)
            assert dotted in packages, f"{dotted} has code but is not shipped by setup.cfg's packages"
    allowed = {line.removeprefix("!").rstrip("/") for line in DOCKERIGNORE.read_text().splitlines()}
    assert copied <= allowed, f"the build context leaves out {sorted(copied - allowed)}"


def test_entrypoint_and_cmd_are_the_real_command_line(setup_cfg: dict, rendered: list[Obj]) -> None:
    scripts = dict(s.replace(" ", "").split("=") for s in setup_cfg["options"]["entry_points"]["console_scripts"])
    assert json.loads(one("ENTRYPOINT")) == ["smart-rollback"] and "smart-rollback" in scripts
    command, params = parse_cli(json.loads(one("CMD")))
    assert command == "serve"
    host, _, port = params["bind"].rpartition(":")
    reactor = container(find(rendered, "Deployment", "smart-rollback-reactor"))
    assert host == "0.0.0.0" and int(port) == int(one("EXPOSE")) == port_of(reactor, "http")


def test_runs_as_the_user_the_manifests_expect(rendered: list[Obj]) -> None:
    user, _, group = one("USER").partition(":")
    assert user.isdigit() and int(user) > 0, "a numeric uid, so runAsNonRoot can verify it"
    for name in ("smart-rollback-reactor", "smart-rollback-exporter"):
        pod = find(rendered, "Deployment", name)["spec"]["template"]["spec"]
        assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (int(user), int(group))


def test_the_build_context_is_the_repository_root() -> None:
    """The docs and the Dockerfile's own header say how to build; both must name the same context."""
    command = "docker build -f deploy/Dockerfile"
    assert command in DOCKERFILE.read_text()
    assert command in (ROOT / "docs" / "deploy.md").read_text()
    assert Path(DOCKERIGNORE).name == DOCKERFILE.name + ".dockerignore", "BuildKit's per-Dockerfile ignore file"
