"""A batch pauses the cyclic collector and always gives it back; what decoding freezes is
collected by the sweep and at the consumer's stop."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from shared.kafka.runtime import CollectorSweep, cyclic_gc_paused, decode_records


@pytest.fixture(autouse=True)
def _collector_restored() -> Iterator[None]:
    enabled = gc.isenabled()
    yield
    if enabled:
        gc.enable()
    else:
        gc.disable()


def test_the_collector_is_paused_during_the_run_and_enabled_after() -> None:
    gc.enable()
    with cyclic_gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_run_that_fails_still_gives_the_collector_back() -> None:
    gc.enable()
    with pytest.raises(RuntimeError), cyclic_gc_paused():
        assert not gc.isenabled()
        raise RuntimeError("the run failed")
    assert gc.isenabled()


def test_a_collector_paused_by_someone_else_stays_paused() -> None:
    gc.disable()
    with cyclic_gc_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def _decoded_with_a_cycle_made_before() -> weakref.ref[_Cycle]:
    """A cycle dropped just before a batch is decoded: the freeze takes it along."""
    gc.collect()
    made = weakref.ref(_Cycle())
    decode_records([])
    return made


def test_a_sweep_collects_garbage_the_decoding_froze_only_when_due() -> None:
    gc.enable()
    now = [0.0]
    sweep = CollectorSweep(every=60.0, clock=lambda: now[0])
    try:
        made = _decoded_with_a_cycle_made_before()
        gc.collect()
        assert made() is not None  # frozen: an ordinary collection cannot reach it
        now[0] = 59.0
        assert not sweep.collect_if_due()
        assert made() is not None
        now[0] = 60.0
        assert sweep.collect_if_due()
        assert made() is None
        assert gc.get_freeze_count() > 0  # the heap is frozen again after the sweep
    finally:
        CollectorSweep.release()


def test_a_stopping_consumer_gives_frozen_garbage_back_to_the_collector() -> None:
    gc.enable()
    made = _decoded_with_a_cycle_made_before()
    CollectorSweep.release()
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert made() is None
