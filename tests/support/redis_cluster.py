"""Start and stop a real Redis Cluster of three primaries on 127.0.0.1.

Each node is a :class:`~tests.support.redis_server.RedisServer` started with
``--cluster-enabled yes`` and its own ``nodes.conf`` in its own folder. The cluster is made
as ``redis-cli --cluster create`` makes one (slots 0-5460, 5461-10922, 10923-16383), but
with ``CLUSTER ADDSLOTS`` and ``CLUSTER MEET`` sent through redis-py: redis-cli waits in
whole seconds between its steps, this takes a fraction of one. Ready once every node says
``cluster_state:ok`` and knows the two others.
"""

from __future__ import annotations

import contextlib
import socket
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry

from tests.support.redis_server import _LIVE, HOST, RedisServer, RedisServerError, free_port

if TYPE_CHECKING:
    from types import TracebackType

SLOTS = 16384
# Redis 6.2 puts a node's cluster bus on its port + 10000 (no cluster-port setting yet).
BUS_OFFSET = 10000
_PORT_ATTEMPTS = 50


class ClusterNodeServer(RedisServer):
    """A cluster-enabled redis-server whose port leaves room for its bus port."""

    def __init__(self, *, node_timeout_ms: int = 2000) -> None:
        super().__init__(
            config={
                "cluster-enabled": "yes",
                # Relative: the server runs in its own folder.
                "cluster-config-file": "nodes.conf",
                "cluster-node-timeout": node_timeout_ms,
            }
        )

    def start(self) -> ClusterNodeServer:
        if self._proc is not None:
            raise RedisServerError("redis-server already started")
        self._dir = Path(tempfile.mkdtemp(prefix="reconciler-cluster-node-"))
        failures: list[str] = []
        for _ in range(_PORT_ATTEMPTS):
            port = free_port(self.host)
            if port + BUS_OFFSET > 65535 or not _bindable(port + BUS_OFFSET):
                continue
            outcome = self._try_start(port)
            if outcome is None:
                _LIVE.add(self)
                return self
            failures.append(outcome)
        self._cleanup_dir()
        raise RedisServerError("cluster node did not start:\n" + "\n---\n".join(failures))


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


class RedisClusterServers:
    """Three primaries holding every slot between them, no replicas."""

    def __init__(self, primaries: int = 3, *, startup_timeout: float = 20.0) -> None:
        self.nodes = [ClusterNodeServer() for _ in range(primaries)]
        self.startup_timeout = startup_timeout
        self.host = HOST

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    @property
    def url(self) -> str:
        """The reconciler's form: every node as a startup node."""
        hosts = ",".join(f"{self.host}:{port}" for port in self.ports)
        return f"redis-cluster://{hosts}"

    @property
    def redis_url(self) -> str:
        """A ``redis://`` URL of one node, as RedBeat's ``{"cluster": True}`` takes it."""
        return f"redis://{self.host}:{self.ports[0]}/0"

    def client(self) -> RedisCluster:
        """A cluster client (``decode_responses=True``); the caller closes it."""
        return RedisCluster(
            startup_nodes=[ClusterNode(self.host, port) for port in self.ports],
            decode_responses=True,
            socket_timeout=10.0,
        )

    def node_client(self, index: int) -> redis.Redis:
        return self.nodes[index].client()

    def start(self) -> RedisClusterServers:
        try:
            for node in self.nodes:
                node.start()
            self._create()
            self.wait_ok()
        except BaseException:
            self.stop()
            raise
        return self

    def _create(self) -> None:
        count = len(self.nodes)
        bounds = [SLOTS * index // count for index in range(count + 1)]
        clients = [_direct(node) for node in self.nodes]
        try:
            for client, start, end in zip(clients, bounds, bounds[1:], strict=False):
                client.execute_command("CLUSTER ADDSLOTS", *range(start, end))  # type: ignore[no-untyped-call]
            for client in clients[1:]:
                client.execute_command("CLUSTER MEET", self.host, self.nodes[0].port)  # type: ignore[no-untyped-call]
        finally:
            for client in clients:
                client.close()

    def wait_ok(self) -> None:
        """Until every node reports ``cluster_state:ok`` and knows all the others."""
        deadline = time.monotonic() + self.startup_timeout
        last = ""
        while time.monotonic() < deadline:
            states = []
            for node in self.nodes:
                client = _direct(node)
                try:
                    info = client.execute_command("CLUSTER INFO")  # type: ignore[no-untyped-call]
                except redis.RedisError as exc:
                    states.append(str(exc))
                    continue
                finally:
                    client.close()
                ok = (
                    isinstance(info, dict)
                    and info.get("cluster_state") == "ok"
                    and str(info.get("cluster_known_nodes")) == str(len(self.nodes))
                    and str(info.get("cluster_slots_ok")) == str(SLOTS)
                )
                states.append("ok" if ok else str(info))
            if all(state == "ok" for state in states):
                return
            last = "; ".join(states)
            time.sleep(0.05)
        raise RedisServerError(f"the cluster did not become ok: {last}")

    def flush(self) -> None:
        """Empty every primary (between tests)."""
        for node in self.nodes:
            client = _direct(node)
            try:
                client.flushall()
            finally:
                client.close()

    def stop(self) -> None:
        for node in self.nodes:
            with contextlib.suppress(Exception):
                node.stop()

    def __enter__(self) -> RedisClusterServers:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _direct(node: RedisServer) -> redis.Redis:
    return redis.Redis(
        host=node.host,
        port=node.port,
        decode_responses=True,
        socket_timeout=5.0,
        retry=Retry(NoBackoff(), 0),
    )
