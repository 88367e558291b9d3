"""The kill -9 loop: a trading bot killed at random moments, restarted, checked.

Used by `tests/test_kill.py` (20 iterations on paper, 12 through ccxt) and
`benchmarks/soak_kill.py` (as many as asked). The bot is the real one,
`supervisor.run`, in its own process (`python -m tests.killing bot ...`), with two
changes that only make it quick to test:

- its clock runs fast-forward (`RealClock(speed=...)`): a 1m candle every half
  second of real time, and every restarted process continues the same timeline;
- the exchange answers `create_order` after a delay each way (network latency),
  so a kill often lands while an order is on the wire: either before the exchange
  recorded it (after the restart it must come back "never sent") or after (it must
  come back "filled", and never be sent a second time).

Two exchanges (`Venue`): the embedded paper exchange (its state file in the data
folder; the latency is added in the bot process), and the real ccxt client
(`exchange.kind: ccxt` with `base_url`) against `tests.fake_binance.FakeBinance`
on 127.0.0.1, served from the test process, so its orders and balances survive
every kill (the latency is the fake's `delay` on POST /api/v3/order; its market
runs on the bot's fast clock, while signed requests are checked on real time).
The fake can tell when an order is on the wire, so there every third kill lands
exactly then instead of at a random moment.

Its settings: three old symbols with models trained beforehand (no training in the
loop), thresholds that trade on every candle (enter on one, exit on the next).

After every kill, with no bot running, the database and the exchange's state are
read as they are (once the fake has answered every request still on the wire) and
checked (`check`):
- every order on the exchange has a ledger row, same symbol and side (none lost);
- every ledger order that reached a final state on the exchange is there with the
  same fill, no order marked REJECTED / never sent is on the exchange, and the
  exchange never received two orders with one client id (none sent twice);
- each symbol's base balance on the exchange equals the ledger's position plus the
  orders still on the wire that the exchange already filled, and never exceeds one
  entry (no doubled position). On Binance a buy's fee is taken in the coin bought
  and a sale is rounded down to the amount step, so there the balance may be short
  by the fee (as much as reconciliation allows, `FEE_SHORTFALL` of an entry) and
  may keep a remainder below one amount step.
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

from policy.reconcile import FEE_SHORTFALL
from tests.botproc import BotProcess
from tests.fake_binance import API_KEY, API_SECRET, FakeBinance

SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")
T0 = 1_795_651_200.0  # tests.harness.T0: the timeline starts here, so the market is the same
SPEED = 120.0  # a 1m candle every 0.5 s
LATENCY_MS = 40.0  # each way, on create_order
RECONCILED = re.compile(
    r"Reconciled with \S+: (\d+) orders? resolved(?: \(([^)]*)\))?.*, (\d+) mismatch"
)
EXCHANGES = ("paper", "ccxt")


class InvariantBroken(AssertionError):
    """The files after a kill break a promise: nothing lost, nothing doubled."""


# --- preparing a data folder ------------------------------------------------------------


def pretrain(models_dir: Path) -> None:
    """One small real model per symbol, published as the store would (once per test session)."""
    from models import artifacts
    from tests.harness import stage_model

    for i, symbol in enumerate(SYMBOLS):
        artifacts.publish(models_dir, stage_model(models_dir, symbol, trained_at=T0, seed=i + 1))


def prepare(data_dir: Path, models_template: Path, exchange: str = "") -> Path:
    """A data folder with the pre-trained models and a settings file; returns the settings path.

    `exchange`: the settings' `exchange:` line (default: the paper exchange)."""
    shutil.copytree(models_template, data_dir / "models", ignore=shutil.ignore_patterns(".*"))
    settings = data_dir / "settings.yaml"
    symbols = ", ".join(SYMBOLS)
    settings.write_text(
        f"""data_dir: {data_dir}
universe: {{mode: static, symbols: [{symbols}]}}
training: {{window_days: 2, max_iter: 10}}
trading: {{entry_threshold: 1.0e-9, exit_threshold: 0.0, min_hold_bars: 0, cooldown_bars: 0,
  max_hold_bars: 1, max_open_positions: 10, candle_delay_s: 1}}
admin: {{port: 0}}
{exchange}"""
    )
    return settings


