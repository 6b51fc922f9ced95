"""``load_config()``: a SPOE file (or its text) to a frozen :class:`SpoeConfig`.

The only module of this layer that touches the filesystem.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Mapping

from ..errors import ConfigError, SpoeConfigWarning
from .drafts import Problems
from .model import SpoeConfig
from .parser import read_scope
from .validate import PROXY_KINDS, build_config

__all__ = ["load_config", "parse_config", "read_source"]


def read_source(source: str | os.PathLike[str]) -> tuple[str, str]:
    """Return ``(text, filename)``: a path is read (``"<string>"`` names given text).

    A ``str`` holding a newline is configuration text; any other ``str`` is a path.
    """
    if isinstance(source, str) and "\n" in source:
        return source, "<string>"
    path = os.fspath(source)
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise ConfigError(f"Could not open configuration file {path} : {exc.strerror}",
                          path, None) from None
    return data.decode("utf-8", "surrogateescape"), path


def parse_config(text: str, engine: str | None = None, *, filename: str = "<string>",
                 proxy: str = "frontend", base_dir: str | None = None,
                 env: Mapping[str, str] | None = None,
                 require_final_lf: bool = False, bufsize: int = 16384,
                 _stacklevel: int = 2) -> SpoeConfig:
    """Parse SPOE configuration text; see :func:`load_config`.

    ``require_final_lf`` is HAProxy's check of files (a last line without LF is an
    error); :func:`load_config` sets it for files, not for text.
    """
    if proxy not in PROXY_KINDS:
        raise ValueError(f"proxy must be one of {PROXY_KINDS}, not {proxy!r}")
    problems = Problems(filename)
    scope = read_scope(text, problems, engine, base_dir=base_dir, env=env,
                       require_final_lf=require_final_lf, bufsize=bufsize)
    config = None
    if not problems.errors:
        config = build_config(scope, problems, engine=engine, proxy=proxy)
    texts = []
    for message, lineno in problems.warnings:
        where = f"[{filename}:{lineno}] " if lineno is not None else f"[{filename}] "
        texts.append(where + message)
        warning = SpoeConfigWarning(where + message)
        warning.filename, warning.lineno, warning.message = filename, lineno, message  # type: ignore[attr-defined]
        warnings.warn(warning, stacklevel=_stacklevel)
    if problems.errors or config is None:
        errors = tuple(problems.errors)
        first = errors[0]
        raise ConfigError(first.message, first.filename, first.lineno, errors=errors)
    return dataclasses.replace(config, warnings=tuple(texts))


def load_config(source: str | os.PathLike[str], engine: str | None = None, *,
                proxy: str = "frontend", base_dir: str | None = None,
                env: Mapping[str, str] | None = None, bufsize: int = 16384) -> SpoeConfig:
    """Load a SPOE configuration file the way HAProxy 2.6's ``filter spoe`` does.

    :param source: a path (``str`` or path-like), or the configuration text itself
        (any ``str`` containing a newline).
    :param engine: the ``[scope]`` to read (``filter spoe engine <name>``); ``None``
        reads the lines outside any scope, and then the file must have no scope.
    :param proxy: the kind of proxy the filter is declared in (``"frontend"``,
        ``"backend"`` or ``"listen"``), which changes how events resolve, as in HAProxy.
    :param base_dir: directory for relative ACL pattern files (``-f``); ``None`` is the
        current directory, like HAProxy.
    :param env: environment for ``"$VAR"`` expansion (default :data:`os.environ`).
    :param bufsize: HAProxy's ``tune.bufsize``: ``max-frame-size`` defaults to, and may not
        exceed, ``bufsize - 4``.
    :raises ConfigError: with every error in ``.errors``; ``.filename``, ``.lineno`` and
        ``.message`` are those of the first.
    :returns: the frozen :class:`SpoeConfig`; warnings go through :mod:`warnings` as
        :class:`SpoeConfigWarning` and are kept in ``SpoeConfig.warnings``.
    """
    text, filename = read_source(source)
    return parse_config(text, engine, filename=filename, proxy=proxy, base_dir=base_dir, env=env,
                        require_final_lf=filename != "<string>", bufsize=bufsize, _stacklevel=3)
