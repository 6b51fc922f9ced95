"""HTTP rule lines (configuration.txt §4.2: ``set-path``, ``set-src``, ``capture``,
``wait-for-body``, ``replace-header``, the no-effect actions...) against ``haproxy -c``:
every file of tests/config/corpus_rules/ gets the verdict its folder says from HAProxy 2.6
(``spoe_only/`` files are valid for HAProxy), an invalid file's ``# haproxy:`` header is in
HAProxy's output, and ``SpoeMiddleware.from_haproxy_cfg`` gives the same verdict (refusing the
``spoe_only/`` ones) — so the corpus cannot drift from the reference."""

from __future__ import annotations

import subprocess
import warnings

import pytest

from spoe_sync.errors import ConfigError, SpoeConfigWarning
from spoe_sync.wsgi import SpoeMiddleware

from ..config.rule_corpus import rule_corpus_files, with_agent_conf

FILES = rule_corpus_files()


def _app(environ, start_response):
    start_response("204 No Content", [])
    return []


@pytest.mark.timeout(120)
def test_rule_corpus_verdicts_match_haproxy(haproxy_bin, tmp_path):
    assert len(FILES) <= 60  # one haproxy -c per file: keep the tier short
    jobs = []
    for i, corpus in enumerate(FILES):
        workdir = tmp_path / str(i)
        workdir.mkdir()
        path = with_agent_conf(corpus.path, str(workdir))
        proc = subprocess.Popen([haproxy_bin, "-c", "-f", path], cwd=workdir,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                stdin=subprocess.DEVNULL)
        jobs.append((corpus, path, proc))
    mismatches = []
    for corpus, path, proc in jobs:
        try:
            output, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
        haproxy_valid = proc.returncode == 0 or (
            proc.returncode in (-6, 134) and "Configuration file is valid" in output)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SpoeConfigWarning)  # test_rule_corpus checks them
            try:
                SpoeMiddleware.from_haproxy_cfg(_app, path, "fe").close(timeout=0)
                ours_valid = True
            except ConfigError:
                ours_valid = False
        problems = []
        if haproxy_valid != (corpus.kind != "invalid"):
            problems.append(f"haproxy says {'valid' if haproxy_valid else 'invalid'}")
        if ours_valid != (corpus.kind == "valid"):
            problems.append(f"spoe_sync says {'valid' if ours_valid else 'invalid'}")
        if corpus.haproxy and corpus.haproxy not in output:
            problems.append(f"haproxy did not print {corpus.haproxy!r}")
        if problems:
            mismatches.append(f"{corpus.name}: {'; '.join(problems)}\n{output}")
    assert not mismatches, "\n".join(mismatches)
