"""A TCP proxy on 127.0.0.1 that can play dead, to take SQS away without losing its state.

moto keeps every message in memory, so stopping the server would lose them.
Clients that talk to SQS through this proxy instead see what an outage looks
like from outside: while it is blocked, open connections are cut and new ones
are refused. It also counts the SQS API calls that pass through it, by action,
so that benchmarks report requests counted, not estimated.
"""

import contextlib
import re
import socket
import threading
from collections import Counter

from stack.processes import free_port


class TcpProxy:
    def __init__(self, *, target_port: int, port: int | None = None):
        self.target_port = target_port
        self.port = port or free_port()
        self._listener: socket.socket | None = None
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.sqs_requests = SqsRequestCounter()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "TcpProxy":
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True, name="proxy-accept").start()
        return self

    def block(self) -> None:
        """Refuse new connections and cut the open ones, as if the server were gone."""
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            connections, self._connections = self._connections, set()
        for connection in connections:
            _close(connection)

    def unblock(self) -> None:
        if self._listener is None:
            self.start()

    stop = block

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # blocked or stopped
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._connections.update((client, upstream))
            for source, sink, counter in ((client, upstream, self.sqs_requests), (upstream, client, None)):
                thread = threading.Thread(target=self._pump, args=(source, sink, counter), daemon=True)
                thread.start()

    def _pump(self, source: socket.socket, sink: socket.socket, counter: "SqsRequestCounter | None") -> None:
        tail = b""
        try:
            while data := source.recv(65536):
                sink.sendall(data)
                if counter is not None:
                    tail = counter.feed(tail + data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                _close(end)
                with self._lock:
                    self._connections.discard(end)


def _close(connection: socket.socket) -> None:
    with contextlib.suppress(OSError):
        connection.shutdown(socket.SHUT_RDWR)
    connection.close()


class SqsRequestCounter:
    """Counts SQS API calls in client-to-server traffic, by action (the X-Amz-Target header)."""

    PATTERN = re.compile(rb"(?i)\r\nx-amz-target:\s*AmazonSQS\.(\w+)\r\n")
    # Bytes kept from the end of a chunk, so a header split between two reads is still seen once.
    KEEP = 64

    def __init__(self):
        self.by_action: Counter = Counter()
        self._lock = threading.Lock()

    def feed(self, data: bytes) -> bytes:
        """Count the calls in `data`; return the tail to prepend to the next chunk."""
        matches = list(self.PATTERN.finditer(data))
        with self._lock:
            self.by_action.update(match.group(1).decode() for match in matches)
        consumed = matches[-1].end() - 2 if matches else 0
        return data[max(consumed, len(data) - self.KEEP) :]

    def snapshot(self) -> Counter:
        with self._lock:
            return Counter(self.by_action)
