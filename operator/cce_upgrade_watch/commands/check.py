"""`cce-upgrade-watch check` (not implemented yet)."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    del parser


def execute(args: argparse.Namespace) -> int:
    del args
    print("cce-upgrade-watch check: not implemented yet")
    return 1
