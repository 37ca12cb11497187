"""What `make run` prints once it is up: every line a newcomer copies has to work as shown."""

from __future__ import annotations

from pathlib import Path

from tooling.devinfra import InfraState
from tooling.run import (
    SIMULATED_CUSTOMER,
    RunningService,
    ServicePlan,
    missing_services,
    next_steps,
)

STATE = InfraState(pg_port=15432, kafka_port=19092)


def _alerts(tmp_path: Path) -> RunningService:
    plan = ServicePlan("alerts", "127.0.0.1", 8003, tmp_path / "alerts.log")
    # No process: next_steps reads the plan, the key and the paths only.
    service = RunningService(plan, process=None, admin_key="lk_key")  # type: ignore[arg-type]
    service.paths = ["/v1/alerts", "/v1/customers/{customer_id}/activity"]
    return service


def test_customer_reads_are_offered_after_the_simulation_that_creates_the_customer(
    tmp_path: Path,
) -> None:
    lines = next_steps(
        [_alerts(tmp_path)], STATE, tmp_path / "var", default_var_dir=tmp_path / "var"
    ).splitlines()
    demo = next(i for i, line in enumerate(lines) if line.strip().startswith("make demo"))
    listing = next(i for i, line in enumerate(lines) if line.endswith("8003/v1/alerts"))
    customer = next(
        i for i, line in enumerate(lines) if f"/customers/{SIMULATED_CUSTOMER}/" in line
    )
    assert listing < demo < customer, "a customer read before the simulation answers 404"
    assert 'Bearer lk_key" http://127.0.0.1:8003/v1/customers/c-00001/activity' in lines[customer]


def test_a_private_state_directory_is_printed_for_the_second_terminal(tmp_path: Path) -> None:
    private = tmp_path / "elsewhere"
    text = next_steps([_alerts(tmp_path)], STATE, private, default_var_dir=tmp_path / "var")
    assert f"export LOYALTY_VAR_DIR={private}" in text
    assert "export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:19092" in text


def test_the_default_state_directory_needs_no_export(tmp_path: Path) -> None:
    text = next_steps(
        [_alerts(tmp_path)], STATE, tmp_path / "var", default_var_dir=tmp_path / "var"
    )
    assert "LOYALTY_VAR_DIR" not in text


def test_a_service_that_cannot_start_yet_is_named_not_hidden(tmp_path: Path) -> None:
    (tmp_path / "services" / "alerts").mkdir(parents=True)
    (tmp_path / "services" / "alerts" / "__main__.py").write_text("")
    missing = missing_services(tmp_path, ["points", "alerts"])
    assert missing == ["points"]
    text = next_steps([_alerts(tmp_path)], STATE, tmp_path / "var", missing)
    assert "points   not started: services/points/__main__.py does not exist" in text
