"""`make run`: the whole system on the embedded default, stopped with Ctrl-C.

Starts (or reuses) the embedded PostgreSQL and broker (LOYALTY_BROKER: `tansu`, the
default, or `kafka` for Apache Kafka; see tooling.devinfra), creates the topics,
applies every service's migrations, starts every service whose
`services/<name>/__main__.py` exists as a child process (`python -m services.<name>`),
waits until each answers `/readyz`, creates an admin API key per service for local
use, starts the operations console (`python -m console`) against them, prints the URLs,
the keys and what to try next, then waits. Ctrl-C or SIGTERM
stops the services (SIGTERM, then a bounded wait), then the infrastructure. A service
that dies on its own is reported with the end of its log and ends the run with exit 1.

Environment (all optional), so a clean-state run can use a private directory and free
ports (the end-to-end tests do):

    LOYALTY_VAR_DIR            state directory (default ./var): PostgreSQL data, logs,
                               `env`, and `services.json` (URLs and admin keys, mode 0600)
    LOYALTY_PG_PORT            embedded PostgreSQL port (default 15432)
    LOYALTY_BROKER             `tansu` (default, nothing to install, topics in memory) or
                               `kafka` (Apache Kafka; needs java, and mvn the first time)
    LOYALTY_KAFKA_PORT         embedded broker port (default 19092; Apache Kafka's
                               controller listens on LOYALTY_KAFKA_CONTROLLER_PORT, default
                               the broker port + 1)
    POINTS_HTTP_PORT           points HTTP port (default 8001); likewise REWARDS_HTTP_PORT
                               (8002) and ALERTS_HTTP_PORT (8003)
    CONSOLE_HTTP_PORT          the operations console's port (default 8000)
    ALERTS_CLOCK               `event` here unless set: alerts follow event time, so the
                               simulator's accelerated time produces lapse alerts
    LOYALTY_READY_TIMEOUT      seconds to wait for each service's /readyz (default 90)
    LOYALTY_STOP_TIMEOUT       seconds a service gets to stop after SIGTERM (default 20)

Service logs go to `<LOYALTY_VAR_DIR>/logs/<service>.log`.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from shared.auth import Scope, create_key, list_keys, revoke_key
from shared.contracts.topics import Topics, dead_letter_topic
from shared.db import create_engine
from shared.kafka.admin import ensure_topics
from shared.settings import KafkaSettings
from tooling.devinfra import InfraError, InfraState, infra_from_environment, write_private
from tooling.migrate import SERVICES, upgrade

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PORTS: Mapping[str, int] = {"points": 8001, "rewards": 8002, "alerts": 8003}
LOCAL_KEY_NAME = "local admin (make run)"
LOG_TAIL_LINES = 30
SIMULATED_CUSTOMER = "c-00001"
CONSOLE_PORT = 8000  # the first customer `loyalty simulate` makes by default


@dataclass(frozen=True)
class ServicePlan:
    """One service to start: its name, where it listens, and its log file."""

    name: str
    host: str
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@dataclass
class RunningService:
    plan: ServicePlan
    process: subprocess.Popen[bytes]
    admin_key: str | None = None
    paths: list[str] = field(default_factory=list)


# -- pure pieces --------------------------------------------------------------------------


def runnable_services(root: Path = ROOT, names: Sequence[str] = SERVICES) -> list[str]:
    """The services that can be started: those with a `__main__.py`."""
    return [name for name in names if (root / "services" / name / "__main__.py").is_file()]


def plan_services(names: Sequence[str], env: Mapping[str, str], var_dir: Path) -> list[ServicePlan]:
    """Host and port of each service from `<NAME>_HTTP_HOST/PORT`, else the convention."""
    plans = []
    for name in names:
        prefix = name.upper()
        port = int(env.get(f"{prefix}_HTTP_PORT", DEFAULT_PORTS.get(name, 8000)))
        host = env.get(f"{prefix}_HTTP_HOST", "127.0.0.1")
        plans.append(ServicePlan(name, host, port, var_dir / "logs" / f"{name}.log"))
    ports = [plan.port for plan in plans]
    if len(set(ports)) != len(ports):
        raise InfraError(f"two services were given the same HTTP port: {ports}")
    return plans


def child_environment(
    base: Mapping[str, str], infra: Mapping[str, str], plans: Sequence[ServicePlan]
) -> dict[str, str]:
    """What every service process sees: ours, the infrastructure's, and each one's address.

    The infrastructure's addresses win over the caller's (they are what was just started);
    ALERTS_CLOCK defaults to event time so accelerated simulations raise lapse alerts.
    """
    env = dict(base)
    env.update(infra)
    for plan in plans:
        env[f"{plan.name.upper()}_HTTP_HOST"] = plan.host
        env[f"{plan.name.upper()}_HTTP_PORT"] = str(plan.port)
    env.setdefault("ALERTS_CLOCK", "event")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def platform_topics(env: Mapping[str, str], names: Sequence[str] = SERVICES) -> list[str]:
    """Every topic to create up front: the platform's and each service's dead-letter topic.

    The dead-letter topics exist before the first poison message, so a broker that refuses
    to auto-create topics (Apache Kafka as configured in compose) never loses one.
    """
    groups = [env.get(f"{name.upper()}_CONSUMER_GROUP", name) for name in names]
    return [*Topics.ALL, *(dead_letter_topic(group) for group in groups)]


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a log file ('' when there is none)."""
    if not path.is_file():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def missing_services(root: Path = ROOT, names: Sequence[str] = SERVICES) -> list[str]:
    """The services `make run` cannot start yet (no `__main__.py`), to say so, not hide it."""
    startable = set(runnable_services(root, names))
    return [name for name in names if name not in startable]


