"""Drive the `fit` kind in-process, as the server and its workers would.

`drive` is the kind alone: it calls next_units / planned / run_unit / absorb / outcome in
the loop `settle_jobs` and the fold make, with payloads and results passed through JSON as
they would be through the log and HTTP, and units completed in a seeded shuffled order
(a pool of workers finishing at different times). It records every fold call so a test can
replay them.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

from park.kinds import KINDS, Finished


def _json(value: Any) -> Any:
    return json.loads(json.dumps(value, allow_nan=False))


@dataclass
class Drive:
    spec: dict[str, Any]
    state: Any
    finished: Finished
    folds: list[tuple[str, Any, Any]] = field(default_factory=list)  # what the fold saw
    progress: list[dict[str, Any]] = field(default_factory=list)
    units: int = 0

    @property
    def result(self) -> dict[str, Any]:
        if self.finished.error is not None:
            raise AssertionError(f"fit failed: {self.finished.error}")
        result: dict[str, Any] = self.finished.result
        return result


def drive(
    spec: dict[str, Any],
    *,
    shuffle: int | None = 0,
    concurrency: int = 3,
    max_units: int = 100_000,
    resume_from: list[tuple[str, Any, Any]] | None = None,
) -> Drive:
    """Run a fit to the end: up to `concurrency` units are in flight at once and complete
    in a seeded random order (in plan order with `shuffle=None`). With `resume_from`, first
    fold those recorded calls, as a restarted server folds its log, and carry on."""
    kind = KINDS["fit"]
    normalised = _json(kind.parse_spec(spec))
    state = kind.start(normalised)
    order = random.Random(shuffle)
    queue: list[dict[str, Any]] = []
    run = Drive(spec=normalised, state=state, finished=Finished(error="not finished"))
    for what, payload, result in resume_from or []:  # a restart: fold what the log holds
        if what == "planned":
            kind.planned(state, payload)
            queue.extend(payload)
        else:
            assert kind.check_result(state, payload, result) is None, result
            kind.absorb(state, payload, result)
            queue.remove(payload)
            run.units += 1
        run.folds.append((what, payload, result))
    for _ in range(max_units):
        while True:  # settle: plan until nothing more, then ask for the outcome
            payloads = _json(kind.next_units(normalised, state))
            if not payloads:
                break
            kind.planned(state, payloads)
            run.folds.append(("planned", payloads, None))
            queue.extend(payloads)
        finished = kind.outcome(normalised, state)
        if finished is not None:
            run.finished = finished
            return run
        if not queue:
            raise AssertionError("the kind planned nothing and is not finished")
        k = order.randrange(min(concurrency, len(queue))) if shuffle is not None else 0
        payload = queue.pop(k)
        result = _json(kind.run_unit({**kind.unit_context(normalised), **payload}))
        assert kind.check_result(state, payload, result) is None, result
        kind.absorb(state, payload, result)
        run.folds.append(("absorb", payload, result))
        run.units += 1
        run.progress.append(_json(kind.progress(state)))
    raise AssertionError("too many units")


def replay(spec: dict[str, Any], folds: list[tuple[str, Any, Any]]) -> Any:
    """A fresh kind state folded from a recorded sequence of planned/absorb calls."""
    kind = KINDS["fit"]
    state = kind.start(spec)
    for what, payload, result in folds:
        if what == "planned":
            kind.planned(state, payload)
        else:
            assert kind.check_result(state, payload, result) is None, result
            kind.absorb(state, payload, result)
    return state
