"""HAProxy's keyword tables: every fetch and converter name HAProxy 2.6 knows.

A word HAProxy does not know is a parse error; a word it knows but spoe_sync does not implement
parses with ``implemented=False`` (the config layer decides whether that is fatal).
"""

from __future__ import annotations

from dataclasses import dataclass

from ._keywords import ACL_KEYWORDS_TEXT, CONVERTER_GROUPS, FETCH_GROUPS

__all__ = ["ACL_KEYWORDS", "CONVERTERS", "FETCHES", "ConverterInfo", "FetchInfo"]


@dataclass(frozen=True)
class FetchInfo:
    """One sample fetch as HAProxy registers it.

    :attr mask: availability string, one 'Y'/'.' per checkpoint (``points.CHECKPOINTS``).
    :attr source: the wording HAProxy uses for it in "extract information from '...'".
    :attr out_type: HAProxy output type: bool sint addr ipv4 ipv6 str bin meth any.
    :attr signature: HAProxy's argument signature text, ``None`` when it takes none.
    """

    name: str
    signature: str | None
    out_type: str
    mask: str
    source: str


@dataclass(frozen=True)
class ConverterInfo:
    """One converter as HAProxy registers it (input and output types)."""

    name: str
    signature: str | None
    in_type: str
    out_type: str


def _split_token(tok: str) -> tuple[str, str | None]:
    if "(" in tok:
        name, sig = tok.split("(", 1)
        return name, sig[:-1].replace("_", " ")
    return tok, None


def _load() -> tuple[dict[str, FetchInfo], dict[str, ConverterInfo], dict[str, tuple[str, str]]]:
    fetches: dict[str, FetchInfo] = {}
    for mask, source, out, tokens in FETCH_GROUPS:
        for tok in tokens.split():
            name, sig = _split_token(tok)
            fetches[name] = FetchInfo(name, sig, out, mask, source)
    convs: dict[str, ConverterInfo] = {}
    for in_type, out, tokens in CONVERTER_GROUPS:
        for tok in tokens.split():
            name, sig = _split_token(tok)
            convs[name] = ConverterInfo(name, sig, in_type, out)
    acls: dict[str, tuple[str, str]] = {}
    for item in "".join(ACL_KEYWORDS_TEXT).split():
        kw, rest = item.split("=", 1)
        fetch, method = rest.rsplit(":", 1)
        acls[kw] = (fetch, method)
    return fetches, convs, acls


FETCHES, CONVERTERS, ACL_KEYWORDS = _load()
