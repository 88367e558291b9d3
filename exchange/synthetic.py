"""A deterministic, seeded synthetic market: the price source of the paper exchange.

Every candle is a pure function of (seed, symbol, minute), whatever range is asked
for, and generating a range costs O(days asked), not O(age of the market):

* time is split into UTC days; the opening log-price of day `d` is a smooth
  deterministic function of (seed, symbol, d): a sum of a few slow sinusoids plus
  a hash-seeded per-day offset, shifted so that the anchor day opens at
  `SymbolSpec.start_price`;
* inside a day, 1-minute log-returns follow an AR(1) process (coefficient
  `momentum`, stationary stdev `volatility`) seeded by hash(seed, symbol, day), and
  the path is pinned to the next day's opening level by subtracting its linear
  drift (a Brownian bridge), so the close of a day's last minute is exactly the
  open of the next day's first minute;
* a symbol with `SymbolSpec.trend_per_hour` also has intraday trend regimes: each
  day is cut into stretches of 1.5 to 6 hours, each a rally, a calm stretch or a
  slide, whose constant drift is added to the day's returns before the pinning
  (their own generator, so nothing else of the day changes). That is a genuine,
  learnable edge: over the next hour a rally goes on rising;
* highs/lows add a small wick beyond max/min(open, close); volume is the daily
  quote volume (with a slow wobble) spread over the minutes, with noise, in base units.

Each day is generated with vectorised numpy and kept in a small LRU cache.
Candles of longer timeframes (5m, 1h, 1d, ...) are aggregated from the 1m ones.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Sequence

import msgspec
import numpy as np
import numpy.typing as npt

from core.timeframes import DAY_MS, MINUTE_MS, timeframe_ms
from exchange.ohlcv import resample, tickers_of
from exchange.types import ExchangeError, Ticker

__all__ = [
    "DEFAULT_SYMBOLS",
    "SymbolSpec",
    "SyntheticMarket",
    "extra_symbol_specs",
    "synthetic_specs",
    "timeframe_ms",
]

FloatArray = npt.NDArray[np.float64]

_MASK64 = (1 << 64) - 1
_TAG_PARAMS = 1
_TAG_DAY = 2
_TAG_TREND = 3
_DAY_BIAS = 1 << 32  # keeps day indexes (even before 1970) non-negative for SeedSequence
# Trend regimes (SymbolSpec.trend_per_hour): lengths in minutes, drawn uniformly, and the
# chances of a rally, a calm stretch and a slide.
_TREND_MINUTES = (90.0, 360.0)
_TREND_MIX = (0.35, 0.30, 0.35)
_HOUR_MS = 60 * MINUTE_MS
_CACHE_DAYS = 256  # (symbol, day) blocks kept: 256 x 1440 x 6 x 8 B ~ 18 MB at most


class SymbolSpec(msgspec.Struct, frozen=True):
    symbol: str  # "BTC/USDT"
    listed_days_before_anchor: float  # age of the market's history at the anchor time
    start_price: float  # opening price of the anchor's UTC day
    volatility: float  # per-minute stdev of log returns
    momentum: float  # AR(1) coefficient of 1-minute returns, in (-1, 1)
    daily_quote_volume: float  # typical 24 h volume in quote units
    opens_after_s: float = 0.0  # inactive (no trading, no ticker) until anchor + this
    flat: bool = False  # stablecoin-like: price ~1.0 with tiny noise
    # Intraday trend regimes: each UTC day is cut into rallies, slides and calm
    # stretches lasting hours (see _trend_drift); this is the log-price drift per hour
    # of a rally (+) or a slide (-). 0: none, a Brownian-bridge day only.
    trend_per_hour: float = 0.0


DEFAULT_SYMBOLS: tuple[SymbolSpec, ...] = (
    SymbolSpec("BTC/USDT", 2000, 60_000.0, 0.0008, 0.30, 1.5e9),
    # ETH and SOL trend: rallies and slides lasting hours, the only edge in this market
    # that beats costs (a 60-minute return follows the last 60 minutes'); the default
    # model finds it and passes the promotion gate at any anchor, the others do not.
    # The drifts are the least that did so with margin (SOL, noisier, needs more).
    SymbolSpec("ETH/USDT", 1800, 3_000.0, 0.0010, 0.28, 8.0e8, trend_per_hour=0.020),
    SymbolSpec("SOL/USDT", 1200, 150.0, 0.0014, 0.32, 3.0e8, trend_per_hour=0.026),
    SymbolSpec("XRP/USDT", 1500, 0.55, 0.0012, 0.25, 2.0e8),
    SymbolSpec("ADA/USDT", 900, 0.45, 0.0013, 0.26, 1.0e8),
    SymbolSpec("LINK/USDT", 400, 15.0, 0.0014, 0.30, 8.0e7),
    # A stablecoin: every label is the same class, so training it must fail cleanly.
    SymbolSpec("USDC/USDT", 1000, 1.0, 0.00002, 0.0, 5.0e8, flat=True),
    # 12.5 days of history: reaches min_history_days=14 1.5 days after the anchor.
    SymbolSpec("PEPE/USDT", 12.5, 0.00001, 0.0025, 0.30, 2.0e8),
    # 3 days of history: eligible 11 days after the anchor.
    SymbolSpec("WIF/USDT", 3, 2.5, 0.0020, 0.30, 1.5e8),
    # Long history, but inactive until 30 min after the anchor: appears at the
    # first universe refresh.
    SymbolSpec("JUP/USDT", 600, 0.9, 0.0016, 0.30, 2.5e8, opens_after_s=1800.0),
)


def _stable_hash(text: str) -> int:
    """A 64-bit hash of `text` that, unlike hash(), is the same in every process."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


