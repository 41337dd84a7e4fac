"""A thread per connection, the talk's threaded server, with the lab's rules: the connection cap,
the idle timeout, replies in request order, bounded input, and the drain. py-threads computes fib
in the connection's thread; py-pool hands it to a process pool and waits. Either way a
connection has one request in flight: further pipelined lines wait unread (in the decoder, at
most one read's worth, then in the kernel, whose flow control slows the client down).

The main thread accepts, refuses connections over the cap (`overloaded`, then a half-close), and
runs the drain: on SIGTERM the connections' threads see `draining`, answer what they had
received, answer what they read from then on `unavailable`, and close; when DRAIN_TIMEOUT_MS
passes first, the main thread answers what is still computing `unavailable` itself."""

import select
import socket
import threading
import time

from .protocol import TOO_LONG, RequestDecoder, Refused, admit, closes_connection, format_error, format_reply, SHUTTING_DOWN
from .serving import ABORT_GRACE_SECONDS, CLOSE_LINGER_SECONDS, READ_BYTES, poke, wake_pair

#: After the drain began, how many reads a connection that keeps sending gets before it is closed.
SHUTDOWN_READS = 10
#: Refused connections lingering at once (reading until their client closes); beyond, closed at once.
MAX_LINGERING = 1000


class ThreadPerConnection:
    """`compute(n)` -> (value, started_at, compute_seconds, worker index or None), in the
    connection's thread; it raises Refused to answer an error instead."""

    def __init__(self, settings, metrics, compute, workers):
        self.settings = settings
        self.metrics = metrics
        self.compute = compute
        self.connections = set()
        self.lock = threading.Lock()
        self.draining = False
        self.drain_requested = False
        self.wake_r, self.wake_w = wake_pair()
        # Readable for good once the drain begins: every connection's poll sees it.
        self.drain_r, self.drain_w = wake_pair()
        metrics.connections = lambda: len(self.connections)
        metrics.workers = workers

    def health(self):
        return {'ok': not self.draining, 'status': 'draining' if self.draining else 'ok', 'variant': self.metrics.variant, 'connections': len(self.connections)}

    def request_drain(self):
        """From the signal handler: the main loop starts the drain."""
        self.drain_requested = True
        poke(self.wake_w)

    def close(self):
        pass

    def serve(self, listener):
        poller = select.poll()
        poller.register(listener, select.POLLIN)
        poller.register(self.wake_r, select.POLLIN)
        lingering = {}  # fd -> (socket, deadline)
        drain_deadline = abort_deadline = None
        while True:
            now = time.monotonic()
            deadlines = [deadline for _, deadline in lingering.values()] + [d for d in (drain_deadline, abort_deadline) if d is not None]
            timeout = None if not deadlines else max(0, min(deadlines) - now) * 1000 + 1
            for fd, _ in poller.poll(timeout):
                if listener is not None and fd == listener.fileno():
                    self._accept(listener, poller, lingering)
                elif fd == self.wake_r.fileno():
                    _drain_bytes(self.wake_r)
                elif fd in lingering:
                    sock = lingering[fd][0]
                    if not _discard(sock):
                        poller.unregister(fd)
                        del lingering[fd]
                        sock.close()
            now = time.monotonic()
            for fd, (sock, deadline) in list(lingering.items()):
                if now >= deadline:
                    poller.unregister(fd)
                    del lingering[fd]
                    sock.close()
            if self.drain_requested and not self.draining:
                self.draining = True
                poke(self.drain_w)
                drain_deadline = now + self.settings.drain_timeout_ms / 1000
            if self.draining and listener is not None:
                # Connections the kernel completed before the drain are taken and drained too.
                self._accept(listener, poller, lingering)
                poller.unregister(listener)
                listener.close()
                listener = None
            if self.draining:
                with self.lock:
                    left = list(self.connections)
                if not left:
                    return
                if abort_deadline is None and now >= drain_deadline:
                    for connection in left:
                        connection.abort()
                    abort_deadline = now + ABORT_GRACE_SECONDS
                    drain_deadline = None
                elif abort_deadline is not None and now >= abort_deadline:
                    return

    def _accept(self, listener, poller, lingering):
        while True:
            try:
                sock, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # EMFILE and the like: the next poll tries again
            sock.setblocking(True)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                admitted = len(self.connections) < self.settings.max_connections
                if admitted:
                    connection = Connection(self, sock)
                    self.connections.add(connection)
            if admitted:
                threading.Thread(target=connection.run, name='connection', daemon=True).start()
                continue
            self.metrics.count_request('overloaded')
            sock.setblocking(False)
            try:
                sock.send(format_error('overloaded', f'connection cap of {self.settings.max_connections} reached'))
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            if len(lingering) >= MAX_LINGERING:
                sock.close()
            else:
                lingering[sock.fileno()] = (sock, time.monotonic() + CLOSE_LINGER_SECONDS)
                poller.register(sock, select.POLLIN)

    def released(self, connection):
        with self.lock:
            self.connections.discard(connection)
        if self.draining:
            poke(self.wake_w)


