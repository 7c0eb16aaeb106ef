"""A loopback TCP proxy in front of a real redis-server that loses replies on purpose.

``FaultProxy.drop_exec_reply(n)`` lets the n-th ``EXEC`` (counted over every connection)
reach the server and run, reads everything the server answers to it, and then closes the
client's connection without relaying a byte of it: the transaction has committed, and the
client cannot know. ``go_down()`` makes it refuse every connection (accept, then close) and
cut the open ones, as a Redis that went away; ``come_back()`` ends that.

The proxy never parses more than it must: an ``EXEC`` is the RESP bulk string ``EXEC``
as redis-py sends it (``$4\\r\\nEXEC\\r\\n``).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import TracebackType

_EXEC = b"$4\r\nEXEC\r\n"
# After the lost EXEC, the server is read until it has been quiet this long: its reply has
# then come (it is the last one of the transaction), and closing sends no RST over unread
# data that would make the server drop the connection before running what it received.
_QUIET_SECONDS = 0.3


class FaultProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._drop: set[int] = set()
        self._down = False
        self._open: set[socket.socket] = set()
        self.execs_seen = 0
        self.replies_dropped = 0
        # Go down the moment a reply is lost, before the client can reconnect to ask.
        self.go_down_after_drop = False
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def drop_exec_reply(self, *ordinals: int) -> None:
        """Lose the reply of these EXECs (1 is the first this proxy relays)."""
        with self._lock:
            self._drop.update(ordinals)

    def go_down(self) -> None:
        with self._lock:
            self._down = True
            cut, self._open = set(self._open), set()
        for sock in cut:
            _close(sock)

    def come_back(self) -> None:
        with self._lock:
            self._down = False

    def close(self) -> None:
        self._closed = True
        self.go_down()
        _close(self._listener)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                down = self._down
            if down:
                _close(client)
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            server.settimeout(None)
            with self._lock:
                self._open.update((client, server))
            losing = threading.Event()
            threading.Thread(
                target=self._upstream, args=(client, server, losing), daemon=True
            ).start()
            threading.Thread(
                target=self._downstream, args=(server, client, losing), daemon=True
            ).start()

    def _upstream(
        self, client: socket.socket, server: socket.socket, losing: threading.Event
    ) -> None:
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                count = data.count(_EXEC)
                if count:
                    with self._lock:
                        first = self.execs_seen + 1
                        self.execs_seen += count
                        if any(n in self._drop for n in range(first, first + count)):
                            self.replies_dropped += 1
                            losing.set()
                server.sendall(data)
                if losing.is_set():
                    return  # the client's connection is about to be cut
        _close(server)

    def _downstream(
        self, server: socket.socket, client: socket.socket, losing: threading.Event
    ) -> None:
        with contextlib.suppress(OSError):
            while True:
                if losing.is_set():
                    self._swallow(server)
                    if self.go_down_after_drop:
                        self.go_down()
                    break
                server.settimeout(0.05)
                try:
                    data = server.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    break
                if losing.is_set():
                    self._swallow(server)
                    if self.go_down_after_drop:
                        self.go_down()
                    break
                client.sendall(data)
        _close(client)
        _close(server)

    @staticmethod
    def _swallow(server: socket.socket) -> None:
        """Read and discard until the server has been quiet for a while."""
        server.settimeout(_QUIET_SECONDS)
        deadline = time.monotonic() + 10
        with contextlib.suppress(OSError):
            while time.monotonic() < deadline:
                try:
                    if not server.recv(65536):
                        return
                except TimeoutError:
                    return


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
