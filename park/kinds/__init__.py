"""Job kinds: how a job's spec is cut into units and how their results fold back."""

from park.kinds.base import Finished, JobKind, SpecError
from park.kinds.fit import FitKind
from park.kinds.map import MapKind

KINDS: dict[str, JobKind] = {kind.name: kind for kind in (MapKind(), FitKind())}

__all__ = ["KINDS", "Finished", "JobKind", "SpecError"]
