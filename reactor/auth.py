"""Bearer-token and basic authentication with constant-time comparison.

Alertmanager sends ``Authorization: Bearer`` (``http_config.authorization``) or ``Basic``
(``basic_auth``); Datadog sends whatever custom header the user configured, so a bearer token there.
Every configured credential is compared on every request, so timing does not reveal which one matched.
"""

from __future__ import annotations

import base64
import binascii
import hmac

from reactor.settings import AuthSettings


class Authenticator:
    def __init__(self, settings: AuthSettings) -> None:
        self.insecure = settings.insecure
        self._tokens = [t.get_secret_value().encode() for t in settings.tokens]
        self._users = [(u.username.encode(), u.password.get_secret_value().encode()) for u in settings.basic]

    @property
    def schemes(self) -> list[str]:
        return (["Bearer"] if self._tokens else []) + (['Basic realm="smart-rollback"'] if self._users else [])

    def identify(self, header: str | None) -> str | None:
        """The authenticated actor (``token`` or the basic-auth user name), or None."""
        if self.insecure:
            return "anonymous"
        if not header:
            return None
        scheme, _, credentials = header.strip().partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer":
            presented = credentials.strip().encode()
            matched = False
            for token in self._tokens:
                matched |= hmac.compare_digest(presented, token)
            return "token" if matched else None
        if scheme == "basic":
            try:
                user, sep, password = base64.b64decode(credentials.strip(), validate=True).partition(b":")
            except (binascii.Error, ValueError):
                return None
            if not sep:
                return None
            found: str | None = None
            for name, secret in self._users:
                if hmac.compare_digest(user, name) & hmac.compare_digest(password, secret):
                    found = name.decode()
            return found
        return None
