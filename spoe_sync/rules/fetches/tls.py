"""TLS ClientHello fetches on the raw request buffer (``req.ssl_*``, configuration.txt §7.3.5),
for TCP proxies that inspect the first bytes a client sends."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...protocol.values import Value
from ..casts import to_text
from . import fetch


@dataclass(frozen=True)
class ClientHello:
    version: int  # the ClientHello's client_version, major << 16 | minor
    extensions: tuple[tuple[int, bytes], ...]
    session_id: bytes


def parse_client_hello(data: bytes | None) -> ClientHello | None:
    """The first TLS record of ``data`` as a ClientHello, or ``None`` when the buffer does not
    hold a complete one (HAProxy fails the fetch until it does)."""
    if not data or len(data) < 5 or data[0] != 0x16 or data[1] < 3:
        return None
    rec_len = int.from_bytes(data[3:5], "big")
    body = data[5:5 + rec_len]
    if len(body) < rec_len or len(body) < 4 or body[0] != 1:
        return None
    hs_len = int.from_bytes(body[1:4], "big")
    hello = body[4:4 + hs_len]
    if len(hello) < hs_len or len(hello) < 35:
        return None
    pos = 34  # client_version (2) + random (32)
    sid_len = hello[pos]
    session_id = hello[pos + 1:pos + 1 + sid_len]
    pos += 1 + sid_len
    if pos + 2 > len(hello):
        return None
    pos += 2 + int.from_bytes(hello[pos:pos + 2], "big")  # cipher suites
    if pos + 1 > len(hello):
        return None
    pos += 1 + hello[pos]  # compression methods
    extensions: list[tuple[int, bytes]] = []
    if pos + 2 <= len(hello):
        end = min(len(hello), pos + 2 + int.from_bytes(hello[pos:pos + 2], "big"))
        pos += 2
        while pos + 4 <= end:
            ext_type = int.from_bytes(hello[pos:pos + 2], "big")
            ext_len = int.from_bytes(hello[pos + 2:pos + 4], "big")
            extensions.append((ext_type, hello[pos + 4:pos + 4 + ext_len]))
            pos += 4 + ext_len
    return ClientHello((hello[0] << 16) + hello[1], tuple(extensions), session_id)


def _ext(hello: ClientHello | None, ext_type: int) -> bytes | None:
    if hello is None:
        return None
    return next((body for t, body in hello.extensions if t == ext_type), None)


def _hello(ctx: Any) -> ClientHello | None:
    return parse_client_hello(ctx.samples.req_payload)


@fetch("req.ssl_hello_type", out="sint")
def _hello_type(ctx: Any, args: tuple[Any, ...]) -> Value:
    return 1 if _hello(ctx) is not None else None


@fetch("req.ssl_ver", out="sint")
def _ssl_ver(ctx: Any, args: tuple[Any, ...]) -> Value:
    hello = _hello(ctx)
    return None if hello is None else hello.version


@fetch("req.ssl_sni", out="str")
def _ssl_sni(ctx: Any, args: tuple[Any, ...]) -> Value:
    body = _ext(_hello(ctx), 0)
    # server_name_list: total(2) then name_type(1) len(2) name
    if body is None or len(body) < 5 or body[2] != 0:
        return None
    name_len = int.from_bytes(body[3:5], "big")
    return to_text(body[5:5 + name_len]) if len(body) >= 5 + name_len else None


@fetch("req.ssl_alpn", out="str")
def _ssl_alpn(ctx: Any, args: tuple[Any, ...]) -> Value:
    body = _ext(_hello(ctx), 16)
    # protocol_name_list: total(2) then len(1) name...; HAProxy returns the first name
    if body is None or len(body) < 3:
        return None
    first = body[2]
    return to_text(body[3:3 + first]) if len(body) >= 3 + first else None


@fetch("req.ssl_ec_ext", out="bool")
def _ssl_ec_ext(ctx: Any, args: tuple[Any, ...]) -> Value:
    hello = _hello(ctx)
    return None if hello is None else _ext(hello, 10) is not None


@fetch("req.ssl_st_ext", out="sint")
def _ssl_st_ext(ctx: Any, args: tuple[Any, ...]) -> Value:
    hello = _hello(ctx)
    if hello is None:
        return None
    ticket = _ext(hello, 35)
    return 0 if ticket is None else (2 if ticket else 1)
