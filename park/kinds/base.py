"""What a job kind is: a resumable state machine over its own units.

The server side is pure. `start` makes the kind's state from the spec; the fold calls
`planned` and `absorb` as units are planned and completed; the command layer asks
`next_units` and `outcome` after each change. Because the state is only ever built by
folding events, a restarted server rebuilds it exactly and carries on where it stopped.
The worker side, `run_unit`, executes one unit's payload.
"""

from __future__ import annotations

import abc
import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar


class SpecError(ValueError):
    """A spec the kind cannot run; `field` is the dotted path of the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class Finished:
    """A job's outcome: a result, or an error if it failed."""

    result: Any = None
    error: str | None = None


class JobKind(abc.ABC):
    name: ClassVar[str]

    @abc.abstractmethod
    def parse_spec(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Validate and normalise a submitted spec (raise SpecError naming the field)."""

    @abc.abstractmethod
    def start(self, spec: dict[str, Any]) -> Any:
        """The kind's state for a newly submitted job."""

    @abc.abstractmethod
    def planned(self, state: Any, payloads: Sequence[dict[str, Any]]) -> None:
        """Fold: these units were planned."""

    @abc.abstractmethod
    def absorb(self, state: Any, payload: dict[str, Any], result: Any) -> None:
        """Fold: a unit with this payload completed with this result (first report only)."""

    def check_result(self, state: Any, payload: dict[str, Any], result: Any) -> str | None:
        """Decide: why this result cannot be absorbed, or None. The default absorbs it
        into a copy of the state; a worker's malformed result must fail its unit, never
        reach the fold (where it would fail again on every replay)."""
        trial = copy.deepcopy(state)
        try:
            self.absorb(trial, payload, result)
        except Exception as err:
            return f"{type(err).__name__}: {err}"
        return None

    @abc.abstractmethod
    def next_units(self, spec: dict[str, Any], state: Any) -> list[dict[str, Any]]:
        """Decide: payloads of units to plan now (empty when the current stage is planned)."""

    def units_to_plan(self, spec: dict[str, Any], state: Any) -> int:
        """Decide: how many units `next_units` would plan now (a submission planning more
        than one step may is refused). A kind whose plan cannot fail once its spec is
        parsed, and is costly to build, counts it without building it."""
        return len(self.next_units(spec, state))

    def split(self, payload: dict[str, Any], parts: int) -> list[dict[str, Any]]:
        """Decide: a queued unit's work cut into at most `parts` smaller units that do
        exactly the same work between them (each absorbed like any unit, the kind's state
        unchanged: the same work is planned); empty when it cannot be cut."""
        return []

    @abc.abstractmethod
    def outcome(self, spec: dict[str, Any], state: Any) -> Finished | None:
        """Decide: the job's result once all its work is absorbed, else None."""

    @abc.abstractmethod
    def progress(self, state: Any) -> dict[str, Any]:
        """Kind-specific progress shown with the job (e.g. the best chi-squared so far)."""

    def unit_context(self, spec: dict[str, Any]) -> dict[str, Any]:
        """What every unit of a job shares (a fit's model and data): sent with each lease
        and merged under the unit's payload by the worker, never stored in each unit."""
        return {}

    # How long one unit may run when the job does not say (`max_unit_seconds`).
    default_unit_seconds: ClassVar[float] = 3600.0

    def job_functions(self, spec: dict[str, Any]) -> list[str]:
        """The `module:function` names any unit of this job calls: the policy grants its
        units only to workers whose allow list has them all."""
        return self.functions_of(self.unit_context(spec))

    @staticmethod
    @abc.abstractmethod
    def functions_of(payload: dict[str, Any]) -> list[str]:
        """The `module:function` names running this unit would call (for allow lists)."""

    @staticmethod
    @abc.abstractmethod
    def run_unit(payload: dict[str, Any]) -> Any:
        """Worker side: execute a unit and return its JSON-serialisable result."""
