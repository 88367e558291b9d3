"""Notifications: chosen events of the running bot, sent to apprise URLs (docs/operations.md)."""
