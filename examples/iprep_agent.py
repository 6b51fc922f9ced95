"""The example IP-reputation agent (SPOE.txt §2.5), runnable from a checkout.

    python examples/iprep_agent.py --listen 127.0.0.1:12345

It serves :mod:`spoe_sync.examples.iprep`, the agent packaged with spoe_sync
(``spoe-sync agent`` runs the same one).  Its SPOE configuration is printed at
start-up: use that file in HAProxy (``filter spoe engine ip-reputation config
<path>``) or with spoe_sync's middleware and proxy.
"""

from __future__ import annotations

import argparse
import logging

from spoe_sync.examples.iprep import CONFIG_PATH, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:12345", metavar="HOST:PORT")
    parser.add_argument("--no-async", action="store_true")
    parser.add_argument("--no-pipelining", action="store_true")
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    print(f"SPOE configuration: {CONFIG_PATH}", flush=True)
    run(host.strip("[]") or "127.0.0.1", int(port), pipelining=not args.no_pipelining,
        async_=not args.no_async)


if __name__ == "__main__":
    main()
