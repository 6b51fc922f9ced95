#!/usr/bin/env python
"""A TCP port forwarder that asks an SPOE agent about each client first.

This is gevent's ``examples/portforwarder.py`` plus one SPOE call: for each new
connection the example IP-reputation agent scores the client address (the
``on-client-session`` event of the packaged ``spoe-iprep.conf``, scope
``ip-reputation-tcp``), then the HAProxy rule

    tcp-request content reject if { var(sess.iprep.ip_score) -m int lt 20 }

decides.  If the agent is down the event fails open (the score is unset, the
rule does not match) after the config's ``timeout processing``, as in HAProxy.
For every event point, rule lists, a bounded drain on stop, TLS termination
(``--tls-cert``), TLS to the upstream (``--upstream-tls``) and UNIX socket
listeners (``--listen unix@/path``), use ``spoe-sync proxy``
(:class:`spoe_sync.proxy.TCPProxy`).

Run it::

    spoe-sync agent --listen 127.0.0.1:12345 &
    python examples/tcp_proxy.py 127.0.0.1:8080 127.0.0.1:80 [AGENT_HOST:PORT]
"""

from __future__ import annotations

import argparse
import signal
import sys

import gevent
from gevent import socket
from gevent.event import Event
from gevent.server import StreamServer

from spoe_sync import Engine
from spoe_sync.cli import server_address, tcp_listen_address
from spoe_sync.config.backends import parse_address
from spoe_sync.config.rule_lines import parse_rule
from spoe_sync.examples.iprep import CONFIG_PATH
from spoe_sync.rules import EvalContext
from spoe_sync.samples import TCPSamples

REJECT = parse_rule("tcp-request content reject if { var(sess.iprep.ip_score) -m int lt 20 }",
                    "tcp-request content")


class PortForwarder(StreamServer):
    def __init__(self, listener, dest, engine, **kwargs):
        StreamServer.__init__(self, listener, **kwargs)
        self.dest = dest
        self.engine = engine

    def handle(self, source, address):
        source.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        stream = self.engine.new_stream(TCPSamples(address, source.getsockname()), kind="tcp")
        result = self.engine.process_event(stream, "on-client-session")  # blocks this greenlet
        score = stream.vars.get("sess.iprep.ip_score")
        if REJECT.applies(EvalContext(stream.samples, stream.vars)):
            log("%s:%s rejected: ip_score=%s", address[0], address[1], score)
            source.close()
            return
        log("%s:%s accepted: ip_score=%s (SPOE status %s)", address[0], address[1], score,
            result.status)
        try:
            dest = socket.create_connection(self.dest, timeout=5)
        except OSError as ex:
            log("%s:%s failed to connect to %s:%s: %s", address[0], address[1], *self.dest, ex)
            source.close()
            return
        dest.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        forwarders = (gevent.spawn(forward, source, dest), gevent.spawn(forward, dest, source))
        gevent.joinall(forwarders)
        source.close()
        dest.close()


def forward(source, dest):
    """Copy until EOF, then half-close the other side (shutdown SHUT_WR)."""
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            dest.sendall(data)
        dest.shutdown(socket.SHUT_WR)
    except OSError:  # a reset on one side ends both directions
        source.close()
        dest.close()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # the command line's own address parsers: HOST:PORT means here what it means to spoe-sync
    # (":PORT" listens on every IPv4 address, as HAProxy's bind); a bad one is a usage error
    parser.add_argument("listen", metavar="LISTEN_HOST:PORT", type=tcp_listen_address)
    parser.add_argument("dest", metavar="DEST_HOST:PORT", type=server_address)
    parser.add_argument("agent", metavar="AGENT_HOST:PORT", type=server_address, nargs="?",
                        default="127.0.0.1:12345")
    args = parser.parse_args(argv)
    _family, host, port, path = parse_address(args.dest)
    if path is not None:
        parser.error(f"argument DEST_HOST:PORT: '{args.dest}': a TCP address is needed here")
    engine = Engine.from_file(CONFIG_PATH, "ip-reputation-tcp",
                              backends={"iprep-servers": [args.agent]})
    server = PortForwarder(args.listen, (host, port), engine)
    stop = Event()
    gevent.signal_handler(signal.SIGTERM, stop.set)
    gevent.signal_handler(signal.SIGINT, stop.set)
    server.start()
    log("Starting port forwarder %s:%s -> %s:%s, agent %s", *server.address[:2],
        *server.dest, args.agent)
    stop.wait()
    log("Closing listener socket, draining connections")
    server.stop(timeout=5)
    engine.close()  # HAPROXY-DISCONNECT to the agent


def log(message, *args):
    message = message % args
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


if __name__ == "__main__":
    main()
