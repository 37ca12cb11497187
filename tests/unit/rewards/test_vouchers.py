"""Voucher codes (unguessable, typo-proof) and the redeem check."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.rewards.domain.codes import (
    ALPHABET,
    check_character,
    display_code,
    entropy_bits,
    normalise_code,
)
from services.rewards.domain.errors import (
    InvalidCodeError,
    InvalidRuleError,
    NaiveDatetimeError,
    VoucherNotRedeemableError,
)
from services.rewards.domain.vouchers import (
    VOUCHER_PAYLOAD_LENGTH,
    RedemptionRefusal,
    Voucher,
    VoucherStatus,
    is_due_for_expiry,
    new_voucher_code,
    parse_voucher_code,
    redeem,
    redemption_refusal,
    voucher_status,
)

ISSUED = datetime(2025, 6, 1, 10, 0, tzinfo=UTC)
EXPIRES = ISSUED + timedelta(days=30)
BOUND = Voucher(
    code=new_voucher_code(),
    reward_code="fruit-plate",
    customer_id="c1",
    issued_at=ISSUED,
    expires_at=EXPIRES,
    merchant_id="hotel-restaurant",
)
codes = st.text(alphabet=ALPHABET, min_size=VOUCHER_PAYLOAD_LENGTH, max_size=VOUCHER_PAYLOAD_LENGTH)


def test_voucher_codes_carry_at_least_80_bits_and_avoid_ambiguous_characters() -> None:
    assert entropy_bits(VOUCHER_PAYLOAD_LENGTH) >= 80, "a voucher code must resist guessing"
    assert not set("01OIL") & set(ALPHABET), "0/O and 1/I/L are misread on receipts"
    code = new_voucher_code()
    assert len(code) == VOUCHER_PAYLOAD_LENGTH + 1 and set(code) <= set(ALPHABET)
    assert parse_voucher_code(code) == code, "a freshly issued code must pass its own check"


def test_codes_are_not_repeated() -> None:
    drawn = {new_voucher_code() for _ in range(2_000)}
    assert len(drawn) == 2_000, "two vouchers must never share a code"


def test_every_character_of_a_code_is_drawn_from_the_whole_alphabet() -> None:
    """One random number per code, written in base 31: every position must still take
    every character (a wrong conversion would leave some unreachable)."""
    drawn = [new_voucher_code() for _ in range(3_000)]
    for position in range(VOUCHER_PAYLOAD_LENGTH):
        seen = {code[position] for code in drawn}
        assert seen == set(ALPHABET), f"position {position} never drew {set(ALPHABET) - seen}"


def test_codes_come_from_the_given_chooser() -> None:
    seeded = random.Random(7)
    first = new_voucher_code(seeded.choice)
    again = new_voucher_code(random.Random(7).choice)
    assert first == again, "tests can make codes reproducible by passing a chooser"


def test_typed_codes_are_normalised() -> None:
    code = new_voucher_code()
    typed = display_code(code).lower().replace("-", " - ")
    assert parse_voucher_code(typed) == code, "lower case, spaces and hyphens are accepted"
    assert normalise_code("ab-cd ef") == "ABCDEF"


@given(codes, st.integers(min_value=0, max_value=VOUCHER_PAYLOAD_LENGTH), st.data())
def test_any_single_mistyped_character_is_caught(
    payload: str, at: int, data: st.DataObject
) -> None:
    code = payload + check_character(payload)
    wrong = data.draw(st.sampled_from([c for c in ALPHABET if c != code[at]]))
    typo = code[:at] + wrong + code[at + 1 :]
    with pytest.raises(InvalidCodeError):
        parse_voucher_code(typo)


@given(codes, st.integers(min_value=0, max_value=VOUCHER_PAYLOAD_LENGTH - 1))
def test_any_swap_of_neighbours_is_caught(payload: str, at: int) -> None:
    code = payload + check_character(payload)
    if code[at] == code[at + 1]:
        return  # swapping equal characters changes nothing
    swapped = code[:at] + code[at + 1] + code[at] + code[at + 2 :]
    with pytest.raises(InvalidCodeError):
        parse_voucher_code(swapped)


@pytest.mark.parametrize("text", ["", "ABC", "0" * 18, "A" * 19])
def test_malformed_codes_are_refused(text: str) -> None:
    with pytest.raises(InvalidCodeError):
        parse_voucher_code(text)


def test_status_over_time() -> None:
    assert voucher_status(BOUND, ISSUED) is VoucherStatus.ACTIVE, "fresh vouchers are active"
    assert voucher_status(BOUND, EXPIRES - timedelta(seconds=1)) is VoucherStatus.ACTIVE
    assert voucher_status(BOUND, EXPIRES) is VoucherStatus.EXPIRED, "expiry is at expires_at"
    used = redeem(BOUND, "hotel-restaurant", ISSUED + timedelta(days=1))
    assert voucher_status(used, EXPIRES + timedelta(days=1)) is VoucherStatus.REDEEMED, (
        "a redeemed voucher stays redeemed after its expiry date"
    )


def test_redeem_at_the_bound_merchant() -> None:
    at = ISSUED + timedelta(days=1)
    used = redeem(BOUND, "hotel-restaurant", at)
    assert (used.redeemed_at, used.redeemed_by) == (at, "hotel-restaurant"), (
        "the redemption must record when and where"
    )


@pytest.mark.parametrize(
    ("voucher", "merchant", "now", "refusal"),
    [
        (BOUND, "other-shop", ISSUED + timedelta(days=1), RedemptionRefusal.WRONG_MERCHANT),
        (BOUND, "hotel-restaurant", EXPIRES, RedemptionRefusal.EXPIRED),
        (BOUND, "hotel-restaurant", ISSUED - timedelta(minutes=1), RedemptionRefusal.NOT_YET_VALID),
        (
            replace(BOUND, redeemed_at=ISSUED + timedelta(hours=1), redeemed_by="hotel-restaurant"),
            "hotel-restaurant",
            ISSUED + timedelta(hours=2),
            RedemptionRefusal.ALREADY_REDEEMED,
        ),
    ],
)
def test_redemption_refusals(
    voucher: Voucher, merchant: str, now: datetime, refusal: RedemptionRefusal
) -> None:
    assert redemption_refusal(voucher, merchant, now) is refusal, f"expected {refusal}"
    with pytest.raises(VoucherNotRedeemableError) as raised:
        redeem(voucher, merchant, now)
    assert raised.value.reason == refusal.value, "the error must carry the machine reason"


def test_unbound_voucher_is_redeemable_at_any_merchant() -> None:
    anywhere = replace(BOUND, merchant_id=None)
    assert redemption_refusal(anywhere, "any-partner", ISSUED + timedelta(days=2)) is None, (
        "a coalition voucher not bound to a merchant is good at every partner"
    )


def test_due_for_expiry_only_when_unredeemed_and_past_expiry() -> None:
    assert not is_due_for_expiry(BOUND, EXPIRES - timedelta(seconds=1))
    assert is_due_for_expiry(BOUND, EXPIRES), "an unused voucher past expiry must expire"
    used = redeem(BOUND, "hotel-restaurant", ISSUED + timedelta(days=1))
    assert not is_due_for_expiry(used, EXPIRES + timedelta(days=1)), (
        "a redeemed voucher must never be reported as expired"
    )


def test_inconsistent_or_naive_vouchers_are_refused() -> None:
    with pytest.raises(InvalidRuleError):
        replace(BOUND, expires_at=ISSUED)
    with pytest.raises(NaiveDatetimeError):
        replace(BOUND, issued_at=datetime(2025, 6, 1))
    with pytest.raises(NaiveDatetimeError):
        redemption_refusal(BOUND, "hotel-restaurant", datetime(2025, 6, 2))
