"""Test helpers for the SPOP codec: construct's ``common()`` idiom, frame
builders written independently of the code under test, hypothesis strategies,
and the golden frames.

The builders here are a straight transcription of SPOE.txt §3 and HAProxy's
``intops.h``; they never call spoe_sync, so a test comparing spoe_sync's bytes
with them can fail.
"""

from __future__ import annotations

import glob
import json
import os
import random
import struct
from collections.abc import Callable, Iterator
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from hypothesis import strategies as st

from spoe_sync.protocol import (
    Ack,
    AgentDisconnect,
    AgentHello,
    Fragment,
    HaproxyDisconnect,
    HaproxyHello,
    Int32,
    Int64,
    Message,
    Notify,
    SetVar,
    UInt32,
    UInt64,
    UnknownFrame,
    UnsetVar,
    VarScope,
)

#: Number of fuzzed frames per fuzz test, and the seed (fixed, so a failure reproduces).
FUZZ_N = int(os.environ.get("SPOE_SYNC_FUZZ_N", "2000"))
FUZZ_SEED = int(os.environ.get("SPOE_SYNC_FUZZ_SEED", "20261127"))
GOLDEN_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "golden")
U64 = (1 << 64) - 1


# --------------------------------------------------------------------------- construct idiom


def common(fmt: Any, data: bytes, obj: Any, size: int | None = None) -> None:
    """construct's ``tests/declarativeunittest.py::common``: ``data`` parses to
    ``obj``, ``obj`` builds to ``data`` (and, when given, ``sizeof`` is ``size``)."""
    assert fmt.parse(data) == obj
    assert fmt.build(obj) == data
    if size is not None:
        assert fmt.sizeof() == size


def raises(fn: Callable[..., Any], *args: Any, **kw: Any) -> type[BaseException] | None:
    """The class of the exception ``fn(*args, **kw)`` raises, or None."""
    try:
        fn(*args, **kw)
    except Exception as exc:  # the point is to report any class
        return type(exc)
    return None


# --------------------------------------------------------------------------- independent builders


def varint(value: int) -> bytes:
    """``encode_varint()`` of haproxy/include/haproxy/intops.h, transcribed."""
    assert 0 <= value <= U64
    if value < 240:
        return bytes((value,))
    out = bytearray([(value & 0xFF) | 240])
    value = (value - 240) >> 4
    while value >= 128:
        out.append((value & 0xFF) | 128)
        value = (value - 128) >> 7
    out.append(value)
    return bytes(out)


def name(text: str | bytes) -> bytes:
    """An untyped name: varint length + bytes."""
    raw = text.encode() if isinstance(text, str) else text
    return varint(len(raw)) + raw


def t_null() -> bytes:
    return b"\x00"


def t_bool(value: bool) -> bytes:
    return b"\x11" if value else b"\x01"


def t_int(type_id: int, value: int) -> bytes:
    """An integer of type 2-5 as its uint64 bit pattern."""
    return bytes((type_id,)) + varint(value & U64)


def t_ipv4(text: str) -> bytes:
    return b"\x06" + IPv4Address(text).packed


def t_ipv6(text: str) -> bytes:
    return b"\x07" + IPv6Address(text).packed


def t_str(text: str | bytes) -> bytes:
    return b"\x08" + name(text)


def t_bin(data: bytes) -> bytes:
    return b"\x09" + name(data)


def kv(key: str, typed: bytes) -> bytes:
    return name(key) + typed


def message(msg_name: str, *args: tuple[str, bytes]) -> bytes:
    return name(msg_name) + bytes((len(args),)) + b"".join(kv(k, v) for k, v in args)


def set_var(scope: int, var: str, typed: bytes) -> bytes:
    return bytes((1, 3, scope)) + name(var) + typed


def unset_var(scope: int, var: str) -> bytes:
    return bytes((2, 2, scope)) + name(var)


def frame(ftype: int, payload: bytes, *, flags: int = 1, sid: int = 0, fid: int = 0) -> bytes:
    """FRAME-LENGTH + FRAME-TYPE + FLAGS + STREAM-ID + FRAME-ID + payload."""
    body = struct.pack(">BI", ftype, flags) + varint(sid) + varint(fid) + payload
    return struct.pack(">I", len(body)) + body


# --------------------------------------------------------------------------- golden frames


def golden_cases() -> Iterator[tuple[str, bytes, dict[str, Any]]]:
    """(name, wire bytes, JSON sidecar) of every frame captured from HAProxy 2.6.12."""
    for path in sorted(glob.glob(os.path.join(GOLDEN_DIR, "*", "*.hex"))):
        with open(path) as f:
            data = bytes.fromhex(f.read().strip())
        with open(path[:-4] + ".json") as f:
            sidecar = json.load(f)
        yield os.path.basename(path)[:-4], data, sidecar


# --------------------------------------------------------------------------- fuzzing

