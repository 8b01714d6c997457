"""Reproducible benchmarks; each module prints its figures and rewrites its own section of RESULTS.md."""
