"""A desktop's hours (pure): a window may wrap midnight."""

from __future__ import annotations

import pytest

from park.worker.desktop import Hours, LoadMeter


def test_hours_that_wrap_midnight() -> None:
    night = Hours.parse("18:00-08:00")
    assert night.contains(19 * 60) and night.contains(7 * 60 + 59)
    assert not night.contains(8 * 60) and not night.contains(12 * 60)
    assert night.seconds_until_open(17 * 3600) == 3600
    assert night.seconds_until_open(23 * 3600) == 0
    assert Hours.parse("09:00-17:30").contains(17 * 60 + 29)
    with pytest.raises(ValueError, match="HH:MM-HH:MM"):
        Hours.parse("evenings")


def test_the_load_from_others_leaves_out_the_workers_own_units() -> None:
    readings = iter([7.0, 7.0, 3.0, 3.0])
    meter = LoadMeter(own_busy=lambda: 2, window=0.4, every=0.2, sample=lambda: next(readings))
    meter.read()
    meter.read()
    assert meter.other_load == 4.0  # 7 running, less its 2 units and the reading itself
    meter.read()
    meter.read()
    assert meter.other_load == 0.0
