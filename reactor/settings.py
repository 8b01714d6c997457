"""The reactor's settings: one typed object, loaded and validated once at start-up.

Sources, later ones winning: built-in defaults, the YAML file (``--config`` or ``SMART_ROLLBACK_CONFIG``),
``SMART_ROLLBACK_*`` environment variables, command-line flags. The reactor starts with no file at all::

    smart-rollback serve --bind 127.0.0.1:8080 --db sqlite:///rollback.db --token s3cret

Environment variables: the short ones below, plus ``SMART_ROLLBACK_<SECTION>__<FIELD>`` for any nested
field (values are parsed as YAML, so ``true``, ``30`` and ``[a, b]`` work)::

    SMART_ROLLBACK_BIND, SMART_ROLLBACK_DB, SMART_ROLLBACK_TOKEN (comma-separated),
    SMART_ROLLBACK_BASIC_AUTH (user:password), SMART_ROLLBACK_INSECURE, SMART_ROLLBACK_WORKERS,
    SMART_ROLLBACK_MODE, SMART_ROLLBACK_KILL_SWITCH

Validation errors come out as one :class:`ConfigError` listing every problem with its path and a hint.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from reactor.notify.config import NotificationSettings
from strategies import PLATFORMS, STRATEGIES
from webhooks import IdentityRules

ENV_PREFIX = "SMART_ROLLBACK_"
#: A week: longer soaks are almost certainly a unit mistake (milliseconds for seconds).
MAX_SOAK_SECONDS = 7 * 86400.0
Mode = Literal["observe", "recommend", "auto"]


class ConfigError(ValueError):
    """Settings that cannot be used. The message lists each problem and how to fix it."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(_Model):
    #: host:port gunicorn listens on.
    bind: str = "127.0.0.1:8080"
    #: gunicorn worker processes; each runs request threads and one job worker.
    workers: int = Field(2, ge=1, le=64)
    #: request threads per worker process (gthread worker).
    threads: int = Field(8, ge=1, le=256)
    #: bodies larger than this get 413 (Alertmanager payloads are a few KiB).
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    #: the URL people reach the reactor at, used in links (notifications, explanations).
    public_url: str | None = None
    #: gunicorn worker timeout, seconds.
    timeout: int = Field(30, ge=5)
    #: a Grafana dashboard URL for notifications; ``{target}`` and ``{name}`` are filled in.
    grafana_url: str | None = None

    @field_validator("bind")
    @classmethod
    def _bind(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"bind must be HOST:PORT such as 127.0.0.1:8080, got {value!r}")
        return value


class BasicUser(_Model):
    username: str = Field(min_length=1)
    password: SecretStr


class AuthSettings(_Model):
    """Webhook and API credentials. Alertmanager sends either (``http_config.authorization`` or
    ``basic_auth``); Datadog sends a bearer token through a custom header."""

    tokens: tuple[SecretStr, ...] = ()
    basic: tuple[BasicUser, ...] = ()
    #: accept unauthenticated requests. Only for local experiments: the service says so at start-up.
    insecure: bool = False
    #: serve /metrics without credentials (Prometheus scrapes it); set false to require them.
    metrics_public: bool = True

    @model_validator(mode="after")
    def _some_credentials(self) -> AuthSettings:
        if not self.insecure and not self.tokens and not self.basic:
            raise ValueError(
                "no credentials configured: pass --token TOKEN (or SMART_ROLLBACK_TOKEN), configure auth.basic, "
                "or run with --insecure to accept unauthenticated requests (local experiments only)"
            )
        return self


class DatabaseSettings(_Model):
    #: SQLAlchemy URL: ``sqlite:///path.db`` (default, WAL mode) or ``postgresql://user@host/db``.
    url: str = "sqlite:///smart-rollback.db"
    #: SQLite fsync policy. FULL survives power loss; NORMAL (WAL) survives process crashes only.
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if value.startswith("postgres://"):
            value = "postgresql://" + value.removeprefix("postgres://")
        scheme = value.split(":", 1)[0]
        if not (scheme.startswith("sqlite") or scheme.startswith("postgresql")):
            raise ValueError(f"database url must start with sqlite:/// or postgresql://, got {value!r}")
        return value


class IntakeSettings(_Model):
    #: alerts written per transaction at most (group commit).
    batch_max: int = Field(512, ge=1)
    #: requests waiting for the writer at most; beyond that intake answers 503 so the sender retries.
    queue_max: int = Field(2048, ge=1)
    #: how long a request waits for its commit before answering 503.
    commit_timeout_seconds: float = Field(5.0, gt=0)


