"""A model the promotion gate rejects, through the whole actor system on virtual time.

The gate itself (walk-forward trading, thresholds) is models.training's; here a
training pool stands for it: it trains for real and then says "no edge", as the
gate does for a symbol without one. What is tested is what the bot does with
that verdict: the symbol goes NO_EDGE, the store keeps the model as rejected and
never loads it, and the seed's loop does not come back (a NO_EDGE symbol is
retrained only after new data or an admin retrain, never because a tick ran).
"""

from __future__ import annotations

import json
from concurrent.futures import Future
from itertools import pairwise
from pathlib import Path

import msgspec
import pytest

from actors.base import Runtime
from actors.messages import (
    Event,
    GateDecided,
    GetModels,
    GetSymbols,
    ModelsReloaded,
    ModelsUpdated,
    OrderPlaced,
    PublishFailed,
    PublishModel,
    RetrainSymbol,
    SignalProduced,
    SymbolStates,
    SymbolTransition,
    TrainerFinished,
    TrainerStarted,
)
from actors.model_store import ModelStoreActor
from admin.token import TOKEN_ENV
from models import rejected
from models.artifacts import new_staging_dir
from models.pool import TrainingPool
from models.training import TrainJob, TrainResult
from policy.lifecycle import DAY_S, SymbolRecord, SymbolState
from simulation.runner import InvariantMonitor
from storage.db import RejectedModels, SymbolStore
from supervisor import main
from tests.admin_client import TOKEN, AdminBot
from tests.harness import T0, Bot, Recorder, new_clock, settle, stage_model

REASONS = ("net return -0.35 % <= 0 % in 3 of 3 folds", "AUC 0.497 < 0.5")


PASS_ANY = {"min_net_return_pct": -100.0, "min_auc": 0.0}


class NoEdgePool(TrainingPool):
    """Trains for real, then the gate's verdict is "no edge" for the symbols in `reject`."""

    def __init__(self, reject: set[str]) -> None:
        super().__init__(workers=1, kind="thread")
        self.reject = reject

    def submit(self, job: TrainJob) -> Future[TrainResult]:
        inner = super().submit(job)
        if job.symbol not in self.reject:
            return inner
        outer: Future[TrainResult] = Future()

        def relay(done: Future[TrainResult]) -> None:
            error = done.exception()
            if error is not None:
                outer.set_exception(error)
            else:
                verdict = {"promoted": False, "gate_reasons": REASONS}
                outer.set_result(msgspec.structs.replace(done.result(), **verdict))

        inner.add_done_callback(relay)
        return outer


def no_edge_bot(
    bots: list[Bot], tmp_path: Path, symbols: list[str], reject: set[str], **sections: object
) -> Bot:
    # the real gate lets every model through here; NoEdgePool alone decides who has no edge
    sections.setdefault("promotion", PASS_ANY)
    bot = Bot(tmp_path, symbols, pool=NoEdgePool(reject), **sections)
    bots.append(bot)
    return bot


def record_of(bot: Bot, symbol: str) -> SymbolRecord:
    reply: SymbolStates = bot.ask("coverage", GetSymbols())
    return next(r for r in reply.records if r.symbol == symbol)


def run_until(bot: Bot, end: float) -> None:
    """Deliver every timer due before `end`, settling after each (as the simulator does)."""
    while (due := bot.clock.next_due()) is not None and due < end:
        bot.clock.advance_to(due)
        bot.settle()


