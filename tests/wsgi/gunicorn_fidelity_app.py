"""The app test_gunicorn_worker.py serves under ``gunicorn -k spoe_sync.wsgi.gunicorn.GeventWorker``
and under SpoeWSGIHandler: one message with the fetches that read the raw request (header order
and duplicates, the raw target, dst); the agent address comes from SPOE_TEST_AGENT."""

from __future__ import annotations

import os

from spoe_sync.wsgi import SpoeMiddleware

CONF = """[raw]
spoe-agent raw_agent
    messages raw
    timeout hello 2s
    timeout idle 30s
    timeout processing 5s
    use-backend agents

spoe-message raw
    args path=path url=url query=query base=base hdrs=req.hdrs names=req.hdr_names cnt=req.hdr_cnt(x-a) fhdr=req.fhdr(x-a) hdr1=req.hdr(x-a,1) urlp=url_param(a) dst=dst cl=req.hdr(content-length) meth=method ver=req.ver
    event on-frontend-http-request
"""


def app(environ, start_response):
    environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]


def make(agent_address: str) -> SpoeMiddleware:
    return SpoeMiddleware(app, CONF, "raw", {"agents": [agent_address]})


application = make(os.environ["SPOE_TEST_AGENT"]) if "SPOE_TEST_AGENT" in os.environ else None
