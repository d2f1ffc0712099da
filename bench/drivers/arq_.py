"""arq: enqueue_job / Worker(max_jobs=concurrency). No bulk API; results are
always kept (keep_result, 3600 s as shipped); no events stream. arq retries
only jobs that raise `Retry`, so the retry scenario's handler raises
`Retry(defer=0)` on the first attempt."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import timedelta
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
from arq import Retry, Worker, create_pool
from arq.connections import RedisSettings
from arq.worker import func
from common import (
    SPEC,
    YIELD,
    FirstAttemptFailure,
    Tracker,
    producer_main,
    start_then_open,
    worker_main,
)


async def setup() -> Any:
    pool = await create_pool(
        RedisSettings.from_dsn(SPEC["url"]), default_queue_name=SPEC["queue"]
    )
    kw: dict[str, Any] = {}
    if SPEC.get("delay_ms"):
        kw["_defer_by"] = timedelta(milliseconds=SPEC["delay_ms"])

    async def add(data: dict[str, Any]) -> None:
        await pool.enqueue_job("handler", data, **kw)

    async def close() -> None:
        await pool.aclose()

    return add, None, close


async def run(tracker: Tracker) -> None:
    begin, end = tracker.begin, tracker.end

    async def handler(ctx: dict[str, Any], data: dict[str, Any]) -> Any:
        try:
            begin(data)
        except FirstAttemptFailure:
            raise Retry(defer=0) from None
        if YIELD:
            await asyncio.sleep(0)
        return end(data)

    worker = Worker(
        functions=[func(handler, name="handler")],
        queue_name=SPEC["queue"],
        redis_settings=RedisSettings.from_dsn(SPEC["url"]),
        max_jobs=int(SPEC.get("concurrency", 100)),
        handle_signals=False,
    )
    tracker.extra["config"] = {"max_jobs": worker.max_jobs, "keep_result_s": 3600}
    await start_then_open(tracker, worker.main())


if __name__ == "__main__":
    if SPEC["role"] == "producer":
        producer_main(setup)
    else:
        worker_main(run)
