"""The console's scheduling of full garbage collections, against the interpreter's real collector."""

from __future__ import annotations

import gc

from cfftui.tui.idle_gc import NEVER, IdleCollector


def full_collections() -> int:
    return gc.get_stats()[2]["collections"]


def test_collects_when_due_and_nobody_is_typing() -> None:
    now = [100.0]
    collector = IdleCollector(quiet_s=0.1, every_s=3.0, overdue_s=10.0, clock=lambda: now[0])
    before = full_collections()
    now[0] += 2.0
    assert not collector.tick()  # not yet due
    now[0] += 1.5
    collector.key_pressed()
    assert not collector.tick()  # due, but a key has just come
    now[0] += 0.2
    assert not collector.tick(answering_key=True)  # its answer is still being painted
    assert collector.tick()
    assert full_collections() == before + 1 and collector.collections == 1
    assert not collector.tick()  # and not again until due


def test_an_overdue_collection_happens_however_busy_the_keyboard() -> None:
    now = [0.0]
    collector = IdleCollector(quiet_s=0.1, every_s=3.0, overdue_s=10.0, clock=lambda: now[0])
    for _ in range(39):  # a key every 0.25 s (binary fractions: the clock adds up exactly)
        now[0] += 0.25
        collector.key_pressed()
        collector.tick(answering_key=True)
    assert collector.collections == 0
    now[0] += 0.25
    assert collector.tick(answering_key=True)


def test_start_turns_automatic_full_collections_off_and_stop_restores_them() -> None:
    thresholds = gc.get_threshold()
    collector = IdleCollector()
    collector.start()
    try:
        assert gc.get_threshold() == (*thresholds[:2], NEVER)
        assert gc.get_freeze_count() > 0
        collector.start()  # twice is once
    finally:
        collector.stop()
    assert gc.get_threshold() == thresholds and gc.get_freeze_count() == 0
