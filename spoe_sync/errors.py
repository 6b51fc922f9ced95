"""Every exception spoe_sync raises on purpose, and nothing else.

The hierarchy follows h11 (Local vs Remote protocol errors), h2 (exceptions carry
the wire status code) and urllib3 (context lives in attributes, not only in the
message).  Anything that escapes a public call and is *not* a :class:`SpoeError`
(a raw ``gevent.Timeout``, ``OSError``, ``construct.ConstructError``, ``KeyError``)
is a bug.

Layers append their own classes in the section that carries their name, so each
layer's authors edit one place only.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "EngineClosed",
    "ExpressionError",
    "HeaderBlockError",
    "LocalProtocolError",
    "MessageTooLarge",
    "ProcessingError",
    "ProcessingInterrupted",
    "ProcessingTimeout",
    "ProtocolError",
    "RemoteProtocolError",
    "ResourceError",
    "SpoeConfigWarning",
    "SpoeError",
    "VariableError",
]


class SpoeError(Exception):
    """Root of everything spoe_sync raises on purpose."""


# --------------------------------------------------------------------------- protocol


class ProtocolError(SpoeError):
    """A SPOP rule was broken.  Abstract: raise one of the two children.

    :attr status: the SPOP status code (SPOE.txt §3.5) that the connection must
        send in its HAPROXY-DISCONNECT because of this error: 3 frame too big,
        4 invalid frame, 10 fragmentation not supported, 11 invalid interlaced
        frames, 12 frame-id not found, ...
    """

    def __init__(self, message: str, status: int = 4) -> None:
        if type(self) is ProtocolError:
            raise TypeError("ProtocolError is abstract; raise LocalProtocolError or RemoteProtocolError")
        super().__init__(message)
        self.message = message
        self.status = int(status)

    def __str__(self) -> str:
        return f"{self.message} (SPOP status {self.status})"

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (type(self), (self.message, self.status))


class LocalProtocolError(ProtocolError):
    """We were about to do something SPOP forbids (a frame over the negotiated
    max-frame-size, a NOTIFY before the handshake, ...)."""


class RemoteProtocolError(ProtocolError):
    """The agent sent bytes that break SPOP (malformed frame, unknown frame-id in
    sync mode, a bad AGENT-HELLO, ...).  Raised by the decoder and by the sans-IO
    connection's ``receive_data``/``next_event``."""


# --------------------------------------------------------------------------- rules


class ExpressionError(SpoeError, ValueError):
    """A sample expression, converter, ACL or condition could not be parsed.

    :attr text: the text being parsed; :attr position: 0-based offset of the
        problem in ``text`` (or ``None`` when it concerns the whole text).
    """

    def __init__(self, message: str, text: str = "", position: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.text = text
        self.position = position

    def __str__(self) -> str:
        if self.position is None or not self.text:
            return self.message
        return f"{self.message} (at character {self.position + 1} of '{self.text}')"

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (type(self), (self.message, self.text, self.position))


class HeaderBlockError(SpoeError, ValueError):
    """A ``req.hdrs_bin``-style header block is malformed (``decode_hdrs_bin``)."""


# --------------------------------------------------------------------------- config


class ConfigError(SpoeError, ValueError):
    """A SPOE configuration (or haproxy.cfg backend section) is invalid.

    :attr filename: the file, or ``"<string>"`` for text.
    :attr lineno: 1-based line number, or ``None`` for file-level problems.
    :attr message: the message alone, without location.
    :attr errors: every error found (``haproxy -c`` reports them all); a single
        error is its own one-element tuple.
    """

    def __init__(
        self,
        message: str,
        filename: str | None = None,
        lineno: int | None = None,
        errors: tuple[ConfigError, ...] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.filename = filename
        self.lineno = lineno
        self.errors: tuple[ConfigError, ...] = errors or (self,)

    @property
    def location(self) -> str:
        if self.filename is None:
            return ""
        if self.lineno is None:
            return f"[{self.filename}]"
        return f"[{self.filename}:{self.lineno}]"

    def __str__(self) -> str:
        if len(self.errors) > 1:
            return "\n".join(_one_line(e) for e in self.errors)
        return _one_line(self)

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (type(self), (self.message, self.filename, self.lineno, self.errors if len(self.errors) > 1 else ()))


def _one_line(err: ConfigError) -> str:
    loc = err.location
    return f"{loc} {err.message}" if loc else err.message


class SpoeConfigWarning(UserWarning):
    """A configuration that HAProxy accepts with a warning (message without event,
    missing timeouts, group never used, ...)."""


# --------------------------------------------------------------------------- engine


# Agent failures are never raised: the engine fails open and reports them as a
# status on the result (256+N for SPOP status N, 2 for no connection), and
# raise_for_status() turns that into a ProcessingError below.  An agent's
# AGENT-DISCONNECT is an event of the sans-IO connection
# (spoe_sync.protocol.AgentDisconnected), not an exception.


class ProcessingError(SpoeError):
    """Raised on request only (``result.raise_for_status()``): an event or group
    ended with a non-zero status.

    :attr status: the stream status (1 timeout, 2 resources, 3 too big, 4 aborted,
        5 interrupted, 255 unknown, 256+N SPOP status N).
    :attr result: the full processing result.
    """

    def __init__(self, message: str, status: int, result: object = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.result = result

    def __str__(self) -> str:
        return f"{self.message} (st={self.status})"

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (type(self), (self.message, self.status, self.result))


class ProcessingTimeout(ProcessingError, TimeoutError):
    """``timeout processing`` elapsed (status 1)."""


class ResourceError(ProcessingError):
    """No agent connection could be had for the stream (status 2)."""


class MessageTooLarge(ProcessingError):
    """The NOTIFY does not fit the frame size and may not be fragmented (status 3)."""


class ProcessingInterrupted(ProcessingError):
    """The agent aborted a fragmented NOTIFY (4) or the processing was
    interrupted (5)."""


class EngineClosed(SpoeError):
    """The engine was used after :meth:`Engine.close`."""


class VariableError(SpoeError, ValueError):
    """A variable name is invalid, a value cannot be stored, or a variable cap
    (count or bytes) would be exceeded.

    :attr name: the variable name concerned (``None`` when it is about a value);
    :attr reason: a short code: ``invalid-name``, ``unknown-scope``,
        ``too-many-vars``, ``too-many-bytes``, ``bad-value``.
    """

    def __init__(self, message: str, name: str | None = None, reason: str = "invalid-name") -> None:
        super().__init__(message)
        self.message = message
        self.name = name
        self.reason = reason

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (type(self), (self.message, self.name, self.reason))
