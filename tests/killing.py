"""The kill -9 loop: a paper-trading bot killed at random moments, restarted, checked.

Used by `tests/test_kill.py` (20 iterations) and `benchmarks/soak_kill.py` (as many
as asked). The bot is the real one, `supervisor.run`, in its own process
(`python -m tests.killing bot ...`), with two changes that only make it quick to test:

- its clock runs fast-forward (`RealClock(speed=...)`): a 1m candle every half
  second of real time, and every restarted process continues the same timeline;
- the paper exchange answers `create_order` after a delay each way (network
  latency), so a kill often lands while an order is on the wire: either before the
  exchange recorded it (after the restart it must come back "never sent") or
  after (it must come back "filled", and never be sent a second time).

Its settings: three old symbols with models trained beforehand (no training in the
loop), thresholds that trade on every candle (enter on one, exit on the next).

After every kill, with no bot running, the database and the paper exchange's state
file are read as they are and checked (`check`):
- every order on the exchange has a ledger row, same symbol and side (none lost);
- every ledger order that reached a final state on the exchange is there with the
  same fill, and no order marked REJECTED / never sent is on the exchange (none
  sent twice: a resent client id would show up there);
- each symbol's base balance on the exchange equals the ledger's position plus the
  orders still on the wire that the exchange already filled, and never exceeds one
  entry (no doubled position).
After each restart, the bot's own reconciliation line must report 0 mismatches and
resolve exactly the orders that were on the wire at the kill before.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.botproc import BotProcess

SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")
T0 = 1_795_651_200.0  # tests.harness.T0: the timeline starts here, so the market is the same
SPEED = 120.0  # a 1m candle every 0.5 s
LATENCY_MS = 40.0  # each way, on create_order
RECONCILED = re.compile(
    r"Reconciled with paper: (\d+) orders? resolved(?: \(([^)]*)\))?.*, (\d+) mismatch"
)


class InvariantBroken(AssertionError):
    """The files after a kill break a promise: nothing lost, nothing doubled."""


# --- preparing a data folder ------------------------------------------------------------


def pretrain(models_dir: Path) -> None:
    """One small real model per symbol, published as the store would (once per test session)."""
    from models import artifacts
    from tests.harness import stage_model

    for i, symbol in enumerate(SYMBOLS):
        artifacts.publish(models_dir, stage_model(models_dir, symbol, trained_at=T0, seed=i + 1))


def prepare(data_dir: Path, models_template: Path) -> Path:
    """A data folder with the pre-trained models and a settings file; returns the settings path."""
    shutil.copytree(models_template, data_dir / "models", ignore=shutil.ignore_patterns(".*"))
    settings = data_dir / "settings.yaml"
    symbols = ", ".join(SYMBOLS)
    settings.write_text(
        f"""data_dir: {data_dir}
