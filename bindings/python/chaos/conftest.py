"""Fixtures of the chaos suite (`nox -s chaos`): a real redis-server per
session, a unique queue per test, and one summary line per fault at the end
(`CHAOS <fault>: enqueued=... lost=... duplicated=... recovery_worst_s=...`)."""

from __future__ import annotations

import itertools
import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tools"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import SUMMARY, summary_line
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
    return f"chaos{next(_names)}-{request.node.name[:40]}"


@pytest.fixture
async def r(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_url, decode_responses=False)
    try:
        yield client
    finally:
        await client.aclose()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not SUMMARY:
        return
    terminalreporter.section("chaos summary (one run)")
    for row in SUMMARY:
        terminalreporter.write_line(summary_line(row))
    out = os.environ.get("CHAOS_SUMMARY_JSON")
    if out:
        Path(out).write_text(json.dumps(SUMMARY, indent=2) + "\n")
