"""Real service processes (`python -m services.<name>`) for the scale-out tests, and the
consumer group's assignment as the broker reports it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

from tests.support.infra import free_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ServiceProcess:
    name: str
    port: int
    log: Path
    process: subprocess.Popen[bytes]
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        """SIGKILL: a crash."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM, then wait for the orderly stop; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.is_file() else ""

    def log_after_startup(self, lines: int = 150) -> str:
        """The log's last `lines` lines for a failure message: no HTTP access lines, and a
        line that says what one of the 8 lines before it said (a client retrying a broker
        that is down, ten times a second) counted on that line instead of shown."""
        text = self.log.read_text(errors="replace") if self.log.is_file() else ""
        kept: list[tuple[str, str]] = []  # (line, what it says without its timestamp)
        repeats: list[int] = []
        for line in text.splitlines():
            if '"GET /' in line:
                continue
            said = line[24:] if line[:4].isdigit() else line
            recent = [i for i in range(max(len(kept) - 8, 0), len(kept)) if kept[i][1] == said]
            if recent:
                repeats[recent[0]] += 1
            else:
                kept.append((line, said))
                repeats.append(0)
        shown = [
            f"{line} (+{n} alike)" if n else line
            for (line, _), n in zip(kept, repeats, strict=True)
        ]
        return f"--- {self.log.name}, last {lines} lines ---\n" + "\n".join(shown[-lines:])


def start_service(
    name: str, env: Mapping[str, str], log_dir: Path, label: str | None = None
) -> ServiceProcess:
    port = free_port()
    log = log_dir / f"{label or name}-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    full = {**os.environ, **env, f"{name.upper()}_HTTP_PORT": str(port), "PYTHONUNBUFFERED": "1"}
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", f"services.{name}"],
            cwd=ROOT,
            env=full,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return ServiceProcess(name, port, log, process, dict(env))


async def wait_ready(service: ServiceProcess, timeout: float = 90) -> None:
    async with httpx.AsyncClient(base_url=service.url, timeout=2) as client:
        deadline = asyncio.get_running_loop().time() + timeout
        last = ""
        while asyncio.get_running_loop().time() < deadline:
            if service.process.poll() is not None:
                raise AssertionError(f"{service.name} exited:\n{service.tail()}")
            try:
                response = await client.get("/readyz")
                if response.status_code == 200:
                    return
                last = response.text[:300]
            except httpx.TransportError as exc:
                last = repr(exc)
            await asyncio.sleep(0.2)
    raise AssertionError(f"{service.name} not ready within {timeout}s ({last}):\n{service.tail()}")


async def group_assignment(bootstrap: str, group: str) -> dict[str, set[tuple[str, int]]]:
    """member id -> the (topic, partition)s the group's leader gave it, as the broker says."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    found: dict[str, set[tuple[str, int]]] = {}
    for group_info in described:
        for g in group_info.groups:
            _error, _gid, state, _ptype, _protocol, members = g[:6]
            if state != "Stable":
                return {}
            for member in members:
                member_id, assignment_bytes = member[0], member[-1]
                owned: set[tuple[str, int]] = set()
                if assignment_bytes:
                    decoded = ConsumerProtocolMemberAssignment.decode(assignment_bytes)
                    for topic, partitions in decoded.assignment:
                        owned.update((topic, p) for p in partitions)
                found[member_id] = owned
    return found