# --- reading the state of a stopped bot -------------------------------------------------


@dataclass
class Snapshot:
    ledger: dict[str, dict[str, Any]]  # client id -> row
    positions: dict[str, float]
    exchange: dict[str, dict[str, Any]]  # client id -> order (symbol, side, filled)
    balances: dict[str, float]  # asset -> free + used
    # client id -> orders the exchange received with it, where more than one
    resent: dict[str, int] = field(default_factory=dict)
    base_fee: float = 0.0  # share of an entry the exchange may keep as a fee in the coin
    steps: dict[str, float] = field(default_factory=dict)  # symbol -> amount step (dust below)

    def in_flight(self) -> set[str]:
        return {c for c, r in self.ledger.items() if r["state"] in ("NEW", "SENT")}


class Venue:
    """The exchange of a kill loop: how the bot is pointed at it and how its state is read."""

    name = "paper"  # as in the bot's "Reconciled with NAME" line
    sees_the_wire = False  # can tell the moment an order is on its way (`on_the_wire`)

    def __init__(self, latency_ms: float) -> None:
        self.bot_latency_ms = latency_ms  # added in the bot process (paper: no network)
        self.latency_s = latency_ms / 1000

    def on_the_wire(self, timeout: float) -> bool:
        raise NotImplementedError("the paper exchange's latency is inside the bot process")

    def settings(self) -> str:
        return ""  # the default: the paper exchange, its state in the data folder

    def env(self) -> dict[str, str]:
        return {}

    def read(self, data_dir: Path, snap: Snapshot) -> None:
        state_path = data_dir / "paper" / "state.json"
        if state_path.exists():
            state = json.loads(state_path.read_bytes())
            snap.exchange = state["orders"]  # keyed by client id: a resend would overwrite
            snap.balances = {a: f["free"] for a, f in state["balances"].items()}

    def close(self) -> None:
        pass


class FakeBinanceVenue(Venue):
    """The real ccxt client against a FakeBinance served from this process (it outlives
    every bot it serves); its market on the bot's fast clock, the latency on its side."""

    name = "binance-sandbox"
    sees_the_wire = True

    def __init__(self, latency_ms: float, speed: float, wall_start: float) -> None:
        super().__init__(0.0)
        self.latency_s = latency_ms / 1000
        self.fake = FakeBinance(
            anchor_ms=int(T0 * 1000),
            market_ms=lambda: int((T0 + (time.time() - wall_start) * speed) * 1000),
        ).start()
        self.fake.delay("/api/v3/order", latency_ms / 1000, latency_ms / 1000, method="POST")

    def settings(self) -> str:
        return (
            f'exchange: {{kind: ccxt, id: binance, mode: sandbox, base_url: "{self.fake.url}", '
            "timeout_ms: 5000}\n"
        )

    def env(self) -> dict[str, str]:
        return {"TRADEACTORS_API_KEY": API_KEY, "TRADEACTORS_API_SECRET": API_SECRET}

    def read(self, data_dir: Path, snap: Snapshot) -> None:
        fake = self.fake
        if not fake.idle(timeout=30):  # a request of the killed bot may still be arriving
            raise InvariantBroken("the fake Binance is still handling a request 30 s on")
        with fake.lock:
            sent: dict[str, int] = {}
            for r in fake.requests:
                if (r.method, r.path) == ("POST", "/api/v3/order"):
                    cid = r.params.get("newClientOrderId", "")
                    sent[cid] = sent.get(cid, 0) + 1
            for o in fake.orders:
                symbol = fake.symbol_of(o.symbol_id)
                if o.client_id in snap.exchange:
                    sent[o.client_id] = max(sent.get(o.client_id, 0), 2)
                snap.exchange[o.client_id] = {
                    "symbol": symbol,
                    "side": o.side.lower(),
                    "filled": float(o.executed),
                    "status": o.status,
                }
            assets = set(fake.balances) | set(fake.locked)
            snap.balances = {
                a: float(fake.balances.get(a, 0) + fake.locked.get(a, 0)) for a in assets
            }
            snap.steps = {s: float(step) for s, (step, _) in fake._filters.items()}
        snap.resent = {c: n for c, n in sent.items() if n > 1}
        snap.base_fee = FEE_SHORTFALL

    def on_the_wire(self, timeout: float) -> bool:
        return self.fake.on_the_wire(timeout)

    def close(self) -> None:
        self.fake.close()


