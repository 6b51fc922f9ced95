"""Sphinx configuration of the spoe_sync documentation (MyST Markdown pages, autodoc).

Built with ``tox -e docs``: ``sphinx-build -W --keep-going -n``, so every warning (a broken
cross-reference, a missing page in a toctree) fails the build.
"""

from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
# The project itself (so that autodoc and the generators import this checkout's code, not an
# installed copy) and the local extensions.
sys.path.insert(0, os.path.dirname(_HERE))
sys.path.insert(0, os.path.join(_HERE, "_ext"))

from spoe_sync import __version__  # noqa: E402

project = "spoe_sync"
author = "the spoe_sync authors"
copyright = "the spoe_sync authors, Apache-2.0"
release = __version__
version = __version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    "spoe_cli",
    "spoe_tables",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
# Types that appear in signatures but are documented elsewhere (or nowhere public): nitpicky
# mode would otherwise fail the build on each of them.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(gevent|construct|loguru|prometheus_client|ssl|socket|_io|typing_extensions)\..*"),
    # Docstrings name the internal layers (spoe_sync.config.SpoeConfig, spoe_sync.engine...),
    # which the reference does not document: they may change without notice.
    (r"py:.*", r"spoe_sync\.(engine|config|rules)(\.[A-Za-z_]\w*)*"),
    (r"py:.*", r"spoe_sync\.(protocol|wsgi|proxy)\._?[a-z_]+\.[A-Za-z_.]+"),
    # ``Class.attribute`` written relative to the docstring's module.
    (r"py:(attr|meth|func)", r"[A-Z]\w*\.\w+"),
    (r"py:.*", r"[A-Z][A-Za-z]*(Fn|Source|Like|Spec|Sink|Callback)"),
    (r"py:.*", r"(Value|WSGIApp|StartResponse|Environ|Headers|Address|RuleSource|_.*)"),
    # The standard library (no intersphinx in an offline build).
    (r"py:.*", r"(collections|ipaddress|enum|typing|types|abc|os|io|pathlib|threading|"
               r"dataclasses|logging|argparse|re|datetime|builtins|warnings|signal|socket)(\..*)?"),
    # Docstrings written for reading in the code name attributes and methods relative to their
    # class (``:attr:`hellos```); Sphinx cannot resolve those outside the class's own page.
    (r"py:(class|obj|data|attr|meth|func|exc)", r"[A-Za-z_][A-Za-z0-9_]*"),
]

intersphinx_mapping = {"python": ("https://docs.python.org/3", None)}
# The build runs offline in CI: intersphinx only when asked for.
if not os.environ.get("SPOE_SYNC_DOCS_INTERSPHINX"):
    intersphinx_mapping = {}
    extensions.remove("sphinx.ext.intersphinx")

try:
    import furo  # noqa: F401
    html_theme = "furo"
except ImportError:  # pragma: no cover - the docs extra installs furo
    html_theme = "alabaster"
html_title = f"spoe_sync {release}"
html_static_path: list[str] = []
