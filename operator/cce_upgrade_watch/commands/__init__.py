"""Subcommands of the `cce-upgrade-watch` CLI, one module each (see `cli.py`)."""
