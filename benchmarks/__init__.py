"""Reproducible benchmarks; each ``python -m benchmarks.<name>`` rewrites its own section of RESULTS.md."""
