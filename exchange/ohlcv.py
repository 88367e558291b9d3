"""Candle arithmetic shared by the markets the paper exchange trades on (synthetic, replay)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def aggregate(rows: FloatArray, tf_ms: int) -> FloatArray:
    """Candles of `tf_ms` from finer `rows` (N, 6), buckets aligned to multiples of `tf_ms`.

    A bucket holds only the rows that exist: a gap in the data shortens it (its
    open is the first row's, its volume the sum of the rows it has); a bucket
    with no row is absent, never invented.
    """
    if len(rows) == 0:
        return rows
    buckets = rows[:, 0].astype(np.int64) // tf_ms
    starts = np.flatnonzero(np.concatenate(([True], buckets[1:] != buckets[:-1])))
    ends = np.concatenate((starts[1:], [len(rows)])) - 1
    out = np.empty((len(starts), 6), dtype=np.float64)
    out[:, 0] = buckets[starts] * tf_ms
    out[:, 1] = rows[starts, 1]
    out[:, 2] = np.maximum.reduceat(rows[:, 2], starts)
    out[:, 3] = np.minimum.reduceat(rows[:, 3], starts)
    out[:, 4] = rows[ends, 4]
    out[:, 5] = np.add.reduceat(rows[:, 5], starts)
    return out
