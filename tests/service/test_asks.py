"""The ask bookkeeping of the Kafka mode, without a broker or an event loop: folds of
asks, answers and grants go in, what to hand the worker and what to give back come out."""

from __future__ import annotations

from park import core
from park.domain import Priority
from park.events.schema import Event, UnitGranted, WorkerJoined, WorkRequested
from park.projections.state import ParkState
from park.protocol import SHORT_ASK
from park.service.asks import AskBook
from tests.scheduler.support import job


def ask(request_id: str, at: float, wait: float = 10.0) -> WorkRequested:
    return WorkRequested(
        at=at, worker_id="w", max_units=2, request_id=request_id, pending=True, wait=wait
    )


class Log:
    """A state, a book, and the log they are folded from."""

    def __init__(self) -> None:
        self.state = ParkState()
        self.book = AskBook()
        worker = WorkerJoined(at=0.0, worker_id="w", name="w", cpus=1)
        self.fold(worker, *job("j", "ann", Priority.FREE, 0.0, 2))

    def fold(self, *events: Event) -> None:
        first = self.state.offset + 1
        records = list(enumerate(events, start=first))
        self.book.observe(core.fold(self.state, records))

    def answer(self, request: WorkRequested, now: float) -> list[Event]:
        """The leader's answer, as `core.step` decides it."""
        command = core.AnswerAsk(ask=request, lease_seconds=30.0, even_empty=True)
        return core.step(self.state, command, now).events


def test_an_ask_is_answered_once_all_its_announced_grants_are_folded() -> None:
    log = Log()
    log.book.ask("r1")
    log.fold(ask("r1", at=1.0))
    assert list(log.book.open) == ["r1"]  # the leader sees it
    decision, *grants = log.answer(log.book.open["r1"], now=1.5)
    log.fold(decision, grants[0])
    assert log.book.open == {}
    assert log.book.answered(now=2.0) == []  # one of two grants folded so far
    log.fold(grants[1])
    assert log.book.answered(now=2.0) == ["r1"]
    handed = log.book.close("r1", now=2.0)
    assert [g.unit_id for g in handed] == ["j/0", "j/1"]


def test_a_grant_the_fold_refused_is_never_handed_to_the_worker() -> None:
    """Two leaders answer one ask with the same unit: only the first grant leases it."""
    log = Log()
    log.book.ask("r1")
    log.fold(ask("r1", at=1.0))
    request = log.book.open["r1"]
    first = log.answer(request, now=1.5)
    second = log.answer(request, now=1.6)  # decided on the same state: the same units
    log.fold(*first, *second)
    assert log.book.answered(now=2.0) == ["r1"]
    handed = log.book.close("r1", now=2.0)
    assert sorted(g.unit_id for g in handed) == ["j/0", "j/1"]
    assert all(g.at == 1.5 for g in handed)


def test_grants_after_the_worker_stopped_waiting_are_given_back() -> None:
    log = Log()
    log.book.ask("r1")
    log.fold(ask("r1", at=1.0))
    assert log.book.close("r1", now=12.0) == []  # the worker gave up
    late = log.answer(log.book.open["r1"], now=12.5)
    log.fold(*late)
    given_back = log.book.take_late()
    assert [g.unit_id for g in given_back] == ["j/0", "j/1"]
    assert all(isinstance(g, UnitGranted) for g in given_back)
    assert log.book.take_late() == []
    give_back = core.step(log.state, core.GiveBack(grants=tuple(given_back)), 13.0).events
    assert [e.type for e in give_back] == ["unit.lease_expired"] * 2


def test_the_leader_answers_an_ask_only_until_its_asker_stops_waiting() -> None:
    book = AskBook()
    state = ParkState()
    records = [(1, ask("long", at=1.0, wait=10.0)), (2, ask("short", at=1.0, wait=0.0))]
    book.observe(core.fold(state, records))
    assert [(a.request_id, short) for a, short in book.to_answer(now=2.0)] == [
        ("long", False),
        ("short", True),
    ]
    # the short ask's asker waits SHORT_ASK seconds; the leader stops a margin before
    assert [a.request_id for a, _ in book.to_answer(now=1.0 + SHORT_ASK)] == ["long"]
    assert book.to_answer(now=11.0) == []
    assert book.open == {}


def test_closed_asks_are_forgotten_after_a_minute() -> None:
    book = AskBook()
    book.ask("r1")
    book.close("r1", now=100.0)
    book.answered(now=150.0)
    assert "r1" in book.mine  # a late grant would still be recognised
    book.answered(now=161.0)
    assert book.mine == {}
