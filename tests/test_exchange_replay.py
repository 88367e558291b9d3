"""The replay market: stored real candles served by the paper exchange, never ahead of now."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from exchange.paper import PaperExchange
from exchange.replay import ReplayMarket, check_candles, find_gaps
from exchange.types import OrderRequest, Side
from storage.candle_files import (
    HEADER,
    CandleFileError,
    candle_files,
    read_cache,
    read_candle_folder,
)
from storage.candles import CandleCache

REALDATA = Path(__file__).parent / "data" / "realdata"
TF = 300_000  # 5 m
DAY = 86_400_000


@pytest.fixture(scope="module")
def real() -> dict[str, np.ndarray]:
    _, series = read_candle_folder(REALDATA, "5m")
    return series


@pytest.fixture(scope="module")
def market(real: dict[str, np.ndarray]) -> ReplayMarket:
    return ReplayMarket(real, "5m")


def paper_at(market: ReplayMarket, now: list[int]) -> PaperExchange:
    return PaperExchange(market, now_ms=lambda: now[0], quote="BTC", starting_balance=1.0)


def test_the_real_files_are_the_five_series_with_their_provenance(real) -> None:
    assert sorted(real) == ["ADA/BTC", "DASH/BTC", "ETC/BTC", "ETH/BTC", "LTC/BTC"]
    assert [len(real[s]) for s in sorted(real)] == [5720, 5758, 5759, 5760, 5760]
    readme = (REALDATA / "README.md").read_text()
    assert "freqtrade" in readme and "Binance" in readme
    assert {f.exchange for f in candle_files(REALDATA)} == {"binance"}


def test_a_symbol_is_listed_from_its_first_candle_and_never_shows_the_future(market) -> None:
    eth = market.rows("ETH/BTC")
    first = int(eth[0, 0])
    now = [first - 1]
    paper = paper_at(market, now)
    assert "ETH/BTC" not in paper.load_markets()
    assert paper.history_start_ms("ETH/BTC") is None
    now[0] = first + 10 * TF + 7_000  # 7 s into the 11th candle
    assert paper.load_markets()["ETH/BTC"].active
    assert paper.history_start_ms("ETH/BTC") == first
    rows = paper.fetch_ohlcv("ETH/BTC", "5m", limit=1000)
    assert len(rows) == 10  # the forming 11th is not served
    assert rows == eth[:10].tolist()
    assert paper.fetch_ohlcv("ETH/BTC", "5m", since_ms=first + 9 * TF) == eth[9:10].tolist()
    assert paper.fetch_tickers()["ETH/BTC"].last == eth[9, 4]
    # 24 h volume: only the closed candles of the day before now
    assert market.quote_volume_24h("ETH/BTC", now[0]) == pytest.approx(
        float((eth[:10, 4] * eth[:10, 5]).sum())
    )


def test_gaps_stay_gaps_and_a_fill_in_a_gap_takes_the_last_price_that_traded(market) -> None:
    ada = market.rows("ADA/BTC")
    gaps = market.gaps("ADA/BTC")
    assert (len(gaps), sum(g.missing for g in gaps)) == (5, 40)
    longest = max(gaps, key=lambda g: g.missing)
    assert longest.missing == 33  # 170 minutes between two candles
    now = [longest.start_ms + 10 * TF]  # inside the gap
    rows = PaperExchange(market, now_ms=lambda: now[0], quote="BTC").fetch_ohlcv(
        "ADA/BTC", "5m", since_ms=longest.start_ms - 3 * TF
    )
    since = longest.start_ms - 3 * TF
    stored = ada[(ada[:, 0] >= since) & (ada[:, 0] + TF <= now[0])]
    assert rows == stored.tolist()  # what exists before now, nothing invented
    assert rows[-1][0] == longest.start_ms - TF and len(rows) < 13
    before = market.last_closed("ADA/BTC", now[0])
    assert before is not None and before[0] == longest.start_ms - TF
    # aggregated candles hold the rows that exist; an hour with none is absent
    hour = 3_600_000
    bucket = longest.start_ms - hour  # 11:00, with 7 of its 12 candles
    agg = market.ohlcv("ADA/BTC", "1h", bucket, bucket + 4 * hour)
    inside = ada[(ada[:, 0] >= bucket) & (ada[:, 0] < bucket + hour)]
    assert len(inside) == 7 and len(find_gaps(inside[:, 0], TF)) == 2
    assert agg[:, 0].tolist() == [bucket, bucket + 3 * hour]  # 12:00 and 13:00 had no trade
    assert agg[0].tolist() == [
        bucket,
        inside[0, 1],
        inside[:, 2].max(),
        inside[:, 3].min(),
        inside[-1, 4],
        pytest.approx(inside[:, 5].sum()),
    ]


def test_paper_orders_on_btc_pairs_use_btc_sized_rules(market) -> None:
    eth = market.rows("ETH/BTC")
    now = [int(eth[100, 0])]
    paper = paper_at(market, now)
    rules = paper.load_markets()["ETH/BTC"]
    assert rules.min_notional == 0.0001 and rules.amount_step == 1e-5
    order = paper.create_order(OrderRequest("ETH/BTC", Side.BUY, 0.5, "ta1"))
    assert order.average_price == pytest.approx(eth[99, 4] * 1.0005)  # last close + 5 bps
    assert order.fee_quote == pytest.approx(0.5 * order.average_price * 0.001)


@pytest.mark.parametrize(
    ("row", "value", "problem"),
    [
        (3, (0, -TF), "time not after the previous row's"),
        (2, (0, 17), "time not a multiple of the timeframe"),
        (4, (2, 0.0), "a price <= 0"),
        (5, (2, 1e-9), "high below open, low or close"),
    ],
)
def test_bad_candles_are_refused_naming_the_row(real, row, value, problem) -> None:
    rows = real["LTC/BTC"][:10].copy()
    column, change = value
    rows[row, column] = rows[row - 1, column] + change if column == 0 else change
    with pytest.raises(ValueError, match=problem) as info:
        check_candles("LTC/BTC", rows, TF)
    assert f"row {row}" in str(info.value)


def test_candle_files_plain_or_gzipped_and_their_errors(tmp_path: Path, real) -> None:
    rows = real["ETC/BTC"][:50]
    text = HEADER + "\n" + "\n".join(",".join(repr(float(v)) for v in r) for r in rows) + "\n"
    (tmp_path / "kraken_ETC-BTC_5m.csv").write_text(text)
    with gzip.open(tmp_path / "kraken_LTC-BTC_5m.csv.gz", "wt") as f:
        f.write(text)
    (tmp_path / "README.md").write_text("ignored")
    exchange, series = read_candle_folder(tmp_path, "5m")
    assert exchange == "kraken" and sorted(series) == ["ETC/BTC", "LTC/BTC"]
    assert np.array_equal(series["ETC/BTC"], rows) and np.array_equal(series["LTC/BTC"], rows)
    with pytest.raises(CandleFileError, match=r"no 1h candle files \(it has 5m: use --timeframe\)"):
        read_candle_folder(tmp_path, "1h")
    with pytest.raises(CandleFileError, match="no 5m file for XRP/BTC"):
        read_candle_folder(tmp_path, "5m", ["XRP/BTC"])
    (tmp_path / "kraken_LTC-BTC_5m.csv.gz").unlink()
    (tmp_path / "kraken_LTC-BTC_5m.csv").write_text("t,o,h,l,c,v\n1,2,3,4,5,6\n")
    with pytest.raises(CandleFileError, match=r"kraken_LTC-BTC_5m\.csv: header is 't,o,h,l,c,v'"):
        read_candle_folder(tmp_path, "5m")
    (tmp_path / "kraken_LTC-BTC_5m.csv").write_text(HEADER + "\n1,2,x,4,5,6\n")
    with pytest.raises(CandleFileError, match=r"kraken_LTC-BTC_5m\.csv: not numbers"):
        read_candle_folder(tmp_path, "5m")
    (tmp_path / "kraken_LTC-BTC_5m.csv").unlink()
    (tmp_path / "ltc.csv").write_text(text)
    with pytest.raises(CandleFileError, match=r"ltc\.csv: cannot tell the symbol from the name"):
        read_candle_folder(tmp_path, "5m")


def test_the_candle_cache_is_a_source_too(tmp_path: Path, real) -> None:
    cache = CandleCache(tmp_path)
    cache.append("binance", "ETH/BTC", "5m", real["ETH/BTC"][:100])
    assert np.array_equal(read_cache(cache, "binance", "5m")["ETH/BTC"], real["ETH/BTC"][:100])
    with pytest.raises(CandleFileError, match="no 5m candles of LTC/BTC in the cache"):
        read_cache(cache, "binance", "5m", ["LTC/BTC"])
    with pytest.raises(CandleFileError, match="no 1h candles in the cache"):
        read_cache(cache, "binance", "1h")
