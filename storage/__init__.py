"""What the bot keeps on disk: candle cache, ledger, symbol states. Never imports actors."""
