"""chasquimq through its Python API (Queue / Worker), release build."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
from common import SPEC, YIELD, Tracker, producer_main, start_then_open, worker_main

from chasquimq import Job, Queue, Worker

NAME = "bench"


def _opts() -> dict[str, Any]:
    o: dict[str, Any] = {}
    if SPEC.get("delay_ms"):
        o["delay_ms"] = SPEC["delay_ms"]
    if SPEC.get("retry"):
        o["attempts"] = 2
        o["backoff"] = 0  # fixed 0 ms: the shortest retry delay
    return o


async def setup() -> Any:
    queue = Queue(SPEC["queue"], redis_url=SPEC["url"])
    opts = _opts()

    async def add(data: dict[str, Any]) -> None:
        await queue.add(NAME, data, **opts)

    async def add_bulk(items: list[dict[str, Any]]) -> None:
        await queue.add_bulk([{"name": NAME, "data": d, **opts} for d in items])

    return add, add_bulk, queue.close


async def run(tracker: Tracker) -> None:
    begin, end = tracker.begin, tracker.end

    async def handler(job: Job) -> Any:
        data = job.data
        begin(data)
        if YIELD:
            await asyncio.sleep(0)
        return end(data)

    kw: dict[str, Any] = {}
    if int(SPEC.get("size", 10)) >= 1 << 20:
        # The engine's default cap is 1 MiB of encoded job: a 1 MiB string
        # plus its envelope is over it and would go to the DLQ unrun.
        kw["max_payload_bytes"] = 4 << 20
    worker = Worker(
        SPEC["queue"],
        handler,
        redis_url=SPEC["url"],
        concurrency=int(SPEC.get("concurrency", 100)),
        events_enabled=bool(SPEC.get("events", True)),
        store_results=bool(SPEC.get("results")),
        **kw,
    )
    tracker.extra["config"] = {
        "concurrency": int(SPEC.get("concurrency", 100)),
        "events_enabled": bool(SPEC.get("events", True)),
        "store_results": bool(SPEC.get("results")),
        **kw,
    }
    await start_then_open(tracker, worker.run())


if __name__ == "__main__":
    if SPEC["role"] == "producer":
        producer_main(setup)
    else:
        worker_main(run)