class WorkerSettings(_Model):
    enabled: bool = True
    #: seconds between polls of the job table when idle (new alerts also wake the worker at once).
    poll_interval_seconds: float = Field(0.5, gt=0)
    #: a claimed job or target lock is someone else's after this long without a heartbeat.
    lease_seconds: float = Field(30.0, ge=1)
    #: attempts for a job failing with temporary errors before it is given up.
    max_attempts: int = Field(8, ge=1)
    backoff_initial_seconds: float = Field(1.0, gt=0)
    backoff_max_seconds: float = Field(60.0, gt=0)


class ProgressiveSettings(_Model):
    #: canary weights to step through on the way back, ending at 0.
    steps: tuple[int, ...] = (50, 20, 0)
    #: seconds to watch the stable side between steps.
    step_interval_seconds: float = Field(10.0, ge=0)

    @field_validator("steps")
    @classmethod
    def _steps(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or value[-1] != 0 or any(not 0 <= w <= 100 for w in value):
            raise ValueError(f"steps must be weights in 0..100 ending with 0, e.g. [50, 20, 0]; got {list(value)}")
        if list(value) != sorted(value, reverse=True):
            raise ValueError(f"steps must decrease, e.g. [50, 20, 0]; got {list(value)}")
        return value


class PolicyOverrides(_Model):
    """Per-target settings; every field is optional and overrides :class:`Policy` for matching targets."""

    #: glob over ``platform/cluster/namespace/name``, e.g. ``kubernetes/prod-*/shop/*``.
    match: str = "*"
    mode: Mode | None = None
    platform: str | None = None
    strategies: tuple[str, ...] | None = None
    default_strategy: str | None = None
    cooldown_seconds: float | None = Field(None, ge=0)
    max_rollbacks: int | None = Field(None, ge=0)
    window_seconds: float | None = Field(None, gt=0)
    rollback_safe: bool | None = None
    severities: tuple[str, ...] | None = None
    wait_timeout_seconds: float | None = Field(None, ge=0)
    progressive: ProgressiveSettings | None = None
    release: str | None = None
    soak_seconds: float | None = Field(None, gt=0, le=MAX_SOAK_SECONDS)


class Policy(_Model):
    """What the reactor may do for a target. ``policies.defaults`` sets it; ``policies.targets`` refine it."""

    #: observe: decide and record only. recommend: wait for approve/reject. auto: act.
    mode: Mode = "observe"
    #: which configured platform instance runs the target; default: the target's own platform label.
    platform: str | None = None
    #: strategies this target may use (default: every registered one).
    strategies: tuple[str, ...] = ()
    #: strategy when nothing in the alert points elsewhere.
    default_strategy: str = "undo"
    #: no second rollback of a target within this many seconds of the last one.
    cooldown_seconds: float = Field(600.0, ge=0)
    #: at most this many rollbacks of a target per window; past it, hold and page.
    max_rollbacks: int = Field(3, ge=0)
    window_seconds: float = Field(3600.0, gt=0)
    #: false for releases with irreversible migrations: hold and page instead of rolling back.
    rollback_safe: bool = True
    #: alert severities that may trigger a rollback (empty: any).
    severities: tuple[str, ...] = ()
    #: seconds to wait for readiness after each write (0: do not wait).
    wait_timeout_seconds: float = Field(120.0, ge=0)
    progressive: ProgressiveSettings = ProgressiveSettings()
    #: the release (multi-component group) the target belongs to, for partial rollbacks.
    release: str | None = None
    #: healthy soak of a registered deployment before its revision becomes last known good
    #: (None: ``deployments.soak_seconds``).
    soak_seconds: float | None = Field(None, gt=0, le=MAX_SOAK_SECONDS)

    def merged(self, overrides: PolicyOverrides) -> Policy:
        changes = {k: v for k, v in overrides.model_dump(exclude={"match"}).items() if v is not None}
        return self.model_validate({**self.model_dump(), **changes})


class PoliciesSettings(_Model):
    defaults: Policy = Policy()
    targets: tuple[PolicyOverrides, ...] = ()


class ComponentSettings(_Model):
    depends_on: tuple[str, ...] = ()


class ReleaseSettings(_Model):
    """A multi-component release: components are targets sharing a namespace and a ``release`` label."""

    components: dict[str, ComponentSettings] = {}

    @model_validator(mode="after")
    def _known_dependencies(self) -> ReleaseSettings:
        for name, component in self.components.items():
            unknown = [d for d in component.depends_on if d not in self.components]
            if unknown:
                raise ValueError(f"component {name!r} depends on unknown components {unknown}")
        _check_acyclic({n: c.depends_on for n, c in self.components.items()})
        return self


class PlatformInstance(BaseModel):
    """A configured platform: its registered ``type`` and the options its constructor takes."""

    model_config = ConfigDict(extra="allow", frozen=True)
    type: str

    @field_validator("type")
    @classmethod
    def _registered(cls, value: str) -> str:
        if value not in PLATFORMS:
            raise ValueError(f"unknown platform type {value!r}; registered: {', '.join(sorted(PLATFORMS))}")
        return value

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


def _default_platforms() -> dict[str, PlatformInstance]:
    # With no configuration every platform label maps to the record-only platform: nothing real changes.
    return {name: PlatformInstance(type="dry-run") for name in ("dry-run", "kubernetes", "ecs", "swarm")}


class IdentitySettings(_Model):
    """Defaults for alerts whose labels do not say which platform, cluster or namespace they are about."""

    default_platform: str = "kubernetes"
    default_cluster: str = "default"
    default_namespace: str = "default"

    def rules(self) -> IdentityRules:
        return IdentityRules(
            default_platform=self.default_platform,
            default_cluster=self.default_cluster,
            default_namespace=self.default_namespace,
        )


class HealthSettings(_Model):
    """Where the reactor reads a target's health score (between progressive steps, for verification)."""

    #: Prometheus base URL; without it the stable side's health is "unknown" (strategies proceed).
    prometheus_url: str | None = None
    #: PromQL returning the stable side's 0–100 health; ``{target}``, ``{namespace}``, ``{cluster}`` are filled in.
    #: The default reads the exporter's baseline score: the stable revision's latest window against the one
    #: before it, exported while it shares traffic with a canary (no series: unknown, and the step proceeds).
    query: str = (
        'min(smart_rollback_baseline_health_score{{target="{target}",namespace="{namespace}",cluster="{cluster}"}})'
    )
    #: At or above: healthy. Below it (and not below ``critical_below``): unhealthy, and a progressive rollback
    #: stops with the canary at its share. 50, the judge's ``marginal`` threshold: one failing group of two (60)
    #: is not enough to stop a rollback of a bad canary; a stable side failing on a shared cause is far lower.
    healthy_above: float = 50.0
    critical_below: float = 20.0
    timeout_seconds: float = Field(2.0, gt=0)


class DeploymentSettings(_Model):
    """Registered deployments (CI/CD): the healthy soak and what counts as enough health data."""

    #: a deployment with no rollback and no rollback-worthy alert for this long is ``healthy``, and its
    #: revision becomes the last known good. Longer than your alert rules' ``for:`` plus Alertmanager's
    #: ``group_wait``, or a bad revision can pass before its alert fires. Per target: ``policies``.
    soak_seconds: float = Field(600.0, gt=0, le=MAX_SOAK_SECONDS)
    #: at the end of the soak, ask Prometheus (``health.prometheus_url``) whether the exporter had
    #: sufficient data at any time during the soak; if not, the verdict is ``insufficient_data``.
    require_health_data: bool = False
    #: PromQL answering "was the data sufficient during the soak"; ``{target}``, ``{namespace}``,
    #: ``{cluster}``, ``{platform}`` and ``{window}`` (the soak as a duration, e.g. ``600s``) are filled in.
    sufficiency_query: str = (
        'max(max_over_time(smart_rollback_data_sufficient{{target="{target}",namespace="{namespace}"}}[{window}]))'
    )
    #: upper bound of ``GET /api/v1/deployments/{id}?wait=``: below gunicorn's and proxies' timeouts.
    max_wait_seconds: float = Field(25.0, ge=0, le=120)

    @field_validator("sufficiency_query")
    @classmethod
    def _placeholders(cls, value: str) -> str:
        try:
            value.format(target="t", namespace="n", cluster="c", platform="p", window="600s")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"{exc} is not a known placeholder; use {{target}}, {{namespace}}, {{cluster}}, "
                "{platform} and {window}, and double literal braces: {{...}}"
            ) from None
        return value


