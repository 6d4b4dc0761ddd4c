"""The job feed: one change per visible job change, ordered offsets, and a snapshot for
clients too far behind."""

from __future__ import annotations

from park.domain import Priority
from park.events.schema import Event, JobCancelled, UnitGranted, WorkerJoined
from park.projections.state import ParkState
from park.service.feed import JobFeed
from tests.scheduler.support import job


def fold(feed: JobFeed, state: ParkState, *events: Event) -> None:
    records = []
    for event in events:
        state.apply(state.offset + 1, event)
        records.append((state.offset, event))
    feed.record(records, state)


def granted(unit: str, at: float) -> UnitGranted:
    return UnitGranted(
        at=at, unit_id=unit, job_id="a", worker_id="w", lease_deadline=at + 30, price=0,
        reserved=0,
    )  # fmt: skip


def test_changes_are_coalesced_per_batch_and_invisible_ones_dropped() -> None:
    feed, state = JobFeed(), ParkState()
    fold(feed, state, WorkerJoined(at=0, worker_id="w", name="w", cpus=1))
    fold(feed, state, *job("a", "ann", Priority.FREE, 1.0, 3))
    assert [(c.offset, c.op) for c in feed.changes] == [(3, "upsert")]
    fold(feed, state, granted("a/0", 2.0), granted("a/1", 2.0))
    assert feed.changes[-1].job["status"] == "running"
    fold(feed, state, granted("a/2", 3.0))  # still running, nothing visible changed
    assert len(feed.changes) == 2
    fold(feed, state, JobCancelled(at=4.0, job_id="a", by="ann"))
    assert [(c.offset, c.op) for c in feed.changes] == [(3, "upsert"), (5, "upsert"), (7, "remove")]
    assert [c.offset for c in feed.since(3) or []] == [5, 7]
    assert feed.since(7) == []


def test_a_client_behind_the_kept_changes_must_take_a_snapshot() -> None:
    feed, state = JobFeed(keep=2), ParkState()
    for n in range(4):
        fold(feed, state, *job(f"j{n}", "ann", Priority.FREE, float(n), 1))
    # changes were stamped 2, 4, 6, 8; the feed keeps 6 and 8
    assert [c.offset for c in feed.changes] == [6, 8]
    assert [c.offset for c in feed.since(4) or []] == [6, 8]  # saw 4: nothing lost
    assert [c.offset for c in feed.since(5) or []] == [6, 8]
    assert feed.since(3) is None  # never saw 4, which is gone: snapshot instead
    assert feed.since(0) is None
