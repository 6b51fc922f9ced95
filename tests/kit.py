"""The test kit: one of each helper the test suites kept rewriting (engines on a FakeAgent,
free and closed loopback ports, bounded polling, reading a socket until EOF).

It imports spoe_sync only inside :func:`make_engine`: the conformance harness, which must not
depend on the code under test, takes its ports from here too."""

from __future__ import annotations

import socket as _stdsocket
import struct
import subprocess
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import gevent

if TYPE_CHECKING:
    from spoe_sync.engine.engine import Engine

__all__ = ["closed_address", "free_port", "loguru_records", "make_engine", "read_frame",
           "read_until_eof", "recv_exactly", "stop_process", "wait_until"]


def make_engine(conf: str, scope: str | None, address: str, *, backend: str = "agents",
                **options: Any) -> Engine:
    """An :class:`Engine` for the SPOE ``conf`` text (its ``[scope]``) whose ``backend`` is
    the agent at ``address``; config warnings silenced, a short reconnect backoff."""
    from spoe_sync.config import load_config
    from spoe_sync.engine.engine import Engine

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        config = load_config(conf, scope)
    options.setdefault("backoff", (0.05, 0.2))
    return Engine(config, backends={backend: [address]}, **options)


@contextmanager
def loguru_records(level: str = "DEBUG") -> Iterator[list[tuple[str, str]]]:
    """spoe_sync's loguru records while the block runs, as ``(level, message)``: the library's
    logger enabled, then disabled again (it is off until an application turns it on)."""
    from loguru import logger

    lines: list[tuple[str, str]] = []
    logger.enable("spoe_sync")
    sink = logger.add(lambda m: lines.append((m.record["level"].name, m.record["message"])),
                      level=level)
    try:
        yield lines
    finally:
        logger.remove(sink)
        logger.disable("spoe_sync")


def free_port() -> int:
    """A loopback TCP port free right now (bound then released: use it at once)."""
    with _stdsocket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def closed_address() -> str:
    """``127.0.0.1:PORT`` where nothing listens (connections are refused)."""
    return f"127.0.0.1:{free_port()}"


def wait_until(predicate: Callable[[], object], timeout: float = 5.0,
               interval: float = 0.01) -> bool:
    """Poll ``predicate`` (cooperatively) until it holds or ``timeout`` seconds passed: a
    loaded machine needs margins, never a fixed sleep.  Returns its last value as a bool."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        gevent.sleep(interval)
    return bool(predicate())


def stop_process(proc: subprocess.Popen[Any], timeout: float = 10.0) -> int:
    """Stop a subprocess the test started (SIGTERM, by its PID), SIGKILL if it is still there
    after ``timeout`` seconds; its exit status."""
    if proc.poll() is None:
        proc.terminate()
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(timeout=timeout)


def read_frame(sock: Any) -> bytes | None:
    """One SPOP frame's body (after its 4-byte length, SPOE.txt §3.2), None at EOF; each read
    bounded by the socket's timeout."""
    head = recv_exactly(sock, 4)
    if len(head) < 4:
        return None
    size = struct.unpack(">I", head)[0]
    body = recv_exactly(sock, size)
    return body if len(body) == size else None


def recv_exactly(sock: Any, size: int) -> bytes:
    """``size`` bytes from ``sock``, fewer only at EOF; each read bounded by the socket's
    timeout."""
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def read_until_eof(sock: Any, limit: int = 64 << 20, timeout: float = 10.0) -> bytes:
    """Everything ``sock`` receives until EOF (a reset counts as EOF), bounded in size: at most
    ``limit`` bytes are read.

    :raises TimeoutError: no EOF within ``timeout`` seconds.  A peer that should have closed
        and did not is a failure, never an empty answer (``read_until_eof(s) == b""`` must not
        pass because nothing came)."""
    chunks: list[bytes] = []
    total = 0
    deadline = time.monotonic() + timeout
    try:
        while total < limit:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no EOF within {timeout}s ({total} bytes read)")
            sock.settimeout(left)
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
            total += len(data)
    except ConnectionResetError:
        pass
    return b"".join(chunks)
