"""Run real HAProxy 2.6 as the reference engine, against a recording agent.

The recording agent is deliberately independent of spoe_sync's codec: it frames
bytes by their 4-byte length, answers with hand-built frames, and records every
frame HAProxy sends exactly as it arrived.  Tests then decode what was recorded
with spoe_sync and compare.  It runs in plain threads (no gevent) so that it is
a neutral peer whatever the test does with the hub.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

# free_port is the kit's, re-exported for the harness's users that take it from here
from tests.kit import free_port as free_port
from tests.kit import read_until_eof

LOOPBACK = "127.0.0.1"

# Frame types (SPOE.txt §3.2.2), repeated here on purpose: the harness must not
# depend on the code under test.
HAPROXY_HELLO, HAPROXY_DISCONNECT, NOTIFY = 1, 2, 3
AGENT_HELLO, AGENT_DISCONNECT, ACK = 101, 102, 103
FIN, ABORT = 1, 2


# --------------------------------------------------------------------------- tiny SPOP writer


def varint(value: int) -> bytes:
    """HAProxy's varint (include/haproxy/intops.h ``encode_varint``)."""
    value &= (1 << 64) - 1
    if value < 240:
        return bytes([value])
    out = bytearray([(value & 0xFF) | 0xF0])
    value = (value - 240) >> 4
    while value >= 128:
        out.append((value & 0xFF) | 0x80)
        value = (value - 128) >> 7
    out.append(value)
    return bytes(out)


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode a varint at ``pos``; returns ``(value, new_pos)``."""
    value = buf[pos]
    pos += 1
    if value < 240:
        return value, pos
    shift = 4
    while True:
        b = buf[pos]
        pos += 1
        value += b << shift
        shift += 7
        if b < 128:
            return value & ((1 << 64) - 1), pos


def spop_string(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return varint(len(raw)) + raw


def kv_string(name: str, value: str) -> bytes:
    return spop_string(name) + b"\x08" + spop_string(value)


def kv_uint32(name: str, value: int) -> bytes:
    return spop_string(name) + b"\x03" + varint(value)


def frame(frame_type: int, payload: bytes, stream_id: int = 0, frame_id: int = 0,
          flags: int = FIN) -> bytes:
    body = bytes([frame_type]) + struct.pack(">I", flags) + varint(stream_id) + varint(frame_id) + payload
    return struct.pack(">I", len(body)) + body


def agent_hello(version: str = "2.0", max_frame_size: int = 16380,
                capabilities: str = "pipelining,async") -> bytes:
    return frame(AGENT_HELLO, kv_string("version", version) + kv_uint32("max-frame-size", max_frame_size)
                 + kv_string("capabilities", capabilities))


def agent_disconnect(status: int = 0, message: str = "normal") -> bytes:
    return frame(AGENT_DISCONNECT, kv_uint32("status-code", status) + kv_string("message", message))


def set_var_action(scope: int, name: str, type_and_value: bytes) -> bytes:
    """One SET-VAR action; ``type_and_value`` is the already encoded typed data."""
    return b"\x01\x03" + bytes([scope]) + spop_string(name) + type_and_value


# --------------------------------------------------------------------------- recording agent


@dataclass
class Received:
    """One frame HAProxy sent: the exact wire bytes (length prefix included)."""

    conn: int
    data: bytes

    @property
    def type(self) -> int:
        return self.data[4]

    @property
    def flags(self) -> int:
        return int(struct.unpack(">I", self.data[5:9])[0])

    @property
    def ids(self) -> tuple[int, int]:
        sid, pos = read_varint(self.data, 9)
        fid, _ = read_varint(self.data, pos)
        return sid, fid


@dataclass
class RecordingAgent:
    """A scriptable SPOA on 127.0.0.1 that records every frame it receives.

    :param hello: the AGENT-HELLO bytes to answer every non-check HAPROXY-HELLO with.
    :param ack_payload: called with each complete NOTIFY (its :class:`Received`)
        and returns the ACK's action-list payload (``b""`` for none).
    """

    hello: bytes = field(default_factory=agent_hello)
    ack_payload: Callable[[Received], bytes] = lambda _frame: b""
    frames: list[Received] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((LOOPBACK, 0))
        self._listener.listen(64)
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._conns = 0
        self._threads: list[threading.Thread] = []
        t = threading.Thread(target=self._accept_loop, name="recording-agent", daemon=True)
        t.start()
        self._threads.append(t)

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def of_type(self, frame_type: int) -> list[Received]:
        with self._lock:
            return [f for f in self.frames if f.type == frame_type]

    def wait_for(self, frame_type: int, count: int = 1, timeout: float = 5.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.of_type(frame_type)
            if len(found) >= count:
                return found
            time.sleep(0.02)
        raise AssertionError(f"agent saw {len(self.of_type(frame_type))} frames of type {frame_type}, "
                             f"wanted {count} within {timeout}s")

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        for t in self._threads:
            t.join(timeout=2)

    def __enter__(self) -> RecordingAgent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._conns += 1
            t = threading.Thread(target=self._serve, args=(sock, self._conns), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, sock: socket.socket, conn: int) -> None:
        sock.settimeout(0.2)
        buf = b""
        with sock:
            while not self._stop.is_set():
                try:
                    chunk = sock.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not chunk:
                    return
                buf += chunk
                while len(buf) >= 4:
                    (length,) = struct.unpack(">I", buf[:4])
                    if len(buf) < 4 + length:
                        break
                    data, buf = buf[: 4 + length], buf[4 + length:]
                    received = Received(conn, data)
                    with self._lock:
                        self.frames.append(received)
                    if not self._answer(sock, received):
                        return

    def _answer(self, sock: socket.socket, received: Received) -> bool:
        """Reply to one frame; False closes the connection."""
        try:
            if received.type == HAPROXY_HELLO:
                is_check = b"healthcheck" in received.data
                sock.sendall(self.hello)
                return not is_check
            if received.type == HAPROXY_DISCONNECT:
                sock.sendall(agent_disconnect())
                return False
            if received.flags & FIN and received.type in (NOTIFY, 0):
                sid, fid = received.ids
                sock.sendall(frame(ACK, self.ack_payload(received), sid, fid))
            return True
        except OSError:
            return False


# --------------------------------------------------------------------------- HAProxy process


@dataclass
class HAProxy:
    """A running ``haproxy -db`` whose output goes to a file."""

    process: subprocess.Popen[bytes]
    workdir: Path
    ports: dict[str, int]

    @property
    def output(self) -> str:
        return (self.workdir / "haproxy.out").read_text(errors="replace")

    def spoe_log_lines(self) -> list[str]:
        return [line[line.index("SPOE:"):] for line in self.output.splitlines() if "SPOE:" in line]

    def wait_for_output(self, needle: str, timeout: float = 5.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.output
            if needle in out:
                return out
            time.sleep(0.02)
        raise AssertionError(f"{needle!r} not in HAProxy's output:\n{self.output}")


def write_files(workdir: Path, files: Mapping[str, str]) -> None:
    for name, text in files.items():
        (workdir / name).write_text(text)


@contextmanager
def run_haproxy(haproxy_bin: str, cfg: str, workdir: Path, files: Mapping[str, str] | None = None,
                ports: Mapping[str, int] | None = None, ready_port: int | None = None,
                timeout: float = 5.0) -> Iterator[HAProxy]:
    """Start HAProxy with ``cfg`` (written as ``workdir/haproxy.cfg``) and stop it
    afterwards (SIGUSR1 soft stop, then SIGTERM, then SIGKILL, by PID).

    :param files: extra files (SPOE configs, pattern lists) written beside it.
    :param ready_port: a port HAProxy binds; start-up waits until it accepts.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    write_files(workdir, files or {})
    (workdir / "haproxy.cfg").write_text(cfg)
    out = open(workdir / "haproxy.out", "wb")
    proc = subprocess.Popen([haproxy_bin, "-db", "-f", "haproxy.cfg"], cwd=workdir,
                            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        if ready_port is not None:
            _wait_listening(proc, ready_port, timeout, workdir)
        yield HAProxy(proc, workdir, dict(ports or {}))
    finally:
        _stop(proc)
        out.close()


def _wait_listening(proc: subprocess.Popen[bytes], port: int, timeout: float, workdir: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError("haproxy exited at start:\n" + (workdir / "haproxy.out").read_text())
        try:
            socket.create_connection((LOOPBACK, port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise AssertionError(f"haproxy did not listen on {port} within {timeout}s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
        try:
            os.kill(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def haproxy_check(haproxy_bin: str, cfg: str, workdir: Path,
                  files: Mapping[str, str] | None = None) -> tuple[int, str]:
    """Run ``haproxy -c`` on ``cfg``; returns ``(exit code, output)``."""
    workdir.mkdir(parents=True, exist_ok=True)
    write_files(workdir, files or {})
    (workdir / "haproxy.cfg").write_text(cfg)
    done = subprocess.run([haproxy_bin, "-c", "-f", "haproxy.cfg"], cwd=workdir, capture_output=True,
                          timeout=30, stdin=subprocess.DEVNULL)
    return done.returncode, (done.stdout + done.stderr).decode(errors="replace")


# --------------------------------------------------------------------------- HTTP client


@dataclass
class HTTPResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def http_request(port: int, raw: bytes | None = None, *, method: str = "GET", target: str = "/",
                 headers: list[tuple[str, str]] | None = None, body: bytes = b"",
                 timeout: float = 5.0) -> HTTPResponse:
    """Send one HTTP/1.1 request (``raw`` bytes verbatim, or built from the
    arguments with ``Connection: close``) and read the whole response."""
    if raw is None:
        lines = [f"{method} {target} HTTP/1.1"]
        hdrs = list(headers) if headers is not None else [("Host", "conformance.test")]
        if body and not any(k.lower() == "content-length" for k, _ in hdrs):
            hdrs.append(("Content-Length", str(len(body))))
        hdrs.append(("Connection", "close"))
        lines += [f"{k}: {v}" for k, v in hdrs]
        raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    with socket.create_connection((LOOPBACK, port), timeout=timeout) as s:
        s.sendall(raw)
        data = read_until_eof(s, timeout=timeout)
    head, _, rest = data.partition(b"\r\n\r\n")
    lines_ = head.decode("latin-1").split("\r\n")
    if not lines_ or not lines_[0].startswith("HTTP/"):
        raise AssertionError(f"not an HTTP response: {data[:200]!r}")
    status = int(lines_[0].split()[1])
    parsed = [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines_[1:])]
    return HTTPResponse(status, parsed, rest)
