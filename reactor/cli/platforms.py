"""Commands about platforms: ``sandbox`` (the embedded Kubernetes API server)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import click

from reactor.cli import main


@main.command("sandbox")
@click.option(
    "--bind",
    default="127.0.0.1:8001",
    show_default=True,
    help="HOST:PORT to serve the Kubernetes API on (port 0: any).",
)
@click.option(
    "--kubeconfig-out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a kubeconfig for the sandbox here (context 'sandbox'); use it with kubectl or the platform.",
)
@click.option("--seed", metavar="NAME", help="Fill an empty sandbox: 'demo' (namespace shop, docs/kubernetes.md).")
@click.option(
    "--state",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Keep the state in this file: loaded at start if it exists, written as it changes and on exit.",
)
@click.option("--ready-delay", type=float, default=0.0, show_default=True, help="Seconds until a new pod is ready.")
@click.option("--namespace", default=None, help="Default namespace of the kubeconfig context (demo seed: shop).")
def sandbox(
    bind: str,
    kubeconfig_out: Path | None,
    seed: str | None,
    state: Path | None,
    ready_delay: float,
    namespace: str | None,
) -> None:
    """Run the sandbox Kubernetes API server in the foreground until interrupted (Ctrl-C or SIGTERM)."""
    from sandbox.seed import SEEDS
    from sandbox.server import SandboxServer

    if seed is not None and seed not in SEEDS:
        raise click.BadParameter(f"unknown seed {seed!r}; known: {', '.join(sorted(SEEDS))}", param_hint="--seed")
    if ready_delay < 0:
        raise click.BadParameter("must be >= 0", param_hint="--ready-delay")
    try:
        server = SandboxServer(bind, state_file=state, seed=seed, ready_delay=ready_delay)
        server.start()
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {bind}: {exc.strerror}; pick another --bind port") from exc
    done = threading.Event()

    def stop(_signum: int, _frame: object) -> None:
        done.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    context_ns = namespace or ("shop" if seed == "demo" else None)
    click.echo(f"sandbox: Kubernetes API on {server.url}", nl=True)
    if kubeconfig_out is not None:
        server.write_kubeconfig(kubeconfig_out, namespace=context_ns)
        click.echo(f"kubeconfig: {kubeconfig_out} (context sandbox{', namespace ' + context_ns if context_ns else ''})")
        click.echo(f"try: kubectl --kubeconfig {kubeconfig_out} get deployments")
    if state is not None:
        click.echo(f"state: {state}")
    click.echo(f"traffic split: {server.url}/sandbox/v1/traffic")
    try:
        while not done.wait(0.5):
            pass
    finally:
        server.stop()
    click.echo("sandbox: stopped")
