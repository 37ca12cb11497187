"""The rewards service's own gauges, set by its periodic jobs from the books."""

from __future__ import annotations

import pytest

from services.rewards.jobs import due_jobs
from services.rewards.metrics import CLAIMS_IN_FLIGHT, REVIEWS_WAITING
from tests.integration.rewards.helpers import NOW, rewards_stack
from tests.integration.rewards.test_pagination import _claims, _held
from tests.support.infra import Infra

pytestmark = pytest.mark.integration


async def test_a_job_pass_sets_the_waiting_gauges_from_the_books(
    infra: Infra, rewards_db: str, unique: str
) -> None:
    async with rewards_stack(infra, rewards_db, unique) as stack:
        await _held(stack, 4)
        await _claims(stack, "ann", "m-bistro", 3)
        REVIEWS_WAITING.labels(subject="compensation").set(-1)
        jobs = due_jobs(stack.engine, stack.topics, lambda: NOW, 3600, 100)
        assert [job.name for job in jobs] == [
            "voucher-expiry",
            "escalation",
            "overdue-reviews",
            "claim-timeouts",
        ]
        await jobs[0].tick()
    assert REVIEWS_WAITING.labels(subject="compensation")._value.get() == 4
    assert REVIEWS_WAITING.labels(subject="claim")._value.get() == 3
    assert CLAIMS_IN_FLIGHT._value.get() == 0
