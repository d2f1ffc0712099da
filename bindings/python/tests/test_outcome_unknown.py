"""An add whose reply never comes (Redis frozen) says that its outcome is
unknown, with a class users can catch, and points at job_id; the write may
still land, and a retry with the same job_id never enqueues twice."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator

import msgpack
import pytest
import redis.asyncio as aioredis

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "tools"))
from helpers import key, wait_until
from redisproc import RedisProcess

from chasquimq import (
    InvalidArgumentError,
    OperationTimeoutError,
    OutcomeUnknownError,
    Queue,
)


@pytest.fixture
def own_server() -> Iterator[RedisProcess]:
    server = RedisProcess().start()
    try:
        yield server
    finally:
        if server.proc is not None:
            os.kill(server.proc.pid, signal.SIGCONT)
        server.cleanup()


def _freeze(server: RedisProcess) -> None:
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGSTOP)


def _thaw(server: RedisProcess) -> None:
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGCONT)


async def _ids(r: aioredis.Redis, queue: str) -> list[str]:
    return [
        msgpack.unpackb(f[b"d"], raw=False)[0]
        for _, f in await r.xrange(key(queue, "stream"))
    ]


async def test_a_frozen_redis_makes_the_add_outcome_unknown(
    own_server: RedisProcess,
) -> None:
    r = aioredis.from_url(own_server.url)
    async with Queue("frozen", redis_url=own_server.url, command_timeout_ms=300) as q:
        await q.add("warm", 0)  # connected before the freeze
        _freeze(own_server)
        try:
            with pytest.raises(OutcomeUnknownError) as info:
                await q.add("job", 1)
        finally:
            _thaw(own_server)
        e = info.value
        # Caught by the handlers code written for timeouts already has.
        assert isinstance(e, OperationTimeoutError)
        assert isinstance(e, TimeoutError) and isinstance(e, ConnectionError)
        assert e.code == "outcome_unknown"
        text = str(e)
        assert "may or may not have been added" in text, text
        assert "job_id" in text and "command_timeout_ms (300 ms)" in text, text

        # The write was only delayed: it lands once Redis resumes, which is
        # why a blind retry would enqueue the job twice.
        async def landed() -> bool:
            return len(await _ids(r, "frozen")) == 2

        await wait_until(landed, timeout=10, what="the delayed write")

        # With a job_id, the retry is safe.
        _freeze(own_server)
        try:
            with pytest.raises(OutcomeUnknownError) as info:
                await q.add_unique("job", 2, job_id="order-1")
        finally:
            _thaw(own_server)
        assert "retrying with the same job_id is safe" in str(info.value)
        again = await q.add_unique("job", 2, job_id="order-1")
        assert again.id == "order-1"
    ids = await _ids(r, "frozen")
    await r.aclose()
    assert ids.count("order-1") == 1, ids


async def test_add_bulk_reports_an_unknown_outcome_for_the_whole_bulk(
    own_server: RedisProcess,
) -> None:
    async with Queue(
        "frozenbulk", redis_url=own_server.url, command_timeout_ms=300
    ) as q:
        await q.add("warm", 0)
        _freeze(own_server)
        try:
            with pytest.raises(OutcomeUnknownError) as info:
                await q.add_bulk([{"name": "b", "data": i} for i in range(3)])
        finally:
            _thaw(own_server)
    assert "the 3 jobs may or may not have been added" in str(info.value)
    assert "enqueue them twice" in str(info.value)


@pytest.mark.parametrize("bad", [0, -1])
def test_command_timeout_ms_must_be_positive(bad: int) -> None:
    with pytest.raises(InvalidArgumentError, match="command_timeout_ms"):
        Queue("q", command_timeout_ms=bad)
