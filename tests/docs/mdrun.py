"""Run the code blocks of a documentation page, so that the page cannot rot.

A page marks each block it wants run with a MyST comment line (``% test: ...``, invisible in
the built site; in the README, an HTML comment ``<!-- test: ... -->``) just before the block:

``% test: file NAME``
    write the block to NAME in the working directory;
``% test: start NAME``
    a console block of one ``$ command``: start it in the background, and wait until each
    output line shown below the command has appeared in its output (stdout and stderr);
``% test: run``
    a console block of ``$ command`` lines, each followed by its output: run each one and
    compare its standard output with the lines shown;
``% test: expect NAME``
    each line of the block appears in the output of the background command NAME (soon);
``% test: stop NAME`` (no block)
    stop a background command with SIGTERM and wait for it to exit;
``% test: contained-in PATH``
    the block is a verbatim excerpt of PATH (relative to the repository);
``% test: python``
    run the block with the interpreter under test and expect it to exit 0, with the
    configuration warnings spoe_sync gives (:class:`~spoe_sync.SpoeConfigWarning`) as errors:
    a set-up shown in the documentation loads cleanly;
``% test: skip REASON``
    not run, for a reason the page states (installing packages).

Every fenced block of a page must carry a marker (:func:`unmarked_blocks`), so that a new block
cannot be added without being run. The addresses in the page (``127.0.0.1:12345``...) are
replaced with free ports so that pages run alongside other tests; times in the output
(log-line timestamps, "in 4 ms") are compared as placeholders.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field

from tests.kit import stop_process

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_FENCE = re.compile(r"^(```+|~~~+)\s*(\{[^}]*\}\s*)?(\S*)\s*$")
# ``% test: ...`` (a MyST comment) in the docs; ``<!-- test: ... -->`` (an HTML comment,
# invisible on GitHub too) in the README
_MARK = re.compile(r"^(?:%|<!--)\s*test:\s*(\S+)\s*(.*?)\s*(?:-->)?\s*$")
_TIMES = (
    (re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"), "<time>"),
    (re.compile(r"\bin \d+ ms\b"), "in <n> ms"),
    (re.compile(r"\bin \d+\.\d+s\b"), "in <n>s"),
    # the five timings of an SPOE log line (reqT/qT/wT/resT/pT)
    (re.compile(r"(st=\d+ )-?\d+/-?\d+/-?\d+/-?\d+/-?\d+"), r"\1<timings>"),
)


@dataclass
class Block:
    """A fenced block and the marker before it (``kind`` None: unmarked)."""

    lineno: int
    lang: str
    text: str
    kind: str | None = None
    arg: str = ""


@dataclass
class Step:
    """A marker: a block to run, or a stand-alone ``stop``."""

    kind: str
    arg: str
    lineno: int
    block: Block | None = None


def parse(path: str) -> tuple[list[Step], list[Block]]:
    """The steps of a page in order, and every fenced block of it."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    steps: list[Step] = []
    blocks: list[Block] = []
    pending: Step | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        mark = _MARK.match(line)
        if mark:
            if pending is not None:
                steps.append(pending)
            pending = Step(mark.group(1), mark.group(2), i + 1)
            i += 1
            continue
        fence = _FENCE.match(line)
        if fence:
            opener = fence.group(1)
            lang = fence.group(3) or ""
            if fence.group(2):
                # ```{code-block} LANG / ```{directive}: only code-blocks are code
                directive = fence.group(2).strip("{} ")
                if directive not in ("code-block", "code"):
                    j = i + 1
                    while j < len(lines) and not lines[j].startswith(opener):
                        j += 1
                    i = j + 1
                    continue
            j = i + 1
            body = []
            while j < len(lines) and not lines[j].startswith(opener):
                body.append(lines[j])
                j += 1
            block = Block(i + 1, lang, "\n".join(body) + "\n")
            blocks.append(block)
            if pending is not None:
                block.kind, block.arg = pending.kind, pending.arg
                pending.block = block
                steps.append(pending)
                pending = None
            i = j + 1
            continue
        if pending is not None and line.strip():
            steps.append(pending)  # a marker with no block under it (stop)
            pending = None
        i += 1
    if pending is not None:
        steps.append(pending)
    return steps, blocks


def unmarked_blocks(path: str) -> list[Block]:
    """The fenced blocks of a page that no marker covers."""
    return [b for b in parse(path)[1] if b.kind is None]


def normalize(text: str) -> str:
    for pattern, placeholder in _TIMES:
        text = pattern.sub(placeholder, text)
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


