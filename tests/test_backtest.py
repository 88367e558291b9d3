"""Backtests of real candles through the whole bot: invariants, prices, no look-ahead, and the
same decisions as a paper bot on live prices (the loopback fake Binance serving the same candles).

Two real series, a day of trading: ETH/BTC has enough history at the start and trains
at once; LTC/BTC is cut to start a day later, so coverage blocks it for short history
and admits it 18 hours in.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import msgspec
import numpy as np
import pytest

import supervisor
from actors.clock import VirtualClock
from config.settings import Settings
from exchange.ccxt_client import CcxtConfig
from exchange.ccxt_exchange import CcxtExchange
from exchange.credentials import Credentials
from exchange.live import LivePaperExchange
from exchange.port import ExchangePort
from exchange.replay import ReplayMarket
from policy.risk import Intent, client_order_id
from simulation.backtest import Backtest, backtest
from simulation.backtest_inputs import Window, replay_window, start_s
from simulation.backtest_summary import SymbolResult
from storage.candle_files import HEADER, read_candle_folder
from tests.fake_binance import FakeBinance
from tests.harness import EVERY_CANDLE

REALDATA = Path(__file__).parent / "data" / "realdata"
TF = 300_000
HOUR = 3_600_000
DAY = 24 * HOUR
SLIP = 5 / 10_000

SETTINGS = msgspec.convert(
    {
        "timeframe": "5m",
        "heartbeat_s": 3600,
        "health_s": 3600,
        "exchange": {"quote": "BTC", "starting_balance": 1.0},
        "universe": {"refresh_s": 86_400},
        "coverage": {"min_history_days": 7.5, "max_model_age_s": 30 * 86_400},
        "training": {"window_days": 7.5, "max_iter": 30},
        # as live: a candle is read a second after its close (the exchange's clock may be
        # a few ms behind ours)
        "trading": {"stake_quote": 0.1, "candle_delay_s": 1.0, **EVERY_CANDLE},
        # these tests check the machinery (invariants, fill prices, no look-ahead), not an
        # edge: every model is promoted and trades often, so there are fills to check
        "promotion": {"min_net_return_pct": -100.0, "min_auc": 0.0},
    },
    Settings,
)


@pytest.fixture(scope="module")
def market() -> ReplayMarket:
    _, series = read_candle_folder(REALDATA, "5m", ["ETH/BTC", "LTC/BTC"])
    first = int(series["ETH/BTC"][0, 0])
    end = first + 9 * DAY
    cut = {
        "ETH/BTC": series["ETH/BTC"][series["ETH/BTC"][:, 0] < end],
        "LTC/BTC": series["LTC/BTC"][
            (series["LTC/BTC"][:, 0] >= first + DAY) & (series["LTC/BTC"][:, 0] < end)
        ],
    }
    return ReplayMarket(cut, "5m")


@pytest.fixture(scope="module")
def window(market: ReplayMarket) -> Window:
    first = market.listed_ms("ETH/BTC")
    return replay_window(market, "5m", first + 7 * DAY + 18 * HOUR, first + 8 * DAY + 18 * HOUR)


@pytest.fixture(scope="module")
def baseline(market: ReplayMarket, window: Window) -> Backtest:
    return backtest(SETTINGS, market, window=window, workers=2)


def test_a_backtest_of_real_candles_keeps_every_invariant(baseline, market, window) -> None:
    s = baseline.summary
    assert s.duplicate_trainings == 0
    assert s.invariant_violations == []
    assert s.stopped_early is None
    assert s.days == 1.0 and s.candles == 288 + 288
    eth, ltc = s.symbols["ETH/BTC"], s.symbols["LTC/BTC"]
    # ETH: 7.75 days of history at the start: trained at once
    assert eth.timeline[:2] == [(0.0, "TRAINING"), (0.0, "ACTIVE")]
    # LTC: 6.75 days: blocked, eligible at 7.5 days (18 h in), trained once, then traded
    assert [state for _, state in ltc.timeline] == ["BLOCKED_HISTORY", "TRAINING", "ACTIVE"]
    eligible_h = (market.listed_ms("LTC/BTC") + 7.5 * DAY - window.start_ms) / HOUR
    assert ltc.timeline[1][0] == pytest.approx(eligible_h, abs=5 / 60)
    assert eth.trainings_started == ltc.trainings_started == 1
    assert s.orders > 10 and s.orders_failed == 0


def test_orders_fill_at_the_close_of_the_candle_decided_on(baseline, market, window) -> None:
    filled = [r for r in baseline.orders if r.filled > 0]
    assert len(filled) > 10
    for row in filled:
        rows = market.rows(row.symbol)
        candle = rows[rows[:, 0] == row.candle_ms][0]
        assert row.candle_ms + TF <= row.created_at * 1000  # it had closed: no look-ahead
        assert window.start_ms <= row.created_at * 1000 < window.end_ms
        sign = 1.0 if row.side == "buy" else -1.0
        price = row.average_price / (1 + sign * SLIP)  # the slippage taken off
        assert price == pytest.approx(candle[4], rel=1e-12)  # its close
        assert candle[3] <= price <= candle[2]  # inside the candle
        assert row.fee_quote == pytest.approx(row.filled * row.average_price * 0.001)
        assert row.client_order_id == client_order_id(row.symbol, row.candle_ms, Intent(row.intent))


def test_the_returns_are_the_orders_and_the_candles(baseline, market, window) -> None:
    s = baseline.summary
    filled = [r for r in baseline.orders if r.filled > 0]
    assert s.fees_quote == pytest.approx(sum(r.fee_quote for r in filled))
    assert s.round_trips == sum(r.side == "sell" for r in filled)
    assert s.net_return_pct == pytest.approx(100 * (s.final_equity - 1.0), abs=1e-3)
    holds = []
    for name in ("ETH/BTC", "LTC/BTC"):
        sym = s.symbols[name]
        assert isinstance(sym, SymbolResult)
        rows = market.candles(name, window.start_ms, window.end_ms)
        hold = 100 * (rows[-1, 4] / rows[0, 1] - 1)
        holds.append(hold)
        assert sym.buy_hold_return_pct == pytest.approx(hold, abs=1e-3)
        mine = [r for r in filled if r.symbol == name]
        assert sym.fees_quote == pytest.approx(sum(r.fee_quote for r in mine))
        assert sym.net_return_pct == pytest.approx(100 * sym.pnl, abs=1e-3)
        first = min(r.created_at for r in mine)
        assert sym.first_trade_at == time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(first))
    assert s.buy_hold_return_pct == pytest.approx(sum(holds) / 2, abs=1e-3)
    # equity: the starting balance plus every symbol's profit
    total = sum(sym.pnl for sym in s.symbols.values())
    assert s.final_equity == pytest.approx(1.0 + total, abs=1e-5)


def test_no_look_ahead_changing_the_candles_after_t_changes_nothing_before_t(
    baseline, market, window
) -> None:
    t = window.start_ms + 12 * HOUR
    perturbed = {}
    for symbol in market.symbols():
        rows = market.rows(symbol).copy()
        later = rows[:, 0] >= t
        rows[later, 1:] = rows[later, 1:][::-1]  # the future replayed backwards: still candles
        rows[later, 1:5] *= 1.03
        perturbed[symbol] = rows
    other = backtest(SETTINGS, ReplayMarket(perturbed, "5m"), window=window, workers=2)

    def before(result: Backtest) -> tuple[list, list]:
        signals = [(s.symbol, s.candle_ms, s.prob_up) for s in result.signals if s.at * 1000 <= t]
        orders = [
            (o.client_order_id, o.filled, o.average_price)
            for o in result.orders
            if o.created_at * 1000 <= t
        ]
        return signals, orders

    assert before(other) == before(baseline)
    assert len(before(baseline)[0]) > 100 and len(before(baseline)[1]) > 5
    # and the perturbation did reach the bot after t
    after = [(s.symbol, s.candle_ms, s.prob_up) for s in baseline.signals if s.at * 1000 > t]
    assert after != [(s.symbol, s.candle_ms, s.prob_up) for s in other.signals if s.at * 1000 > t]


def test_a_paper_bot_on_live_prices_decides_as_the_backtest(baseline, market, window) -> None:
    """The same candles served by the fake Binance, read through ccxt's public endpoints,
    fills on the live paper exchange: the same signals, the same client order ids."""
    clock = VirtualClock(start=start_s(SETTINGS, window))
    virtual_ms = lambda: int(clock.now() * 1000)  # noqa: E731

    def live_paper(settings: Settings, _clock: VirtualClock, _market: ReplayMarket) -> ExchangePort:
        public = CcxtExchange(
            CcxtConfig(exchange_id="binance", mode="live", base_url=fake.url, rate_limit=False),
            Credentials("", ""),
            now_ms=virtual_ms,
            sleep=time.sleep,
            monotonic=time.monotonic,
        )
        return LivePaperExchange(
            public, timeframe="5m", now_ms=virtual_ms, quote="BTC", starting_balance=1.0
        )

    with FakeBinance(market=market, market_ms=virtual_ms, min_notional=0.0001) as fake:
        live = backtest(
            SETTINGS, market, window=window, workers=2, clock=clock, exchange=live_paper
        )
        signed = [r.path for r in fake.requests if r.path in ("/api/v3/order", "/api/v3/account")]
    assert signed == []  # public endpoints only: no keys, no real order
    assert live.summary.invariant_violations == [] and live.summary.orders_failed == 0
    ids = [o.client_order_id for o in live.orders]
    assert ids == [o.client_order_id for o in baseline.orders] and len(ids) > 10
    for mine, theirs in zip(live.orders, baseline.orders, strict=True):
        assert mine.filled == theirs.filled  # the same rules: the exchange's, the paper's
        # the fake writes prices with 8 decimals, as Binance does
        assert mine.average_price == pytest.approx(theirs.average_price, rel=1e-12)
    assert [(s.symbol, s.candle_ms, s.prob_up) for s in live.signals] == [
        (s.symbol, s.candle_ms, s.prob_up) for s in baseline.signals
    ]


def write_csv(path: Path, rows: np.ndarray) -> None:
    lines = [HEADER, *(",".join(repr(float(v)) for v in row) for row in rows)]
    path.write_text("\n".join(lines) + "\n")


def test_the_command_line_writes_the_report(tmp_path: Path, market, capsys) -> None:
    candles = tmp_path / "candles"
    candles.mkdir()
    write_csv(candles / "binance_ETH-BTC_5m.csv", market.rows("ETH/BTC")[: int(7.75 * 288)])
    settings = tmp_path / "bt.yaml"
    settings.write_text(msgspec.yaml.encode(msgspec.to_builtins(SETTINGS)).decode())
    out = tmp_path / "out"
    argv = ["backtest", "--settings", str(settings), "--candles", str(candles), "--out", str(out)]
    assert supervisor.main([*argv, "--from", "2018-01-17T18:00", "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert (
        "Backtest of 1 symbols (binance 5m candles) from 2018-01-17 18:00:00 UTC to "
        "2018-01-17 22:55:00 UTC: 0.204861 days, 59 candles" in printed
    )
    assert "duplicate_trainings: 0" in printed and "invariant_violations: none" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["source"] == str(candles) and summary["quote"] == "BTC"
    assert summary["symbols"]["ETH/BTC"]["final_state"] == "ACTIVE"
    assert set(summary["symbols"]["ETH/BTC"]) >= {
        "net_return_pct",
        "buy_hold_return_pct",
        "fees_quote",
        "round_trips",
        "first_trade_at",
    }
    html = (out / "report.html").read_text()
    assert "<h1>Backtest: 1 symbols, 5m, 2018-01-17 18:00:00 UTC to" in html
    assert "<h2>Returns</h2>" in html and "data:image/png;base64," in html
    assert (
        "ETH/BTC: 2,232 candles from 2018-01-10 04:55:00 UTC" in (out / "backtest.log").read_text()
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "the candles are quoted in BTC but exchange.quote is USDT: set exchange.quote: BTC"),
        (["--timeframe", "1h"], "no 1h candle files (it has 5m: use --timeframe)"),
        (["--from", "2019-01-01"], "nothing to replay between 2019-01-01"),
        (["--symbols", "XRP/BTC"], "no 5m file for XRP/BTC"),
        (["--from", "yesterday"], "'yesterday' is not a date"),
    ],
)
def test_bad_inputs_are_one_line_and_exit_2(tmp_path: Path, capsys, extra, message) -> None:
    settings = tmp_path / "s.yaml"
    quote = "USDT" if not extra else "BTC"
    settings.write_text(f"timeframe: 5m\nexchange: {{quote: {quote}}}\n")
    argv = ["backtest", "--settings", str(settings), "--candles", str(REALDATA), *extra]
    assert supervisor.main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not (tmp_path / "out").exists()


def test_an_unusable_out_is_one_line_and_exit_2_before_any_replay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = tmp_path / "s.yaml"
    settings.write_text("timeframe: 5m\nexchange: {quote: BTC}\n")
    (tmp_path / "afile").write_text("x")
    argv = ["backtest", "--settings", str(settings), "--candles", str(REALDATA)]
    assert supervisor.main([*argv, "--out", str(tmp_path / "afile" / "report")]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"backtest: --out {tmp_path / 'afile' / 'report'}: a file is in the way "
        f"({tmp_path / 'afile'} is not a folder)\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "s.yaml"]
