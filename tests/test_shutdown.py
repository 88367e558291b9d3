"""Stopping the bot while it trains: a running fit ends at once, a download leaves off at its
next page, and what was downloaded stays for the next start (issue 13)."""

from __future__ import annotations

import dataclasses
import threading
import time
from concurrent.futures import CancelledError
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import pytest

from actors.messages import TrainerFinished
from models import artifacts
from models.pool import TrainingPool, _alive
from models.strategy import Strategy, hist_gradient_boosting
from models.synthetic import random_walk_candles
from models.training import TrainJob
from tests.harness import Bot, traded_params, until


class _Endless:
    """An estimator whose fit outlasts any stop (ten minutes): only ending its worker ends it."""

    def fit(self, x: Any, y: Any) -> _Endless:
        time.sleep(600)
        return self


def _endless(max_iter: int) -> _Endless:
    return _Endless()


def endless() -> Strategy:
    """The built-in features with an estimator that never finishes fitting in a test's time."""
    return dataclasses.replace(hist_gradient_boosting(), make_estimator=_endless)


@pytest.mark.slow
def test_stopping_the_pool_ends_a_running_fit_at_once(tmp_path: Path) -> None:
    pool = TrainingPool(workers=1, kind="process")
    staging = artifacts.new_staging_dir(tmp_path / "models")
    params = traded_params(strategy="tests.test_shutdown:endless")
    job = TrainJob("A/USDT", "1m", random_walk_candles(3000, seed=1), str(staging), params)
    fit = pool.submit(job)
    until(fit.running, "the fit was handed to a worker process")
    until(pool.worker_pids, "the worker process started")
    workers = pool.worker_pids()
    stopping = threading.Thread(target=pool.shutdown, name="shutdown")
    stopping.start()
    # A generous bound, not a measurement: waiting for this fit would take ten minutes.
    stopping.join(timeout=60)
    assert not stopping.is_alive(), "shutdown waited for the running fit"
    with pytest.raises((BrokenProcessPool, CancelledError)):
        fit.result(timeout=10)
    until(lambda: not any(_alive(pid) for pid in workers), "the worker process ended")


def test_a_stop_during_a_history_download_leaves_off_at_the_next_page(
    bots: list[Bot], tmp_path: Path
) -> None:
    bot = Bot(tmp_path, ["ETH/USDT"])
    bots.append(bot)
    stopping = bot.system.runtime.stopping
    fetch = bot.exchange.fetch_ohlcv
    pages: list[int] = []

    def fetch_until_stopped(*args: Any, **kwargs: Any) -> Any:
        pages.append(1)
        if len(pages) >= 2:  # the second page arrives once the bot is stopping
            stopping.wait(timeout=30)
        return fetch(*args, **kwargs)

    bot.exchange.fetch_ohlcv = fetch_until_stopped  # type: ignore[method-assign]
    bot.start(wait=False)
    until(lambda: len(pages) >= 2, "the download is under way")
    bot.stop()
    # 90 days of 1m candles are 130 pages: the trainer stopped after the one in flight
    assert len(pages) == 2
    # no outcome: the symbol is checked afresh at the next start, where the download resumes
    assert bot.events.of(TrainerFinished) == []
    cache = bot.system.cache
    assert cache.last_time_ms(bot.exchange.name, "ETH/USDT", "1m") is not None
