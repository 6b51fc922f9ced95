"""spoe_sync.wsgi.validity against HAProxy 2.6 itself: every row of tests/rules/test_validity.py
sent to HAProxy, with ``option http-buffer-request`` and without, whose status and error bytes
must be the module's either way (the fuzz tier does the same on random requests)."""

from __future__ import annotations

import pytest

from spoe_sync.wsgi.validity import check_raw

from ..rules.test_validity import ROWS
from . import cfgkit
from .harness import free_port, run_haproxy
from .rules_support import raw_exchange

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("option", ["option http-buffer-request", "no option http-buffer-request"])
def test_haproxy_refuses_what_validity_refuses_with_the_same_bytes(haproxy_bin, tmp_path,
                                                                   option):
    port = free_port()
    cfg = cfgkit.haproxy_cfg(port, option,
                             "http-request return status 200 content-type text/plain string ok")
    wrong = []
    with run_haproxy(haproxy_bin, cfg, tmp_path, ready_port=port):
        for raw, _ in ROWS:
            answer = raw_exchange(port, raw, timeout=3)
            refusal = check_raw(raw)
            if refusal is None:
                if b" 200 " not in answer[:13]:
                    wrong.append((raw[:60], answer[:40], "accepted"))
            elif answer != refusal.response:
                wrong.append((raw[:60], answer[:40], refusal.status))
    assert not wrong
