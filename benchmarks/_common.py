"""What the benchmark scripts share: import path, percentiles, tables, the RESULT line.

Each script prints a human table and, last, one `RESULT {json}` line that
`run_all.py` collects into the summary table with the targets.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

# 2026-11-26 00:00 UTC, the simulation's start: the synthetic market is the same every run.
T0 = 1_795_651_200.0


def percentiles_ms(samples_s: Sequence[float]) -> tuple[float, float]:
    """(p50, p99) in milliseconds of samples in seconds."""
    p50, p99 = np.percentile(np.asarray(samples_s) * 1e3, [50, 99])
    return float(p50), float(p99)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(_pad(row, widths)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _pad(row: Sequence[str], widths: Sequence[int]) -> list[str]:
    """First column to the left, numbers to the right."""
    return [
        c.ljust(w) if i == 0 else c.rjust(w)
        for i, (c, w) in enumerate(zip(row, widths, strict=True))
    ]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if value == 0 or abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    return str(value)


def result(name: str, **values: Any) -> None:
    """The machine-readable line run_all.py reads (always the script's last line)."""
    print("RESULT " + json.dumps({"name": name, **values}), flush=True)


def trained_model(models_dir: Path, max_iter: int) -> Any:
    """A real model (LoadedModel) of `max_iter` boosting iterations on a seeded random walk,
    published and loaded as the model store would."""
    from models import artifacts
    from models.synthetic import random_walk_candles
    from models.training import TrainJob, run_training
    from tests.harness import traded_params

    staging = artifacts.new_staging_dir(models_dir)
    job = TrainJob(
        symbol="BTC/USDT",
        timeframe="1m",
        candles=random_walk_candles(3000, seed=1, momentum=0.3),
        staging_dir=str(staging),
        params=traded_params(max_iter=max_iter),
        trained_at_ms=int(T0 * 1000),
    )
    run_training(job)
    manifest = artifacts.publish(models_dir, staging)
    return artifacts.load_version(models_dir / manifest.version)


def model_copies(model: Any, n: int) -> list[Any]:
    """`n` copies of `model`, each its own estimator in memory as `n` symbols' models are,
    each asked once (so that whatever a model prepares at load is prepared)."""
    import pickle

    from models.artifacts import LoadedModel

    blob = pickle.dumps(model.estimator)
    copies = [LoadedModel(manifest=model.manifest, estimator=pickle.loads(blob)) for _ in range(n)]
    row = np.zeros(len(model.manifest.feature_names))
    for copy in copies:
        copy.prob_up(row)
    return copies


def thread_cap() -> Any:
    """One BLAS/OpenMP thread, as `python supervisor.py` runs."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)
