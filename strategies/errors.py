"""Errors raised at the platform boundary.

Client libraries (kubernetes, boto3, docker) each have their own exception trees; none of them may leak
past ``strategies/``. Every platform wraps what its client raised into one of these, chaining the
original with ``raise ... from exc`` so the cause stays in the traceback and the audit trail.

The split that matters to callers is whether retrying can help::

    PlatformError
    ├── PermanentError            retrying will not help: record, fail the rollback, page someone
    │   ├── TargetNotFoundError   the workload does not exist
    │   ├── NoPreviousRevisionError
    │   ├── RevisionNotFoundError
    │   ├── UnsupportedError      the platform or target cannot do this (no router, no colours)
    │   └── InvalidRequestError   the request itself is wrong (weights not summing to 100, bad steps)
    └── TemporaryError(delay)     retry after ``delay`` seconds: API server down, 5xx, throttling
        └── ConflictError         a write lost a resourceVersion race; re-read and try again
"""

from __future__ import annotations


class PlatformError(Exception):
    """Base of every error a platform raises."""


class PermanentError(PlatformError):
    """A failure that retrying will not fix."""


class TargetNotFoundError(PermanentError):
    """The target (Deployment, ECS service, Swarm service) does not exist."""


class NoPreviousRevisionError(PermanentError):
    """There is nothing to roll back to."""


class RevisionNotFoundError(PermanentError):
    """The requested revision is not in the target's history."""


class UnsupportedError(PermanentError):
    """The target lacks what the operation needs (a traffic router, a second colour, a history)."""


class InvalidRequestError(PermanentError, ValueError):
    """The rollback request is malformed (e.g. progressive steps that do not decrease)."""


class TemporaryError(PlatformError):
    """A failure that may go away: retry after ``delay`` seconds."""

    def __init__(self, message: str = "", delay: float = 1.0) -> None:
        super().__init__(message)
        self.delay = delay


class ConflictError(TemporaryError):
    """An optimistic-concurrency conflict (HTTP 409): re-read the object and write again."""

    def __init__(self, message: str = "", delay: float = 0.05) -> None:
        super().__init__(message, delay)
