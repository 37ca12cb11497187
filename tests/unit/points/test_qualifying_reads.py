"""The balance read judges an order for tiers from its stored columns alone (no fake order):
it must reach exactly what the consumer reaches from the order it loaded, whatever came back."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from services.points.domain.book import StoredOrder
from services.points.domain.returns import (
    EarningLine,
    OrderEarning,
    ReturnedLine,
    apply_return,
    is_fully_returned,
)
from services.points.domain.tiers import qualifying_purchase

AT = datetime(2026, 2, 1, 12, tzinfo=UTC)
lines = st.lists(
    st.builds(
        EarningLine,
        st.sampled_from(["a", "b", "c"]),
        st.integers(1, 4),
        st.integers(0, 5_000),
    ),
    max_size=3,
    unique_by=lambda line: line.sku,
)


@given(
    lines=lines,
    extra=st.integers(0, 3_000),
    refunds=st.lists(st.integers(1, 9_000), max_size=3),
    named=st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(1, 5)), max_size=2),
    spend=st.integers(0, 20_000),
)
def test_the_read_judges_refunds_as_the_consumer_does(
    lines: list[EarningLine],
    extra: int,
    refunds: list[int],
    named: list[tuple[str, int]],
    spend: int,
) -> None:
    amount = sum(line.face_minor for line in lines) + extra
    earning = OrderEarning("o-1", 10, amount, lines=tuple(lines))
    items = tuple(ReturnedLine(sku, units) for sku, units in named)
    for refund in refunds:  # one return after another
        earning = apply_return(earning, refund, (), AT, 0, items).order
    stored = StoredOrder(
        earning, "kim", "grocer", uuid.uuid4(), AT, "EUR", spend, settles_at=AT + timedelta(14)
    )
    columns = (earning.amount_minor, earning.refunded_minor, earning.lines, earning.returned)
    read = qualifying_purchase(
        "o-1",
        AT,
        spend,
        earning.amount_minor,
        earning.refunded_minor,
        settles_at=AT + timedelta(14),
        fully_returned=is_fully_returned(*columns),
    )
    assert is_fully_returned(*columns) == earning.fully_returned
    assert read == stored.qualifying(), "the balance read and the consumer disagree on tiers"


@given(lines=lines, extra=st.integers(0, 3_000))
def test_an_order_nothing_was_refunded_on_is_never_fully_returned(
    lines: list[EarningLine], extra: int
) -> None:
    """What lets the balance read skip decoding the lines of an order without refunds."""
    amount = sum(line.face_minor for line in lines) + extra
    assert not is_fully_returned(amount, 0, tuple(lines), ())
