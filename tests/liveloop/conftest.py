"""The live loop needs the Debian Prometheus and Alertmanager (``bash scripts/system-deps.sh``)."""

from __future__ import annotations

import shutil

import pytest


@pytest.fixture(scope="session")
def prometheus_binaries() -> None:
    missing = [b for b in ("prometheus", "prometheus-alertmanager") if shutil.which(b) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: run `bash scripts/system-deps.sh`")
