"""The `cce-upgrade-watch` command line: one subcommand per module in `commands/`.

Each subcommand module exposes `configure(parser)` and `execute(args) -> int`;
they are imported only when chosen, so `check` does not pay for kopf's import.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from cce_upgrade_watch import __version__

SUBCOMMANDS: dict[str, str] = {
    "run": "run the operator",
    "simulate": "run the CCE Autopilot API simulator",
    "check": "query the CCE upgrade-workflow API once and print the result",
    "demo": "run everything locally: control plane, simulator, operator",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cce-upgrade-watch",
        description="Watch Huawei Cloud CCE Autopilot cluster upgrades from Kubernetes.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, summary in SUBCOMMANDS.items():
        sub = subparsers.add_parser(
            name, help=summary, description=summary[0].upper() + summary[1:]
        )
        _command_module(name).configure(sub)
    return parser


def _command_module(name: str):  # type: ignore[no-untyped-def]
    return importlib.import_module(f"cce_upgrade_watch.commands.{name}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(_command_module(args.command).execute(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
