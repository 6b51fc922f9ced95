"""CPU instructions per event, counted by valgrind's callgrind: ``process_event`` and the floor.

    python benchmarks/instructions.py [--kinds floor,new,long-lived] [--small 1000]
                                      [--large 5000] [--streams 200]

Timing on a shared 2-core machine moves by 10-20% from run to run; instructions counted by
``valgrind --tool=callgrind`` agree within about 1%, enough to see a change of a few hundred
instructions per event.  For each kind, this process runs itself twice under callgrind, once
for ``--small`` events and once for ``--large``, and prints ``(large - small) / (large -
small events)``: what one more event costs, with start-up, imports, warm-up and shutdown
subtracted.  The kinds are ``floor.py``'s:

* ``floor``: the minimal Python round trip (``floor.bench_floor``: encode, send, a Waiter,
  the ACK decoded in an io watcher's callback, the variables stored);
* ``new``: ``process_event`` on a new stream per event (``engine.bench_engine``);
* ``long-lived``: ``process_event`` on long-lived streams.

``--streams`` greenlets each time, against the cheap agent answering every NOTIFY with two
set-var actions; the agent runs outside valgrind (children are not traced), pinned to core 1.
Needs ``valgrind``; a run takes a minute or two per kind (the interpreter runs about 50x
slower under callgrind).  Events per run are multiples of ``--streams``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
KINDS = ("floor", "new", "long-lived")


def _run(kind: str, events: int, streams: int) -> None:
    """The measured run (inside valgrind): ``events`` events of ``kind``."""
    sys.path.insert(0, os.path.dirname(HERE))
    import engine as engine_bench
    import floor
    from _common import pin, start_agent

    pin(0)
    agent = start_agent(set_vars=True)
    address = f"127.0.0.1:{agent.port}"
    try:
        if kind == "floor":
            row = floor.bench_floor(address, streams, 600.0, events)
        else:
            row = engine_bench.bench_engine(address, streams, 600.0, events,
                                            reuse=kind == "long-lived")
    finally:
        agent.stop()
    if row["frames"] != events or row["errors"]:
        raise SystemExit(f"{kind}: {row['frames']} events, {row['errors']} errors "
                         f"(expected {events}, 0)")


def _count(kind: str, events: int, streams: int, workdir: str) -> int:
    """Instructions of one run of this script under callgrind."""
    out = os.path.join(workdir, f"{kind}-{events}.out")
    subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                    sys.executable, os.path.abspath(__file__), "--run", kind, str(events),
                    "--streams", str(streams)],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(out) as f:
        for line in f:
            if line.startswith(("totals:", "summary:")):
                return int(line.split()[1])
    raise RuntimeError(f"no totals in {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--small", type=int, default=1000, help="events of the first run")
    parser.add_argument("--large", type=int, default=5000, help="events of the second run")
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--run", nargs=2, metavar=("KIND", "EVENTS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        _run(args.run[0], int(args.run[1]), args.streams)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed")
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = set(kinds) - set(KINDS)
    if unknown or args.large <= args.small:
        raise SystemExit(f"unknown kinds {sorted(unknown)}, or --large <= --small")
    per_event: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="spoe-instructions-") as workdir:
        for kind in kinds:
            small = _count(kind, args.small, args.streams, workdir)
            large = _count(kind, args.large, args.streams, workdir)
            per_event[kind] = (large - small) / (args.large - args.small)
            print(f"{kind:12} {per_event[kind]:10,.0f} instructions per event", flush=True)
    floor_ir = per_event.get("floor")
    if floor_ir:
        for kind in kinds:
            if kind != "floor":
                print(f"process_event ({kind}) / floor: {per_event[kind] / floor_ir:.2f}x "
                      "by instructions")


if __name__ == "__main__":
    main()
