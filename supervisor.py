"""tradeactors: builds the bot from settings, starts its actors, keeps them running.

    python supervisor.py [--settings FILE] [--log-file PATH]
                                               run the bot (paper + synthetic market by default)
    python supervisor.py shell [-c CMD]        the admin shell (docs/admin.md)
    python supervisor.py simulate --days N     the same actors on virtual time, with a report
    python supervisor.py download [...]        real history into the candle cache (no keys)
    python supervisor.py backtest [...]        the same actors over stored real candles

This module is the command line only: it parses the arguments and dispatches.
The bot itself is built and run by `app/` (app/system.py wires the actors,
app/supervision.py restarts a permanent actor that dies, one-for-one, at most 3
times in 60 s, and stops every actor in order on SIGINT/SIGTERM); the shell is
`admin/shell.py`, the simulation `simulation/`.

State lives in `<data_dir>/tradeactors.db` (orders, fills, positions, symbol
states, training attempts, model versions) and, on the paper exchange, in
`<data_dir>/paper/state.json`. A database that fails its checks stops the bot
before anything trades (exit 3, one line naming the file and what to do).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from admin.shell import DEFAULT_HISTORY, run_shell
from app import __version__, download
from app.run import run
from simulation import backtest_cli
from simulation import cli as simulation_cli
from simulation.simulate import simulate

__all__ = ["main", "run", "simulate"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python supervisor.py", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--settings", default="settings.yaml", help="settings file (default: %(default)s)"
    )
    parser.add_argument(
        "--log-file",
        metavar="PATH",
        help='the log file, instead of logging.file under data_dir ("" for none)',
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    simulation_cli.add_parser(commands)
    backtest_cli.add_parser(commands)
    download.add_parser(commands)
    shell = commands.add_parser(
        "shell",
        help="the admin shell: steer the running bot",
        description="The admin shell of a running bot (docs/admin.md). Exit codes: 0 ok, "
        "1 error reply, 2 bad command or settings, 3 cannot connect or token refused.",
    )
    # SUPPRESS: `--settings F shell` and `shell --settings F` both work
    shell.add_argument("--settings", default=argparse.SUPPRESS, help="the bot's settings file")
    shell.add_argument("-c", dest="shell_command", metavar="CMD", help='one command, e.g. "status"')
    shell.add_argument("--json", action="store_true", help="print the raw JSON replies")
    shell.add_argument("--url", help="ws://HOST:PORT (default: admin.host/port of the settings)")
    shell.add_argument(
        "--history", type=Path, help="history file (default: ~/.tradeactors_shell_history)"
    )
    for entry in (parser, *commands.choices.values()):
        entry.add_argument("--version", action="version", version=f"tradeactors {__version__}")
    args = parser.parse_args(argv)
    if args.command == "shell":
        history = args.history or DEFAULT_HISTORY
        return run_shell(args.settings, args.shell_command, args.json, args.url, history)
    if args.command == "simulate":
        return simulation_cli.command(args)
    if args.command == "backtest":
        return backtest_cli.command(args)
    if args.command == "download":
        return download.command(args)
    return run(args.settings, log_file=args.log_file)


if __name__ == "__main__":
    sys.exit(main())
