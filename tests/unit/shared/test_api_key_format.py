"""API keys read `lk_<key_id>_<secret>`, are stored as a digest, and scopes follow `admin`."""

from __future__ import annotations

import pytest

from shared.auth import (
    ApiPrincipal,
    Scope,
    format_key,
    known_scopes,
    new_key,
    parse_key,
    parse_scopes,
    register_scopes,
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


# The chassis knows no service: these tests declare scopes of their own, as a service does in
# its scopes.py (names no service uses, since the registry is process-wide).
LIST = Scope("tests-widgets:list")
BUILD = Scope("tests-widgets:build")


def test_admin_implies_every_scope() -> None:
    admin = ApiPrincipal("k", frozenset({Scope.ADMIN}))
    every = [LIST, BUILD, Scope("tests-never-registered"), *known_scopes()]
    assert all(admin.allows(scope) for scope in every), "an admin key was refused a scope"


def test_a_scope_grants_only_itself() -> None:
    reader = ApiPrincipal("k", frozenset({LIST}))
    refused = [scope for scope in (BUILD, Scope.ADMIN) if reader.allows(scope)]
    assert reader.allows(LIST), "a tests-widgets:list key may not list widgets"
    assert refused == [], f"a tests-widgets:list key was also granted {refused}"


def test_a_merchant_bound_key_acts_only_for_its_merchant() -> None:
    bound = ApiPrincipal("k", frozenset({LIST}), merchant_id="m-1")
    assert bound.may_act_for("m-1"), "a key could not act for its own merchant"
    assert not bound.may_act_for("m-2"), "a key bound to m-1 acted for m-2"
    assert ApiPrincipal("k", frozenset()).may_act_for("m-2"), "an unbound key was tied to one"


def test_only_registered_scopes_parse_from_text_and_unknown_ones_are_refused() -> None:
    with pytest.raises(Unprocessable) as before:
        parse_scopes(["tests-gadgets:read"])
    assert before.value.code == "scope_unknown", "a scope no one registered was accepted"
    gadgets = register_scopes(Scope("tests-gadgets:read"))
    assert parse_scopes(["tests-gadgets:read", "admin"]) == {*gadgets, Scope.ADMIN}
    assert all(type(s) is Scope for s in parse_scopes(["tests-gadgets:read"])), "not Scope values"
    with pytest.raises(Unprocessable) as refused:
        parse_scopes(["tests-gadgets:read", "tests-gadgets:write"])
    assert refused.value.code == "scope_unknown"
    assert "tests-gadgets:write" in refused.value.detail, "the refusal does not name the scope"
    assert "allowed: " in refused.value.detail and "tests-gadgets:read" in refused.value.detail, (
        "the refusal does not say which scopes are allowed"
    )


def test_registering_twice_changes_nothing() -> None:
    register_scopes(LIST, BUILD)
    before = known_scopes()
    register_scopes(BUILD, Scope("tests-widgets:build"))
    assert known_scopes() == before, "registering a scope again changed the known scopes"
    assert known_scopes()[-1] == Scope.ADMIN, "admin is not listed last"


def test_a_scope_is_its_text_and_must_look_like_one() -> None:
    assert LIST == "tests-widgets:list" and LIST.value == "tests-widgets:list"
    assert str(LIST) == "tests-widgets:list" and type(LIST.value) is str
    assert f"{LIST}" == "tests-widgets:list", "a scope formats as something else than its text"
    for malformed in ("", "Points:Read", "points read", "points:read,admin", ":read", "a:b:c"):
        with pytest.raises(ValueError):
            Scope(malformed)
    with pytest.raises(TypeError):
        register_scopes("tests-widgets:paint")  # type: ignore[arg-type]
