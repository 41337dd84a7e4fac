"""What the lab's CPython reference servers share (services/variants/py-threads, py-pool, py-coroutines).

The same contract as the TypeScript variants (docs/protocol.md), written once in plain Python:
the wire protocol (protocol.py), the options of `lab serve` (options.py), the metrics and their
HTTP listener (metrics.py, cgroup.py), fib and its process pool (fib.py, pool.py), and the
serving machinery the two thread-per-connection servers share (threaded.py; serving.py starts
any of them). Standard library and prometheus_client only.
"""
