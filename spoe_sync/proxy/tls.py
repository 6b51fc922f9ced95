"""TLS for the TCP proxy: termination (HAProxy's ``bind :443 ssl crt site.pem``) and TLS towards
the upstream (``server s1 host:443 ssl verify required [ca-file ca.pem]``).

A :class:`TLSStream` runs OpenSSL through memory BIOs (:meth:`ssl.SSLContext.wrap_bio`) over a
plain gevent socket, rather than wrapping the socket as an ``SSLSocket``, because the proxy needs
three things an ``SSLSocket`` cannot do:

* a half-close: ``SSLSocket.shutdown(SHUT_WR)`` drops the TLS layer for both directions, while
  here ``shutdown(SHUT_WR)`` sends close_notify and the other direction still decrypts;
* a look at the first bytes without consuming them (``req.payload``): TLS has no ``MSG_PEEK``,
  so :meth:`TLSStream.peek` reads and keeps the bytes, and :meth:`TLSStream.recv` replays them;
* reads that never block the greenlet beyond the proxy's own deadlines: :meth:`TLSStream.recv`
  returns ``None`` when no whole record arrived yet, and the caller waits on :meth:`fileno`.

Any :class:`ssl.SSLContext` works (the standard library's or gevent's); the SNI the client sent
is recorded by an ``sni_callback`` that :func:`watch_sni` installs on a server context (it keeps
the callback that was there and calls it).
"""

from __future__ import annotations

import _ssl
import select
import ssl
import weakref
from collections.abc import Callable
from time import monotonic
from typing import Any

import gevent
from gevent import socket
from gevent.lock import Semaphore
from gevent.socket import wait_read

from ..rules.sources import TCPSamples

__all__ = ["TLSSamples", "TLSStream", "handshake_error", "server_context", "upstream_context", "watch_sni"]

_RECORD = 65536  # what one socket read asks for: several TLS records
_SNI: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
#: the C-level property, which gevent's SSLContext overrides (see watch_sni)
_BASE_SNI_CALLBACK: Any = _ssl._SSLContext.__dict__["sni_callback"]


