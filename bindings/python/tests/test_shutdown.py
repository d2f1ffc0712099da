"""Graceful shutdown: in-flight handlers finish and are acked; past the
deadline they are cancelled and left pending for recovery."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis
from helpers import fast_worker, pending, running, stream_len, wait_until

from chasquimq import Job, Queue


async def test_close_lets_in_flight_handlers_finish(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    started: list[str] = []
    finished: dict[str, float] = {}
    cancelled: list[str] = []

    async def handler(job: Job) -> None:
        started.append(job.id)
        try:
            await asyncio.sleep(0.4)
        except asyncio.CancelledError:
            cancelled.append(job.id)
            raise
        finished[job.id] = time.monotonic()

    async with Queue(queue_name, redis_url=redis_url) as q:
        await q.add_bulk([{"name": "slow", "data": i} for i in range(5)])
    w = fast_worker(
        queue_name, handler, redis_url, concurrency=2, shutdown_timeout_ms=5_000
    )
    task = asyncio.ensure_future(w.run())
    await wait_until(lambda: len(started) == 2, what="two handlers in flight")
    await w.close()
    assert w.is_closed
    await asyncio.wait_for(task, 10)
    returned = time.monotonic()
    assert cancelled == []
    assert set(finished) == set(started) and len(finished) == 2
    assert all(t <= returned for t in finished.values())
    # The two completions were acked; the other three were never delivered.
    assert await pending(r, queue_name) == 0
    assert await stream_len(r, queue_name) == 3
    assert len(started) == 2


async def test_cancelling_run_shuts_down_gracefully(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    started = asyncio.Event()
    finished: list[str] = []

    async def handler(job: Job) -> None:
        started.set()
        await asyncio.sleep(0.3)
        finished.append(job.id)

    async with Queue(queue_name, redis_url=redis_url) as q:
        job = await q.add("x", 1)
    w = fast_worker(queue_name, handler, redis_url)
    task = asyncio.ensure_future(w.run())
    await asyncio.wait_for(started.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)
    assert w.is_closed and not w.is_running
    assert finished == [job.id]
    assert await pending(r, queue_name) == 0
    assert await stream_len(r, queue_name) == 0


async def test_shutdown_timeout_cancels_and_leaves_pending(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def stuck(job: Job) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async with Queue(queue_name, redis_url=redis_url) as q:
        job = await q.add("stuck", {"k": 1})
    w = fast_worker(queue_name, stuck, redis_url, shutdown_timeout_ms=300)
    task = asyncio.ensure_future(w.run())
    await asyncio.wait_for(started.wait(), 10)
    t0 = time.monotonic()
    await w.close()
    await asyncio.wait_for(task, 10)
    elapsed = time.monotonic() - t0
    assert cancelled.is_set()
    assert 0.3 - 0.01 <= elapsed < 5, elapsed
    # Abandoned: still in the stream and pending, not acked, not in the DLQ.
    assert await pending(r, queue_name) == 1
    assert await stream_len(r, queue_name) == 1
    assert await r.xlen(f"{{chasqui:{queue_name}}}:dlq") == 0

    # Another worker recovers and runs it.
    seen: list[Job] = []

    async def handler(j: Job) -> None:
        seen.append(j)

    async with running(
        fast_worker(queue_name, handler, redis_url, claim_min_idle_ms=500)
    ):
        await wait_until(lambda: seen, timeout=15, what="recovered run")
        await wait_until(lambda: _drained(r, queue_name), what="acked")
    assert [j.id for j in seen] == [job.id]
    assert seen[0].attempt == 2 and seen[0].data == {"k": 1}


async def _drained(r: aioredis.Redis, queue: str) -> bool:
    return await stream_len(r, queue) == 0 and await pending(r, queue) == 0
