"""`python -m services.points`: the points service on settings.http_host:http_port.

Uvicorn turns SIGTERM and SIGINT into a graceful shutdown, which runs the app's lifespan
exit: the consumer commits its batch in flight and leaves the group, the relay and the
jobs stop, the database engine is disposed.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import uvicorn
from pydantic import ValidationError

from services.points.app import build_app
from services.points.settings import PointsSettings

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def main() -> int:
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    try:
        settings = PointsSettings()  # the environment supplies the URL
    except ValidationError as error:
        print(f"points: bad or missing POINTS_* settings:\n{error}", file=sys.stderr)
        return 2
    if settings.http_workers > 1:
        # Each worker process builds its own app (and reads the same POINTS_* settings).
        uvicorn.run(
            "services.points.app:build_app",
            factory=True,
            workers=settings.http_workers,
            **_server_options(settings),
        )
        return 0
    config = uvicorn.Config(build_app(settings), **_server_options(settings))
    uvicorn.Server(config).run()
    return 0


def _server_options(settings: PointsSettings) -> dict[str, Any]:
    return {
        "host": settings.http_host,
        "port": settings.http_port,
        "lifespan": "on",
        "log_level": "info",
        "access_log": False,
    }


if __name__ == "__main__":
    sys.exit(main())
