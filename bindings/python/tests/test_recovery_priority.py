"""Jobs a dead worker left pending get slots before the backlog: once they
are claimable, the claimer takes the slots handlers free (the reader waits
meanwhile) and claims again at once while more are claimable. They used to
trickle in one freed slot per claim pass, the last only when the backlog
emptied."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from helpers import fast_worker, key, running, wait_until

from chasquimq import Job, Queue

DEAD = 50
BACKLOG = 3_000
CONCURRENCY = 10


async def test_a_dead_workers_jobs_run_before_the_backlog(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    stream = key(queue_name, "stream")
    async with Queue(queue_name, redis_url=redis_url) as q:
        dead = await q.add_bulk([{"name": "dead", "data": i} for i in range(DEAD)])
        # Read by a consumer that then died: pending, never acked.
        await r.xgroup_create(stream, "default", id="0", mkstream=True)
        got = await r.xreadgroup("default", "dead", {stream: ">"}, count=DEAD)
        assert len(got[0][1]) == DEAD
        await q.add_bulk([{"name": "backlog", "data": i} for i in range(BACKLOG)])
    dead_ids = {j.id for j in dead}
    order: list[str] = []

    async def handler(job: Job) -> None:
        # A handler that really waits (a database, a web API).
        await asyncio.sleep(0.01)
        order.append(job.name)

    ran_dead: set[str] = set()

    async def handler_ids(job: Job) -> None:
        if job.id in dead_ids:
            ran_dead.add(job.id)
        await handler(job)

    worker = fast_worker(
        queue_name,
        handler_ids,
        redis_url,
        concurrency=CONCURRENCY,
        claim_min_idle_ms=1_500,
    )
    async with running(worker):
        await wait_until(
            lambda: len(ran_dead) == DEAD, timeout=60, what="the dead worker's jobs"
        )
        backlog_done = order.count("backlog")
    # 3,000 jobs of 10 ms under concurrency 10 take about 3 s; the dead
    # worker's 50 became claimable after 1.5 s. Taken in priority, all 50
    # ran while most of the backlog still waited; trickling, the last ones
    # ran only when the backlog had emptied.
    assert backlog_done < BACKLOG * 0.8, backlog_done
    assert order.count("dead") == DEAD
