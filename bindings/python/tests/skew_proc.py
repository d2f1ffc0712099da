"""Subprocess entry for the clock-skew tests: runs under libfaketime.

python skew_proc.py produce URL QUEUE   # delayed add + repeatable upsert
python skew_proc.py work URL QUEUE N    # a worker; prints one line per job
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from chasquimq import Queue, RepeatPattern, Worker


async def produce(url: str, queue: str) -> None:
    async with Queue(queue, redis_url=url) as q:
        await q.add("w", None)  # connect first: the adds below are timed
        added_mono = (
            time.monotonic()
        )  # system-wide, not skewed: comparable across processes
        await q.add("later", {"k": 1}, delay_ms=400)
        await q.upsert_repeatable_job(
            "tick", {"k": 2}, repeat=RepeatPattern.every(500), limit=1
        )
    print(
        json.dumps(
            {"skewed_now_ms": int(time.time() * 1000), "added_mono": added_mono}
        ),
        flush=True,
    )


async def work(url: str, queue: str, n: int) -> None:
    seen = 0
    done = asyncio.Event()

    async def handler(job: object) -> None:
        nonlocal seen
        seen += 1
        print(json.dumps({"job": getattr(job, "name", "")}), flush=True)
        if seen >= n:
            done.set()

    async with Worker(queue, handler, redis_url=url, scheduler_tick_ms=100) as w:
        task = asyncio.create_task(w.run())
        await asyncio.wait_for(done.wait(), 20)
        await w.close()
        await task


if __name__ == "__main__":
    mode, url, queue = sys.argv[1:4]
    if mode == "produce":
        asyncio.run(produce(url, queue))
    else:
        asyncio.run(work(url, queue, int(sys.argv[4])))
