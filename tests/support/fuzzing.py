"""Schemathesis as its users run it (the `schemathesis run` command), every phase, against a
service served on a real port: no 5xx, and no status code or content type the service's
OpenAPI does not declare."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, TypedDict

from schemathesis import APIOperation, BaseSchema, Case
from schemathesis.core.result import Ok

PHASES = "examples,coverage,fuzzing,stateful"
CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "unsupported_method,allow_header_conformance"
)
# Schemathesis' operation and case are generic over parameter, response and schema types
# that it leaves open itself (its own signatures say `APIOperation` bare), hence the Anys.
Operation = APIOperation[Any, Any, Any, Any]
FuzzCase = Case[Operation]


def operations_of(schema: BaseSchema) -> list[Operation]:
    """Every operation of the OpenAPI; one schemathesis cannot read fails the test by name."""
    found: list[Operation] = []
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):
            raise AssertionError(f"the OpenAPI has an unreadable operation: {result.err()}")
        found.append(result.ok())
    return found


class FuzzLimits(TypedDict):
    """The rate-limit settings every service shares (shared.settings), typed so that
    `Settings(**FUZZ_LIMITS)` is checked field by field."""

    rate_read_per_second: float
    rate_read_burst: int
    rate_write_per_second: float
    rate_write_burst: int
    rate_admin_per_second: float
    rate_admin_burst: int
    rate_auth_failure_per_second: float
    rate_auth_failure_burst: int
    rate_anonymous_per_second: float
    rate_anonymous_burst: int
    unknown_code_limit: int


# Generous limits for the fuzzed app: the fuzzer is one key sending thousands of requests
# (and made-up voucher codes); the limits themselves are tested in tests/integration/foundation.
FUZZ_LIMITS = FuzzLimits(
    rate_read_per_second=100_000.0,
    rate_read_burst=100_000,
    rate_write_per_second=100_000.0,
    rate_write_burst=100_000,
    rate_admin_per_second=100_000.0,
    rate_admin_burst=100_000,
    rate_auth_failure_per_second=100_000.0,
    rate_auth_failure_burst=100_000,
    rate_anonymous_per_second=100_000.0,
    rate_anonymous_burst=100_000,
    unknown_code_limit=1_000_000,
)


def run_schemathesis(base_url: str, token: str, workdir: Path) -> tuple[int, str]:
    """Run every phase with the checks above; (exit code, report text).

    `FUZZ_MAX_EXAMPLES` (default 10 per operation) and `FUZZ_SEED` (default 1, so a
    failure reproduces) let a longer run search deeper, e.g. nightly.
    """
    max_examples = int(os.environ.get("FUZZ_MAX_EXAMPLES", "10"))
    seed = int(os.environ.get("FUZZ_SEED", "1"))
    extra_checks = os.environ.get("FUZZ_EXTRA_CHECKS", "")
    checks = ",".join(filter(None, [CHECKS, extra_checks]))
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{base_url}/openapi.json",
        f"--phases={PHASES}",
        f"--checks={checks}",
        f"--max-examples={max_examples}",
        f"--seed={seed}",
        "--workers=1",
        "--request-timeout=30",
        "--suppress-health-check=all",
        "--warnings=off",
        "--continue-on-failure",
        "--output-truncate=false",
        "-H",
        f"Authorization: Bearer {token}",
    ]
    env = {**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_HOOKS": ""}
    done = subprocess.run(
        command, cwd=workdir, env=env, capture_output=True, text=True, timeout=540, check=False
    )
    return done.returncode, done.stdout + done.stderr
