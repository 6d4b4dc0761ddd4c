"""Snapshots of the projections (state + offset), so start-up folds only the tail.

A snapshot is a cache, never the truth: one that cannot be read, was written by another
version, or claims an offset the log does not have, is ignored and the log replayed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import pickle
from pathlib import Path

from park.projections.state import ParkState


def _format() -> str:
    """Snapshots are pickles of slotted dataclasses, stored by field position: a snapshot
    is only valid for exactly these fields (the kinds' states too), so their names are
    part of its format."""
    from park.kinds import map as map_kind
    from park.kinds.fit import de, local, multistart, scan
    from park.projections import notices, pilots, state

    shapes = [
        f"{cls.__name__}({','.join(f.name for f in dataclasses.fields(cls))})"
        for cls in (
            state.ParkState, state.JobView, state.UnitView, state.WorkerView,
            state.LedgerEntry, state.DecayedUsage, pilots.PilotView,
            notices.NoticeBook, notices.Notice, notices.Waiting,
            map_kind.MapState, scan.ScanState, de.DEState, multistart.MultistartState,
            local.LocalResults,
        )
    ]  # fmt: skip
    # -3: JobView.unit_ids became a dict (the shapes above name fields, not their types).
    return "park-snapshot-3:" + hashlib.sha256(";".join(shapes).encode()).hexdigest()[:16]


FORMAT = _format()
_KEEP = 2


class SnapshotStore:
    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    @classmethod
    def in_data_dir(cls, data_dir: str | Path) -> SnapshotStore:
        return cls(Path(data_dir) / "snapshots")

    def _files(self) -> list[Path]:
        return sorted(self.directory.glob("state-*.pickle"))

    def save(self, state: ParkState) -> Path:
        path = self.directory / f"state-{state.offset:015d}.pickle"
        tmp = path.with_suffix(".tmp")
        try:
            with tmp.open("wb") as f:
                pickle.dump((FORMAT, state), f, protocol=pickle.HIGHEST_PROTOCOL)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)  # a full disk must not keep half a snapshot
            raise
        for old in self._files()[:-_KEEP]:
            old.unlink(missing_ok=True)
        return path

    def load_latest(self, max_offset: int) -> ParkState | None:
        for path in reversed(self._files()):
            with contextlib.suppress(Exception):
                with path.open("rb") as f:
                    fmt, state = pickle.load(f)
                if fmt == FORMAT and isinstance(state, ParkState) and state.offset <= max_offset:
                    return state
        return None
