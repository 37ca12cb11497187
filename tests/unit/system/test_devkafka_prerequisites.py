"""Without `java` or `mvn`, LOYALTY_BROKER=kafka stops with an error naming what is
missing and how to get it, instead of a traceback from subprocess."""

from __future__ import annotations

import string
from pathlib import Path

import pytest

from tooling.devkafka import KafkaCluster, KafkaSetupError, NodeSpec, new_cluster_id, resolve_jars


def test_no_mvn_and_no_cached_jars_names_maven(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(KafkaSetupError, match=r"`mvn`.*apt-get install maven"):
        resolve_jars(cache=tmp_path / "cache")


def test_cached_jars_need_no_maven(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    descriptor = tmp_path / "pom.xml"
    descriptor.write_text("<project/>")
    import hashlib

    digest = hashlib.sha256(descriptor.read_bytes()).hexdigest()[:16]
    libs = tmp_path / "cache" / digest / "libs"
    libs.mkdir(parents=True)
    (libs / ".complete").write_text(digest)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert resolve_jars(descriptor, tmp_path / "cache") == libs


def test_no_java_names_the_jdk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = KafkaCluster(tmp_path, [NodeSpec(1, 1, 2)])
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(KafkaSetupError, match=r"`java`.*openjdk"):
        cluster.nodes[0].format(tmp_path, new_cluster_id())


def test_a_cluster_id_is_22_url_safe_characters() -> None:
    cluster_id = new_cluster_id()
    assert len(cluster_id) == 22
    assert set(cluster_id) <= set(string.ascii_letters + string.digits + "-_")


def test_a_cluster_id_never_starts_with_a_dash() -> None:
    """One in 64 random ids did: the storage tool took it for an option and refused."""
    assert not any(new_cluster_id().startswith("-") for _ in range(2_000))
