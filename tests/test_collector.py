"""The cycle collector's settings for a serving process (dnslab.core.collector), without sockets."""

from __future__ import annotations

import gc

from dnslab.core import collector


def test_a_serving_process_freezes_what_start_up_made_and_collects_young_objects_less_often() -> None:
    before = gc.get_threshold()
    start_up = {"zones": ["made at start-up"]}  # a tracked container, as zones and hints are
    try:
        collector.serving()
        assert gc.get_threshold() == (collector.SERVING_YOUNG_THRESHOLD, before[1], before[2])
        assert gc.get_freeze_count() > 0
        assert not any(obj is start_up for obj in gc.get_objects())  # out of every later walk
        made_later = {"cache": ["made while serving"]}
        assert any(obj is made_later for obj in gc.get_objects())  # walked as before
        cycle: list[object] = []
        cycle.append(cycle)
        del cycle
        assert gc.collect() >= 1  # garbage made while serving is still collected
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_paused_nests_and_restores() -> None:
    assert gc.isenabled()
    with collector.paused():
        with collector.paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
