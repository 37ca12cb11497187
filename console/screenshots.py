"""`python -m console.screenshots`: the README's pictures, taken from the running console.

Signs in with the admin keys `make run` wrote (var/services.json, or $LOYALTY_VAR_DIR), opens
each main page in headless chromium and saves it under docs/screenshots/. Run it after
`make run` and `make demo`, so the pages show the demo's data.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, sync_playwright

from console.browser import LAUNCH_ARGS, chromium_path
from tooling.cli_env import var_dir

SERVICES = ("points", "rewards", "alerts")
PAGES = {
    "overview": "/",
    "alerts": "/alerts",
    "reviews": "/reviews",
    "customer": "/customers/{customer}",
    "dead-letters": "/dead-letters?group=points",
    "programme": "/programme",
}


def sign_in(page: Page, base: str, name: str, keys: list[str]) -> None:
    page.goto(base + "/signin")
    page.fill("input[name=name]", name)
    page.fill("textarea[name=keys]", "\n".join(keys))
    page.click("button[type=submit]")
    page.wait_for_url(base + "/")


def take(base: str, keys: list[str], out: Path, customer: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    saved = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        sign_in(page, base, "Demo operator", keys)
        for name, path in PAGES.items():
            page.goto(base + path.format(customer=customer))
            target = out / f"{name}.png"
            page.screenshot(path=str(target), full_page=False)
            saved.append(target)
        browser.close()
    return saved


def _running() -> dict[str, Any]:
    path = var_dir() / "services.json"
    if not path.is_file():
        raise SystemExit(f"{path} not found: start `make run` (and `make demo`) first")
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", default="docs/screenshots")
    parser.add_argument("--customer", default="c-00090", help="whose page to show")
    args = parser.parse_args(argv)
    running = _running()
    keys = [running[s]["admin_key"] for s in SERVICES if running.get(s, {}).get("admin_key")]
    for saved in take(running["console"]["url"], keys, Path(args.out), args.customer):
        print(f"saved {saved}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
