"""Counts redis-py round trips in a child of bench_cli.py's counting pass.

bench_cli.py puts this folder on PYTHONPATH and names a file in BENCH_ROUND_TRIPS_FILE; the
process then counts, per connection, each send that follows a read (a send after sends with no
read between is the same round trip, e.g. a pipeline), connection handshakes included, and
writes the total to that file at exit. Counting in the client is exact where a proxy on the
wire is not: a client descheduled between two pieces of one pipeline looks, on the wire, the
same as a client that waited for the answer.
"""

from __future__ import annotations

import atexit
import json
import os

_PATH = os.environ.get("BENCH_ROUND_TRIPS_FILE")

if _PATH:
    from redis.connection import AbstractConnection

    _counts = {"round_trips": 0}
    _send = AbstractConnection.send_packed_command
    _read = AbstractConnection.read_response

    def _counted_send(self, command, check_health=True):  # type: ignore[no-untyped-def]
        # Counted after sending: sending may first connect, whose handshake is counted
        # in the same way, before this command goes out.
        result = _send(self, command, check_health)
        if not getattr(self, "_bench_sent", False):
            _counts["round_trips"] += 1
            self._bench_sent = True
        return result

    def _counted_read(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self._bench_sent = False
        return _read(self, *args, **kwargs)

    AbstractConnection.send_packed_command = _counted_send  # type: ignore[method-assign]
    AbstractConnection.read_response = _counted_read  # type: ignore[method-assign]

    def _write() -> None:
        with open(_PATH, "w") as stream:  # type: ignore[arg-type]
            json.dump(_counts, stream)

    atexit.register(_write)
