"""Both engines on the same raw requests, byte for byte, through the harness's recording agent:
HAProxy 2.6 in front of a trivial backend, and gevent.pywsgi + ``SpoeWSGIHandler`` (or gevent's
stock ``WSGIHandler``) + ``SpoeMiddleware.from_haproxy_cfg`` on the same haproxy.cfg, whose app
gives the same responses as the backend."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gevent
from gevent import socket as gsocket
from gevent.pywsgi import WSGIHandler, WSGIServer

from spoe_sync.protocol import Notify, decode_frame
from spoe_sync.samples import SpoeWSGIHandler
from spoe_sync.wsgi import SpoeMiddleware

from ..harness import (
    NOTIFY,
    Received,
    RecordingAgent,
    free_port,
    run_haproxy,
    set_var_action,
    spop_string,
    varint,
)
from ..rules_support import RawResponder, parse_raw_response
from . import config

__all__ = ["Observation", "Pair", "app", "engines"]

Messages = tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]


@dataclass(frozen=True)
class Observation:
    """What one engine did with one request: the response status (0: none) and every message
    its agent received for it, in order."""

    status: int
    messages: Messages


def _ack(received: Received) -> bytes:
    """Every ACK sets ``<scope>.fz.v`` in the four scopes a NOTIFY may set, each with a
    value of another type, so that later messages show what each engine kept (SPOE.txt
    §3.3: scopes 1-4 are sess, txn, req, res)."""
    return b"".join(set_var_action(scope, "v", value) for scope, value in (
        (1, b"\x11"), (2, b"\x03" + varint(7)), (3, b"\x08" + spop_string("r")),
        (4, b"\x09" + spop_string(b"\x00s"))))


def _status(data: bytes) -> int:
    # an interim 100 Continue comes before the final answer
    for match in re.finditer(rb"HTTP/1\.[01] (\d{3})", data):
        if match.group(1) != b"100":
            return int(match.group(1))
    return 0


def _pick(head: bytes) -> bytes:
    match = re.search(rb"\r\nx-resp:[ \t]*([0-9])", head, re.IGNORECASE)
    return config.RESPONSES.get(match.group(1).decode() if match else "0",
                                config.RESPONSES["0"])


class _Backend(RawResponder):
    """HAProxy's server: the raw response the request's ``X-Resp`` header names."""

    def _answer(self, request: bytes) -> bytes:
        return _pick(request)


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    status, _, headers, body = parse_raw_response(_pick(
        b"\r\nx-resp: " + environ.get("HTTP_X_RESP", "0").encode("latin-1") + b"\r\n"))
    reason = {200: "OK", 302: "Found", 404: "Not Found", 418: "I Am A Teapot"}[status]
    start_response(f"{status} {reason}", [(n.decode("latin-1"), v.strip().decode("latin-1"))
                                          for n, v in headers])
    return [body]


_INTERIM = re.compile(rb"HTTP/1\.[01] 1\d\d[^\r\n]*\r\n(?:[^\r\n]+\r\n)*\r\n")


def _exchange(sock: Any, raw: bytes, timeout: float) -> bytes:
    """rules_support.exchange, past interim (100 Continue) answers: the final head, and the
    ``ok`` every backend answer ends with unless the request is a HEAD."""
    sock.sendall(raw)
    head_only = raw.startswith(b"HEAD ")
    deadline = time.monotonic() + timeout
    data = b""
    while time.monotonic() < deadline:
        final = data
        while (interim := _INTERIM.match(final)) is not None:
            final = final[interim.end():]
        if b"\r\n\r\n" in final and (head_only or final.endswith(b"ok")):
            break
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


class _Side:
    """One engine behind a recording agent: :meth:`send` returns the :class:`Observation`."""

    def __init__(self, agent: RecordingAgent, port: int, green: bool) -> None:
        self.agent, self.port, self.green = agent, port, green

    def send(self, raw: bytes, timeout: float = 5.0) -> Observation:
        before = len(self.agent.of_type(NOTIFY))
        try:
            if self.green:
                with gsocket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
                    data = _exchange(s, raw, timeout)
            else:
                with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
                    data = _exchange(s, raw, timeout)
        except OSError:
            data = b""
        if self.green:
            gevent.sleep(0)
        frames = self.agent.of_type(NOTIFY)[before:]
        messages = []
        for received in frames:
            frame = decode_frame(received.data)
            assert isinstance(frame, Notify)
            messages += [(m.name, tuple(m.args)) for m in frame.messages]
        return Observation(_status(data), tuple(messages))


@dataclass
class Pair:
    """HAProxy (:attr:`theirs`) and spoe_sync (:attr:`ours`), up and ready."""

    theirs: _Side
    ours: _Side

    def run(self, raw: bytes) -> tuple[Observation, Observation]:
        return self.theirs.send(raw), self.ours.send(raw)


@contextlib.contextmanager
def engines(haproxy_bin: str, handler: str = "spoe",
            workdir: Path | None = None) -> Iterator[Pair]:
    """HAProxy and spoe_sync on one haproxy.cfg and SPOE file (written to ``workdir``)."""
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="spoe-fuzz-")))
        port = free_port()
        their_agent = stack.enter_context(RecordingAgent(ack_payload=_ack))
        our_agent = stack.enter_context(RecordingAgent(ack_payload=_ack))
        backend = stack.enter_context(_Backend())
        files = {"spoe.conf": config.spoe_conf(str(workdir)), **config.FILES}
        stack.enter_context(run_haproxy(haproxy_bin, config.haproxy_cfg(port, their_agent.port,
                                                                         backend.port),
                                        workdir, files=files, ready_port=port))
        cfg_path = workdir / "ours.cfg"
        cfg_path.write_text(config.haproxy_cfg(free_port(), our_agent.port, backend.port))
        if handler == "gunicorn":
            gport = stack.enter_context(_gunicorn(cfg_path))
            yield Pair(_Side(their_agent, port, False), _Side(our_agent, gport, True))
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # capture-slot and similar notes: not under test
            mw = SpoeMiddleware.from_haproxy_cfg(app, str(cfg_path), "fe", buffer_body=16384)
        stack.callback(mw.close, 1)
        handler_class = SpoeWSGIHandler if handler == "spoe" else WSGIHandler
        server = WSGIServer(("127.0.0.1", 0), mw, handler_class=handler_class, log=None,
                            error_log=None)
        server.start()
        stack.callback(server.stop, 1)
        yield Pair(_Side(their_agent, port, False), _Side(our_agent, server.server_port, True))


@contextlib.contextmanager
def _gunicorn(cfg_path: Path) -> Iterator[int]:
    """gunicorn -k spoe_sync.wsgi.gunicorn.GeventWorker in a subprocess on the same middleware
    (gunicorn_app.py): its port once it listens."""
    root = Path(__file__).resolve().parents[3]
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    fd = sock.fileno()
    env = {**os.environ, "SPOE_FUZZ_CFG": str(cfg_path),
           "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-k", "spoe_sync.wsgi.gunicorn.GeventWorker", "-w",
         "1", "--bind", f"fd://{fd}", "--graceful-timeout", "1", "--log-level", "error",
         "tests.conformance.fuzz.gunicorn_app:application"],
        cwd=root, env=env, pass_fds=(fd,), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)  # gunicorn notes each HEAD body it drops
    try:
        port = sock.getsockname()[1]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # up once it answers a request
            if proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {proc.returncode}")
            try:
                with gsocket.create_connection(("127.0.0.1", port), timeout=2) as s:
                    s.sendall(b"GET /ready HTTP/1.1\r\nConnection: close\r\n\r\n")
                    if s.recv(16):
                        break
            except OSError:
                gevent.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        sock.close()
