"""The reference tables (SPOE keywords, sample fetches, converters, ACL keywords and match
methods, rule actions), generated at build time from spoe_sync's own registries.

Each table lists what HAProxy 2.6 knows (the keyword tables recorded from ``haproxy -dK...`` in
``spoe_sync.rules._keywords`` and the per-rule-set action lists of ``spoe_sync.config.check``)
next to what spoe_sync implements (``spoe_sync.rules.fetches.REGISTRY``,
``spoe_sync.rules.converters.CONVERTERS``, ``spoe_sync.config.rule_lines.ACTIONS``...), so that
registering a fetch changes the page without anyone editing it.

Usage in a page::

    ```{spoe-table} fetches
    ```

The ``*_rows()`` functions are plain data, tested by ``tests/docs/test_reference_tables.py``.
"""

from __future__ import annotations

from typing import Any

SUPPORTED = "supported"
NO_EFFECT = "accepted without effect"
NOT_SUPPORTED = "not supported"

Row = tuple[str, ...]


def fetch_rows() -> list[Row]:
    """(fetch, arguments, output type, status, note), one per fetch HAProxy 2.6 knows."""
    from spoe_sync.rules.fetches import ALIASES, REGISTRY
    from spoe_sync.rules.names import FETCHES

    rows: list[Row] = []
    for name in sorted(set(FETCHES) | set(REGISTRY)):
        info = FETCHES.get(name)
        sig = (info.signature or "") if info else ", ".join(REGISTRY[name].args)
        out = info.out_type if info else REGISTRY[name].out
        if name in REGISTRY:
            rows.append((name, sig, out, SUPPORTED, ""))
        elif ALIASES.get(name) in REGISTRY:
            rows.append((name, sig, out, SUPPORTED, f"alias of {ALIASES[name]}"))
        else:
            rows.append((name, sig, out, NOT_SUPPORTED,
                         "parses; an error where it would run, a warning where it never would"))
    return rows


def converter_rows() -> list[Row]:
    """(converter, arguments, input type, output type, status, note)."""
    from spoe_sync.rules.converters import CONVERTERS as IMPLEMENTED
    from spoe_sync.rules.names import CONVERTERS

    rows: list[Row] = []
    for name in sorted(set(CONVERTERS) | set(IMPLEMENTED)):
        info = CONVERTERS.get(name)
        impl = IMPLEMENTED.get(name)
        sig = (info.signature or "") if info else ", ".join(impl.args if impl else ())
        in_type = info.in_type if info else impl.in_type if impl else ""
        out = info.out_type if info else impl.out if impl else ""
        if impl is None:
            rows.append((name, sig, in_type, out, NOT_SUPPORTED, ""))
        elif name == "debug":
            # HAProxy's debug converter passes its input through and prints it to a ring;
            # spoe_sync passes it through and prints nothing.
            rows.append((name, sig, in_type, out, NO_EFFECT, "passes its input through"))
        else:
            rows.append((name, sig, in_type, out, SUPPORTED, ""))
    return rows


def acl_keyword_rows() -> list[Row]:
    """(ACL keyword, fetch, match method, status): HAProxy's ``hdr_beg`` style keywords."""
    from spoe_sync.rules.fetches import ALIASES, REGISTRY
    from spoe_sync.rules.names import ACL_KEYWORDS
    from spoe_sync.rules.patterns import METHODS

    rows: list[Row] = []
    for kw in sorted(ACL_KEYWORDS):
        fetch, method = ACL_KEYWORDS[kw]
        ok = (fetch in REGISTRY or ALIASES.get(fetch) in REGISTRY) and method in METHODS
        rows.append((kw, fetch, f"-m {method}", SUPPORTED if ok else NOT_SUPPORTED))
    return rows


#: HAProxy 2.6's ACL match methods (configuration.txt §7.1, ``-m``) and what each compares.
HAPROXY_MATCH_METHODS: dict[str, str] = {
    "found": "the fetch returned something (even an empty string)",
    "bool": "the sample is true (an integer other than 0)",
    "int": "integers, ranges (a:b) and operators (eq ge gt le lt)",
    "ip": "addresses and networks, IPv4 against IPv6 through v4-mapped forms",
    "bin": "a hexadecimal byte string",
    "len": "the sample's length",
    "str": "exact string",
    "sub": "substring",
    "reg": "regular expression",
    "beg": "prefix",
    "end": "suffix",
    "dir": "a slash-delimited part",
    "dom": "a dot- or slash-delimited part",
}


def match_method_rows() -> list[Row]:
    """(method, what it matches, status)."""
    from spoe_sync.rules.patterns import METHODS

    names = list(HAPROXY_MATCH_METHODS) + [m for m in METHODS if m not in HAPROXY_MATCH_METHODS]
    return [(f"-m {m}", HAPROXY_MATCH_METHODS.get(m, ""), SUPPORTED if m in METHODS
             else NOT_SUPPORTED) for m in names]


def predefined_acl_rows() -> list[Row]:
    """(predefined ACL, definition, status)."""
    from spoe_sync.rules.acl import PREDEFINED_ACLS
    from spoe_sync.rules.fetches import ALIASES, REGISTRY
    from spoe_sync.rules.names import ACL_KEYWORDS

    rows: list[Row] = []
    for name, definition in sorted(PREDEFINED_ACLS.items()):
        word = definition.split()[0]
        fetch = ACL_KEYWORDS.get(word, (word, ""))[0]
        ok = fetch in REGISTRY or ALIASES.get(fetch) in REGISTRY
        rows.append((name, definition, SUPPORTED if ok else NOT_SUPPORTED))
    return rows


