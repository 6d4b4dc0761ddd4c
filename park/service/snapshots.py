"""Snapshots of the projections (state + offset), so start-up folds only the tail.

A snapshot is a cache, never the truth: one that cannot be read, was written by another
version, or claims an offset the log does not have, is ignored and the log replayed.
"""

from __future__ import annotations

import contextlib
import os
import pickle
from pathlib import Path

from park.projections.state import ParkState

FORMAT = "park-snapshot-1"
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
        with tmp.open("wb") as f:
            pickle.dump((FORMAT, state), f, protocol=pickle.HIGHEST_PROTOCOL)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
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
