"""Add jobs, run a worker, see each job once with the data it was given."""

from __future__ import annotations

import asyncio

from chasquimq import Job, Queue, Worker


async def test_add_and_process_round_trip(redis_url: str, queue_name: str) -> None:
    seen: list[Job] = []
    done = asyncio.Event()

    async def handler(job: Job) -> None:
        seen.append(job)
        if len(seen) == 3:
            done.set()

    async with Queue(queue_name, redis_url=redis_url) as q:
        a = await q.add("send", {"to": "a@x", "n": 1})
        bulk = await q.add_bulk(
            [{"name": "", "data": [1, 2]}, {"name": "b", "data": None}]
        )
    assert a.attempt == 0 and len(a.id) == 26
    async with Worker(queue_name, handler, redis_url=redis_url) as w:
        task = asyncio.create_task(w.run())
        await asyncio.wait_for(done.wait(), 10)
        await w.close()
        await task
    by_id = {j.id: j for j in seen}
    assert by_id[a.id].data == {"to": "a@x", "n": 1}
    assert by_id[a.id].name == "send" and by_id[a.id].attempt == 1
    assert by_id[bulk[0].id].data == [1, 2] and by_id[bulk[0].id].name == ""
    assert by_id[bulk[1].id].data is None and by_id[bulk[1].id].name == "b"
