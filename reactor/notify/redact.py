"""Keep secrets out of logs and out of the audit trail.

Webhook URLs *are* credentials (Slack's path, the ``sig`` query parameter of a Teams Workflows URL), and
client libraries put URLs in their exception messages (urllib3 prints the path of a failed request).
So every text that leaves a channel (error messages, log records) goes through a :class:`Redactor`
that knows the resolved secrets, and, for secret URLs, the parts of them a library might print.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlsplit

MASK = "***"
#: Shorter values would mask ordinary words; no real token or password we accept is that short.
_MIN_SECRET_LENGTH = 4
#: Path segments and query values at least this long in a secret URL are treated as secret parts.
_MIN_URL_PART_LENGTH = 8


class Redactor:
    """Replaces every known secret (and the sensitive parts of secret URLs) with ``***``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._ordered: list[str] = []
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str) -> None:
        parts = {secret}
        if "://" in secret:
            parts |= _url_parts(secret)
        changed = False
        for part in parts:
            if len(part) >= _MIN_SECRET_LENGTH and part not in self._secrets:
                self._secrets.add(part)
                changed = True
        if changed:
            # Longest first, so a URL is masked whole before its path is.
            self._ordered = sorted(self._secrets, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._ordered:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def __contains__(self, text: str) -> bool:
        return any(secret in text for secret in self._ordered)


def _url_parts(url: str) -> set[str]:
    split = urlsplit(url)
    parts: set[str] = set()
    if split.path and split.path != "/":
        parts.add(split.path)
        if split.query:
            parts.add(f"{split.path}?{split.query}")
        parts |= {seg for seg in split.path.split("/") if len(seg) >= _MIN_URL_PART_LENGTH}
    if split.query:
        parts.add(split.query)
        parts |= {value for _, value in parse_qsl(split.query) if len(value) >= _MIN_URL_PART_LENGTH}
    if split.password:
        parts.add(split.password)
    return parts


def display_url(url: str) -> str:
    """What a message or log may show of a secret URL: scheme and host only."""
    split = urlsplit(url)
    host = split.hostname or "?"
    port = f":{split.port}" if split.port else ""
    return f"{split.scheme}://{host}{port}/..."


class RedactingFilter(logging.Filter):
    """A logging filter that masks the secrets of every registered :class:`Redactor`.

    Logger filters only see records logged on that very logger, so the hub installs one on each logger
    that may print a request: ours (``reactor.notify``), urllib3's connection pool and the Opsgenie SDK.
    """

    def __init__(self) -> None:
        super().__init__()
        self._redactors: list[Redactor] = []
        self._lock = threading.Lock()

    def register(self, redactor: Redactor) -> None:
        with self._lock:
            self._redactors.append(redactor)

    def unregister(self, redactor: Redactor) -> None:
        with self._lock:
            if redactor in self._redactors:
                self._redactors.remove(redactor)

    def filter(self, record: logging.LogRecord) -> bool:
        redactors = self._redactors
        if not redactors:
            return True
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        redacted = message
        for redactor in redactors:
            redacted = redactor(redacted)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            for redactor in redactors:
                text = redactor(text)
            record.exc_info, record.exc_text = None, text
        return True


#: Loggers that may print URLs or headers of our requests.
GUARDED_LOGGERS = ("reactor.notify", "urllib3.connectionpool", "opsgenie_sdk", "opsgenie_sdk.rest")
_FILTER = RedactingFilter()


def guard_logs(redactor: Redactor) -> None:
    """Mask ``redactor``'s secrets in the records of :data:`GUARDED_LOGGERS` (idempotent)."""
    for name in GUARDED_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    _FILTER.register(redactor)


def unguard_logs(redactor: Redactor) -> None:
    _FILTER.unregister(redactor)
