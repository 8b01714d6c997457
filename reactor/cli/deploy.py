"""``smart-rollback deploy``: what CI/CD pipelines call. Register a deploy, wait for its verdict, mark revisions.

Everything goes through the running reactor's HTTP API (``--url``/``SMART_ROLLBACK_URL``, bearer token from
``--token``/``SMART_ROLLBACK_TOKEN``: never put credentials in the URL), so pipelines need no database access.

``deploy gate`` exit codes (docs/cicd.md)::

    0 healthy   10 rolled back   11 bad   12 insufficient data   13 timeout   14 superseded
    2 usage errors, the reactor unreachable or refusing (wrong token, unknown deployment)
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sys
import time
from collections.abc import Mapping
from typing import Any

import click

from reactor.cli import main

EXIT_CODES = {"healthy": 0, "rolled_back": 10, "bad": 11, "insufficient_data": 12, "superseded": 14}
EXIT_TIMEOUT = 13
EXIT_ERROR = 2
#: Statuses the reactor answers with that are worth retrying: it restarts, is overloaded, or its database is.
TRANSIENT = frozenset({429, 502, 503, 504})
#: Longest single long poll the gate asks for (the reactor bounds it too: deployments.max_wait_seconds).
MAX_POLL = 25.0

URL_OPTION = click.option(
    "--url", envvar="SMART_ROLLBACK_URL", default="http://127.0.0.1:8080", show_default=True,
    help="the reactor's base URL (also SMART_ROLLBACK_URL)",
)  # fmt: skip
TOKEN_OPTION = click.option(
    "--token", envvar="SMART_ROLLBACK_TOKEN", help="bearer token of the reactor (also SMART_ROLLBACK_TOKEN)"
)
JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="print the reactor's JSON answer on stdout")


class ReactorError(click.ClickException):
    """The reactor is unreachable or refused the request: exit 2 with what to do about it."""

    exit_code = EXIT_ERROR


class Transient(Exception):
    """A failure worth retrying (connection refused, timeout, 502/503/504)."""


class Client:
    """A small HTTP client of the reactor's API; ``session`` is injectable (tests pass their own)."""

    def __init__(self, url: str, token: str | None, *, session: Any = None, timeout: float = 10.0) -> None:
        self.url = _check_url(url)
        self.session = session or _session()
        self.session.headers["User-Agent"] = "smart-rollback-cli"
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        self.timeout = timeout

    def call(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """One request; raises :class:`Transient` or :class:`ReactorError`."""
        import requests

        try:
            response = self.session.request(
                method, self.url + path, json=body, params=params, headers=headers, timeout=timeout or self.timeout
            )
        except requests.RequestException as exc:
            raise Transient(f"cannot reach the reactor at {self.url}: {_short(exc)}") from None
        if response.status_code in TRANSIENT:
            raise Transient(f"the reactor at {self.url} answered {response.status_code}: {_error(response)}")
        if response.status_code == 401:
            raise ReactorError(
                f"the reactor at {self.url} refused the credentials (401): set SMART_ROLLBACK_TOKEN (or --token) to "
                "one of its auth.tokens"
            )
        if response.status_code >= 400:
            raise ReactorError(f"the reactor refused ({response.status_code}): {_error(response)}")
        try:
            data: dict[str, Any] = response.json()
        except ValueError:
            raise ReactorError(f"{self.url}{path} did not answer JSON: is --url the reactor?") from None
        return data

    def call_retrying(self, method: str, path: str, *, retry_for: float, **kwargs: Any) -> dict[str, Any]:
        """:meth:`call`, retrying transient failures with backoff for up to ``retry_for`` seconds."""
        deadline = time.monotonic() + retry_for
        delay = 0.5
        while True:
            try:
                return self.call(method, path, **kwargs)
            except Transient as exc:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ReactorError(str(exc)) from None
                _say(f"{exc}; retrying in {min(delay, left):.1f}s")
                time.sleep(min(delay, left))
                delay = min(delay * 2, 8.0)


@main.group()
def deploy() -> None:
    """Register deploys and gate pipelines on the reactor's verdict (for CI/CD; see docs/cicd.md)."""


# ------------------------------------------------------------------------------------------------ register


@deploy.command()
@click.option("--target", required=True, help="platform/cluster/namespace/name, e.g. kubernetes/prod/shop/checkout")
@click.option("--revision", required=True, help="what is being deployed: a revision number, image tag or commit")
@click.option("--previous", "previous", help="the revision it replaces")
@click.option("--pipeline-url", help="link to the pipeline run (default: from the CI's environment)")
@click.option("--actor", help="who deploys (default: from the CI's environment, else $USER)")
@click.option("--idempotency-key", help="retries with the same key return the first registration (default: random)")
@click.option("--retry-for", default=30.0, show_default=True, help="seconds to retry an unreachable reactor")
@URL_OPTION
@TOKEN_OPTION
@JSON_OPTION
def register(
    target: str,
    revision: str,
    previous: str | None,
    pipeline_url: str | None,
    actor: str | None,
    idempotency_key: str | None,
    retry_for: float,
    url: str,
    token: str | None,
    as_json: bool,
) -> None:
    """Tell the reactor a deploy of REVISION to TARGET starts now; prints the deployment id.

    Alerts that started before this moment are pre-existing: they never roll this deploy back. Run it
    right before (or as) the new revision rolls out.
    """
    client = Client(url, token)
    body = {
        "target": target,
        "revision": revision,
        "previous_revision": previous,
        "pipeline_url": pipeline_url or pipeline_url_from_env(os.environ),
        "actor": actor or actor_from_env(os.environ),
    }
    key = idempotency_key or secrets.token_hex(16)
    view = client.call_retrying(
        "POST", "/api/v1/deployments", body={k: v for k, v in body.items() if v}, headers={"Idempotency-Key": key},
        retry_for=retry_for,
    )  # fmt: skip
    soak = (view.get("progress") or {}).get("soak_seconds_left")
    _say(
        f"registered deployment {view['id']}: revision {view['revision']} of {view['target']}"
        + (f"; verdict after a soak of {_duration(soak)}" if soak is not None else "")
        + (" (already registered with this idempotency key)" if view.get("duplicate") else "")
    )
    click.echo(json.dumps(view, indent=2) if as_json else view["id"])


# ------------------------------------------------------------------------------------------------ gate


@deploy.command()
@click.option("--deployment", "deployment_id", required=True, envvar="SMART_ROLLBACK_DEPLOYMENT_ID",
              help="the id `deploy register` printed (also SMART_ROLLBACK_DEPLOYMENT_ID)")  # fmt: skip
@click.option("--timeout", "timeout_text", default="30m", show_default=True,
              help="how long to wait for the verdict: seconds, or 90s, 15m, 1h30m")  # fmt: skip
@click.option("--progress-every", "progress_text", default="30s", show_default=True,
              help="print a line at least this often while waiting (CI logs without a TTY)")  # fmt: skip
@URL_OPTION
@TOKEN_OPTION
@JSON_OPTION
def gate(deployment_id: str, timeout_text: str, progress_text: str, url: str, token: str | None, as_json: bool) -> None:
    """Wait for the verdict on a deployment; the exit code says which one.

    \b
    0  healthy: the soak passed; the revision is now the last known good
    10 rolled back: the reactor rolled the target back
    11 bad: a rollback was decided but not carried out (observe mode, held, failed), or a person marked it bad
    12 insufficient data: health could not be confirmed during the soak
    13 timeout: no verdict within --timeout
    14 superseded: another deploy of the target was registered first
    2  usage error, or the reactor unreachable or refusing the request

    Progress goes to stderr (a line per change, and one every --progress-every); the verdict to stdout.
    """
    timeout = parse_duration(timeout_text, "--timeout")
    every = parse_duration(progress_text, "--progress-every")
    code = Gate(Client(url, token), deployment_id, timeout=timeout, every=every, as_json=as_json).run()
    sys.exit(code)


class Gate:
    """The waiting loop of ``deploy gate``: long polls, a progress line per change, one every ``every``."""

    def __init__(
        self,
        client: Client,
        deployment_id: str,
        *,
        timeout: float,
        every: float,
        as_json: bool = False,
        clock: Any = time.monotonic,
        sleep: Any = time.sleep,
    ) -> None:
        self.client, self.deployment_id = client, deployment_id
        self.timeout, self.every, self.as_json = timeout, max(1.0, every), as_json
        self.clock, self.sleep = clock, sleep
        self.started: float | None = None

    def run(self) -> int:
        start = self.started = self.clock()
        deadline = start + self.timeout
        state: str | None = None
        view: dict[str, Any] | None = None
        last_line = start
        failing: str | None = None
        backoff = 0.5
        path = f"/api/v1/deployments/{self.deployment_id}"
        while True:
            now = self.clock()
            left = deadline - now
            if left <= 0:
                return self._timeout(view, failing, start)
            wait = min(left, MAX_POLL, self.every) if view is not None else 0.0
            params: dict[str, Any] = {"wait": f"{wait:.1f}"}
            if state is not None:
                params["since"] = state
            asked = self.clock()
            try:
                view = self.client.call("GET", path, params=params, timeout=wait + 10)
            except Transient as exc:
                if failing != str(exc):
                    _say(f"[{_clock(self.clock() - start)}] {exc}; retrying until the timeout")
                failing = str(exc)
                self.sleep(max(0.0, min(backoff, deadline - self.clock())))
                backoff = min(backoff * 2, 10.0)
                continue
            if failing is not None:
                _say(f"[{_clock(self.clock() - start)}] the reactor answers again")
            failing, backoff = None, 0.5
            elapsed = self.clock() - start
            progress = view.get("progress") or {}
            if state is None:
                self._header(view)
            changed = view["state"] != state
            if changed:
                state = view["state"]
                if view["status"] not in EXIT_CODES:  # a verdict gets its own line below
                    _say(f"[{_clock(elapsed)}] {view['status']}: {progress.get('message') or progress.get('phase')}")
                last_line = self.clock()
            elif self.clock() - last_line >= self.every:
                _say(f"[{_clock(elapsed)}] still {progress.get('phase')}: {progress.get('message')}")
                last_line = self.clock()
            if view["status"] in EXIT_CODES:
                return self._verdict(view)
            if not changed and self.clock() - asked < min(0.5, wait / 2):
                # The reactor answered at once (all its long-poll slots busy, or waits disabled): pace ourselves.
                self.sleep(max(0.0, min(2.0, deadline - self.clock())))

    def _header(self, view: Mapping[str, Any]) -> None:
        left = (view.get("progress") or {}).get("soak_seconds_left")
        line = f"gate: deployment {view['id']}, revision {view['revision']} of {view['target']}"
        if left is not None and view["status"] == "in_progress":
            line += f"; the soak ends in {_duration(left)}"
        _say(line + f"; waiting up to {_duration(self.timeout)}")
        if left is not None and view["status"] == "in_progress" and left > self.timeout:
            _say(
                f"warning: the soak ends after --timeout ({_duration(left)} > {_duration(self.timeout)}): unless a "
                "rollback comes first, this gate times out (exit 13). Raise --timeout or lower the target's soak."
            )

    def _verdict(self, view: Mapping[str, Any]) -> int:
        code = EXIT_CODES[view["status"]]
        elapsed = _clock(self.clock() - self.started) if self.started is not None else "00:00"
        _say(f"[{elapsed}] verdict: {view['status']} (exit {code}): {view.get('verdict_reason') or ''}".rstrip(": "))
        click.echo(json.dumps(view, indent=2) if self.as_json else view["status"])
        return code

    def _timeout(self, view: Mapping[str, Any] | None, failing: str | None, start: float) -> int:
        if failing is not None:
            raise ReactorError(f"no verdict: {failing} (for the last part of {_duration(self.timeout)})")
        progress = (view or {}).get("progress") or {}
        _say(
            f"timeout: no verdict after {_duration(self.clock() - start)} (exit {EXIT_TIMEOUT}); deployment "
            f"{self.deployment_id} is still {progress.get('phase')}: {progress.get('message')}"
        )
        click.echo(json.dumps(view, indent=2) if self.as_json and view else "timeout")
        return EXIT_TIMEOUT


# ------------------------------------------------------------------------------------------------ marks


def _mark_command(verdict: str) -> Any:
    @click.option("--deployment", "deployment_id", help="the deployment whose revision to mark")
    @click.option("--target", help="with --revision: platform/cluster/namespace/name")
    @click.option("--revision", help="with --target: as registered, or the platform's revision number or name")
    @click.option("--reason", required=True, help="why (audited, with who)")
    @click.option("--actor", help="who (default: from the CI's environment, else $USER)")
    @URL_OPTION
    @TOKEN_OPTION
    @JSON_OPTION
    def command(
        deployment_id: str | None,
        target: str | None,
        revision: str | None,
        reason: str,
        actor: str | None,
        url: str,
        token: str | None,
        as_json: bool,
    ) -> None:
        if bool(deployment_id) == bool(target or revision) or (not deployment_id and not (target and revision)):
            raise click.UsageError("give either --deployment ID, or --target T and --revision R")
        client = Client(url, token)
        who = actor or actor_from_env(os.environ)
        body = {"verdict": verdict, "reason": reason, "actor": who}
        if deployment_id:
            view = client.call_retrying("POST", f"/api/v1/deployments/{deployment_id}/mark", body=body, retry_for=10)
            message = f"deployment {view['id']} (revision {view['revision']} of {view['target']}) is {view['status']}"
        else:
            view = client.call_retrying(
                "POST", "/api/v1/marks", body={**body, "target": target, "revision": revision}, retry_for=10
            )
            settled = view.get("deployments") or []
            message = f"revision {revision} of {target} marked {verdict}" + (
                f"; deployment(s) {', '.join(settled)} settled" if settled else ""
            )
        last = view.get("last_good")
        _say(message + (f"; last known good: {last['revision']}" if last else ""))
        click.echo(json.dumps(view, indent=2) if as_json else verdict)

    command.__doc__ = f"Record that a revision is {verdict} (audited with who and why).\n\n" + (
        "Good: the revision becomes the last known good, rollbacks return to it, and a deployment of it still "
        "soaking is healthy now."
        if verdict == "good"
        else "Bad: the reactor never rolls back onto it, and a deployment of it still soaking is bad now. "
        "It does not roll anything back: use `smart-rollback rollback TARGET` for that."
    )
    return command


deploy.command("mark-good")(_mark_command("good"))
deploy.command("mark-bad")(_mark_command("bad"))


# ------------------------------------------------------------------------------------------------ list


@deploy.command("list")
@click.option("--target", required=True, help="platform/cluster/namespace/name")
@click.option("--limit", default=10, show_default=True, help="newest deployments to show")
@URL_OPTION
@TOKEN_OPTION
@JSON_OPTION
def list_command(target: str, limit: int, url: str, token: str | None, as_json: bool) -> None:
    """A target's recent deployments with their verdicts, and its last known good revision."""
    client = Client(url, token)
    deployments = client.call_retrying(
        "GET", "/api/v1/deployments", params={"target": target, "limit": limit}, retry_for=10
    )["deployments"]
    marks = client.call_retrying("GET", "/api/v1/marks", params={"target": target, "limit": 100}, retry_for=10)
    if as_json:
        click.echo(json.dumps({"deployments": deployments, **marks}, indent=2))
        return
    last = marks.get("last_good")
    click.echo(
        f"last known good revision of {target}: "
        + (f"{last['revision']} (marked by {last['actor']} at {last['at']}: {last['reason']})" if last else "none yet")
    )
    for d in deployments:
        click.echo(
            f"{(d.get('started_at') or '')[:19]}  {d['id']}  {d['revision']:<20} {d['status']:<18} "
            f"{d.get('verdict_reason') or (d.get('progress') or {}).get('message') or ''}"
        )


# ------------------------------------------------------------------------------------------------ helpers


def _session() -> Any:
    """A session that resends a GET once when the server closed an idle keep-alive connection just as it was
    reused (gunicorn closes them after 2 s): a race, not an outage, and not worth a line in the CI log."""
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    session = requests.Session()
    retry = Retry(total=1, connect=1, read=1, status=0, other=0, allowed_methods=frozenset({"GET"}))
    session.mount("http://", HTTPAdapter(max_retries=retry))
    session.mount("https://", HTTPAdapter(max_retries=retry))
    return session


def pipeline_url_from_env(env: Mapping[str, str]) -> str | None:
    """The running pipeline's URL from GitHub Actions, GitLab CI, Jenkins or CircleCI variables."""
    if env.get("GITHUB_RUN_ID") and env.get("GITHUB_REPOSITORY"):
        server = env.get("GITHUB_SERVER_URL", "https://github.com")
        return f"{server}/{env['GITHUB_REPOSITORY']}/actions/runs/{env['GITHUB_RUN_ID']}"
    for name in ("CI_PIPELINE_URL", "BUILD_URL", "CIRCLE_BUILD_URL"):
        if env.get(name):
            return env[name]
    return None


def actor_from_env(env: Mapping[str, str]) -> str | None:
    for name in ("GITHUB_ACTOR", "GITLAB_USER_LOGIN", "BUILD_USER_ID", "CIRCLE_USERNAME", "USER"):
        if env.get(name):
            return env[name]
    return None


_DURATION = re.compile(r"(\d+(?:\.\d+)?)([hms]?)")


def parse_duration(text: str, option: str = "duration") -> float:
    """``600``, ``90s``, ``15m``, ``1h30m`` -> seconds; a click usage error otherwise."""
    value = text.strip().lower()
    parts = _DURATION.findall(value)
    if not value or "".join(n + u for n, u in parts) != value or (len(parts) > 1 and not all(u for _, u in parts)):
        raise click.BadParameter(f"{text!r} is not a duration: use seconds (600) or 90s, 15m, 1h30m", param_hint=option)
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1, "": 1}[u] for n, u in parts)


def _check_url(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise click.BadParameter(
            f"{url!r} is not an http(s) URL such as https://rollback.example.com", param_hint="--url"
        )
    if parts.username or parts.password:
        raise click.BadParameter(
            "the URL carries credentials: they would end up in logs. Pass the token in SMART_ROLLBACK_TOKEN (or "
            "--token) instead",
            param_hint="--url",
        )
    return url.rstrip("/")


def _error(response: Any) -> str:
    try:
        return str(response.json().get("error") or response.text.strip())[:500]
    except ValueError:
        return response.text.strip()[:500] or response.reason


def _short(exc: Exception) -> str:
    text = str(exc)
    match = re.search(r"\[Errno -?\d+\] ([^')\]]+)", text)
    return match.group(1) if match else text[:200]


def _say(line: str) -> None:
    click.echo(line, err=True)


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return (
        f"{seconds // 60:02d}:{seconds % 60:02d}" if seconds < 3600 else f"{seconds // 3600}h{seconds % 3600 // 60:02d}"
    )


def _duration(seconds: float) -> str:
    seconds = max(0.0, float(seconds))
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"
