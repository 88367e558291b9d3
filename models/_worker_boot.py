"""Thread caps for training workers, set before numerical libraries load.

The training pool's forkserver imports this module first (before
``models.training`` pulls in numpy, pandas and scikit-learn) so that the
OpenMP/BLAS runtimes start with one thread in every worker. Only the
forkserver and worker processes import it; the trader never does.
"""

from __future__ import annotations

import os

THREAD_ENV_VARS: tuple[str, ...] = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)

for _name in THREAD_ENV_VARS:
    os.environ[_name] = "1"
