"""Property-based API fuzzing from our own OpenAPI document (schemathesis): no input may produce a 500."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from tests.reactor.conftest import AUTH, make_settings


def test_no_input_produces_a_server_error(app_factory: Any, sqlite_url: str) -> None:
    app = app_factory(make_settings(sqlite_url, **{"policies.defaults.mode": "auto"}))
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    tested = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def fuzz(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=AUTH, checks=[not_a_server_error])

        fuzz()
        tested.append(operation.label)
    assert len(tested) == 19, tested
