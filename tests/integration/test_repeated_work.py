"""Work not redone, against a real Redis: apply's plan under the lock stands only while no
reconciler command wrote since and the entries it changes read the same (one flipped byte in
a definition, a meta, a marker, or a changed score of one makes it plan again, and see it),
and plan and drift keep to N/500 + 10 round trips."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

import pytest
import redis

from reconciler.api import apply_plan, load_schedules, make_plan
from reconciler.core.beat_clock import BeatSettings
from reconciler.core.plan import Action
from reconciler.services.drift_check import check_drift
from reconciler.store.keys import MARKER_FIELD, KeySpace
from reconciler.store.session import Store
from tests.integration.plan_apply_support import (
    PREFIX,
    SCHEDULE_KEY,
    bulk_entries,
    write_schedules,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from reconciler.load.desired_state import LoadResult
    from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration


class CountingConnection(redis.Connection):
    """Counts round trips: every write to the socket (a command or a whole pipeline)."""

    round_trips: ClassVar[int] = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        type(self).round_trips += 1
        super().send_packed_command(command, check_health)


@pytest.fixture
def counted_store(redis_server: RedisServer, redis_url: str) -> Iterator[Store]:
    pool = redis.ConnectionPool(
        connection_class=CountingConnection,
        host=redis_server.host,
        port=redis_server.port,
        db=0,
        decode_responses=True,
    )
    store = Store(redis.Redis(connection_pool=pool), KeySpace(PREFIX), "counted")
    store.client.ping()  # the connection handshake is not part of what is counted
    yield store
    store.client.close()
    pool.disconnect()


def trips(action: Callable[[], object]) -> int:
    CountingConnection.round_trips = 0
    action()
    return CountingConnection.round_trips


@pytest.fixture
def applied(tmp_path: Path, counted_store: Store) -> LoadResult:
    folder = tmp_path / "schedules"
    write_schedules(folder, bulk_entries(3))
    loaded = load_schedules([folder])
    apply_plan(counted_store, make_plan(counted_store, loaded))
    return loaded


def test_the_plan_under_the_lock_stands_while_redis_reads_the_same(
    tmp_path: Path, counted_store: Store, applied: LoadResult
) -> None:
    first = make_plan(counted_store, applied)
    assert not first.changes
    again = make_plan(counted_store, applied, again=first)
    assert again is first
    # Made from other inputs, the earlier plan is never taken for this one.
    assert make_plan(counted_store, applied, prune=True, again=first) is not first
    first = make_plan(counted_store, applied)
    assert make_plan(counted_store, applied, target_name="staging", again=first) is not first
    reloaded = load_schedules([tmp_path / "schedules"])
    latest = make_plan(counted_store, applied)
    assert make_plan(counted_store, reloaded, again=latest) is not latest


def _flip(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new, 1)


@pytest.mark.parametrize(
    ("name", "tamper", "action"),
    [
        (
            "definition",
            lambda client, key: client.hset(
                key, "definition", _flip(client.hget(key, "definition"), '"n": ', '"n": 7')
            ),
            Action.UPDATE,
        ),
        (
            "meta",
            lambda client, key: client.hset(
                key, "meta", _flip(client.hget(key, "meta"), '"total_run_count": 0', '{"x": 1}')
            ),
            Action.REPAIR,
        ),
        (
            "score",
            lambda client, key: client.zadd(
                SCHEDULE_KEY, {key: client.zscore(SCHEDULE_KEY, key) + 86_400}
            ),
            Action.REPAIR,
        ),
        (
            "marker",
            # Still the reconciler's marker (ownership needs one), with one more key.
            lambda client, key: client.hset(
                key, MARKER_FIELD, client.hget(key, MARKER_FIELD)[:-1] + ', "x": 1}'
            ),
            Action.REPAIR,
        ),
    ],
)
def test_one_changed_value_of_an_entry_the_plan_changes_makes_it_plan_again(
    tmp_path: Path,
    counted_store: Store,
    applied: LoadResult,
    redis_client: redis.Redis,
    name: str,
    tamper: Callable[[redis.Redis, str], object],
    action: Action,
) -> None:
    changed = _one_entry_changed(tmp_path)
    first = make_plan(counted_store, changed)
    assert [(change.name, change.action) for change in first.changes] == [
        ("job-00001", Action.UPDATE)
    ]
    tamper(redis_client, PREFIX + "job-00001")
    again = make_plan(counted_store, changed, again=first)
    assert again is not first, name
    assert [change.name for change in again.changes] == ["job-00001"]
    # The same value changed in an entry the plan leaves alone: only a writer other than
    # the reconciler can do that, and the plan under the lock does not read it again
    # (docs/plan-and-apply.md, concurrent applies); the next plan sees it.
    latest = make_plan(counted_store, changed)
    tamper(redis_client, PREFIX + "job-00002")
    assert make_plan(counted_store, changed, again=latest) is latest
    seen = make_plan(counted_store, changed)
    assert [(change.name, change.action) for change in seen.changes] == [
        ("job-00001", Action.UPDATE),
        ("job-00002", action),
    ]


def test_a_batch_another_reconciler_command_wrote_makes_it_plan_again(
    tmp_path: Path, counted_store: Store, applied: LoadResult
) -> None:
    changed = _one_entry_changed(tmp_path)
    first = make_plan(counted_store, changed)
    # Another apply, which took the lock first, wrote the files of another commit: job-00002
    # changed, an entry this plan left alone. Its batch added a record to the history.
    other = bulk_entries(3)
    other["job-00002"]["kwargs"] = {"n": 222}
    write_schedules(tmp_path / "other", other)
    result = apply_plan(
        counted_store, make_plan(counted_store, load_schedules([tmp_path / "other"]))
    )
    assert result.names["update"] == ["job-00002"]
    again = make_plan(counted_store, changed, again=first)
    assert again is not first
    assert [change.name for change in again.changes] == ["job-00001", "job-00002"]


def _one_entry_changed(tmp_path: Path) -> LoadResult:
    entries = bulk_entries(3)
    entries["job-00001"]["kwargs"] = {"n": 100}
    write_schedules(tmp_path / "schedules", entries)
    return load_schedules([tmp_path / "schedules"])


def test_plan_drift_and_the_plan_under_the_lock_keep_to_their_round_trips(
    tmp_path: Path, counted_store: Store
) -> None:
    count = 2500
    folder = tmp_path / "schedules"
    write_schedules(folder, bulk_entries(count))
    loaded = load_schedules([folder])
    apply_plan(counted_store, make_plan(counted_store, loaded))
    budget = count / 500 + 10
    reads = math.ceil(count / 1000) + 1  # the two sets, then 1,000 names a time

    planned: list[Any] = []
    assert trips(lambda: planned.append(make_plan(counted_store, loaded))) == reads
    # Under the lock, with nothing written since: the shared state only, then the entries
    # the plan changes (none here).
    assert trips(lambda: make_plan(counted_store, loaded, again=planned[0])) == 1
    drift = trips(lambda: check_drift(counted_store, loaded, beat=BeatSettings(lock=False)))
    assert drift <= budget