class Connection:
    def __init__(self, server, sock):
        self.server = server
        self.sock = sock
        self.decoder = RequestDecoder()
        self.lock = threading.Lock()
        # A request admitted and not yet answered (its reply not written).
        self.busy = False
        # The drain timeout passed: the main thread answered for this connection.
        self.aborted = False
        # Past the drain's cut-off: lines read from now on are answered `unavailable`.
        self.refusing = False

    def run(self):
        reason = 'client'
        try:
            reason = self.serve()
        except OSError:
            reason = 'client'  # reset, or a broken pipe: the client left
        finally:
            with self.lock:
                if self.busy:
                    self.busy = False
                    self.server.metrics.inflight(-1)
            try:
                self.sock.close()
            except OSError:
                pass
            self.server.metrics.closed(reason)
            self.server.released(self)

    def serve(self):
        server, sock, decoder = self.server, self.sock, self.decoder
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        poller.register(server.drain_r, select.POLLIN)
        idle_ms = server.settings.idle_timeout_ms
        line_ms = server.settings.line_timeout_ms
        peer_ended = False
        reads_after_drain = 0
        while True:
            if self.aborted:
                return self.end('shutdown')
            frame = decoder.next()
            if frame is not None:
                self.answer(frame)
                if closes_connection(frame):
                    return self.end('line_too_long' if frame is TOO_LONG else 'line_timeout')
                continue
            if peer_ended:
                return self.end('client')
            if server.draining:
                self.refusing = True
            if self.refusing:
                # Bytes already here are read and answered `unavailable`, then the FIN.
                reads_after_drain += 1
                if reads_after_drain > SHUTDOWN_READS or not _readable(sock):
                    return self.end('shutdown')
            else:
                wait_ms, line_left = idle_ms, None
                if decoder.partial_line_at is not None:
                    line_left = line_ms - (time.monotonic() - decoder.partial_line_at) * 1000
                    wait_ms = max(0, min(idle_ms, line_left))
                ready = [fd for fd, _ in poller.poll(wait_ms)]
                if not ready:
                    if line_left is not None and line_left <= idle_ms:
                        decoder.expire(line_ms)  # answered `line_timeout` next, then closed
                        continue
                    return self.end('idle')
                if sock.fileno() not in ready:
                    continue  # the drain began
            chunk = sock.recv(READ_BYTES)
            if not chunk:
                peer_ended = True  # half-closed: answer what it sent, then close
            else:
                decoder.feed(chunk, time.time())

    def answer(self, frame):
        metrics = self.server.metrics
        received_at = self.decoder.received_at
        with self.lock:
            self.busy = True
        metrics.inflight(1)
        queue_wait = compute_seconds = worker = None
        try:
            n = admit(frame, self.server.settings.fib_max_n, self.refusing)
            value, started_at, compute_seconds, worker = self.server.compute(n)
            outcome, reply = 'ok', format_reply(value)
            queue_wait = started_at - received_at
        except Refused as refused:
            outcome, reply = refused.code, refused.reply
        with self.lock:
            if self.aborted:
                return  # answered `unavailable` meanwhile
            self.busy = False
            metrics.inflight(-1)
            metrics.finished(outcome, time.time() - received_at, queue_wait, compute_seconds, worker)
            self.sock.sendall(reply)

    def abort(self):
        """The drain timeout passed (main thread): what is computing, and the lines read behind
        it, are answered `unavailable`; the connection half-closes."""
        if not self.lock.acquire(timeout=1):
            _shutdown(self.sock, socket.SHUT_RDWR)  # stuck writing to a client that does not read
            return
        try:
            if self.aborted or not self.busy:
                return  # reading: it sees the drain itself
            self.aborted = True
            self.busy = False
            left = 1
            while self.decoder.next() is not None:  # the connection's thread is computing: not reading
                left += 1
            metrics = self.server.metrics
            metrics.inflight(-1)
            for _ in range(left):
                metrics.finished('unavailable', 0.0)
            self.sock.sendall(format_error('unavailable', SHUTTING_DOWN) * left)
            _shutdown(self.sock, socket.SHUT_WR)
        except OSError:
            pass
        finally:
            self.lock.release()

    def end(self, reason):
        """Half-closes after the last reply and reads (discarding) until the client closes, for at
        most CLOSE_LINGER_SECONDS: the connection ends with a FIN, not a reset."""
        _shutdown(self.sock, socket.SHUT_WR)
        if reason != 'client':
            deadline = time.monotonic() + CLOSE_LINGER_SECONDS
            try:
                while (left := deadline - time.monotonic()) > 0:
                    self.sock.settimeout(left)
                    if not self.sock.recv(READ_BYTES):
                        break
            except OSError:
                pass
        return reason


def _readable(sock):
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


def _discard(sock):
    """Reads and drops what a refused client still sends; False once it has closed."""
    try:
        return bool(sock.recv(READ_BYTES))
    except BlockingIOError:
        return True
    except OSError:
        return False


def _drain_bytes(sock):
    try:
        while sock.recv(4096):
            pass
    except (BlockingIOError, OSError):
        pass


def _shutdown(sock, how):
    try:
        sock.shutdown(how)
    except OSError:
        pass
