"""`python supervisor.py` with `exchange.kind: ccxt` against the loopback fake Binance.

The real bot in a subprocess, the same actors as on the paper exchange, the real
ccxt client: it downloads history, trains, trades (orders reach the fake, signed),
answers health checks, and stops cleanly on SIGTERM.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.botproc import BotProcess
from tests.fake_binance import API_KEY, API_SECRET, FakeBinance


@pytest.mark.slow
def test_bot_trades_on_the_fake_binance_through_ccxt(tmp_path: Path) -> None:
    with FakeBinance() as fake:
        settings = tmp_path / "settings.yaml"
        settings.write_text(
            f"""
data_dir: {tmp_path / "var"}
heartbeat_s: 2
health_s: 2
exchange: {{kind: ccxt, id: binance, mode: sandbox, base_url: "{fake.url}", timeout_ms: 3000}}
universe: {{mode: static, symbols: [BTC/USDT, ETH/USDT]}}
training: {{window_days: 3, max_iter: 30}}
promotion: {{min_net_return_pct: -100, min_auc: 0}}
admin: {{port: 0}}
# enter on the first signal, never exit: every trained symbol places one order
trading: {{entry_threshold: 1.0e-9, exit_threshold: 0.0, max_hold_bars: 0, stake_quote: 100}}
"""
        )
        keys = {"TRADEACTORS_API_KEY": API_KEY, "TRADEACTORS_API_SECRET": API_SECRET}
        with BotProcess(settings, env=keys) as bot:
            # real processes doing real work (two downloads, two fits): wait for the event
            beat = "Bot heartbeat: 2 active symbols, 0 blocked, 2 open positions"
            assert bot.wait_for(beat, timeout=150), "no heartbeat with 2 positions:\n" + bot.text
            assert bot.stop() == 0
        text = bot.text
        orders = list(fake.orders)
        klines = [r.params for r in fake.requests if r.path == "/api/v3/klines"]
    assert "tradeactors starting: exchange ccxt (binance sandbox)" in text
    for symbol in ("BTC/USDT", "ETH/USDT"):
        assert f"{symbol}: history ready: 4,320 candles (3.0 days of 1m), 4,320 downloaded" in text
        assert f"{symbol}: TRAINING -> ACTIVE (model v00000" in text
        assert f"{symbol}: BUY " in text
    # the history came in pages of up to 1000 candles, from the fake
    pages = [p for p in klines if p.get("interval") == "1m" and p.get("limit") == "1000"]
    assert len(pages) >= 10
    # one order per symbol reached the exchange, with the trader's client order ids
    assert sorted(o.symbol_id for o in orders) == ["BTCUSDT", "ETHUSDT"]
    assert all(o.client_id.startswith("ta") and o.status == "FILLED" for o in orders)
    # the health checks (every 2 s) asked the fake for the balances, signed
    assert any(r.path == "/api/v3/account" for r in fake.requests)
    assert "Stopping (SIGTERM): coverage, trainers, trader, market data, model store" in text
    assert text.rstrip().endswith("Stopped cleanly.")
    assert "Traceback" not in text and API_SECRET not in text and API_KEY not in text
    assert fake.unknown == []
