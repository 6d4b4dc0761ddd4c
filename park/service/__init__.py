"""The application layer: the service that runs commands against the log."""

from park.service.engine import LeasedUnit, ParkService, ServiceConfig
from park.service.snapshots import SnapshotStore

__all__ = ["LeasedUnit", "ParkService", "ServiceConfig", "SnapshotStore"]
