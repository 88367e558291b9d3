"""`python supervisor.py backtest`: the whole bot on virtual time over stored real candles.

The same `System` as a live run and as `simulate` — supervisor, coverage actor,
trainers, model store, trader, the simulation's scheduler and invariant monitor —
on a `VirtualClock`, with the paper exchange trading on a `ReplayMarket` of the
stored candles instead of the synthetic market:

- the universe is the candles' symbols (static); a symbol is listed from its first
  candle, so coverage sees its history grow and `min_history_days` blocks it, then
  admits it, exactly as live;
- trainers download their window from the paper exchange, which serves closed
  candles only up to the virtual now: they train on the past only, and the trader
  trades what follows;
- a market order fills at the close of the last closed candle (the one the trader
  decided on) moved by `slippage_bps` against it, and pays `fee_rate`;
- a gap in the data is a gap for the bot too: no candle, no decision; nothing is
  interpolated.

`backtest()` runs it (from code and tests; the exchange can be swapped for the
same candles served another way: a live paper exchange over a fake exchange).
Around it: `backtest_inputs` (the candles, the window, settings fit for them),
`backtest_summary` (`summarize_backtest` adds the returns to the simulation's
summary), `backtest_report` (the digest and the returns table) and
`backtest_cli` (`python supervisor.py backtest`).
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from actors.clock import VirtualClock
from actors.messages import SignalProduced
from app.builders import build_paper_exchange, build_training_pool
from config.settings import Settings
from exchange.port import ExchangePort
from exchange.replay import ReplayMarket
from simulation.backtest_inputs import Window, backtest_settings, replay_window, start_s
from simulation.backtest_summary import BacktestSummary, summarize_backtest
from simulation.simulate import run_bot
from storage.ledger import OrderRow


@dataclass
class Backtest:
    """A backtest's summary, and what the bot decided (for tests and tools)."""

    summary: BacktestSummary
    orders: list[OrderRow]
    signals: list[SignalProduced]


def replay_exchange(settings: Settings, clock: VirtualClock, market: ReplayMarket) -> ExchangePort:
    """The backtest's exchange: the paper exchange trading on the replayed candles."""
    return build_paper_exchange(market, clock, settings.exchange)


ExchangeFactory = Callable[[Settings, VirtualClock, ReplayMarket], ExchangePort]


class _Signals:
    """Collects every signal the trader produced (subscribed to the event topic)."""

    def __init__(self) -> None:
        self.signals: list[SignalProduced] = []
        self._lock = threading.Lock()

    def tell(self, message: Any) -> None:
        if isinstance(message, SignalProduced):
            with self._lock:
                self.signals.append(message)


# --- the run -------------------------------------------------------------------------


def backtest(
    settings: Settings,
    market: ReplayMarket,
    *,
    window: Window | None = None,
    source: str = "",
    exchange_name: str = "",
    pool_kind: Literal["thread", "process"] = "thread",
    workers: int | None = None,
    clock: VirtualClock | None = None,
    on_step: Callable[[float, float], None] | None = None,
    exchange: ExchangeFactory = replay_exchange,
) -> Backtest:
    """Replay `market` through the whole bot over `window` (default: all of it).

    The bot starts `trading.candle_delay_s` after the window's first close, when that
    candle is final, as the trader reads every candle: every timer then fires at the
    trader's instants (one step per candle). `clock`, if given, must stand there
    (`start_s`). Model files and the bot's own candle cache live in a temporary
    folder, deleted afterwards.
    """
    window = window or replay_window(market, settings.timeframe)
    workers = workers or os.cpu_count() or 1
    vclock = clock or VirtualClock(start=start_s(settings, window))
    if vclock.now() != start_s(settings, window):
        raise ValueError(f"the clock is at {vclock.now()}, not at the backtest's start")
    with tempfile.TemporaryDirectory(prefix="tradeactors-backtest-", dir=_scratch()) as data_dir:
        run_settings = backtest_settings(settings, market, data_dir)
        signals = _Signals()
        run = run_bot(
            run_settings,
            vclock,
            exchange(run_settings, vclock, market),
            seconds=window.seconds,
            listed_at={s: market.listed_ms(s) / 1000 for s in market.symbols()},
            pool_kind=pool_kind,
            workers=workers,
            # training.backend dask: the fits run on that cluster, as in simulate
            inner=(
                build_training_pool(run_settings.training, workers=workers)
                if run_settings.training.backend == "dask"
                else None
            ),
            on_step=on_step,
            subscribers={"backtest": signals},
        )
    summary = summarize_backtest(
        run,
        run_settings,
        market,
        window,
        pool="dask" if run_settings.training.backend == "dask" else pool_kind,
        workers=workers,
        source=source,
        exchange=exchange_name,
    )
    return Backtest(summary=summary, orders=run.orders, signals=signals.signals)


def _scratch() -> str | None:
    """Memory-backed storage when there is some: the run's database commits every order with
    an fsync (as live), which costs nothing there, and the folder is thrown away anyway."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
