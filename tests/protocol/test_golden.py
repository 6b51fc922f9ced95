"""Golden frames captured from HAProxy 2.6.12 (tests/golden/, see its README):
every frame decodes, re-encodes byte for byte on both codec paths, and its
fields match the JSON sidecar's ``decoded`` section (SPOE.txt §3.2.4-3.2.8).
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address
from typing import Any

import pytest

from spoe_sync.protocol import (
    Frame,
    FrameType,
    HaproxyDisconnect,
    HaproxyHello,
    Notify,
    Value,
    codec,
    decode_frame,
    encode_frame,
)

from .helpers import golden_cases

CASES = [pytest.param(data, sidecar, id=name) for name, data, sidecar in golden_cases()]


def _json_value(value: Value) -> Any:
    """A value the way the sidecars write it (binary as hex, addresses as text)."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, (IPv4Address, IPv6Address)):
        return str(value)
    return value


def _json_view(frame: Frame) -> dict[str, Any]:
    view: dict[str, Any] = {
        "frame_type": FrameType(frame.TYPE).name.replace("_", "-"),
        "flags": frame.flags, "stream_id": frame.stream_id, "frame_id": frame.frame_id,
    }
    if isinstance(frame, Notify):
        view["messages"] = [{"message": m.name, "args": [[n, _json_value(v)] for n, v in m.args]}
                            for m in frame.messages]
    else:
        view["kv"] = {n: _json_value(v) for n, v in frame.items}  # type: ignore[union-attr]
    return view


def test_every_golden_folder_is_covered() -> None:
    assert len(CASES) >= 15


@pytest.mark.parametrize(("data", "sidecar"), CASES)
def test_golden_frame_decodes_and_reencodes(data: bytes, sidecar: dict[str, Any]) -> None:
    assert len(data) == sidecar["bytes"]
    frame = decode_frame(data)
    assert frame == codec.decode_frame_body_by_grammar(data[4:])
    assert encode_frame(frame) == data
    assert codec.encode_frame_by_grammar(frame) == data
    assert _json_view(frame) == sidecar["decoded"]


def test_integers_from_haproxy_are_int64_and_hello_sizes_uint32() -> None:
    frames = {name: decode_frame(data) for name, data, _ in golden_cases()}
    notify = frames["c_notify_types"]
    assert isinstance(notify, Notify)
    ints = [v for m in notify.messages for _, v in m.args if isinstance(v, int) and not isinstance(v, bool)]
    assert ints and all(type(v).__name__ == "Int64" for v in ints)
    assert notify.messages[0].get("neg") == -5
    hello = frames["a_hello_default"]
    assert isinstance(hello, HaproxyHello)
    assert type(hello.max_frame_size).__name__ == "UInt32" and hello.max_frame_size == 16380


def test_hello_rebuilt_with_make_matches_haproxy() -> None:
    """HaproxyHello.make() builds HAProxy 2.6's HELLO byte for byte (engine-id aside)."""
    for name, data, _ in golden_cases():
        frame = decode_frame(data)
        if isinstance(frame, HaproxyHello):
            caps = frame.capabilities
            assert isinstance(caps, str)
            made = HaproxyHello.make(
                max_frame_size=int(frame.max_frame_size),  # type: ignore[arg-type]
                capabilities=caps, engine_id=frame.engine_id,  # type: ignore[arg-type]
                healthcheck=frame.healthcheck)
            assert encode_frame(made) == data, name
        elif isinstance(frame, HaproxyDisconnect):
            assert encode_frame(HaproxyDisconnect.make(int(frame.status_code))) == data, name  # type: ignore[arg-type]
