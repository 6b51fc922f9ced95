"""SPOE configuration (SPOE.txt §2, haproxy-engine-behaviour.md §7) against ``haproxy -c``:
every corpus file is loaded by HAProxy 2.6 and by ``spoe-sync check --haproxy`` from the same
generated haproxy.cfg, and both give the same verdict (files of ``spoe_only/`` are valid for
HAProxy and refused by spoe_sync on purpose). An invalid file's header names HAProxy's
message; HAProxy must print it, so the corpus cannot drift from the reference."""

from __future__ import annotations

import io
import os
import subprocess

import pytest

from spoe_sync.config import run_check

from ..config.corpus_util import corpus_files, haproxy_cfg_for

FILES = corpus_files()


def _haproxy_verdicts(haproxy_bin: str, jobs: list[tuple[str, dict[str, str]]]
                      ) -> list[tuple[bool, str]]:
    """Run ``haproxy -c`` on every config, 16 at a time; return (valid, output) each."""
    results: list[tuple[bool, str]] = []
    for start in range(0, len(jobs), 16):
        procs = [subprocess.Popen([haproxy_bin, "-c", "-f", cfg], stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, env=env)
                 for cfg, env in jobs[start : start + 16]]
        for proc in procs:
            try:
                output, _ = proc.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                output, _ = proc.communicate()
            # 2.6.12 aborts with "free(): invalid pointer" *after* validating some files
            # (haproxy-engine-behaviour.md §7.4); its verdict is the printed one.
            valid = proc.returncode == 0 or (
                proc.returncode in (-6, 134) and "Configuration file is valid" in output)
            results.append((valid, output))
    return results


@pytest.mark.timeout(120)
def test_corpus_verdicts_match_haproxy(haproxy_bin, tmp_path):
    assert len(FILES) <= 100  # one haproxy -c per file: keep the tier short
    mismatches = []
    jobs = []
    for i, corpus in enumerate(FILES):
        cfg = tmp_path / f"haproxy-{i}.cfg"
        cfg.write_text(haproxy_cfg_for(corpus))
        jobs.append((str(cfg), {**os.environ, **corpus.env}))
    verdicts = _haproxy_verdicts(haproxy_bin, jobs)
    for corpus, (cfg, _), (haproxy_valid, output) in zip(FILES, jobs, verdicts):
        saved = {k: os.environ.get(k) for k in corpus.env}
        os.environ.update(corpus.env)
        try:
            out = io.StringIO()
            ours_valid = run_check(haproxy=cfg, out=out) == 0
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        expected_haproxy = corpus.kind != "invalid"
        expected_ours = corpus.kind == "valid"
        problems = []
        if haproxy_valid != expected_haproxy:
            problems.append(f"haproxy says {'valid' if haproxy_valid else 'invalid'}")
        if ours_valid != expected_ours:
            problems.append(f"spoe_sync says {'valid' if ours_valid else 'invalid'}")
        if corpus.haproxy and corpus.haproxy not in output:
            problems.append(f"haproxy did not print {corpus.haproxy!r}")
        if corpus.line is not None and not ours_valid and \
                f"[{corpus.path}:{corpus.line}]" not in out.getvalue():
            problems.append(f"spoe_sync did not name line {corpus.line}")
        if problems:
            mismatches.append(f"{corpus.name}: {'; '.join(problems)}\n{output}\n{out.getvalue()}")
    assert not mismatches, "\n".join(mismatches)
