"""The asks for work on a shared log, as bookkeeping without I/O.

With several API servers (Kafka), a worker's lease request becomes an ask on the log
(`work.requested`, pending); the scheduler leader answers it with a decision (the same
`request_id`, `granted` = how many grants follow) and its grants. Every server keeps
this book from what it folds (`observe`): the leader reads the open asks to answer them;
an API server reads the answers to its own workers' asks. A grant is handed to the
worker only if the fold accepted it (so a deposed leader racing a new one can neither
double-run nor double-charge a unit), and a grant that comes after its asker stopped
waiting is given back (`take_late`). Pure: the service wakes its waiters from what the
book says; tests drive it with folds alone (tests/service/test_asks.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from park.core import Changes
from park.events.schema import UnitGranted, WorkRequested
from park.protocol import ANSWER_MARGIN, SHORT_ASK

# Closed asks are remembered this long, so late grants for them are recognised.
FORGET_CLOSED_AFTER = 60.0


@dataclass(slots=True)
class Ask:
    """An ask of one of this server's workers, waiting for the leader's answer."""

    expected: int | None = None  # grants the answer announced
    seen: int = 0  # grants for it folded so far (accepted or not)
    accepted: list[UnitGranted] = field(default_factory=list)
    # When the worker was answered or stopped waiting: grants for the ask that come
    # after that (late, or from a second leader) are given back.
    closed_at: float | None = None

    @property
    def answered(self) -> bool:
        return self.expected is not None and self.seen >= self.expected


class AskBook:
    def __init__(self) -> None:
        self.open: dict[str, WorkRequested] = {}  # unanswered asks, in log order
        self.mine: dict[str, Ask] = {}  # this server's asks (and recently closed ones)
        self.late: list[UnitGranted] = []  # grants that came after their asker gave up
        self._prune_at = 64

    def ask(self, request_id: str) -> Ask:
        """One of this server's workers asks (before the ask is recorded)."""
        ask = self.mine[request_id] = Ask()
        return ask

    def close(self, request_id: str, now: float) -> list[UnitGranted]:
        """The worker is answered or stopped waiting: the grants to hand it; any later
        grant for the ask is given back."""
        ask = self.mine[request_id]
        ask.closed_at = now
        return ask.accepted

    def observe(self, changes: Changes) -> None:
        """Note what folded events mean for the asks, in log order."""
        for offset, event in changes.records:
            if isinstance(event, WorkRequested) and event.request_id is not None:
                if event.pending:
                    self.open[event.request_id] = event
                    self._forget_stale(event.at)
                else:
                    self.open.pop(event.request_id, None)
                    ask = self.mine.get(event.request_id)
                    if ask is not None:
                        ask.expected = event.granted or 0
            elif isinstance(event, UnitGranted) and event.request_id is not None:
                ask = self.mine.get(event.request_id)
                if ask is not None:
                    ask.seen += 1
                    if offset in changes.accepted:
                        (ask.accepted if ask.closed_at is None else self.late).append(event)

    def answered(self, now: float) -> list[str]:
        """This server's open asks that have all their grants; closed asks long past are
        forgotten."""
        done: list[str] = []
        for request_id, ask in list(self.mine.items()):
            if ask.closed_at is not None:
                if ask.closed_at < now - FORGET_CLOSED_AFTER:
                    del self.mine[request_id]
            elif ask.answered:
                done.append(request_id)
        return done

    def take_late(self) -> list[UnitGranted]:
        late, self.late = self.late, []
        return late

    def to_answer(self, now: float) -> list[tuple[WorkRequested, bool]]:
        """The open asks the leader may still answer, each with whether it is short (must
        be answered at once, even with nothing); those past their last call are dropped."""
        due: list[tuple[WorkRequested, bool]] = []
        for request_id, ask in list(self.open.items()):
            short = ask.wait < SHORT_ASK
            if now > ask.at + (SHORT_ASK if short else ask.wait) - ANSWER_MARGIN:
                del self.open[request_id]
            else:
                due.append((ask, short))
        return due

    def drop(self, request_id: str) -> None:
        """An open ask nobody can answer (its worker left)."""
        self.open.pop(request_id, None)

    def _forget_stale(self, now: float) -> None:
        """Asks nobody answered (no leader, or no work) and nobody waits for any more."""
        if len(self.open) >= self._prune_at:
            stale = [r for r, a in self.open.items() if a.at + max(a.wait, SHORT_ASK) < now]
            for request_id in stale:
                del self.open[request_id]
            self._prune_at = max(64, 2 * len(self.open))
