"""``spoe-sync decode HEX``: the annotated decode of one frame (SPOE.txt §3.1-3.4),
on golden frames from HAProxy 2.6.12, on ACKs (including HAProxy's truncation
rule, docs/explanation/haproxy-behaviour.md §4), on malformed frames (what could be read,
the error and the SPOP status) and on text that is not hex; the command exits 0 for a frame
that decodes cleanly, 1 otherwise (after printing what it could read).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys

import pytest

from spoe_sync.protocol.describe import describe_bytes, describe_frame, describe_hex, parse_hex

from .helpers import (
    CORPUS,
    FUZZ_N,
    FUZZ_SEED,
    GOLDEN_DIR,
    frame,
    message,
    mutate,
    set_var,
    t_int,
    t_str,
    varint,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _golden_hex(path: str) -> str:
    with open(os.path.join(GOLDEN_DIR, path)) as f:
        return f.read().strip()


def test_golden_notify_every_field() -> None:
    out = describe_hex(_golden_hex("c_notify_types/c_notify_types.hex"))
    for expected in [
        "FRAME-LENGTH = 411 (uint32 big-endian)",
        "FRAME-TYPE = 3 NOTIFY",
        "FLAGS = 0x00000001 (FIN=1, ABORT=0)",
        "MESSAGE-NAME = 'all-types'",
        "NB-ARGS = 28 (1 byte)",
        "ARG[0] (ip) IPV4 = 127.0.0.1",
        "ARG[8] (t) type byte 0x11: type=1 BOOL (low nibble), flags=0x1 (high nibble) -> True",
        "ARG[10] (ip6) IPV6 = 2001:db8::1",
        "-> as int64: -5",
        "ARG[27] (<unnamed>) IPV4 = 127.0.0.1",
        "MESSAGE-NAME = 'second-msg'",
        "=> Notify (stream-id 0, frame-id 1, flags 0x00000001): 2 message(s)",
    ]:
        assert expected in out
    assert "ERROR" not in out and "error" not in out


def test_lines_carry_offsets_and_bytes() -> None:
    out = describe_hex(_golden_hex("a_default/a_agent_hello_reply.hex"))
    assert "0033  fc f0 06" not in out  # HAPROXY-HELLO offsets, not this frame's
    assert "0028  fc f0 06" in out and "max-frame-size] UINT32 value = 16380" in out
    assert "=> AgentHello" in out


def test_whitespace_and_prefix_are_ignored() -> None:
    text = _golden_hex("e4_soft_stop/e4_disconnect_soft_stop.hex")
    spaced = "0x" + " ".join(text[i:i + 2] for i in range(0, len(text), 2)) + "\n"
    assert describe_hex(spaced) == describe_hex(text)
    assert "status-code=0," in describe_hex(text)  # the value, not the Python type


def test_ack_truncation_is_explained_not_an_error() -> None:
    data = frame(103, set_var(2, "a", t_int(4, 1)) + b"\x07\x02\x02\x01x", sid=1, fid=1)
    out = describe_hex(data.hex())
    assert "ACTION[0] type = 1 set-var" in out and "VAR-SCOPE = 2 txn" in out
    assert "ACTION[1] malformed (unknown action type 7)" in out
    assert "ignores the last 5 byte(s)" in out
    assert "1 action(s), truncated" in out


@pytest.mark.parametrize(("data", "where", "status"), [
    pytest.param(frame(3, message("m", ("a", t_str("xyz")))[:-2]), "MESSAGE-NAME = 'm'", 4,
                 id="length-mismatch"),
    pytest.param(frame(3, message("m", ("a", b"\x0e"))), "ARG[0] name = 'a'", 4, id="reserved-type"),
    pytest.param(frame(101, b"\x05ver"), "FRAME-TYPE = 101 AGENT-HELLO", 4, id="kv-name-cut"),
    pytest.param(bytes.fromhex("0000"), "FRAME-LENGTH cut short", 4, id="two-bytes"),
])
def test_malformed_frame_shows_what_was_read_then_error_and_status(
        data: bytes, where: str, status: int) -> None:
    out = describe_hex(data.hex())
    assert where in out
    assert "=> error: malformed" in out
    assert f"=> SPOP status {status} (invalid frame received)" in out


def test_huge_claimed_length_is_reported_not_read() -> None:
    data = frame(3, varint((1 << 64) - 1) + b"m", sid=1, fid=1)
    out = describe_bytes(data)
    assert "MESSAGE-NAME length = 18446744073709551615 (varint, 10 byte(s))" in out
    assert "cut short, 18446744073709551615 bytes announced, 1 byte left" in out
    assert "=> SPOP status 4" in out


def test_mutated_frames_always_describe() -> None:
    """Whatever the bytes, the tool prints a decode and a verdict, never a traceback."""
    rnd = random.Random(FUZZ_SEED + 3)
    for _ in range(max(1, FUZZ_N // 10)):
        data = mutate(rnd, rnd.choice(CORPUS))
        out = describe_bytes(data)
        assert "\n=> " in out, data.hex()


@pytest.mark.parametrize(("text", "message"), [
    pytest.param("", "no hex digits", id="empty"),
    pytest.param("0g", "not hex: 'g'", id="bad-char"),
    pytest.param("000", "odd number of hex digits", id="odd"),
])
def test_bad_hex_is_a_value_error(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_hex(text)
    with pytest.raises(ValueError, match=message):
        describe_hex(text)


def _cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "spoe_sync.cli", "decode", *args], input=stdin,
                          capture_output=True, text=True, timeout=60, env=env, cwd=ROOT, check=False)


def test_cli_decodes_a_real_capture() -> None:
    text = _golden_hex("a_default/a_notify_ip_src.hex")
    done = _cli(text)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == describe_hex(text)
    assert "MESSAGE-NAME = 'check-client-ip'" in done.stdout


def test_cli_reads_stdin_and_rejects_bad_hex() -> None:
    text = _golden_hex("d_healthcheck/d_hello_healthcheck.hex")
    done = _cli("-", stdin=text + "\n")
    assert done.returncode == 0 and "healthcheck=true" in done.stdout
    bad = _cli("xyz")
    assert bad.returncode == 1 and "not hex" in bad.stderr and not bad.stdout


@pytest.mark.parametrize(("data", "ok"), [
    pytest.param(bytes.fromhex(_golden_hex("a_default/a_notify_ip_src.hex")), True, id="golden"),
    pytest.param(frame(3, message("m", ("a", t_str("xyz")))[:-2]), False, id="length-mismatch"),
    pytest.param(frame(3, message("m", ("a", b"\x0e"))), False, id="reserved-type"),
    pytest.param(bytes.fromhex("0000"), False, id="two-bytes"),
    pytest.param(frame(103, set_var(2, "a", t_int(4, 1)) + b"\x07\x02\x02\x01x", sid=1, fid=1),
                 False, id="ack-truncated"),
    pytest.param(frame(103, set_var(2, "a", t_int(4, 1)), sid=1, fid=1), True, id="ack-clean"),
])
def test_describe_frame_says_whether_it_decoded_cleanly(data: bytes, ok: bool) -> None:
    text, clean = describe_frame(data)
    assert clean is ok
    assert text == describe_bytes(data)


@pytest.mark.parametrize(("data", "where"), [
    pytest.param(frame(3, message("m", ("a", b"\x0e"))), "ARG[0] name = 'a'", id="reserved-type"),
    pytest.param(frame(103, set_var(2, "a", t_int(4, 1)) + b"\x07\x02\x02\x01x", sid=1, fid=1),
                 "ACTION[1] malformed", id="ack-truncated"),
])
def test_cli_exits_1_on_a_malformed_frame_after_printing_it(data: bytes, where: str) -> None:
    done = _cli(data.hex())
    assert done.returncode == 1, done.stdout
    assert where in done.stdout  # what could be read is still printed
    assert done.stdout.strip() == describe_bytes(data)


# construct's own wording: it means nothing to someone reading SPOE.txt
_CONSTRUCT = ("stream read less than specified amount", "expected ", "found ", "(parsing)",
              "(in payload", "Container", "UInt32(", "Int64(", "UInt64(", "Int32(")


@pytest.mark.parametrize(("data", "said"), [
    pytest.param(bytes.fromhex("0000000501000000"),
                 "FLAGS at offset 0x0005: cut short, 4 bytes needed, 3 bytes left", id="flags"),
    pytest.param(bytes.fromhex("0000000803000000010001f0"),
                 "MESSAGE-NAME length at offset 0x000b: cut short, the frame ends inside this "
                 "varint", id="varint"),
    pytest.param(frame(3, message("m", ("ip", b"\x06\x7f\x00")), sid=1, fid=1),
                 "IPV4 at offset 0x0012: cut short, 4 bytes needed, 2 bytes left", id="ipv4"),
    pytest.param(frame(3, b"\x05ab", sid=1, fid=1),
                 "MESSAGE-NAME at offset 0x000c: cut short, 5 bytes announced, 2 bytes left",
                 id="name"),
])
def test_a_cut_field_is_named_in_spop_words(data: bytes, said: str) -> None:
    out = describe_bytes(data)
    assert said in out, out
    verdict = [line for line in out.splitlines() if line.startswith("=> error")]
    assert len(verdict) == 1 and not any(w in verdict[0] for w in _CONSTRUCT), out
    assert not any(w in out for w in _CONSTRUCT), out


def test_hello_values_are_shown_plainly() -> None:
    out = describe_hex(_golden_hex("a_default/a_hello_default.hex"))
    assert "max-frame-size=16380," in out and "supported-versions='2.0'" in out
    assert not any(w in out for w in _CONSTRUCT), out


def test_mutated_frames_never_show_construct_wording() -> None:
    rnd = random.Random(FUZZ_SEED + 4)
    for _ in range(max(1, FUZZ_N // 5)):
        data = mutate(rnd, rnd.choice(CORPUS))
        for line in describe_bytes(data).splitlines():
            if "ERROR:" in line or line.startswith("=>"):
                assert not any(w in line for w in _CONSTRUCT), (data.hex(), line)
