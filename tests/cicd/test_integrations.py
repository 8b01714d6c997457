"""The CI/CD plugins in integrations/, checked against what their systems require and run for real.

Every plugin file parses and has the keys its system needs. Then the shell each plugin runs is taken from the
plugin files themselves (never re-typed here) and executed the way its system executes it, against a real
`smart-rollback serve` (gunicorn, two workers) with the CLI on PATH: each plugin registers a deploy and gets
every gate verdict (healthy, rolled back, insufficient data, timeout). What the systems would evaluate
themselves is done by small, strict stand-ins: GitHub's `${{ }}` references, CircleCI's `<< parameters >>`,
GitLab's `extends` and dotenv reports, Jenkins's pipeline steps (the Groovy runs in Debian's Groovy 2.4, the
version Jenkins embeds), and the Go-template fields Argo CD renders. Each stand-in refuses anything beyond the
plain forms the plugins use, so the plugins stay within what is tested here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.cicd.conftest import AUTH, TOKEN, alert_payload
from tests.conftest import ROOT, free_port

INTEGRATIONS = ROOT / "integrations"
HERE = Path(__file__).resolve().parent
SOAK = 2


# ------------------------------------------------------------------------------------------ the reactor


@dataclass
class Reactor:
    url: str
    bin_dir: Path
    work: Path

    def env(self, **extra: str) -> dict[str, str]:
        """A CI job's environment: the CLI on PATH, the reactor's URL and token as CI secrets would set them."""
        base = {k: v for k, v in os.environ.items() if not k.startswith(("SMART_ROLLBACK_", "GITHUB_", "CI_"))}
        base.pop("PROMETHEUS_MULTIPROC_DIR", None)
        base["PATH"] = f"{self.bin_dir}{os.pathsep}{base.get('PATH', '')}"
        base["PYTHONPATH"] = str(ROOT)
        return {**base, **extra}

    def fire(self, target: str, **labels: str) -> None:
        body = alert_payload(time.time(), target=target, **labels)
        response = requests.post(f"{self.url}/webhooks/alertmanager", json=body, headers=AUTH, timeout=10)
        assert response.status_code == 202, response.text

    def deployment(self, deployment_id: str) -> dict[str, Any]:
        response = requests.get(f"{self.url}/api/v1/deployments/{deployment_id}", headers=AUTH, timeout=10)
        assert response.status_code == 200, response.text
        return dict(response.json())


@pytest.fixture(scope="module")
def reactor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reactor]:
    """`smart-rollback serve` under gunicorn, a 2-second soak, and a `smart-rollback` command on PATH."""
    tmp = tmp_path_factory.mktemp("reactor")
    port = free_port()
    config = {
        "server": {"bind": f"127.0.0.1:{port}", "workers": 2},
        "auth": {"tokens": [TOKEN]},
        "database": {"url": f"sqlite:///{tmp / 'reactor.db'}"},
        "policies": {
            "defaults": {"mode": "auto", "wait_timeout_seconds": 0},
            # Targets that get an alert after registering soak longer: the alert must land inside the soak
            # even on a loaded machine (a gate with a verdict from a decision returns at once anyway).
            "targets": [{"match": "*/slow/*", "soak_seconds": 3600}, {"match": "*/alerted/*", "soak_seconds": 6}],
        },
        "deployments": {"soak_seconds": SOAK},
        "worker": {"poll_interval_seconds": 0.2},
    }
    (tmp / "reactor.yaml").write_text(yaml.safe_dump(config))
    env = {
        k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR" and not k.startswith("SMART_ROLLBACK")
    }
    env["TMPDIR"] = str(tmp)
    proc = subprocess.Popen(
        [sys.executable, "-m", "reactor", "serve", "--config", str(tmp / "reactor.yaml")],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the reactor exited: {proc.communicate()[0][-3000:]}")
        try:
            if requests.get(url + "/readyz", timeout=1).status_code == 200:
                break
        except requests.ConnectionError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail(f"the reactor did not start: {proc.communicate()[0][-3000:]}")
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    cli = bin_dir / "smart-rollback"
    cli.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m reactor "$@"\n')
    cli.chmod(0o755)
    work = tmp / "work"
    work.mkdir()
    try:
        yield Reactor(url, bin_dir, work)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ------------------------------------------------------------------------------------------ scenarios


@dataclass
class Verdict:
    """One gate scenario: the target, what happens after the register step, and the expected exit code."""

    name: str
    code: int
    after_register: Callable[[Reactor, str], None] = lambda _r, _t: None
    timeout: str = "60s"
    slow: bool = False


VERDICTS = [
    Verdict("healthy", 0),
    Verdict("rolled_back", 10, lambda r, t: r.fire(t)),
    Verdict("insufficient_data", 12, lambda r, t: r.fire(t, alertname="NoData", failure_kind="insufficient_data")),
    Verdict("timeout", 13, timeout="2s", slow=True),
]  # fmt: skip


def target_for(plugin: str, verdict: Verdict, *, alerted: bool = False) -> str:
    namespace = "slow" if verdict.slow else "alerted" if alerted else plugin
    return f"kubernetes/{plugin}/{namespace}/{verdict.name.replace('_', '-')}-{time.time_ns()}"


class Plugin:
    """Runs one plugin's own steps: ``register`` returns the deployment id, ``gate`` the exit code."""

    name: str

    def register(self, reactor: Reactor, target: str, revision: str) -> str:
        raise NotImplementedError

    def gate(self, reactor: Reactor, deployment_id: str, timeout: str, **options: Any) -> tuple[int, dict[str, Any]]:
        raise NotImplementedError


