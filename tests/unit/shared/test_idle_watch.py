"""`IdleWatch`: when an idle consumer's client counts as no longer fetching."""

from __future__ import annotations

from shared.kafka.runtime import IdleWatch


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_check_is_due_every_period_of_empty_polls() -> None:
    clock = Clock()
    watch = IdleWatch(30.0, clock)
    assert not watch.due()  # the first empty poll starts the spell
    clock.now += 29.9
    assert not watch.due()
    clock.now += 0.2
    assert watch.due()
    assert not watch.due()  # the next one is a period later
    clock.now += 30.0
    assert watch.due()


def test_messages_waiting_at_two_checks_in_a_row_break_the_client() -> None:
    watch = IdleWatch(30.0, Clock())
    assert not watch.judge(5)
    assert watch.judge(3)


def test_nothing_waiting_or_a_poll_with_messages_clears_the_strike() -> None:
    clock = Clock()
    watch = IdleWatch(30.0, clock)
    assert not watch.judge(5)
    assert not watch.judge(0)
    assert not watch.judge(5)
    watch.busy()  # a poll returned messages: the client fetches
    assert not watch.judge(5)
    assert watch.strikes == 1
    assert not watch.due()  # and the idle spell starts again from the next empty poll


def test_no_answer_is_no_verdict() -> None:
    watch = IdleWatch(30.0, Clock())
    assert not watch.judge(5)
    assert not watch.judge(None)  # broker down or a rebalance: neither strike nor clear
    assert watch.judge(5)
