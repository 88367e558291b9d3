"""The database: schema and migrations, the order state machine, refusing a damaged file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from policy.lifecycle import SymbolRecord, SymbolState
from storage.db import (
    MIGRATIONS,
    Database,
    Migration,
    ModelVersionRow,
    ModelVersions,
    RejectedModelRow,
    RejectedModels,
    SqliteLedger,
    StorageError,
    SymbolStore,
)
from storage.db.cli import main
from storage.ledger import (
    TRANSITIONS,
    IllegalTransition,
    Ledger,
    MemoryLedger,
    OrderRow,
    OrderState,
    PositionRow,
)


def order(coid: str = "ta1", **fields: Any) -> OrderRow:
    base: dict[str, Any] = {
        "client_order_id": coid,
        "symbol": "BTC/USDT",
        "side": "buy",
        "intent": "entry",
        "amount": 0.002,
        "candle_ms": 1_795_651_140_000,
        "created_at": 1.0,
        "updated_at": 1.0,
    }
    return OrderRow(**{**base, **fields})


def records(store: SymbolStore) -> list[SymbolRecord]:
    """What the coverage actor reads back: the stored encoded forms as records."""
    return [msgspec.convert(fields, SymbolRecord) for fields in store.load()]


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database.open(tmp_path / "tradeactors.db")
    yield database
    database.close()


@pytest.fixture(params=["memory", "sqlite"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    if request.param == "memory":
        yield MemoryLedger()
        return
    database = Database.open(tmp_path / "ledger.db")
    yield SqliteLedger(database)
    database.close()


# --- the order ledger: both implementations behave the same ---------------------------


def test_an_order_goes_new_sent_partial_filled_with_a_fill_per_step(ledger: Ledger) -> None:
    assert ledger.add_intent(order())
    assert not ledger.add_intent(order())  # the same decision is never recorded twice
    ledger.update("ta1", state=OrderState.SENT, updated_at=2.0)
    ledger.update(
        "ta1", state="PARTIAL", filled=0.0005, average_price=100.0, fee_quote=0.05, updated_at=3.0
    )
    row = ledger.update(
        "ta1", state=OrderState.FILLED, filled=0.002, average_price=110.0, fee_quote=0.2
    )
    assert row.state is OrderState.FILLED and ledger.get("ta1") == row
    fills = ledger.fills("ta1")
    assert [f.amount for f in fills] == pytest.approx([0.0005, 0.0015])
    assert fills[0].price == pytest.approx(100.0)
    assert fills[1].price == pytest.approx((0.002 * 110.0 - 0.0005 * 100.0) / 0.0015)
    assert sum(f.fee_quote for f in fills) == pytest.approx(0.2)
    assert [r.client_order_id for r in ledger.orders(OrderState.FILLED)] == ["ta1"]
    assert ledger.orders(OrderState.NEW, OrderState.SENT) == []


@pytest.mark.parametrize(
    ("path", "bad"),
    [
        ([], OrderState.FILLED),  # NEW -> FILLED skips SENT
        ([], OrderState.OPEN),
        ([OrderState.SENT, OrderState.FILLED], OrderState.OPEN),  # a final state stays final
        ([OrderState.SENT, OrderState.REJECTED], OrderState.SENT),
        ([OrderState.SENT, OrderState.CANCELED], OrderState.FILLED),
        ([OrderState.SENT, OrderState.PARTIAL], OrderState.OPEN),
    ],
)
def test_illegal_transitions_are_refused_and_change_nothing(
    ledger: Ledger, path: list[OrderState], bad: OrderState
) -> None:
    ledger.add_intent(order())
    for state in path:
        ledger.update("ta1", state=state)
    before = ledger.get("ta1")
    with pytest.raises(IllegalTransition, match="ta1"):
        ledger.update("ta1", state=bad)
    assert ledger.get("ta1") == before


def test_filled_never_shrinks_and_a_final_row_never_changes(ledger: Ledger) -> None:
    ledger.add_intent(order())
    ledger.update("ta1", state=OrderState.SENT)
    ledger.update("ta1", state=OrderState.PARTIAL, filled=0.001, average_price=1.0)
    with pytest.raises(IllegalTransition, match="cannot shrink"):
        ledger.update("ta1", filled=0.0005)
    ledger.update("ta1", state=OrderState.FILLED, filled=0.002, average_price=1.0)
    with pytest.raises(IllegalTransition, match="final"):
        ledger.update("ta1", error="late answer")
    ledger.update("ta1", state=OrderState.FILLED, updated_at=99.0)  # a no-op is not a change


@given(st.lists(st.sampled_from(list(OrderState)), max_size=6))
def test_the_memory_ledger_accepts_exactly_the_state_machine(moves: list[OrderState]) -> None:
    ledger = MemoryLedger()
    ledger.add_intent(order())
    state = OrderState.NEW
    for move in moves:
        legal = move == state or move in TRANSITIONS[state]
        if state in (OrderState.FILLED, OrderState.CANCELED, OrderState.REJECTED):
            legal = move == state
        if legal:
            ledger.update("ta1", state=move)
            state = move
        else:
            with pytest.raises(IllegalTransition):
                ledger.update("ta1", state=move)
        assert ledger.get("ta1").state is state  # type: ignore[union-attr]


def test_a_failed_transaction_leaves_nothing_behind(ledger: Ledger) -> None:
    ledger.add_intent(order())
    ledger.update("ta1", state=OrderState.SENT)
    with pytest.raises(RuntimeError), ledger.transaction():
        ledger.update("ta1", state=OrderState.FILLED, filled=0.002, average_price=1.0)
        ledger.set_position(
            "BTC/USDT", PositionRow(symbol="BTC/USDT", amount=0.002, entry_price=1, opened_at=2)
        )
        ledger.set_value("trader.realized_pnl", "5.0")
        raise RuntimeError("crash between the order and its position")
    row = ledger.get("ta1")
    assert row is not None and row.state is OrderState.SENT
    assert ledger.positions() == {} and ledger.fills() == []
    assert ledger.value("trader.realized_pnl") is None


# --- everything survives a reopen --------------------------------------------------------


def test_every_table_survives_closing_and_reopening(tmp_path: Path) -> None:
    path = tmp_path / "tradeactors.db"
    db = Database.open(path)
    ledger, symbols, versions = SqliteLedger(db), SymbolStore(db), ModelVersions(db)
    ledger.add_intent(order())
    ledger.update("ta1", state=OrderState.SENT)
    position = PositionRow(symbol="BTC/USDT", amount=0.002, entry_price=60_000.0, opened_at=5.0)
    ledger.set_position("BTC/USDT", position)
    ledger.set_value("trader.paused", "1")
    blocked = SymbolRecord(
        symbol="PEPE/USDT",
        state=SymbolState.BLOCKED_HISTORY,
        reason="12.5 days of history < 14 minimum; eligible 2026-11-27 12:00 UTC",
        since=3.0,
        eligible_at=1_795_780_800.0,
    )
    symbols.save(msgspec.to_builtins(blocked))
    symbols.attempt_started("ETH/USDT", 10.0)
    symbols.attempt_finished("ETH/USDT", 20.0, ok=False, error="worker died")
    symbols.attempt_started("ETH/USDT", 30.0)  # still running when the bot stops
    version = ModelVersionRow(
        version="v000001",
        symbols=["BTC/USDT"],
        trained_at_ms=1,
        recorded_at=2.0,
        source="published",
        metrics={"auc": 0.56},
        sha256="ab" * 32,
    )
    assert versions.record(version) and not versions.record(version)
    db.close()

    db = Database.open(path)
    ledger, symbols = SqliteLedger(db), SymbolStore(db)
    assert db.schema_version() == MIGRATIONS[-1].version
    assert ledger.get("ta1") == order(state=OrderState.SENT)
    assert ledger.positions() == {"BTC/USDT": position}
    assert ledger.value("trader.paused") == "1"
    assert records(symbols) == [blocked]
    assert symbols.abandon_unfinished(40.0, keep=(), reason="bot restarted") == ["ETH/USDT"]
    attempts = symbols.attempts("ETH/USDT")
    assert [(a.outcome, a.error) for a in attempts] == [
        ("failed", "worker died"),
        ("abandoned", "bot restarted"),
    ]
    assert ModelVersions(db).versions() == [version]
    db.close()


def test_every_field_of_a_lifecycle_record_is_stored(db: Database) -> None:
    """The store has no copy of the record's fields: a record must come back whole."""
    symbols = SymbolStore(db)
    assert set(symbols.columns) == set(SymbolRecord.__struct_fields__)
    record = SymbolRecord(
        symbol="X/USDT",
        state=SymbolState.RETRY_WAIT,
        reason="training failed",
        since=1.5,
        eligible_at=2.0,
        attempts=2,
        next_attempt_at=9.0,
        model_version="v000003",
        model_trained_at=0.5,
        last_error="boom",
        gate_reasons=("AUC 0.49 < 0.50",),
        rejected_at=1.0,
        retry_at=86_401.0,
    )
    assert all(v is not None for v in msgspec.structs.astuple(record))  # every field set
    symbols.save(msgspec.to_builtins(record))
    assert records(symbols) == [record]


