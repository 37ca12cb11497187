"""`service.incident` from operations: judged as one batch."""

from __future__ import annotations

from collections.abc import Sequence

from services.rewards.incidents.service import apply_incidents
from services.rewards.uow import RewardsUnitOfWork
from shared.contracts.pos import ServiceIncident


async def incidents(uow: RewardsUnitOfWork, events: Sequence[ServiceIncident]) -> None:
    await apply_incidents(uow, events)
