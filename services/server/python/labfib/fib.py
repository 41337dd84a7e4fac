"""The work every server does: the talk's naive doubly recursive Fibonacci, never memoized,
iterated or replaced by a closed form (its exponential call tree is what the lab measures)."""

import time


def fib(n):
    return 1 if n <= 2 else fib(n - 1) + fib(n - 2)


def compute(n):
    """fib(n) where it is called, timed: (value, started at (epoch seconds), compute seconds)."""
    started_at = time.time()
    t0 = time.perf_counter()
    value = fib(n)
    return value, started_at, time.perf_counter() - t0
