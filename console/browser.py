"""Debian's chromium for Playwright: the browser tests and the screenshots drive it by its
path (never `playwright install`, which downloads a browser build)."""

from __future__ import annotations

import os
import shutil

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def chromium_path() -> str:
    """$CHROMIUM, else the first browser on PATH; RuntimeError saying how to get one."""
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return explicit
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError(
        "no chromium found: install it (Debian: apt-get install -y chromium) or set CHROMIUM"
    )


LAUNCH_ARGS = ["--no-sandbox", "--disable-dev-shm-usage"]  # root in CI containers