def read_snapshot(data_dir: Path, venue: Venue | None = None) -> Snapshot:
    """The ledger in the data folder and the exchange's state (default: paper) as they are."""
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
    snap = Snapshot(ledger, positions, {}, {})
    (venue or Venue(0.0)).read(data_dir, snap)
    return snap


def check(snap: Snapshot) -> None:
    """The promises that hold at any instant a bot can be killed; raises InvariantBroken."""
    problems: list[str] = []
    for cid, order in snap.exchange.items():
        row = snap.ledger.get(cid)
        if row is None:
            problems.append(f"order {cid} ({order['symbol']}) on the exchange has no ledger row")
        elif (row["symbol"], row["side"]) != (order["symbol"], order["side"]):
            problems.append(f"order {cid}: ledger {row['side']} {row['symbol']} vs exchange")
    for cid, n in snap.resent.items():
        problems.append(f"the exchange received {n} orders with client id {cid}")
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
            wired = snap.exchange.get(cid)
            if wired is not None and wired["symbol"] == symbol:
                expected += wired["filled"] * (1 if wired["side"] == "buy" else -1)
        entries = [
            o["filled"]
            for o in snap.exchange.values()
            if o["symbol"] == symbol and o["side"] == "buy"
        ]
        entry = max(entries, default=0.0)
        dust = snap.steps.get(symbol, 0.0)  # a sale rounded down to the step leaves less
        fee = snap.base_fee * entry  # a buy's fee taken in the coin bought
        eps = 1e-9 * max(1.0, held)
        if not expected - fee - dust - eps <= held <= expected + dust + eps:
            problems.append(
                f"{symbol}: exchange holds {held!r} {base}, ledger position + orders on the "
                f"wire {expected!r}"
                + (f" (fee allowance {fee:.10g}, step {dust:g})" if fee or dust else "")
            )
        if entries and held > entry * (1 + 1e-9) + dust:
            problems.append(f"{symbol}: holds {held} {base}, more than one entry ({entry})")
    if problems:
        raise InvariantBroken("; ".join(problems))


# --- one bot process ----------------------------------------------------------------------


class KillableBot(BotProcess):
    """The bot on a fast clock (with a slow paper exchange), in its own process group."""

    def __init__(
        self,
        settings: Path,
        wall_start: float,
        speed: float,
        latency_ms: float,
        env: dict[str, str] | None = None,
    ):
        self.started_at = time.monotonic()
        argv = ["-m", "tests.killing", "bot", "--settings", str(settings)]
        argv += ["--wall-start", repr(wall_start), "--speed", repr(speed)]
        argv += ["--latency-ms", repr(latency_ms)]
        super().__init__(settings, env=env, argv=argv, new_session=True)

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
    phase: str  # "startup": killed at a random moment after spawn; "trading": after reconciling;
    # "wire": while the exchange holds an order request or its reply (ccxt venue only)
    alive_s: float
    reconciled: bool
    resolved: dict[str, int] = field(default_factory=dict)
    mismatches: int = 0
    new_orders: int = 0  # ledger rows this process added
    unresolved_at_kill: int = 0  # NEW/SENT rows after the kill (on the wire, or left from before)