BROKER_NOTES = {
    "tansu": "The broker (Tansu) keeps topics in memory: they start empty after every restart.",
    "kafka": "The broker is Apache Kafka: topics and offsets persist under the var directory.",
}


def next_steps(
    services: Sequence[RunningService],
    state: InfraState,
    var_dir: Path,
    missing: Sequence[str] = (),
    default_var_dir: Path = ROOT / "var",
) -> str:
    """The start-up message: URLs, keys, and commands worth trying, in the order they work.

    The per-customer reads come after the simulation, since the customer they name exists
    only once it ran. A state directory other than the default is printed as an export:
    the CLI (and `make demo`) in another terminal finds this run through it.
    """
    lines = ["", "The loyalty platform is running.", ""]
    for service in services:
        if service.plan.name == "console":
            lines.append(f"  {'console':<8} {service.plan.url}   (sign in: paste the admin keys)")
            continue
        lines.append(f"  {service.plan.name:<8} {service.plan.url}   (API docs: /docs)")
        if service.admin_key:
            lines.append(f"           admin key: {service.admin_key}")
    for name in missing:
        lines.append(f"  {name:<8} not started: services/{name}/__main__.py does not exist")
    lines += ["", "Infrastructure (for tools in another terminal):"]
    if var_dir.resolve() != default_var_dir.resolve():
        lines.append(f"  export LOYALTY_VAR_DIR={var_dir}")
    lines += [f"  export {name}={value}" for name, value in state.environment().items()]
    lines += ["", "Try:"]
    lines += _examples(services, per_customer=False)
    lines += [
        "  make demo   # a simulated year of a coalition's purchases in about a minute",
        "  .venv/bin/loyalty tail loyalty.alerts   # lapse alerts as the simulated year passes",
        "  .venv/bin/loyalty invariants",
    ]
    customer_reads = _examples(services, per_customer=True)
    if customer_reads:
        lines += ["", f"Once the simulation has run, one of its customers ({SIMULATED_CUSTOMER}):"]
        lines += customer_reads
    lines += [
        "",
        f"URLs and keys are also in {var_dir / 'services.json'}; logs in {var_dir / 'logs'}.",
        BROKER_NOTES.get(state.broker, BROKER_NOTES["tansu"]),
        f"PostgreSQL data persists under {var_dir}/postgres. Press Ctrl-C to stop everything.",
    ]
    return "\n".join(lines)


