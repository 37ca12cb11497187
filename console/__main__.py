"""`python -m console`: the operations console on CONSOLE_HTTP_HOST:CONSOLE_HTTP_PORT."""

from __future__ import annotations

import uvicorn

from console.app import create_app
from console.settings import ConsoleSettings


def main() -> None:
    settings = ConsoleSettings()
    # Access logs name paths only; keys travel in a server-side session, never in a URL.
    uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port)


if __name__ == "__main__":
    main()
