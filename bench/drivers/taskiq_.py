"""taskiq with taskiq-redis's stream broker (RedisStreamBroker): task.kiq /
taskiq's receiver run in-process (`run_receiver_task`, max_async_tasks =
concurrency). No bulk API, no events stream, no per-job delay in the broker
(delays need a schedule source and a separate `taskiq scheduler` process).
Results: RedisAsyncResultBackend in the results scenario, none otherwise
(taskiq's default). Retry: SimpleRetryMiddleware(default_retry_count=2,
default_retry_label=True), which re-sends the message at once."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
from common import (
    SPEC,
    YIELD,
    Tracker,
    Unsupported,
    producer_main,
    start_then_open,
    worker_main,
)
from taskiq.api import run_receiver_task
from taskiq.middlewares import SimpleRetryMiddleware
from taskiq_redis import RedisAsyncResultBackend, RedisStreamBroker


def make_broker(*, worker: bool) -> RedisStreamBroker:
    broker = RedisStreamBroker(SPEC["url"], queue_name=SPEC["queue"])
    if worker and SPEC.get("results"):
        broker = broker.with_result_backend(
            RedisAsyncResultBackend(SPEC["url"], result_ex_time=3600)
        )
    if worker and SPEC.get("fail_once"):
        broker = broker.with_middlewares(
            SimpleRetryMiddleware(default_retry_count=2, default_retry_label=True)
        )
    return broker


async def setup() -> Any:
    if SPEC.get("delay_ms"):
        raise Unsupported(
            "no per-job delay (needs a schedule source + `taskiq scheduler`)"
        )
    broker = make_broker(worker=False)

    @broker.task(task_name="handler")
    async def handler(data: dict) -> Any:  # the worker's body runs, not this one
        return None

    # startup() creates the consumer group (at "$"): before the first add,
    # so that preloaded jobs are delivered.
    await broker.startup()

    async def add(data: dict[str, Any]) -> None:
        await handler.kiq(data)

    return add, None, broker.shutdown


async def run(tracker: Tracker) -> None:
    begin, end = tracker.begin, tracker.end
    broker = make_broker(worker=True)

    @broker.task(task_name="handler")
    async def handler(data: dict) -> Any:
        begin(data)
        if YIELD:
            await asyncio.sleep(0)
        return end(data)

    broker.is_worker_process = True
    await broker.startup()
    concurrency = int(SPEC.get("concurrency", 100))
    tracker.extra["config"] = {
        "max_async_tasks": concurrency,
        "result_backend": "redis" if SPEC.get("results") else "none",
    }
    await start_then_open(
        tracker,
        run_receiver_task(broker, max_async_tasks=concurrency, run_startup=False),
    )


if __name__ == "__main__":
    if SPEC["role"] == "producer":
        producer_main(setup)
    else:
        worker_main(run)