def _examples(services: Sequence[RunningService], *, per_customer: bool) -> list[str]:
    """curl lines: readiness and one listing per service, or two reads about one customer."""
    lines = []
    for service in services:
        auth = f'-H "Authorization: Bearer {service.admin_key}" ' if service.admin_key else ""
        if per_customer:
            reads = [p for p in service.paths if "{customer_id}" in p][:2]
        else:
            lines.append(f"  curl -s {service.plan.url}/readyz")
            reads = [p for p in service.paths if "{" not in p][:1]
        for path in reads:
            concrete = path.replace("{customer_id}", SIMULATED_CUSTOMER)
            lines.append(f"  curl -s {auth}{service.plan.url}{concrete}")
    return lines


# -- processes ----------------------------------------------------------------------------


def start_service(plan: ServicePlan, env: Mapping[str, str]) -> RunningService:
    """`python -m services.<name>` in its own session, so only we decide when it stops."""
    plan.log.parent.mkdir(parents=True, exist_ok=True)
    with plan.log.open("ab") as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", f"services.{plan.name}"],
            cwd=ROOT,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return RunningService(plan, process)


def _get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def wait_ready(
    service: RunningService,
    timeout: float,
    fetch: Callable[[str], tuple[int, bytes]] = _get,
    clock: Callable[[], float] = time.monotonic,
    pause: Callable[[float], None] = time.sleep,
) -> None:
    """Poll `/readyz` until 200; InfraError if the process exits or time runs out."""
    deadline = clock() + timeout
    last = "no answer"
    while clock() < deadline:
        code = service.process.poll()
        if code is not None:
            raise InfraError(
                f"{service.plan.name} exited with code {code} while starting; "
                f"end of {service.plan.log}:\n{tail(service.plan.log)}"
            )
        status, body = fetch(f"{service.plan.url}/readyz")
        if status == 200:
            return
        last = f"HTTP {status}: {body[:300].decode(errors='replace')}" if status else last
        pause(0.2)
    raise InfraError(f"{service.plan.name} was not ready within {timeout:g}s ({last})")


def stop_services(services: Sequence[RunningService], timeout: float) -> None:
    """SIGTERM every running service, wait for all, SIGKILL what is left after `timeout`."""
    for service in services:
        if service.process.poll() is None:
            service.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for service in services:
        try:
            service.process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            print(f"{service.plan.name} did not stop within {timeout:g}s; killing it")
            service.process.kill()
            service.process.wait()


def _read_paths(service: RunningService) -> list[str]:
    status, body = _get(f"{service.plan.url}/openapi.json")
    if status != 200:
        return []
    paths = json.loads(body).get("paths", {})
    return [p for p, ops in paths.items() if "get" in ops and not p.endswith(("z", "metrics"))]


def console_plan(env: Mapping[str, str], var_dir: Path) -> ServicePlan:
    """The operations console: CONSOLE_HTTP_HOST/PORT, else 127.0.0.1:8000."""
    port = int(env.get("CONSOLE_HTTP_PORT", CONSOLE_PORT))
    host = env.get("CONSOLE_HTTP_HOST", "127.0.0.1")
    return ServicePlan("console", host, port, var_dir / "logs" / "console.log")


def start_console(
    plan: ServicePlan, env: Mapping[str, str], services: Sequence[RunningService]
) -> RunningService:
    """`python -m console`, pointed at the services just started (it reads only their APIs)."""
    console_env = dict(env)
    console_env.update({f"CONSOLE_{s.plan.name.upper()}_URL": s.plan.url for s in services})
    console_env.update(CONSOLE_HTTP_HOST=plan.host, CONSOLE_HTTP_PORT=str(plan.port))
    plan.log.parent.mkdir(parents=True, exist_ok=True)
    with plan.log.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "console"],
            cwd=ROOT,
            env=console_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return RunningService(plan, process)


# -- keys ---------------------------------------------------------------------------------


async def issue_local_admin_key(database_url: str) -> str:
    """A fresh admin key for this run; the previous runs' local keys are revoked."""
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            for key in await list_keys(conn, include_revoked=False):
                if key.name == LOCAL_KEY_NAME:
                    await revoke_key(conn, key.key_id)
            issued = await create_key(conn, LOCAL_KEY_NAME, [Scope.ADMIN])
    finally:
        await engine.dispose()
    return issued.plaintext


