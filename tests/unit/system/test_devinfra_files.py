"""State files of the embedded stack hold the database password: owner-only from the
first byte, never written world-readable and narrowed afterwards."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tooling.devinfra import (
    EmbeddedInfra,
    InfraError,
    InfraState,
    broker_from_environment,
    write_private,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_private_file_is_created_0600_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        write_private(tmp_path / "secret", "x")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "secret") == 0o600


def test_an_older_wider_file_is_narrowed_before_it_is_written(tmp_path: Path) -> None:
    path = tmp_path / "env"
    path.write_text("old")
    path.chmod(0o644)
    write_private(path, "new")
    assert _mode(path) == 0o600
    assert path.read_text() == "new"


def test_the_env_and_state_files_are_owner_only(tmp_path: Path) -> None:
    infra = EmbeddedInfra(tmp_path / "var")
    infra._save(InfraState(1, 2, pg_password="pw"))
    assert _mode(infra.env_file) == 0o600
    assert _mode(infra.state_file) == 0o600
    assert "postgres:pw@" in infra.env_file.read_text()


def test_the_password_is_generated_once_and_kept_owner_only(tmp_path: Path) -> None:
    infra = EmbeddedInfra(tmp_path / "var")
    first = infra.pg_password()
    assert len(first) >= 24
    assert infra.pg_password() == first
    assert _mode(infra.password_file) == 0o600


def test_the_broker_is_chosen_by_name_and_a_typo_is_refused() -> None:
    assert broker_from_environment({}) == "tansu"
    assert broker_from_environment({"LOYALTY_BROKER": "Kafka"}) == "kafka"
    with pytest.raises(InfraError, match="tansu, kafka"):
        broker_from_environment({"LOYALTY_BROKER": "redpanda"})


def test_kafka_uses_a_controller_port_beside_the_broker_port(tmp_path: Path) -> None:
    infra = EmbeddedInfra(tmp_path, 15432, 19092, broker="kafka")
    assert infra.wanted.controller_port == 19093
    assert infra.wanted.environment()["LOYALTY_BROKER"] == "kafka"


def test_services_json_is_owner_only_from_its_first_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It holds admin keys: the mode is 0600 when the content is written, not after."""
    from tooling import run

    modes: list[int] = []
    real_write = os.write

    def watching_write(descriptor: int, data: bytes) -> int:
        modes.append(stat.S_IMODE(os.fstat(descriptor).st_mode))
        return real_write(descriptor, data)

    monkeypatch.setattr(os, "write", watching_write)
    old = os.umask(0)
    try:
        run.write_services_file(tmp_path / "services.json", [])
    finally:
        os.umask(old)
    assert modes and set(modes) == {0o600}
    assert _mode(tmp_path / "services.json") == 0o600
