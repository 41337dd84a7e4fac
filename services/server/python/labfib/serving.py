"""Starts any of the Python servers the way `lab serve` starts a variant (services/cli/serve.ts): the
options checked (a bad one exits 2 with one line naming it), the fib listener and the /metrics
listener bound, the one `listening fib=HOST:PORT metrics=HOST:PORT` line on stdout that scripts
and tests wait for, SIGTERM and SIGINT starting the drain, and exit 0 once drained."""

import os
import signal
import socket
import sys

from .cgroup import CgroupReader
from .metrics import ServerMetrics, start_http
from .options import ConfigError, resolve, shared_options
from .pool import die_with_parent

#: After the server half-closes, how long the client has to close its side before it is cut off.
CLOSE_LINGER_SECONDS = 5.0
#: After the drain timeout, how long aborted connections get to write their last lines.
ABORT_GRACE_SECONDS = 2.0
#: Bytes read from a socket at once.
READ_BYTES = 65536


def run(variant, make_server, connection_cap, idle_timeout_ms, own_options=()):
    """`make_server(settings, metrics, cgroup)` builds the server (its pool first, before any
    thread starts); its `serve(listener)` returns once drained."""
    try:
        settings = resolve(shared_options(connection_cap, idle_timeout_ms) + list(own_options))
        cgroup = CgroupReader()
        metrics = ServerMetrics(variant, cgroup)
        server = make_server(settings, metrics, cgroup)
    except ConfigError as error:
        print(f'{variant}: {error}', file=sys.stderr)
        sys.exit(2)
    if os.environ.get('LAB_SERVE_PARENT'):  # started by `lab serve`: never outlive it
        die_with_parent()
    try:
        listener = listen(settings.host, settings.port)
        http = start_http(settings.host, settings.metrics_port, metrics, server.health)
    except OSError as error:
        print(f'{variant}: cannot listen on {settings.host}: {error.strerror or error}', file=sys.stderr)
        server.close()
        sys.exit(1)
    show = lambda port: f'[{settings.host}]:{port}' if ':' in settings.host else f'{settings.host}:{port}'
    print(f'listening fib={show(listener.getsockname()[1])} metrics={show(http.server_address[1])}', flush=True)

    def on_signal(signum, _frame):
        # Once: the drain is bounded by DRAIN_TIMEOUT_MS (a terminal's Ctrl-C reaches both
        # `lab serve` and this process, and `lab serve` forwards it too).
        for name in (signal.SIGTERM, signal.SIGINT):
            signal.signal(name, signal.SIG_IGN)
        print(f'{variant}: {signal.Signals(signum).name}: draining (up to {settings.drain_timeout_ms} ms)', file=sys.stderr, flush=True)
        server.request_drain()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.serve(listener)
    server.close()
    sys.stdout.flush()
    sys.stderr.flush()
    # Threads still computing a fib nobody waits for are not waited for.
    os._exit(0)


def listen(host, port):
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(511)
    listener.setblocking(False)
    return listener


def wake_pair():
    """A socket pair to wake a waiting thread: write a byte on [1], [0] becomes readable."""
    r, w = socket.socketpair()
    r.setblocking(False)
    w.setblocking(False)
    return r, w


def poke(sock):
    try:
        sock.send(b'\0')
    except (BlockingIOError, OSError):
        pass  # a byte is waiting already, or we are closing