def run_shell(argv: list[str], script: str, env: Mapping[str, str], cwd: Path) -> subprocess.CompletedProcess:
    path = cwd / f"step-{time.time_ns()}.sh"
    path.write_text(script)
    try:
        return subprocess.run([*argv, str(path)], env=dict(env), cwd=cwd, capture_output=True, text=True, timeout=120)
    finally:
        path.unlink()


# ------------------------------------------------------------------------------------------ GitHub Actions

ACTION = INTEGRATIONS / "github-actions" / "action.yml"
GH_EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


class GitHubAction(Plugin):
    """A composite action's run steps, as the runner runs them: `bash --noprofile --norc -eo pipefail`,
    `env:` evaluated first, step outputs through $GITHUB_OUTPUT, PATH additions through $GITHUB_PATH."""

    name = "github"

    def __init__(self) -> None:
        self.action = load(ACTION)

    def run(self, reactor: Reactor, inputs: Mapping[str, str], *, between: Callable[[str], None] | None = None
            ) -> tuple[int, dict[str, str], str]:  # fmt: skip
        declared = self.action["inputs"]
        unknown = set(inputs) - set(declared)
        assert not unknown, f"inputs {unknown} are not declared in action.yml"
        values = {k: str(v.get("default", "")) for k, v in declared.items()}
        values.update(inputs)
        missing = [k for k, v in declared.items() if v.get("required") and not values.get(k)]
        assert not missing, f"required inputs missing: {missing}"
        outputs: dict[str, dict[str, str]] = {}
        job = reactor.work / f"gh-{time.time_ns()}"
        job.mkdir()
        extra_path: list[str] = []
        github = {"GITHUB_REPOSITORY": "shop/checkout", "GITHUB_RUN_ID": str(time.time_ns()), "GITHUB_RUN_ATTEMPT": "1",
                  "GITHUB_ACTION": "__smart-rollback", "GITHUB_SERVER_URL": "https://github.example",
                  "GITHUB_ACTOR": "octocat", "RUNNER_TEMP": str(job)}  # fmt: skip
        log = ""
        for step in self.action["runs"]["steps"]:
            files = {n: job / f"{n}-{step['id']}" for n in ("GITHUB_OUTPUT", "GITHUB_PATH", "GITHUB_STEP_SUMMARY")}
            for f in files.values():
                f.touch()
            env = reactor.env(**github, **{k: str(v) for k, v in files.items()})
            env["PATH"] = os.pathsep.join([*extra_path, env["PATH"]])
            env.update({k: self.evaluate(str(v), values, outputs) for k, v in (step.get("env") or {}).items()})
            assert step["shell"] == "bash"
            done = run_shell(["bash", "--noprofile", "--norc", "-eo", "pipefail"], step["run"], env, job)
            log += done.stdout + done.stderr
            outputs[step["id"]] = parse_outputs(files["GITHUB_OUTPUT"].read_text())
            extra_path = [p for p in files["GITHUB_PATH"].read_text().splitlines() if p] + extra_path
            if done.returncode != 0:
                return done.returncode, self.action_outputs(values, outputs), log
            if between is not None:
                between(step["id"])
        return 0, self.action_outputs(values, outputs), log

    def action_outputs(self, values: Mapping[str, str], outputs: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
        return {k: self.evaluate(v["value"], values, outputs) for k, v in self.action["outputs"].items()}

    @staticmethod
    def evaluate(text: str, inputs: Mapping[str, str], outputs: Mapping[str, Mapping[str, str]]) -> str:
        def one(match: re.Match[str]) -> str:
            parts = match.group(1).split(".")
            if len(parts) == 2 and parts[0] == "inputs" and parts[1] in inputs:
                return inputs[parts[1]]
            if len(parts) == 4 and parts[0] == "steps" and parts[2] == "outputs":
                return outputs.get(parts[1], {}).get(parts[3], "")
            raise AssertionError(f"expression {match.group(0)!r}: keep action expressions to inputs.X and "
                                 "steps.ID.outputs.X (the test runner evaluates those only)")  # fmt: skip

        return GH_EXPRESSION.sub(one, text)

    def register(self, reactor: Reactor, target: str, revision: str) -> str:
        code, outputs, log = self.run(reactor, {**self.connection(reactor), "command": "register", "target": target,
                                                "revision": revision})  # fmt: skip
        assert code == 0, log
        return outputs["deployment-id"]

    def gate(self, reactor: Reactor, deployment_id: str, timeout: str, **options: Any) -> tuple[int, dict[str, Any]]:
        inputs = {**self.connection(reactor), "command": "gate", "deployment-id": deployment_id, "timeout": timeout,
                  "progress-every": "1s", **options}  # fmt: skip
        code, outputs, log = self.run(reactor, inputs)
        return code, {**outputs, "log": log}

    @staticmethod
    def connection(reactor: Reactor) -> dict[str, str]:
        return {"url": reactor.url, "token": TOKEN}


def parse_outputs(text: str) -> dict[str, str]:
    """$GITHUB_OUTPUT: ``name=value`` lines and ``name<<DELIMITER`` blocks."""
    out: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            block = []
            for item in lines:
                if item == delimiter:
                    break
                block.append(item)
            out[name] = "\n".join(block)
        elif "=" in line:
            name, value = line.split("=", 1)
            out[name] = value
    return out


# ------------------------------------------------------------------------------------------ GitLab CI

GITLAB = INTEGRATIONS / "gitlab" / "smart-rollback.gitlab-ci.yml"


def resolve_extends(doc: Mapping[str, Any], name: str) -> dict[str, Any]:
    """A job with its `extends:` chain merged the way GitLab does: hashes deep-merged, the rest replaced."""
    job = dict(doc[name])
    parents = job.pop("extends", [])
    merged: dict[str, Any] = {}
    for parent in [parents] if isinstance(parents, str) else parents:
        merged = deep_merge(merged, resolve_extends(doc, parent))
    return deep_merge(merged, job)


def deep_merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


class GitLabTemplates(Plugin):
    """The hidden jobs as a runner runs them: `before_script` then `script` in one POSIX shell with `-e`,
    variables as environment, the dotenv report handed to the next job."""

    name = "gitlab"

    def __init__(self) -> None:
        self.doc = load(GITLAB)

    def run(self, reactor: Reactor, job_name: str, variables: Mapping[str, str]) -> tuple[int, dict[str, str], str]:
        job = resolve_extends(self.doc, job_name)
        workdir = reactor.work / f"gl-{time.time_ns()}"
        workdir.mkdir()
        predefined = {"CI_PROJECT_ID": "7", "CI_JOB_ID": str(time.time_ns()), "CI_COMMIT_SHA": "0123abcd",
                      "CI_PIPELINE_URL": "https://gitlab.example/shop/checkout/-/pipelines/9",
                      "GITLAB_USER_LOGIN": "carol", "SMART_ROLLBACK_URL": reactor.url,
                      "SMART_ROLLBACK_TOKEN": TOKEN}  # fmt: skip
        env = reactor.env(**predefined, **{k: str(v) for k, v in (job.get("variables") or {}).items()}, **variables)
        script = "\n".join([*job.get("before_script", []), *job["script"]])
        done = run_shell(["sh", "-e"], script, env, workdir)
        dotenv: dict[str, str] = {}
        report = (job.get("artifacts") or {}).get("reports", {}).get("dotenv")
        if report and (workdir / report).exists():
            dotenv = dict(line.split("=", 1) for line in (workdir / report).read_text().splitlines() if "=" in line)
        return done.returncode, dotenv, done.stdout + done.stderr

    def register(self, reactor: Reactor, target: str, revision: str) -> str:
        variables = {"SMART_ROLLBACK_TARGET": target, "SMART_ROLLBACK_REVISION": revision}
        code, dotenv, log = self.run(reactor, ".smart-rollback-register", variables)
        assert code == 0, log
        return dotenv["SMART_ROLLBACK_DEPLOYMENT_ID"]

    def gate(self, reactor: Reactor, deployment_id: str, timeout: str, **options: Any) -> tuple[int, dict[str, Any]]:
        variables = {"SMART_ROLLBACK_DEPLOYMENT_ID": deployment_id, "SMART_ROLLBACK_TIMEOUT": timeout,
                     "SMART_ROLLBACK_PROGRESS_EVERY": "1s"}  # fmt: skip
        code, _, log = self.run(reactor, ".smart-rollback-gate", variables)
        return code, {"log": log}


# ------------------------------------------------------------------------------------------ Jenkins

JENKINS_STEP = INTEGRATIONS / "jenkins" / "vars" / "smartRollback.groovy"


def groovy() -> str:
    path = shutil.which("groovy")
    if path is None:
        pytest.fail("groovy is not installed: `make system-deps` (Debian packages groovy and default-jre-headless)")
    return path


class JenkinsStep(Plugin):
    """vars/smartRollback.groovy run by Groovy with Jenkins's pipeline steps (tests/cicd/jenkins_harness.groovy)."""

    name = "jenkins"

    def call(self, reactor: Reactor, config: Mapping[str, Any]) -> dict[str, Any]:
        workspace = reactor.work / f"jenkins-{time.time_ns()}"
        workspace.mkdir()
        jenkins_env = {"WORKSPACE": str(workspace), "JOB_NAME": "shop/checkout", "BUILD_NUMBER": "12",
                       "BUILD_URL": "https://jenkins.example/job/checkout/12/",
                       "SMART_ROLLBACK_URL": reactor.url}  # fmt: skip
        done = subprocess.run(
            [groovy(), str(HERE / "jenkins_harness.groovy"), str(JENKINS_STEP), json.dumps(config),
             json.dumps(jenkins_env), json.dumps({"smart-rollback-token": TOKEN})],
            env=reactor.env(), cwd=workspace, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        outcome = json.loads(done.stdout.strip().splitlines()[-1])
        return {**outcome, "log": done.stderr}

    def register(self, reactor: Reactor, target: str, revision: str) -> str:
        outcome = self.call(reactor, {"action": "register", "target": target, "revision": revision})
        assert outcome["error"] is None, outcome["log"][-3000:]
        return str(outcome["result"]).strip()

    def gate(self, reactor: Reactor, deployment_id: str, timeout: str, **options: Any) -> tuple[int, dict[str, Any]]:
        outcome = self.call(reactor, {"action": "gate", "deploymentId": deployment_id, "timeout": timeout,
                                      "progressEvery": "1s", **options})  # fmt: skip
        match = re.search(r"\(exit (\d+)\)", outcome["error"] or "")
        code = int(match.group(1)) if match else (0 if outcome["error"] is None else -1)
        return code, outcome


# ------------------------------------------------------------------------------------------ CircleCI

ORB = INTEGRATIONS / "circleci" / "orb.yml"
CIRCLE_PARAMETER = re.compile(r"<<\s*parameters\.([\w-]+)\s*>>")
BUILTIN_STEPS = {"run", "checkout", "attach_workspace", "persist_to_workspace", "steps", "store_artifacts",
                 "save_cache", "restore_cache", "setup_remote_docker", "when", "unless"}  # fmt: skip


def circle_values(declared: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """Parameter values with defaults, checked like CircleCI checks them (declared, required, enum, types)."""
    unknown = set(given) - set(declared)
    assert not unknown, f"parameters {unknown} are not declared"
    values: dict[str, Any] = {}
    for name, spec in declared.items():
        if name in given:
            value = given[name]
        elif "default" in spec:
            value = spec["default"]
        else:
            raise AssertionError(f"parameter {name} is required")
        if spec["type"] == "enum":
            assert value in spec["enum"], f"{name}: {value!r} not in {spec['enum']}"
        if spec["type"] == "boolean":
            assert isinstance(value, bool), f"{name} must be a boolean"
        if spec["type"] == "env_var_name":
            assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(value)), f"{name}: not an environment variable name"
        values[name] = value
    return values


def circle_substitute(text: str, values: Mapping[str, Any]) -> str:
    def one(match: re.Match[str]) -> str:
        value = values[match.group(1)]
        return ("true" if value else "false") if isinstance(value, bool) else str(value)

    return CIRCLE_PARAMETER.sub(one, text)


class CircleOrb(Plugin):
    """Orb commands as CircleCI runs their steps: parameters substituted, `/bin/bash -eo pipefail`, and
    $BASH_ENV sourced by every step (bash does that for non-interactive shells)."""

    name = "circleci"

    def __init__(self) -> None:
        self.orb = load(ORB)

    def command(self, reactor: Reactor, name: str, params: Mapping[str, Any], job: Path) -> tuple[int, str]:
        command = self.orb["commands"][name]
        values = circle_values(command.get("parameters") or {}, params)
        log = ""
        for step in command["steps"]:
            run = step["run"]
            environment = {k: circle_substitute(str(v), values) for k, v in (run.get("environment") or {}).items()}
            env = reactor.env(BASH_ENV=str(job / "bash_env"), CIRCLE_SHA1="0123abcd", CIRCLE_BUILD_NUM="31",
                              CIRCLE_WORKFLOW_JOB_ID=str(time.time_ns()), SMART_ROLLBACK_URL=reactor.url,
                              SMART_ROLLBACK_TOKEN=TOKEN, **environment)  # fmt: skip
            done = run_shell(["/bin/bash", "-eo", "pipefail"], circle_substitute(run["command"], values), env, job)
            log += done.stdout + done.stderr
            if done.returncode != 0:
                return done.returncode, log
        return 0, log

    def job_dir(self, reactor: Reactor) -> Path:
        job = reactor.work / f"circle-{time.time_ns()}"
        job.mkdir()
        (job / "bash_env").touch()
        return job

    def register(self, reactor: Reactor, target: str, revision: str) -> str:
        job = self.job_dir(reactor)
        assert self.command(reactor, "install", {}, job)[0] == 0
        code, log = self.command(reactor, "register", {"target": target, "revision": revision,
                                                       "id-file": str(job / "ws" / "deployment-id")}, job)  # fmt: skip
        assert code == 0, log
        assert (
            f"export SMART_ROLLBACK_DEPLOYMENT_ID={(job / 'ws' / 'deployment-id').read_text().strip()}"
            in (job / "bash_env").read_text()
        )
        return (job / "ws" / "deployment-id").read_text().strip()

    def gate(self, reactor: Reactor, deployment_id: str, timeout: str, **options: Any) -> tuple[int, dict[str, Any]]:
        # As the orb's gate job: the id comes from the attached workspace.
        job = self.job_dir(reactor)
        (job / "ws").mkdir()
        (job / "ws" / "deployment-id").write_text(deployment_id + "\n")
        params = {"id-file": str(job / "ws" / "deployment-id"), "timeout": timeout, "progress-every": "1s", **options}
        code, log = self.command(reactor, "gate", params, job)
        return code, {"log": log}


PLUGINS: list[Plugin] = [GitHubAction(), GitLabTemplates(), JenkinsStep(), CircleOrb()]


# ------------------------------------------------------------------------------------------ the plugins run


@pytest.mark.e2e
@pytest.mark.parametrize("verdict", VERDICTS, ids=[v.name for v in VERDICTS])
@pytest.mark.parametrize("plugin", PLUGINS, ids=[p.name for p in PLUGINS])
def test_plugin_registers_and_gets_each_verdict(reactor: Reactor, plugin: Plugin, verdict: Verdict) -> None:
    target = target_for(plugin.name, verdict, alerted=verdict.code in (10, 12))
    deployment_id = plugin.register(reactor, target, "v2")
    registered = reactor.deployment(deployment_id)
    assert (registered["target"], registered["revision"]) == (target, "v2")
    verdict.after_register(reactor, target)
    code, details = plugin.gate(reactor, deployment_id, verdict.timeout)
    assert code == verdict.code, details.get("log", "")[-3000:]
    final = reactor.deployment(deployment_id)["status"]
    assert final == ("in_progress" if verdict.name == "timeout" else verdict.name)


@pytest.mark.e2e
def test_github_action_outputs_and_allowing_insufficient_data(reactor: Reactor) -> None:
    action = GitHubAction()
    target = target_for("github", VERDICTS[2], alerted=True)

    def after(step: str) -> None:
        if step == "register":
            reactor.fire(target, alertname="HealthDataMissing", failure_kind="insufficient_data")

    inputs = {**action.connection(reactor), "target": target, "revision": "v3", "progress-every": "1s",
              "allow-insufficient-data": "true"}  # fmt: skip
    code, outputs, log = action.run(reactor, inputs, between=after)
    assert code == 0, log
    assert outputs["verdict"] == "insufficient_data" and outputs["exit-code"] == "12"
    assert "::warning title=Smart Rollback::insufficient data" in log
    deployment = reactor.deployment(outputs["deployment-id"])
    assert deployment["pipeline_url"].startswith("https://github.example/shop/checkout/actions/runs/")
    assert deployment["actor"] == "octocat"


@pytest.mark.e2e
def test_jenkins_step_marks_and_unstable(reactor: Reactor) -> None:
    step = JenkinsStep()
    target = target_for("jenkins", VERDICTS[0])
    deployment_id = step.register(reactor, target, "v4")
    marked = step.call(reactor, {"action": "markGood", "deploymentId": deployment_id, "reason": "smoke tests passed",
                                 "actor": "jenkins-qa"})  # fmt: skip
    assert marked["error"] is None and marked["result"] == "good", marked["log"][-2000:]
    assert reactor.deployment(deployment_id)["verdict_by"] == "jenkins-qa"
    refused = step.call(reactor, {"action": "markBad", "target": target, "revision": "v4"})
    assert refused["error"] == "smartRollback: markGood and markBad need a reason (it goes to the audit trail)"
    unknown = step.call(reactor, {"action": "deploy"})
    assert unknown["error"].startswith("smartRollback: action must be one of register, gate")

    quiet = target_for("jenkins", VERDICTS[2], alerted=True)
    deployment_id = step.register(reactor, quiet, "v5")
    reactor.fire(quiet, alertname="HealthDataMissing", failure_kind="insufficient_data")
    outcome = step.call(reactor, {"action": "gate", "deploymentId": deployment_id, "allowInsufficientData": True,
                                  "progressEvery": "1s"})  # fmt: skip
    assert outcome["error"] is None and outcome["result"] == "insufficient_data"
    assert outcome["unstable"] == [
        f"smartRollback: deployment {deployment_id}: insufficient data, health not confirmed"
    ]


# ------------------------------------------------------------------------------------------ Argo CD

ARGOCD = INTEGRATIONS / "argocd"
GO_FIELD = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}")

#: An Application as Argo CD holds it while its sync runs (fields from the argoproj.io/v1alpha1 CRD).
SAMPLE_APPLICATION: dict[str, Any] = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "Application",
    "metadata": {"name": "checkout", "namespace": "argocd", "annotations": {}},
    "spec": {
        "project": "shop",
        "source": {"repoURL": "https://git.example.com/shop/deploy.git", "targetRevision": "main", "path": "checkout"},
        "destination": {"name": "prod-eu", "namespace": "shop"},
    },
    "status": {
        "sync": {"status": "OutOfSync", "revision": "9f8d111d8f8e3e88b6d7f8bbdf62fd3cd863ef9d"},
        "health": {"status": "Progressing"},
        "operationState": {
            "phase": "Running",
            "startedAt": "2026-11-27T10:00:00Z",
            "operation": {
                "sync": {"revision": "9f8d111d8f8e3e88b6d7f8bbdf62fd3cd863ef9d"},
                "initiatedBy": {"automated": True},
            },
        },
    },
}


