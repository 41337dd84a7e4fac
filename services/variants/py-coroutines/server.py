"""py-coroutines: the talk's last server in real CPython. One thread runs a scheduler over
select(); every connection is a generator task that yields what it waits for: ('recv', sock),
('send', sock), or ('future', future) for a fib handed to a ProcessPoolExecutor. The pool's
completion callbacks (on the executor's own thread) put the task back in the ready queue and
write a byte to a socket pair, which wakes the select().

    python3 services/variants/py-coroutines/server.py --port 25013 [--pool-size 2]   (or: npx lab serve py-coroutines)
"""

import collections
import os
import select
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'server', 'python'))

from labfib.cgroup import default_parallelism  # noqa: E402
from labfib.options import ConfigError  # noqa: E402
from labfib.pool import POOL_SIZE, Pool  # noqa: E402
from labfib.protocol import SHUTTING_DOWN, TOO_LONG, Refused, RequestDecoder, admit, closes_connection, format_error, format_reply  # noqa: E402
from labfib.serving import ABORT_GRACE_SECONDS, CLOSE_LINGER_SECONDS, READ_BYTES, poke, run, wake_pair  # noqa: E402

VARIANT = 'py-coroutines'
IDLE_TIMEOUT_MS = 300_000
# select() takes descriptors below 1024 (FD_SETSIZE): connections, the pool's pipes and the rest.
CONNECTION_CAP = 900
#: After the drain began, how many reads a connection that keeps sending gets before it is closed.
SHUTDOWN_READS = 10


class DrainTimeout(Exception):
    """Thrown into a task still busy when DRAIN_TIMEOUT_MS has passed."""


class Scheduler:
    """The talk's scheduler: a queue of ready tasks, and the sockets and futures the others wait
    on. A task yields ('recv', sock, deadline or None) and is resumed with True (readable),
    False (the deadline passed) or None (woken: the drain began); ('send', sock); or
    ('future', future)."""

    def __init__(self):
        self.ready = collections.deque()
        self.recv_wait = {}  # socket -> task
        self.send_wait = {}  # socket -> task
        self.deadlines = {}  # task -> (deadline, socket)
        self.future_wait = {}  # task -> future
        self.completed = collections.deque()  # tasks whose future is done (appended by the pool's thread)
        self.notify_r, self.notify_w = wake_pair()

    def spawn(self, task):
        self.ready.append((task, None, None))

    def wake(self, task):
        """Resumes a task waiting to read, with None."""
        for sock, waiting in list(self.recv_wait.items()):
            if waiting is task:
                del self.recv_wait[sock]
                self.deadlines.pop(task, None)
                self.ready.append((task, None, None))

    def throw(self, task, error):
        """Resumes a waiting task with an exception."""
        self.future_wait.pop(task, None)
        for waits in (self.recv_wait, self.send_wait):
            for sock, waiting in list(waits.items()):
                if waiting is task:
                    del waits[sock]
        self.deadlines.pop(task, None)
        self.ready.append((task, None, error))

    def run(self, check, next_deadline, stop):
        """Runs tasks until `stop()`; `check()` runs before every wait, `next_deadline()` bounds it."""
        while True:
            while self.ready:
                self.step(*self.ready.popleft())
            check()
            if stop():
                return
            if not self.ready:  # check() may have woken some
                self.wait(next_deadline())

    def step(self, task, value, error):
        try:
            trap = task.throw(error) if error is not None else task.send(value)
        except StopIteration:
            return
        why, what = trap[0], trap[1]
        if why == 'recv':
            self.recv_wait[what] = task
            if trap[2] is not None:
                self.deadlines[task] = (trap[2], what)
        elif why == 'send':
            self.send_wait[what] = task
        elif why == 'future':
            self.future_wait[task] = what
            what.add_done_callback(lambda _future: self._completed(task))

    def _completed(self, task):
        # On the executor's thread: hand the task over, wake the select.
        self.completed.append(task)
        poke(self.notify_w)

    def wait(self, deadline):
        now = time.monotonic()
        deadlines = [d for d, _ in self.deadlines.values()] + ([deadline] if deadline is not None else [])
        timeout = None if not deadlines else max(0.0, min(deadlines) - now)
        readers = list(self.recv_wait) + [self.notify_r]
        readable, writable, _ = select.select(readers, list(self.send_wait), [], timeout)
        for sock in readable:
            if sock is self.notify_r:
                try:
                    while sock.recv(4096):
                        pass
                except BlockingIOError:
                    pass
                continue
            task = self.recv_wait.pop(sock)
            self.deadlines.pop(task, None)
            self.ready.append((task, True, None))
        for sock in writable:
            self.ready.append((self.send_wait.pop(sock), True, None))
        while self.completed:
            task = self.completed.popleft()
            if self.future_wait.pop(task, None) is not None:  # not thrown out of its wait meanwhile
                self.ready.append((task, None, None))
        now = time.monotonic()
        for task, (deadline, sock) in list(self.deadlines.items()):
            if now >= deadline:
                del self.deadlines[task]
                del self.recv_wait[sock]
                self.ready.append((task, False, None))


