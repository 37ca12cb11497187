"""Token buckets, the unknown-code lockout and the dedupe retention check, on a hand clock."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.http.limits import Rate, TokenBuckets, UnknownCodeLockout, retry_after
from shared.kafka.dedupe import FOREVER, RetentionTooShort, check_retention


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_refills_at_its_rate() -> None:
    clock = Clock()
    buckets = TokenBuckets(Rate(per_second=2.0, burst=3), clock)
    assert [buckets.take("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("k") == pytest.approx(0.5)
    assert buckets.take("other") == 0.0, "each name has its own bucket"
    clock.now += 0.5
    assert buckets.take("k") == 0.0
    clock.now += 100
    assert [buckets.take("k") for _ in range(4)][-1] > 0, "never more than the burst"


def test_buckets_stay_bounded_under_a_flood_of_names() -> None:
    buckets = TokenBuckets(Rate(1.0, 1), Clock(), max_entries=100)
    for i in range(1000):
        buckets.take(f"made-up-{i}")
    assert len(buckets._buckets) <= 100


def test_retry_after_is_whole_seconds_rounded_up() -> None:
    assert [retry_after(0.01), retry_after(1.0), retry_after(1.2)] == ["1", "1", "2"]


def test_misses_within_the_window_lock_out_and_the_lockout_ends() -> None:
    clock = Clock()
    lockout = UnknownCodeLockout(limit=3, window=60, lockout=300, clock=clock)
    assert lockout.record_miss("k") == 0.0
    clock.now += 61  # the first miss leaves the window
    assert lockout.record_miss("k") == 0.0
    assert lockout.record_miss("k") == 0.0
    assert lockout.locked_for("k") == 0.0
    assert lockout.record_miss("k") == 300
    assert lockout.locked_for("k") == 300
    assert lockout.locked_for("other") == 0.0
    clock.now += 300
    assert lockout.locked_for("k") == 0.0


def test_a_retention_shorter_than_a_topics_is_refused() -> None:
    with pytest.raises(RetentionTooShort, match=r"pos\.purchases"):
        check_retention(timedelta(days=7), {"pos.purchases": timedelta(days=8)})
    check_retention(timedelta(days=8), {"pos.purchases": timedelta(days=7), "x": FOREVER})
    check_retention(timedelta(days=8), {})
