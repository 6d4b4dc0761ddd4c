"""The `fit` job kind (multistart least squares, differential evolution, grid scans)."""

from park.kinds.fit.kind import FitKind

__all__ = ["FitKind"]