def render_go_template(template: str, data: Mapping[str, Any]) -> str:
    """Renders the subset of Go's text/template the Argo CD template may use: field paths only."""

    def one(match: re.Match[str]) -> str:
        expr = match.group(1)
        assert re.fullmatch(r"(\.[A-Za-z_]\w*)+", expr), f"{{{{{expr}}}}}: keep the template to field paths"
        value: Any = data
        for part in expr[1:].split("."):
            assert isinstance(value, Mapping) and part in value, f"{expr}: the sample application has no {part!r}"
            value = value[part]
        assert not isinstance(value, Mapping | list), f"{expr} is not a scalar"
        return str(value)

    return GO_FIELD.sub(one, template)


def argocd_config() -> dict[str, Any]:
    cm = load(ARGOCD / "argocd-notifications-cm.yaml")
    assert (cm["kind"], cm["metadata"]["name"]) == ("ConfigMap", "argocd-notifications-cm")
    data = cm["data"]
    return {key: yaml.safe_load(value) for key, value in data.items()}


def test_argocd_files_have_what_argocd_requires() -> None:
    config = argocd_config()
    service = config["service.webhook.smart-rollback"]
    assert service["url"].startswith("https://")
    headers = {h["name"]: h["value"] for h in service["headers"]}
    assert headers["Authorization"] == "Bearer $smart-rollback-token", "the token comes from the secret"
    assert headers["Content-Type"] == "application/json"
    secret = load(ARGOCD / "argocd-notifications-secret.yaml")
    assert (secret["kind"], secret["metadata"]["name"]) == ("Secret", "argocd-notifications-secret")
    assert "smart-rollback-token" in secret["stringData"]
    webhook = config["template.smart-rollback-deployment"]["webhook"]["smart-rollback"]
    assert (webhook["method"], webhook["path"]) == ("POST", "/api/v1/deployments")
    [trigger] = config["trigger.on-sync-running-smart-rollback"]
    assert trigger["send"] == ["smart-rollback-deployment"]
    assert trigger["when"] == "app.status.operationState.phase in ['Running']"
    assert trigger["oncePer"] == "app.status.operationState.operation.sync.revision"
    app = load(ARGOCD / "application-example.yaml")
    [(annotation, recipient)] = app["metadata"]["annotations"].items()
    assert annotation == "notifications.argoproj.io/subscribe.on-sync-running-smart-rollback.smart-rollback"
    assert re.fullmatch(r"[^/]+/[^/]+/[^/]+/[^/]+", recipient), "the recipient is the target"
    # Self-heal would revert the reactor's rollback to what Git says, re-applying the bad revision.
    assert app["spec"]["syncPolicy"]["automated"]["selfHeal"] is False