universe: {{mode: static, symbols: [{symbols}]}}
training: {{window_days: 2, max_iter: 10}}
trading: {{entry_threshold: 0.0, exit_threshold: 1.0, max_open_positions: 10, candle_delay_s: 1}}
admin: {{port: 0}}
"""
    )
    return settings


# --- reading the files of a stopped bot ------------------------------------------------


@dataclass
class Snapshot:
    ledger: dict[str, dict[str, Any]]  # client id -> row
    positions: dict[str, float]
    exchange: dict[str, dict[str, Any]]  # client id -> order
    balances: dict[str, float]  # asset -> free + used

    def in_flight(self) -> set[str]:
        return {c for c, r in self.ledger.items() if r["state"] in ("NEW", "SENT")}


def read_snapshot(data_dir: Path) -> Snapshot:
    ledger: dict[str, dict[str, Any]] = {}
    positions: dict[str, float] = {}
    db_path = data_dir / "tradeactors.db"
    if db_path.exists():
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)  # no checkpoint by us
        conn.row_factory = sqlite3.Row
        try:
            ledger = {r["client_order_id"]: dict(r) for r in conn.execute("SELECT * FROM orders")}
            positions = {
                r["symbol"]: r["amount"]
                for r in conn.execute("SELECT symbol, amount FROM positions")
            }
        finally:
            conn.close()
    exchange: dict[str, dict[str, Any]] = {}
    balances: dict[str, float] = {}
    state_path = data_dir / "paper" / "state.json"
    if state_path.exists():
        state = json.loads(state_path.read_bytes())
        exchange = state["orders"]
        balances = {a: f["free"] + f["used"] for a, f in state["balances"].items()}
    return Snapshot(ledger, positions, exchange, balances)


def check(snap: Snapshot) -> None:
    """The promises that hold at any instant a bot can be killed; raises InvariantBroken."""
    problems: list[str] = []
    for cid, order in snap.exchange.items():
        row = snap.ledger.get(cid)
        if row is None:
            problems.append(f"order {cid} ({order['symbol']}) on the exchange has no ledger row")
        elif (row["symbol"], row["side"]) != (order["symbol"], order["side"]):
            problems.append(f"order {cid}: ledger {row['side']} {row['symbol']} vs exchange")
    for cid, row in snap.ledger.items():
        on_exchange = snap.exchange.get(cid)
        if row["state"] in ("FILLED", "OPEN", "PARTIAL", "CANCELED"):
            if on_exchange is None:
                problems.append(f"ledger {row['state']} order {cid} is not on the exchange")
            elif abs(on_exchange["filled"] - row["filled"]) > 1e-12:
                problems.append(f"order {cid}: filled {row['filled']} vs {on_exchange['filled']}")
        elif row["state"] == "REJECTED" and on_exchange is not None:
            problems.append(f"order {cid} is REJECTED ({row['error']}) but on the exchange")
    in_flight = snap.in_flight()
    for symbol in SYMBOLS:
        base = symbol.split("/")[0]
        held = snap.balances.get(base, 0.0)
        expected = snap.positions.get(symbol, 0.0)
        for cid in in_flight:
            order = snap.exchange.get(cid)
            if order is not None and order["symbol"] == symbol:
                expected += order["filled"] * (1 if order["side"] == "buy" else -1)
        if abs(held - expected) > 1e-9 * max(1.0, held):
            problems.append(
                f"{symbol}: exchange holds {held!r} {base}, ledger position + orders on the "
                f"wire {expected!r}"
            )
        entries = [
            o["filled"]
            for o in snap.exchange.values()
            if o["symbol"] == symbol and o["side"] == "buy"
        ]
        if entries and held > max(entries) * (1 + 1e-9):
            problems.append(f"{symbol}: holds {held} {base}, more than one entry ({max(entries)})")
    if problems:
        raise InvariantBroken("; ".join(problems))


# --- one bot process ----------------------------------------------------------------------


class KillableBot(BotProcess):
    """The bot on a fast clock with a slow paper exchange, in its own process group."""

    def __init__(self, settings: Path, wall_start: float, speed: float, latency_ms: float):
        self.started_at = time.monotonic()
        argv = ["-m", "tests.killing", "bot", "--settings", str(settings)]
        argv += ["--wall-start", repr(wall_start), "--speed", repr(speed)]
        argv += ["--latency-ms", repr(latency_ms)]
        super().__init__(settings, argv=argv, new_session=True)

    def _read(self) -> None:
        super()._read()
        with self._cond:
            self.lines.append("")  # EOF marker: the process is gone
            self._cond.notify_all()

    def line_index(self, pattern: str, timeout: float, after: int = 0) -> int | None:
        """Index of the first line from `after` on containing `pattern`; None at EOF or timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            i = after
            while True:
                while i < len(self.lines):
                    if pattern in self.lines[i]:
                        return i
                    if self.lines[i] == "":
                        return None
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(timeout=left)

    def kill(self) -> None:
        """kill -9 of the bot process (then of anything it started)."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._reap()

    def terminate(self, timeout: float = 60.0) -> int:
        try:
            return self.stop(timeout)
        finally:
            self._reap()

    def _reap(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # a worker or forkserver left behind
        self._reader.join(timeout=10)


# --- the loop -------------------------------------------------------------------------------


@dataclass
class Row:
    iteration: int
    phase: str  # "startup": killed at a random moment after spawn; "trading": after reconciling
    alive_s: float
    reconciled: bool
    resolved: dict[str, int] = field(default_factory=dict)
    mismatches: int = 0
    new_orders: int = 0  # ledger rows this process added
    unresolved_at_kill: int = 0  # NEW/SENT rows after the kill (on the wire, or left from before)


class KillLoop:
    """Kill, check, restart, again, on one data folder."""

    def __init__(
        self,
        data_dir: Path,
        models_template: Path,
        seed: int,
        speed: float = SPEED,
        latency_ms: float = LATENCY_MS,
    ) -> None:
        self.data_dir = data_dir
        self.settings = prepare(data_dir, models_template)
        self.random = random.Random(seed)
        self.speed = speed
        self.latency_ms = latency_ms
        self.wall_start = time.time()
        self.pending: set[str] = set()  # on the wire at the last kill, not reconciled since
        self.rows: list[Row] = []

    def _spawn(self) -> KillableBot:
        return KillableBot(self.settings, self.wall_start, self.speed, self.latency_ms)

    def iteration(self) -> Row:
        before = read_snapshot(self.data_dir)
        bot = self._spawn()
        phase = "startup" if self.random.random() < 0.25 else "trading"
        try:
            if phase == "startup":
                time.sleep(self.random.uniform(0.3, 2.5))  # a random moment of the start
            else:
                if bot.line_index("Reconciled with paper", timeout=60) is None:
                    raise InvariantBroken("the bot did not reconcile:\n" + bot.text)
                time.sleep(self.random.uniform(0.0, 1.2))  # a random moment of trading
        finally:
            bot.kill()
        row = Row(len(self.rows) + 1, phase, time.monotonic() - bot.started_at, False)
        self._after(bot, before, row)
        return row

    def final(self) -> Row:
        """A last run stopped cleanly: nothing on the wire, positions equal balances exactly."""
        before = read_snapshot(self.data_dir)
        bot = self._spawn()
        try:
            at = bot.line_index("Reconciled with paper", timeout=60)
            if at is None or bot.line_index(", order ta", timeout=60, after=at) is None:
                raise InvariantBroken("the final run did not reconcile and trade:\n" + bot.text)
        finally:
            code = bot.terminate()
        if code != 0:
            raise InvariantBroken(f"clean stop exited {code}:\n{bot.text}")
        row = Row(len(self.rows) + 1, "final", time.monotonic() - bot.started_at, False)
        self._after(bot, before, row)
        snap = read_snapshot(self.data_dir)
        if snap.in_flight():
            raise InvariantBroken(f"orders left on the wire by a clean stop: {snap.in_flight()}")
        return row

    def _after(self, bot: KillableBot, before: Snapshot, row: Row) -> None:
        text = bot.text
        if "Traceback" in text or " ERROR " in text:
            raise InvariantBroken(f"iteration {row.iteration} logged an error:\n{text}")
        snap = read_snapshot(self.data_dir)
        check(snap)
        match = RECONCILED.search(text)
        if match:
            row.reconciled = True
            row.mismatches = int(match.group(3))
            for part in (match.group(2) or "").split(", "):
                if part:
                    n, _, outcome = part.partition(" ")
                    row.resolved[outcome] = int(n)
            if row.mismatches:
                raise InvariantBroken(f"reconciliation found mismatches:\n{text}")
            resolved = sum(row.resolved.values())
            if resolved != len(self.pending):
                raise InvariantBroken(
                    f"{len(self.pending)} orders were on the wire at the last kill, the restart "
                    f"resolved {resolved}:\n{text}"
                )
            still = {c for c in self.pending if snap.ledger[c]["state"] in ("NEW", "SENT")}
            if still:
                raise InvariantBroken(f"orders reconciled but still unresolved: {still}")
        # what the next start must resolve: also right when this process was killed after
        # resolving some orders but before it logged its reconciliation line
        self.pending = snap.in_flight()
        row.new_orders = len(snap.ledger) - len(before.ledger)
        row.unresolved_at_kill = len(snap.in_flight())
        self.rows.append(row)


def table(rows: list[Row]) -> str:
    """The soak report: one line per iteration and the totals."""
    head = f"{'iter':>4} {'phase':<8} {'alive s':>7} {'orders':>6} {'unresolved':>10} "
    head += f"{'reconciled':<10} {'filled':>6} {'never sent':>10} {'mismatches':>10}"
    lines = [head]
    for r in rows:
        lines.append(
            f"{r.iteration:>4} {r.phase:<8} {r.alive_s:>7.2f} {r.new_orders:>6} "
            f"{r.unresolved_at_kill:>10} {'yes' if r.reconciled else 'no':<10} "
            f"{r.resolved.get('filled', 0):>6} {r.resolved.get('never sent', 0):>10} "
            f"{r.mismatches:>10}"
        )
    total = (
        f"total: {len(rows)} runs, {sum(r.new_orders for r in rows)} orders, "
        f"{sum(r.unresolved_at_kill for r in rows)} unresolved after a kill, "
        f"{sum(r.resolved.get('filled', 0) for r in rows)} resolved filled, "
        f"{sum(r.resolved.get('never sent', 0) for r in rows)} resolved never sent, "
        f"{sum(r.mismatches for r in rows)} mismatches"
    )
    return "\n".join([*lines, total])


# --- the bot process itself ----------------------------------------------------------------


def _bot(args: argparse.Namespace) -> int:
    from actors.clock import RealClock
    from exchange.paper import PaperExchange

    latency = args.latency_ms / 1000
    create_order = PaperExchange.create_order

    def on_the_wire(self: PaperExchange, request: Any) -> Any:
        time.sleep(latency)  # the request travels: a kill now and the exchange never sees it
        order = create_order(self, request)
        time.sleep(latency)  # the answer travels: a kill now and only the exchange knows
        return order

    PaperExchange.create_order = on_the_wire  # type: ignore[method-assign]
    import supervisor

    clock = RealClock(speed=args.speed, start=T0, wall_start=args.wall_start)
    return supervisor.run(args.settings, clock=clock)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.killing")
    sub = parser.add_subparsers(dest="command", required=True)
    bot = sub.add_parser("bot", help="run the bot on a fast clock with a slow paper exchange")
    bot.add_argument("--settings", required=True)
    bot.add_argument("--wall-start", type=float, required=True)
    bot.add_argument("--speed", type=float, default=SPEED)
    bot.add_argument("--latency-ms", type=float, default=LATENCY_MS)
    args = parser.parse_args(argv)
    return _bot(args)


if __name__ == "__main__":
    sys.exit(main())
