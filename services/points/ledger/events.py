"""What every outgoing points event shares: the account snapshot, the envelope, the source.

Every id is derived from the cause (`derived_event_id`), so re-deriving an event from
the same cause gives the same id and downstream deduplication holds. Each concept's
`events.py` builds its own event types on `points_event`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from services.points.domain.balances import available_and_pending
from services.points.domain.book import Account
from services.points.domain.currency import CurrencyRates
from shared.contracts.envelope import EventEnvelope, derived_event_id
from shared.contracts.points import TierName

SOURCE = "points"
E = TypeVar("E", bound=EventEnvelope)


def snapshot(account: Account, as_of: datetime, first_purchase: bool = False) -> dict[str, Any]:
    """The account fields every points event carries."""
    available, pending = available_and_pending(account.lots, as_of, account.debt)
    return {
        "available": available,
        "pending": pending,
        "debt": account.debt,
        "lifetime_earned": account.lifetime_earned,
        "purchase_count": account.purchase_count,
        "first_purchase": first_purchase,
        "tier": TierName(account.tier.value),
    }


def points_event(
    model: type[E],
    event_type: str,
    cause: uuid.UUID | str,
    account: Account,
    at: datetime,
    data: dict[str, Any],
) -> E:
    """The event, validated against its contract in one pass.

    One `model_validate` of the whole document runs entirely in pydantic-core; building
    the data model first and handing the instance to the envelope model cost twice as
    much (the instance is checked again), and it runs once per purchase.
    """
    return model.model_validate(
        {
            "event_id": derived_event_id(cause, event_type),
            "type": event_type,
            "version": 1,
            "occurred_at": at,
            "source": SOURCE,
            "customer_id": account.customer_id,
            "data": data,
        }
    )


def programme_money(minor: int, programme: CurrencyRates) -> str:
    exponent = programme.exponent(programme.programme_currency)
    return str(Decimal(minor).scaleb(-exponent))
