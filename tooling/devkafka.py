"""Embedded Apache Kafka: the broker's jars from Maven Central, KRaft, on loopback.

`deploy/kafka/pom.xml` pins the broker (`org.apache.kafka:kafka_2.13`) and a log4j2
backend. The first start resolves it once with
`mvn dependency:copy-dependencies` into a cache outside git
(`$LOYALTY_KAFKA_CACHE`, default `~/.cache/loyalty/kafka`), in a folder named after
the descriptor's hash, so a changed version resolves anew and an unchanged one never
touches the network again. Each node is one JVM running `kafka.Kafka` as broker and
controller (combined KRaft mode); its storage is formatted once and kept, so topics
and committed offsets survive a restart.

`KafkaCluster` starts 1 node (the dev stack, the tests, the benchmark) or 3 (the
scale-out test of a leader failure: replication factor 3, `min.insync.replicas` 2).
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tooling.devprocess import port_answers, process_alive

ROOT = Path(__file__).resolve().parent.parent
DESCRIPTOR = ROOT / "deploy" / "kafka" / "pom.xml"
MAIN_CLASS = "kafka.Kafka"
STARTED_LINE = "Kafka Server started"
DEFAULT_JAVA_OPTS = "-Xms256m -Xmx1g -XX:+UseG1GC -XX:MaxGCPauseMillis=20"


class KafkaSetupError(RuntimeError):
    """Apache Kafka cannot be prepared or started; the message says what is missing."""


def cache_root() -> Path:
    configured = os.environ.get("LOYALTY_KAFKA_CACHE")
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "loyalty" / "kafka"


def _require(tool: str, why: str) -> str:
    found = shutil.which(tool)
    if found is None:
        raise KafkaSetupError(
            f"LOYALTY_BROKER=kafka needs `{tool}` on PATH ({why}); install it "
            f"(Debian: apt-get install {'openjdk-17-jre-headless' if tool == 'java' else 'maven'})"
            " or run with LOYALTY_BROKER=tansu"
        )
    return found


def resolve_jars(descriptor: Path = DESCRIPTOR, cache: Path | None = None) -> Path:
    """The folder of the broker's jars, resolved with Maven the first time (then cached).

    Concurrent callers (parallel test sessions) wait on a lock; the folder appears
    complete or not at all (resolved into a temporary folder, then renamed).
    """
    digest = hashlib.sha256(descriptor.read_bytes()).hexdigest()[:16]
    base = cache or cache_root()
    libs = base / digest / "libs"
    if (libs / ".complete").is_file():
        return libs
    base.mkdir(parents=True, exist_ok=True)
    with (base / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (libs / ".complete").is_file():
            return libs
        mvn = _require("mvn", "to fetch the broker's jars from Maven Central once")
        staging = Path(tempfile.mkdtemp(prefix="libs-", dir=base))
        result = subprocess.run(  # noqa: S603 - Maven with our own descriptor
            [
                mvn,
                "--batch-mode",
                "--quiet",
                "-f",
                str(descriptor),
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={staging}",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0 or not any(staging.glob("kafka_2.13-*.jar")):
            shutil.rmtree(staging, ignore_errors=True)
            output = (result.stdout + result.stderr).strip()[-2000:]
            raise KafkaSetupError(f"mvn could not resolve {descriptor}:\n{output}")
        (staging / ".complete").write_text(digest + "\n")
        libs.parent.mkdir(parents=True, exist_ok=True)
        if libs.exists():
            shutil.rmtree(libs)
        staging.rename(libs)
    return libs


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding, never starting
    with '-' (the storage tool would read it as an option; Kafka's own ids avoid it too)."""
    while True:
        candidate = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not candidate.startswith("-"):
            return candidate


@dataclass(frozen=True)
class NodeSpec:
    node_id: int
    port: int  # clients
    controller_port: int


