"""Logging set-up shared by the live bot and the simulation: one line per event, UTC.
"""

from __future__ import annotations

import logging
import sys
import time


def configure_logging(level: str) -> None:
    formatter = logging.Formatter(
        "%(asctime)s %(levelname)-7s %(name)-24s %(message)s", "%Y-%m-%d %H:%M:%S"
    )
    formatter.converter = time.gmtime  # UTC, like the exchange
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("pykka").setLevel(logging.WARNING)
