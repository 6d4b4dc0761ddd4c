"""The `fit` job kind (multistart least squares, differential evolution, grid scans)."""

from park.jobs.fit.kind import FitKind

__all__ = ["FitKind"]
