"""The errors of the exporters package.

::

    ExporterError
    ├── ConfigError            a configuration that cannot work; the message names the field and the fix
    └── SourceError            a metric source failed (carries ``source``)
        ├── QueryError         the backend rejected the query (bad PromQL/NRQL/DSL); carries ``query``
        └── SourceUnavailable  timeout, connection refused, 5xx: worth retrying next cycle

Client-library exceptions (requests, datadog_api_client, elasticsearch) never leak out of a source.
"""

from __future__ import annotations


class ExporterError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(ExporterError, ValueError):
    """The configuration is invalid; raised at start-up, before any cycle runs."""


class SourceError(ExporterError):
    """A metric source failed."""

    def __init__(self, message: str, *, source: str, query: str | None = None) -> None:
        super().__init__(message)
        self.source = source
        self.query = query


class QueryError(SourceError):
    """The backend rejected the query itself; retrying will not help until the query is fixed."""


class SourceUnavailable(SourceError):
    """The backend could not be reached or answered with a server error; the next cycle retries."""
