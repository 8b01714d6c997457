"""A rolling z-score: the simple baseline every other detector is compared with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd


@dataclass
class RollingZScore:
    """|x - mean| / std over the previous ``window`` points, mapped to [0, 1] as ``1 - exp(-z / scale)``."""

    name: ClassVar[str] = "zscore"
    window: int = 288
    scale: float = 4.0

    def score(self, values: np.ndarray) -> np.ndarray:
        s = pd.Series(np.asarray(values, dtype=float))
        past = s.shift(1).rolling(self.window, min_periods=10)
        z = ((s - past.mean()).abs() / past.std().replace(0.0, np.nan)).to_numpy()
        out = 1.0 - np.exp(-np.nan_to_num(z, nan=0.0, posinf=50.0) / self.scale)
        return np.clip(out, 0.0, 1.0)
