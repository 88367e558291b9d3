"""The bot's wiring: System, Supervisor loop, builders, logging, start-up checks, live run."""

from core.version import VERSION as __version__

__all__ = ["__version__"]