class Connection:
    def __init__(self, sock):
        self.sock = sock
        self.task = None
        self.decoder = RequestDecoder()
        self.busy = False  # a request admitted and not yet answered
        self.refusing = False  # past the drain's cut-off: lines read from now on get `unavailable`


class CoroutineServer:
    def __init__(self, settings, metrics, pool):
        self.settings, self.metrics, self.pool = settings, metrics, pool
        self.scheduler = Scheduler()
        self.connections = {}  # task -> Connection
        self.lingering = 0
        self.acceptor = None
        self.listening = True
        self.drain_requested = self.draining = False
        self.drain_deadline = self.abort_deadline = None
        self.done = False
        metrics.connections = lambda: len(self.connections)
        metrics.workers = pool.alive

    def health(self):
        return {'ok': not self.draining, 'status': 'draining' if self.draining else 'ok', 'variant': VARIANT, 'connections': len(self.connections)}

    def request_drain(self):
        self.drain_requested = True
        poke(self.scheduler.notify_w)

    def close(self):
        self.pool.kill()

    def serve(self, listener):
        self.acceptor = self.accept(listener)
        self.scheduler.spawn(self.acceptor)
        self.scheduler.run(self.check, lambda: self.abort_deadline or self.drain_deadline, lambda: self.done)

    def check(self):
        """After every wait: start the drain, abort it at its timeout, stop once it is done."""
        now = time.monotonic()
        if self.drain_requested and not self.draining:
            self.draining = True
            self.drain_deadline = now + self.settings.drain_timeout_ms / 1000
            self.scheduler.wake(self.acceptor)
            for task in list(self.connections):
                self.scheduler.wake(task)  # readers notice the drain
        if not self.draining:
            return
        if not self.listening and not self.connections:
            self.done = True
        elif self.abort_deadline is None and now >= self.drain_deadline:
            for task, connection in list(self.connections.items()):
                if connection.busy and task in self.scheduler.future_wait:
                    self.scheduler.throw(task, DrainTimeout())
            self.abort_deadline = now + ABORT_GRACE_SECONDS
        elif self.abort_deadline is not None and now >= self.abort_deadline:
            self.done = True

    def accept(self, listener):
        while not self.draining:
            yield 'recv', listener, None
            self.accept_waiting(listener)
        # Connections the kernel completed before the drain are taken and drained too.
        self.accept_waiting(listener)
        listener.close()
        self.listening = False

    def accept_waiting(self, listener):
        while True:
            try:
                sock, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # EMFILE and the like: the next wake tries again
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if len(self.connections) < self.settings.max_connections:
                connection = Connection(sock)
                connection.task = self.handle(connection)
                self.connections[connection.task] = connection
                self.scheduler.spawn(connection.task)
                continue
            self.metrics.count_request('overloaded')
            try:
                sock.send(format_error('overloaded', f'connection cap of {self.settings.max_connections} reached'))
            except OSError:
                pass
            if self.lingering < 64 and sock.fileno() < 1000:
                self.scheduler.spawn(self.refused(sock))
            else:
                sock.close()

    def refused(self, sock):
        self.lingering += 1
        try:
            yield from self.end(sock, time.monotonic() + CLOSE_LINGER_SECONDS)
        finally:
            self.lingering -= 1
            sock.close()

    def handle(self, connection):
        """One connection: read, frame, hand fib to the pool, reply, in request order."""
        sock, decoder = connection.sock, connection.decoder
        reason = 'client'
        try:
            peer_ended = False
            reads_after_drain = 0
            while True:
                frame = decoder.next()
                if frame is not None:
                    yield from self.answer(connection, frame)
                    if closes_connection(frame):
                        reason = 'line_too_long' if frame is TOO_LONG else 'line_timeout'
                        break
                    continue
                if peer_ended:
                    break
                if self.draining:
                    connection.refusing = True
                if connection.refusing:
                    # Bytes already here are read and answered `unavailable`, then the FIN.
                    reads_after_drain += 1
                    if reads_after_drain > SHUTDOWN_READS or not select.select([sock], [], [], 0)[0]:
                        reason = 'shutdown'
                        break
                else:
                    idle_deadline = time.monotonic() + self.settings.idle_timeout_ms / 1000
                    line_deadline = None
                    if decoder.partial_line_at is not None:
                        line_deadline = decoder.partial_line_at + self.settings.line_timeout_ms / 1000
                    readable = yield 'recv', sock, min(idle_deadline, line_deadline or idle_deadline)
                    if readable is False:
                        if line_deadline is not None and line_deadline <= idle_deadline:
                            decoder.expire(self.settings.line_timeout_ms)  # answered `line_timeout` next, then closed
                            continue
                        reason = 'idle'
                        break
                    if readable is None:
                        continue  # woken: the drain began
                try:
                    chunk = sock.recv(READ_BYTES)
                except BlockingIOError:
                    continue
                if not chunk:
                    peer_ended = True  # half-closed: answer what it sent, then close
                else:
                    decoder.feed(chunk, time.time())
            if reason != 'client':
                yield from self.end(sock, time.monotonic() + CLOSE_LINGER_SECONDS)
        except DrainTimeout:
            # What is computing, and the lines read behind it, will not be answered with fib.
            reason = 'shutdown'
            left = 1
            while decoder.next() is not None:
                left += 1
            connection.busy = False
            self.metrics.inflight(-1)
            for _ in range(left):
                self.metrics.finished('unavailable', 0.0)
            try:
                sock.send(format_error('unavailable', SHUTTING_DOWN) * left)
            except OSError:
                pass
            yield from self.end(sock, time.monotonic() + ABORT_GRACE_SECONDS)
        except OSError:
            reason = 'client'  # reset, or a broken pipe: the client left
        finally:
            if connection.busy:
                self.metrics.inflight(-1)
            sock.close()
            self.metrics.closed(reason)
            self.connections.pop(connection.task, None)

    def answer(self, connection, frame):
        received_at = connection.decoder.received_at
        connection.busy = True
        self.metrics.inflight(1)
        queue_wait = compute_seconds = worker = None
        try:
            n = admit(frame, self.settings.fib_max_n, connection.refusing)
            future = self.pool.submit(n)
            yield 'future', future
            value, started_at, compute_seconds, worker = self.pool.result(future)
            outcome, reply = 'ok', format_reply(value)
            queue_wait = started_at - received_at
        except Refused as refused:
            outcome, reply = refused.code, refused.reply
        connection.busy = False
        self.metrics.inflight(-1)
        self.metrics.finished(outcome, time.time() - received_at, queue_wait, compute_seconds, worker)
        yield from self.send_all(connection.sock, reply)

    def send_all(self, sock, data):
        while data:
            try:
                data = data[sock.send(data):]
            except BlockingIOError:
                yield 'send', sock

    def end(self, sock, deadline):
        """Half-closes, then reads (discarding) until the client closes or the deadline: the
        connection ends with a FIN, not a reset."""
        try:
            sock.shutdown(socket.SHUT_WR)
            while True:
                readable = yield 'recv', sock, deadline
                if readable is False:
                    return
                if readable and not sock.recv(READ_BYTES):
                    return
        except OSError:
            return


def make_server(settings, metrics, cgroup):
    if settings.max_connections > CONNECTION_CAP:
        raise ConfigError('--max-connections (MAX_CONNECTIONS)', f'{VARIANT} waits with select(), which takes descriptors below 1024: expected at most {CONNECTION_CAP}, got {settings.max_connections}')
    pool = Pool(settings.pool_size or default_parallelism(cgroup))
    metrics.fixed_workers(pool.size)
    return CoroutineServer(settings, metrics, pool)


if __name__ == '__main__':
    run(VARIANT, make_server, CONNECTION_CAP, IDLE_TIMEOUT_MS, own_options=[POOL_SIZE])