def test_a_record_field_without_a_column_is_refused_not_dropped(db: Database) -> None:
    symbols = SymbolStore(db)
    with pytest.raises(StorageError, match="no column for muted"):
        symbols.save({"symbol": "X/USDT", "state": "NEW", "reason": "r", "since": 0.0, "muted": 1})
    assert symbols.load() == []


def test_a_schema_1_database_gains_the_promotion_gate_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "tradeactors.db"
    old = Database.open(path, migrations=MIGRATIONS[:1])
    symbols = SymbolStore(old)
    with old.transaction() as conn:  # a schema 1 row, written as the old code wrote it
        conn.execute(
            "INSERT INTO symbols (symbol, state, reason, since) VALUES ('BTC/USDT', 'ACTIVE', "
            "'model v000001 published', 5.0)"
        )
    symbols.attempt_started("BTC/USDT", 1.0)
    symbols.attempt_finished("BTC/USDT", 2.0, ok=True, version="v000001")
    old.close()

    db = Database.open(path)
    symbols = SymbolStore(db)
    assert db.schema_version() == 2
    assert records(symbols) == [
        SymbolRecord(
            symbol="BTC/USDT", state=SymbolState.ACTIVE, reason="model v000001 published", since=5.0
        )
    ]
    no_edge = SymbolRecord(
        symbol="BTC/USDT",
        state=SymbolState.NO_EDGE,
        reason="no edge: AUC 0.49 < 0.50; retry after ...",
        since=9.0,
        gate_reasons=("net return -0.4 % <= 0 %", "AUC 0.49 < 0.50"),
        rejected_at=8.0,
        retry_at=86_408.0,
    )
    symbols.save(msgspec.to_builtins(no_edge))
    symbols.attempt_started("BTC/USDT", 3.0)
    symbols.attempt_finished("BTC/USDT", 4.0, ok=True, rejected=True, fit_seconds=0.5)
    rejected = RejectedModelRow(
        symbol="BTC/USDT",
        trained_at_ms=3000,
        window_end_ms=2940,
        recorded_at=4.0,
        reasons=list(no_edge.gate_reasons),
        metrics={"auc": 0.49},
        path="rejected/BTC-USDT-3000",
    )
    RejectedModels(db).record(rejected)
    db.close()

    db = Database.open(path)
    symbols = SymbolStore(db)
    assert records(symbols) == [no_edge]
    attempts = symbols.attempts("BTC/USDT")
    assert [(a.id, a.outcome, a.version) for a in attempts] == [
        (1, "succeeded", "v000001"),
        (2, "rejected", None),
    ]
    assert RejectedModels(db).rejected("BTC/USDT") == [rejected]
    assert RejectedModels(db).rejected("ETH/USDT") == []
    db.close()