class Settings(_Model):
    server: ServerSettings = ServerSettings()
    auth: AuthSettings = AuthSettings(insecure=True)
    database: DatabaseSettings = DatabaseSettings()
    intake: IntakeSettings = IntakeSettings()
    worker: WorkerSettings = WorkerSettings()
    identity: IdentitySettings = IdentitySettings()
    policies: PoliciesSettings = PoliciesSettings()
    releases: dict[str, ReleaseSettings] = {}
    platforms: dict[str, PlatformInstance] = Field(default_factory=_default_platforms)
    health: HealthSettings = HealthSettings()
    deployments: DeploymentSettings = DeploymentSettings()
    notifications: NotificationSettings = NotificationSettings()
    #: stop every automatic rollback; decisions are still recorded.
    kill_switch: bool = False

    @model_validator(mode="after")
    def _cross_checks(self) -> Settings:
        problems: list[str] = []
        policies = [("policies.defaults", self.policies.defaults)]
        policies += [(f"policies.targets[{i}]", p) for i, p in enumerate(self.policies.targets)]  # type: ignore[misc]
        for where, policy in policies:
            for name in (*(policy.strategies or ()), policy.default_strategy):
                if name and name not in STRATEGIES:
                    problems.append(f"{where}: unknown strategy {name!r}; registered: {', '.join(sorted(STRATEGIES))}")
            if policy.platform and policy.platform not in self.platforms:
                problems.append(
                    f"{where}.platform: {policy.platform!r} is not configured under platforms: "
                    f"({', '.join(sorted(self.platforms))})"
                )
            if policy.release and policy.release not in self.releases:
                problems.append(f"{where}.release: {policy.release!r} is not defined under releases:")
        defaults = self.policies.defaults
        if defaults.cooldown_seconds > defaults.window_seconds and defaults.max_rollbacks > 1:
            problems.append(
                "policies.defaults: cooldown_seconds exceeds window_seconds, so max_rollbacks > 1 can never apply"
            )
        if self.deployments.require_health_data and not self.health.prometheus_url:
            problems.append(
                "deployments.require_health_data: set health.prometheus_url, the Prometheus the reactor asks "
                "whether the exporter had sufficient data during the soak"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def soak_for(self, target: str) -> float:
        """Seconds of healthy soak for ``target``: its policy's ``soak_seconds``, else the global one."""
        return self.policy_for(target).soak_seconds or self.deployments.soak_seconds

    def policy_for(self, target: str) -> Policy:
        """The defaults refined by every ``policies.targets`` entry whose glob matches, in file order."""
        policy = self.policies.defaults
        for override in self.policies.targets:
            if fnmatch.fnmatchcase(target, override.match):
                policy = policy.merged(override)
        return policy


# --------------------------------------------------------------------------------------------- loading

_SHORT_ENV: dict[str, tuple[str, ...]] = {
    "BIND": ("server", "bind"),
    "WORKERS": ("server", "workers"),
    "DB": ("database", "url"),
    "DATABASE_URL": ("database", "url"),
    "INSECURE": ("auth", "insecure"),
    "KILL_SWITCH": ("kill_switch",),
    "MODE": ("policies", "defaults", "mode"),
}


def load_settings(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build :class:`Settings` from defaults, a YAML file, the environment and flag overrides.

    ``overrides`` uses dotted keys (``{"server.bind": "127.0.0.1:9000", "auth.tokens": ["t"]}``); ``None``
    values are ignored so unset flags do not clobber the file. Raises :class:`ConfigError`.
    """
    env = os.environ if env is None else env
    path = path or env.get(ENV_PREFIX + "CONFIG") or None
    data: dict[str, Any] = {}
    if path:
        data = _read_yaml(Path(path))
    _apply_env(data, env)
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set(data, tuple(dotted.split(".")), value)
    try:
        return Settings.model_validate(_with_auth_default(data))
    except ValidationError as exc:
        raise ConfigError(_explain(exc, path)) from None


def _with_auth_default(data: dict[str, Any]) -> dict[str, Any]:
    # The model default for auth is "insecure" so that Settings() works in code; a loaded configuration
    # must say how it authenticates, so an absent auth section means "no credentials" here.
    if "auth" not in data:
        data = {**data, "auth": {}}
    return data


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections (server:, auth:, ...)")
    return data


def _apply_env(data: dict[str, Any], env: Mapping[str, str]) -> None:
    for key, value in env.items():
        if not key.startswith(ENV_PREFIX):
            continue
        name = key.removeprefix(ENV_PREFIX)
        if name in _SHORT_ENV:
            _set(data, _SHORT_ENV[name], _scalar(value))
        elif name == "TOKEN":
            _set(data, ("auth", "tokens"), [t.strip() for t in value.split(",") if t.strip()])
        elif name == "BASIC_AUTH":
            user, sep, password = value.partition(":")
            if not sep:
                raise ConfigError("SMART_ROLLBACK_BASIC_AUTH must be USER:PASSWORD")
            _set(data, ("auth", "basic"), [{"username": user, "password": password}])
        elif "__" in name:
            _set(data, tuple(part.lower() for part in name.split("__")), _scalar(value))


def _scalar(value: str) -> Any:
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        return value


def _set(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = data
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[path[-1]] = value


def _explain(exc: ValidationError, path: Any) -> str:
    where = f" in {path}" if path else ""
    lines = [f"invalid configuration{where}:"]
    for error in exc.errors():
        loc = ".".join(str(p) for p in error["loc"]) or "<top level>"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown setting (check the spelling; see docs/configuration.md)"
        lines.append(f"  - {loc}: {message}")
    return "\n".join(lines)


def _check_acyclic(graph: Mapping[str, tuple[str, ...]]) -> None:
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        if state.get(node) == 1:
            raise ValueError(f"dependency cycle: {' -> '.join([*trail, node])}")
        if state.get(node) == 2:
            return
        state[node] = 1
        for dep in graph.get(node, ()):
            visit(dep, [*trail, node])
        state[node] = 2

    for node in graph:
        visit(node, [])