def test_a_rejected_model_is_kept_aside_and_its_symbol_waits_in_no_edge(
    bots: list[Bot], tmp_path: Path
) -> None:
    bot = no_edge_bot(bots, tmp_path, ["BTC/USDT", "ETH/USDT"], reject={"BTC/USDT"}).start()
    btc = record_of(bot, "BTC/USDT")
    assert btc.state is SymbolState.NO_EDGE and btc.gate_reasons == REASONS
    assert btc.retry_at is not None and T0 + DAY_S - 60 <= btc.retry_at <= T0 + DAY_S
    assert btc.reason.startswith("no edge: net return -0.35 % <= 0 % in 3 of 3 folds; AUC 0.497")
    assert "(1 day of new candles) or on admin 'retrain'" in btc.reason
    assert record_of(bot, "ETH/USDT").state is SymbolState.ACTIVE
    # the store never loaded it, and it is no version: only ETH's model was published
    models: ModelsUpdated = bot.ask("model_store", GetModels())
    assert set(models.models) == {"ETH/USDT"}
    assert [r.symbols for r in bot.events.of(ModelsReloaded)] == [(), ("ETH/USDT",)]
    models_dir = Path(bot.settings.data_dir) / "models"
    kept = rejected.kept(models_dir, "BTC/USDT")
    assert len(kept) == 1 and (kept[0] / "manifest.json").exists()
    assert not list((models_dir / ".staging").iterdir())
    # the database: the attempt and the model, with the reasons
    db = bot.system.db
    assert [a.outcome for a in SymbolStore(db).attempts("BTC/USDT")] == ["rejected"]
    (row,) = RejectedModels(db).rejected("BTC/USDT")
    assert row.reasons == list(REASONS) and row.path == str(kept[0])
    verdicts = {(g.symbol, g.promoted, g.reasons) for g in bot.events.of(GateDecided)}
    assert verdicts == {("BTC/USDT", False, REASONS), ("ETH/USDT", True, ())}
    # an hour of candles: BTC never signals, never trades
    bot.run(3600, step=300)
    assert {s.symbol for s in bot.events.of(SignalProduced)} == {"ETH/USDT"}
    assert "BTC/USDT" not in {o.symbol for o in bot.events.of(OrderPlaced)}


def test_no_edge_survives_a_restart(bots: list[Bot], tmp_path: Path) -> None:
    first = no_edge_bot(bots, tmp_path, ["BTC/USDT"], reject={"BTC/USDT"}).start()
    before = record_of(first, "BTC/USDT")
    first.stop()
    bots.remove(first)
    again = no_edge_bot(bots, tmp_path, ["BTC/USDT"], reject=set(), at=T0 + 3600).start()
    assert record_of(again, "BTC/USDT") == before
    assert again.events.of(TrainerStarted) == []  # the restart is no new data


def test_seven_days_without_an_edge_train_once_a_day_not_once_a_tick(
    bots: list[Bot], tmp_path: Path
) -> None:
    # The seed's loop, had it come back: a training on every 300 s coverage tick, 2,016 a week.
    bot = no_edge_bot(
        bots,
        tmp_path,
        ["BTC/USDT"],
        reject={"BTC/USDT"},
        promotion={"retry_after_days": 1.0},
        heartbeat_s=86_400,
        health_s=86_400,
        timeframe="15m",
        training={"window_days": 25},  # 2,400 candles of 15 minutes
    ).start()
    run_until(bot, T0 + 7 * DAY_S)
    starts = [e.at for e in bot.events.of(TrainerStarted)]
    assert 1 < len(starts) <= 1 + 7 / 1.0
    assert all(b - a >= DAY_S - 15 * 60 for a, b in pairwise(starts))
    entered = [e.new for e in bot.events.of(SymbolTransition) if e.symbol == "BTC/USDT"]
    assert entered == ["TRAINING", "NO_EDGE"] * len(starts)
    # an admin asks: it trains at once, whatever the retry time
    assert bot.ask("coverage", RetrainSymbol(symbol="BTC/USDT")).ok
    bot.settle()
    assert len(bot.events.of(TrainerStarted)) == len(starts) + 1
    assert record_of(bot, "BTC/USDT").state is SymbolState.NO_EDGE


def test_the_shell_says_why_a_symbol_is_not_traded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    running = AdminBot(
        tmp_path, ["BTC/USDT", "ETH/USDT"], pool=NoEdgePool({"BTC/USDT"}), promotion=PASS_ANY
    )
    try:
        settings = tmp_path / "settings.yaml"
        settings.write_text(f"admin: {{port: {running.server.port}}}\n")
        assert main(["shell", "--settings", str(settings), "-c", "symbols"]) == 0
        out = capsys.readouterr().out
        btc = next(line for line in out.splitlines() if line.startswith("BTC/USDT"))
        assert btc.split()[:2] == ["BTC/USDT", "NO_EDGE"]
        assert "2026-11-26 23:59  -        no edge: net return -0.35 % <= 0 % in 3 of 3" in btc
        assert btc.endswith("2026-11-26 23:59 UTC (1 day of new candles) or on admin 'retrain'")
        assert main(["shell", "--settings", str(settings), "-c", "status"]) == 0
        status = capsys.readouterr().out
        assert "Trades: 0 round trips, win rate -, fees paid 0.00 USDT" in status
        assert "BTC/USDT  NO_EDGE" in status
    finally:
        running.stop()


