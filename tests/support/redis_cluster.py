"""Start and stop a real Redis Cluster of three primaries on 127.0.0.1.

Each node is a :class:`~tests.support.redis_server.RedisServer` started with
``--cluster-enabled yes`` and its own ``nodes.conf`` in its own folder. The cluster is made
as ``redis-cli --cluster create`` makes one (slots 0-5460, 5461-10922, 10923-16383), but
with ``CLUSTER ADDSLOTS`` and ``CLUSTER MEET`` sent through redis-py: redis-cli waits in
whole seconds between its steps, this takes a fraction of one. Ready once every node says
``cluster_state:ok`` and knows the two others.

With ``replicas=1`` each primary gets a replica (``CLUSTER REPLICATE``), ready once its
replication link is up; :meth:`RedisClusterServers.failover` promotes one as ``CLUSTER
FAILOVER`` does (the graceful kind), returning once every node sees it as a primary.
:meth:`RedisClusterServers.migrate_slot` moves a slot to another primary as ``redis-cli
--cluster reshard`` does: ``SETSLOT IMPORTING``/``MIGRATING``, ``MIGRATE`` of its keys in
batches, ``SETSLOT NODE`` on every node.
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
    from collections.abc import Callable
    from types import TracebackType

SLOTS = 16384
# Redis 6.2 puts a node's cluster bus on its port + 10000 (no cluster-port setting yet).
BUS_OFFSET = 10000
_PORT_ATTEMPTS = 50
# Redis abandons a graceful CLUSTER FAILOVER not completed within this long (CLUSTER_MF_TIMEOUT).
MANUAL_FAILOVER_SECONDS = 5


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
    """Three primaries holding every slot between them; ``replicas`` replicas of each.

    ``nodes`` are the primaries first (as made), then the replicas; after a failover a node
    keeps its index but may have changed role: ask :meth:`owner` who holds a key's slot."""

    def __init__(
        self, primaries: int = 3, *, replicas: int = 0, startup_timeout: float = 20.0
    ) -> None:
        self.primaries = primaries
        self.nodes = [ClusterNodeServer() for _ in range(primaries * (1 + replicas))]
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
        count = self.primaries
        bounds = [SLOTS * index // count for index in range(count + 1)]
        clients = [_direct(node) for node in self.nodes]
        try:
            for client, start, end in zip(clients, bounds, bounds[1:], strict=False):
                client.execute_command("CLUSTER ADDSLOTS", *range(start, end))  # type: ignore[no-untyped-call]
            for client in clients[1:]:
                client.execute_command("CLUSTER MEET", self.host, self.nodes[0].port)  # type: ignore[no-untyped-call]
            if len(self.nodes) > count:
                self._wait(lambda info: str(info.get("cluster_known_nodes")) == str(len(self)))
                for index, client in enumerate(clients[count:]):
                    primary = self.node_id(index % count)
                    client.execute_command("CLUSTER REPLICATE", primary)  # type: ignore[no-untyped-call]
        finally:
            for client in clients:
                client.close()

    def __len__(self) -> int:
        return len(self.nodes)

    def node_id(self, index: int) -> str:
        client = _direct(self.nodes[index])
        try:
            return str(client.execute_command("CLUSTER MYID"))  # type: ignore[no-untyped-call]
        finally:
            client.close()

    def role(self, index: int) -> str:
        client = _direct(self.nodes[index])
        try:
            return str(client.execute_command("ROLE")[0])  # type: ignore[no-untyped-call]
        finally:
            client.close()

    def owner(self, key: str) -> int:
        """Index of the primary holding ``key``'s slot."""
        return self.owner_of_slot(key_slot(key))

    def migrate_slot(
        self, slot: int, target: int, *, keys_per_step: int = 100, pause: float = 0.0
    ) -> int:
        """Move ``slot`` to primary ``target`` (an index of ``nodes``) as ``redis-cli
        --cluster reshard`` does; returns how many keys went. ``pause`` seconds between the
        MIGRATE steps leave the slot half-moved a while."""
        source = self.begin_migration(slot, target)
        moved = 0
        while step := self.migrate_keys(slot, source, target, keys_per_step):
            moved += step
            time.sleep(pause)
        self.end_migration(slot, source, target)
        return moved

    def begin_migration(self, slot: int, target: int) -> int:
        """``SETSLOT IMPORTING`` on the target, ``MIGRATING`` on the source; returns the
        source's index."""
        source = self.owner_of_slot(slot)
        dst, src = _direct(self.nodes[target]), _direct(self.nodes[source])
        try:
            dst.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", self.node_id(source))  # type: ignore[no-untyped-call]
            src.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", self.node_id(target))  # type: ignore[no-untyped-call]
        finally:
            dst.close()
            src.close()
        return source

    def migrate_keys(self, slot: int, source: int, target: int, limit: int) -> int:
        """``MIGRATE`` up to ``limit`` of the slot's keys still on the source; how many went."""
        src = _direct(self.nodes[source])
        try:
            keys = src.execute_command("CLUSTER GETKEYSINSLOT", slot, limit)  # type: ignore[no-untyped-call]
            if keys:
                port = self.nodes[target].port
                src.execute_command("MIGRATE", self.host, port, "", 0, 5000, "KEYS", *keys)  # type: ignore[no-untyped-call]
        finally:
            src.close()
        return len(keys)

    def end_migration(self, slot: int, source: int, target: int) -> None:
        """``SETSLOT NODE`` on the target first, as redis-cli does (the slot is never owned
        by nobody), then the source and the other primaries; replicas learn it from them."""
        target_id = self.node_id(target)
        others = [i for i in range(len(self)) if i not in (target, source)]
        for index in [target, source, *(i for i in others if self.role(i) == "master")]:
            client = _direct(self.nodes[index])
            try:
                client.execute_command("CLUSTER SETSLOT", slot, "NODE", target_id)  # type: ignore[no-untyped-call]
            finally:
                client.close()

    def owner_of_slot(self, slot: int) -> int:
        client = _direct(self.nodes[0])
        try:
            shards = client.execute_command("CLUSTER SLOTS")  # type: ignore[no-untyped-call]
        finally:
            client.close()
        for start, end, primary, *_ in shards:
            if start <= slot <= end:
                return self.ports.index(int(primary[1]))
        raise RedisServerError(f"slot {slot} is not covered")

    def replica_of(self, primary: int) -> int:
        """Index of a replica of primary ``primary`` (by what each node's ROLE says)."""
        for index in range(len(self)):
            client = _direct(self.nodes[index])
            try:
                role = client.execute_command("ROLE")  # type: ignore[no-untyped-call]
            finally:
                client.close()
            if role[0] == "slave" and int(role[2]) == self.nodes[primary].port:
                return index
        raise RedisServerError(f"node {primary} has no replica")

    def failover(self, replica: int) -> None:
        """``CLUSTER FAILOVER`` on ``replica``: the graceful kind (its primary stops writes
        until the replica has caught up), returning once the replica is a primary.

        Redis gives up a graceful failover that has not completed within 5 s (a busy primary
        under a stream of writes, on a loaded machine); it is then asked for again, as an
        operator would, until ``startup_timeout`` times three has passed."""
        deadline = time.monotonic() + 3 * self.startup_timeout
        while True:
            client = _direct(self.nodes[replica])
            try:
                client.execute_command("CLUSTER FAILOVER")  # type: ignore[no-untyped-call]
            finally:
                client.close()
            attempt_ends = time.monotonic() + MANUAL_FAILOVER_SECONDS + 1
            while self.role(replica) != "master" and time.monotonic() < attempt_ends:
                time.sleep(0.05)
            if self.role(replica) == "master":
                break
            if time.monotonic() > deadline:
                raise RedisServerError(f"node {replica} did not become a primary")
        # The promoted node knows at once; the others learn it by gossip, a moment later. A
        # test asking any node who owns a slot must get the new answer.
        while not all(self._sees_as_a_primary(index, replica) for index in range(len(self))):
            if time.monotonic() > deadline:
                raise RedisServerError(f"not every node sees node {replica} as a primary")
            time.sleep(0.05)

    def _sees_as_a_primary(self, index: int, primary: int) -> bool:
        """Whether node ``index``'s CLUSTER SLOTS names node ``primary`` as a slot's primary."""
        client = _direct(self.nodes[index])
        try:
            shards = client.execute_command("CLUSTER SLOTS")  # type: ignore[no-untyped-call]
        finally:
            client.close()
        return any(int(shard[2][1]) == self.ports[primary] for shard in shards)

    def wait_ok(self) -> None:
        """Until every node reports ``cluster_state:ok`` and knows all the others, and every
        replica's link to its primary is up."""
        self._wait(
            lambda info: (
                info.get("cluster_state") == "ok"
                and str(info.get("cluster_known_nodes")) == str(len(self))
                and str(info.get("cluster_slots_ok")) == str(SLOTS)
                and info.get("master_link_status", "up") == "up"
            )
        )

    def _wait(self, ready: Callable[[dict[str, object]], bool]) -> None:
        deadline = time.monotonic() + self.startup_timeout
        last = ""
        while time.monotonic() < deadline:
            states = []
            for node in self.nodes:
                client = _direct(node)
                try:
                    info = client.execute_command("CLUSTER INFO")  # type: ignore[no-untyped-call]
                    replication = client.info("replication")
                except redis.RedisError as exc:
                    states.append(str(exc))
                    continue
                finally:
                    client.close()
                merged = {**info, **replication} if isinstance(info, dict) else {}
                states.append("ok" if merged and ready(merged) else str(merged or info))
            if all(state == "ok" for state in states):
                return
            last = "; ".join(states)
            time.sleep(0.05)
        raise RedisServerError(f"the cluster did not become ready: {last}")

    def flush(self) -> None:
        """Empty every primary (between tests)."""
        for index, node in enumerate(self.nodes):
            if self.role(index) != "master":
                continue
            client = _direct(node)
            try:
                client.flushall()
            except redis.ReadOnlyError:
                pass  # a primary just turned replica: its new primary is flushed
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


def key_slot(key: str) -> int:
    """Redis Cluster's hash slot of ``key`` (CRC16 of its hash tag, or of the whole key)."""
    opening = key.find("{")
    if opening >= 0:
        closing = key.find("}", opening + 1)
        if closing > opening + 1:
            key = key[opening + 1 : closing]
    crc = 0
    for byte in key.encode():
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc % SLOTS


def _direct(node: RedisServer) -> redis.Redis:
    return redis.Redis(
        host=node.host,
        port=node.port,
        decode_responses=True,
        socket_timeout=5.0,
        retry=Retry(NoBackoff(), 0),
    )
