"""The generated reference (docs/_ext): its tables follow the registries the code parses with,
and the command reference follows the argument parser."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import textwrap

import pytest

from .mdrun import REPO

sys.path.insert(0, os.path.join(REPO, "docs", "_ext"))

import spoe_cli
import spoe_tables


def test_fetch_rows_are_the_registries() -> None:
    from spoe_sync.rules.fetches import ALIASES, REGISTRY
    from spoe_sync.rules.names import FETCHES

    rows = spoe_tables.fetch_rows()
    assert [r[0] for r in rows] == sorted(set(FETCHES) | set(REGISTRY))
    supported = {r[0] for r in rows if r[3] == spoe_tables.SUPPORTED}
    assert supported == set(REGISTRY) | {a for a, t in ALIASES.items() if t in REGISTRY}
    assert {r[3] for r in rows} <= {spoe_tables.SUPPORTED, spoe_tables.NOT_SUPPORTED}


def test_registering_a_fetch_changes_the_table() -> None:
    """A fetch HAProxy has and spoe_sync lacks turns 'supported' once it is registered, and a
    new one appears: the table is computed from the registry, not written down."""
    script = textwrap.dedent("""
        import sys
        sys.path.insert(0, sys.argv[1])
        import spoe_tables
        from spoe_sync.rules.fetches import fetch

        def status(name):
            return {r[0]: r[3] for r in spoe_tables.fetch_rows()}.get(name)

        print(status("sc0_conn_cnt"), status("zz_doc_fetch"))
        fetch("sc0_conn_cnt", out="sint")(lambda ctx, args: 0)
        fetch("zz_doc_fetch", out="str")(lambda ctx, args: "x")
        print(status("sc0_conn_cnt"), status("zz_doc_fetch"))
    """)
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", script, os.path.join(REPO, "docs", "_ext")],
                         capture_output=True, text=True, env=env, timeout=120, check=True).stdout
    assert out.splitlines() == ["not supported None", "supported supported"]


def test_converter_rows_are_the_registries() -> None:
    from spoe_sync.rules.converters import CONVERTERS as IMPLEMENTED
    from spoe_sync.rules.names import CONVERTERS

    rows = spoe_tables.converter_rows()
    assert [r[0] for r in rows] == sorted(set(CONVERTERS) | set(IMPLEMENTED))
    assert {r[0] for r in rows if r[4] != spoe_tables.NOT_SUPPORTED} == set(IMPLEMENTED)


def test_action_rows_cover_every_implemented_action() -> None:
    from spoe_sync.config.rule_lines import ACTIONS, NO_EFFECT

    rows = {(r[0], r[1]): r[2] for r in spoe_tables.action_rows()}
    for ruleset, actions in ACTIONS.items():
        for action in actions:
            want = spoe_tables.NO_EFFECT if action in NO_EFFECT else spoe_tables.SUPPORTED
            assert rows[(ruleset, action)] == want, (ruleset, action)
    assert rows[("http-request", "use-service")] == spoe_tables.NOT_SUPPORTED


def test_spoe_keyword_and_acl_rows() -> None:
    from spoe_sync.config.model import EVENTS
    from spoe_sync.rules.names import ACL_KEYWORDS
    from spoe_sync.rules.patterns import METHODS

    keywords = {r[1] for r in spoe_tables.spoe_keyword_rows()}
    assert {"use-backend", "max-waiting-frames", "option set-on-error <name>"} <= keywords
    assert all(any(e in k for k in keywords) for e in EVENTS)
    assert [r[0] for r in spoe_tables.acl_keyword_rows()] == sorted(ACL_KEYWORDS)
    assert {r[0] for r in spoe_tables.match_method_rows()} >= {f"-m {m}" for m in METHODS}


@pytest.mark.parametrize("kind", sorted(spoe_tables.TABLES))
def test_every_table_has_rows_and_a_summary(kind: str) -> None:
    header, rows_of = spoe_tables.TABLES[kind]
    rows = rows_of()
    assert rows and all(len(r) == len(header) for r in rows)
    assert "supported" in spoe_tables.summary(kind)


def test_cli_reference_is_the_parser() -> None:
    from spoe_sync.cli import build_parser

    helps = dict((c, text) for c, _, text in spoe_cli.parser_helps())
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(helps) == {"spoe-sync", *sub.choices}
    for name, subparser in sub.choices.items():
        for action in subparser._actions:
            for flag in action.option_strings:
                assert flag in helps[name], (name, flag)