def action_rows() -> list[Row]:
    """(rule set, action, status, note): every action HAProxy 2.6 has per rule set."""
    from spoe_sync.config.check import _HAPROXY_ACTIONS
    from spoe_sync.config.rule_lines import ACTIONS
    from spoe_sync.config.rule_lines import NO_EFFECT as NOOP

    rows: list[Row] = []
    for ruleset, known in _HAPROXY_ACTIONS.items():
        implemented = set(ACTIONS.get(ruleset, ()))
        for action in sorted(set(known) | implemented):
            if action in NOOP and action in implemented:
                rows.append((ruleset, action, NO_EFFECT, "checked, then skipped with a warning"))
            elif action in implemented:
                rows.append((ruleset, action, SUPPORTED, ""))
            else:
                rows.append((ruleset, action, NOT_SUPPORTED,
                             "spoe-sync check --haproxy warns about it"))
        rows.append((ruleset, "track-sc*, sc-*", NOT_SUPPORTED, "stick counters"))
        if ruleset != "http-after-response":
            rows.append((ruleset, "lua.<name>", NOT_SUPPORTED,
                         "give the rule list a Python callable instead"))
    return rows


def spoe_keyword_rows() -> list[Row]:
    """(section, keyword, status): what a SPOE file may say."""
    from spoe_sync.config import model
    from spoe_sync.config import spoe_agent as agent

    rows: list[Row] = []
    for kw in agent._KEYWORDS:
        if kw == "option":
            continue
        rows.append(("spoe-agent", kw, SUPPORTED))
    for opt in agent._TOGGLES:
        rows.append(("spoe-agent", f"[no] option {opt}", SUPPORTED))
    for opt in agent._VAR_OPTIONS:
        rows.append(("spoe-agent", f"option {opt} <name>", SUPPORTED))
    for opt in ("force-set-var", "continue-on-error"):
        rows.append(("spoe-agent", f"option {opt}", SUPPORTED))
    for kw in ("args", "acl"):
        rows.append(("spoe-message", kw, SUPPORTED))
    for event in model.EVENTS:
        rows.append(("spoe-message", f"event {event} [if|unless <cond>]", SUPPORTED))
    rows.append(("spoe-message", "any other keyword", NO_EFFECT))
    rows.append(("spoe-group", "messages", SUPPORTED))
    return rows


TABLES: dict[str, tuple[tuple[str, ...], Any]] = {
    "spoe-keywords": (("section", "keyword", "status"), spoe_keyword_rows),
    "fetches": (("fetch", "arguments", "output", "status", "note"), fetch_rows),
    "converters": (("converter", "arguments", "input", "output", "status", "note"),
                   converter_rows),
    "acl-keywords": (("ACL keyword", "fetch", "method", "status"), acl_keyword_rows),
    "match-methods": (("method", "matches", "status"), match_method_rows),
    "predefined-acls": (("ACL", "definition", "status"), predefined_acl_rows),
    "actions": (("rule set", "action", "status", "note"), action_rows),
}


def summary(kind: str) -> str:
    """'N supported, N accepted without effect, N not supported' of one table."""
    header, rows_of = TABLES[kind]
    col = header.index("status")
    rows = rows_of()
    counts = {s: sum(1 for r in rows if r[col] == s) for s in (SUPPORTED, NO_EFFECT, NOT_SUPPORTED)}
    return ", ".join(f"{n} {s}" for s, n in counts.items() if n)


# ----------------------------------------------------------------------------- Sphinx side


def _table(header: tuple[str, ...], rows: list[Row]) -> Any:
    from docutils import nodes

    table = nodes.table(classes=["spoe-table"])
    group = nodes.tgroup(cols=len(header))
    table += group
    for _ in header:
        group += nodes.colspec(colwidth=1)
    head = nodes.thead()
    group += head
    body = nodes.tbody()
    group += body

    def row_node(cells: tuple[str, ...], literal_first: bool) -> Any:
        row = nodes.row()
        for i, text in enumerate(cells):
            entry = nodes.entry()
            para = nodes.paragraph()
            if literal_first and i == 0 and text:
                para += nodes.literal(text, text)
            else:
                para += nodes.Text(text)
            entry += para
            row += entry
        return row

    head += row_node(header, False)
    for r in rows:
        body += row_node(r, True)
    return table


def setup(app: Any) -> dict[str, Any]:
    from docutils import nodes
    from docutils.parsers.rst import Directive

    class SpoeTable(Directive):  # type: ignore[misc]
        """``spoe-table KIND``: one generated table and a count of its statuses."""

        required_arguments = 1
        has_content = False

        def run(self) -> list[Any]:
            kind = self.arguments[0]
            if kind not in TABLES:
                raise self.error(f"unknown table {kind!r}; one of {', '.join(TABLES)}")
            header, rows_of = TABLES[kind]
            counts = nodes.paragraph(text=f"{summary(kind)}.")
            return [counts, _table(header, rows_of())]

    app.add_directive("spoe-table", SpoeTable)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
