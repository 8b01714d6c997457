"""Building blocks of the channel settings: secret references and the base of every channel's options.

A secret field ``token`` can be given three ways in YAML, exactly one of them::

    token: xoxb-...              # inline: fine for a laptop, not for a shared config file
    token_env: SLACK_BOT_TOKEN   # read from the environment when the hub starts
    token_file: /run/secrets/slack-bot-token   # read from a file (Kubernetes/Docker secrets)

Validation only checks the shape; the value is read by :meth:`SecretRef.resolve` when the hub is
built (at start-up), never at import time, so ``check-config`` works on a machine without the secrets.
"""

from __future__ import annotations

import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from reactor.notify.errors import SecretError


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class SecretRef(_Model):
    """Where a secret comes from: inline ``value``, environment variable ``env`` or ``file``."""

    value: SecretStr | None = None
    env: str | None = None
    file: Path | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        given = [name for name in ("value", "env", "file") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("a secret needs exactly one of value, env or file")
        return self

    def describe(self) -> str:
        """Where the secret comes from, for error messages (never the value)."""
        if self.env is not None:
            return f"environment variable {self.env}"
        if self.file is not None:
            return f"file {self.file}"
        return "inline value"

    def resolve(self, environ: Mapping[str, str] | None = None) -> str:
        """Read the secret now. Raises :class:`SecretError` saying which variable or file is missing."""
        if self.value is not None:
            secret = self.value.get_secret_value()
        elif self.env is not None:
            env = os.environ if environ is None else environ
            secret = env.get(self.env, "")
            if not secret:
                raise SecretError(f"environment variable {self.env} is not set or empty; export it")
        else:
            assert self.file is not None
            try:
                secret = self.file.read_text().strip()
            except OSError as exc:
                raise SecretError(f"cannot read secret file {self.file}: {exc.strerror or exc}") from None
            if not secret:
                raise SecretError(f"secret file {self.file} is empty")
        return secret


def _is_secret_annotation(annotation: Any) -> bool:
    if annotation is SecretRef:
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return SecretRef in typing.get_args(annotation)
    return False


class ChannelOptions(_Model):
    """Base of every channel's options. Subclasses declare secret fields as ``SecretRef``; the
    ``<field>_env`` / ``<field>_file`` spellings are folded into them here."""

    #: Secret fields a channel cannot work without; a missing one gets a message naming all spellings.
    required_secrets: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def secret_fields(cls) -> tuple[str, ...]:
        return tuple(name for name, info in cls.model_fields.items() if _is_secret_annotation(info.annotation))

    @model_validator(mode="before")
    @classmethod
    def _fold_secret_spellings(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        for name in cls.secret_fields():
            given = {key: data.pop(key) for key in (name, f"{name}_env", f"{name}_file") if key in data}
            spellings = {key: value for key, value in given.items() if value is not None}
            if len(spellings) > 1:
                raise ValueError(f"set only one of {', '.join(sorted(spellings))} (they are the same secret)")
            if not spellings:
                if name in cls.required_secrets:
                    raise ValueError(f"{name} is required: set {name}_env (recommended), {name}_file or {name}")
                continue
            ((key, value),) = spellings.items()
            if key == name:
                data[name] = value if isinstance(value, Mapping) else {"value": value}
            elif key.endswith("_env"):
                data[name] = {"env": value}
            else:
                data[name] = {"file": value}
        return data

    def resolve_secrets(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """Every configured secret of this channel, read now; missing ones raise :class:`SecretError`."""
        values: dict[str, str] = {}
        for name in self.secret_fields():
            ref = getattr(self, name)
            if ref is not None:
                try:
                    values[name] = ref.resolve(environ)
                except SecretError as exc:
                    raise SecretError(f"{name}: {exc}") from None
        return values


class RateLimit(_Model):
    """A token bucket: ``per_minute`` messages on average, bursts of up to ``burst``.

    A message over the limit waits for a token; one that would wait longer than ``max_wait_seconds``
    is dropped and recorded as ``rate_limited``.
    """

    per_minute: float = Field(gt=0)
    burst: int = Field(default=1, ge=1)
    max_wait_seconds: float = Field(default=300.0, ge=0)
