"""Synthetic OHLCV candles for tests, benchmarks and dry runs (seeded, deterministic)."""

from __future__ import annotations

import numpy as np

MINUTE_MS = 60_000


def random_walk_candles(
    n: int,
    seed: int = 0,
    *,
    start_ms: int = 1_700_000_000_000,
    timeframe_ms: int = MINUTE_MS,
    price: float = 100.0,
    volatility: float = 0.001,
    momentum: float = 0.0,
    volume: float = 100.0,
) -> np.ndarray:
    """``n`` candles (time_ms, open, high, low, close, volume) of a log random walk.

    One-bar log returns follow ``r[t] = momentum * r[t-1] + noise`` (AR(1)), so a
    positive ``momentum`` makes the next move lean the way of the last one:
    a weak, learnable signal. ``volatility`` is the noise's standard deviation.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, volatility, n)
    if momentum:
        rets = np.empty(n)
        prev = 0.0
        for i, e in enumerate(noise.tolist()):
            prev = momentum * prev + e
            rets[i] = prev
    else:
        rets = noise
    close = price * np.exp(np.cumsum(rets))
    open_ = np.concatenate(([price], close[:-1]))
    wick = np.abs(rng.normal(0.0, volatility / 2, (2, n)))
    high = np.maximum(open_, close) * (1.0 + wick[0])
    low = np.minimum(open_, close) * (1.0 - wick[1])
    vol = volume * rng.lognormal(0.0, 0.5, n)
    times = start_ms + timeframe_ms * np.arange(n, dtype=np.float64)
    return np.column_stack([times, open_, high, low, close, vol])
