"""`make run`'s pure pieces: which services start, where, with what environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from tooling.devinfra import InfraError
from tooling.run import (
    RunningService,
    ServicePlan,
    child_environment,
    plan_services,
    platform_topics,
    runnable_services,
    tail,
    wait_ready,
)


def test_only_services_with_a_main_module_are_started(tmp_path: Path) -> None:
    (tmp_path / "services" / "points").mkdir(parents=True)
    (tmp_path / "services" / "points" / "__main__.py").write_text("")
    (tmp_path / "services" / "rewards").mkdir(parents=True)
    assert runnable_services(tmp_path) == ["points"], "rewards has no __main__.py yet"


def test_ports_follow_the_convention_unless_the_environment_moves_them(tmp_path: Path) -> None:
    plans = plan_services(["points", "alerts"], {"ALERTS_HTTP_PORT": "9103"}, tmp_path)
    assert [(p.name, p.port) for p in plans] == [("points", 8001), ("alerts", 9103)]
    assert plans[0].url == "http://127.0.0.1:8001"
    assert plans[1].log == tmp_path / "logs" / "alerts.log"


def test_two_services_on_one_port_are_refused_before_anything_starts(tmp_path: Path) -> None:
    with pytest.raises(InfraError, match="same HTTP port"):
        plan_services(["points", "rewards"], {"REWARDS_HTTP_PORT": "8001"}, tmp_path)


def test_children_get_the_infrastructure_addresses_and_event_time_alerts(tmp_path: Path) -> None:
    plans = plan_services(["points"], {}, tmp_path)
    env = child_environment(
        {"KAFKA_BOOTSTRAP_SERVERS": "stale:1", "HOME": "/h"},
        {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:5"},
        plans,
    )
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:5", "the infra just started must win"
    assert env["POINTS_HTTP_PORT"] == "8001"
    assert env["HOME"] == "/h"
    assert env["ALERTS_CLOCK"] == "event"


def test_an_operator_choice_of_alerts_clock_is_kept(tmp_path: Path) -> None:
    env = child_environment({"ALERTS_CLOCK": "wall"}, {}, [])
    assert env["ALERTS_CLOCK"] == "wall"


def test_dead_letter_topics_are_created_with_the_platform_topics() -> None:
    topics = platform_topics({"POINTS_CONSUMER_GROUP": "points-eu"})
    assert "pos.purchases" in topics and "loyalty.alerts" in topics
    assert {"points-eu.dlq", "rewards.dlq", "alerts.dlq"} <= set(topics)


class _Process:
    def __init__(self, exit_after: int | None = None) -> None:
        self.polls = 0
        self.exit_after = exit_after

    def poll(self) -> int | None:
        self.polls += 1
        if self.exit_after is not None and self.polls > self.exit_after:
            return 3
        return None


def _service(tmp_path: Path, process: _Process) -> RunningService:
    plan = ServicePlan("points", "127.0.0.1", 8001, tmp_path / "points.log")
    # A stand-in for subprocess.Popen: the supervisor only ever calls poll().
    return RunningService(plan, process)  # type: ignore[arg-type]


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def pause(self, seconds: float) -> None:
        self.now += seconds


def test_readiness_waits_until_readyz_answers_200(tmp_path: Path) -> None:
    answers = iter([(0, b""), (503, b"not ready: broker"), (200, b"{}")])
    clock = _Clock()
    wait_ready(_service(tmp_path, _Process()), 10, lambda _url: next(answers), clock, clock.pause)
    assert clock.now == pytest.approx(0.4), "two refusals, two pauses"


def test_a_service_that_exits_while_starting_is_reported_with_its_log(tmp_path: Path) -> None:
    (tmp_path / "points.log").write_text("boot\nImportError: no module named nope\n")
    clock = _Clock()
    with pytest.raises(InfraError, match=r"exited with code 3(.|\n)*ImportError"):
        wait_ready(
            _service(tmp_path, _Process(exit_after=1)), 10, lambda _u: (0, b""), clock, clock.pause
        )


def test_a_service_never_ready_times_out_with_the_last_answer(tmp_path: Path) -> None:
    clock = _Clock()
    with pytest.raises(InfraError, match=r"not ready within 2s.*HTTP 503: broker down"):
        wait_ready(
            _service(tmp_path, _Process()), 2, lambda _u: (503, b"broker down"), clock, clock.pause
        )


def test_tail_keeps_the_last_lines_only(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("\n".join(str(i) for i in range(100)))
    assert tail(log, 3) == "97\n98\n99"
    assert tail(tmp_path / "missing.log") == ""
