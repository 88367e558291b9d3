"""Order execution: the I/O that records exchange answers in the ledger and reconciles it."""
