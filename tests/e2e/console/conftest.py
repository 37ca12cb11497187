"""Headless chromium (Debian's, by its path) driving the console that `make run` started."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from console.browser import LAUNCH_ARGS, chromium_path
from tests.e2e.conftest import ROOT, System

SERVICES = ("points", "rewards", "alerts")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path(), args=LAUNCH_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    opened = context.new_page()
    opened.set_default_timeout(20_000)
    yield opened
    context.close()


def console_url(system: System) -> str:
    return system.urls["console"]


def sign_in(page: Page, system: System, name: str, keys: list[str]) -> None:
    page.goto(console_url(system) + "/signin")
    page.fill("input[name=name]", name)
    page.fill("textarea[name=keys]", "\n".join(keys))
    page.click("button[type=submit]")


def admin_keys(system: System) -> list[str]:
    return [system.keys[s] for s in SERVICES]


def merchant_key(system: System, service: str, scope: str, merchant: str) -> str:
    """A key bound to `merchant`, made with the operator CLI as an administrator would."""
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "tooling.cli",
            "keys",
            "create",
            "--service",
            service,
            "--name",
            f"console test {merchant}",
            "--scope",
            scope,
            "--merchant",
            merchant,
        ],
        cwd=ROOT,
        env=_env(system),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert made.returncode == 0, f"could not create a merchant key: {made.stderr}"
    return made.stdout.strip()


def _env(system: System) -> dict[str, str]:
    """The run's own state directory names its databases; no other stack's may leak in."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_DATABASE_URL")}
    return {**env, "LOYALTY_VAR_DIR": str(system.var_dir)}
