"""``spoe-cli``: the command-line reference, rendered from ``spoe_sync.cli.build_parser()``.

Each subcommand's ``--help`` text becomes a section of the page, so the page changes when an
option does and cannot drift from what ``spoe-sync COMMAND --help`` prints.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

#: argparse wraps to the terminal width; a fixed width keeps the page the same on every machine.
WIDTH = 88


def parser_helps() -> list[tuple[str, str, str]]:
    """(command, one-line help, full --help text): the main parser first, then each command."""
    from spoe_sync.cli import build_parser

    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(WIDTH)
    try:
        parser = build_parser()
        out = [("spoe-sync", parser.description or "", parser.format_help())]
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                helps = {c.dest: c.help or "" for c in action._choices_actions}
                for name, sub in action.choices.items():
                    out.append((name, helps.get(name, ""), sub.format_help()))
        return out
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old


def setup(app: Any) -> dict[str, Any]:
    from docutils import nodes
    from docutils.parsers.rst import Directive

    class SpoeCli(Directive):  # type: ignore[misc]
        has_content = False

        def run(self) -> list[Any]:
            out = []
            for command, summary, text in parser_helps():
                title = command if command == "spoe-sync" else f"spoe-sync {command}"
                section = nodes.section(ids=[nodes.make_id(f"cli-{command}")],
                                        names=[nodes.fully_normalize_name(title)])
                section += nodes.title(text=title)
                if summary and command != "spoe-sync":
                    section += nodes.paragraph(text=summary[0].upper() + summary[1:] + ".")
                section += nodes.literal_block(text, text, language="text")
                out.append(section)
            return out

    app.add_directive("spoe-cli", SpoeCli)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
