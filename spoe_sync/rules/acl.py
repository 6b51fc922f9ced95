"""ACLs: ``acl <name> <criterion> [flags] [operator] [<value>] ...`` (configuration.txt §7.1).

Several lines with one name are ORed; within a line, any pattern matching is a match; an ACL
keyword such as ``hdr_beg`` implies its fetch and matching method; predefined ACLs (§7.4) are
always resolvable and may be overridden by a user ACL of the same name.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import ExpressionError
from ..protocol.values import Value
from .lexer import Call, is_idchar, split_call, split_expression
from .names import ACL_KEYWORDS, CONVERTERS
from .patterns import INT_OPERATORS, METHODS, Pattern, match, parse_pattern
from .sample import EvalContext, SampleExpr, build_expr

__all__ = ["PREDEFINED_ACLS", "Acl", "AclExpr", "AclRegistry", "parse_acl_expr"]

# Default matching method by output type (§7.1 table); binary and "any" need -m.
_DEFAULT_METHOD = {"bool": "bool", "sint": "int", "addr": "ip", "ipv4": "ip", "ipv6": "ip",
                   "str": "str", "meth": "str"}

PREDEFINED_ACLS: dict[str, str] = {
    "FALSE": "always_false",
    "HTTP": "req.proto_http",
    "HTTP_1.0": "req.ver 1.0",
    "HTTP_1.1": "req.ver 1.1",
    "HTTP_2.0": "req.ver 2.0",
    "HTTP_CONTENT": "req.hdr_val(content-length) gt 0",
    "HTTP_URL_ABS": "url_reg ^[^/:]*://",
    "HTTP_URL_SLASH": "url_beg /",
    "HTTP_URL_STAR": "url *",
    "LOCALHOST": "src 127.0.0.1/8 ::1",
    "METH_CONNECT": "method CONNECT",
    "METH_DELETE": "method DELETE",
    "METH_GET": "method GET HEAD",
    "METH_HEAD": "method HEAD",
    "METH_OPTIONS": "method OPTIONS",
    "METH_POST": "method POST",
    "METH_PUT": "method PUT",
    "METH_TRACE": "method TRACE",
    "RDP_COOKIE": "req.rdp_cookie_cnt gt 0",
    "REQ_CONTENT": "req.len gt 0",
    "TRUE": "always_true",
    "WAIT_END": "wait_end",
}

_ACL_NAME = re.compile(r"[A-Za-z0-9_.:-]+\Z")


@dataclass(frozen=True)
class AclExpr:
    """One ACL line: a sample expression, a matching method and its patterns."""

    expr: SampleExpr
    method: str
    patterns: tuple[Pattern, ...]
    text: str

    def evaluate(self, ctx: EvalContext) -> bool:
        values: list[Value] = self.expr.evaluate_all(ctx)
        return any(match(self.method, v, self.patterns) for v in values)


class Acl:
    """A named ACL: the OR of its lines.  Lines added later (another ``acl`` line with the same
    name) are seen by conditions parsed earlier, as in HAProxy."""

    def __init__(self, name: str, *, fixed: bool = False) -> None:
        self.name = name
        #: no line is ever added after parsing: anonymous (``{ ... }``) and predefined ACLs
        #: (a user ACL of a predefined name is another object)
        self.fixed = fixed
        self._exprs: list[AclExpr] = []

    @property
    def exprs(self) -> tuple[AclExpr, ...]:
        return tuple(self._exprs)

    def evaluate(self, ctx: EvalContext) -> bool:
        return any(e.evaluate(ctx) for e in self._exprs)

    def __repr__(self) -> str:
        return f"Acl({self.name!r}, {len(self._exprs)} expression(s))"


def _criterion(words: Sequence[str], base_dir: str | None = None
               ) -> tuple[SampleExpr, str | None, int]:
    """Parse the criterion (an ACL keyword or a sample expression, possibly followed by
    converters given as separate words); returns the expression, the implied method and the
    number of words used."""
    text = words[0]
    if not text or not is_idchar(text[0]):
        raise ExpressionError("missing fetch method", text, 0)
    head, _ = split_call(text, 0, "fetch method")
    used = 1
    implied: str | None = None
    if head.name in ACL_KEYWORDS:
        fetch_name, implied = ACL_KEYWORDS[head.name]
        fetch_call, convs = split_expression(text)
        expr = build_expr(text, fetch_call, convs, fetch_name=fetch_name, base_dir=base_dir)
        if fetch_name == "method":
            implied = "meth"  # pat_parse_meth/pat_match_meth, whatever -dKacl prints
        if convs:
            implied = None  # "the default matching method from the ACL keyword is ignored"
    else:
        fetch_call, convs = split_expression(text)
        extra: list[Call] = []
        # sample_parse_expr(): a following word that is a converter name continues the chain.
        while used < len(words) and words[used] and _is_converter_word(words[used]):
            call, end = split_call(words[used], 0, "converter")
            if end != len(words[used]):
                break
            extra.append(call)
            used += 1
        expr = build_expr(text, fetch_call, tuple(convs) + tuple(extra), base_dir=base_dir)
    return expr, implied, used


def _is_converter_word(word: str) -> bool:
    end = 0
    while end < len(word) and is_idchar(word[end]):
        end += 1
    return end > 0 and word[:end] in CONVERTERS


def _read_pattern_file(path: str, base_dir: str | None) -> list[tuple[str, int]]:
    """The patterns of a ``-f`` file with their 1-based line numbers (for error messages)."""
    full = path if os.path.isabs(path) or base_dir is None else os.path.join(base_dir, path)
    try:
        with open(full, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise ExpressionError(f"failed to open pattern file <{path}> : {exc.strerror}") from None
    out = []
    for lineno, raw in enumerate(data.split(b"\n"), 1):
        line = raw.split(b"\r", 1)[0]
        if line.startswith(b"#"):
            continue  # a comment only when '#' is in column 0
        line = line.lstrip(b" \t")  # leading blanks go, trailing ones stay
        if line:
            out.append((line.decode("utf-8", "surrogateescape"), lineno))
    return out


def parse_acl_expr(words: Sequence[str], *, base_dir: str | None = None) -> AclExpr:
    """Parse ``<criterion> [flags] [operator] [<value>] ...``.

    :raises ExpressionError: for any error, in HAProxy's words where it has some.
    """
    if not words or not words[0]:
        raise ExpressionError("missing ACL expression")
    expr, method, i = _criterion(words, base_dir)
    icase = False
    # (text, icase, where): where is None for a word of the line, else (file, line number)
    pending: list[tuple[str, bool, tuple[str, int] | None]] = []
    while i < len(words):
        w = words[i]
        if not w.startswith("-") or w == "-":
            break
        if w == "--":
            i += 1
            break
        if w == "-i":
            icase = True
        elif w in ("-n", "-M"):
            pass
        elif w in ("-m", "-f", "-u"):
            if i + 1 >= len(words) or not words[i + 1]:
                raise ExpressionError(f"'{w}' expects an argument", " ".join(words))
            arg = words[i + 1]
            if w == "-m":
                if pending:
                    raise ExpressionError("'-m' must only be specified before patterns and "
                                          "files in parsing ACL expression", " ".join(words))
                if arg not in METHODS:
                    raise ExpressionError(f"unknown matching method '{arg}' when parsing ACL "
                                          "expression", " ".join(words))
                method = arg
            elif w == "-f":
                pending.extend((p, icase, (arg, n)) for p, n in _read_pattern_file(arg, base_dir))
            i += 1
        else:
            raise ExpressionError(f"'{w}' is not a valid ACL option. Please use '--' before "
                                  "any pattern beginning with a '-'.", " ".join(words))
        i += 1
    pending.extend((w, icase, None) for w in words[i:] if w != "")
    if method is None:
        method = _DEFAULT_METHOD.get(expr.out_type)
        if method is None:
            raise ExpressionError(
                "matching method must be specified first (using '-m') when using a sample "
                f"fetch of this type ('{expr.fetch}').", expr.text)
    operator = "eq"
    patterns: list[Pattern] = []
    for text, ic, where in pending:
        if method in ("int", "len") and where is None and text in INT_OPERATORS:
            operator = text
            continue
        if method in ("found", "bool"):
            continue
        try:
            patterns.append(parse_pattern(method, text, ic, operator))
        except ExpressionError as exc:
            if where is None:
                raise
            # HAProxy locates a bad pattern of a file: "... at line 2 of file 'wl.lst'."
            raise ExpressionError(f"{exc.message.rstrip('.')} at line {where[1]} of file "
                                  f"'{where[0]}'.", exc.text) from None
    return AclExpr(expr, method, tuple(patterns), " ".join(words))


class AclRegistry:
    """The named ACLs of one scope (a ``spoe-message`` section, or a proxy's rules).

    ``acls.add("api", ["path_beg", "/api"])``; ``acls.get("TRUE")`` resolves predefined ACLs.
    """

    def __init__(self) -> None:
        self._acls: dict[str, Acl] = {}
        self._predefined: dict[str, Acl] = {}

    def add(self, name: str, words: Sequence[str], *, base_dir: str | None = None,
            filename: str | None = None, lineno: int | None = None) -> Acl:
        """Add one ``acl <name> ...`` line (``words`` is what follows the name).

        :raises ExpressionError: bad name or bad expression.
        """
        if not name:
            raise ExpressionError("missing ACL name")
        if not _ACL_NAME.match(name):
            bad = next(c for c in name if not (c.isascii() and (c.isalnum() or c in "_.:-")))
            raise ExpressionError(f"invalid character '{bad}' in ACL name '{name}'", name)
        if name.lower() == "or":
            raise ExpressionError(f"acl name '{name}' will never match. 'or' is used to express"
                                  " a logical OR with other ACLs.", name)
        expr = parse_acl_expr(list(words), base_dir=base_dir)
        acl = self._acls.setdefault(name, Acl(name))
        acl._exprs.append(expr)
        return acl

    def get(self, name: str) -> Acl | None:
        """The ACL named ``name`` (user-defined first, then predefined), or ``None``."""
        acl = self._acls.get(name)
        if acl is not None:
            return acl
        if name in PREDEFINED_ACLS:
            if name not in self._predefined:
                pre = Acl(name, fixed=True)
                pre._exprs.append(parse_acl_expr(PREDEFINED_ACLS[name].split()))
                self._predefined[name] = pre
            return self._predefined[name]
        return None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    @property
    def names(self) -> tuple[str, ...]:
        """User-defined ACL names, in definition order."""
        return tuple(self._acls)
