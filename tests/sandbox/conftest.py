"""Fixtures of the sandbox tests (shared with tests/strategies through tests.sandbox.support)."""

from tests.sandbox.support import kubeconfig, sandbox

__all__ = ["kubeconfig", "sandbox"]