class KillLoop:
    """Kill, check, restart, again, on one data folder, trading on `exchange`: "paper" or
    "ccxt" (a FakeBinance served from this process until `close()`)."""

    def __init__(
        self,
        data_dir: Path,
        models_template: Path,
        seed: int,
        speed: float = SPEED,
        latency_ms: float = LATENCY_MS,
        exchange: str = "paper",
    ) -> None:
        if exchange not in EXCHANGES:
            raise ValueError(f"exchange {exchange!r}: one of {', '.join(EXCHANGES)}")
        self.data_dir = data_dir
        self.random = random.Random(seed)
        self.speed = speed
        self.wall_start = time.time()
        self.venue = (
            FakeBinanceVenue(latency_ms, speed, self.wall_start)
            if exchange == "ccxt"
            else Venue(latency_ms)
        )
        self.settings = prepare(data_dir, models_template, self.venue.settings())
        self._reconciled = f"Reconciled with {self.venue.name}: "
        self.pending: set[str] = set()  # on the wire at the last kill, not reconciled since
        self.rows: list[Row] = []

    def __enter__(self) -> KillLoop:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.venue.close()

    def snapshot(self) -> Snapshot:
        return read_snapshot(self.data_dir, self.venue)

    def _spawn(self) -> KillableBot:
        return KillableBot(
            self.settings,
            self.wall_start,
            self.speed,
            self.venue.bot_latency_ms,
            env=self.venue.env(),
        )

    def iteration(self) -> Row:
        before = self.snapshot()
        bot = self._spawn()
        phase = "startup" if self.random.random() < 0.25 else "trading"
        if self.venue.sees_the_wire and (len(self.rows) + 1) % 3 == 0:
            phase = "wire"  # every third kill: while an order is surely on the wire
        try:
            if phase == "startup":
                time.sleep(self.random.uniform(0.3, 2.5))  # a random moment of the start
            elif phase == "wire":
                if not self.venue.on_the_wire(timeout=60):
                    raise InvariantBroken("no order went on the wire:\n" + bot.text)
                time.sleep(self.random.uniform(0.0, self.venue.latency_s))  # on its way in or back
            else:
                if bot.line_index(self._reconciled, timeout=60) is None:
                    raise InvariantBroken("the bot did not reconcile:\n" + bot.text)
                time.sleep(self.random.uniform(0.0, 1.2))  # a random moment of trading
        finally:
            bot.kill()
        row = Row(len(self.rows) + 1, phase, time.monotonic() - bot.started_at, False)
        self._after(bot, before, row)
        return row

    def final(self) -> Row:
        """A last run stopped cleanly: nothing on the wire, positions equal balances exactly."""
        before = self.snapshot()
        bot = self._spawn()
        try:
            at = bot.line_index(self._reconciled, timeout=60)
            if at is None or bot.line_index(", order ta", timeout=60, after=at) is None:
                raise InvariantBroken("the final run did not reconcile and trade:\n" + bot.text)
        finally:
            code = bot.terminate()
        if code != 0:
            raise InvariantBroken(f"clean stop exited {code}:\n{bot.text}")
        row = Row(len(self.rows) + 1, "final", time.monotonic() - bot.started_at, False)
        self._after(bot, before, row)
        snap = self.snapshot()
        if snap.in_flight():
            raise InvariantBroken(f"orders left on the wire by a clean stop: {snap.in_flight()}")
        return row

    def _after(self, bot: KillableBot, before: Snapshot, row: Row) -> None:
        text = bot.text
        if "Traceback" in text or " ERROR " in text:
            raise InvariantBroken(f"iteration {row.iteration} logged an error:\n{text}")
        snap = self.snapshot()
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
    import msgspec.yaml

    from actors.clock import RealClock
    from config.settings import Settings
    from exchange.paper import PaperExchange

    latency = args.latency_ms / 1000
    create_order = PaperExchange.create_order

    def on_the_wire(self: PaperExchange, request: Any) -> Any:
        time.sleep(latency)  # the request travels: a kill now and the exchange never sees it
        order = create_order(self, request)
        time.sleep(latency)  # the answer travels: a kill now and only the exchange knows
        return order

    if latency > 0:
        PaperExchange.create_order = on_the_wire  # type: ignore[method-assign]
    import supervisor

    clock = RealClock(speed=args.speed, start=T0, wall_start=args.wall_start)
    # decoded here, past load_settings' rules: its thresholds trade every candle on purpose
    settings = msgspec.yaml.decode(Path(args.settings).read_bytes(), type=Settings)
    return supervisor.run(settings, clock=clock)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.killing")
    sub = parser.add_subparsers(dest="command", required=True)
    bot = sub.add_parser("bot", help="run the bot on a fast clock (a slow paper exchange)")
    bot.add_argument("--settings", required=True)
    bot.add_argument("--wall-start", type=float, required=True)
    bot.add_argument("--speed", type=float, default=SPEED)
    bot.add_argument("--latency-ms", type=float, default=LATENCY_MS)
    args = parser.parse_args(argv)
    return _bot(args)


if __name__ == "__main__":
    sys.exit(main())
