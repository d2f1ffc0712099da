"""Outcomes that the writer cannot write yet hold the reader back, and a
refused flush is retried until it lands: never dropped, so no job runs
twice because of it.

The writer is stalled the way a real deployment stalls it: Redis refuses
every settle script (here, the DLQ key has a type no ChasquiMQ key has),
while reads keep working."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from helpers import fast_worker, key, pending, running, wait_until

from chasquimq import Job, Queue, UnrecoverableError

# Mirrors the engine's bound (engine/src/consumer.rs, `outbox_cap`): at
# most max(16 x concurrency, 256) settled outcomes wait for the writer.
CONCURRENCY = 2
CAP = max(16 * CONCURRENCY, 256)
JOBS = 1_000


async def test_reading_is_held_back_while_the_writer_is_stalled(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    runs: dict[str, int] = {}

    async def handler(job: Job) -> None:
        runs[job.id] = runs.get(job.id, 0) + 1
        raise UnrecoverableError("to the DLQ")

    dlq = key(queue_name, "dlq")
    await r.rpush(dlq, b"not a stream")
    async with Queue(queue_name, redis_url=redis_url) as q:
        jobs = await q.add_bulk([{"name": "j", "data": i} for i in range(JOBS)])
    worker = fast_worker(
        queue_name, handler, redis_url, concurrency=CONCURRENCY, claim_min_idle_ms=1_000
    )
    async with running(worker):
        await wait_until(lambda: len(runs) >= CAP, what="the outbox to fill")
        # Long enough for the old code to drop its flushes (five retries)
        # and for the claimer to take the dropped jobs back.
        await asyncio.sleep(3.0)
        ran = len(runs)
        # The reader stopped at the bound: at most one more read's worth
        # of jobs (concurrency) ran past it.
        assert CAP <= ran <= CAP + 2 * CONCURRENCY, ran
        assert await pending(r, queue_name) == ran
        assert max(runs.values()) == 1
        await r.delete(dlq)
        await wait_until(
            lambda: _at_least(r, dlq, JOBS), timeout=60, what="all jobs in the DLQ"
        )
    assert sorted(runs) == sorted(j.id for j in jobs)
    # Each job ran once: no flush was dropped and redelivered.
    assert set(runs.values()) == {1}
    assert await r.xlen(dlq) == JOBS
    assert await pending(r, queue_name) == 0


async def _at_least(r: aioredis.Redis, k: bytes, n: int) -> bool:
    return int(await r.xlen(k)) >= n
