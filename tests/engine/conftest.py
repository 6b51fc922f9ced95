"""Fixtures shared by the engine tests."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from ..conformance.cfgkit import udp_receiver as _udp_receiver


@pytest.fixture
def udp_receiver() -> Iterator[socket.socket]:
    """A UDP socket on 127.0.0.1:0 for ``log`` lines, reads bounded (2 s)."""
    with _udp_receiver(timeout=2.0) as sock:
        yield sock
