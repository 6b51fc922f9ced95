"""The sample fetches spoe_sync implements, by family.

Each fetch is a function ``fn(ctx, args) -> Value`` (``None`` = the fetch failed) registered with
:func:`fetch`.  Fetches with several values (headers, cookies) may also register ``many``: what an
ACL iterates over (HAProxy's ``SMP_OPT_ITERATE``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ...protocol.values import Value

__all__ = ["ALIASES", "REGISTRY", "FetchDef", "fetch"]

FetchFn = Callable[[Any, tuple[Any, ...]], Value]
ManyFn = Callable[[Any, tuple[Any, ...]], Sequence[Value]]


@dataclass(frozen=True)
class FetchDef:
    """An implemented fetch.

    :attr args: argument types (``int str ipv4 ipv6 var bool hex``); a ``?`` suffix marks an
        optional one.
    :attr literal: computed from its arguments or variables only, never from the sample source.
    """

    name: str
    args: tuple[str, ...]
    out: str
    fn: FetchFn
    many: ManyFn | None = None
    literal: bool = False


REGISTRY: dict[str, FetchDef] = {}

# Deprecated or short names HAProxy keeps, mapped to the canonical fetch.
ALIASES: dict[str, str] = {
    "hdr": "req.hdr",
    "cook": "req.cook",
    "cook_cnt": "req.cook_cnt",
    "cook_val": "req.cook_val",
    "scook_cnt": "res.cook_cnt",
    "scook_val": "res.cook_val",
    "shdr_cnt": "res.hdr_cnt",
    "shdr_val": "res.hdr_val",
    "cookie": "req.cook",
    "hdr_cnt": "req.hdr_cnt",
    "hdr_val": "req.hdr_val",
    "hdr_ip": "req.hdr_ip",
    "req_len": "req.len",
    "req_ver": "req.ver",
    "resp_ver": "res.ver",
    "req_proto_http": "req.proto_http",
    "payload": "req.payload",
    "shdr": "res.hdr",
    "scook": "res.cook",
    "urlp": "url_param",
    "req_ssl_sni": "req.ssl_sni",
    "req_ssl_ver": "req.ssl_ver",
    "req_ssl_hello_type": "req.ssl_hello_type",
}


F = TypeVar("F", bound=Callable[..., Any])


def fetch(name: str, *args: str, out: str, many: ManyFn | None = None,
          literal: bool = False) -> Callable[[F], F]:
    def register(fn: F) -> F:
        REGISTRY[name] = FetchDef(name, tuple(args), out, fn, many, literal)
        return fn
    return register


def _load_families() -> None:
    from . import (  # noqa: F401 - registration side effects
        capture,
        hashes,
        http,
        internal,
        l4,
        literal,
        tls,
    )


_load_families()
