"""py-pool: the talk's threaded server handing fib to a ProcessPoolExecutor, in real CPython. A
thread per connection does the I/O; each request waits for its future. The GIL is held only to
read, write and wait, so a fib(1) no longer queues behind a fib(30): it pays the trip to a pool
process and back instead.

    python3 services/variants/py-pool/server.py --port 25012 [--pool-size 2]   (or: npx lab serve py-pool)
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'server', 'python'))

from labfib.cgroup import default_parallelism  # noqa: E402
from labfib.pool import POOL_SIZE, Pool, wait_for  # noqa: E402
from labfib.serving import run  # noqa: E402
from labfib.threaded import ThreadPerConnection  # noqa: E402

VARIANT = 'py-pool'
CONNECTION_CAP = 256
IDLE_TIMEOUT_MS = 300_000


def make_server(settings, metrics, cgroup):
    pool = Pool(settings.pool_size or default_parallelism(cgroup))
    metrics.fixed_workers(pool.size)
    server = ThreadPerConnection(settings, metrics, lambda n: wait_for(pool, n), workers=pool.alive)
    server.close = pool.kill
    return server


if __name__ == '__main__':
    run(VARIANT, make_server, CONNECTION_CAP, IDLE_TIMEOUT_MS, own_options=[POOL_SIZE])
