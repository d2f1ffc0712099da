"""Fixtures: a real redis-server per test session, started on a free port."""

from __future__ import annotations

import itertools
import os
import re
import sys
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "tools"))
from redisproc import RedisProcess

_names = itertools.count()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisProcess]:
    server = RedisProcess().start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def redis_url(redis_server: RedisProcess) -> str:
    return redis_server.url


@pytest.fixture
def queue_name(request: pytest.FixtureRequest) -> str:
    """A queue name unique to the test, so tests never see each other's keys."""
    safe = re.sub(r"[^A-Za-z0-9_-]+", "_", request.node.name)[:40]
    return f"t{next(_names)}-{safe}"


@pytest.fixture
async def r(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A raw redis.asyncio client for asserting on Redis contents (bytes replies)."""
    client = aioredis.from_url(redis_url, decode_responses=False)
    try:
        yield client
    finally:
        await client.aclose()
