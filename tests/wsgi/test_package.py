"""The layout of :mod:`spoe_sync.wsgi`: its public names, and gevent.pywsgi and prometheus_client
loaded only by it (the TCP proxy and the engine never pull them in)."""

from __future__ import annotations

import subprocess
import sys


def test_public_names_import_from_the_package():
    from spoe_sync.wsgi import EngineSpec, SpoeMiddleware, SpoeWSGIHandler, listener

    assert all((EngineSpec, SpoeMiddleware, SpoeWSGIHandler, listener))


def test_proxy_engine_and_samples_do_not_import_the_wsgi_layer():
    code = ("import sys, spoe_sync, spoe_sync.proxy, spoe_sync.samples, spoe_sync.engine, "
            "spoe_sync.agent\n"
            "bad = sorted(m for m in sys.modules if m in ('gevent.pywsgi', 'prometheus_client') "
            "or m.startswith('spoe_sync.wsgi'))\n"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.strip() == "", out.stdout


def test_samples_still_hands_out_the_handler_lazily():
    import spoe_sync.samples
    from spoe_sync.wsgi import SpoeWSGIHandler

    assert spoe_sync.samples.SpoeWSGIHandler is SpoeWSGIHandler


def test_no_module_of_the_package_is_over_600_lines():
    import pathlib

    import spoe_sync.wsgi

    for path in pathlib.Path(spoe_sync.wsgi.__file__).parent.glob("*.py"):
        assert len(path.read_text().splitlines()) <= 600, path
