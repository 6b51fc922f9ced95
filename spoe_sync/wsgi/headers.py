"""Header edits of :mod:`spoe_sync.wsgi`'s rules: request headers in a PEP 3333 environ (its
``HTTP_*`` keys and the raw header list) and the app's response as the rules see it."""

from __future__ import annotations

from typing import Any

from ..config.rule_lines.actions import reason_phrase

__all__ = ["HttpResponse", "delete_request_headers", "environ_key", "hook_reply",
           "set_request_header"]


def environ_key(name: str) -> str:
    """The PEP 3333 environ key of a request header (``HTTP_X_A``, ``CONTENT_TYPE``)."""
    key = name.upper().replace("-", "_")
    return key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key


def set_request_header(environ: dict[str, Any], name: str, value: str | None,
                       add: bool = False) -> None:
    """Edit a request header in the environ (``HTTP_*``) and the raw header list."""
    key = environ_key(name)
    raw = environ.get("spoe_sync.raw_headers")
    if isinstance(raw, list):
        raw = [(n, v) for n, v in raw if add or n.lower() != name.lower()]
        if value is not None:
            raw.append((name, value))
        environ["spoe_sync.raw_headers"] = raw
    if value is None:
        environ.pop(key, None)
    elif add and environ.get(key):
        environ[key] = f"{environ[key]},{value}"
    else:
        environ[key] = value


def delete_request_headers(environ: dict[str, Any], matches: Any) -> None:
    raw = environ.get("spoe_sync.raw_headers")
    if isinstance(raw, list):
        environ["spoe_sync.raw_headers"] = [(n, v) for n, v in raw if not matches(n)]
    for key in [k for k in environ if isinstance(k, str)]:
        if key.startswith("HTTP_"):
            name = key[5:].replace("_", "-")
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            name = key.replace("_", "-")
        else:
            continue
        if matches(name):
            del environ[key]


class HttpResponse:
    """The app's response as rules see and edit it (hooks get it too)."""

    __slots__ = ("headers", "reason", "status")

    def __init__(self, status: int, reason: str, headers: list[tuple[str, str]]) -> None:
        self.status, self.reason, self.headers = status, reason, headers

    @property
    def status_line(self) -> str:
        return f"{self.status} {self.reason}"


def hook_reply(out: Any) -> tuple[int, str, list[tuple[str, str]], bytes]:
    status, headers, body = out
    status = int(status)
    return status, reason_phrase(status), list(headers), bytes(body)
