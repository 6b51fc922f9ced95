"""Codec benchmark: spoe_sync's SPOP codec against a minimal hand-written
``struct`` reference codec (issue 2, "Benchmark and target").

Run: ``python benchmarks/codec.py [--budget SECONDS]``.

Cases (SPOE.txt §3.2.6-3.2.7):

* typical NOTIFY: one message, args ``ip=src path=path`` (an IPv4 and a short string);
* heavy NOTIFY: one message, arg ``hdrs=req.hdrs_bin`` (a 4 KiB BINARY);
* typical ACK: one set-var (``txn.ip_score`` = INT64 42).

Our side is the hot-path API: :class:`MessageEncoder` + :func:`encode_notify` to
encode, :func:`decode_frame` to decode.  The reference is what a careful person
writes by hand with ``struct`` for exactly these shapes; its decoder builds the
same frame dataclasses as ours (a codec has to hand frames to its caller), and a
second, "tuples" reference shows the cost of that object construction alone.

Ours and the reference are timed in alternation (``timeit``), round after
round, and each figure is a median over the rounds; ``--budget`` bounds the time
spent per comparison.  Target: typical NOTIFY encode and typical ACK decode
each within 3x of the reference.
"""

from __future__ import annotations

import argparse
import statistics
import struct
import time
import timeit
from collections.abc import Callable
from ipaddress import IPv4Address

from spoe_sync.protocol import (
    Ack,
    Int64,
    Message,
    MessageEncoder,
    Notify,
    SetVar,
    VarScope,
    decode_frame,
    encode_frame,
    encode_notify,
)
from spoe_sync.protocol.codec import decode_frame_body_by_grammar, encode_frame_by_grammar

# --------------------------------------------------------------------------- reference

_HEAD = struct.Struct(">IBI")
_IPV4 = struct.Struct(">4s")


def ref_varint(value: int) -> bytes:
    if value < 240:
        return bytes((value,))
    out = bytearray(((value & 0xFF) | 0xF0,))
    value = (value - 240) >> 4
    while value >= 128:
        out.append((value & 0xFF) | 0x80)
        value = (value - 128) >> 7
    out.append(value)
    return bytes(out)


def ref_read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = buf[pos]
    pos += 1
    if value < 240:
        return value, pos
    shift = 4
    while True:
        byte = buf[pos]
        pos += 1
        value += byte << shift
        if byte < 128:
            return value & 0xFFFFFFFFFFFFFFFF, pos
        shift += 7


def ref_encode_typical(sid: int, fid: int, ip: IPv4Address, path: str) -> bytes:
    data = path.encode()
    payload = b"".join((b"\x0bcheck-ip-ua\x02\x02ip\x06", ip.packed, b"\x04path\x08",
                        ref_varint(len(data)), data))
    ids = ref_varint(sid) + ref_varint(fid)
    return _HEAD.pack(5 + len(ids) + len(payload), 3, 1) + ids + payload


def ref_encode_heavy(sid: int, fid: int, hdrs: bytes) -> bytes:
    payload = b"".join((b"\x07headers\x01\x04hdrs\x09", ref_varint(len(hdrs)), hdrs))
    ids = ref_varint(sid) + ref_varint(fid)
    return _HEAD.pack(5 + len(ids) + len(payload), 3, 1) + ids + payload


def _ref_header(data: bytes) -> tuple[int, int, int, int, int]:
    size, ftype, flags = _HEAD.unpack_from(data)
    if size != len(data) - 4:
        raise ValueError("bad length")
    sid, pos = ref_read_varint(data, 9)
    fid, pos = ref_read_varint(data, pos)
    return ftype, flags, sid, fid, pos


def ref_decode_notify(data: bytes, frames: bool = True) -> object:
    """Messages whose args are IPv4, STRING or BINARY (what the cases use)."""
    _, flags, sid, fid, pos = _ref_header(data)
    messages = []
    while pos < len(data):
        size, pos = ref_read_varint(data, pos)
        name = data[pos:pos + size].decode()
        pos += size
        args = []
        count = data[pos]
        pos += 1
        for _ in range(count):
            size, pos = ref_read_varint(data, pos)
            arg = data[pos:pos + size].decode()
            pos += size
            dtype = data[pos] & 0x0F
            pos += 1
            if dtype == 6:
                value: object = IPv4Address(_IPV4.unpack_from(data, pos)[0])
                pos += 4
            else:
                size, pos = ref_read_varint(data, pos)
                raw = data[pos:pos + size]
                value = raw.decode() if dtype == 8 else raw
                pos += size
            args.append((arg, value))
        messages.append(Message(name, tuple(args)) if frames else (name, args))
    return Notify(sid, fid, tuple(messages), flags) if frames else (sid, fid, messages)


def ref_decode_ack(data: bytes, frames: bool = True) -> object:
    """Set-var actions with an INT64 value (what the case uses)."""
    _, flags, sid, fid, pos = _ref_header(data)
    actions = []
    while pos < len(data):
        if data[pos] != 1 or data[pos + 1] != 3:
            raise ValueError("unexpected action")
        scope = data[pos + 2]
        size, pos = ref_read_varint(data, pos + 3)
        name = data[pos:pos + size].decode()
        pos += size
        if data[pos] != 4:
            raise ValueError("unexpected type")
        raw, pos = ref_read_varint(data, pos + 1)
        value = raw - (1 << 64) if raw >= 1 << 63 else raw
        actions.append(SetVar(VarScope(scope), name, Int64(value)) if frames
                       else (scope, name, value))
    return Ack(sid, fid, tuple(actions), flags) if frames else (sid, fid, actions)


# --------------------------------------------------------------------------- timing


