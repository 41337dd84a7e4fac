"""py-threads: the talk's first threaded server in real CPython. A thread per connection, fib
computed inline in that thread. The threads take turns on the GIL: a fib(30) in one connection
holds it for a switch interval (5 ms) at a time, and every fib(1) in another waits its turn.

    python3 services/variants/py-threads/server.py --port 25011     (or: npx lab serve py-threads)
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'server', 'python'))

from labfib.fib import compute  # noqa: E402
from labfib.serving import run  # noqa: E402
from labfib.threaded import ThreadPerConnection  # noqa: E402

VARIANT = 'py-threads'
# A thread per connection: cheap in memory next to a Node worker_thread, but each one queues on
# the GIL.
CONNECTION_CAP = 256
IDLE_TIMEOUT_MS = 300_000


def make_server(settings, metrics, cgroup):
    def fib_here(n):
        value, started_at, seconds = compute(n)
        return value, started_at, seconds, None

    # Every connection's thread computes: as many workers as connections.
    server = ThreadPerConnection(settings, metrics, fib_here, workers=lambda: len(server.connections))
    return server


if __name__ == '__main__':
    run(VARIANT, make_server, CONNECTION_CAP, IDLE_TIMEOUT_MS)
