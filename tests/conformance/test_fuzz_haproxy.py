"""Differential fuzzing against HAProxy 2.6 (docs/explanation/haproxy-behaviour.md): seeded
random raw requests, byte for byte, through HAProxy and through gevent.pywsgi +
``SpoeWSGIHandler`` + ``SpoeMiddleware.from_haproxy_cfg`` on the same haproxy.cfg; every
NOTIFY the recording agent gets must be the same, and so must the status.  A mismatch class
not in ``fuzz.known.KNOWN`` fails with the report (HAProxy's value, ours, a minimised
reproducer).  Longer runs: ``python -m tests.conformance.fuzz --seed N --count M``."""

from __future__ import annotations

import re

import pytest

from spoe_sync.rules.converters import CONVERTERS
from spoe_sync.rules.fetches import ALIASES, REGISTRY

from .fuzz import config
from .fuzz.run import run

pytestmark = pytest.mark.timeout(150)

SEED = 20261205
COUNT = 1000


def test_no_mismatch_class_outside_the_known_list(haproxy_bin, tmp_path):
    text, new = run(haproxy_bin, SEED, COUNT, minimise_known=False, workdir=tmp_path)
    assert not new, text


def _expressions() -> str:
    messages = config.MESSAGES + config.GROUP_MESSAGES + config.RES_MESSAGES
    return " ".join(e for _, args in messages for _, e in args) + " " + " ".join(
        c for _, c in config.ACL_MESSAGES)


def _used(name: str, before: str) -> bool:
    return re.search(rf"(^|[{before}]){re.escape(name)}($|[\s(,}}])", _expressions()) is not None


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_the_fuzz_config_uses_every_fetch(name):
    assert _used(name, r"\s{") or any(_used(a, r"\s{") for a, n in ALIASES.items() if n == name)


@pytest.mark.parametrize("name", sorted(CONVERTERS))
def test_the_fuzz_config_uses_every_converter(name):
    assert _used(name, ",")
