"""The version every command line shows (`--version`) and the bot logs at start.

The same as pyproject.toml's (a test keeps them equal); here because the project runs
from its folder, not installed, so package metadata may be missing or stale.
"""

VERSION = "0.1.0"
