"""Which symbols the bot trades: the universe, from markets and 24 h tickers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase

from exchange.types import Market, Ticker


def is_blacklisted(symbol: str, patterns: Iterable[str]) -> bool:
    return any(fnmatchcase(symbol, pattern) for pattern in patterns)


def select_universe(
    markets: Mapping[str, Market],
    tickers: Mapping[str, Ticker],
    *,
    quote: str,
    top_n: int,
    blacklist: Iterable[str] = (),
    static: Iterable[str] = (),
) -> list[str]:
    """Static list (those that exist and trade), or the top_n active spot markets of `quote`
    by 24 h quote volume, minus the blacklist. Sorted by volume, then name."""
    blacklist = tuple(blacklist)
    wanted = tuple(static)
    if wanted:
        return [s for s in wanted if s in markets and markets[s].active]
    candidates = [
        m.symbol
        for m in markets.values()
        if m.active and m.spot and m.quote == quote and not is_blacklisted(m.symbol, blacklist)
    ]

    def volume(symbol: str) -> float:
        ticker = tickers.get(symbol)
        return ticker.quote_volume if ticker is not None else 0.0

    return sorted(candidates, key=lambda s: (-volume(s), s))[:top_n]