@pytest.mark.e2e
def test_argocd_webhook_body_is_accepted(reactor: Reactor) -> None:
    config = argocd_config()
    service = config["service.webhook.smart-rollback"]
    webhook = config["template.smart-rollback-deployment"]["webhook"]["smart-rollback"]
    target = f"kubernetes/prod-eu/shop/checkout-{time.time_ns()}"
    variables = {"app": SAMPLE_APPLICATION, "context": config["context"], "recipient": target,
                 "serviceType": "webhook"}  # fmt: skip
    body = render_go_template(webhook["body"], variables)
    json.loads(body)  # what Argo CD sends must be JSON
    secrets = {"smart-rollback-token": TOKEN}
    headers = {h["name"]: re.sub(r"\$([\w-]+)", lambda m: secrets[m.group(1)], h["value"]) for h in service["headers"]}
    url = reactor.url + "/" + render_go_template(webhook["path"], variables).lstrip("/")

    first = requests.request(webhook["method"], url, data=body, headers=headers, timeout=10)
    assert first.status_code == 201, first.text
    deployment = first.json()
    assert (deployment["target"], deployment["revision"]) == (target, "9f8d111d8f8e3e88b6d7f8bbdf62fd3cd863ef9d")
    assert deployment["pipeline_url"] == "https://argocd.example.com/applications/argocd/checkout"
    assert deployment["data"]["context"]["application"] == "argocd/checkout"
    retried = requests.request(webhook["method"], url, data=body, headers=headers, timeout=10)
    assert (retried.status_code, retried.json()["id"]) == (200, deployment["id"]), "Argo CD retries are idempotent"

    unsubscribed = render_go_template(webhook["body"], {**variables, "recipient": ""})
    refused = requests.request(webhook["method"], url, data=unsubscribed, headers=headers, timeout=10)
    assert refused.status_code == 400
    assert (
        "notifications.argoproj.io/subscribe.on-sync-running-smart-rollback.smart-rollback" in refused.json()["error"]
    )


