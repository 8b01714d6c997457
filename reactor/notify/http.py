"""One way to make an HTTP request for a channel and to turn its outcome into a delivery error.

The rules are shared by every HTTP channel: 2xx is delivered; 429, 408, 425 and 5xx are temporary
(``Retry-After`` honoured); any other 4xx is permanent; timeouts and refused connections are temporary;
TLS failures are permanent (a wrong CA will not fix itself). Messages name the service and host, never
the URL path or query, which may be a credential.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from reactor.notify.errors import PermanentDeliveryError, TemporaryDeliveryError

#: Response bodies quoted in an error message are cut to this many characters.
BODY_EXCERPT = 200
_ERRNO = re.compile(r"\[Errno -?\d+\] [^'\")\]]+")

Timeout = tuple[float, float]


def send(
    session: requests.Session,
    method: str,
    url: str,
    *,
    service: str,
    timeout: Timeout,
    **kwargs: Any,
) -> requests.Response:
    """Make the request; map transport failures onto delivery errors. Does not check the status."""
    try:
        return session.request(method, url, timeout=timeout, allow_redirects=False, **kwargs)
    except requests.exceptions.SSLError as exc:
        raise PermanentDeliveryError(f"{service}: TLS handshake failed ({_reason(exc)}); check the CA") from None
    except requests.Timeout:
        raise TemporaryDeliveryError(
            f"{service}: no answer within {timeout[1]:g} s (connect timeout {timeout[0]:g} s)"
        ) from None
    except requests.ConnectionError as exc:
        raise TemporaryDeliveryError(f"{service}: connection failed ({_reason(exc)})") from None
    except requests.RequestException as exc:
        raise PermanentDeliveryError(f"{service}: request could not be made ({type(exc).__name__})") from None


def check(response: requests.Response, *, service: str) -> None:
    """Raise the delivery error a non-2xx ``response`` stands for."""
    status = response.status_code
    if 200 <= status < 300:
        return
    detail = excerpt(response.text)
    message = f"{service}: HTTP {status}" + (f" {detail}" if detail else "")
    if status == 429 or status in (408, 425) or status >= 500:
        raise TemporaryDeliveryError(message, status=status, retry_after=retry_after(response))
    if 300 <= status < 400:
        message += " (redirect not followed: point the URL at its final location)"
    raise PermanentDeliveryError(message, status=status)


def excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= BODY_EXCERPT else text[:BODY_EXCERPT] + "..."


def retry_after(response: requests.Response, *, now: datetime | None = None) -> float | None:
    """Seconds from ``Retry-After`` (delta-seconds or an HTTP date); ``None`` when absent or unreadable."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _reason(exc: BaseException) -> str:
    match = _ERRNO.search(str(exc))
    if match:
        return match.group(0).strip()
    inner: BaseException | None = exc
    while inner is not None and (inner.__cause__ or inner.__context__):
        inner = inner.__cause__ or inner.__context__
    return type(inner or exc).__name__
