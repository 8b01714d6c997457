"""The ``notifications:`` section of the reactor's YAML configuration, as pydantic models.

Example (docs/notifications.md has one per channel type)::

    notifications:
      channels:
        slack-sre: {type: slack, bot_token_env: SLACK_BOT_TOKEN, channel: C0123456789}
        pagerduty: {type: pagerduty, routing_key_env: PD_ROUTING_KEY}
      routes:
        - match: {targets: ["kubernetes/prod-*"], events: [rollback_failed, held_for_approval]}
          channels: [pagerduty, slack-sre]
          continue: true
        - channels: [slack-sre]
      grafana: {url: https://grafana.example.com, token_env: GRAFANA_TOKEN}
      chatops:
        public_url: https://rollback.example.com
        slack_signing_secret_env: SLACK_SIGNING_SECRET
        link_secret_env: SMART_ROLLBACK_LINK_SECRET

Each channel's allowed ``type:`` values and options come from the channel registry
(:data:`reactor.notify.channels.CHANNELS`): a channel type's ``Options`` model *is* its settings, plus
``type`` and ``rate_limit``. Validation checks shapes only; secrets are read when the hub is built.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator

from reactor.notify.channels import CHANNELS
from reactor.notify.errors import NotificationConfigError
from reactor.notify.grafana import GrafanaOptions
from reactor.notify.options import ChannelOptions, RateLimit, SecretRef
from reactor.notify.routing import Route

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ChannelSettingsBase(ChannelOptions):
    """What every channel entry has besides its type's options (for type checkers: at run time an entry
    is an instance of its type's generated ``<Channel>Settings`` model, a subclass of its ``Options``)."""

    type: str
    #: ``None``: the channel type's default limit; ``false``: no limit.
    rate_limit: RateLimit | bool | None = None


def _channel_settings_models() -> tuple[type[BaseModel], ...]:
    models: list[type[BaseModel]] = []
    for name, cls in sorted(CHANNELS.items()):
        fields: dict[str, Any] = {"type": (Literal[name], ...), "rate_limit": (RateLimit | bool | None, None)}
        model = create_model(f"{cls.__name__}Settings", __base__=cls.Options, __doc__=cls.__doc__, **fields)
        models.append(model)
    return tuple(models)


if TYPE_CHECKING:
    ChannelSettings = ChannelSettingsBase
else:
    #: One entry of ``channels:``, told apart by ``type``; the union is built from the registry.
    ChannelSettings = Annotated[Union[_channel_settings_models()], Field(discriminator="type")]  # noqa: UP007


def rate_limit_of(settings: ChannelOptions, default: RateLimit | None) -> RateLimit | None:
    """The rate limit a channel entry asks for (``rate_limit: false`` turns the type's default off)."""
    value = getattr(settings, "rate_limit", None)
    if value is False:
        return None
    if isinstance(value, RateLimit):
        return value
    return default


class DeliverySettings(_Model):
    #: Delivery threads per reactor process.
    workers: int = Field(default=2, ge=1, le=32)
    #: Deliveries waiting at most; beyond that new ones are dropped (and recorded) rather than queued.
    queue_size: int = Field(default=1000, ge=1)
    max_attempts: int = Field(default=6, ge=1, le=50)
    backoff_initial_seconds: float = Field(default=1.0, gt=0)
    backoff_max_seconds: float = Field(default=300.0, gt=0)
    backoff_jitter: float = Field(default=0.2, ge=0, le=1)
    #: A ``Retry-After`` longer than this gives the delivery up instead of waiting.
    max_retry_after_seconds: float = Field(default=900.0, ge=0)
    connect_timeout_seconds: float = Field(default=3.05, gt=0)
    #: Per request (read timeout for HTTP; the whole SMTP conversation's socket timeout).
    timeout_seconds: float = Field(default=10.0, gt=0)
    #: On shutdown, how long queued deliveries still get before they are recorded as dropped.
    shutdown_grace_seconds: float = Field(default=5.0, ge=0)