# --- refusing a damaged or foreign file ----------------------------------------------------


def _filled_database(path: Path, rows: int = 400) -> bytes:
    db = Database.open(path)
    ledger = SqliteLedger(db)
    with ledger.transaction():
        for i in range(rows):
            ledger.add_intent(order(f"ta{i:030d}", candle_ms=i))
    db.close()
    return path.read_bytes()


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.0, 0.01])
def test_a_truncated_database_is_refused_and_left_as_it_is(tmp_path: Path, keep: float) -> None:
    path = tmp_path / "tradeactors.db"
    data = _filled_database(path)
    damaged = data[: int(len(data) * keep)]
    path.write_bytes(damaged)
    with pytest.raises(StorageError) as refused:
        Database.open(path)
    message = str(refused.value)
    assert message.startswith(f"{path}: ")
    assert "Refusing to start; the file was not changed" in message
    assert "Restore it from a backup" in message
    assert path.read_bytes() == damaged  # never silently reset


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tradeactors.db"
    path.write_text("orders.csv contents, not SQLite\n" * 10)
    with pytest.raises(StorageError, match="not a SQLite database"):
        Database.open(path)


def test_a_sqlite_file_of_another_program_is_refused(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "tradeactors.db"
    other = sqlite3.connect(path)
    other.execute("CREATE TABLE notes (text TEXT)")
    other.commit()
    other.close()
    with pytest.raises(StorageError, match="not a tradeactors database"):
        Database.open(path)


def test_a_database_deleted_while_its_log_remains_is_not_recreated_empty(tmp_path: Path) -> None:
    path = tmp_path / "tradeactors.db"
    path.with_name("tradeactors.db-wal").write_bytes(b"\x37\x7f\x06\x82" + b"\0" * 60)
    with pytest.raises(StorageError, match="write-ahead log"):
        Database.open(path)
    assert not path.exists()


def test_a_second_bot_on_the_same_data_folder_is_refused(db: Database) -> None:
    with pytest.raises(StorageError, match="in use by another tradeactors process"):
        Database.open(db.path)


def test_a_half_created_database_left_by_a_kill_is_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "tradeactors.db"
    (tmp_path / ".tradeactors.db.new").write_bytes(b"SQLite format 3\0 half written")
    db = Database.open(path)  # the real name never existed: nothing is lost by starting anew
    assert db.schema_version() == MIGRATIONS[-1].version
    db.close()
    assert not (tmp_path / ".tradeactors.db.new").exists()


# --- schema versions ----------------------------------------------------------------------


def test_migrations_apply_in_order_once(tmp_path: Path) -> None:
    path = tmp_path / "tradeactors.db"
    Database.open(path).close()
    extra = Migration(
        MIGRATIONS[-1].version + 1,
        "order notes",
        ("ALTER TABLE orders ADD COLUMN note TEXT",),
    )
    db = Database.open(path, migrations=(*MIGRATIONS, extra))
    assert db.schema_version() == extra.version
    assert ("note",) in [(r[1],) for r in db.query("PRAGMA table_info(orders)")]
    db.close()
    Database.open(path, migrations=(*MIGRATIONS, extra)).close()  # not applied twice


def test_a_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tradeactors.db"
    newer = Migration(MIGRATIONS[-1].version + 1, "future", ("CREATE TABLE future (x)",))
    Database.open(path, migrations=(*MIGRATIONS, newer)).close()
    with pytest.raises(StorageError, match="written by a newer tradeactors"):
        Database.open(path)


def test_a_failing_migration_leaves_the_previous_schema(tmp_path: Path) -> None:
    path = tmp_path / "tradeactors.db"
    Database.open(path).close()
    broken = Migration(
        MIGRATIONS[-1].version + 1,
        "broken",
        ("CREATE TABLE half (x)", "ALTER TABLE nonexistent ADD COLUMN y"),
    )
    with pytest.raises(StorageError, match="nonexistent"):
        Database.open(path, migrations=(*MIGRATIONS, broken))
    db = Database.open(path)
    assert db.schema_version() == MIGRATIONS[-1].version
    assert not db.query("SELECT name FROM sqlite_master WHERE name = 'half'")
    db.close()


# --- the command line ---------------------------------------------------------------------


def test_check_and_backup_from_the_command_line(
    db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = SqliteLedger(db)
    ledger.add_intent(order())
    ledger.update("ta1", state=OrderState.SENT)
    backup = tmp_path / "backups" / "tradeactors-copy.db"
    assert main(["backup", str(db.path), str(backup)]) == 0  # while the bot holds it open
    assert main(["check", str(backup)]) == 0
    out = capsys.readouterr().out
    schema = MIGRATIONS[-1].version
    assert f"{backup}: ok, schema {schema}, 1 orders" in out and "1 orders to reconcile" in out
    copy = Database.open(backup)
    assert SqliteLedger(copy).get("ta1") == ledger.get("ta1")
    copy.close()
    backup.write_bytes(backup.read_bytes()[:1000])
    assert main(["check", str(backup)]) == 1
    assert "database is corrupt" in capsys.readouterr().err


def test_a_damaged_page_is_found_at_open(tmp_path: Path) -> None:
    path = tmp_path / "tradeactors.db"
    data = bytearray(_filled_database(path))
    last = len(data) - 4096  # an index page of the orders (pages are 4096 bytes)
    data[last + 8 :] = b"\xa5" * (4096 - 8)  # scribbled over, the size unchanged
    path.write_bytes(bytes(data))
    with pytest.raises(StorageError, match="database is corrupt") as refused:
        Database.open(path)
    assert "\n" not in str(refused.value) and "out of range" in str(refused.value)
