"""The fib wire protocol, as services/server/protocol.ts has it for the TypeScript variants.

Request framing (strict lines, and the talk's legacy framing: a connection that has never sent
a newline is answered per received chunk), request parsing, replies and error lines. Bytes are
handled as bytes; error messages quote what the client sent the way JSON.stringify does.
"""

import json
import re
import time

#: A request line (or a legacy chunk) longer than this, without a newline, is `line_too_long`.
MAX_LINE_BYTES = 64
#: The largest n a server may be configured to accept: fib(78) is the last exact double.
FIB_MAX_N_LIMIT = 78
#: The message of `unavailable` while a server drains.
SHUTTING_DOWN = 'server shutting down'

#: The frame of more than MAX_LINE_BYTES without a newline: reply `line_too_long`, then close.
TOO_LONG = object()


class LineTimeout:
    """The frame of a line begun and not finished within `ms` (see `expire`): reply
    `line_timeout`, then close."""

    def __init__(self, ms):
        self.ms = ms


def closes_connection(frame):
    return frame is TOO_LONG or isinstance(frame, LineTimeout)


class RequestDecoder:
    """Splits one connection's bytes into requests: `feed` stores a received chunk, `next`
    takes the next request out (bytes without the terminator, TOO_LONG or a LineTimeout), None
    until more bytes arrive. Servers read only when `next` gives None, so at most one chunk plus a
    partial line is ever held. `received_at` is when the chunk completing the last request
    arrived; `partial_line_at` (time.monotonic) when the line not yet finished began, else None."""

    def __init__(self):
        self.line_mode = False
        self.finished = False
        self.received_at = 0.0
        self._buffer = bytearray()
        self._pos = 0
        self._legacy = []
        self.partial_line_at = None

    def feed(self, chunk, at):
        if self.finished or not chunk:
            return
        self.received_at = at
        if not self.line_mode:
            if b'\n' not in chunk:
                if len(chunk) > MAX_LINE_BYTES:
                    self._legacy.append(TOO_LONG)
                    self.finished = True
                else:
                    self._legacy.append(chunk[:-1] if chunk.endswith(b'\r') else bytes(chunk))
                return
            self.line_mode = True  # for good, this chunk included
        if self._pos:
            del self._buffer[: self._pos]
            self._pos = 0
        self._buffer += chunk
        if self.partial_line_at is None:
            self.partial_line_at = time.monotonic()

    def expire(self, ms):
        """The line begun has not been finished in time: `next` gives a LineTimeout after the
        complete requests before it; the decoder takes nothing more."""
        if self.partial_line_at is not None and not self.finished:
            self.finished = True
            self._buffer.clear()
            self._pos = 0
            self.partial_line_at = None
            self._legacy.append(LineTimeout(ms))

    def next(self):
        if self._legacy:
            return self._legacy.pop(0)
        if self.finished or not self.line_mode:
            return None
        end = self._buffer.find(b'\n', self._pos)
        if end == -1:
            return self._finish() if len(self._buffer) - self._pos > MAX_LINE_BYTES else None
        if end - self._pos > MAX_LINE_BYTES:
            return self._finish()
        last = end - 1 if end > self._pos and self._buffer[end - 1] == 13 else end
        frame = bytes(self._buffer[self._pos : last])
        self._pos = end + 1
        if self._pos == len(self._buffer):
            self._buffer.clear()
            self._pos = 0
            self.partial_line_at = None
        elif self._buffer.find(b'\n', self._pos) == -1:
            # What is left is a line begun in the last chunk read (a server reads only when
            # the decoder holds no complete request).
            self.partial_line_at = time.monotonic()
        return frame

    def _finish(self):
        self.finished = True
        self.partial_line_at = None
        self._buffer.clear()
        self._pos = 0
        return TOO_LONG


class Refused(Exception):
    """A request answered with an error line instead of fib(n)."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.reply = format_error(code, message)


def quote(text):
    """A short, printable, single-line rendering of what the client sent (as JSON.stringify)."""
    text = text.decode('latin-1')
    return json.dumps(text[:20] + '...' if len(text) > 20 else text, ensure_ascii=False)


def parse_request(text, max_n):
    """n from one request's bytes: an ASCII decimal integer, optionally signed, with spaces and
    tabs around it; else Refused (`bad_request`, `out_of_range`)."""
    body = text.strip(b' \t')
    digits = body[1:] if body[:1] in (b'+', b'-') else body
    if not digits or not digits.isdigit():  # bytes.isdigit() is ASCII digits only
        raise Refused('bad_request', f'expected an integer n, got {quote(text)}')
    n = int(digits)
    if (body[:1] == b'-' and n != 0) or n > max_n:
        raise Refused('out_of_range', f'n must be from 0 to {max_n}, got {body.decode("latin-1")}')
    return n


def admit(frame, max_n, refusing):
    """The protocol's rules before any work: n to compute, or Refused."""
    if frame is TOO_LONG:
        raise Refused('line_too_long', f'more than {MAX_LINE_BYTES} bytes without a newline')
    if isinstance(frame, LineTimeout):
        raise Refused('line_timeout', f"no newline within {frame.ms} ms of the line's first byte")
    if refusing:
        raise Refused('unavailable', SHUTTING_DOWN)
    return parse_request(frame, max_n)


def format_reply(value):
    return f'fib: {value}\n'.encode('latin-1')


def format_error(code, message):
    message = re.sub(r'[\r\n]+', ' ', message)
    return f'error: {code} {message}\n'.encode('latin-1')
