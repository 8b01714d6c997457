"""Predictive failure analysis: when will a metric cross its threshold, with an interval.

An ETS model (statsmodels ``ETSModel``: additive error, damped additive trend, and an additive season when
the series covers at least two seasons of ``season_length`` points) is fitted to the recent samples; its
forecast mean and prediction interval are walked forward until they cross the threshold. The mean's
crossing is the estimate; the interval bound that crosses first gives the early end, the other bound the
late end (``None`` when it does not cross within the horizon).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class BreachForecast:
    #: Seconds until the forecast mean crosses the threshold (None: not within the horizon).
    seconds: float | None
    early: float | None
    late: float | None
    threshold: float
    horizon_seconds: float
    model: str


def predict_breach(
    values: np.ndarray,
    step_seconds: float,
    threshold: float,
    *,
    horizon: int = 120,
    season_length: int | None = None,
    confidence: float = 0.9,
    direction: str = "above",
) -> BreachForecast | None:
    """Forecast ``values`` (evenly spaced every ``step_seconds``) and time the threshold crossing."""
    from statsmodels.tools.sm_exceptions import ConvergenceWarning
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    y = np.asarray(values, dtype=float)
    y = y[np.isfinite(y)]
    if len(y) < 10:
        return None
    seasonal = season_length is not None and season_length >= 2 and len(y) >= 2 * season_length
    above = direction == "above"
    crossed_now = y[-1] >= threshold if above else y[-1] <= threshold
    name = "ETS(A,Ad,A)" if seasonal else "ETS(A,Ad,N)"
    if crossed_now:
        return BreachForecast(0.0, 0.0, 0.0, threshold, horizon * step_seconds, name)
    if np.ptp(y) == 0:
        return BreachForecast(None, None, None, threshold, horizon * step_seconds, "constant")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", UserWarning)
        model = ETSModel(
            pd.Series(y),
            error="add",
            trend="add",
            damped_trend=True,
            seasonal="add" if seasonal else None,
            seasonal_periods=season_length if seasonal else None,
        )
        fit = model.fit(disp=False, maxiter=200)
        frame = fit.get_prediction(start=len(y), end=len(y) + horizon - 1).summary_frame(alpha=1 - confidence)
    mean = frame["mean"].to_numpy()
    lo, hi = frame["pi_lower"].to_numpy(), frame["pi_upper"].to_numpy()

    def first(series: np.ndarray) -> float | None:
        hit = np.nonzero(series >= threshold if above else series <= threshold)[0]
        return float((hit[0] + 1) * step_seconds) if len(hit) else None

    early = first(hi if above else lo)
    late = first(lo if above else hi)
    seconds = first(mean)
    if seconds is not None and not math.isfinite(seconds):
        seconds = None
    return BreachForecast(seconds, early, late, threshold, horizon * step_seconds, name)
