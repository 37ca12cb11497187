"""The tooling issues keys with every service's scopes, exactly the ones it accepted when the
scopes were one list in the chassis."""

from __future__ import annotations

import pytest

from tooling.cli import build_parser
from tooling.scopes import SERVICE_SCOPES, register_service_scopes

BEFORE_THE_SERVICES_DECLARED_THEIR_OWN = {
    "points:read",
    "points:redeem",
    "rewards:read",
    "rewards:claim",
    "claims:file",
    "alerts:read",
    "admin",
}


def test_keys_can_be_issued_with_the_union_of_the_services_scopes() -> None:
    known = {scope.value for scope in register_service_scopes()}
    assert known >= BEFORE_THE_SERVICES_DECLARED_THEIR_OWN, (
        f"scopes a key could be issued with are gone: "
        f"{sorted(BEFORE_THE_SERVICES_DECLARED_THEIR_OWN - known)}"
    )
    declared = [scope for scopes in SERVICE_SCOPES.values() for scope in scopes]
    assert len(declared) == len(set(declared)), "two services declare the same scope"


@pytest.mark.parametrize("scope", sorted(BEFORE_THE_SERVICES_DECLARED_THEIR_OWN))
def test_the_key_command_accepts_every_services_scope(scope: str) -> None:
    args = build_parser().parse_args(
        ["keys", "create", "--service", "points", "--name", "n", "--scope", scope]
    )
    assert args.scopes == [scope]


def test_the_key_command_refuses_a_scope_no_service_declares(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as usage:
        build_parser().parse_args(
            ["keys", "create", "--service", "points", "--name", "n", "--scope", "points:write"]
        )
    assert usage.value.code == 2, "an unknown scope was not a usage error"
    assert "points:write" in capsys.readouterr().err, "the refusal does not name the scope"
