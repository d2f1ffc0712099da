"""Starting a worker while Redis is down: run() waits for it (bounded by
start_timeout_ms), a failed run() can be retried, and close() ends the wait."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Iterator

import pytest

from chasquimq import Job, Queue, RedisConnectionError, Worker

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "tools"))
from redisproc import RedisProcess, free_port


@pytest.fixture
def later() -> Iterator[RedisProcess]:
    """A redis-server on a fixed free port, not started yet."""
    server = RedisProcess(port=free_port())
    try:
        yield server
    finally:
        server.cleanup()


async def _one_job(server: RedisProcess, queue_name: str, seen: list[str]) -> None:
    async with Queue(queue_name, redis_url=server.url) as q:
        job = await q.add("after-start", {"n": 1})
    for _ in range(500):
        if job.id in seen:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"the worker did not run {job.id}; it ran {seen}")


async def test_a_failed_run_can_be_retried_once_redis_is_up(
    later: RedisProcess, queue_name: str
) -> None:
    seen: list[str] = []

    async def handler(job: Job) -> None:
        seen.append(job.id)

    w = Worker(queue_name, handler, redis_url=later.url, start_timeout_ms=0)
    with pytest.raises(RedisConnectionError):
        await asyncio.wait_for(w.run(), 15)
    assert not w.is_running and not w.is_closed
    # The first failure is not cached: a second run() tries again.
    with pytest.raises(RedisConnectionError):
        await asyncio.wait_for(w.run(), 15)
    later.start()
    task = asyncio.create_task(w.run())
    try:
        await _one_job(later, queue_name, seen)
        assert w.is_running
    finally:
        await w.close()
        await asyncio.wait_for(task, 15)
    assert not w.is_running


async def test_run_waits_for_redis_within_start_timeout(
    later: RedisProcess, queue_name: str
) -> None:
    seen: list[str] = []

    async def handler(job: Job) -> None:
        seen.append(job.id)

    w = Worker(queue_name, handler, redis_url=later.url)  # default: 30 s
    task = asyncio.create_task(w.run())
    try:
        await asyncio.sleep(1.0)
        assert not task.done(), "run() gave up while Redis was still down"
        later.start()
        await _one_job(later, queue_name, seen)
    finally:
        await w.close()
        await asyncio.wait_for(task, 15)


async def test_run_gives_up_at_start_timeout_with_a_clear_error(
    later: RedisProcess, queue_name: str
) -> None:
    w = Worker(queue_name, lambda job: None, redis_url=later.url, start_timeout_ms=1200)
    t0 = time.monotonic()
    with pytest.raises(RedisConnectionError) as info:
        await asyncio.wait_for(w.run(), 15)
    took = time.monotonic() - t0
    assert 1.1 <= took < 10, took
    msg = str(info.value)
    assert "start_timeout_ms" in msg and "attempts" in msg, msg
    assert f"127.0.0.1:{later.port}" in msg, msg
    await w.close()


async def test_close_ends_the_wait_for_redis(
    later: RedisProcess, queue_name: str
) -> None:
    w = Worker(queue_name, lambda job: None, redis_url=later.url)
    task = asyncio.create_task(w.run())
    await asyncio.sleep(0.5)
    assert not task.done()
    t0 = time.monotonic()
    await w.close()
    await asyncio.wait_for(task, 5)  # returns normally, like any run() after close()
    assert time.monotonic() - t0 < 3
    assert w.is_closed and not w.is_running
