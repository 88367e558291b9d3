"""Stored candles for a backtest: a folder of CSV files, or the candle cache.

A CSV file holds one symbol's candles of one timeframe, named
`EXCHANGE_BASE-QUOTE_TF.csv` or `.csv.gz` (e.g. `binance_ETH-BTC_5m.csv.gz`), with
the header `time_ms,open,high,low,close,volume` (`time_ms`: the candle's open
time, ms since the epoch, UTC) — the format of `tests/data/realdata/`.
Every problem is a `CandleFileError` naming the file and what is wrong with it.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from core.timeframes import timeframe_ms
from exchange.replay import check_candles
from storage.candles import CandleCache

FloatArray = npt.NDArray[np.float64]

HEADER = "time_ms,open,high,low,close,volume"
_NAME = re.compile(
    r"(?P<exchange>[A-Za-z0-9.-]+)_(?P<base>[A-Za-z0-9]+)-(?P<quote>[A-Za-z0-9]+)"
    r"_(?P<tf>[0-9]+[mhd])\.csv(\.gz)?"
)


class CandleFileError(Exception):
    """Stored candles that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class CandleFile:
    path: Path
    exchange: str
    symbol: str  # "ETH/BTC"
    timeframe: str


def candle_files(folder: str | Path) -> list[CandleFile]:
    """The candle files of `folder`, sorted by name; other files (a README) are ignored."""
    root = Path(folder)
    if not root.is_dir():
        raise CandleFileError(f"{root}: not a folder of candle files")
    found = []
    for path in sorted(root.iterdir()):
        if not path.name.endswith((".csv", ".csv.gz")):
            continue
        match = _NAME.fullmatch(path.name)
        if match is None:
            raise CandleFileError(
                f"{path}: cannot tell the symbol from the name: expected "
                "EXCHANGE_BASE-QUOTE_TIMEFRAME.csv[.gz], e.g. binance_ETH-BTC_5m.csv.gz"
            )
        found.append(
            CandleFile(
                path=path,
                exchange=match["exchange"],
                symbol=f"{match['base']}/{match['quote']}",
                timeframe=match["tf"],
            )
        )
    return found


def read_candle_file(file: CandleFile) -> FloatArray:
    """The file's candles, checked (increasing aligned times, sane prices), shape (N, 6)."""
    path = file.path
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            header = f.readline().strip()
            if header != HEADER:
                raise CandleFileError(f"{path}: header is {header!r}, expected {HEADER!r}")
            rows = np.loadtxt(f, delimiter=",", dtype=np.float64, ndmin=2)
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise CandleFileError(f"{path}: cannot read: {exc}") from None
    except ValueError as exc:  # numpy names the line and the value
        raise CandleFileError(f"{path}: not numbers in the CSV layout: {exc}") from None
    try:
        return check_candles(file.symbol, rows, timeframe_ms(file.timeframe))
    except ValueError as exc:
        raise CandleFileError(f"{path}: {exc}") from None


def read_candle_folder(
    folder: str | Path, timeframe: str, symbols: Iterable[str] | None = None
) -> tuple[str, dict[str, FloatArray]]:
    """(exchange, candles by symbol) of the folder's files of `timeframe`, only `symbols`
    if given."""
    files = candle_files(folder)
    of_tf = [f for f in files if f.timeframe == timeframe]
    if not of_tf:
        have = sorted({f.timeframe for f in files})
        raise CandleFileError(
            f"{folder}: no {timeframe} candle files"
            + (f" (it has {', '.join(have)}: use --timeframe)" if have else "")
        )
    if symbols is not None:
        wanted = set(symbols)
        missing = sorted(wanted - {f.symbol for f in of_tf})
        if missing:
            raise CandleFileError(f"{folder}: no {timeframe} file for {', '.join(missing)}")
        of_tf = [f for f in of_tf if f.symbol in wanted]
    exchanges = sorted({f.exchange for f in of_tf})
    if len(exchanges) > 1:
        raise CandleFileError(f"{folder}: files of several exchanges ({', '.join(exchanges)})")
    series: dict[str, FloatArray] = {}
    for file in of_tf:
        if file.symbol in series:
            raise CandleFileError(f"{file.path}: a second {timeframe} file for {file.symbol}")
        series[file.symbol] = read_candle_file(file)
    return exchanges[0], series


def read_cache(
    cache: CandleCache, exchange: str, timeframe: str, symbols: Iterable[str] | None = None
) -> dict[str, FloatArray]:
    """Candles by symbol from the candle cache (what `download` stored), only `symbols` if
    given; CandleFileError when there are none."""
    root = cache.root / exchange
    if symbols is None:
        names = sorted(p.parent.name for p in root.glob(f"*/{timeframe}.bin"))
        symbols = ["/".join(name.rsplit("_", 1)) for name in names]
    series: dict[str, FloatArray] = {}
    for symbol in symbols:
        rows = cache.read(exchange, symbol, timeframe)
        if len(rows) == 0:
            raise CandleFileError(
                f"{cache.path(exchange, symbol, timeframe)}: no {timeframe} candles of {symbol} "
                "in the cache (python supervisor.py download ...)"
            )
        try:
            series[symbol] = check_candles(symbol, rows, timeframe_ms(timeframe))
        except ValueError as exc:
            raise CandleFileError(f"{cache.path(exchange, symbol, timeframe)}: {exc}") from None
    if not series:
        raise CandleFileError(
            f"{root}: no {timeframe} candles in the cache (python supervisor.py download ...)"
        )
    return series
