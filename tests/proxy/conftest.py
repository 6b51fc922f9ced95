"""Fixtures of the TCP proxy tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.kit import loguru_records

from .tlskit import Certs, make_certs


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """A test CA and a localhost certificate it signed (made once per session)."""
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def log_lines() -> Iterator[list[tuple[str, str]]]:
    """spoe_sync's loguru records of the test as ``(level, message)``."""
    with loguru_records() as lines:
        yield lines
