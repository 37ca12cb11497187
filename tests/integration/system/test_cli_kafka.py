"""The operator CLI against the real broker: publish, tail, dead-letter replay, invariants."""

from __future__ import annotations

import uuid
from pathlib import Path

import orjson
import pytest

from shared.contracts.topics import dead_letter_topic
from shared.kafka.admin import ensure_topics
from tests.support.counting import (
    applications,
    counting_registry,
    prepare,
    publish,
    purchase,
    wait_until,
)
from tests.support.dlq import headers, read_topic
from tests.support.infra import Infra, free_port
from tests.support.running import running_consumer
from tooling.cli import build_parser
from tooling.cli_env import CommandError
from tooling.cli_invariants import check_service

pytestmark = pytest.mark.integration


async def loyalty(*argv: str) -> int:
    """Run one `loyalty ...` command in this event loop (the same code the script runs)."""
    args = build_parser().parse_args(list(argv))
    return int(await args.run(args))


async def test_publish_validates_then_publishes_every_event_keyed_by_customer(
    infra: Infra, tmp_path: Path, unique: str
) -> None:
    topic = f"cli.pub.{unique}"
    await ensure_topics(infra.bootstrap_servers, [topic], partitions=2)
    bad = tmp_path / "bad.json"
    float_money = purchase("c-2")
    float_money["data"]["amount"] = 12.5
    bad.write_text(orjson.dumps([purchase("c-1"), float_money]).decode())
    with pytest.raises(CommandError, match=r"event 2: schema_violation(.|\n)*data\.amount"):
        await loyalty(
            "publish", str(bad), "--topic", topic, "--bootstrap-servers", infra.bootstrap_servers
        )
    good = tmp_path / "good.json"
    events = [purchase("c-1"), purchase("c-2", till="7")]
    good.write_text(orjson.dumps(events).decode())
    code = await loyalty(
        "publish", str(good), "--topic", topic, "--bootstrap-servers", infra.bootstrap_servers
    )
    assert code == 0
    records = await read_topic(infra.bootstrap_servers, topic, expected=2, timeout=20)
    assert len(records) == 2, "the refused file must have published nothing"
    by_key = {r.key: orjson.loads(r.value) for r in records}
    assert set(by_key) == {b"c-1", b"c-2"}, "the message key is the customer id"
    assert by_key[b"c-2"]["till"] == "7", "unknown fields are published as written"


async def test_a_dead_letter_is_tailed_readably_then_fixed_and_replayed_to_its_topic(
    infra: Infra, points_db: str, tmp_path: Path, unique: str, capsys: pytest.CaptureFixture[str]
) -> None:
    topic, group = f"cli.dlq.{unique}", f"g-cli-{unique}"
    dlq = dead_letter_topic(group)
    await ensure_topics(infra.bootstrap_servers, [topic, dlq], partitions=1)
    await prepare(points_db)
    valid = purchase("c-7", "12.50")
    poison = dict(valid, data=dict(valid["data"], amount=12.5))  # money as a float: never valid
    await publish(infra.bootstrap_servers, topic, [poison])
    broker = ("--bootstrap-servers", infra.bootstrap_servers)
    async with running_consumer(
        infra.bootstrap_servers, points_db, group, [topic], counting_registry()
    ):
        (letter,) = await read_topic(infra.bootstrap_servers, dlq, expected=1)
        assert headers(letter)["dlq.error.code"] == "schema_violation"

        capsys.readouterr()
        await loyalty("tail", dlq, "--from-beginning", "--max", "1", *broker)
        shown = capsys.readouterr().out
        assert f"{dlq}[0]@0 key=c-7 purchase.completed v1 customer=c-7" in shown
        assert f"dead-lettered by {group}: schema_violation: data.amount" in shown
        assert f"from {topic}[0]@0" in shown

        with pytest.raises(CommandError, match="fix it and pass the fixed event with --file"):
            await loyalty("dlq", "replay", "--group", group, "--offset", "0", *broker)

        fixed_file = tmp_path / "fixed.json"
        fixed_file.write_text(orjson.dumps(valid).decode())
        code = await loyalty(
            "dlq",
            "replay",
            "--group",
            group,
            "--event-id",
            poison["event_id"],
            "--file",
            str(fixed_file),
            *broker,
        )
        assert code == 0

        async def fixed_event_applied_once() -> object:
            counts = await applications(points_db)
            return counts == {uuid.UUID(poison["event_id"]): 1} or counts

        await wait_until(fixed_event_applied_once)
    replayed = await read_topic(infra.bootstrap_servers, topic, expected=2, timeout=20)
    assert orjson.loads(replayed[-1].value)["data"]["amount"] == "12.50"
    assert headers(replayed[-1])["replay.of"] == f"{dlq}[0]@0"


async def test_invariants_fall_back_to_the_direct_check_when_the_service_is_not_running(
    databases: object, points_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POINTS_URL", f"http://127.0.0.1:{free_port()}")
    result = await check_service("points", points_db, 2.0)
    assert result.sound is True, result.line()
    assert "services.points.invariants:invariant_violations (direct)" in result.how
    assert "0 out of balance" in result.detail