def console_commands(text: str) -> list[tuple[str, str]]:
    """``(command, expected output)`` pairs of a console block (``$ `` starts a command; a
    trailing backslash continues it, as in the shell)."""
    out: list[tuple[str, list[str]]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("$ "):
            cmd = line[2:]
            while cmd.endswith("\\") and i + 1 < len(lines):
                i += 1
                cmd = cmd + "\n" + lines[i]  # bash reads the backslash-newline as one line
            out.append((cmd, []))
        elif out:
            out[-1][1].append(line)
        i += 1
    return [(cmd, "\n".join(expected)) for cmd, expected in out]


@dataclass
class Runner:
    """Runs the steps of one page in ``workdir``."""

    workdir: str
    ports: dict[str, str] = field(default_factory=dict)
    procs: dict[str, tuple[subprocess.Popen[bytes], str]] = field(default_factory=dict)
    timeout: float = 60.0
    #: where commands run (default: ``workdir``)
    cwd: str | None = None

    def __post_init__(self) -> None:
        # ``python`` and ``spoe-sync`` in the page are the interpreter and the checkout under
        # test, whatever else is on PATH.
        bindir = os.path.join(self.workdir, ".bin")
        os.makedirs(bindir, exist_ok=True)
        shims = {
            "python": f'exec "{sys.executable}" "$@"\n',
            "spoe-sync": f'exec "{sys.executable}" -c "import sys; from spoe_sync.cli import main; '
                         f'sys.exit(main())" "$@"\n',
        }
        for name, body in shims.items():
            path = os.path.join(bindir, name)
            with open(path, "w") as f:
                f.write("#!/bin/sh\n" + body)
            os.chmod(path, 0o755)
        self.env = dict(os.environ)
        self.env["PATH"] = bindir + os.pathsep + self.env.get("PATH", "")
        self.env["PYTHONPATH"] = REPO + os.pathsep + self.env.get("PYTHONPATH", "")
        self.env["PYTHONUNBUFFERED"] = "1"
        self.env.pop("COLUMNS", None)
        self.cwd = self.cwd or self.workdir

    def sub(self, text: str) -> str:
        for old, new in self.ports.items():
            text = re.sub(rf"\b{old}\b", new, text)
        return text

    def run_steps(self, steps: list[Step]) -> None:
        try:
            for step in steps:
                self.run_step(step)
        finally:
            self.stop_all()

    def run_step(self, step: Step) -> None:
        where = f"page line {step.lineno}"
        block = step.block
        if step.kind == "skip":
            return
        if step.kind == "stop":
            self.stop(step.arg)
            return
        assert block is not None, f"{where}: '% test: {step.kind}' needs a block under it"
        if step.kind == "file":
            with open(os.path.join(self.workdir, step.arg), "w", encoding="utf-8") as f:
                f.write(self.sub(block.text))
        elif step.kind == "contained-in":
            with open(os.path.join(REPO, step.arg), encoding="utf-8") as f:
                whole = f.read()
            assert block.text.strip("\n") in whole, f"{where}: not an excerpt of {step.arg}"
        elif step.kind == "python":
            strict = ("import warnings, spoe_sync; "
                      "warnings.simplefilter('error', spoe_sync.SpoeConfigWarning)\n")
            proc = subprocess.run([sys.executable, "-c", strict + self.sub(block.text)],
                                  cwd=self.workdir,
                                  env=self.env, capture_output=True, timeout=self.timeout)
            assert proc.returncode == 0, (f"{where}: exit {proc.returncode}\n"
                                          f"{proc.stdout.decode()}{proc.stderr.decode()}")
        elif step.kind == "run":
            for cmd, expected in console_commands(block.text):
                proc = subprocess.run(["bash", "-c", self.sub(cmd)], cwd=self.cwd,
                                      env=self.env, capture_output=True, timeout=self.timeout)
                got = normalize(proc.stdout.decode("utf-8", "replace"))
                want = normalize(self.sub(expected))
                assert got == want, (f"{where}: `{cmd}` printed\n{got}\ninstead of\n{want}\n"
                                     f"stderr:\n{proc.stderr.decode('utf-8', 'replace')}")
        elif step.kind == "expect":
            self.expect(step.arg, normalize(self.sub(block.text)), where)
        elif step.kind == "start":
            (cmd, expected), = console_commands(block.text)
            self.start(step.arg, self.sub(cmd), normalize(self.sub(expected)), where)
        else:
            raise AssertionError(f"{where}: unknown marker '% test: {step.kind}'")

    def start(self, name: str, cmd: str, expected: str, where: str) -> None:
        log = os.path.join(self.workdir, f".{name}.log")
        with open(log, "wb") as out:
            proc = subprocess.Popen(["bash", "-c", f"exec {cmd}"], cwd=self.cwd, env=self.env,
                                    stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self.procs[name] = (proc, log)
        self.expect(name, expected, where, cmd)

    def expect(self, name: str, expected: str, where: str, cmd: str = "") -> None:
        """Wait until each line of ``expected`` is a line of the output of ``name``."""
        proc, log = self.procs[name]
        cmd = cmd or name
        deadline = time.monotonic() + self.timeout
        want = [line for line in expected.splitlines() if line.strip()]
        while True:
            with open(log, "rb") as f:
                got = normalize(f.read().decode("utf-8", "replace"))
            if all(line in got.splitlines() for line in want):
                return
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{where}: `{cmd}` "
                                     f"{'exited' if proc.poll() is not None else 'still silent'};"
                                     f" it printed\n{got}\ninstead of\n{expected}")
            time.sleep(0.05)

    def stop(self, name: str) -> None:
        proc, _ = self.procs.pop(name)
        stop_process(proc)

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)
