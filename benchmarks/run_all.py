"""Run every benchmark module of this package that defines ``main()`` (``make bench``)."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def main() -> None:
    here = Path(__file__).resolve().parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_"))
    for name in names:
        if name in ("run_all", "nab_scoring"):
            continue
        module = importlib.import_module(f"benchmarks.{name}")
        if callable(getattr(module, "main", None)):
            print(f"== benchmarks.{name}", flush=True)
            module.main()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
