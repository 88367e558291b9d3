from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.timeframes import timeframe_ms
from exchange.synthetic import SyntheticMarket
from exchange.types import Candle, TransientExchangeError
from storage.candles import CandleCache, download

DAY = 86_400_000
MIN = 60_000
ANCHOR = 1_735_732_800_000  # 2025-01-01 12:00 UTC


def rows(times: list[int]) -> np.ndarray:
    t = np.asarray(times, dtype=np.float64)
    return np.column_stack([t, t + 1, t + 2, t - 1, t + 0.5, np.full(len(t), 3.0)])


class FakeExchange:
    """The port's fetch_ohlcv over a SyntheticMarket, optionally failing on call N."""

    name = "fake"

    def __init__(self, market: SyntheticMarket, now: int, fail_on_call: int | None = None):
        self.market = market
        self.now = now
        self.fail_on_call = fail_on_call
        self.calls: list[tuple[int | None, int]] = []

    def fetch_ohlcv(
        self, symbol: str, timeframe: str, since_ms: int | None = None, limit: int = 1000
    ) -> list[Candle]:
        self.calls.append((since_ms, limit))
        if self.fail_on_call == len(self.calls):
            raise TransientExchangeError(f"{symbol}: simulated timeout")
        tf = timeframe_ms(timeframe)
        end = (self.now // tf) * tf
        listed = (self.market.listed_ms(symbol) // tf) * tf
        start = end - limit * tf if since_ms is None else max(-(-since_ms // tf) * tf, listed)
        stop = min(end, start + min(limit, 1000) * tf)
        if stop <= start:
            return []
        return self.market.ohlcv(symbol, timeframe, start, stop).tolist()


@pytest.fixture(scope="module")
def market() -> SyntheticMarket:
    return SyntheticMarket(ANCHOR)


def test_layout_and_round_trip(tmp_path: Path) -> None:
    cache = CandleCache(tmp_path)
    assert cache.read("paper", "BTC/USDT", "1m").shape == (0, 6)
    assert cache.last_time_ms("paper", "BTC/USDT", "1m") is None
    data = rows([0, MIN, 2 * MIN])
    assert cache.append("paper", "BTC/USDT", "1m", data) == 3
    path = tmp_path / "paper" / "BTC_USDT" / "1m.bin"
    assert path.stat().st_size == 3 * 6 * 8
    np.testing.assert_array_equal(np.fromfile(path, dtype="<f8").reshape(-1, 6), data)
    np.testing.assert_array_equal(cache.read("paper", "BTC/USDT", "1m"), data)
    np.testing.assert_array_equal(cache.read("paper", "BTC/USDT", "1m", since_ms=MIN), data[1:])
    np.testing.assert_array_equal(cache.read("paper", "BTC/USDT", "1m", since_ms=1), data[1:])
    assert cache.read("paper", "BTC/USDT", "1m", since_ms=3 * MIN).shape == (0, 6)
    assert cache.last_time_ms("paper", "BTC/USDT", "1m") == 2 * MIN
    assert cache.read("paper", "BTC/USDT", "5m").shape == (0, 6)


def test_append_only_ignores_older_and_duplicate_rows(tmp_path: Path) -> None:
    cache = CandleCache(tmp_path)
    cache.append("x", "A/B", "1m", rows([MIN, 2 * MIN, 3 * MIN]))
    original = cache.read("x", "A/B", "1m")
    changed = rows([0, 2 * MIN, 3 * MIN, 4 * MIN, 4 * MIN, 6 * MIN, 5 * MIN])
    changed[:, 1] += 100  # would overwrite the stored values if rewritten
    assert cache.append("x", "A/B", "1m", changed) == 3
    out = cache.read("x", "A/B", "1m")
    np.testing.assert_array_equal(out[:3], original)  # never rewritten
    assert out[:, 0].tolist() == [MIN, 2 * MIN, 3 * MIN, 4 * MIN, 5 * MIN, 6 * MIN]
    assert cache.append("x", "A/B", "1m", rows([MIN, 6 * MIN])) == 0
    assert cache.append("x", "A/B", "1m", np.empty((0, 6))) == 0
    with pytest.raises(ValueError, match="shape"):
        cache.append("x", "A/B", "1m", np.zeros((2, 5)))


def test_trailing_partial_row_is_ignored_then_truncated(tmp_path: Path) -> None:
    cache = CandleCache(tmp_path)
    cache.append("x", "A/B", "1m", rows([0, MIN]))
    path = cache.path("x", "A/B", "1m")
    with open(path, "ab") as f:  # a crash in the middle of writing a third row
        f.write(rows([2 * MIN]).astype("<f8").tobytes()[:20])
    assert path.stat().st_size == 2 * 48 + 20
    assert cache.read("x", "A/B", "1m")[:, 0].tolist() == [0, MIN]
    assert cache.last_time_ms("x", "A/B", "1m") == MIN
    assert cache.append("x", "A/B", "1m", rows([MIN])) == 0  # nothing new: still cut off
    assert path.stat().st_size == 2 * 48
    with open(path, "ab") as f:
        f.write(b"\xff" * 47)
    assert cache.append("x", "A/B", "1m", rows([2 * MIN, 3 * MIN])) == 2
    assert path.stat().st_size == 4 * 48
    np.testing.assert_array_equal(cache.read("x", "A/B", "1m"), rows([0, MIN, 2 * MIN, 3 * MIN]))


def test_only_a_partial_row(tmp_path: Path) -> None:
    cache = CandleCache(tmp_path)
    path = cache.path("x", "A/B", "1h")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x01" * 30)
    assert cache.read("x", "A/B", "1h").shape == (0, 6)
    assert cache.last_time_ms("x", "A/B", "1h") is None
    assert cache.append("x", "A/B", "1h", rows([0])) == 1
    assert path.stat().st_size == 48


def test_bad_path_parts_are_refused(tmp_path: Path) -> None:
    cache = CandleCache(tmp_path)
    for exchange, symbol, tf in (("..", "A/B", "1m"), ("x", "..", "1m"), ("x", "A/B", "../1m")):
        with pytest.raises(ValueError, match="invalid"):
            cache.path(exchange, symbol, tf)


def test_download_pages_forward(tmp_path: Path, market: SyntheticMarket) -> None:
    cache = CandleCache(tmp_path)
    ex = FakeExchange(market, now=ANCHOR)
    since, until = ANCHOR - 5000 * MIN, ANCHOR
    seen: list[tuple[int, int]] = []
    out = download(
        cache, ex, "BTC/USDT", "1m", since, until, progress=lambda d, e: seen.append((d, e))
    )
    np.testing.assert_array_equal(out, market.candles("BTC/USDT", since, until))
    assert [c[0] for c in ex.calls] == [since + i * 1000 * MIN for i in range(5)]
    assert all(limit == 1000 for _, limit in ex.calls)
    assert seen == [(i * 1000, 5000) for i in range(1, 6)]
    np.testing.assert_array_equal(cache.read("fake", "BTC/USDT", "1m"), out)
    # up to date: nothing more is requested
    ex.calls.clear()
    np.testing.assert_array_equal(download(cache, ex, "BTC/USDT", "1m", since, until), out)
    assert ex.calls == []


def test_download_stops_on_an_empty_page(tmp_path: Path, market: SyntheticMarket) -> None:
    cache = CandleCache(tmp_path)
    now = ANCHOR + 30_000
    ex = FakeExchange(market, now=now)
    seen: list[tuple[int, int]] = []
    # until is in the future: stops at the last closed candle
    out = download(
        cache,
        ex,
        "ETH/USDT",
        "1m",
        ANCHOR - 2500 * MIN,
        ANCHOR + DAY,
        progress=lambda d, e: seen.append((d, e)),
        page_limit=1000,
    )
    assert len(out) == 2500 and out[-1, 0] == ANCHOR - MIN
    assert len(ex.calls) == 4  # 1000, 1000, 500, then an empty page
    assert seen[-1] == (2500, 2500)
    assert [d for d, _ in seen] == [1000, 2000, 2500, 2500]


def test_download_resumes_after_an_interruption(tmp_path: Path, market: SyntheticMarket) -> None:
    cache = CandleCache(tmp_path)
    since, until = ANCHOR - 5000 * MIN, ANCHOR
    failing = FakeExchange(market, now=ANCHOR, fail_on_call=3)
    with pytest.raises(TransientExchangeError):
        download(cache, failing, "SOL/USDT", "1m", since, until)
    assert cache.last_time_ms("fake", "SOL/USDT", "1m") == since + 1999 * MIN
    ex = FakeExchange(market, now=ANCHOR)
    seen: list[tuple[int, int]] = []
    out = download(
        cache, ex, "SOL/USDT", "1m", since, until, progress=lambda d, e: seen.append((d, e))
    )
    assert [c[0] for c in ex.calls] == [since + i * 1000 * MIN for i in (2, 3, 4)]
    assert seen == [(1000, 3000), (2000, 3000), (3000, 3000)]
    np.testing.assert_array_equal(out, market.candles("SOL/USDT", since, until))


def test_download_from_before_the_listing(tmp_path: Path, market: SyntheticMarket) -> None:
    cache = CandleCache(tmp_path)
    ex = FakeExchange(market, now=ANCHOR)
    out = download(cache, ex, "WIF/USDT", "1h", ANCHOR - 30 * DAY, ANCHOR, page_limit=50)
    listed = market.listed_ms("WIF/USDT")
    assert out[0, 0] == listed // 3_600_000 * 3_600_000
    assert len(out) == 72 and len(ex.calls) == 2  # 50 + 22, and until is reached
    np.testing.assert_array_equal(out, market.ohlcv("WIF/USDT", "1h", 0, ANCHOR))


def test_download_fills_the_gap_after_old_cache(tmp_path: Path, market: SyntheticMarket) -> None:
    cache = CandleCache(tmp_path)
    ex = FakeExchange(market, now=ANCHOR)
    download(cache, ex, "ADA/USDT", "5m", ANCHOR - 3 * DAY, ANCHOR - 2 * DAY)
    out = download(cache, ex, "ADA/USDT", "5m", ANCHOR - DAY, ANCHOR)
    assert len(out) == 288 and out[0, 0] == ANCHOR - DAY
    stored = cache.read("fake", "ADA/USDT", "5m")
    assert np.all(np.diff(stored[:, 0]) == 5 * MIN)  # contiguous: no gap left
    assert stored[0, 0] == ANCHOR - 3 * DAY


def test_download_validates_arguments(tmp_path: Path, market: SyntheticMarket) -> None:
    ex = FakeExchange(market, now=ANCHOR)
    with pytest.raises(ValueError, match="page_limit"):
        download(CandleCache(tmp_path), ex, "BTC/USDT", "1m", 0, ANCHOR, page_limit=0)
    with pytest.raises(ValueError, match="'1w'"):
        download(CandleCache(tmp_path), ex, "BTC/USDT", "1w", 0, ANCHOR)