# ------------------------------------------------------------------------------------------ static checks


def test_github_action_metadata() -> None:
    action = load(ACTION)
    for key in ("name", "description", "inputs", "outputs", "runs"):
        assert action.get(key), key
    assert action["runs"]["using"] == "composite"
    steps = action["runs"]["steps"]
    assert steps and all(s.get("shell") == "bash" and s.get("id") for s in steps)
    for name, spec in action["inputs"].items():
        assert spec.get("description"), f"input {name} needs a description"
        assert "required" in spec
    for name, spec in action["outputs"].items():
        assert spec.get("description") and spec.get("value"), name
    for step in steps:
        assert "${{" not in step["run"], f"step {step['id']}: inputs reach scripts through env only (injection)"
    token_steps = [s for s in steps if "SMART_ROLLBACK_TOKEN" in (s.get("env") or {})]
    assert all(s["env"]["SMART_ROLLBACK_TOKEN"] == "${{ inputs.token }}" for s in token_steps)
    assert "url" in action["inputs"] and "token" in action["inputs"]


def test_github_example_workflow_uses_the_action_correctly() -> None:
    workflow = load(INTEGRATIONS / "github-actions" / "example-workflow.yml")
    inputs = set(load(ACTION)["inputs"])
    uses = [
        s
        for job in workflow["jobs"].values()
        for s in job["steps"]
        if "integrations/github-actions@" in s.get("uses", "")
    ]
    assert len(uses) == 2
    for step in uses:
        assert set(step["with"]) <= inputs, set(step["with"]) - inputs
        assert step["with"]["token"] == "${{ secrets.SMART_ROLLBACK_TOKEN }}", "the token comes from a secret"


