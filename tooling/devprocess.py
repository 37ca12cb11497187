"""Probes the development infrastructure (tooling.devinfra, tooling.devkafka) uses to tell
whether what it started is still there: a local port that answers, a live process."""

from __future__ import annotations

import os
import socket
from pathlib import Path


def port_answers(port: int) -> bool:
    """True when something accepts connections on 127.0.0.1:`port`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def process_alive(pid: int | None) -> bool:
    """True when `pid` names a running process (a zombie, dead but not reaped, is not)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and ") Z" in stat.read_text())
