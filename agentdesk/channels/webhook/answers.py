"""How `webhook serve` writes its answers to a connection: each in one piece, and a 200 only once
the payload it acknowledges is durable, sent by the thread that made it so.

`Answer` is the handler's output stream: what the handler writes is held and sent with one
`sendall` when the request is done. Written straight to the socket, status and headers went out
first and the body waited, under Nagle, for the client's delayed ACK of them: ~40 ms a request
on a kept-alive connection. One sendall also keeps the socket's send timeout a bound on the
whole answer, however slowly a client reads.

`DeferredAnswer` is a 200 whose payload is complete in tmp/ but not yet durable in new/: the
committer of new/ (`commit.DirectoryCommitter`) sends it right after the flushes that make it so
(or a 503 if one failed), and the handler thread goes back to reading the connection instead of
waiting to be woken for it. Whatever the handler writes next on that
connection (or its closing) waits until the deferred answer went out first, so answers keep the
order of their requests.
"""

from __future__ import annotations

import json
import socket
import struct
import threading


def kernel_timeout(connection: socket.socket, seconds: float) -> None:
    """Bound each blocking recv and send of `connection` to `seconds` (it then fails with EAGAIN).

    Kept in the kernel (SO_RCVTIMEO, SO_SNDTIMEO) rather than as a Python socket timeout, which
    puts a poll() before every recv and send."""
    whole = int(seconds)
    interval = struct.pack("@ll", whole, int((seconds - whole) * 1_000_000))
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, interval)
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, interval)


def not_stored(error: OSError) -> bytes:
    """The whole 503 for a payload that could not be made durable: the sender retries."""
    body = json.dumps({"error": f"cannot store the payload: {error.strerror or error}"}).encode("utf-8")
    head = (
        f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nRetry-After: 30\r\n\r\n"
    )
    return head.encode("ascii") + body


class DeferredAnswer:
    """A 200 sent once its payload is durable, by whichever thread learns that first."""

    __slots__ = ("connection", "ok", "log", "_sent", "_rest", "_error")

    def __init__(self, connection: socket.socket, ok: bytes, log):
        self.connection = connection
        self.ok = ok
        self.log = log  # called with a line when the answer became a 503
        self._sent = threading.Lock()  # held until `durable` has sent what it could
        self._sent.acquire()
        self._rest = b""  # what the socket did not take at once: the handler thread sends it
        self._error: OSError | None = None

    def durable(self, error: OSError | None) -> None:
        """The payload is durable (error None) or is not: send the answer without blocking."""
        try:
            data = self._rest = self.ok if error is None else not_stored(error)  # whatever happens next
            if error is not None:
                try:
                    self.log(f"answered 503 instead of 200: the payload was not stored: {error.strerror or error}")
                except Exception:  # noqa: BLE001 (a log that cannot be written must not keep the answer back)
                    pass
            try:
                sent = self.connection.send(data, socket.MSG_DONTWAIT)
            except BlockingIOError:
                sent = 0
            except OSError as failed:  # the client is gone: the handler learns it when it settles
                self._error, sent = failed, len(data)
            self._rest = data[sent:]
        finally:  # the handler waits for this, whatever happened above
            self._sent.release()

    def settle(self) -> None:
        """Wait until `durable` ran, and send what it could not (blocking, within the socket's
        send timeout); raises the error that ended the connection meanwhile."""
        self._sent.acquire()
        if self._error is not None:
            raise self._error
        if self._rest:
            self.connection.sendall(self._rest)


class Answer:
    """The handler's output: held until `flush` sends it in one `sendall`; a deferred answer
    before it is settled first."""

    def __init__(self, connection: socket.socket):
        self.connection = connection
        self.parts: list[bytes] = []
        self.closed = False
        self.deferred: DeferredAnswer | None = None

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        """What was written and not yet sent, no longer held here."""
        data = b"".join(self.parts)
        self.parts.clear()
        return data

    def settle(self) -> None:
        """Let a deferred answer go out before anything else (or before the connection closes)."""
        if self.deferred is not None:
            deferred, self.deferred = self.deferred, None
            deferred.settle()

    def flush(self) -> None:
        if self.parts:
            self.settle()
            self.connection.sendall(self.take())

    def close(self) -> None:
        self.parts.clear()
        self.closed = True
