"""Typed field access that names the failing path: every parser reads JSON through these."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from webhooks.errors import PayloadError

#: Go's zero time, which Alertmanager sends as ``endsAt`` while an alert fires.
_GO_ZERO_YEAR = 1


def obj(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise PayloadError(path, "a JSON object", type(value).__name__)
    return value


def string(parent: Mapping[str, Any], key: str, path: str, *, default: str | None = None) -> str:
    value = parent.get(key, default)
    if value is None:
        raise PayloadError(_join(path, key), "a string (required)")
    if not isinstance(value, str):
        raise PayloadError(_join(path, key), "a string", value)
    return value


def opt_string(parent: Mapping[str, Any], key: str, path: str) -> str | None:
    value = parent.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise PayloadError(_join(path, key), "a string", value)
    return str(value)


def string_map(parent: Mapping[str, Any], key: str, path: str) -> dict[str, str]:
    """A ``{string: string}`` object; absent or null is empty. Non-string values are refused."""
    value = parent.get(key)
    if value is None:
        return {}
    where = _join(path, key)
    mapping = obj(value, where)
    if all(type(v) is str for v in mapping.values()):  # the common case, checked in one pass
        return dict(mapping)
    out: dict[str, str] = {}
    for k, v in mapping.items():
        if not isinstance(v, str):
            raise PayloadError(f"{where}.{k}", "a string value", v)
        out[k] = v
    return out


def integer(parent: Mapping[str, Any], key: str, path: str, *, default: int = 0) -> int:
    value = parent.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise PayloadError(_join(path, key), "an integer", value)
    if value < 0:
        raise PayloadError(_join(path, key), "a non-negative integer", value)
    return value


def timestamp(text: str, path: str) -> datetime | None:
    """RFC 3339 (any fractional digits, ``Z`` or offset) as aware UTC; Go's zero time gives None."""
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise PayloadError(path, "an RFC 3339 timestamp such as 2026-11-26T14:15:58.348Z", text) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    if parsed.year == _GO_ZERO_YEAR:
        return None
    return parsed.astimezone(UTC)


def number(text: str | None) -> float | None:
    """A float from a label or annotation, or None when it is not a finite number."""
    if text is None:
        return None
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