class ChatOpsSettings(ChannelOptions):
    """Approval from chat and e-mail for decisions held in ``recommend`` mode."""

    #: The URL people reach the reactor at; approval links point there.
    public_url: str | None = Field(default=None, pattern=r"^https?://")
    #: Where the blueprint is mounted (the Slack request URL is ``<public_url><prefix>/slack/interactions``).
    url_prefix: str = Field(default="/chatops", pattern=r"^/[A-Za-z0-9/_-]*$")
    #: The Slack app's signing secret: enables the interactive Approve/Reject buttons.
    slack_signing_secret: SecretRef | None = None
    #: Key for the signed approve/reject links in e-mail, Teams, PagerDuty and Opsgenie.
    link_secret: SecretRef | None = None
    #: Old link keys still accepted (rotation): entries like ``{env: OLD_LINK_SECRET}``.
    previous_link_secrets: tuple[SecretRef, ...] = ()
    link_ttl_seconds: float = Field(default=3600.0, ge=60, le=7 * 24 * 3600)

    @model_validator(mode="after")
    def _links_need_url(self) -> ChatOpsSettings:
        if self.link_secret is not None and not self.public_url:
            raise ValueError("link_secret needs public_url: the links must point at the reactor")
        return self

    def resolve_previous(self, environ: Mapping[str, str] | None = None) -> list[str]:
        return [ref.resolve(environ) for ref in self.previous_link_secrets]


class NotificationSettings(_Model):
    """The whole ``notifications:`` section."""

    enabled: bool = True
    channels: dict[str, ChannelSettings] = Field(default_factory=dict)
    routes: tuple[Route, ...] = ()
    delivery: DeliverySettings = DeliverySettings()
    grafana: GrafanaOptions | None = None
    chatops: ChatOpsSettings = ChatOpsSettings()

    @model_validator(mode="after")
    def _references(self) -> NotificationSettings:
        problems = [
            f"channel name {name!r} must be letters, digits, '.', '_' or '-' (at most 63)"
            for name in self.channels
            if not _NAME.match(name)
        ]
        known = ", ".join(sorted(self.channels)) or "none configured"
        for index, route in enumerate(self.routes):
            problems += [
                f"routes[{index}] names channel {name!r}, which is not defined under channels (defined: {known})"
                for name in route.channels
                if name not in self.channels
            ]
        if problems:
            raise ValueError("; ".join(problems))
        return self


def format_validation_error(exc: ValidationError, *, prefix: str = "notifications") -> str:
    """One line per problem, with its path in the YAML (``notifications.channels.x.url: ...``)."""
    lines = []
    tags = set(CHANNELS)
    for error in exc.errors(include_url=False):
        loc = [str(part) for part in error["loc"]]
        # Drop the union tag pydantic inserts after a channel name (channels.<name>.<type>.field).
        if len(loc) >= 3 and loc[0] == "channels" and loc[2] in tags:
            del loc[2]
        path = ".".join([prefix, *loc]) if prefix else ".".join(loc)
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"{path}: {message}")
    return "\n".join(lines)


def parse_notification_settings(data: Any, *, source: str = "configuration") -> NotificationSettings:
    """Validate a ``notifications:`` mapping; :class:`NotificationConfigError` lists every problem."""
    try:
        return NotificationSettings.model_validate(data or {})
    except ValidationError as exc:
        raise NotificationConfigError(
            f"{source}: invalid notifications settings:\n{format_validation_error(exc)}"
        ) from None


def load_notification_settings(path: str | Path) -> NotificationSettings:
    """Read the ``notifications:`` section of a reactor YAML file (until the reactor settings embed it)."""
    file = Path(path)
    try:
        document = yaml.safe_load(file.read_text())
    except OSError as exc:
        raise NotificationConfigError(f"cannot read {file}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise NotificationConfigError(f"{file} is not valid YAML: {exc}") from None
    if not isinstance(document, Mapping) or "notifications" not in document:
        raise NotificationConfigError(
            f"{file} has no notifications: section; add one (see docs/notifications.md for examples)"
        )
    return parse_notification_settings(document["notifications"], source=str(file))
