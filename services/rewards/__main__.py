"""python -m services.rewards: the rewards service on settings.http_host:http_port.

uvicorn handles SIGTERM/SIGINT; the lifespan then stops the consumer (its batch in
flight commits first), the jobs and the outbox relay.
"""

from __future__ import annotations

import logging

import uvicorn

from services.rewards.app import build_app
from services.rewards.settings import RewardsSettings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = RewardsSettings()
    uvicorn.run(build_app(settings), host=settings.http_host, port=settings.http_port)


if __name__ == "__main__":
    main()
