"""Fuzzing the frame decoder (SPOE.txt §3.2; issue 2 "A fuzz test"): random
and mutated frames (mutations of the HAProxy 2.6.12 golden frames and of
ACK frames) never raise anything but ProtocolError, and decoding never
allocates in proportion to a length an agent claims.

``SPOE_SYNC_FUZZ_N`` sets the number of mutated frames (default 2000, a few
seconds); ``SPOE_SYNC_FUZZ_SEED`` the random seed (default fixed, so a failure
reproduces).  A failure message carries the offending frame in hex.
"""

from __future__ import annotations

import os
import random
import time
import tracemalloc
from collections.abc import Callable

import pytest

from spoe_sync.errors import ProtocolError
from spoe_sync.protocol import codec, decode_frame, decode_frame_body, decode_payload

from .helpers import (
    CORPUS,
    FUZZ_N,
    FUZZ_SEED,
    frame,
    kv,
    mutate,
    name,
    set_var,
    varint,
)

#: Wall-clock ceiling for one fuzz test: running out of it is a failure (the
#: count is the bound that normally ends the loop).
FUZZ_SECONDS = float(os.environ.get("SPOE_SYNC_FUZZ_SECONDS", "600"))

def _check(fn: Callable[[bytes], object], data: bytes, what: str) -> None:
    try:
        fn(data)
    except ProtocolError:
        pass
    except Exception as exc:  # the decoder let something else through: a bug
        pytest.fail(f"{what}: {type(exc).__name__}: {exc} on input {data.hex()}")


def _run(make: Callable[[random.Random], bytes]) -> int:
    rnd = random.Random(FUZZ_SEED)
    deadline = time.monotonic() + FUZZ_SECONDS
    done = 0
    while done < FUZZ_N and time.monotonic() < deadline:
        data = make(rnd)
        _check(decode_frame, data, "decode_frame")
        if len(data) > 4:
            body = data[4:]
            _check(decode_frame_body, body, "decode_frame_body")
            _check(lambda b: decode_payload(b[0], b[1:], flags=1), body, "decode_payload")
        done += 1
    assert done == FUZZ_N, f"only {done} of {FUZZ_N} frames in {FUZZ_SECONDS}s (SPOE_SYNC_FUZZ_SECONDS)"
    return done


# pytest-timeout's default (setup.cfg) is too short for SPOE_SYNC_FUZZ_N=100000.
long_run = pytest.mark.timeout(FUZZ_SECONDS + 60)


@long_run
def test_mutated_frames_raise_only_protocol_error() -> None:
    assert _run(lambda rnd: mutate(rnd, rnd.choice(CORPUS))) > 0


@long_run
def test_random_frames_raise_only_protocol_error() -> None:
    def make(rnd: random.Random) -> bytes:
        ftype = rnd.choice([0, 1, 2, 3, 101, 102, 103, rnd.randrange(256)])
        header = bytes((ftype,)) + rnd.choice([1, 0, 3, rnd.randrange(1 << 32)]).to_bytes(4, "big")
        body = header + rnd.randbytes(rnd.randint(0, 64))
        return len(body).to_bytes(4, "big") + body

    assert _run(make) > 0


@long_run
def test_mutations_decode_the_same_on_both_paths() -> None:
    rnd = random.Random(FUZZ_SEED + 1)
    for _ in range(max(1, FUZZ_N // 10)):
        body = mutate(rnd, rnd.choice(CORPUS))[4:]
        outcomes = []
        for fn in (decode_frame_body, codec.decode_frame_body_by_grammar):
            try:
                outcomes.append(repr(fn(body)))
            except ProtocolError as exc:
                outcomes.append(f"error {exc.status}")
        assert outcomes[0] == outcomes[1], body.hex()


# --------------------------------------------------------------------------- allocation

HUGE = 1 << 60
CLAIMS = [
    pytest.param(frame(3, name("m") + b"\x01" + name("h") + b"\x09" + varint(HUGE) + b"abc"),
                 id="binary-claims-2^60"),
    pytest.param(frame(3, name("m") + b"\x01" + name("h") + b"\x08" + varint(200_000_000) + b"abc"),
                 id="string-claims-200MB"),
    pytest.param(frame(101, varint(HUGE) + b"version"), id="kv-name-claims-2^60"),
    pytest.param(frame(3, varint((1 << 64) - 1) + b"m"), id="message-name-claims-2^64-1"),
    pytest.param(frame(103, b"\x01\x03\x02" + varint(300_000_000) + b"n"), id="var-name-claims-300MB"),
    pytest.param(frame(103, set_var(2, "v", b"\x09" + varint(HUGE))), id="var-value-claims-2^60"),
    pytest.param(frame(101, kv("a", b"\x08" + varint(100_000_000)) * 50), id="many-claims"),
    pytest.param(frame(3, name("m") + b"\xff" + kv("a", b"\x00")), id="arg-count-255-with-one-arg"),
]


def _peak(fn: Callable[[bytes], object], data: bytes) -> int:
    tracemalloc.start()
    try:
        try:
            fn(data)
        except ProtocolError:
            pass
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("data", CLAIMS)
def test_claimed_lengths_are_not_allocated(data: bytes) -> None:
    for fn in (decode_frame, lambda d: codec.decode_frame_body_by_grammar(d[4:])):
        # Decoding a frame of a few hundred bytes costs some KiB of Python
        # objects; a claim read as an allocation would cost megabytes or more.
        assert _peak(fn, data) < 256 * 1024


@long_run
def test_mutated_frames_allocate_in_proportion_to_their_size() -> None:
    rnd = random.Random(FUZZ_SEED + 2)
    for _ in range(max(1, FUZZ_N // 50)):
        data = mutate(rnd, rnd.choice(CORPUS))
        assert _peak(decode_frame, data) < 256 * 1024 + 64 * len(data), data.hex()
