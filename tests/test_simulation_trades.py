"""The simulation summary's trade results on a run small enough to compute by hand."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from actors.messages import GateDecided, SymbolTransition
from config.settings import Settings
from simulation.monitor import InvariantMonitor
from simulation.report import format_summary, render_html, write
from simulation.runner import SimRun
from simulation.summary import summarize
from simulation.tally import EventTally
from simulation.trades import Marker, hold_factor
from storage.ledger import FillRow
from tests.test_trade_results import fill

H = 3600.0
T = 1_795_651_200.0
FACTOR = 0.999**2  # fee 0.1 % on the buy and on the sale, no slippage


def at(symbol: str, side: str, amount: float, price: float, fee: float, hour: float) -> FillRow:
    return fill(side, amount, price, fee, T + hour * H, symbol=symbol)


def hand_made_run() -> tuple[SimRun, Settings]:
    """One day of hourly candles. X: 100 -> 110, two round trips. Y lists at noon: 10 -> 9."""
    x = [(T + h * H, 100 + h * 10 / 24, 100 + (h + 1) * 10 / 24) for h in range(24)]
    y = [(T + h * H, 10.0 if h == 12 else 9.5, 9.5) for h in range(12, 24)]
    y[-1] = (y[-1][0], 9.5, 9.0)
    fills = [
        at("X/USDT", "buy", 1.0, 100.0, 0.10, 1),
        at("X/USDT", "sell", 1.0, 110.0, 0.11, 3),  # 110 - 0.11 - 100.10 = +9.79
        at("X/USDT", "buy", 2.0, 105.0, 0.21, 5),
        at("X/USDT", "sell", 2.0, 104.0, 0.208, 6),  # 208 - 0.208 - 210.21 = -2.418
        at("Y/USDT", "buy", 1.0, 10.0, 0.01, 13),  # still held at the end
    ]
    tally = EventTally()
    for event in (
        SymbolTransition(at=T, symbol="X/USDT", old="NEW", new="ACTIVE", reason="model"),
        GateDecided(at=T, symbol="X/USDT", promoted=True, version="v000001"),
        SymbolTransition(at=T + 12 * H, symbol="Y/USDT", old="NEW", new="TRAINING", reason="-"),
        GateDecided(at=T + 12 * H, symbol="Y/USDT", promoted=False, reasons=("AUC 0.49 < 0.5",)),
        SymbolTransition(at=T + 12 * H, symbol="Y/USDT", old="TRAINING", new="NO_EDGE", reason="-"),
    ):
        tally.observe(event)
    sim = SimRun(
        start=T,
        end=T + 24 * H,
        wall_seconds=1.0,
        steps=1,
        stopped=None,
        monitor=InvariantMonitor(coverage_interval_s=300),
        tally=tally,
        equity=[(T, 10_000.0), (T + 12 * H, 10_005.0), (T + 24 * H, 10_007.0)],
        final_equity=10_007.0,
        orders=[],
        last_prices={},
        final_states={"X/USDT": "ACTIVE", "Y/USDT": "NO_EDGE"},
        fills=fills,
        prices={"X/USDT": x, "Y/USDT": y},
    )
    settings = msgspec.convert(
        {"timeframe": "1h", "exchange": {"fee_rate": 0.001, "slippage_bps": 0.0}}, type=Settings
    )
    return sim, settings


def test_round_trips_fees_and_buy_and_hold_by_hand(tmp_path: Path) -> None:
    sim, settings = hand_made_run()
    s = summarize(sim, settings, seed=7, pool="thread", workers=1, training_note="")
    assert s.round_trips == 2 and s.win_rate == 0.5
    assert s.fees_quote == pytest.approx(0.10 + 0.11 + 0.21 + 0.208 + 0.01)
    assert s.net_pnl == pytest.approx(9.79 - 2.418)
    assert s.trades_per_day == 5 and s.return_pct == pytest.approx(0.07)
    x, y = s.symbols["X/USDT"], s.symbols["Y/USDT"]
    assert (x.round_trips, x.wins, x.trades_per_day) == (2, 1, 4)
    assert x.fees_quote == pytest.approx(0.638 - 0.01) and x.net_pnl == pytest.approx(7.372)
    assert (y.round_trips, y.fees_quote, y.net_pnl) == (0, pytest.approx(0.01), 0.0)
    # held from the first open of the run to the last close, a fee each way
    assert x.buy_hold_return_pct == pytest.approx(100 * (FACTOR * 1.1 - 1), abs=1e-4)
    assert y.buy_hold_return_pct == pytest.approx(100 * (FACTOR * 0.9 - 1), abs=1e-4)
    assert s.buy_hold_return_pct == pytest.approx(100 * (FACTOR - 1), abs=1e-4)
    # the balance in equal shares: Y is cash until it lists at noon
    assert s.buy_hold_curve == [
        (0.0, pytest.approx(10_000 * (FACTOR + 1) / 2)),
        (12.0, pytest.approx(10_000 * (FACTOR * x_close(sim, 12) / 100 + FACTOR) / 2)),
        (24.0, pytest.approx(10_000 * FACTOR)),
    ]
    assert x.trades == [
        Marker(1.0, "buy", 100.0, None),
        Marker(3.0, "sell", 110.0, pytest.approx(9.79)),  # type: ignore[arg-type]
        Marker(5.0, "buy", 105.0, None),
        Marker(6.0, "sell", 104.0, pytest.approx(-2.418)),  # type: ignore[arg-type]
    ]
    assert x.prices[0] == (1.0, sim.prices["X/USDT"][0][2]) and x.prices[-1] == (24.0, 110.0)
    assert x.gate is not None and (x.gate.promoted, x.gate.version) == (True, "v000001")
    assert y.gate is not None and (y.gate.promoted, y.gate.reasons) == (False, ["AUC 0.49 < 0.5"])
    assert y.rejections == [12.0]
    # what the files and the digest say
    json_path, html_path = write(tmp_path, s)
    decoded = msgspec.json.decode(json_path.read_bytes())
    wanted = {"fees_quote", "round_trips", "win_rate", "buy_hold_return_pct", "trades_per_day"}
    assert wanted <= set(decoded)
    per_symbol = {"fees_quote", "round_trips", "net_pnl", "buy_hold_return_pct", "gate"}
    assert per_symbol <= set(decoded["symbols"]["Y/USDT"])
    assert decoded["symbols"]["Y/USDT"]["gate"]["reasons"] == ["AUC 0.49 < 0.5"]
    assert msgspec.json.decode(json_path.read_bytes(), type=type(s)) == s
    digest = format_summary(s)
    assert "round_trips: 2 (win rate 50.0%), net_pnl +7.37 after fees_quote 0.64" in digest
    assert "buy_hold_return_pct: -0.20%" in digest
    assert "rejected: AUC 0.49 < 0.5" in digest and "promoted v000001" in digest
    page = html_path.read_text()
    assert page.count('src="data:image/png;base64,') == 3
    assert "Fees paid</th><td>0.64" in page and "Buy and hold</th><td>-0.20%" in page
    assert render_html(s) == page


def x_close(sim: SimRun, hour: int) -> float:
    """X's close of the candle that ended at `hour`."""
    return sim.prices["X/USDT"][hour - 1][2]


def test_holding_costs_a_fee_and_the_slippage_each_way() -> None:
    assert hold_factor(0.001, 0.0) == pytest.approx(0.998001)
    assert hold_factor(0.0, 5.0) == pytest.approx(0.9995 / 1.0005)
