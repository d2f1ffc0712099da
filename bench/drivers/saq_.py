"""saq (Redis queue): Queue.enqueue / Worker(concurrency). No bulk API (its
`map` is concurrent enqueues that also wait for results); every job's
record and result are kept (ttl 600 s as shipped); no events stream.
Delays are epoch seconds in `scheduled`, moved to the queue by a timer
(every 1 s as shipped). Retry: retries=2 (saq counts attempts) with
retry_delay 0."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
from common import SPEC, YIELD, Tracker, producer_main, start_then_open, worker_main
from saq import Queue, Worker


async def setup() -> Any:
    queue = Queue.from_url(SPEC["url"], name=SPEC["queue"])
    await queue.connect()
    kw: dict[str, Any] = {}
    if SPEC.get("retry"):
        kw["retries"] = 2
        kw["retry_delay"] = 0.0
    delay_s = (SPEC.get("delay_ms") or 0) / 1000.0

    async def add(data: dict[str, Any]) -> None:
        if delay_s:
            kw["scheduled"] = time.time() + delay_s
        await queue.enqueue("handler", data=data, **kw)

    return add, None, queue.disconnect


async def run(tracker: Tracker) -> None:
    begin, end = tracker.begin, tracker.end

    async def handler(ctx: Any, *, data: dict[str, Any]) -> Any:
        begin(data)
        if YIELD:
            await asyncio.sleep(0)
        return end(data)

    queue = Queue.from_url(SPEC["url"], name=SPEC["queue"])
    worker = Worker(
        queue,
        functions=[("handler", handler)],
        concurrency=int(SPEC.get("concurrency", 100)),
    )
    tracker.extra["config"] = {"concurrency": worker.concurrency, "job_ttl_s": 600}
    await start_then_open(tracker, worker.start())


if __name__ == "__main__":
    if SPEC["role"] == "producer":
        producer_main(setup)
    else:
        worker_main(run)
