"""A `fit` job through the real commands and projections (no server): the live state and
a fresh fold of the logged events agree at every step, so a restart rebuilds the exact
DE population, generation and pending units."""

from __future__ import annotations

import pickle

from tests.kinds.nist import NIST_DIR, load
from tests.kinds.park_sim import InProcessPark


def test_live_and_replayed_projections_agree_throughout_a_de_fit() -> None:
    spec = load(NIST_DIR / "Misra1a.dat").spec("de", {"seed": 3, "popsize": 8, "per_unit": 3})
    park = InProcessPark(keep_states=True)
    job_id = park.submit(spec)
    job = park.work(job_id, batch=2, shuffle=4)
    assert job.result is not None, job.error
    offsets = sorted(park.states)
    for offset in [*offsets[:: max(1, len(offsets) // 40)], offsets[-1]]:
        assert park.replay(offset) == pickle.loads(park.states[offset]), offset
    assert park.replay() == park.state


def test_a_fit_through_the_commands_matches_the_kind_alone() -> None:
    from tests.kinds.fit_driver import drive

    spec = load(NIST_DIR / "Rat42.dat").spec("multistart", {"starts": 5, "per_unit": 2})
    park = InProcessPark()
    job = park.work(park.submit(spec), batch=3, shuffle=1)
    assert job.result == drive(spec).result
