"""The relay's murmur2 picks the partitions Kafka's default partitioner picks: the same
hash as aiokafka's port of the Java client's, for every length of key (whole 4-byte words
and each size of tail)."""

from __future__ import annotations

from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.outbox import murmur2

# Known values of the Java client's Utils.murmur2 (its own unit test, UtilsTest).
JAVA = {b"21": -973932308, b"foobar": -790332482, b"a-little-bit-long-string": -985981536}


def test_the_java_clients_values() -> None:
    for key, signed in JAVA.items():
        assert murmur2(key) == signed & 0xFFFFFFFF, key


@settings(max_examples=500)
@given(st.binary(max_size=80))
def test_the_same_hash_as_aiokafka(key: bytes) -> None:
    assert murmur2(key) == aiokafka_murmur2(key)


def test_every_tail_length() -> None:
    for length in range(0, 40):
        key = bytes(range(200, 200 + length))  # bytes above 127: no sign slips in the tail
        assert murmur2(key) == aiokafka_murmur2(key), length
