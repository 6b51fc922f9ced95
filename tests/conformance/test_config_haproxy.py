"""SPOE configuration (SPOE.txt §2, docs/explanation/haproxy-behaviour.md §7) against ``haproxy -c``:
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
            # (docs/explanation/haproxy-behaviour.md §7.4); its verdict is the printed one.
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


_NOISE = ("'", '"', "\\", "$", "#", "{", "}", "[e]", "\t", "\\x4", "${", "=", "(", ")",
          "src", "status", "on-foo", "if", "unless", "no", "default", "option", "timeout", "0",
          "25d", "messages", "groups", "spoe-agent", "spoe-message", "spoe-group", "acl", "args",
          "event", "log", "use-backend", "max-frame-size", "255", "var-prefix", "a-b", "TRUE",
          "||", "or", "m1", "g1", "=src", "str(a)", "src,foo", '""')


def _mutate(rng, lines: list[str]) -> list[str]:
    lines = list(lines)
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(lines))
        op = rng.randrange(5)
        if op == 0:
            del lines[i]
        elif op == 1:
            lines.insert(i, lines[rng.randrange(len(lines))])
        elif op == 2:
            words = lines[i].split() or [""]
            words[rng.randrange(len(words))] = rng.choice(_NOISE)
            lines[i] = "    " + " ".join(words)
        elif op == 3:
            k = rng.randint(0, len(lines[i]))
            lines[i] = lines[i][:k] + rng.choice(_NOISE) + lines[i][k:]
        else:
            lines.insert(i, "    " + " ".join(rng.choice(_NOISE) for _ in range(rng.randint(1, 3))))
        if not lines:
            lines = [""]
    return lines


@pytest.mark.timeout(120)
def test_mutated_files_verdicts_match_haproxy(haproxy_bin, tmp_path):
    """64 seeded random mutations of the valid corpus (lines dropped, duplicated, words and
    characters replaced): spoe_sync and haproxy -c give the same verdict for each, except
    where spoe_sync refuses a fetch it does not implement."""
    import random

    from ..config.corpus_util import CorpusFile

    rng = random.Random(20261127)
    bases = [f for f in FILES if f.kind == "valid" and not f.env]
    cases, jobs = [], []
    for n in range(64):
        base = rng.choice(bases)
        with open(base.path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
        path = tmp_path / f"mutant-{n}.conf"
        path.write_text("\n".join(_mutate(rng, lines)) + "\n")
        case = CorpusFile(str(path), "valid", base.engine)
        cfg = tmp_path / f"mutant-{n}.cfg"
        cfg.write_text(haproxy_cfg_for(case))
        cases.append((case, str(cfg)))
        jobs.append((str(cfg), dict(os.environ)))
    verdicts = _haproxy_verdicts(haproxy_bin, jobs)
    mismatches = []
    for (case, cfg), (haproxy_valid, output) in zip(cases, verdicts):
        out = io.StringIO()
        ours_valid = run_check(haproxy=cfg, out=out) == 0
        if ours_valid != haproxy_valid and "does not implement" not in out.getvalue():
            with open(case.path, encoding="utf-8", errors="replace") as fh:
                mismatches.append(f"{case.path}\n{fh.read()}\n{output}\n{out.getvalue()}")
    assert not mismatches, "\n".join(mismatches)
