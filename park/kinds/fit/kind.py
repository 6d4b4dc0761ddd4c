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
from park.kinds.fit.problem import problem_payload, run_evaluate, run_grid, run_local
from park.kinds.fit.scan import axes
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

    def check_result(self, state: FitState, payload: dict[str, Any], result: Any) -> str | None:
        """The shape each task's worker side returns, checked without copying the state
        (a scan's state holds its surface)."""
        if not isinstance(result, dict):
            return "expected an object"
        if payload["task"] == "local":
            fits = result.get("fits")
            if not isinstance(fits, list) or len(fits) != len(payload["starts"]):
                return f"expected 'fits' for {len(payload['starts'])} starts"
            if not all(
                isinstance(f, dict) and _number_or_none(f.get("chisq")) and _count(f.get("nfev"))
                for f in fits
            ):
                return "each fit needs a 'chisq' (number or null) and an 'nfev' count"
            stats = result.get("stats")
            if stats is not None and not (
                isinstance(stats, dict) and _number_or_none(stats.get("chisq"))
                and _count(result.get("best")) and result["best"] < len(fits)
            ):  # fmt: skip
                return "'stats' needs a 'chisq' and 'best' the index of one of the fits"
            return None
        expected = (
            len(payload["vectors"]) if payload["task"] == "evaluate"
            else payload["stop"] - payload["start"]
        )  # fmt: skip
        chisq = result.get("chisq")
        if not isinstance(chisq, list) or len(chisq) != expected:
            return f"expected 'chisq' for {expected} points"
        if not all(_number_or_none(c) for c in chisq):
            return "each chi-squared must be a number or null"
        return None

    def next_units(self, spec: dict[str, Any], state: FitState) -> list[dict[str, Any]]:
        # A planning error must not take the server down: plan nothing, and `outcome`
        # (which repeats the same deterministic planning) fails the job with the reason.
        try:
            units: list[dict[str, Any]] = _BY_STATE[type(state)].next_units(spec, state)
        except Exception:
            return []
        return units

    def split(self, payload: dict[str, Any], parts: int) -> list[dict[str, Any]]:
        """Local solves (multistart's starts, a polish) by their starts, grid units by
        their index range; differential evolution's generations are not cut."""
        if payload["task"] == "local":
            starts = payload["starts"]
            size = -(-len(starts) // max(1, parts))
            if len(starts) < 2 or size >= len(starts):
                return []
            return [
                {**payload, "first": payload["first"] + i, "starts": starts[i : i + size]}
                for i in range(0, len(starts), size)
            ]
        if payload["task"] == "grid":
            start, stop = payload["start"], payload["stop"]
            size = -(-(stop - start) // max(1, parts))
            if stop - start < 2 or size >= stop - start:
                return []
            return [
                {**payload, "start": i, "stop": min(i + size, stop)}
                for i in range(start, stop, size)
            ]
        return []

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

    def unit_context(self, spec: dict[str, Any]) -> dict[str, Any]:
        context: dict[str, Any] = {"problem": problem_payload(spec)}
        if spec["method"] == "scan":
            context["axes"] = list(axes(spec).values())
        return context

    def job_functions(self, spec: dict[str, Any]) -> list[str]:
        function = spec["model"].get("function")
        return [function] if function else []

    @staticmethod
    def functions_of(payload: dict[str, Any]) -> list[str]:
        function = payload["problem"]["model"].get("function")
        return [function] if function else []

    @staticmethod
    def run_unit(payload: dict[str, Any]) -> Any:
        return _TASKS[payload["task"]](payload)


def _number_or_none(value: Any) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
