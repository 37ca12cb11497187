"""An account whose stored lots are only summed (`Account.unloaded_lots`) gives the two
balance figures at the moment of the sums, and refuses whatever would need the lots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.points.domain.book import Account, Changes, LotTotals
from services.points.domain.lots import LotMovement, accrual_lot

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def _account() -> Account:
    new_lot = accrual_lot("lot-new", 40, NOW - timedelta(hours=1), "grocer", "order-9")
    return Account("ann", lots=(new_lot,), unloaded_lots=LotTotals(NOW, 120, 30))


def test_the_figures_add_the_new_lots_to_the_stored_totals() -> None:
    assert _account().available_and_pending(NOW) == (120, 30 + 40)


def test_the_figures_at_another_moment_are_refused_not_guessed() -> None:
    with pytest.raises(RuntimeError, match="summed at"):
        _account().available_and_pending(NOW + timedelta(days=20))


def test_no_balance_and_no_draw_without_the_lots() -> None:
    account = _account()
    with pytest.raises(RuntimeError, match="not loaded"):
        account.balance(NOW)
    with pytest.raises(RuntimeError, match="not loaded"):
        Changes().move_lots(account, LotMovement(lots=(), draws=()))
    assert len(account.lots) == 1, "a refused draw must leave the lots as they were"
