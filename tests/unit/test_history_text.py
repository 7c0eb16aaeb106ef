"""``reconciler history`` as text: each record names its actor and the command it came from."""

from __future__ import annotations

from reconciler.cli.commands.history import history_text
from reconciler.store.history import HistoryRecord


def record(source: str, **fields: str) -> HistoryRecord:
    return HistoryRecord(
        id="1-0",
        at="2024-06-10T12:00:00+00:00",
        actor="alice",
        source=source,
        revision="0123456789abcdef",
        counts={"adopt": 2, "repair": 1},
        names={"adopt": ["a", "b"], "repair": ["c"]},
        fields={"source": source, **fields} if source else dict(fields),
    )


def test_each_record_says_which_command_made_it() -> None:
    records = [
        record("drift --fix"),
        record("apply", phase="re-check"),
        record(""),  # written before the source was recorded
    ]

    assert [line for line in history_text(records).splitlines() if line[0] != " "] == [
        "2024-06-10T12:00:00+00:00  alice  rev 0123456789ab  =2 !1  via drift --fix",
        "2024-06-10T12:00:00+00:00  alice  rev 0123456789ab  =2 !1  via apply (re-check)",
        "2024-06-10T12:00:00+00:00  alice  rev 0123456789ab  =2 !1",
    ]


def test_json_has_the_source_and_null_when_unknown() -> None:
    assert record("drift --fix").as_json()["source"] == "drift --fix"
    assert record("").as_json()["source"] is None
    assert "phase" in record("apply", phase="re-check").as_json()


def test_a_partial_move_points_at_the_move_command_not_at_a_plan() -> None:
    move = HistoryRecord(
        id="1-0",
        at="2024-06-10T12:00:00+00:00",
        actor="alice",
        source="move-prefix",
        revision="",
        counts={"move": 500},
        names={"move": ["a"]},
        fields={"source": "move-prefix", "from": "redbeat:"},
        state="partial",
        batches=1,
        planned_batches=3,
    )

    assert history_text([move]).splitlines()[:2] == [
        "2024-06-10T12:00:00+00:00  alice  rev -  >500  via move-prefix",
        "    (partial: 1 of 3 batches committed; move-prefix --from 'redbeat:' shows what is left)",
    ]