def test_rejected_folders_are_named_by_symbol_and_time_and_only_the_newest_kept(
    tmp_path: Path,
) -> None:
    models_dir = tmp_path / "models"
    for n in range(rejected.KEEP_PER_SYMBOL + 2):
        rejected.keep(models_dir, new_staging_dir(models_dir), "BTC/USDT", 1000 + n)
    rejected.keep(models_dir, new_staging_dir(models_dir), "BTC/USDT", 1006)  # same time
    rejected.keep(models_dir, new_staging_dir(models_dir), "BTC/USDT:USDT", 5)
    names = [p.name for p in rejected.kept(models_dir, "BTC/USDT")]
    assert names == [
        "BTC-USDT-1003",
        "BTC-USDT-1004",
        "BTC-USDT-1005",
        "BTC-USDT-1006",
        "BTC-USDT-1006.2",
    ]
    assert [p.name for p in rejected.kept(models_dir, "BTC/USDT:USDT")] == ["BTC-USDT-USDT-5"]
    assert not list((models_dir / ".staging").iterdir())


def test_the_store_never_publishes_a_model_its_manifest_calls_rejected(tmp_path: Path) -> None:
    models_dir = tmp_path / "models"
    staging = stage_model(models_dir, "ETH/USDT")
    manifest = json.loads((staging / "manifest.json").read_text())
    manifest["gate"] = {"promoted": False, "reasons": ["AUC 0.49 < 0.5"]}
    (staging / "manifest.json").write_text(json.dumps(manifest))
    runtime = Runtime()
    store = ModelStoreActor.start(clock=new_clock(), models_dir=models_dir, runtime=runtime)
    reply_to = Recorder()
    store.tell(PublishModel(symbol="ETH/USDT", staging_dir=str(staging), reply_to=reply_to))
    settle(runtime)
    (failed,) = reply_to.of(PublishFailed)
    assert failed.error == "its manifest says the promotion gate rejected it (AUC 0.49 < 0.5)"
    assert store.ask(GetModels()).models == {} and not (models_dir / "v000001").exists()
    # a gate that says promoted (or no gate at all, as before it existed) publishes
    manifest["gate"] = {"promoted": True, "reasons": []}
    (staging / "manifest.json").write_text(json.dumps(manifest))
    assert rejected.gate_refusal(staging) is None


def test_the_simulation_monitor_catches_a_retrain_before_new_data() -> None:
    def run(*events: Event) -> list[str]:
        monitor = InvariantMonitor(coverage_interval_s=300, retry_after_s=DAY_S)
        for event in events:
            monitor.observe(event)
        return monitor.violations

    def trainer(at: float) -> TrainerStarted:
        return TrainerStarted(at=at, symbol="X/USDT")

    def training(at: float) -> SymbolTransition:
        return SymbolTransition(at=at, symbol="X/USDT", old="NO_EDGE", new="TRAINING", reason="")

    no_edge = GateDecided(at=T0 + 60, symbol="X/USDT", promoted=False, window_end=T0)
    finished = TrainerFinished(at=T0 + 60, symbol="X/USDT", ok=True, detail="rejected")
    first = (training(T0), trainer(T0), no_edge, finished)
    assert run(*first, training(T0 + DAY_S), trainer(T0 + DAY_S)) == []
    (early,) = run(*first, training(T0 + 360), trainer(T0 + 360))
    assert "X/USDT: trained again 0.10 h of candles after its model was rejected < 24 h" in early
    promoted = GateDecided(at=T0 + 400, symbol="X/USDT", promoted=True, version="v000001")
    assert run(*first, promoted, training(T0 + 500), trainer(T0 + 500)) == []
