"""Fixtures: a real redis-server, and relay nodes on it, all stopped after the test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ..procs import Relay
from .harness import RedisServer, node

Cluster = Callable[..., Relay]  # cluster(*extra serve arguments) -> a node subscribed to Redis


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    yield server
    server.close()


@pytest.fixture
def cluster(redis_server: RedisServer) -> Iterator[Cluster]:
    made: list[Relay] = []

    def start(*extra: str) -> Relay:
        made.append(node(redis_server, *extra))
        return made[-1]

    yield start
    for relay in made:
        relay.close()