ACKS = [
    frame(103, set_var(2, "ip_score", t_int(4, 42)), sid=1234, fid=1),
    frame(103, set_var(1, "a", t_str("x" * 300)) + unset_var(4, "b") + set_var(0, "c", t_bin(b"\x00" * 20)),
          sid=7, fid=2288),
    frame(103, b"", sid=1, fid=1),
    frame(0, b"\x01\x02\x03", flags=3, sid=5, fid=5),
    frame(3, message("m", ("a", t_str("y"))), flags=0, sid=1, fid=1),
]
CORPUS = [data for _, data, _ in golden_cases()] + ACKS
"""The fuzz corpus: the golden frames and a few ACKs and fragments."""


def mutate(rnd: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rnd.randint(1, 4)):
        op = rnd.randrange(8)
        pos = rnd.randrange(len(buf) + 1)
        if op == 0 and buf:  # flip a bit
            i = rnd.randrange(len(buf))
            buf[i] ^= 1 << rnd.randrange(8)
        elif op == 1 and buf:  # any byte value
            buf[rnd.randrange(len(buf))] = rnd.randrange(256)
        elif op == 2:  # insert random bytes
            buf[pos:pos] = rnd.randbytes(rnd.randint(1, 8))
        elif op == 3:  # delete a slice
            del buf[pos:pos + rnd.randint(1, 16)]
        elif op == 4:  # truncate
            del buf[pos:]
        elif op == 5:  # a huge varint where a length or id may be
            buf[pos:pos] = varint(rnd.choice([1 << 20, 1 << 40, 1 << 60, (1 << 64) - 1]))
        elif op == 6:  # an overlong varint
            buf[pos:pos] = b"\xff" * rnd.randint(10, 14) + b"\x00"
        else:  # splice another frame's body in
            other = rnd.choice(CORPUS)
            buf[pos:pos] = other[4 + rnd.randrange(len(other) - 4):]
    if len(buf) >= 4 and rnd.random() < 0.75:
        # Mostly keep FRAME-LENGTH right so that the body is what gets parsed.
        buf[:4] = (len(buf) - 4).to_bytes(4, "big")
    return bytes(buf)


# --------------------------------------------------------------------------- hypothesis strategies

texts = st.text(max_size=40) | st.binary(max_size=40).map(lambda b: b.decode("utf-8", "surrogateescape"))
int64s = st.integers(-(1 << 63), (1 << 63) - 1)
uint64s = st.integers(0, U64)
ipv4s = st.integers(0, (1 << 32) - 1).map(IPv4Address)
ipv6s = st.integers(0, (1 << 128) - 1).map(IPv6Address)

values = st.one_of(
    st.none(), st.booleans(), int64s, int64s.map(Int64), int64s.map(Int32), uint64s.map(UInt32),
    uint64s.map(UInt64), st.sampled_from([0, 239, 240, 2287, 2288, -1, -(1 << 63), (1 << 63) - 1]),
    texts, st.binary(max_size=300), ipv4s, ipv6s,
)
"""Every SPOP value; integers of every wire type over their whole range."""

decoded_values = values.map(lambda v: Int64(v) if type(v) is int else v)
"""Values as the decoder returns them (a plain int comes back as Int64)."""

ids = st.one_of(st.integers(0, 300), uint64s)
flags = st.integers(0, 0xFFFFFFFF)
fin_flags = flags.map(lambda f: f | 1)
no_fin_flags = flags.map(lambda f: f & ~1)
scopes = st.sampled_from(list(VarScope))
kv_items = st.lists(st.tuples(texts, decoded_values), max_size=6).map(tuple)
messages = st.builds(Message, texts, st.lists(st.tuples(texts, decoded_values), max_size=8).map(tuple))
actions = st.one_of(st.builds(SetVar, scopes, texts, decoded_values), st.builds(UnsetVar, scopes, texts))


def _kv_frame(cls: Any) -> Any:
    return st.builds(cls, kv_items, flags, ids, ids)


frames = st.one_of(
    _kv_frame(HaproxyHello), _kv_frame(AgentHello), _kv_frame(HaproxyDisconnect),
    _kv_frame(AgentDisconnect),
    st.builds(Notify, ids, ids, st.lists(messages, max_size=4).map(tuple), fin_flags),
    st.builds(Ack, ids, ids, st.lists(actions, max_size=5).map(tuple), fin_flags),
    st.builds(Fragment, st.sampled_from([3, 103]), ids, ids, st.binary(max_size=60), no_fin_flags),
    st.builds(Fragment, st.just(0), ids, ids, st.binary(max_size=60), flags),
    st.builds(UnknownFrame, st.sampled_from([4, 50, 99, 100, 104, 255]), ids, ids,
              st.binary(max_size=60), flags),
)
"""Every frame that decodes back to itself (a decoder's view of the world)."""
