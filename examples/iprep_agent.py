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

# the command line's own address parser: HOST:PORT means here what it means to spoe-sync (and
# to HAProxy's bind: ":PORT" is every IPv4 address); a malformed one is a usage error (exit 2)
from spoe_sync.cli import tcp_listen_address
from spoe_sync.examples.iprep import CONFIG_PATH, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:12345", metavar="HOST:PORT",
                        type=tcp_listen_address)
    parser.add_argument("--no-async", action="store_true")
    parser.add_argument("--no-pipelining", action="store_true")
    args = parser.parse_args()
    host, port = args.listen
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    print(f"SPOE configuration: {CONFIG_PATH}", flush=True)
    try:
        run(host, port, pipelining=not args.no_pipelining, async_=not args.no_async)
    except OSError as exc:  # port in use, address not local: a message, not a traceback
        raise SystemExit(f"iprep_agent: cannot listen on {host}:{port}: {exc}") from None


if __name__ == "__main__":
    main()
