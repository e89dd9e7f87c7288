"""`run -v` turns on DEBUG logging, but never for the loggers that print response
bodies (Secret data) or request URLs."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from cce_upgrade_watch.commands.run import PINNED_LOGGERS, configure_logging


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    levels = {name: logging.getLogger(name).level for name in (*PINNED_LOGGERS, "httpx")}
    yield
    root.setLevel(saved[0])
    root.handlers[:] = saved[1]
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.parametrize("verbose", [True, False])
def test_body_logging_loggers_stay_at_info_or_above(verbose: bool) -> None:
    configure_logging(verbose=verbose, log_format="text")
    if verbose:
        assert logging.getLogger().getEffectiveLevel() == logging.DEBUG
    for name in PINNED_LOGGERS:
        logger = logging.getLogger(name)
        assert logger.getEffectiveLevel() >= logging.INFO, name
        assert not logger.isEnabledFor(logging.DEBUG), name
    # A child logger (kubernetes.client.rest is one of urllib3's neighbours) inherits it.
    assert not logging.getLogger("urllib3.connectionpool").isEnabledFor(logging.DEBUG)
