"""A loopback TCP proxy for bench_cli.py's counting pass: which entry keys a command wrote.

It records the first key of every command that writes a hash or deletes a key. It also counts
round trips from the wire, as a cross-check of the count made inside the client: a new command
sent while every command before it on that connection has been answered (it parses RESP both
ways, so a pipeline the server starts answering early is still one). The wire cannot tell a
client descheduled between two pieces of one pipeline from a client that waited, so on a busy
machine this count is an upper bound (bench_cli.py reports the client's count).
"""

from __future__ import annotations

import selectors
import socket
import threading
from collections import Counter

# Commands whose first argument is the key they write (hashes and whole keys).
KEY_WRITES = frozenset({b"HSET", b"HSETNX", b"HMSET", b"HDEL", b"DEL", b"UNLINK"})
# Arguments longer than this are skipped, not captured (definitions are not needed).
CAPTURE_LIMIT = 512


class RespCounter:
    """Counts complete top-level RESP messages in a byte stream fed in arbitrary pieces.

    With ``capture`` it keeps the first two bulk strings of each top-level array (a command's
    name and first key) and hands them to ``on_message``.
    """

    def __init__(self, capture: bool = False) -> None:
        self.tail = b""
        self.open_arrays: list[int] = []  # items still expected, innermost last
        self.skip = 0  # bytes of a bulk payload (and its CRLF) still to come
        self.capture = capture
        self.captured: list[bytes] = []
        self.capturing: bytearray | None = None
        self.item_index = 0  # index of the current item in a top-level array
        self.messages: list[list[bytes]] = []

    def idle(self) -> bool:
        return not self.tail and not self.open_arrays and not self.skip

    def feed(self, data: bytes) -> int:
        buf = self.tail + data
        pos = 0
        done = 0
        size = len(buf)
        while pos < size:
            if self.skip:
                take = min(self.skip, size - pos)
                if self.capturing is not None:
                    self.capturing += buf[pos : pos + take]
                pos += take
                self.skip -= take
                if self.skip:
                    break
                if self.capturing is not None:
                    self.captured.append(bytes(self.capturing[:-2]))
                    self.capturing = None
                done += self._item_done()
                continue
            end = buf.find(b"\r\n", pos)
            if end < 0:
                break
            kind = buf[pos : pos + 1]
            header = buf[pos + 1 : end]
            pos = end + 2
            if kind in (b"$", b"=", b"!"):
                length = int(header)
                if length < 0:
                    done += self._item_done()
                else:
                    self.skip = length + 2
                    wanted = (
                        self.capture
                        and len(self.open_arrays) == 1
                        and self.item_index < 2
                        and length <= CAPTURE_LIMIT
                    )
                    self.capturing = bytearray() if wanted else None
            elif kind in (b"*", b"~", b">", b"%"):
                count = int(header) * (2 if kind == b"%" else 1)
                if count <= 0:
                    done += self._item_done()
                else:
                    if not self.open_arrays:
                        self.item_index = 0
                        self.captured = []
                    self.open_arrays.append(count)
            elif kind == b"|":
                raise ValueError("RESP3 attributes are not supported")
            else:  # + - : _ , # ( and inline commands: one line each
                done += self._item_done()
        self.tail = buf[pos:]
        return done

    def _item_done(self) -> int:
        if len(self.open_arrays) == 1:
            self.item_index += 1
        while self.open_arrays:
            self.open_arrays[-1] -= 1
            if self.open_arrays[-1] > 0:
                return 0
            self.open_arrays.pop()
            if len(self.open_arrays) == 1:
                self.item_index += 1
        if self.capture:
            self.messages.append(self.captured)
            self.captured = []
        return 1


class Connection:
    def __init__(self, client: socket.socket, server: socket.socket) -> None:
        self.client = client
        self.server = server
        self.commands = RespCounter(capture=True)
        self.replies = RespCounter()
        self.unanswered = 0


class CountingProxy:
    """Forwards 127.0.0.1:<port> to a Redis port and counts round trips and commands."""

    def __init__(self, upstream_port: int, prefix: str = "redbeat:") -> None:
        self.upstream_port = upstream_port
        self.prefix = prefix.encode()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = int(self.listener.getsockname()[1])
        self.lock = threading.Lock()
        self.round_trips = 0
        self.connections = 0
        self.entry_keys_written: set[bytes] = set()
        self.key_writes: Counter[bytes] = Counter()
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def reset(self) -> None:
        with self.lock:
            self.round_trips = 0
            self.connections = 0
            self.entry_keys_written = set()
            self.key_writes = Counter()

    def stop(self) -> None:
        self.stopping = True
        self.thread.join()
        self.listener.close()

    def _serve(self) -> None:
        selector = selectors.DefaultSelector()
        self.listener.setblocking(False)
        selector.register(self.listener, selectors.EVENT_READ, None)
        while not self.stopping:
            for key, _ in selector.select(timeout=0.1):
                if key.data is None:
                    self._accept(selector)
                else:
                    connection, from_client = key.data
                    self._pump(selector, connection, from_client)
        selector.close()

    def _accept(self, selector: selectors.BaseSelector) -> None:
        client, _ = self.listener.accept()
        server = socket.create_connection(("127.0.0.1", self.upstream_port))
        for end in (client, server):
            end.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection = Connection(client, server)
        selector.register(client, selectors.EVENT_READ, (connection, True))
        selector.register(server, selectors.EVENT_READ, (connection, False))
        with self.lock:
            self.connections += 1

    def _pump(
        self, selector: selectors.BaseSelector, connection: Connection, from_client: bool
    ) -> None:
        source = connection.client if from_client else connection.server
        target = connection.server if from_client else connection.client
        try:
            data = source.recv(1 << 20)
        except OSError:
            data = b""
        if not data:
            for end in (connection.client, connection.server):
                selector.unregister(end)
                end.close()
            return
        if from_client:
            with self.lock:
                if connection.unanswered == 0 and connection.commands.idle():
                    self.round_trips += 1
                connection.unanswered += connection.commands.feed(data)
                self._record(connection.commands.messages)
                connection.commands.messages = []
        else:
            connection.unanswered -= connection.replies.feed(data)
        target.sendall(data)

    def _record(self, messages: list[list[bytes]]) -> None:
        for message in messages:
            if len(message) < 2:
                continue
            name = message[0].upper()
            if name in KEY_WRITES:
                key = message[1]
                self.key_writes[name] += 1
                if key.startswith(self.prefix) and not key.startswith(self.prefix + b":"):
                    self.entry_keys_written.add(key)
