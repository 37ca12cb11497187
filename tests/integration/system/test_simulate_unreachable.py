"""`loyalty simulate` pointed at no broker: one message that says where it looked and why."""

from __future__ import annotations

import pytest

from tests.support.infra import free_port
from tooling.cli_env import CommandError
from tooling.cli_simulate import start_producer


async def test_an_unreachable_broker_is_named_with_how_to_point_at_the_right_one() -> None:
    nowhere = f"127.0.0.1:{free_port()}"  # bound then released: nothing listens there
    with pytest.raises(CommandError) as refused:
        await start_producer(nowhere)
    message = str(refused.value)
    assert nowhere in message
    assert "LOYALTY_VAR_DIR" in message and "--bootstrap-servers" in message
