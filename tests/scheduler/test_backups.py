"""Backup attempts of stragglers, decided by the pure policy and commands and folded (the
integration test runs them on a real server with real workers): which unit gets one and
when, the first report winning, the loser stopped and uncharged, and replay re-making
every decision."""

from __future__ import annotations

import pytest

from park import commands
from park.domain import Priority, UnitReport, UnitStatus
from park.events.memory import MemoryEventLog
from park.events.schema import Event, PolicyConfigured, UnitCompleted, UnitGranted
from park.projections.state import TYPICAL_SAMPLE, ParkState, remember_wall_time
from park.replay import replay
from park.scheduler.backups import next_straggler_at, straggler_after, typical_seconds
from park.scheduler.config import PolicyConfig
from park.scheduler.explain import explain
from tests.projections.test_fold import job_with_units

BACKUPS = PolicyConfigured(
    at=0.5, config=PolicyConfig(backup_factor=2.0, backup_min_seconds=0.25).model_dump(mode="json")
)


class Recording:
    """A state and every event folded into it, as the service would have logged them."""

    def __init__(self, *events: Event) -> None:
        self.state = ParkState()
        self.log: list[Event] = []
        self.fold(list(events))

    def fold(self, events: list[Event]) -> list[Event]:
        for event in events:
            self.log.append(event)
            self.state.apply(len(self.log), event)
        assert self.state.check() == []
        return events

    def lease(self, worker: str, now: float, n: int = 1) -> list[UnitGranted]:
        events = commands.lease_units(self.state, worker, n, now=now, lease_seconds=30.0)
        return [e for e in self.fold(events) if isinstance(e, UnitGranted)]

    def report(
        self, worker: str, unit: str, now: float, *, wall: float, ok: bool = True
    ) -> list[str]:
        report = UnitReport(unit, ok, [0] if ok else None, None if ok else "boom", wall, wall)
        events, ignored = commands.report_units(self.state, worker, [report], now=now)
        self.fold(events)
        self.fold(commands.settle_jobs(self.state, ["j"], now))
        return ignored


def straggling(policy: Event = BACKUPS) -> Recording:
    """w1 holds a batch of three units (j/0, j/1, j/2) granted at t=2; w2 ran j/3 in
    0.1 s, so the job's typical unit time is 0.1 s and nothing of it is queued."""
    run = Recording(policy, *job_with_units(4))
    assert [g.unit_id for g in run.lease("w1", 2.0, n=3)] == ["j/0", "j/1", "j/2"]
    assert [g.unit_id for g in run.lease("w2", 2.0)] == ["j/3"]
    assert run.report("w2", "j/3", 2.1, wall=0.1) == []
    return run


def test_an_idle_worker_backs_up_the_unit_longest_beyond_the_jobs_typical_time() -> None:
    run = straggling()
    assert straggler_after(run.state, run.state.jobs["j"]) == 0.25  # the floor over 2 x 0.1
    assert run.lease("w2", 2.2) == []  # 0.2 s: not yet a straggler
    assert next_straggler_at(run.state, "w2", 2.2) == 2.25
    (backup,) = run.lease("w2", 2.3)
    # Of the batch granted together, the last: the likeliest not begun on w1.
    assert (backup.unit_id, backup.worker_id, backup.backup) == ("j/2", "w2", True)
    assert (backup.attempt, backup.reserved, backup.price) == (2, 0.0, 1.0)
    unit = run.state.units["j/2"]
    assert (unit.status, unit.worker_id, unit.backup_worker_id) == (UnitStatus.LEASED, "w1", "w2")
    assert (unit.attempts, unit.backups) == (2, 1)
    # One backup per unit; the next request backs up the next unit of the batch.
    (second,) = run.lease("w2", 2.3)
    assert second.unit_id == "j/1"
    why = explain(run.state, "j", 2.4)
    assert any("2 backup attempt(s)" in r for r in why["reasons"]), why["reasons"]
    assert [b["unit"] for b in why["backups"]] == ["j/1", "j/2"]


