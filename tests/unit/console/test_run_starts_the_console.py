"""`make run` starts the console beside the services and says where it is."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tooling.devinfra import InfraState
from tooling.run import RunningService, ServicePlan, console_plan, next_steps


def test_the_console_listens_where_the_environment_says_else_on_8000(tmp_path: Path) -> None:
    assert console_plan({}, tmp_path).url == "http://127.0.0.1:8000"
    plan = console_plan({"CONSOLE_HTTP_PORT": "9123"}, tmp_path)
    assert plan.url == "http://127.0.0.1:9123"
    assert plan.log == tmp_path / "logs" / "console.log"


def test_the_start_up_message_names_the_console_and_how_to_sign_in(tmp_path: Path) -> None:
    process = subprocess.Popen(["true"])
    process.wait()
    services = [
        RunningService(
            ServicePlan("points", "127.0.0.1", 8001, tmp_path / "p.log"),
            process,
            admin_key="lk_a_b",
        ),
        RunningService(console_plan({}, tmp_path), process),
    ]
    text = next_steps(services, InfraState(pg_port=15432, kafka_port=19092), tmp_path)
    assert "console  http://127.0.0.1:8000   (sign in: paste the admin keys)" in text
    assert "admin key: lk_a_b" in text
