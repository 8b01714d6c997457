"""Reading the CSV files the offline commands take, and config files (YAML or JSON), with clear errors."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from exporters.errors import ConfigError


def read_columns(path: str | Path) -> dict[str, np.ndarray]:
    """A CSV with a header row as ``{column: values}``; empty cells become NaN; ``timestamp`` is dropped."""
    path = Path(path)
    try:
        with path.open(newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if not header:
                raise ConfigError(f"{path}: empty file; expected a header row with one column per metric")
            rows = list(reader)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from exc
    names = [h.strip() for h in header]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: duplicate column names in the header: {names}")
    out: dict[str, np.ndarray] = {}
    for j, name in enumerate(names):
        if name.lower() == "timestamp":
            continue
        values = []
        for i, row in enumerate(rows, start=2):
            cell = row[j].strip() if j < len(row) else ""
            if cell == "" or cell.lower() in ("nan", "null", "none"):
                values.append(math.nan)
                continue
            try:
                values.append(float(cell))
            except ValueError:
                raise ConfigError(f"{path}:{i}: column {name!r} has a non-numeric value {cell!r}") from None
        out[name] = np.array(values, dtype=float)
    return out


def read_series(path: str | Path) -> tuple[list[str], np.ndarray]:
    """A ``timestamp,value`` CSV as (timestamps as written, values)."""
    path = Path(path)
    try:
        with path.open(newline="") as fh:
            reader = csv.reader(fh)
            header = [h.strip().lower() for h in next(reader, [])]
            if "value" not in header:
                raise ConfigError(f"{path}: expected a header 'timestamp,value'; got {header}")
            vi = header.index("value")
            ti = header.index("timestamp") if "timestamp" in header else None
            stamps: list[str] = []
            values: list[float] = []
            for i, row in enumerate(reader, start=2):
                if not row:
                    continue
                stamps.append(row[ti] if ti is not None else str(i - 2))
                cell = row[vi].strip() if vi < len(row) else ""
                try:
                    values.append(float(cell) if cell else math.nan)
                except ValueError:
                    raise ConfigError(f"{path}:{i}: value {cell!r} is not a number") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from exc
    return stamps, np.array(values, dtype=float)


def load_document(path: str | Path) -> dict[str, Any]:
    """A YAML (or JSON, which is YAML) mapping from ``path``."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML/JSON: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    return data


def format_validation_error(path: str | Path, exc: Any) -> str:
    """A pydantic ValidationError as ``file: field.path: message`` lines."""
    lines = [f"{path}: invalid configuration:"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"  {loc}: {err['msg']}")
    return "\n".join(lines)