def _calibrate(timer: timeit.Timer) -> tuple[int, float]:
    number, elapsed = 1, 0.0
    while elapsed < 0.005:  # one run of about 5 ms at least
        number *= 2
        elapsed = timer.timeit(number)
    return number, elapsed


def compare(ours: Callable[[], object], ref: Callable[[], object],
            budget: float) -> tuple[float, float, float]:
    """Microseconds per call of ``ours`` and ``ref`` and their ratio.

    The two are timed in alternation, round after round, so that a change of
    machine load hits both; the figures are medians over the rounds (the ratio
    is the median of the per-round ratios).  About ``budget`` seconds in all.
    """
    t_ours, t_ref = timeit.Timer(ours), timeit.Timer(ref)
    n_ours, e_ours = _calibrate(t_ours)
    n_ref, e_ref = _calibrate(t_ref)
    rounds = max(5, min(41, int(budget / (e_ours + e_ref))))
    a_runs, b_runs = [], []
    for _ in range(rounds):
        a_runs.append(t_ours.timeit(n_ours) / n_ours * 1e6)
        b_runs.append(t_ref.timeit(n_ref) / n_ref * 1e6)
    ratio = statistics.median(a / b for a, b in zip(a_runs, b_runs))
    return statistics.median(a_runs), statistics.median(b_runs), ratio


def hdrs_bin(total: int) -> bytes:
    """A ``req.hdrs_bin`` block of exactly ``total`` bytes (docs/explanation/agents.md §3.3):
    a few usual headers, then an ``x-pad`` header filling the rest, then ``00 00``."""
    block = b"".join(ref_varint(len(n)) + n + ref_varint(len(v)) + v for n, v in (
        (b"host", b"www.example.com"), (b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64)"),
        (b"accept", b"*/*"), (b"cookie", b"session=" + b"c" * 600)))
    head = block + b"\x05x-pad"
    size = total - len(head) - 3 - 2  # a 3-byte varint length, the terminator
    return head + ref_varint(size) + b"p" * size + b"\x00\x00"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=0.4,
                        help="seconds spent per comparison (default 0.4)")
    budget = parser.parse_args().budget
    started = time.monotonic()

    ip, path = IPv4Address("192.168.10.20"), "/api/v1/users/42/profile"
    hdrs = hdrs_bin(4096)
    typical_enc = MessageEncoder("check-ip-ua", ["ip", "path"])
    heavy_enc = MessageEncoder("headers", ["hdrs"])
    sid, fid = 1234, 1

    typical = encode_notify(sid, fid, typical_enc.encode((ip, path)))
    heavy = encode_notify(sid, fid, heavy_enc.encode((hdrs,)))
    ack = encode_frame(Ack(sid, fid, (SetVar(VarScope.TXN, "ip_score", Int64(42)),)))
    # The reference must read and write the very same bytes and frames.
    assert ref_encode_typical(sid, fid, ip, path) == typical
    assert ref_encode_heavy(sid, fid, hdrs) == heavy
    assert ref_decode_notify(typical) == decode_frame(typical)
    assert ref_decode_notify(heavy) == decode_frame(heavy)
    assert ref_decode_ack(ack) == decode_frame(ack)

    rows = [
        ("typical NOTIFY encode", len(typical),
         lambda: encode_notify(sid, fid, typical_enc.encode((ip, path))),
         lambda: ref_encode_typical(sid, fid, ip, path), None),
        ("typical NOTIFY decode", len(typical), lambda: decode_frame(typical),
         lambda: ref_decode_notify(typical), lambda: ref_decode_notify(typical, False)),
        ("heavy NOTIFY encode", len(heavy),
         lambda: encode_notify(sid, fid, heavy_enc.encode((hdrs,))),
         lambda: ref_encode_heavy(sid, fid, hdrs), None),
        ("heavy NOTIFY decode", len(heavy), lambda: decode_frame(heavy),
         lambda: ref_decode_notify(heavy), lambda: ref_decode_notify(heavy, False)),
        ("typical ACK decode", len(ack), lambda: decode_frame(ack),
         lambda: ref_decode_ack(ack), lambda: ref_decode_ack(ack, False)),
    ]
    assert len(hdrs) == 4096
    print(f"{'case':<24}{'bytes':>6}{'spoe_sync us':>14}{'struct us':>11}{'ratio':>7}"
          f"{'struct->tuples us':>19}{'ratio':>7}")
    for name, size, ours, ref, ref_tuples in rows:
        a, b, ratio = compare(ours, ref, budget)
        if ref_tuples is not None:
            _, c, ratio_c = compare(ours, ref_tuples, budget)
            tuples = f"{c:>19.2f}{ratio_c:>6.1f}x"
        else:
            tuples = f"{'-':>19}{'-':>7}"
        target = "  (target <= 3x)" if name in ("typical NOTIFY encode", "typical ACK decode") else ""
        print(f"{name:<24}{size:>6}{a:>14.2f}{b:>11.2f}{ratio:>6.1f}x{tuples}{target}")
    # For orientation: the declarative construct grammar alone (every check, no
    # fast path), i.e. what the fast paths are proven equal to.
    notify = decode_frame(typical)
    for name, fn, ref in [
        ("typical NOTIFY encode, grammar path", lambda: encode_frame_by_grammar(notify),
         lambda: ref_encode_typical(sid, fid, ip, path)),
        ("typical ACK decode, grammar path", lambda: decode_frame_body_by_grammar(ack[4:]),
         lambda: ref_decode_ack(ack)),
    ]:
        a, _, ratio = compare(fn, ref, budget)
        print(f"{name:<36}{a:>8.2f} us {ratio:>6.1f}x the struct reference")
    print(f"(median of repeated runs; struct decoders build the same frame objects; "
          f"'struct->tuples' builds tuples instead; {time.monotonic() - started:.1f}s)")


if __name__ == "__main__":
    main()
