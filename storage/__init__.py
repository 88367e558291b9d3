"""What the bot keeps on disk: candle cache, the database (ledger, symbol states, model
versions; storage.db). Never imports actors."""
