"""A bot killed with -9 while its training pool runs: no 'leaked semaphore' warning after.

The pool's named semaphores are unlinked by multiprocessing's resource tracker once the
process is gone; that clean-up used to print a warning on the terminal (issue 13).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# a process that starts a process pool, hands it a job, and is killed before it stops it
KILLED = """
import os, signal
import numpy as np
from models.pool import TrainingPool
from models.training import TrainJob, TrainParams
candles = np.ones((50, 6))
candles[:, 0] = np.arange(50) * 60_000
pool = TrainingPool(workers=1, kind="process")
pool.submit(TrainJob("A/USDT", "1m", candles, {staging!r}, TrainParams()))
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.slow
def test_no_leaked_semaphore_warning_after_a_kill(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", KILLED.format(staging=str(tmp_path / "staging"))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,  # stderr closes once the tracker and the workers are gone too
    )
    assert proc.returncode == -9
    assert "leaked" not in proc.stderr and "resource_tracker" not in proc.stderr, proc.stderr
