"""The app the fuzz tier serves under ``gunicorn -k spoe_sync.wsgi.gunicorn.GeventWorker``
(``--handler gunicorn``): the same middleware as under SpoeWSGIHandler, on the haproxy.cfg named
by SPOE_FUZZ_CFG."""

from __future__ import annotations

import os
import warnings

from spoe_sync.wsgi import SpoeMiddleware

from .engines import app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # capture-slot and similar notes: not under test
    application = SpoeMiddleware.from_haproxy_cfg(app, os.environ["SPOE_FUZZ_CFG"], "fe",
                                                  buffer_body=16384)