def test_a_backup_that_reports_first_wins_the_slow_attempt_is_stopped_and_not_charged() -> None:
    run = straggling()
    run.lease("w2", 2.3)
    charged = run.state.ledger_entry("ann", run.state.units["j/2"].priority).charged
    assert run.report("w2", "j/2", 2.35, wall=0.04) == []
    (done,) = [e for e in run.log if isinstance(e, UnitCompleted) and e.unit_id == "j/2"]
    assert (done.worker_id, done.slot_seconds) == ("w2", 0.04)
    assert run.state.units["j/2"].status is UnitStatus.DONE
    # w1's next heartbeat names j/2 among the units to stop; its late report counts nothing.
    assert commands.leases_to_stop(run.state, "w1", ["j/0", "j/1", "j/2"]) == ["j/2"]
    assert run.report("w1", "j/2", 3.0, wall=0.5) == ["j/2"]
    entry = run.state.ledger_entry("ann", run.state.units["j/0"].priority)
    assert entry.charged == pytest.approx(charged + 0.04)  # the winner's 0.04 s, once
    assert entry.reserved == pytest.approx(2.0)  # w1's two remaining leases
    assert entry.units == 2


def test_a_backup_that_loses_is_discarded_and_stopped() -> None:
    run = straggling()
    run.lease("w2", 2.3)
    assert run.report("w1", "j/2", 2.4, wall=0.4) == []
    unit = run.state.units["j/2"]
    assert (unit.status, unit.backup_worker_id) == (UnitStatus.DONE, None)
    assert commands.leases_to_stop(run.state, "w2", ["j/2"]) == ["j/2"]
    assert "j/2" not in run.state.backup_leased
    assert run.report("w2", "j/2", 2.5, wall=0.2) == ["j/2"]  # too late: ignored
    done = [e for e in run.log if isinstance(e, UnitCompleted) and e.unit_id == "j/2"]
    assert [e.worker_id for e in done] == ["w1"]


def test_a_failed_backup_is_let_go_and_a_lost_first_attempt_leaves_the_backup_running() -> None:
    run = straggling()
    run.lease("w2", 2.3)
    run.report("w2", "j/2", 2.35, wall=0.01, ok=False)
    unit = run.state.units["j/2"]
    assert (unit.status, unit.worker_id, unit.backup_worker_id) == (UnitStatus.LEASED, "w1", None)
    assert (unit.failures, unit.failed_on) == (1, ["w2"])
    assert run.lease("w2", 2.5) != [] and run.state.units["j/2"].backup_worker_id is None
    # j/1 got w2's backup instead; w1 leaves: j/1 stays leased, now to w2.
    run.fold(commands.remove_worker(run.state, "w1", 3.0))
    j1 = run.state.units["j/1"]
    assert (j1.status, j1.worker_id, j1.backup_worker_id) == (UnitStatus.LEASED, "w2", None)
    assert run.state.units["j/2"].status is UnitStatus.QUEUED


def test_no_backup_while_work_is_queued_or_when_the_policy_has_none() -> None:
    run = Recording(BACKUPS, *job_with_units(5))
    run.lease("w1", 2.0, n=3)
    run.lease("w2", 2.0)
    run.report("w2", "j/3", 2.1, wall=0.1)
    assert [g.backup for g in run.lease("w2", 9.0)] == [False]  # j/4: queued work first
    run.report("w2", "j/4", 9.1, wall=0.1)
    assert [g.unit_id for g in run.lease("w2", 9.2)] == ["j/2"]
    # The holder never backs up its own unit.
    assert run.lease("w1", 9.2) == []
    off = straggling(PolicyConfigured(at=0.5, config=PolicyConfig().model_dump(mode="json")))
    assert off.lease("w2", 100.0) == []


def test_a_backups_lease_is_extended_apart_and_outlives_the_first_attempts() -> None:
    run = straggling()
    run.lease("w2", 2.3)
    run.fold(commands.extend_leases(run.state, "w2", ["j/2"], now=20.0, lease_seconds=30.0))
    unit = run.state.units["j/2"]
    assert unit.backup_deadline == 50.0 and unit.lease_deadline == 32.0
    assert commands.earliest_deadline(run.state, "w2", ["j/2"], 20.0) == 50.0
    run.fold(commands.expire_leases(run.state, 40.0))  # w1's lease (t=32) ran out
    assert (unit.worker_id, unit.backup_worker_id, unit.status) == ("w2", None, UnitStatus.LEASED)


