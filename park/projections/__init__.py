"""Projections: read models folded from the log."""

from park.projections.state import JobView, LedgerEntry, ParkState, UnitView, WorkerView

__all__ = ["JobView", "LedgerEntry", "ParkState", "UnitView", "WorkerView"]
