"""The ``smart-rollback`` command line.

Each module of this package adds its commands to :data:`main`; importing them here is the only
registration. Keep heavy imports (prometheus_client, sklearn, the kubernetes client) inside the command
functions: ``serve`` must set up Prometheus multiprocess mode before prometheus_client is first imported,
and ``--help`` should stay fast.
"""

from __future__ import annotations

import click

from reactor import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="smart-rollback")
def main() -> None:
    """Detect bad deployments from health scores and roll them back."""


# Command modules register on `main` at import.
import reactor.cli.deploy  # noqa: E402
import reactor.cli.notify  # noqa: E402
import reactor.cli.platforms  # noqa: E402
import reactor.cli.scoring  # noqa: E402,F401
from reactor.cli import service  # noqa: E402,F401
