"""The whole system, started the way `make run` starts it, from a clean private state.

`python -m tooling.run` runs as a subprocess with its own state directory and free ports
(LOYALTY_VAR_DIR, LOYALTY_PG_PORT, LOYALTY_KAFKA_PORT, <SERVICE>_HTTP_PORT). The fixture
waits for `services.json` (written once every service answered /readyz), and at the end
stops the run with SIGINT, as Ctrl-C would, and checks that it stopped cleanly.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.infra import free_port

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 240.0
STOP_TIMEOUT = 90.0
SCAN_INTERVAL_SECONDS = 1  # every periodic job runs this often, so the tests wait little
# Addresses of some other stack must not leak into the clean run.
_FOREIGN = ("KAFKA_BOOTSTRAP_SERVERS", "LOYALTY_ADMIN_DATABASE_URL", "ALERTS_CLOCK")


@dataclass(frozen=True)
class System:
    bootstrap_servers: str
    urls: dict[str, str]
    keys: dict[str, str]
    var_dir: Path
    process: subprocess.Popen[str]

    def headers(self, service: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[service]}"}


def _clean_environment(var_dir: Path, kafka_port: int) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _FOREIGN and not k.endswith(("_DATABASE_URL", "_HTTP_PORT", "_HTTP_HOST"))
    }
    env.update(
        LOYALTY_VAR_DIR=str(var_dir),
        LOYALTY_PG_PORT=str(free_port()),
        LOYALTY_KAFKA_PORT=str(kafka_port),
        LOYALTY_KAFKA_CONTROLLER_PORT=str(free_port()),  # Apache Kafka's, when LOYALTY_BROKER=kafka
        POINTS_HTTP_PORT=str(free_port()),
        REWARDS_HTTP_PORT=str(free_port()),
        ALERTS_HTTP_PORT=str(free_port()),
        CONSOLE_HTTP_PORT=str(free_port()),
        POINTS_JOBS_INTERVAL_SECONDS=str(SCAN_INTERVAL_SECONDS),
        REWARDS_JOBS_INTERVAL_SECONDS=str(SCAN_INTERVAL_SECONDS),
        ALERTS_SCAN_INTERVAL_SECONDS=str(SCAN_INTERVAL_SECONDS),
        PYTHONUNBUFFERED="1",
    )
    return env


def _output(process: subprocess.Popen[str]) -> str:
    if process.poll() is None:
        process.kill()
    out, _ = process.communicate(timeout=30)
    return out[-5000:]


def _wait_for_services(
    process: subprocess.Popen[str], services_file: Path
) -> dict[str, dict[str, str]]:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"`make run` exited with {process.returncode}:\n{_output(process)}")
        if services_file.is_file():
            return dict(json.loads(services_file.read_text()))
        time.sleep(0.2)
    pytest.fail(f"`make run` did not start within {START_TIMEOUT}s:\n{_output(process)}")


def _private_var_dir() -> Path:
    """A state directory outside pytest's own temporary tree.

    PostgreSQL runs as an unprivileged system user when the tests run as root, so every
    folder above its data directory is opened for traversal when it starts. pytest resets
    its per-user folder (`pytest-of-<user>`) to mode 0700 whenever another session starts,
    which would lock PostgreSQL out of its data mid-run (`pg_ctl ... Permission denied`).
    """
    return Path(tempfile.mkdtemp(prefix="loyalty-e2e-")) / "var"


def run_system(*, expect_stop_report: bool = True) -> Iterator[System]:
    """`make run` from a clean private state, stopped at the end as Ctrl-C stops it.

    Checks that it stopped cleanly (and, with `expect_stop_report`, that it said so); the
    state directory is removed only then: a failed run's logs tell why.
    """
    var_dir = _private_var_dir()
    kafka_port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tooling.run"],
        cwd=ROOT,
        env=_clean_environment(var_dir, kafka_port),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        started = _wait_for_services(process, var_dir / "services.json")
        yield System(
            bootstrap_servers=f"127.0.0.1:{kafka_port}",
            urls={name: s["url"] for name, s in started.items()},
            keys={name: s["admin_key"] for name, s in started.items()},
            var_dir=var_dir,
            process=process,
        )
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # what Ctrl-C does
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
        out = _output(process)
        assert process.returncode == 0, f"`make run` did not stop cleanly:\n{out}"
        if expect_stop_report:
            assert "stopped." in out, f"`make run` did not report stopping:\n{out}"
        shutil.rmtree(var_dir.parent)


@pytest.fixture(scope="session")
def system() -> Iterator[System]:
    yield from run_system()
