"""``python -m reactor`` runs the ``smart-rollback`` command line (useful from a checkout or a worktree)."""

from reactor.cli import main

main()
