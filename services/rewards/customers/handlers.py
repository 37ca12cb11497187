"""Every `loyalty.points` event: the projection first (which fires milestones and the
referral reward), then what the event means for a catalogue claim."""

from __future__ import annotations

from collections.abc import Sequence

from services.rewards.claims.service import apply_debit_answers, record_returned_redemptions
from services.rewards.customers.service import project
from services.rewards.milestones.service import on_projection_change
from services.rewards.uow import RewardsUnitOfWork
from shared.contracts.envelope import EventEnvelope

_SAGA_ANSWERS = ("points.debited", "points.debit_rejected", "points.debit_reversed")


async def points_events(uow: RewardsUnitOfWork, events: Sequence[EventEnvelope]) -> None:
    """A run of points events of one type, in order."""
    await project(uow, events, on_projection_change)
    if events[0].type in _SAGA_ANSWERS:
        await apply_debit_answers(uow, events)
    elif events[0].type == "points.redemption_cancelled":
        await record_returned_redemptions(uow, events)