# The default market in the order its story needs them, so that a smaller market
# still tells it: BTC trains at startup, PEPE becomes eligible 1.5 days in, JUP
# enters at the first universe refresh, USDC's training fails and backs off; ETH and
# SOL, next, are the ones whose trends (trend_per_hour) pass the promotion gate.
STORY_ORDER: tuple[str, ...] = (
    "BTC/USDT",
    "PEPE/USDT",
    "JUP/USDT",
    "USDC/USDT",
    "ETH/USDT",
    "SOL/USDT",
    "WIF/USDT",
    "XRP/USDT",
    "ADA/USDT",
    "LINK/USDT",
)


def extra_symbol_specs(count: int) -> tuple[SymbolSpec, ...]:
    """`count` more symbols, `X001/USDT`, `X002/USDT`, ...: each a pure function of its name.

    All have months to years of history (they train at startup) and less volume
    than the default symbols (which stay first in a top-N-by-volume universe).
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    specs = []
    for i in range(1, count + 1):
        symbol = f"X{i:03d}/USDT"
        rng = np.random.default_rng(_stable_hash(symbol))
        specs.append(
            SymbolSpec(
                symbol,
                listed_days_before_anchor=float(rng.integers(60, 2000)),
                start_price=float(10 ** rng.uniform(-2.0, 3.0)),
                volatility=float(rng.uniform(0.0008, 0.0020)),
                momentum=float(rng.uniform(0.20, 0.35)),
                daily_quote_volume=float(rng.uniform(1.0e7, 6.0e7)),
            )
        )
    return tuple(specs)


def synthetic_specs(count: int | None = None) -> tuple[SymbolSpec, ...]:
    """A market of `count` symbols (default: the 10 of `DEFAULT_SYMBOLS`).

    Up to 10: default symbols in `STORY_ORDER`; beyond: all ten plus
    `extra_symbol_specs(count - 10)`.
    """
    if count is None:
        return DEFAULT_SYMBOLS
    if count < 1:
        raise ValueError(f"a market needs at least 1 symbol, got {count}")
    by_name = {spec.symbol: spec for spec in DEFAULT_SYMBOLS}
    if count <= len(DEFAULT_SYMBOLS):
        return tuple(by_name[name] for name in STORY_ORDER[:count])
    return DEFAULT_SYMBOLS + extra_symbol_specs(count - len(DEFAULT_SYMBOLS))


class _Model:
    """The precomputed, per-symbol parameters of the price and volume processes."""

    def __init__(
        self, spec: SymbolSpec, seed: int, anchor_ms: int, base_ms: int, listed_ms: int
    ) -> None:
        self.spec = spec
        self.seed = seed & _MASK64
        self.key = _stable_hash(spec.symbol)
        self.listed_ms = listed_ms
        self.step_sigma = spec.volatility * math.sqrt(base_ms / MINUTE_MS)
        steps_per_day = DAY_MS // base_ms
        daily_sigma = self.step_sigma * math.sqrt(steps_per_day)

        rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.key, _TAG_PARAMS]))
        # Slow cycles of 20..700 days; amplitude ~ what a random walk travels in a period.
        self.periods = rng.uniform(20.0, 700.0, size=4)
        self.amplitudes = daily_sigma * np.sqrt(self.periods) * rng.uniform(0.15, 0.35, size=4)
        self.phases = rng.uniform(0.0, 2.0 * math.pi, size=4)
        self.offset_sigma = 0.5 * daily_sigma
        self.volume_period_ms = float(rng.uniform(5.0, 13.0)) * DAY_MS
        self.volume_phase = float(rng.uniform(0.0, 2.0 * math.pi))
        self.intraday_phase = float(rng.uniform(0.0, 2.0 * math.pi))

        self.log_start = math.log(spec.start_price)
        self.level_shift = 0.0
        if not spec.flat:
            self.level_shift = self._raw_level(anchor_ms // DAY_MS)

    def day_rng(self, day: int) -> np.random.Generator:
        return np.random.default_rng(
            np.random.SeedSequence([self.seed, self.key, _TAG_DAY, day + _DAY_BIAS])
        )

    def trend_drift(self, day: int, steps: int, base_ms: int) -> FloatArray:
        """Per-step log drift of day `day`'s trend regimes: back-to-back stretches of
        `_TREND_MINUTES`, each a rally (+trend_per_hour), calm (0) or slide (-trend_per_hour)
        with the chances of `_TREND_MIX`. Their own generator leaves the day's other draws
        (noise, wicks, volume) those of the same symbol without trends."""
        rng = np.random.default_rng(
            np.random.SeedSequence([self.seed, self.key, _TAG_TREND, day + _DAY_BIAS])
        )
        lo, hi = _TREND_MINUTES
        count = math.ceil(DAY_MS / (lo * MINUTE_MS))  # enough stretches for any day
        ends_ms = np.cumsum(rng.uniform(lo, hi, size=count)) * MINUTE_MS
        signs = rng.choice(np.array([1.0, 0.0, -1.0]), p=_TREND_MIX, size=count)
        regime = np.searchsorted(ends_ms, np.arange(steps) * float(base_ms), side="right")
        return self.spec.trend_per_hour * base_ms / _HOUR_MS * signs[regime]

    def _raw_level(self, day: int) -> float:
        # The first draw of a day's generator is that day's offset (see SyntheticMarket._day).
        offset = float(self.day_rng(day).standard_normal())
        if self.spec.flat:
            return 0.0005 * min(3.0, max(-3.0, offset))
        cycles = self.amplitudes * np.sin(2.0 * math.pi * day / self.periods + self.phases)
        return float(cycles.sum()) + self.offset_sigma * offset

    def level(self, day: int) -> float:
        """Opening log-price of UTC day `day` (days since the epoch)."""
        return self.log_start + self._raw_level(day) - self.level_shift

    def wobble(self, t_ms: FloatArray | float) -> FloatArray | float:
        """Slow deterministic multiplier (0.7..1.3) of the daily quote volume."""
        return 1.0 + 0.3 * np.sin(
            2.0 * math.pi * np.asarray(t_ms) / self.volume_period_ms + self.volume_phase
        )


class SyntheticMarket:
    """Deterministic candles and tickers for a set of `SymbolSpec`s.

    `anchor_ms` is the reference time of the story (normally the start of the
    run): listing times and `opens_after_s` are relative to it and the anchor's
    UTC day opens at `start_price`. Keep it fixed across restarts of one run, or
    the prices change.
    """

    def __init__(
        self,
        anchor_ms: int,
        seed: int = 7,
        specs: Sequence[SymbolSpec] = DEFAULT_SYMBOLS,
        timeframe_ms: int = MINUTE_MS,
    ) -> None:
        if timeframe_ms <= 0 or DAY_MS % timeframe_ms != 0:
            raise ValueError(f"base timeframe of {timeframe_ms} ms does not divide a day")
        self.anchor_ms = int(anchor_ms)
        self.seed = int(seed)
        self.base_ms = int(timeframe_ms)
        self._steps = DAY_MS // self.base_ms
        self._models: dict[str, _Model] = {}
        for spec in specs:
            self._check_spec(spec)
            listed = self.anchor_ms - round(spec.listed_days_before_anchor * DAY_MS)
            listed -= listed % self.base_ms
            self._models[spec.symbol] = _Model(
                spec, self.seed, self.anchor_ms, self.base_ms, listed
            )
        self._cache: OrderedDict[tuple[str, int], FloatArray] = OrderedDict()
        self._lock = threading.Lock()

    def _check_spec(self, spec: SymbolSpec) -> None:
        problems = []
        if spec.symbol in self._models:
            problems.append("listed twice")
        if not spec.start_price > 0:
            problems.append(f"start_price {spec.start_price} must be > 0")
        if not spec.volatility >= 0:
            problems.append(f"volatility {spec.volatility} must be >= 0")
        if not -1.0 < spec.momentum < 1.0:
            problems.append(f"momentum {spec.momentum} must be in (-1, 1)")
        if not spec.trend_per_hour >= 0:
            problems.append(f"trend_per_hour {spec.trend_per_hour} must be >= 0")
        if not spec.daily_quote_volume > 0:
            problems.append(f"daily_quote_volume {spec.daily_quote_volume} must be > 0")
        if problems:
            raise ValueError(f"bad SymbolSpec {spec.symbol!r}: " + "; ".join(problems))

    # --- metadata ---------------------------------------------------------

    def symbols(self) -> list[str]:
        return list(self._models)

    def _model(self, symbol: str) -> _Model:
        model = self._models.get(symbol)
        if model is None:
            raise ExchangeError(f"unknown symbol {symbol!r} in the synthetic market")
        return model

    def spec(self, symbol: str) -> SymbolSpec:
        return self._model(symbol).spec

    def reference_price(self, symbol: str) -> float:
        """The price scale of `symbol` (the paper exchange sizes its amount steps by it)."""
        return self._model(symbol).spec.start_price

    def listed_ms(self, symbol: str) -> int:
        """Open time of the symbol's first candle: anchor - listed days, minute aligned."""
        return self._model(symbol).listed_ms

    def opens_ms(self, symbol: str) -> int:
        """When the market becomes active (tradable): anchor + opens_after_s, or listing."""
        model = self._model(symbol)
        return max(model.listed_ms, self.anchor_ms + round(model.spec.opens_after_s * 1000))

    def is_open(self, symbol: str, now_ms: int) -> bool:
        return now_ms >= self.opens_ms(symbol)

    # --- candles ------------------------------------------------------------

    def _day(self, model: _Model, day: int) -> FloatArray:
        """All base candles of UTC day `day`, shape (steps, 6), read-only, cached."""
        key = (model.spec.symbol, day)
        with self._lock:
            block = self._cache.get(key)
            if block is not None:
                self._cache.move_to_end(key)
                return block
        block = self._generate_day(model, day)
        with self._lock:
            self._cache[key] = block
            while len(self._cache) > _CACHE_DAYS:
                self._cache.popitem(last=False)
        return block

    def _generate_day(self, model: _Model, day: int) -> FloatArray:
        n = self._steps
        rng = model.day_rng(day)
        rng.standard_normal()  # the day's level offset, consumed by _Model.level
        sigma = model.step_sigma
        phi = model.spec.momentum
        eps = rng.standard_normal(n) * (sigma * math.sqrt(1.0 - phi * phi))
        if phi != 0.0:
            # AR(1) r[t] = phi r[t-1] + eps[t] as a convolution with phi**k, cut where
            # phi**k is below double precision.
            k = n if abs(phi) > 0.99 else min(n, math.ceil(math.log(1e-18) / math.log(abs(phi))))
            kernel = phi ** np.arange(k, dtype=np.float64)
            returns = np.convolve(eps, kernel)[:n]
        else:
            returns = eps
        if model.spec.trend_per_hour > 0.0:
            returns = returns + model.trend_drift(day, n, self.base_ms)
        start_level = model.level(day)
        end_level = model.level(day + 1)
        path = np.cumsum(returns)
        frac = np.arange(1, n + 1, dtype=np.float64) / n
        log_close = start_level + path - frac * (path[-1] - (end_level - start_level))
        log_close[-1] = end_level  # exactly the next day's open
        log_open = np.empty(n)
        log_open[0] = start_level
        log_open[1:] = log_close[:-1]
        opens = np.exp(log_open)
        closes = np.exp(log_close)
        wick = 0.6 * sigma
        highs = np.maximum(opens, closes) * np.exp(np.abs(rng.standard_normal(n)) * wick)
        lows = np.minimum(opens, closes) * np.exp(-np.abs(rng.standard_normal(n)) * wick)

        times = day * DAY_MS + np.arange(n, dtype=np.float64) * self.base_ms
        quote_per_step = model.spec.daily_quote_volume / n * model.wobble(times)
        intraday = 1.0 + 0.3 * np.sin(2.0 * math.pi * np.arange(n) / n + model.intraday_phase)
        activity = 0.6 + 0.5 * np.abs(log_close - log_open) / max(sigma, 1e-12)
        noise = np.exp(0.5 * rng.standard_normal(n) - 0.125)
        volumes = quote_per_step * intraday * np.minimum(activity, 5.0) * noise
        volumes /= 0.5 * (opens + closes)

        block = np.column_stack([times, opens, highs, lows, closes, volumes])
        block.setflags(write=False)
        return block

    def candles(self, symbol: str, start_ms: int, end_ms: int) -> FloatArray:
        """Base (1m) candles with open time in [start_ms, end_ms), from the listing on.

        Shape (N, 6), float64 columns [time_ms, open, high, low, close, volume].
        The market is timeless: this includes candles after any "now"; the paper
        exchange is what hides unclosed ones.
        """
        model = self._model(symbol)
        base = self.base_ms
        lo = max(int(start_ms), model.listed_ms)
        first = -(-lo // base) * base
        end = int(end_ms)
        if first >= end:
            return np.empty((0, 6), dtype=np.float64)
        day0 = first // DAY_MS
        day1 = (end - 1) // DAY_MS
        blocks = [self._day(model, d) for d in range(day0, day1 + 1)]
        i0 = (first - day0 * DAY_MS) // base
        i1 = -(-(end - day0 * DAY_MS) // base)
        if len(blocks) == 1:
            return blocks[0][i0:i1].copy()
        return np.concatenate(blocks)[i0:i1]

    def ohlcv(self, symbol: str, timeframe: str | int, start_ms: int, end_ms: int) -> FloatArray:
        """Candles of `timeframe` ('5m', '1h', '1d' or ms) with open time in [start_ms, end_ms).

        Aggregated from the base candles; buckets are aligned to multiples of the
        timeframe since the epoch. The bucket containing the listing starts at its
        aligned time (possibly before `listed_ms`) and holds only the listed minutes.
        """
        return resample(
            lambda start, end: self.candles(symbol, start, end),
            self.base_ms,
            timeframe,
            start_ms,
            end_ms,
        )

    def last_closed(self, symbol: str, now_ms: int) -> FloatArray | None:
        """The latest base candle closed at `now_ms` (row of 6), or None before the first."""
        end = (int(now_ms) // self.base_ms) * self.base_ms
        rows = self.candles(symbol, end - self.base_ms, end)
        return rows[0] if len(rows) else None

    # --- tickers ------------------------------------------------------------

    def quote_volume_24h(self, symbol: str, now_ms: int) -> float:
        """Deterministic 24 h quote volume: daily_quote_volume times a slow wobble."""
        model = self._model(symbol)
        return float(model.spec.daily_quote_volume * model.wobble(float(now_ms)))

    def tickers(self, now_ms: int) -> dict[str, Ticker]:
        """Tickers of the symbols open (active) at `now_ms` that have a closed candle.

        `last` is the close of the latest closed base candle.
        """
        return tickers_of(self, self._models, now_ms)
