"""`python -m services.alerts`: the alerts service under uvicorn on ALERTS_HTTP_HOST:PORT.

SIGTERM or SIGINT: uvicorn stops accepting requests and runs the lifespan's shutdown, which
lets the consumer commit its batch and the relay publish what is queued.
"""

from __future__ import annotations

import logging

import uvicorn

from services.alerts.app import build_app
from services.alerts.settings import AlertsSettings


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = AlertsSettings()  # the database URL comes from the environment
    uvicorn.run(
        build_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        lifespan="on",
        log_config=None,
    )


if __name__ == "__main__":
    main()
