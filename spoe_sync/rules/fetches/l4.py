"""Layer 4/5 and internal-state fetches: src dst ports, ssl_fc (and its SNI), fe_id,
unique-id, payloads."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ...protocol.values import Value
from ..sources import htx_data_size
from . import fetch


@fetch("src", out="addr")
def _src(ctx: Any, args: tuple[Any, ...]) -> Value:
    c = ctx.samples.client
    return c[0] if c else None


@fetch("src_port", out="sint")
def _src_port(ctx: Any, args: tuple[Any, ...]) -> Value:
    c = ctx.samples.client
    return c[1] if c else None


@fetch("dst", out="addr")
def _dst(ctx: Any, args: tuple[Any, ...]) -> Value:
    c = ctx.samples.local
    return c[0] if c else None


@fetch("dst_port", out="sint")
def _dst_port(ctx: Any, args: tuple[Any, ...]) -> Value:
    c = ctx.samples.local
    return c[1] if c else None


@fetch("ssl_fc", out="bool")
def _ssl_fc(ctx: Any, args: tuple[Any, ...]) -> Value:
    return bool(ctx.samples.ssl)


@fetch("ssl_fc_sni", out="str")
def _ssl_fc_sni(ctx: Any, args: tuple[Any, ...]) -> Value:
    # HAProxy: the SNI of a connection it deciphers; absent (NULL) otherwise
    samples = ctx.samples
    sni: str | None = samples.sni if samples.ssl else None
    return sni


@fetch("ssl_fc_has_sni", out="bool")
def _ssl_fc_has_sni(ctx: Any, args: tuple[Any, ...]) -> Value:
    # HAProxy: false, not absent, on a connection without TLS (checked in the conformance tier)
    samples = ctx.samples
    if not samples.ssl:
        return False
    if not samples.sni_known:
        return None  # TLS ended in a server that does not say (a WSGI server)
    return samples.sni is not None


@fetch("fe_id", out="sint")
def _fe_id(ctx: Any, args: tuple[Any, ...]) -> Value:
    fe_id: int | None = ctx.samples.frontend_id
    return fe_id


@fetch("unique-id", out="str")
def _unique_id(ctx: Any, args: tuple[Any, ...]) -> Value:
    uid: str | None = ctx.samples.unique_id
    return uid


def _payload(data: bytes | None, args: tuple[Any, ...]) -> Value:
    if data is None:
        return None
    offset, length = args
    if length == 0:
        # "if <length> is zero, the whole buffer from <offset> to the end is extracted"
        return data[offset:] if offset <= len(data) else None
    if offset + length > len(data):
        return None  # HAProxy waits for more data; once the buffer is final, the fetch fails
    return data[offset:offset + length]


@fetch("req.payload", "int", "int", out="bin")
def _req_payload(ctx: Any, args: tuple[Any, ...]) -> Value:
    return _payload(ctx.samples.req_payload, args)


@fetch("res.payload", "int", "int", out="bin")
def _res_payload(ctx: Any, args: tuple[Any, ...]) -> Value:
    return _payload(ctx.samples.res_payload, args)


@fetch("req.len", out="sint")
def _req_len(ctx: Any, args: tuple[Any, ...]) -> Value:
    samples = ctx.samples
    data = samples.req_payload
    if data is None and samples.request is not None:
        return htx_data_size(samples.request)  # an HTTP stream: HAProxy counts its HTX
    return None if data is None else len(data)


@fetch("res.len", out="sint")
def _res_len(ctx: Any, args: tuple[Any, ...]) -> Value:
    samples = ctx.samples
    data = samples.res_payload
    res = samples.response
    if data is None and res is not None:
        req = samples.request
        head = req is not None and req.method == "HEAD"
        return htx_data_size(replace(res, body=b"") if head else res)  # HEAD: no body
    return None if data is None else len(data)
