"""The balance's lean path (`shared.http.lean`) takes only what the route would take (a
customer id the gate answers for is one `CustomerPath` accepts) and writes the bytes the
documented model (`BalanceOut`) would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from services.points.domain.balances import Balance, DatedPoints
from services.points.domain.currency import CurrencyRates
from services.points.domain.earning import EarningRuleSet
from services.points.domain.programme import ProgrammeRules
from services.points.domain.tiers import Tier, TierProgress
from services.points.ledger.schemas import (
    CustomerBody,
    balance_json,
    balance_out,
    is_customer_id,
)
from services.points.ledger.service import AccountView

_ROUTE = TypeAdapter(CustomerBody)  # the same length and pattern as `CustomerPath`
_NEAR = st.text(alphabet="Az09._:@-/ \n\t\x00é٣", min_size=0, max_size=70)


def _route_accepts(text: str) -> bool:
    try:
        _ROUTE.validate_python(text)
    except ValidationError:
        return False
    return True


@given(st.one_of(_NEAR, st.text(max_size=70)))
def test_the_lean_check_accepts_exactly_what_the_route_accepts(text: str) -> None:
    assert is_customer_id(text) == _route_accepts(text), repr(text)


def test_edges() -> None:
    assert is_customer_id("a") and is_customer_id("x" * 64) and is_customer_id("a.b:c@d-e_f")
    for refused in ("", "x" * 65, "a\n", "a b", "a/b", "é", "٣", "a\x00"):
        assert not is_customer_id(refused) and not _route_accepts(refused), repr(refused)


_MOMENTS = st.datetimes(
    min_value=datetime(1970, 1, 2),  # naive bounds: hypothesis adds the zone
    max_value=datetime(8999, 12, 31),
    timezones=st.one_of(
        st.just(UTC),
        st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m))),
        st.sampled_from([ZoneInfo("Europe/Paris"), ZoneInfo("America/St_Johns")]),
    ),
)
_POINTS = st.integers(-(2**62), 2**62)
_DATED = st.lists(st.builds(DatedPoints, _MOMENTS, _POINTS), max_size=4).map(tuple)


@st.composite
def _views(draw: st.DrawFn) -> tuple[AccountView, ProgrammeRules, datetime]:
    tier = draw(st.sampled_from(list(Tier)))
    view = AccountView(
        customer_id=draw(st.from_regex(r"[A-Za-z0-9._:@-]{1,64}", fullmatch=True)),
        balance=Balance(
            available=draw(_POINTS),
            pending=draw(_POINTS),
            pending_releases=draw(_DATED),
            expiring_soon=draw(_POINTS),
            expiring_dates=draw(_DATED),
            debt=draw(_POINTS),
        ),
        tier=tier,
        lifetime_earned=draw(_POINTS),
        purchase_count=draw(_POINTS),
        first_purchase_at=draw(st.none() | _MOMENTS),
        ledger_balance=draw(_POINTS),
        progress=TierProgress(
            next_tier=draw(st.none() | st.sampled_from(list(Tier))),
            purchases_needed=draw(_POINTS),
            spend_needed_minor=draw(st.integers(0, 10**18)),
        ),
    )
    currency = draw(st.sampled_from(["EUR", "JPY", "KWD", "USD"]))
    overrides = draw(st.one_of(st.just({}), st.integers(0, 6).map(lambda e: {currency: e})))
    rates = CurrencyRates(programme_currency=currency, exponent_overrides=overrides)
    return view, ProgrammeRules(earning=EarningRuleSet(currency_rates=rates)), draw(_MOMENTS)


@given(_views())
def test_the_balance_bytes_are_those_of_the_documented_model(
    case: tuple[AccountView, ProgrammeRules, datetime],
) -> None:
    view, rules, now = case
    assert (
        balance_json(view, rules, now) == balance_out(view, rules, now).model_dump_json().encode()
    )
