"""The balance's lean path (`shared.http.lean`) takes only what the route would take: a
customer id the gate answers for must be one `CustomerPath` accepts."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from services.points.ledger.schemas import CustomerBody, is_customer_id

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
