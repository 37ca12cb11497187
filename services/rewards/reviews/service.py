"""Manual review: a person approves (pays now) or rejects a compensation held for review.

The merchant and customer locks are taken first, as every path that grants does, so a
decision and a claim or incident of the same customer never both slip under a cap. An
approval pays what the order record supports today: a return since the part was judged
lowers it, never raises it (`compensation.service.refund_on_record`).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from services.rewards.compensation.service import deliver, refund_on_record
from shared.auth import ApiPrincipal
from shared.errors import Conflict, NotFound

if TYPE_CHECKING:
    from services.rewards.uow import RewardsUnitOfWork


class CompensationNotFound(NotFound):
    code, title = "compensation_not_found", "No such compensation"


class AlreadyDecided(Conflict):
    code, title = "already_decided", "The compensation was already decided"


async def key_name(uow: RewardsUnitOfWork, principal: ApiPrincipal) -> str:
    """The name of the API key the caller authenticated with (its id if it has none)."""
    name = await uow.guarantee_claims.key_name(principal.key_id)
    return f"{name[:150]} ({principal.key_id})" if name else principal.key_id


async def decide_compensation(
    uow: RewardsUnitOfWork,
    compensation_id: uuid.UUID,
    approve: bool,
    actor: str,
    note: str | None = None,
) -> dict[str, Any]:
    """An admin approves (pays now) or rejects a compensation held for review; returns the
    compensation as decided.

    `actor` is who the caller authenticated as (the API key's name); `note` is the
    reviewer's own text, kept beside it and never taken as the decider.
    """
    found = await uow.compensations.parties_of(compensation_id)
    if found is None:
        raise CompensationNotFound(f"no compensation {compensation_id}")
    await uow.compensations.lock_parties([found.merchant_id], [found.customer_id])
    row = await uow.compensations.get(compensation_id, lock=True)
    if row.status != "in_review":
        raise AlreadyDecided(f"compensation {compensation_id} is already {row.status}")
    status = "granted" if approve else "rejected"
    decided = {"status": status, "decided_at": uow.now, "decided_by": f"admin:{actor}"}
    values = {**row._mapping, **decided, "decision_note": note}
    if approve:  # a return since the part was judged lowers it
        values["refund_minor"] = await refund_on_record(uow, row)
        await uow.compensations.lower_refund(row, values["refund_minor"])
    await uow.compensations.record_decision(compensation_id, decided, note)
    await uow.guarantee_claims.decide_waiting_on(
        compensation_id, status, uow.now, f"{status} by {actor}"
    )
    if approve:
        await deliver(uow, values, uow.now)
    return values
