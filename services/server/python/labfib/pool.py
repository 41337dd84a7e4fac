"""The talk's ProcessPoolExecutor, as py-pool and py-coroutines use it: fib(n) in one of a fixed
set of worker processes, created full and warm at start. Each worker learns its index (the
`worker` label of fib_worker_requests_total) and reports it with every result.

Like the talk's pool it cannot stop a running fib: a client that leaves mid-request leaves its
worker computing. A worker that dies breaks a ProcessPoolExecutor for good; the requests it held
are answered `internal` and a new pool replaces it."""

import concurrent.futures
import multiprocessing
import os
import signal
import threading

from .fib import compute
from .options import Option, integer
from .protocol import Refused

#: The pool's size, spelled as the Node pools spell it; unset: the CPU quota, rounded up.
POOL_SIZE = Option('pool_size', '--pool-size', 'POOL_SIZE', None, integer(1, 1024), 'workers in the pool')

_index = None
_barrier = None


def _start_worker(counter, barrier):
    """Each worker, as it starts: take the next index; leave Ctrl-C to the server (it drains);
    die with the server if it is killed."""
    global _index, _barrier
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent()
    _barrier = barrier
    with counter.get_lock():
        _index = counter.value
        counter.value += 1


def _compute_here(n):
    value, started_at, seconds = compute(n)
    return value, started_at, seconds, _index


def _warm():
    _barrier.wait(timeout=60)  # returns once every worker holds one: each one has started
    return _index


def die_with_parent():
    """Ask Linux to kill this process when its parent exits (PR_SET_PDEATHSIG), where it can."""
    parent = os.getppid()
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent had already gone
            os._exit(1)
    except (OSError, AttributeError):
        pass


class Pool:
    def __init__(self, size):
        self.size = size
        self._lock = threading.Lock()
        # fork, as the talk's executor on Linux: the first pool starts before the server starts
        # any thread (a replacement, after a worker died, forks a threaded process: its workers
        # only compute). The fork context also leaves no named semaphores behind at exit.
        self._context = multiprocessing.get_context('fork')
        self._executor = self._start()

    def _start(self):
        counter = self._context.Value('i', 0)
        barrier = self._context.Barrier(self.size)
        executor = concurrent.futures.ProcessPoolExecutor(self.size, mp_context=self._context, initializer=_start_worker, initargs=(counter, barrier))
        for future in [executor.submit(_warm) for _ in range(self.size)]:
            future.result()
        return executor

    def submit(self, n):
        """A future of (value, started_at, compute_seconds, worker index); its `executor`
        attribute is the pool that took it."""
        with self._lock:
            executor = self._executor
        try:
            future = executor.submit(_compute_here, n)
        except concurrent.futures.BrokenExecutor:
            self._replace(executor)
            future = concurrent.futures.Future()
            future.set_exception(concurrent.futures.BrokenExecutor())
        future.executor = executor
        return future

    def result(self, future):
        """The future's result, or Refused(`internal`) when its worker died (the pool is replaced)."""
        try:
            return future.result()
        except concurrent.futures.BrokenExecutor:
            self._replace(future.executor)
            raise Refused('internal', 'the pool process computing this request died') from None

    def _replace(self, broken):
        """A worker died: start a new pool in place of the broken one (once)."""
        with self._lock:
            if self._executor is not broken:
                return
            broken.shutdown(wait=False, cancel_futures=True)
            self._executor = self._start()

    def alive(self):
        """Worker processes alive now."""
        try:
            return sum(1 for child in multiprocessing.active_children() if child.is_alive())
        except RuntimeError:  # the set of children changed meanwhile
            return self.size

    def kill(self):
        """At exit: stop every worker at once, computing or not."""
        for child in multiprocessing.active_children():
            child.kill()


def wait_for(pool, n):
    """fib(n) from the pool, waiting in this thread: (value, started_at, compute_seconds, worker)."""
    return pool.result(pool.submit(n))
