"""Platforms (where a rollback happens) and strategies (how), each behind one small protocol and one registry.

This package imports nothing else of ours. Platforms whose SDK is an optional extra are registered by
import path and loaded on first use, so a missing extra gives a clear message instead of an ImportError
at start-up.
"""

from __future__ import annotations

import importlib

from strategies.base import (
    ApiCall,
    Capability,
    ExecutionContext,
    Health,
    Outcome,
    OutcomeStatus,
    Plan,
    PlanStep,
    Platform,
    Revision,
    RollbackRequest,
    Strategy,
    TargetRef,
    TargetState,
)
from strategies.blue_green import BlueGreen
from strategies.errors import (
    ConflictError,
    InvalidRequestError,
    NoPreviousRevisionError,
    PermanentError,
    PlatformError,
    RevisionNotFoundError,
    TargetNotFoundError,
    TemporaryError,
    UnsupportedError,
)
from strategies.partial import Partial
from strategies.progressive import Progressive, validate_steps
from strategies.undo import Undo

#: The one strategy registry: name -> class. Config validation derives its allowed names from here.
STRATEGIES: dict[str, type[Strategy]] = {cls.name: cls for cls in (Undo, BlueGreen, Progressive, Partial)}

#: The one platform registry: name -> (import path, pip extra that provides its SDK or None).
PLATFORMS: dict[str, tuple[str, str | None]] = {
    "dry-run": ("strategies.dryrun:DryRunPlatform", None),
    "ecs": ("strategies.ecs:EcsPlatform", "ecs"),
    "swarm": ("strategies.swarm:SwarmPlatform", "swarm"),
    "kubernetes": ("strategies.kubernetes.platform:KubernetesPlatform", None),
}


def load_platform(name: str) -> type[Platform]:
    """The platform class registered as ``name``; raise ValueError/ImportError that say how to fix it."""
    try:
        path, extra = PLATFORMS[name]
    except KeyError:
        raise ValueError(f"unknown platform {name!r}; known: {', '.join(sorted(PLATFORMS))}") from None
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = f" Install it with: pip install 'smart-rollback[{extra}]'" if extra else ""
        raise ImportError(f"platform {name!r} needs a package that is missing ({exc.name}).{hint}") from exc
    return getattr(module, attr)


__all__ = [
    "PLATFORMS",
    "STRATEGIES",
    "ApiCall",
    "Capability",
    "ConflictError",
    "ExecutionContext",
    "Health",
    "InvalidRequestError",
    "NoPreviousRevisionError",
    "Outcome",
    "OutcomeStatus",
    "PermanentError",
    "Plan",
    "PlanStep",
    "Platform",
    "PlatformError",
    "Revision",
    "RevisionNotFoundError",
    "RollbackRequest",
    "Strategy",
    "TargetNotFoundError",
    "TargetRef",
    "TargetState",
    "TemporaryError",
    "UnsupportedError",
    "load_platform",
    "validate_steps",
]
