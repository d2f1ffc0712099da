"""rq: Queue.enqueue / enqueue_many (pipelined bulk) / SimpleWorker (the job
runs in the worker process, no fork per job). rq is synchronous: one job at
a time, so the concurrency of the worker scenarios does not apply. Results
are always kept (result_ttl 500 s as shipped); no events stream; the
worker logs every job at INFO to stderr as shipped (the harness sends
stderr to a file). Delays: enqueue_in, moved by the scheduler that
`work(with_scheduler=True)` forks. Retry: Retry(max=1), interval 0.
"""

from __future__ import annotations

import os
import sys
import threading
from datetime import timedelta
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
import rq_tasks
from common import SPEC, Tracker, producer_main
from redis import Redis
from rq import Queue, Retry, SimpleWorker
from rq_tasks import handler


async def setup() -> Any:
    conn = Redis.from_url(SPEC["url"])
    q = Queue(SPEC["queue"], connection=conn)
    kw: dict[str, Any] = {}
    if SPEC.get("retry"):
        kw["retry"] = Retry(max=1)
    delay = SPEC.get("delay_ms")

    async def add(data: dict[str, Any]) -> None:
        if delay:
            q.enqueue_in(timedelta(milliseconds=delay), handler, data, **kw)
        else:
            q.enqueue(handler, data, **kw)

    async def add_bulk(items: list[dict[str, Any]]) -> None:
        q.enqueue_many([Queue.prepare_data(handler, args=(d,), **kw) for d in items])

    async def close() -> None:
        conn.close()

    # enqueue_many cannot delay: delayed jobs go one by one through enqueue_in.
    return add, (None if delay else add_bulk), close


def worker_role() -> None:
    rq_tasks.TRACKER = tracker = Tracker()
    conn = Redis.from_url(SPEC["url"])
    q = Queue(SPEC["queue"], connection=conn)
    worker = SimpleWorker([q], connection=conn)
    tracker.extra["config"] = {"concurrency": 1, "result_ttl_s": 500}
    warm = float(SPEC.get("warmup_s", 0))
    if warm > 0:
        threading.Timer(warm, tracker.open_window).start()
    else:
        tracker.open_window()
    try:
        worker.work(burst=False, with_scheduler=bool(SPEC.get("delay_ms")))
    except BaseException as e:
        tracker.finish(capped=False, error=f"{type(e).__name__}: {e}")
    tracker.finish(
        capped=False, error="the rq worker returned before all jobs were done"
    )


if __name__ == "__main__":
    if SPEC["role"] == "producer":
        producer_main(setup)
    else:
        worker_role()