@pytest.mark.anyio
async def test_replay_re_makes_every_backup_decision() -> None:
    run = straggling()
    run.lease("w2", 2.3)
    run.report("w2", "j/2", 2.35, wall=0.04)
    run.lease("w2", 2.4)
    run.report("w1", "j/1", 2.5, wall=0.5)
    run.report("w1", "j/0", 2.6, wall=0.6)
    assert run.state.jobs["j"].status.value == "complete"
    log = MemoryEventLog()
    await log.append(run.log)
    report = await replay(log, verify=True)
    assert report.mismatches == [] and report.state.check() == []
    assert sum(1 for e in run.log if isinstance(e, UnitGranted) and e.backup) == 2
    assert report.state.jobs["j"].charged == run.state.jobs["j"].charged
    # A backup of another unit than the policy's choice is found out.
    tampered = MemoryEventLog()
    await tampered.append(
        [
            e.model_copy(update={"unit_id": "j/0"})
            if isinstance(e, UnitGranted) and e.backup and e.unit_id == "j/2"
            else e
            for e in run.log
        ]
    )
    first = (await replay(tampered, verify=True)).mismatches[0]
    assert (first.recorded[0][:2], first.replayed[0][:2]) == (("j/0", "j"), ("j/2", "j"))


def test_a_lease_takes_of_a_job_at_most_twice_as_many_units_as_it_has_timed() -> None:
    """Heavy-tailed starts: one fast first unit must not size a lease for most of the job
    (then long units wait behind each other in one batch while another worker idles)."""
    for growth, expected in ((2.0, [2, 6]), (None, [10, 0])):
        config = PolicyConfig(batch_growth=growth).model_dump(mode="json")
        run = Recording(PolicyConfigured(at=0.5, config=config), *job_with_units(11))
        run.lease("w1", 2.0)  # j/0, alone: the job has no timing yet
        run.report("w1", "j/0", 2.1, wall=0.01)
        sizes = []
        for now in (2.2, 2.3):
            events = commands.lease_units(
                run.state, "w1", 256, now=now, lease_seconds=30.0, max_seconds=0.5
            )
            granted = [e for e in run.fold(events) if isinstance(e, UnitGranted)]
            sizes.append(len(granted))
            for g in granted:
                run.report("w1", g.unit_id, now + 0.05, wall=0.01)
        assert sizes == expected, (growth, sizes)


def test_the_example_billing_consumer_bills_backups_as_park_does() -> None:
    """examples/billing_consumer.py reads the published rules; with backups (won, lost,
    failed) and a lost first attempt its bill equals park's ledger."""
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).parents[2] / "examples" / "billing_consumer.py"
    spec = importlib.util.spec_from_file_location("billing_consumer", path)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    sys.modules["billing_consumer"] = example  # (its dataclasses look themselves up)
    spec.loader.exec_module(example)
    run = straggling()
    run.lease("w2", 2.3)  # j/2 backed up by w2, which wins
    run.report("w2", "j/2", 2.35, wall=0.04)
    run.lease("w2", 2.4)  # j/1 backed up by w2, which loses
    run.report("w1", "j/1", 2.5, wall=0.5)
    run.report("w2", "j/1", 2.6, wall=0.2)
    run.report("w1", "j/0", 2.7, wall=0.6)
    bill = example.Bill()
    for offset, event in enumerate(run.log, 1):
        bill.add(offset, event.model_dump(mode="json"))
    (line,) = bill.totals().values()
    entry = run.state.ledger_entry("ann", Priority.NORMAL)
    assert run.state.jobs["j"].status.value == "complete" and entry.units == 4
    assert (line.units, line.credits) == (entry.units, pytest.approx(entry.charged))
    assert line.slot_seconds == pytest.approx(entry.slot_seconds)


def test_a_jobs_typical_time_is_the_median_of_its_latest_units_and_held_in_bounded_memory() -> None:
    """A job of many units keeps a bounded sample of wall times, and when its units turn
    slow its typical time follows them (older fast units age out of the sample)."""
    job = Recording(*job_with_units(1)).state.jobs["j"]
    for _ in range(3 * TYPICAL_SAMPLE):
        remember_wall_time(job, 0.1)
    for _ in range(TYPICAL_SAMPLE // 2 + 1):
        remember_wall_time(job, 5.0)
    assert len(job.wall_times) == len(job.recent_walls) == TYPICAL_SAMPLE
    assert job.wall_times == sorted(job.recent_walls)
    assert typical_seconds(job) == 5.0
