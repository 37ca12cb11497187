"""The balance driver's keep-alive client parses each response where its bytes arrive."""

from __future__ import annotations

import asyncio

import pytest

from bench.points import KeepAliveConnection, _content_length

RESPONSE = b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 7\r\n\r\n"


def test_content_length_is_found_in_any_case_and_position() -> None:
    assert _content_length(RESPONSE[:-4]) == 7
    assert _content_length(b"HTTP/1.1 200 OK\r\nContent-Length: 12") == 12
    with pytest.raises(ValueError, match="without Content-Length"):
        _content_length(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked")


async def test_a_response_split_anywhere_completes_once_its_body_is_in() -> None:
    connection = KeepAliveConnection(b" HTTP/1.1\r\n\r\n")
    stream = RESPONSE + b'{"a":1}' + RESPONSE.replace(b"404 Not Found", b"200 OK") + b"1234567"
    results = []
    for first_cut in (3, len(RESPONSE) - 2, len(RESPONSE) + 3):
        connection.waiter = asyncio.get_running_loop().create_future()
        connection.data_received(stream[:first_cut])
        assert not connection.waiter.done(), "a response is not complete before its body"
        connection.data_received(stream[first_cut : len(RESPONSE) + 7])
        results.append(await connection.waiter)
        connection.waiter = asyncio.get_running_loop().create_future()
        connection.data_received(stream[len(RESPONSE) + 7 :])
        results.append(await connection.waiter)
        assert not connection.buffer, "every byte of both responses was consumed"
    assert results == [404, 200] * 3
