"""Adaptive detection cadence: overload raises the interval, calm lowers it again."""

from __future__ import annotations

from orchestrator.dataplane.live.worker import LoadShedder


def test_drops_or_a_backlog_raise_the_interval_and_calm_lowers_it() -> None:
    shedder = LoadShedder()
    assert shedder.update(backlog=0, dropped=0, batch_size=8) == 1
    assert shedder.update(backlog=20, dropped=0, batch_size=8) == 2
    assert shedder.update(backlog=0, dropped=5, batch_size=8) == 3
    for _ in range(LoadShedder.CALM_STEPS - 1):
        assert shedder.update(backlog=0, dropped=5, batch_size=8) == 3
    assert shedder.update(backlog=0, dropped=5, batch_size=8) == 2
