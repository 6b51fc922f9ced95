"""A seeded generator of valid-but-nasty raw HTTP/1.1 requests.

Every request is complete and framed (so neither engine waits for more bytes), ends its
connection (``Connection: close`` unless the shape is an HTTP/1.0 one), and draws its header
values from a small vocabulary so that the fuzz config's ACL patterns match some of the time.
What "nasty" covers: methods, targets with escapes, 8-bit bytes, dot segments and ``;params``,
query edge cases (``??``, ``;`` separators, empty names and values), duplicated and odd-case
headers, empty and long values, cookies with empty values, integers in headers (``1 2``, ``+5``,
empty, past int64), fixed and chunked bodies, HTTP/1.0, ``Expect: 100-continue``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["FuzzRequest", "generate", "request_from_raw"]

METHODS = ["GET", "GET", "GET", "POST", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH",
           "PURGE", "get"]
SEGMENTS = ["a", "api", "some", "x.json", "%2F", "%2e%2E", "..", ".", "", "a;p=1", "caf%C3%A9",
            "caf\xc3\xa9", "\xff", "a+b", "%20", "%zz", "~u", "A", "index.php", "b;", "%00", "c:d",
            "@", "!$&'()*,="]
QUERY_PARTS = ["a=1", "b=2", "a=", "=x", "a", "", "x=%41", "a=1;b=2", "b=?", "c=a?b", "d=+",
               "q=caf\xc3\xa9", "a=%zz", "n=42", "n=-7", "a=x&a=y", "?", ";a=3", "b", "&&",
               "a=1=2", "A=1"]
VOCAB = ["", "a", "abc", "ABC", "abc,def", "a, b", " padded ", "1", "42", "+5", "-3", "1 2",
         "007", "9223372036854775807", "9223372036854775808", "99999999999999999999", "0x1f",
         "10.0.0.1", "10.0.0.1, 127.0.0.1", "::1", "::ffff:10.1.2.3", "127.0.0.1:80",
         "golden.example", "www.Golden.Example", "a.b.c", "/api/x", "x;y", "a b",
         "YWJj", "YWI_", "YWI-", "YW", "YQ==", "!!", "%41%zz", "\"q\"", "caf\xe9", "\xc3\xa9t\xc3\xa9",
         "\x01ctl", "a\tb", "*", "a=b", "a=b; c=d", "x, y, z", "ff", "-1f", "Mozilla/5.0 (X11)"]
HEADER_NAMES = ["X-A", "x-a", "X-B", "X-N", "x-n", "X-IP", "X-C", "User-Agent", "Accept",
                "X-Forwarded-For", "Referer", "X-Empty", "X-A"]
COOKIES = ["a=1", "a=", "b=2", "a=x", "sid=abc", "=v", "c", "a=1=2", "n=42", " d = 4 ",
           "e=\"q\"", "a=;b=1"]
RESPONSES = ["0", "1", "2", "3", "4"]


@dataclass
class FuzzRequest:
    """A request as parts, so that the minimiser can drop them one by one; :attr:`raw` joins
    them with the framing the body needs."""

    method: str
    target: str
    version: str = "HTTP/1.1"
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    chunked: bool = False

    @property
    def raw(self) -> bytes:
        lines = [f"{self.method} {self.target} {self.version}"]
        lines += [f"{n}:{v}" if v.startswith(" ") or not v else f"{n}: {v}"
                  for n, v in self.headers]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if not self.chunked:
            return head + self.body
        out = b""
        body = self.body
        while body:
            piece, body = body[:7], body[7:]
            out += b"%x\r\n" % len(piece) + piece + b"\r\n"
        return head + out + b"0\r\n\r\n"


def request_from_raw(raw: bytes) -> FuzzRequest:
    """The parts of a raw request the generator made (a reproducer read back)."""
    head, _, rest = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, version = lines[0].split(" ", 2)
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name, value[1:] if value.startswith(" ") else value))
    chunked = any(n.lower() == "transfer-encoding" for n, _ in headers)
    body = rest
    if chunked:
        body, data = b"", rest
        while True:
            size_line, _, data = data.partition(b"\r\n")
            size = int(size_line, 16)
            if not size:
                break
            body, data = body + data[:size], data[size + 2:]
    return FuzzRequest(method, target, version, headers, body, chunked)


def _target(rnd: random.Random) -> str:
    shape = rnd.random()
    if shape < 0.03:
        return "*"
    path = "/" + "/".join(rnd.choice(SEGMENTS) for _ in range(rnd.randint(0, 4)))
    if shape < 0.10:
        path = "http://" + rnd.choice(["golden.example", "1.2.3.4:8080", "h"]) + path
    if rnd.random() < 0.6:
        sep = rnd.choice(["&", "&", "&", ";"])
        path += rnd.choice(["?", "?", "??"]) + sep.join(
            rnd.choice(QUERY_PARTS) for _ in range(rnd.randint(0, 4)))
    return path


def _value(rnd: random.Random) -> str:
    if rnd.random() < 0.04:
        return rnd.choice("abcx") * rnd.randint(200, 1200)
    value = rnd.choice(VOCAB)
    if rnd.random() < 0.15:
        value = value + rnd.choice([",", ", ", ";", " "]) + rnd.choice(VOCAB)
    return value


def generate(seed: int, count: int) -> list[FuzzRequest]:
    """``count`` requests from ``seed`` (the same seed always gives the same bytes)."""
    rnd = random.Random(seed)
    return [_one(rnd) for _ in range(count)]


def _one(rnd: random.Random) -> FuzzRequest:
    method = rnd.choice(METHODS)
    version = "HTTP/1.0" if rnd.random() < 0.1 else "HTTP/1.1"
    req = FuzzRequest(method, _target(rnd), version)
    hdrs = req.headers
    if version == "HTTP/1.1" or rnd.random() < 0.5:
        hdrs.append((rnd.choice(["Host", "host", "HOST"]),
                     rnd.choice(["golden.example", "h", "Golden.Example:8080", "1.2.3.4", "h"])))
    for _ in range(rnd.randint(0, 6)):
        hdrs.append((rnd.choice(HEADER_NAMES), _value(rnd)))
    for _ in range(rnd.choice([0, 0, 1, 1, 2])):
        hdrs.append((rnd.choice(["Cookie", "cookie"]),
                     rnd.choice(["; ", ";", "; "]).join(
                         rnd.choice(COOKIES) for _ in range(rnd.randint(1, 4)))))
    if rnd.random() < 0.5:
        hdrs.append(("X-Resp", rnd.choice(RESPONSES)))
    if rnd.random() < 0.05:
        hdrs.append(("Expect", "100-continue"))
    if method in ("POST", "PUT", "PATCH") or rnd.random() < 0.05:
        body = rnd.choice([b"", b"a=1&b=2", b"a=1;b=x%20y", b"hello world", b"b=&a",
                           bytes(range(256))[rnd.randint(0, 200):][:40], b"{\"k\": 1}"])
        req.body = body
        if version == "HTTP/1.1" and rnd.random() < 0.3:
            req.chunked = True
            hdrs.append(("Transfer-Encoding", "chunked"))
        else:
            hdrs.append((rnd.choice(["Content-Length", "content-length"]), str(len(body))))
        hdrs.append(("Content-Type", rnd.choice(["application/x-www-form-urlencoded",
                                                 "text/plain"])))
    rnd.shuffle(hdrs)
    if rnd.random() < 0.12:
        _nastier(rnd, req)
    if version == "HTTP/1.1":
        hdrs.append(("Connection", "close"))
    return req


def _nastier(rnd: random.Random, req: FuzzRequest) -> None:
    """One of the shapes HAProxy's parser normalises or refuses (HTX, HTTP validity)."""
    hdrs = req.headers
    shape = rnd.randrange(12)
    host = next((v for n, v in hdrs if n.lower() == "host"), "h")
    if shape == 0:  # identical duplicate Host: merged by HAProxy
        hdrs.append(("host", host))
    elif shape == 1:  # a different Host: refused
        hdrs.append(("Host", host + "x"))
    elif shape == 2:  # a folded header line
        hdrs.append(("X-A", rnd.choice(VOCAB) + "\r\n " + rnd.choice(VOCAB)))
    elif shape == 3:  # '#' or an 8-bit byte in the target: refused
        req.target += rnd.choice(["#f", "\xe9"])
    elif shape == 4:  # absolute form with another authority
        req.target = rnd.choice(["http://other", "https://h:443", "http://h:80", "ftp://h"]) + (
            req.target if req.target.startswith("/") else "/")
    elif shape == 5 and req.body:  # a second, identical Content-Length
        hdrs += [(n, v) for n, v in hdrs if n.lower() == "content-length"][:1]
    elif shape == 6 and req.body:  # a second, different Content-Length: refused
        hdrs.append(("Content-Length", str(len(req.body) + 1)))
    elif shape == 7:
        hdrs.append(("Connection", rnd.choice(["keep-alive, Upgrade", "close, X-A", "TE"])))
    elif shape == 8:  # odd spacing and case in a header value
        hdrs.append(("X-B", rnd.choice(["\t tab", "trail \t", " both "])))
    elif shape == 9 and not req.chunked and req.body:  # Transfer-Encoding codings
        hdrs[:] = [(n, v) for n, v in hdrs if n.lower() != "content-length"]
        req.chunked = True
        hdrs.append(("Transfer-Encoding", rnd.choice(["chunked", "Chunked", "gzip, chunked"])))
    elif shape == 10:  # a bad header name: refused
        hdrs.append((rnd.choice(["X A", "X-A ", "X\x01"]), "v"))
    elif shape == 11:  # version oddities
        req.version = rnd.choice(["HTTP/1.2", "HTTP/2.0", "HTTP/1.1 "])
