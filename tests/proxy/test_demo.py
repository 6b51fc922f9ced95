"""``spoe-sync demo`` (the README's first command) as a subprocess: it exits 0 and prints the
SPOE log lines (SPOE.txt §4), allowed and denied decisions that match the example agent's scores
(SPOE.txt §2.5), and the engine counters; a run out of time exits 1 with a clear message; and it
only uses what ``pip install .`` installs (package modules and declared package data)."""

from __future__ import annotations

import configparser
import fnmatch
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from gevent import subprocess

from spoe_sync.demo import run_demo

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str, timeout: float = 40) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    # cwd outside the checkout: nothing is found relative to the current directory
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,
                          cwd="/", timeout=timeout)


CHECK_IMPORTS = """
import json, os, sys
from spoe_sync.cli import main
code = main(["demo"])
root = sys.argv[1]
env = os.path.abspath(sys.prefix) + os.sep  # a virtualenv may live inside the checkout
mods = {}
for name, mod in list(sys.modules.items()):
    path = getattr(mod, "__file__", None)
    path = path and os.path.abspath(path)
    if path and path.startswith(root + os.sep) and not path.startswith(env):
        mods[name] = os.path.relpath(os.path.abspath(path), root)
from spoe_sync.examples.iprep import CONFIG_PATH
print("RESULT " + json.dumps({"code": code, "modules": mods,
                              "data": [os.path.relpath(CONFIG_PATH, root)]}))
"""


def _package_data() -> dict[str, list[str]]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return {pkg: [p.strip() for p in value.replace("\n", ",").split(",") if p.strip()]
            for pkg, value in cfg["options.package_data"].items()}


def test_demo_exits_0_with_decisions_log_lines_counters_and_installed_code_only() -> None:
    # one run of the command's main() (what the console script calls), outside the checkout
    proc = _run("-c", CHECK_IMPORTS, str(ROOT))
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    assert line is not None, proc.stdout + proc.stderr
    result = json.loads(line[len("RESULT "):])
    assert result["code"] == 0, proc.stdout + proc.stderr
    assert proc.stderr == ""
    check_output(proc.stdout)
    check_installed_only(result)


def check_output(out: str) -> None:
    log_lines = re.findall(r"SPOE: \[iprep-agent\] <EVENT:on-frontend-http-request> sid=\d+ "
                           r"st=0 \d+/\d+/\d+/\d+/\d+ \d+/\d+ \d+/\d+ 0/\d+", out)
    assert len(log_lines) == 6  # five direct requests and one through the TCP proxy
    assert re.search(r"<EVENT:on-client-session> sid=\d+ st=0", out)  # the TCP proxy's event
    decisions = re.findall(r"-> (\d{3}) (allowed|DENIED) +ip_score=(\d+)", out)
    assert decisions == [("200", "allowed", "100"), ("200", "allowed", decisions[1][2]),
                         ("403", "DENIED", "5"), ("403", "DENIED", "5"), ("403", "DENIED", "5")]
    assert 30 <= int(decisions[1][2]) <= 100  # the agent's hash score of an unlisted address
    assert "X-Forwarded-For" in out and "What decides" in out  # honest about the source
    assert re.search(r"\[ip-reputation\] \(WSGI\) +processed=6 errors=0", out)
    assert re.search(r"\[ip-reputation-tcp\] \(proxy\) processed=1 errors=0", out)
    assert "spoe-sync demo: OK" in out and "2 allowed, 3 denied" in out


def check_installed_only(result: dict[str, Any]) -> None:
    assert result["modules"], "the demo loaded nothing from the checkout?"
    for name, path in result["modules"].items():
        assert name == "spoe_sync" or name.startswith("spoe_sync."), (name, path)
        assert path.startswith("spoe_sync" + os.sep) and path.endswith(".py"), (name, path)
        assert (ROOT / Path(path).parent / "__init__.py").exists(), path  # a real package
    # and every data file it reads is declared as package data
    declared = _package_data()
    for path in result["data"]:
        folder, filename = os.path.split(path)
        package = folder.replace(os.sep, ".")
        assert any(fnmatch.fnmatch(filename, pattern) for pattern in declared.get(package, ())), \
            f"{path} is not in setup.cfg [options.package_data] {package}"


def test_demo_out_of_time_fails_clearly(capsys: pytest.CaptureFixture[str]) -> None:
    # in-process, keeping the test run's loguru sinks; what was started is stopped again
    assert run_demo(timeout=0.001, own_logging=False) == 1
    assert "spoe-sync demo: FAILED: no result after 0.001 s" in capsys.readouterr().err
