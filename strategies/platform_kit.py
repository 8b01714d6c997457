"""Small pieces every engine-backed platform needs: validated options, per-target settings, weights, polling.

Kept free of client libraries so the ECS and Swarm platforms (and later ones) share one behaviour for the
things users see in their configuration and error messages.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from strategies.base import TargetRef
from strategies.errors import InvalidRequestError

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


class PlatformConfigError(ValueError):
    """A platform's options are invalid. Raised when the platform is built, i.e. at start-up."""


def parse_options(model: type[M], platform: str, options: Mapping[str, Any]) -> M:
    """Validate ``options`` against ``model``; raise one PlatformConfigError listing every problem."""
    try:
        return model.model_validate(dict(options))
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            problems.append(f"  platforms.{platform}.{where}: {err['msg']}")
        raise PlatformConfigError(
            f"invalid options for platform {platform!r}:\n" + "\n".join(problems) + "\nSee docs/platforms.md."
        ) from None


def split_target_key(key: str) -> tuple[str, str, str]:
    """``cluster/namespace/name`` -> its parts; raise ValueError (reported by pydantic) on another shape."""
    parts = key.split("/")
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"target key {key!r} must be cluster/namespace/name, e.g. prod-eu/shop/checkout")
    return parts[0], parts[1], parts[2]


def target_key(target: TargetRef) -> str:
    return f"{target.cluster}/{target.namespace}/{target.name}"


def validate_weights(target: TargetRef, weights: Mapping[str, int], sides: tuple[str, ...]) -> dict[str, int]:
    """Check a traffic split against the sides a target has; return it with every side present.

    A malformed split is the request's fault, not the target's: InvalidRequestError, as on Kubernetes.
    """
    unknown = sorted(set(weights) - set(sides))
    if unknown:
        raise InvalidRequestError(f"{target} has traffic sides {list(sides)}; got unknown side(s) {unknown}")
    result = {side: int(weights.get(side, 0)) for side in sides}
    if any(w < 0 or w > 100 for w in result.values()) or sum(result.values()) != 100:
        raise InvalidRequestError(f"weights for {target} must be 0..100 and sum to 100, got {dict(weights)}")
    return result


def percentages(raw: Mapping[str, int | float]) -> dict[str, int]:
    """Normalise raw shares (ALB weights 0..999, replica counts) to integer percentages summing to 100."""
    total = sum(raw.values())
    if total <= 0:
        return dict.fromkeys(raw, 0)
    items = list(raw.items())
    result: dict[str, int] = {}
    acc = 0
    for key, value in items[:-1]:
        pct = round(100 * value / total)
        result[key] = pct
        acc += pct
    result[items[-1][0]] = 100 - acc
    return result


def poll(
    check: Callable[[], T | None],
    *,
    timeout: float,
    interval: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T | None:
    """Call ``check`` until it returns something other than None, or ``timeout`` seconds have passed."""
    deadline = clock() + timeout
    while True:
        result = check()
        if result is not None:
            return result
        remaining = deadline - clock()
        if remaining <= 0:
            return None
        sleep(min(interval, remaining))