def write_services_file(path: Path, services: Sequence[RunningService]) -> None:
    """URLs and admin keys for tools (the CLI, tests); readable by the owner only."""
    document = {
        s.plan.name: {"url": s.plan.url, "admin_key": s.admin_key, "pid": s.process.pid}
        for s in services
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private(path, json.dumps(document, indent=2) + "\n")  # never briefly 0644


# -- the run ------------------------------------------------------------------------------


async def _prepare(state: InfraState, env: Mapping[str, str]) -> None:
    partitions = KafkaSettings().default_partitions
    await ensure_topics(state.bootstrap_servers, platform_topics(env), partitions)
    for service in SERVICES:
        await asyncio.to_thread(upgrade, service, state.database_url(service))
    print("PostgreSQL and the broker are up; topics exist; every database is migrated.")


async def _start_all(
    plans: Sequence[ServicePlan], env: Mapping[str, str], state: InfraState, ready_timeout: float
) -> list[RunningService]:
    started: list[RunningService] = []
    try:
        for plan in plans:
            print(f"starting {plan.name} on {plan.url} (log: {plan.log})")
            started.append(start_service(plan, env))
        for service in started:
            await asyncio.to_thread(wait_ready, service, ready_timeout)
            service.admin_key = await issue_local_admin_key(state.database_url(service.plan.name))
            service.paths = await asyncio.to_thread(_read_paths, service)
            print(f"{service.plan.name} is ready")
    except BaseException:
        stop_services(started, 10)
        raise
    return started


async def _start_console(
    env: Mapping[str, str],
    state: InfraState,
    var_dir: Path,
    plans: Sequence[ServicePlan],
    services: Sequence[RunningService],
    ready_timeout: float,
) -> RunningService:
    plan = console_plan(env, var_dir)
    print(f"starting the console on {plan.url} (log: {plan.log})")
    console = start_console(plan, child_environment(env, state.environment(), plans), services)
    try:
        await asyncio.to_thread(wait_ready, console, ready_timeout)
    except BaseException:
        stop_services([console], 10)
        raise
    print("console is ready")
    return console


async def _watch(services: Sequence[RunningService], stop: asyncio.Event) -> RunningService | None:
    """Wait for Ctrl-C/SIGTERM (None) or for a service to die (that service)."""
    while not stop.is_set():
        for service in services:
            if service.process.poll() is not None:
                return service
        try:
            await asyncio.wait_for(stop.wait(), 0.5)
        except TimeoutError:
            pass
    return None


async def _serve() -> int:
    env = dict(os.environ)
    infra = infra_from_environment()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        plans = plan_services(runnable_services(), env, infra.root)
        state = infra.up()
    except InfraError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        return await _run_services(infra.root, state, plans, env, stop)
    finally:
        print("stopping the infrastructure...")
        infra.down()
        print("stopped.")


async def _run_services(
    var_dir: Path,
    state: InfraState,
    plans: Sequence[ServicePlan],
    env: Mapping[str, str],
    stop: asyncio.Event,
) -> int:
    await _prepare(state, env)
    ready_timeout = float(env.get("LOYALTY_READY_TIMEOUT", "90"))
    stop_timeout = float(env.get("LOYALTY_STOP_TIMEOUT", "20"))
    try:
        services = await _start_all(
            plans, child_environment(env, state.environment(), plans), state, ready_timeout
        )
    except InfraError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not services:
        print("No service has a __main__.py yet: only the infrastructure runs.")
    try:
        services.append(await _start_console(env, state, var_dir, plans, services, ready_timeout))
    except InfraError as exc:
        print(f"error: {exc}", file=sys.stderr)
        stop_services(services, stop_timeout)
        return 1
    write_services_file(var_dir / "services.json", services)
    print(next_steps(services, state, var_dir, missing_services()), flush=True)
    died = await _watch(services, stop)
    if died is not None:
        print(
            f"error: {died.plan.name} exited with code {died.process.returncode}; "
            f"end of {died.plan.log}:\n{tail(died.plan.log)}",
            file=sys.stderr,
        )
    print("stopping the services...")
    stop_services(services, stop_timeout)
    return 1 if died is not None else 0


def main() -> int:
    return asyncio.run(_serve())


if __name__ == "__main__":
    sys.exit(main())