def test_gitlab_templates_and_example() -> None:
    doc = load(GITLAB)
    for name in (".smart-rollback-register", ".smart-rollback-gate"):
        job = resolve_extends(doc, name)
        assert job["image"] and job["script"] and job["before_script"], name
        assert "variables" not in job, "the templates never override the project's variables"
    assert resolve_extends(doc, ".smart-rollback-register")["artifacts"]["reports"]["dotenv"] == "smart-rollback.env"
    example = load(INTEGRATIONS / "gitlab" / "example.gitlab-ci.yml")
    assert example["include"][0]["remote"].endswith("integrations/gitlab/smart-rollback.gitlab-ci.yml")
    assert example["gate"]["extends"] == ".smart-rollback-gate"
    assert "register" in example["gate"]["needs"], "the gate gets the deployment id from the register job's dotenv"
    assert example["gate"]["allow_failure"] == {"exit_codes": [12]}


def test_jenkins_step_compiles_and_has_its_entry_point(tmp_path: Path) -> None:
    source = JENKINS_STEP.read_text()
    assert re.search(r"^def call\(Map config = \[:\]\) \{$", source, re.M), "the step's entry point"
    assert balanced(source), "braces, brackets and parentheses balance"
    groovyc = shutil.which("groovyc")
    if groovyc is None:
        pytest.fail("groovyc is not installed: `make system-deps` (Debian packages groovy and default-jre-headless)")
    done = subprocess.run(
        [groovyc, "-d", str(tmp_path), str(JENKINS_STEP)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "smartRollback.class").exists()
    for script in re.findall(r"script: (\"\"\"|'''|\"|')", source):
        assert script == "'''", "shell scripts are single-quoted: values only through the environment"
    assert (INTEGRATIONS / "jenkins" / "vars" / "smartRollback.txt").exists(), "the step's help in Jenkins"


def balanced(source: str) -> bool:
    """Brackets balance outside strings and comments (a structural check that needs no JVM)."""
    text = re.sub(r"'''.*?'''|\"\"\".*?\"\"\"", "", source, flags=re.S)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"'(?:\\.|[^'\\])*'|\"(?:\\.|[^\"\\])*\"", "", text)
    pairs, stack = {")": "(", "]": "[", "}": "{"}, []
    for char in text:
        if char in "([{":
            stack.append(char)
        elif char in pairs and (not stack or stack.pop() != pairs[char]):
            return False
    return not stack


