"""Fixtures of the TCP proxy tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from loguru import logger

from .tlskit import Certs, make_certs


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """A test CA and a localhost certificate it signed (made once per session)."""
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def log_lines() -> Iterator[list[tuple[str, str]]]:
    """spoe_sync's loguru records of the test as ``(level, message)``."""
    lines: list[tuple[str, str]] = []
    logger.enable("spoe_sync")
    sink = logger.add(lambda m: lines.append((m.record["level"].name, m.record["message"])),
                      level="DEBUG")
    try:
        yield lines
    finally:
        logger.remove(sink)
        logger.disable("spoe_sync")