class KafkaNode:
    """One combined broker+controller JVM; its folder holds config, data and log."""

    def __init__(self, root: Path, spec: NodeSpec, voters: Sequence[NodeSpec]) -> None:
        self.root = root
        self.spec = spec
        self.voters = list(voters)
        self.data = root / "data"
        self.config = root / "server.properties"
        self.log_config = root / "log4j2.properties"
        self.log = root / "server.log"
        self.pid_file = root / "pid"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.spec.port}"

    def pid(self) -> int | None:
        if not self.pid_file.is_file():
            return None
        pid = int(self.pid_file.read_text().strip() or 0)
        return pid if process_alive(pid) else None

    def properties(self) -> dict[str, str]:
        replicas = len(self.voters)
        voters = ",".join(f"{v.node_id}@127.0.0.1:{v.controller_port}" for v in self.voters)
        return {
            "process.roles": "broker,controller",
            "node.id": str(self.spec.node_id),
            "controller.quorum.voters": voters,
            "listeners": (
                f"PLAINTEXT://127.0.0.1:{self.spec.port},"
                f"CONTROLLER://127.0.0.1:{self.spec.controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.spec.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data),
            # Internal topics as replicated as the cluster allows.
            "offsets.topic.replication.factor": str(replicas),
            "offsets.topic.num.partitions": "10",
            # Few partitions: created at the first producer id (the relay's), quickly.
            "transaction.state.log.num.partitions": "4",
            "transaction.state.log.replication.factor": str(replicas),
            "transaction.state.log.min.isr": str(min(2, replicas)),
            "share.coordinator.state.topic.replication.factor": str(replicas),
            "share.coordinator.state.topic.min.isr": str(min(2, replicas)),
            "default.replication.factor": str(replicas),
            "min.insync.replicas": str(min(2, replicas)),
            # A group forms as soon as its first member joins (the 3 s default waits for
            # more members; services join one by one anyway and rebalance when others come).
            "group.initial.rebalance.delay.ms": "0",
            "num.partitions": "1",
            "auto.create.topics.enable": "true",
            "log.retention.hours": "168",
            "unclean.leader.election.enable": "false",
        }

    def write_config(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        lines = [f"{k}={v}" for k, v in self.properties().items()]
        self.config.write_text("\n".join(lines) + "\n")
        self.log_config.write_text(
            "status = warn\n"
            "appender.file.type = File\n"
            "appender.file.name = file\n"
            f"appender.file.fileName = {self.log}\n"
            "appender.file.layout.type = PatternLayout\n"
            "appender.file.layout.pattern = [%d] %p %m (%c)%n\n"
            "rootLogger.level = info\n"
            "rootLogger.appenderRef.file.ref = file\n"
            "logger.kafka.name = org.apache.kafka\n"
            "logger.kafka.level = info\n"
        )

    def _java(self, libs: Path, main: str, *args: str, opts: str = "") -> list[str]:
        java = _require("java", "to run the Apache Kafka broker (JDK 17 or later)")
        return [
            java,
            *opts.split(),
            f"-Dlog4j2.configurationFile={self.log_config}",
            "-Djava.awt.headless=true",
            "-cp",
            f"{libs}/*",
            main,
            *args,
        ]

    def format(self, libs: Path, cluster_id: str) -> None:
        """Format KRaft storage once; an already formatted node keeps its data."""
        if (self.data / "meta.properties").is_file():
            return
        self.write_config()
        cmd = self._java(
            libs,
            "kafka.tools.StorageTool",
            "format",
            "--cluster-id",
            cluster_id,
            "--config",
            str(self.config),
            "--ignore-formatted",
            opts="-Xmx256m -XX:TieredStopAtLevel=1",
        )
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603
        if result.returncode != 0:
            raise KafkaSetupError(
                f"formatting Kafka storage in {self.data} failed: "
                f"{(result.stderr or result.stdout).strip()[-1500:]}"
            )

    def start(self, libs: Path) -> subprocess.Popen[bytes]:
        """Start the JVM in its own session; returns once it is started (see `wait_ready`)."""
        if port_answers(self.spec.port) or port_answers(self.spec.controller_port):
            raise KafkaSetupError(
                f"port {self.spec.port} or {self.spec.controller_port} is taken by another "
                "program; stop it or choose another port with LOYALTY_KAFKA_PORT"
            )
        self.write_config()
        self._started_marks = self._count_started()
        opts = os.environ.get("LOYALTY_KAFKA_JAVA_OPTS", DEFAULT_JAVA_OPTS)
        with (self.root / "stdout.log").open("ab") as out:
            process = subprocess.Popen(  # noqa: S603 - the JDK with the resolved broker jars
                self._java(libs, MAIN_CLASS, str(self.config), opts=opts),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pid_file.write_text(f"{process.pid}\n")
        return process

    def _count_started(self) -> int:
        if not self.log.is_file():
            return 0
        return self.log.read_text(errors="replace").count(STARTED_LINE)

    def ready(self) -> bool:
        """The JVM logged its start and its client port answers."""
        return self._count_started() > getattr(self, "_started_marks", 0) and port_answers(
            self.spec.port
        )

    def stop(self, timeout: float = 60) -> None:
        """SIGTERM (a controlled shutdown), then SIGKILL if it takes longer than `timeout`."""
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while process_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if process_alive(pid):
            os.kill(pid, signal.SIGKILL)
            while process_alive(pid):
                time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL: a crash (fault-injection tests)."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return
        os.kill(pid, signal.SIGKILL)
        while process_alive(pid):
            time.sleep(0.02)
        self.pid_file.unlink(missing_ok=True)


class KafkaCluster:
    """N combined nodes under `root` (node-<id>/), one KRaft cluster id kept in `root`."""

    def __init__(self, root: Path, specs: Sequence[NodeSpec]) -> None:
        self.root = root
        self.specs = list(specs)
        self.nodes = [KafkaNode(root / f"node-{s.node_id}", s, specs) for s in specs]
        self._processes: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(node.bootstrap for node in self.nodes)

    def cluster_id(self) -> str:
        path = self.root / "cluster-id"
        if not path.is_file():
            self.root.mkdir(parents=True, exist_ok=True)
            path.write_text(new_cluster_id() + "\n")
        return path.read_text().strip()

    def node(self, node_id: int) -> KafkaNode:
        return next(n for n in self.nodes if n.spec.node_id == node_id)

    def start(self, timeout: float = 120) -> None:
        libs = resolve_jars()
        cluster_id = self.cluster_id()
        for node in self.nodes:
            node.format(libs, cluster_id)
        for node in self.nodes:
            if node.pid() is None:
                self._processes[node.spec.node_id] = node.start(libs)
        self.wait_ready(timeout)

    def start_node(self, node_id: int, timeout: float = 120) -> None:
        node = self.node(node_id)
        self._processes[node_id] = node.start(resolve_jars())
        self._wait(node, timeout)

    def wait_ready(self, timeout: float = 120) -> None:
        for node in self.nodes:
            if node.spec.node_id in self._processes:
                self._wait(node, timeout)

    def _wait(self, node: KafkaNode, timeout: float) -> None:
        process = self._processes.get(node.spec.node_id)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if node.ready():
                return
            if process is not None and process.poll() is not None:
                raise KafkaSetupError(
                    f"Apache Kafka node {node.spec.node_id} exited with code "
                    f"{process.returncode}; see {node.log} and {node.root / 'stdout.log'}"
                )
            time.sleep(0.05)
        raise KafkaSetupError(
            f"Apache Kafka node {node.spec.node_id} did not start within {timeout:g}s; "
            f"see {node.log}"
        )

    def pids(self) -> list[int | None]:
        return [node.pid() for node in self.nodes]

    def stop(self, timeout: float = 60) -> None:
        """SIGTERM every node at once (one by one, the last would wait for a quorum that
        left), then SIGKILL what still runs after `timeout`."""
        pids = [pid for pid in self.pids() if pid is not None]
        for pid in pids:
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while any(process_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        for node in self.nodes:
            node.kill()
        for process in self._processes.values():
            if process.poll() is None:
                process.wait()
        self._processes.clear()