def test_circleci_orb_structure() -> None:
    orb = load(ORB)
    assert str(orb["version"]) == "2.1"
    for key in ("description", "display", "executors", "commands", "jobs", "examples"):
        assert orb.get(key), key
    commands = orb["commands"]
    assert {"install", "register", "gate", "mark"} <= set(commands)
    assert {"deploy", "gate"} <= set(orb["jobs"])

    def check_references(where: str, node: Any, declared: Mapping[str, Any]) -> None:
        for name in CIRCLE_PARAMETER.findall(yaml.safe_dump(node)):
            assert name in declared, f"{where}: << parameters.{name} >> is not declared"

    for name, command in commands.items():
        assert command.get("description"), name
        check_references(f"commands.{name}", command["steps"], command.get("parameters") or {})
    for name, job in orb["jobs"].items():
        params = job.get("parameters") or {}
        check_references(f"jobs.{name}", job["steps"], params)
        assert job["executor"] in orb["executors"]
        for step in job["steps"]:
            step_name, args = (step, {}) if isinstance(step, str) else next(iter(step.items()))
            if step_name in BUILTIN_STEPS:
                continue
            assert step_name in commands, f"jobs.{name}: unknown step {step_name}"
            given = {k: True if "<<" in str(v) and commands[step_name]["parameters"][k]["type"] == "boolean" else v
                     for k, v in (args or {}).items()}  # fmt: skip
            circle_values(commands[step_name].get("parameters") or {}, given)
    for name, example in orb["examples"].items():
        assert example["description"] and example["usage"]["version"] == 2.1, name
        check_usage(orb, example["usage"])
    check_usage(orb, load(INTEGRATIONS / "circleci" / "example-config.yml"))


