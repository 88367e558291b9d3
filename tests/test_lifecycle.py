"""The lifecycle transition function, directly: examples and properties."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from policy.lifecycle import (
    DAY_S,
    Evaluate,
    Facts,
    LifecyclePolicy,
    ManualBlock,
    ManualRetrain,
    ManualUnblock,
    ModelCovered,
    ModelLost,
    ModelRejected,
    SymbolRecord,
    SymbolState,
    TrainingOutcome,
    step,
)

POLICY = LifecyclePolicy(
    min_history_days=14,
    max_attempts=4,
    retry_base_s=600,
    retry_max_s=6 * 3600,
    max_model_age_s=7 * DAY_S,
    retry_after_s=DAY_S,
)
NOW = 1_795_651_200.0


def facts(
    days: float | None, now: float = NOW, trainer: bool = False, in_universe: bool = True
) -> Facts:
    listed = None if days is None else now - days * DAY_S
    return Facts(now=now, in_universe=in_universe, listed_at=listed, trainer_running=trainer)


def test_young_symbol_is_blocked_with_reason_and_eligibility() -> None:
    result = step(SymbolRecord(symbol="DOGE/USDT"), Evaluate(facts(9.5)), POLICY)
    assert result.record.state is SymbolState.BLOCKED_HISTORY
    assert not result.start_training
    assert result.record.eligible_at == NOW + 4.5 * DAY_S
    assert result.note == (
        "DOGE/USDT: NEW -> BLOCKED_HISTORY (9.5 days of history < 14 minimum; "
        "eligible 2026-11-30 12:00 UTC)"
    )  # never trained: there is no retraining to speak of


def test_blocked_symbol_trains_once_history_is_enough() -> None:
    blocked = step(SymbolRecord(symbol="X"), Evaluate(facts(13.9)), POLICY).record
    later = step(blocked, Evaluate(facts(13.99, now=NOW + 0.09 * DAY_S)), POLICY)
    assert later.record.state is SymbolState.BLOCKED_HISTORY and not later.start_training
    eligible = step(blocked, Evaluate(facts(14.0, now=NOW + 0.1 * DAY_S)), POLICY)
    assert eligible.record.state is SymbolState.TRAINING and eligible.start_training
    assert "history now 14.0 days >= 14 minimum" in (eligible.note or "")


def test_symbol_with_a_model_becomes_active_without_training() -> None:
    record = SymbolRecord(symbol="BTC/USDT", model_version="v000001", model_trained_at=NOW - 3600)
    result = step(record, Evaluate(facts(900)), POLICY)
    assert result.record.state is SymbolState.ACTIVE and not result.start_training


def test_failures_back_off_exponentially_then_block() -> None:
    record = step(SymbolRecord(symbol="X"), Evaluate(facts(100)), POLICY).record
    now, waits = NOW, []
    for attempt in range(1, POLICY.max_attempts + 1):
        assert record.state is SymbolState.TRAINING
        record = step(record, TrainingOutcome(now=now, ok=False, error="boom"), POLICY).record
        if attempt == POLICY.max_attempts:
            break
        assert record.state is SymbolState.RETRY_WAIT
        assert record.next_attempt_at is not None
        waits.append(record.next_attempt_at - now)
        # before the backoff ends: no training
        early = step(record, Evaluate(facts(100, now=record.next_attempt_at - 1)), POLICY)
        assert not early.start_training
        now = record.next_attempt_at
        retry = step(record, Evaluate(facts(100, now=now)), POLICY)
        assert retry.start_training
        record = retry.record
    assert waits == [600, 1200, 2400]
    assert record.state is SymbolState.BLOCKED_FAILED
    assert "training failed 4 times" in record.reason


def test_stale_model_retrains_in_the_background_and_keeps_trading() -> None:
    record = SymbolRecord(
        symbol="BTC/USDT",
        state=SymbolState.ACTIVE,
        model_version="v1",
        model_trained_at=NOW - 8 * DAY_S,
    )
    result = step(record, Evaluate(facts(900)), POLICY)
    assert result.record.state is SymbolState.ACTIVE and result.start_training
    running = step(record, Evaluate(facts(900, trainer=True)), POLICY)
    assert not running.start_training


def test_a_symbol_that_was_training_says_short_history_will_not_trigger_retraining() -> None:
    training = SymbolRecord(symbol="X", state=SymbolState.TRAINING, since=NOW - 60)
    result = step(training, Evaluate(facts(None)), POLICY)  # history unknown: exchange down
    assert result.record.state is SymbolState.BLOCKED_HISTORY
    assert result.note == (
        "X: TRAINING -> BLOCKED_HISTORY (no history yet < 14 days minimum). "
        "Will NOT trigger retraining."
    )


def test_an_active_symbol_names_the_model_it_trades_on_after_a_retrain() -> None:
    first = step(SymbolRecord(symbol="X"), ModelCovered(NOW, "v000001", NOW), POLICY).record
    assert (first.state, first.reason) == (SymbolState.ACTIVE, "model v000001 published")
    later = step(first, ModelCovered(NOW + DAY_S, "v000007", NOW + DAY_S), POLICY)
    assert later.record.reason == "model v000007 published"
    assert later.record.model_version == "v000007" and later.record.since == first.since
    assert later.note == "X: ACTIVE, now trading on model v000007"


def test_admin_block_unblock_and_retrain() -> None:
    active = SymbolRecord(
        symbol="X", state=SymbolState.ACTIVE, model_version="v1", model_trained_at=NOW
    )
    blocked = step(active, ManualBlock(NOW, "news"), POLICY).record
    assert blocked.state is SymbolState.BLOCKED_MANUAL and "news" in blocked.reason
    assert not step(blocked, Evaluate(facts(900)), POLICY).start_training
    assert step(blocked, ManualRetrain(facts(900)), POLICY).refused
    unblocked = step(blocked, ManualUnblock(NOW), POLICY).record
    assert unblocked.state is SymbolState.NEW
    assert step(unblocked, Evaluate(facts(900)), POLICY).record.state is SymbolState.ACTIVE
    assert step(active, ManualUnblock(NOW), POLICY).refused


def test_retrain_refused_while_a_trainer_runs() -> None:
    record = SymbolRecord(symbol="X", state=SymbolState.TRAINING)
    assert (
        step(record, ManualRetrain(facts(100, trainer=True)), POLICY).refused
        == "X is already training"
    )


def test_leaving_the_universe_retires() -> None:
    active = SymbolRecord(
        symbol="X", state=SymbolState.ACTIVE, model_version="v1", model_trained_at=NOW
    )
    result = step(active, Evaluate(facts(900, in_universe=False)), POLICY)
    assert result.record.state is SymbolState.RETIRED


def test_a_lost_model_sends_an_active_symbol_back_to_new_and_blocked_ones_stay() -> None:
    active = SymbolRecord(
        symbol="X", state=SymbolState.ACTIVE, model_version="v1", model_trained_at=NOW
    )
    lost = step(active, ModelLost(NOW, "v1"), POLICY)
    assert lost.record.state is SymbolState.NEW and lost.record.model_version is None
    assert lost.note == "X: ACTIVE -> NEW (its model v1 no longer loads)"
    retrain = step(lost.record, Evaluate(facts(900)), POLICY)
    assert retrain.record.state is SymbolState.TRAINING and retrain.start_training
    assert step(active, ModelLost(NOW, "v0"), POLICY).record == active  # another version
    blocked = msgspec.structs.replace(active, state=SymbolState.BLOCKED_MANUAL)
    kept = step(blocked, ModelLost(NOW, "v1"), POLICY).record
    assert kept.state is SymbolState.BLOCKED_MANUAL and kept.model_version is None


# --- the promotion gate: NO_EDGE -------------------------------------------------

REASONS = ("net return -0.40 % <= 0 % in 3 of 3 folds", "AUC 0.49 < 0.50")


def rejected(now: float = NOW, trained_at: float = NOW) -> ModelRejected:
    return ModelRejected(now=now, trained_at=trained_at, window_end=now - 60, reasons=REASONS)


def test_a_rejected_model_waits_for_a_day_of_new_candles_not_for_a_tick() -> None:
    training = step(SymbolRecord(symbol="X"), Evaluate(facts(100)), POLICY).record
    result = step(training, rejected(), POLICY)
    record = result.record
    assert record.state is SymbolState.NO_EDGE and not result.start_training
    assert record.gate_reasons == REASONS and record.retry_at == NOW - 60 + DAY_S
    assert record.reason == (
        "no edge: net return -0.40 % <= 0 % in 3 of 3 folds; AUC 0.49 < 0.50; retry after "
        "2026-11-26 23:59 UTC (1 day of new candles) or on admin 'retrain'"
    )
    assert result.note == f"X: TRAINING -> NO_EDGE ({record.reason})"
    # every coverage tick of the day (every 300 s): nothing
    for tick in range(1, 288):
        later = step(record, Evaluate(facts(100, now=NOW + 300 * tick - 60)), POLICY)
        assert later.record == record and not later.start_training
    retry = step(record, Evaluate(facts(101, now=NOW - 60 + DAY_S)), POLICY)
    assert retry.record.state is SymbolState.TRAINING and retry.start_training
    assert "1 day of new candles since its model was rejected" in (retry.note or "")


def test_an_admin_retrain_of_a_no_edge_symbol_trains_at_once() -> None:
    no_edge = SymbolRecord(
        symbol="X", state=SymbolState.NO_EDGE, gate_reasons=REASONS, retry_at=NOW + DAY_S
    )
    result = step(no_edge, ManualRetrain(facts(100)), POLICY)
    assert result.record.state is SymbolState.TRAINING and result.start_training
    assert step(no_edge, ManualRetrain(facts(100, trainer=True)), POLICY).refused


def test_a_published_model_lifts_no_edge_and_clears_the_verdict() -> None:
    no_edge = step(SymbolRecord(symbol="X", state=SymbolState.TRAINING), rejected(), POLICY).record
    older = step(no_edge, ModelCovered(NOW + 10, "v1", NOW - DAY_S), POLICY).record
    assert older.state is SymbolState.NO_EDGE  # trained before the rejected one
    newer = step(no_edge, ModelCovered(NOW + DAY_S, "v2", NOW + DAY_S - 30), POLICY).record
    assert newer.state is SymbolState.ACTIVE and newer.model_version == "v2"
    assert (newer.gate_reasons, newer.rejected_at, newer.retry_at) == ((), None, None)


def test_an_admin_retrain_rejected_keeps_a_young_model_trading() -> None:
    active = SymbolRecord(
        symbol="X", state=SymbolState.ACTIVE, model_version="v1", model_trained_at=NOW - DAY_S
    )
    result = step(active, rejected(), POLICY)
    assert result.record.state is SymbolState.ACTIVE
    assert result.record.gate_reasons == REASONS and result.record.rejected_at is None
    assert "still trading on model v1 (1.0 days old <= 7 maximum)" in (result.note or "")
    # it ages past max_model_age before the retry time: still no retrain until new data
    aged = msgspec.structs.replace(result.record, model_trained_at=NOW - 8 * DAY_S)
    assert not step(aged, Evaluate(facts(900, now=NOW + 3600)), POLICY).start_training
    assert step(aged, Evaluate(facts(901, now=NOW + DAY_S)), POLICY).start_training


def test_an_expired_model_whose_retrain_is_rejected_stops_trading_for_good() -> None:
    active = SymbolRecord(
        symbol="X", state=SymbolState.ACTIVE, model_version="v1", model_trained_at=NOW - 8 * DAY_S
    )
    no_edge = step(active, rejected(), POLICY).record
    assert no_edge.state is SymbolState.NO_EDGE and no_edge.model_version == "v1"
    assert no_edge.reason.startswith("model v1 expired and its retrain has no edge: ")
    # the retry fails: backing off must not bring the expired model back
    training = step(no_edge, Evaluate(facts(901, now=NOW + DAY_S)), POLICY).record
    waiting = step(training, TrainingOutcome(now=NOW + DAY_S, ok=False, error="boom"), POLICY)
    assert waiting.record.state is SymbolState.RETRY_WAIT
    later = step(waiting.record, Evaluate(facts(902, now=NOW + 2 * DAY_S)), POLICY)
    assert later.record.state is SymbolState.TRAINING and later.start_training
    # nor does a restart while the retry trains (no trainer alive)
    restarted = step(training, Evaluate(facts(901, now=NOW + DAY_S + 60)), POLICY)
    assert restarted.record.state is SymbolState.TRAINING and restarted.start_training


def test_a_no_edge_symbol_back_in_the_universe_still_waits() -> None:
    no_edge = step(SymbolRecord(symbol="X", state=SymbolState.TRAINING), rejected(), POLICY).record
    retired = step(no_edge, Evaluate(facts(100, now=NOW + 60, in_universe=False)), POLICY)
    assert retired.record.state is SymbolState.RETIRED
    back = step(retired.record, Evaluate(facts(100, now=NOW + 3600)), POLICY)
    assert back.record.state is SymbolState.NO_EDGE and not back.start_training
    blocked = step(no_edge, ManualBlock(NOW + 60, "why"), POLICY).record
    unblocked = step(blocked, ManualUnblock(NOW + 120), POLICY).record
    again = step(unblocked, Evaluate(facts(100, now=NOW + 120)), POLICY)
    assert again.record.state is SymbolState.NO_EDGE and not again.start_training


def test_retry_after_must_be_positive() -> None:
    with pytest.raises(ValueError, match=r"promotion\.retry_after_days must be > 0, got 0"):
        msgspec.structs.replace(POLICY, retry_after_s=0.0)


# --- properties ------------------------------------------------------------------

states = st.sampled_from(list(SymbolState))
maybe_time = st.one_of(st.none(), st.floats(NOW - 30 * DAY_S, NOW + 30 * DAY_S))
records = st.builds(
    SymbolRecord,
    symbol=st.just("S/USDT"),
    state=states,
    attempts=st.integers(0, 6),
    next_attempt_at=maybe_time,
    model_version=st.one_of(st.none(), st.just("v000001")),
    model_trained_at=maybe_time,
    eligible_at=maybe_time,
    gate_reasons=st.sampled_from([(), ("no edge",)]),
    rejected_at=maybe_time,
    retry_at=maybe_time,
)
fact_s = st.builds(
    Facts,
    now=st.floats(NOW, NOW + 60 * DAY_S),
    in_universe=st.booleans(),
    listed_at=st.one_of(st.none(), st.floats(NOW - 400 * DAY_S, NOW + 60 * DAY_S)),
    trainer_running=st.booleans(),
)
events = st.one_of(
    st.builds(Evaluate, fact_s),
    st.builds(ManualRetrain, fact_s),
    st.builds(
        ModelCovered, st.floats(NOW, NOW + DAY_S), st.just("v000002"), st.floats(NOW - DAY_S, NOW)
    ),
    st.builds(TrainingOutcome, st.floats(NOW, NOW + DAY_S), st.booleans(), st.just("boom")),
    st.builds(ManualBlock, st.floats(NOW, NOW + DAY_S), st.just("why")),
    st.builds(ManualUnblock, st.floats(NOW, NOW + DAY_S)),
    st.builds(ModelLost, st.floats(NOW, NOW + DAY_S), st.just("v000001")),
    st.builds(
        ModelRejected,
        st.floats(NOW, NOW + DAY_S),
        st.floats(NOW - DAY_S, NOW),
        st.floats(NOW - DAY_S, NOW),
        st.just(("no edge",)),
    ),
)


def _facts_of(event: object) -> Facts | None:
    return event.facts if isinstance(event, Evaluate | ManualRetrain) else None


@given(records, events)
def test_never_starts_a_second_trainer(record: SymbolRecord, event: object) -> None:
    f = _facts_of(event)
    result = step(record, event, POLICY)  # type: ignore[arg-type]
    if f is not None and f.trainer_running:
        assert not result.start_training
    if f is None:  # only an evaluation or an admin retrain may start training
        assert not result.start_training


@given(records, events)
def test_short_history_never_trains(record: SymbolRecord, event: object) -> None:
    f = _facts_of(event)
    result = step(record, event, POLICY)  # type: ignore[arg-type]
    if f is not None:
        days = f.history_days()
        if days is None or days < POLICY.min_history_days:
            assert not result.start_training


@given(records, events)
def test_manual_block_is_left_only_by_unblock(record: SymbolRecord, event: object) -> None:
    blocked = msgspec.structs.replace(record, state=SymbolState.BLOCKED_MANUAL)
    result = step(blocked, event, POLICY)  # type: ignore[arg-type]
    if not isinstance(event, ManualUnblock):
        assert result.record.state in (SymbolState.BLOCKED_MANUAL, SymbolState.RETIRED)
        assert not result.start_training


@given(records, events)
def test_every_state_change_has_a_log_line_naming_both_states(
    record: SymbolRecord, event: object
) -> None:
    result = step(record, event, POLICY)  # type: ignore[arg-type]
    if result.record.state != record.state:
        assert result.note is not None
        assert result.note.startswith(record.symbol + ": ")
        assert str(result.record.state) in result.note
    if result.start_training:
        assert result.record.state in (SymbolState.TRAINING, SymbolState.ACTIVE)


@given(records, events)
def test_attempts_never_exceed_the_maximum_while_retrying(
    record: SymbolRecord, event: object
) -> None:
    record = msgspec.structs.replace(record, attempts=min(record.attempts, POLICY.max_attempts - 1))
    result = step(record, event, POLICY)  # type: ignore[arg-type]
    if result.record.state is SymbolState.RETRY_WAIT and record.state is not SymbolState.RETRY_WAIT:
        assert 1 <= result.record.attempts < POLICY.max_attempts
        assert result.record.next_attempt_at is not None


def test_stale_model_with_unknown_history_keeps_trading_without_retraining() -> None:
    # found by hypothesis: the exchange could not say how old the market is
    record = SymbolRecord(symbol="X", model_version="v1", model_trained_at=NOW - 30 * DAY_S)
    result = step(record, Evaluate(facts(None)), POLICY)
    assert result.record.state is SymbolState.ACTIVE and not result.start_training


@given(records, fact_s)
def test_no_edge_never_trains_before_its_retry_time(record: SymbolRecord, f: Facts) -> None:
    no_edge = msgspec.structs.replace(record, state=SymbolState.NO_EDGE)
    result = step(no_edge, Evaluate(f), POLICY)
    if no_edge.retry_at is None or no_edge.retry_at > f.now:
        assert not result.start_training
        assert result.record.state in (SymbolState.NO_EDGE, SymbolState.RETIRED)
