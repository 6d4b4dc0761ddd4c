"""The `fit` job kind: model fitting by multistart least squares, differential evolution
or an exhaustive grid scan, cut into units that any worker can run.

The server-side methods only fold payloads and results into plain dataclasses (picklable,
comparable, no numpy arrays, no clocks, no global random state) and decide from them; all
numerical work happens in `run_unit` on the workers.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any

from park.kinds.base import Finished, JobKind
from park.kinds.fit import de, multistart, scan
from park.kinds.fit.problem import run_evaluate, run_grid, run_local
from park.kinds.fit.spec import parse_spec

FitState = multistart.MultistartState | de.DEState | scan.ScanState

_METHODS: dict[str, ModuleType] = {"multistart": multistart, "de": de, "scan": scan}
_BY_STATE: dict[type, ModuleType] = {
    multistart.MultistartState: multistart,
    de.DEState: de,
    scan.ScanState: scan,
}
_TASKS = {"local": run_local, "evaluate": run_evaluate, "grid": run_grid}


class FitKind(JobKind):
    name = "fit"

    def parse_spec(self, spec: dict[str, Any]) -> dict[str, Any]:
        return parse_spec(spec)

    def start(self, spec: dict[str, Any]) -> FitState:
        method = _METHODS[spec["method"]]
        if method is multistart:
            return multistart.MultistartState()
        state: FitState = method.start(spec)
        return state

    def planned(self, state: FitState, payloads: Sequence[dict[str, Any]]) -> None:
        method = _BY_STATE[type(state)]
        for payload in payloads:
            method.planned(state, payload)

    def absorb(self, state: FitState, payload: dict[str, Any], result: Any) -> None:
        _BY_STATE[type(state)].absorb(state, payload, result)

    def next_units(self, spec: dict[str, Any], state: FitState) -> list[dict[str, Any]]:
        # A planning error must not take the server down: plan nothing, and `outcome`
        # (which repeats the same deterministic planning) fails the job with the reason.
        try:
            units: list[dict[str, Any]] = _BY_STATE[type(state)].next_units(spec, state)
        except Exception:
            return []
        return units

    def outcome(self, spec: dict[str, Any], state: FitState) -> Finished | None:
        method = _BY_STATE[type(state)]
        try:
            method.next_units(spec, state)
            finished: Finished | None = method.outcome(spec, state)
        except Exception as err:
            return Finished(error=f"fit {spec.get('method')}: {type(err).__name__}: {err}")
        return finished

    def progress(self, state: FitState) -> dict[str, Any]:
        info: dict[str, Any] = _BY_STATE[type(state)].progress(state)
        return info

    @staticmethod
    def functions_of(payload: dict[str, Any]) -> list[str]:
        function = payload["problem"]["model"].get("function")
        return [function] if function else []

    @staticmethod
    def run_unit(payload: dict[str, Any]) -> Any:
        return _TASKS[payload["task"]](payload)
