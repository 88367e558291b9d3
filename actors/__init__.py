"""The actors of tradeactors and what they share: messages, clock, base plumbing, settings."""
