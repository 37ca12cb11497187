"""Referrals: codes, self and circular referral blocked, both sides rewarded once."""

from __future__ import annotations

import pytest

from services.rewards.domain.errors import BlankIdentifierError, InvalidCodeError
from services.rewards.domain.grants import PointsGrant, VoucherGrant
from services.rewards.domain.keys import idempotency_key
from services.rewards.domain.referrals import (
    Referral,
    ReferralProgramme,
    ReferralRefusal,
    ReferralRole,
    new_referral_code,
    parse_referral_code,
    referral_refusal,
    rewards_for_first_purchase,
)

# alice referred bob, bob referred carol
CHAIN = {"bob": "alice", "carol": "bob"}
PROGRAMME = ReferralProgramme(PointsGrant(1_000), VoucherGrant("welcome-drink"))


def test_referral_code_is_short_and_checked() -> None:
    code = new_referral_code()
    assert len(code) == 8, "a referral code is short enough to read aloud"
    assert parse_referral_code(code.lower()) == code, "a code typed in lower case is accepted"
    typo = code[:-1] + ("2" if code[-1] != "2" else "3")
    with pytest.raises(InvalidCodeError):
        parse_referral_code(typo)


def test_a_new_customer_may_be_referred() -> None:
    assert referral_refusal("carol", "dave", CHAIN, referee_has_purchased=False) is None, (
        "carol bringing in dave, a new customer, is a valid referral"
    )


@pytest.mark.parametrize(
    ("referrer", "referee", "purchased", "refusal"),
    [
        ("dave", "dave", False, ReferralRefusal.SELF_REFERRAL),
        ("dave", "carol", False, ReferralRefusal.ALREADY_REFERRED),
        ("dave", "erin", True, ReferralRefusal.NOT_A_NEW_CUSTOMER),
        ("bob", "alice", False, ReferralRefusal.CIRCULAR_REFERRAL),
        ("carol", "alice", False, ReferralRefusal.CIRCULAR_REFERRAL),
    ],
)
def test_blocked_referrals(
    referrer: str, referee: str, purchased: bool, refusal: ReferralRefusal
) -> None:
    got = referral_refusal(referrer, referee, CHAIN, referee_has_purchased=purchased)
    assert got is refusal, f"{referrer} referring {referee} must be refused as {refusal}, got {got}"


def test_a_loop_already_in_the_data_does_not_hang_the_check() -> None:
    looped = {"x": "y", "y": "x"}
    assert referral_refusal("x", "new", looped, referee_has_purchased=False) is None, (
        "a corrupted chain must not make the check loop forever"
    )


def test_blank_ids_are_refused() -> None:
    with pytest.raises(BlankIdentifierError):
        referral_refusal("", "dave", CHAIN, referee_has_purchased=False)


def test_first_purchase_rewards_both_sides() -> None:
    rewards = rewards_for_first_purchase(Referral("carol", "dave"), PROGRAMME, "dave", True)
    got = {(r.customer_id, r.role, r.grant) for r in rewards}
    assert got == {
        ("carol", ReferralRole.REFERRER, PointsGrant(1_000)),
        ("dave", ReferralRole.REFEREE, VoucherGrant("welcome-drink")),
    }, f"both the referrer and the new customer must be rewarded: {got}"


def test_replayed_first_purchase_produces_the_same_keys() -> None:
    referral = Referral("carol", "dave")
    first = rewards_for_first_purchase(referral, PROGRAMME, "dave", True)
    replay = rewards_for_first_purchase(referral, PROGRAMME, "dave", True)
    keys = [r.idempotency_key for r in first]
    assert keys == [r.idempotency_key for r in replay], "a replay must not create new rewards"
    assert len(set(keys)) == 2, "the two sides need distinct keys"


@pytest.mark.parametrize(("buyer", "first"), [("dave", False), ("carol", True), ("zed", True)])
def test_no_reward_without_the_referred_customers_first_purchase(buyer: str, first: bool) -> None:
    assert rewards_for_first_purchase(Referral("carol", "dave"), PROGRAMME, buyer, first) == (), (
        f"a purchase by {buyer} (first={first}) must not trigger dave's referral reward"
    )


def test_idempotency_keys_cannot_collide_through_separators() -> None:
    assert idempotency_key("referral", "a:b", "c") != idempotency_key("referral", "a", "b:c"), (
        "ids containing ':' must not merge two customers' rewards"
    )
