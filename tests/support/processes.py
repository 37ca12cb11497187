"""Consumer processes for crash tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def start_consumer(
    bootstrap: str, db: str, group: str, topic: str, delay: float = 0.0, max_batch: int = 100
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.consumer_proc",
            "--bootstrap",
            bootstrap,
            "--db",
            db,
            "--group",
            group,
            "--topic",
            topic,
            "--delay",
            str(delay),
            "--max-batch",
            str(max_batch),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def output(process: subprocess.Popen[bytes]) -> str:
    if process.poll() is None:
        process.kill()
    out, _ = process.communicate(timeout=10)
    return out.decode(errors="replace")[-3000:]
