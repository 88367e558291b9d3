"""Exchange port and its implementations. Never imports actors."""
