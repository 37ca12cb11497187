"""API keys read `lk_<key_id>_<secret>`, are stored as a digest, and scopes follow `admin`."""

from __future__ import annotations

import pytest

from shared.auth import (
    ApiPrincipal,
    Scope,
    format_key,
    new_key,
    parse_key,
    parse_scopes,
    secret_digest,
)
from shared.errors import Unprocessable


def test_a_new_key_reads_back_as_its_own_id_and_secret() -> None:
    key, plaintext = new_key()
    assert plaintext.startswith("lk_"), "keys must carry the lk_ prefix so scanners can spot them"
    assert parse_key(plaintext) == key, "a freshly issued key must parse back to its id and secret"


def test_a_secret_containing_underscores_still_splits_at_the_key_id() -> None:
    secret = "ab_cd-ef_" * 5
    parsed = parse_key(format_key("0123456789abcdef", secret))
    assert parsed is not None and parsed.secret == secret, "the secret was cut at an underscore"
    assert parsed.key_id == "0123456789abcdef"


def test_surrounding_whitespace_is_tolerated() -> None:
    _, plaintext = new_key()
    assert parse_key(f"  {plaintext}\n") is not None, "a pasted key with a newline was refused"


@pytest.mark.parametrize(
    "token",
    [
        "",
        "lk_",
        "xx_0123456789abcdef_" + "s" * 43,  # wrong prefix
        "lk_0123456789ABCDEF_" + "s" * 43,  # key ids are lower-case hex
        "lk_0123456789abcde_" + "s" * 43,  # key id too short
        "lk_0123456789abcdefg_" + "s" * 43,  # key id too long
        "lk_0123456789abcdef_short",  # secret too short to be one we issued
        "lk_0123456789abcdef",  # no secret at all
    ],
)
def test_text_that_cannot_be_one_of_our_keys_is_refused(token: str) -> None:
    assert parse_key(token) is None, f"{token!r} was accepted as an API key"


def test_two_new_keys_never_share_an_id_or_a_secret() -> None:
    keys = [new_key()[0] for _ in range(200)]
    assert len({k.key_id for k in keys}) == 200, "two keys got the same id"
    assert len({k.secret for k in keys}) == 200, "two keys got the same secret"


def test_the_stored_digest_is_bound_to_the_key_id() -> None:
    digest = secret_digest("0123456789abcdef", "secret")
    assert digest == secret_digest("0123456789abcdef", "secret"), "the digest is not stable"
    assert digest != secret_digest("fedcba9876543210", "secret"), (
        "one secret hashed the same under two key ids: digests could be swapped between keys"
    )
    assert b"secret" not in digest


def test_admin_implies_every_scope() -> None:
    admin = ApiPrincipal("k", frozenset({Scope.ADMIN}))
    assert all(admin.allows(scope) for scope in Scope), "an admin key was refused a scope"


def test_a_scope_grants_only_itself() -> None:
    reader = ApiPrincipal("k", frozenset({Scope.POINTS_READ}))
    refused = [scope for scope in Scope if scope is not Scope.POINTS_READ and reader.allows(scope)]
    assert reader.allows(Scope.POINTS_READ), "a points:read key may not read points"
    assert refused == [], f"a points:read key was also granted {refused}"


def test_a_merchant_bound_key_acts_only_for_its_merchant() -> None:
    bound = ApiPrincipal("k", frozenset({Scope.POINTS_READ}), merchant_id="m-1")
    assert bound.may_act_for("m-1"), "a key could not act for its own merchant"
    assert not bound.may_act_for("m-2"), "a key bound to m-1 acted for m-2"
    assert ApiPrincipal("k", frozenset()).may_act_for("m-2"), "an unbound key was tied to one"


def test_scopes_parse_from_text_and_unknown_ones_are_refused() -> None:
    assert parse_scopes(["points:read", "admin"]) == {Scope.POINTS_READ, Scope.ADMIN}
    with pytest.raises(Unprocessable) as refused:
        parse_scopes(["points:read", "points:write"])
    assert refused.value.code == "scope_unknown"
    assert "points:write" in refused.value.detail, "the refusal does not name the unknown scope"