def check_usage(orb: Mapping[str, Any], config: Mapping[str, Any]) -> None:
    """A configuration using the orb passes only declared parameters, and every required one."""
    [alias] = [a for a, ref in config["orbs"].items() if ref.startswith("smart-rollback/smart-rollback@")]
    steps = [s for job in (config.get("jobs") or {}).values() for s in job["steps"]]
    for step in steps:
        name, args = (step, {}) if isinstance(step, str) else next(iter(step.items()))
        if name.startswith(f"{alias}/"):
            circle_values(orb["commands"][name.split("/", 1)[1]].get("parameters") or {}, args or {})
    for workflow in config["workflows"].values():
        for job in workflow["jobs"]:
            name, args = (job, {}) if isinstance(job, str) else next(iter(job.items()))
            if name.startswith(f"{alias}/"):
                given = {k: v for k, v in (args or {}).items() if k not in ("context", "requires", "filters", "name")}
                circle_values(orb["jobs"][name.split("/", 1)[1]].get("parameters") or {}, given)


def test_every_plugin_has_a_readme_and_an_example() -> None:
    expected = {
        "github-actions": "example-workflow.yml",
        "gitlab": "example.gitlab-ci.yml",
        "jenkins": "Jenkinsfile.example",
        "circleci": "example-config.yml",
        "argocd": "application-example.yaml",
    }
    assert (INTEGRATIONS / "README.md").exists()
    for directory, example in expected.items():
        readme = INTEGRATIONS / directory / "README.md"
        assert readme.exists() and len(readme.read_text()) > 300, readme
        assert (INTEGRATIONS / directory / example).exists()
    for path in INTEGRATIONS.rglob("*"):
        if path.suffix in (".yml", ".yaml"):
            load(path)
        if path.suffix == ".json":
            json.loads(path.read_text())
        if path.is_file():
            text = path.read_text()
            assert not re.search(r"https?://[^/\s\"']*:[^@/\s\"']+@", text), f"{path}: credentials in a URL"


def test_the_shell_in_every_plugin_is_valid(tmp_path: Path) -> None:
    """`bash -n` / `sh -n` on every script, with the dialect each system runs."""
    scripts: list[tuple[str, str, str]] = []
    for step in load(ACTION)["runs"]["steps"]:
        scripts.append((f"action:{step['id']}", "bash", step["run"]))
    doc = load(GITLAB)
    for name in (".smart-rollback-register", ".smart-rollback-gate"):
        job = resolve_extends(doc, name)
        scripts.append((f"gitlab:{name}", "sh", "\n".join([*job["before_script"], *job["script"]])))
    for name, command in load(ORB)["commands"].items():
        for step in command["steps"]:
            scripts.append((f"orb:{name}", "bash", CIRCLE_PARAMETER.sub("x", step["run"]["command"])))
    for body in re.findall(r"script: '''(.*?)'''", JENKINS_STEP.read_text(), re.S):
        scripts.append(("jenkins", "sh", textwrap.dedent(body)))
    assert len(scripts) >= 12
    for where, shell, script in scripts:
        path = tmp_path / "script.sh"
        path.write_text(script)
        done = subprocess.run([shell, "-n", str(path)], capture_output=True, text=True)
        assert done.returncode == 0, f"{where}: {done.stderr}"