def server_context(cert: str, key: str | None = None) -> ssl.SSLContext:
    """A server-side context from PEM files, as HAProxy's ``crt``: ``cert`` holds the
    certificate chain, and the private key too when ``key`` is not given.

    :raises OSError: a file cannot be read.
    :raises ssl.SSLError: the files hold no usable certificate or key.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.options |= ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_COMPRESSION
    try:
        # a password callback that refuses: OpenSSL would otherwise prompt on the terminal
        context.load_cert_chain(cert, key, password=_no_pass_phrase)
    except _PassPhraseNeeded:
        raise ssl.SSLError(f"{key or cert}: the private key is encrypted; spoe_sync takes no "
                           "pass phrase (decrypt it: openssl pkey -in KEY -out KEY.pem)") from None
    return context


class _PassPhraseNeeded(Exception):
    pass


def _no_pass_phrase() -> str:
    raise _PassPhraseNeeded


def upstream_context(*, verify: bool = True, ca_file: str | None = None) -> ssl.SSLContext:
    """A client-side context for the upstream: certificate and host name checked against the
    system CAs (or ``ca_file``), as ``ssl verify required``; ``verify=False`` is ``ssl verify
    none`` (encrypted, not authenticated)."""
    context = ssl.create_default_context(cafile=ca_file)
    context.options |= ssl.OP_NO_RENEGOTIATION
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def watch_sni(context: ssl.SSLContext) -> None:
    """Install the callback that records the SNI of each client on ``context`` (idempotent);
    a callback already set is kept and still called."""
    previous = _BASE_SNI_CALLBACK.__get__(context)
    if isinstance(previous, _SniRecorder):
        return
    if previous is not None and hasattr(previous, "user_function"):
        previous = previous.user_function  # gevent's SSLContext wraps callbacks for SSLSocket
    # set on the base type: gevent's SSLContext would wrap it for SSLSocket objects, and
    # wrap_bio() hands the callback an SSLObject
    _BASE_SNI_CALLBACK.__set__(context, _SniRecorder(previous))


class _SniRecorder:
    __slots__ = ("previous",)

    def __init__(self, previous: Callable[..., Any] | None) -> None:
        self.previous = previous

    def __call__(self, tls: Any, server_name: str | None, context: Any) -> Any:
        if server_name:
            _SNI[tls] = server_name
        if self.previous is not None:
            return self.previous(tls, server_name, context)
        return None


class TLSStream:
    """One TLS connection over a connected gevent socket (see the module docstring).

    :param sock: the connected socket (the stream owns it from now on).
    :param context: a server-side context (termination) or a client-side one (upstream).
    :param server_side: ``True`` for termination.
    :param server_hostname: the SNI and the name checked in the certificate (client side).

    :attr sni: the server name the client asked for (server side, after the handshake).
    """

    def __init__(self, sock: Any, context: ssl.SSLContext, *, server_side: bool,
                 server_hostname: str | None = None) -> None:
        self.sock = sock
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self.tls = context.wrap_bio(self._in, self._out, server_side=server_side,
                                    server_hostname=server_hostname)
        self.sni: str | None = None
        self._replay = b""
        self._eof = False
        self._starved = False  # OpenSSL wants more than the bytes it was given
        self._closing = False
        # both directions of the proxy write records to the socket (a read may answer a
        # key update); one writer at a time keeps the records in order
        self._send_lock = Semaphore()

    # -- socket surface used by the proxy -----------------------------------------------------

    def fileno(self) -> int:
        return int(self.sock.fileno())

    def setsockopt(self, *args: Any) -> None:
        self.sock.setsockopt(*args)

    def close(self) -> None:
        self.sock.close()

    def buffered(self) -> bool:
        """Data can be read without waiting on the socket (decrypted, replayed or raw)."""
        return (bool(self._replay) or self._eof or self.tls.pending() > 0
                or (self._in.pending > 0 and not self._starved))

    # -- handshake -----------------------------------------------------------------------------

    def handshake(self, timeout: float) -> None:
        """Run the TLS handshake within ``timeout`` seconds.

        :raises ssl.SSLError: the peer is not speaking TLS, or the certificate check failed.
        :raises OSError: the connection failed; ``socket.timeout`` when the time ran out.
        """
        deadline = monotonic() + timeout
        for _ in range(10_000):  # bounded: each turn waits for the peer or ends
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError:
                try:  # the alert that tells the peer why (unknown CA, bad record...)
                    self._flush()
                except OSError:
                    pass
                raise
            self._flush()
            if not self._fill(deadline - monotonic()):
                raise ConnectionAbortedError("connection closed during the TLS handshake")
        else:  # pragma: no cover - a peer sending a byte at a time for 10 000 turns
            raise ssl.SSLError("TLS handshake did not complete")
        self._flush()
        self.sni = _SNI.pop(self.tls, None)

    # -- data ----------------------------------------------------------------------------------

    def peek(self, size: int, delay: float | None) -> bytes:
        """Up to ``size`` decrypted bytes, waiting up to ``delay`` seconds (``None``: no limit)
        for some; they stay to be read by :meth:`recv`.  ``b""`` when none came or at EOF."""
        deadline = None if delay is None else monotonic() + delay
        for _ in range(100_000):  # bounded: each turn waits for the socket or ends
            if self._replay:
                break
            data = self._read(size, deadline)
            if data is None:
                if deadline is not None and monotonic() >= deadline:
                    return b""
                continue
            self._replay = data
            break
        return self._replay[:size]

    def recv(self, size: int) -> bytes | None:
        """Up to ``size`` decrypted bytes, ``b""`` at EOF (close_notify or a closed socket),
        ``None`` when no whole record is there yet: wait for :meth:`fileno` and call again."""
        if self._replay:
            data, self._replay = self._replay[:size], self._replay[size:]
            return data
        return self._read(size, 0.0)

    def send(self, data: bytes | memoryview) -> int:
        """Encrypt and send up to one record of ``data``; the count of bytes taken."""
        chunk = data[:16384]
        taken = self.tls.write(chunk)
        self._flush()
        return int(taken)

    def shutdown(self, how: int) -> None:
        """``SHUT_WR``: send close_notify, then end the socket's sending side (the peer can
        still send); ``SHUT_RDWR``: end the socket both ways at once (an abort)."""
        if how != socket.SHUT_RDWR and not self._closing:
            self._closing = True
            # unwrap() calls SSL_shutdown() twice, and the second call reads the peer's
            # records waiting in the BIO: application data then fails the connection
            # (APPLICATION_DATA_AFTER_CLOSE_NOTIFY) and the other direction would end early
            # with a clean-looking EOF.  They are set aside while it runs, then put back;
            # so are the bytes OpenSSL already deciphered (a peek left part of a record).
            try:
                pending = self.tls.pending()
                if pending:
                    self._replay += bytes(self.tls.read(pending))
            except ssl.SSLError:
                pass
            held = self._in.read()
            try:
                self.tls.unwrap()
            except (ssl.SSLWantReadError, ssl.SSLError):
                pass  # close_notify is queued; the peer's own close_notify is not awaited
            finally:
                if held and not self._in.eof:
                    self._in.write(held)
            try:
                self._flush()
            except OSError:
                pass
        self.sock.shutdown(how)

    # -- internals -----------------------------------------------------------------------------

    def _read(self, size: int, deadline: float | None) -> bytes | None:
        """Decrypt up to ``size`` bytes, reading the socket until ``deadline`` (``None``: no
        limit; in the past: only what is already there).  ``None`` when nothing came yet."""
        for _ in range(10_000):  # bounded: a record is at most 16 KiB, reads are _RECORD
            try:
                return bytes(self.tls.read(size))
            except ssl.SSLWantReadError:
                self._starved = True
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""  # close_notify, or the socket closed without one (ragged EOF)
            self._flush()  # a read may have produced records to send (key update)
            if self._eof:
                return b""
            try:
                more = self._fill(None if deadline is None else deadline - monotonic())
            except socket.timeout:
                return None
            if not more:
                self._in.write_eof()
                self._eof = True
        return None  # pragma: no cover

    def _fill(self, timeout: float | None) -> bool:
        """Move what the socket holds into OpenSSL, waiting up to ``timeout`` seconds for it
        (``None``: no limit; 0 or less: only if it is there now); ``False`` at EOF.

        :raises socket.timeout: nothing came in time.
        """
        if timeout is None or timeout > 0:
            try:
                wait_read(self.sock.fileno(), timeout=timeout)
            except (TimeoutError, socket.timeout):
                raise socket.timeout("timed out") from None
        elif not _readable(self.sock):
            raise socket.timeout("timed out")
        raw = self.sock.recv(_RECORD)
        if not raw:
            return False
        self._in.write(raw)
        self._starved = False
        return True

    def _flush(self) -> None:
        if not self._out.pending:
            return
        with self._send_lock:
            data = self._out.read()
            if data:
                self.sock.sendall(data)


def _readable(sock: Any) -> bool:
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    return bool(poller.poll(0))


def handshake_error(exc: BaseException) -> str:
    """A one-line reason for a failed handshake, for the debug log."""
    if isinstance(exc, (gevent.Timeout, TimeoutError)):
        return "handshake timeout"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    return f"{type(exc).__name__}: {exc}"


class TLSSamples(TCPSamples):
    """The samples of a connection whose TLS the proxy terminated: ``ssl_fc`` is true, and
    :attr:`sni` holds the server name the client sent (``ssl_fc_sni``), ``None`` without SNI.
    ``req.payload`` holds the decrypted bytes."""

    def __init__(self, client_addr: object, local_addr: object = None, *,
                 sni: str | None = None) -> None:
        super().__init__(client_addr, local_addr, ssl=True)
        self.sni = sni
        self.sni_known = True
