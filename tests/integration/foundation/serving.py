"""A real service app served by uvicorn on a free port, for tests that need real HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI

from tests.support.infra import free_port


@asynccontextmanager
async def served(app: FastAPI) -> AsyncIterator[tuple[str, int]]:
    """Serve `app` (lifespan included) until the block ends; yields (host, port)."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    serving = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(30):
            while not server.started:
                assert not serving.done(), "the app did not start"
                await asyncio.sleep(0.02)
        yield "127.0.0.1", port
    finally:
        server.should_exit = True
        await serving


async def raw_exchange(
    host: str,
    port: int,
    head: bytes,
    chunks: Sequence[bytes] = (),
    patience: float = 10.0,
) -> tuple[int, dict[str, str], bytes]:
    """Send `head` then `chunks` on a socket and read the response the server gives back.

    Stops sending as soon as the server answers, so a test can tell that a response came
    before the rest of the body was ever sent.
    """
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(head)
        await writer.drain()
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
        async with asyncio.timeout(patience):
            status_line = await reader.readline()
            headers: dict[str, str] = {}
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            body = await reader.readexactly(length)
        return int(status_line.split()[1]), headers, body
    finally:
        writer.close()
