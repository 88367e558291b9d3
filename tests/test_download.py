"""`python supervisor.py download` against the loopback fake Binance: public endpoints only,
resumable, gaps reported, one line and exit 1 when the exchange cannot be reached."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
from pathlib import Path

import msgspec
import numpy as np
import pytest

import supervisor
from app.download import run_download
from config.settings import Settings
from exchange.replay import ReplayMarket
from storage.candle_files import read_candle_folder
from storage.candles import CandleCache
from tests.fake_binance import FakeBinance

ROOT = Path(__file__).parents[1]
REALDATA = ROOT / "tests" / "data" / "realdata"
TF = 300_000
HOUR = 3_600_000


def settings_for(url: str, data_dir: Path, quote: str = "USDT") -> Settings:
    return msgspec.convert(
        {
            "data_dir": str(data_dir),
            "exchange": {"id": "binance", "base_url": url, "quote": quote, "timeout_ms": 2000},
        },
        Settings,
    )


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_download_resumes_and_fetches_only_what_is_new(tmp_path: Path) -> None:
    now = [1_790_000_000_000]
    with FakeBinance(market_ms=lambda: now[0]) as fake:
        settings = settings_for(fake.url, tmp_path)
        out = Tty()
        args = {"symbols": ["BTC/USDT", "ETH/USDT"], "days": 2, "timeframe": "5m"}
        assert run_download(settings, now_ms=lambda: now[0], stream=out, **args) == 0
        first = [r.params for r in fake.requests if r.path == "/api/v3/klines"]
        now[0] += HOUR  # an hour later: 12 new candles each
        again = io.StringIO()
        assert run_download(settings, now_ms=lambda: now[0], stream=again, **args) == 0
        second = [r.params for r in fake.requests if r.path == "/api/v3/klines"][len(first) :]
        signed = [r.path for r in fake.requests if r.path in ("/api/v3/account", "/api/v3/order")]
        market = fake.market
    assert signed == []
    cache = CandleCache(tmp_path / "candles")
    until = now[0] // TF * TF
    for symbol in ("BTC/USDT", "ETH/USDT"):
        rows = cache.read("binance", symbol, "5m")
        assert len(rows) == 2 * 288 + 12
        assert rows[-1, 0] == until - TF  # closed candles only
        assert np.allclose(rows, market.ohlcv(symbol, "5m", rows[0, 0], until), rtol=1e-9)
    # the second run asked once per symbol, from the candle after the last one stored
    assert len(second) == 2
    assert {int(p["startTime"]) for p in second} == {until - HOUR}
    text = out.getvalue()
    assert "Downloading 2 days of 5m candles of 2 symbols from binance" in text
    assert "576/576" in text  # the progress bar, drawn on a terminal
    assert "BTC/USDT: 576 5m candles (576 new)" in text and "; no gaps" in text
    assert "BTC/USDT: 576 5m candles (12 new)" in again.getvalue()
    assert "Done: 24 new candles" in again.getvalue()
    # more days than the cache holds: it cannot prepend, and says so
    with FakeBinance(market_ms=lambda: now[0]) as fake:
        more = io.StringIO()
        settings = settings_for(fake.url, tmp_path)
        code = run_download(settings, now_ms=lambda: now[0], stream=more, **{**args, "days": 3})
    assert code == 0
    path = cache.path("binance", "BTC/USDT", "5m")
    assert f"(the cache starts there: it only appends; delete {path} to download older" in (
        more.getvalue()
    )


def test_gaps_are_reported_and_the_download_can_be_backtested(tmp_path: Path) -> None:
    _, series = read_candle_folder(REALDATA, "5m", ["ADA/BTC", "ETH/BTC"])
    market = ReplayMarket(series, "5m")
    end = market.end_ms("ETH/BTC")
    out = io.StringIO()
    with FakeBinance(market=market, market_ms=lambda: end + 60_000, min_notional=0.0001) as fake:
        settings = settings_for(fake.url, tmp_path, quote="BTC")
        code = run_download(
            settings, top=5, days=21, timeframe="5m", now_ms=lambda: end + 60_000, stream=out
        )
    assert code == 0
    text = out.getvalue()
    # the universe ranked by 24 h volume, as the bot's: ETH first
    assert text.index("ETH/BTC: 5,760") < text.index("ADA/BTC: 5,720")
    assert (
        "ADA/BTC: 5,720 5m candles (5,720 new), 2018-01-10 04:55 UTC to 2018-01-30 04:50 UTC "
        "(the history starts there); 5 gaps in the exchange's data, 40 candles missing "
        "(longest 33 from 2018-01-15 12:00 UTC)" in text
    )
    cache = CandleCache(tmp_path / "candles")
    assert np.allclose(cache.read("binance", "ADA/BTC", "5m"), series["ADA/BTC"], rtol=1e-9)

    # and backtest what was downloaded: the cache is the default source
    settings_file = tmp_path / "bt.yaml"
    settings_file.write_text(
        f"data_dir: {tmp_path}\ntimeframe: 5m\nexchange: {{quote: BTC, starting_balance: 1.0}}\n"
        "coverage: {min_history_days: 7.5}\ntraining: {window_days: 7.5, max_iter: 30}\n"
        "promotion: {min_net_return_pct: -100, min_auc: 0}\n"
        "trading: {stake_quote: 0.1}\n"
    )
    out = tmp_path / "out"
    argv = ["backtest", "--settings", str(settings_file), "--symbols", "ETH/BTC"]
    argv += ["--from", "2018-01-17T18:00", "--to", "2018-01-18", "--out", str(out)]
    assert supervisor.main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["source"] == str(tmp_path / "candles" / "binance")
    assert summary["candles"] == 72 and summary["invariant_violations"] == []
    assert summary["symbols"]["ETH/BTC"]["final_state"] == "ACTIVE"


def test_an_unreachable_exchange_is_one_line_and_exit_1(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = tmp_path / "s.yaml"
    settings.write_text(
        f"data_dir: {tmp_path / 'var'}\nexchange: {{base_url: 'http://127.0.0.1:{port}', "
        "timeout_ms: 500}\n"
    )
    done = subprocess.run(
        [sys.executable, "supervisor.py", "download", "--settings", str(settings)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    err = done.stderr.strip()
    assert err.startswith(f"download: cannot reach http://127.0.0.1:{port}: ")
    assert "\n" not in err and "Traceback" not in err


def test_an_unknown_symbol_is_exit_2(tmp_path: Path) -> None:
    out = io.StringIO()
    with FakeBinance() as fake:
        code = run_download(settings_for(fake.url, tmp_path), symbols=["NOPE/USDT"], stream=out)
    assert code == 2
    assert out.getvalue().strip() == (
        "download: not a spot market on binance: NOPE/USDT (symbols are written BASE/QUOTE, "
        "e.g. ETH/BTC)"
    )


@pytest.mark.parametrize(("argv", "message"), [(["--top", "0"], "--top must be >= 1")])
def test_bad_arguments_exit_2(tmp_path: Path, capsys, argv, message) -> None:
    settings = tmp_path / "s.yaml"
    settings.write_text("")
    assert supervisor.main(["download", "--settings", str(settings), *argv]) == 2
    assert message in capsys.readouterr().err
