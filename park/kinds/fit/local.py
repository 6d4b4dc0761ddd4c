"""Bookkeeping shared by every stage that runs local least squares (`local` units).

Multistart is nothing but local units; `de` and `scan` end with them (the polish). The
best fit is chosen by (chi-squared, start index), never by arrival order, so the result is
the same whichever worker reports first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from park.kinds.fit.problem import TIE, preferred


def local_payloads(
    spec: dict[str, Any], starts: list[list[float]], per_unit: int, first: int = 0, **extra: Any
) -> list[dict[str, Any]]:
    return [
        {
            "task": "local",
            "first": first + i,
            "starts": starts[i : i + per_unit],
            "scale_covar": spec["options"]["scale_covar"],
            **extra,
        }
        for i in range(0, len(starts), per_unit)
    ]


@dataclass(slots=True)
class LocalResults:
    """What the `local` units of a stage reported, folded. `candidates` keeps only the
    unit bests tied with the smallest chi-squared so far; which one is reported is decided
    from them at the end, so it does not depend on the order units finish in."""

    planned: int = 0  # starts planned
    done: int = 0  # starts absorbed
    chisq: list[float | None] = field(default_factory=list)  # per start, None until done
    nfev: list[int] = field(default_factory=list)
    candidates: list[tuple[float, int, dict[str, Any]]] = field(default_factory=list)
    total_nfev: int = 0
    total_njev: int = 0

    def plan(self, payload: dict[str, Any]) -> None:
        end = payload["first"] + len(payload["starts"])
        if end > len(self.chisq):
            self.chisq.extend([None] * (end - len(self.chisq)))
            self.nfev.extend([0] * (end - len(self.nfev)))
        self.planned += len(payload["starts"])

    def absorb(self, payload: dict[str, Any], result: dict[str, Any]) -> None:
        first = payload["first"]
        for k, fit in enumerate(result["fits"]):
            i = first + k
            self.chisq[i] = fit["chisq"]
            self.nfev[i] = int(fit["nfev"])
            self.total_nfev += int(fit["nfev"])
            self.total_njev += int(fit.get("njev", 0))
            self.done += 1
        stats = result.get("stats")
        if stats is None or stats.get("chisq") is None:
            return
        self.candidates.append((float(stats["chisq"]), first + int(result["best"]), stats))
        low = min(c for c, _, _ in self.candidates)
        self.candidates = [t for t in self.candidates if t[0] <= low + TIE * abs(low)]

    @property
    def best(self) -> tuple[float, int, dict[str, Any]] | None:
        if not self.candidates:
            return None
        return self.candidates[preferred([(c, i) for c, i, _ in self.candidates])]

    @property
    def best_chisq(self) -> float:
        return min((c for c, _, _ in self.candidates), default=math.inf)

    @property
    def complete(self) -> bool:
        return self.planned > 0 and self.done >= self.planned

    def history(self) -> list[dict[str, Any]]:
        """Per start, in start order: its chi-squared and the best so far."""
        out: list[dict[str, Any]] = []
        best = math.inf
        for i, c in enumerate(self.chisq):
            if c is not None:
                best = min(best, c)
            out.append(
                {
                    "start": i,
                    "chisq": c,
                    "nfev": self.nfev[i],
                    "best_chisq": best if math.isfinite(best) else None,
                }
            )
        return out
