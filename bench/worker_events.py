"""Worker throughput with lifecycle events and the result backend.

Preloads N jobs with Queue.add_bulk, then times a no-op Worker
(concurrency 100) from run() until every job was handled and the worker
shut down (its final settle flushed). Three configurations:

  events off          events_enabled=False
  events on           events_enabled=True (the default)
  events + results    events_enabled=True, store_results=True, the
                      handler returns a small dict

Each run uses a throwaway redis-server (tools/redisproc.py), FLUSHALLed
before the run; each configuration is measured --repeats times (default 3)
and the median is reported, as a markdown table.

    python bench/worker_events.py --jobs 50000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time
from typing import Any

import redis.asyncio as aioredis

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools")
)
from redisproc import RedisProcess

from chasquimq import Queue, Worker, version

QUEUE = "bench"
CONFIGS: list[tuple[str, dict[str, Any], bool]] = [
    # (label, Worker kwargs, handler returns a result)
    ("events off", {"events_enabled": False}, False),
    ("events on", {"events_enabled": True}, False),
    (
        "events on + store_results",
        {"events_enabled": True, "store_results": True},
        True,
    ),
]


async def preload(url: str, n: int, chunk: int = 10_000) -> None:
    async with Queue(QUEUE, redis_url=url) as q:
        for start in range(0, n, chunk):
            await q.add_bulk(
                [
                    {"name": "bench", "data": {"i": i}}
                    for i in range(start, min(n, start + chunk))
                ]
            )


async def run_once(url: str, n: int, worker_kw: dict[str, Any], returns: bool) -> float:
    """Seconds from run() to a drained, shut-down worker."""
    r = aioredis.from_url(url)
    try:
        await r.flushall()
        await preload(url, n)
        assert await r.xlen(f"{{chasqui:{QUEUE}}}:stream") == n
        done = asyncio.Event()
        count = 0

        async def handler(job: Any) -> Any:
            nonlocal count
            count += 1
            if count == n:
                done.set()
            return {"ok": True, "i": job.data["i"]} if returns else None

        worker = Worker(QUEUE, handler, redis_url=url, concurrency=100, **worker_kw)
        t0 = time.perf_counter()
        task = asyncio.ensure_future(worker.run())
        await done.wait()
        await worker.close()
        await task
        elapsed = time.perf_counter() - t0

        # Sanity: everything was settled, and wrote what the config says.
        stream = f"{{chasqui:{QUEUE}}}:stream"
        assert await r.xlen(stream) == 0, "unsettled entries left in the stream"
        assert (await r.xpending(stream, "default"))["pending"] == 0
        events = await r.xlen(f"{{chasqui:{QUEUE}}}:events")
        assert (events > 0) == worker_kw["events_enabled"], events
        results = 0
        async for _ in r.scan_iter(match=f"{{chasqui:{QUEUE}}}:result:*", count=10_000):
            results += 1
        assert results == (n if returns else 0), results
        return elapsed
    finally:
        await r.aclose()


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--jobs", type=int, default=100_000, help="jobs per run (default 100000)"
    )
    ap.add_argument(
        "--repeats", type=int, default=3, help="runs per configuration (default 3)"
    )
    args = ap.parse_args()

    medians: dict[str, float] = {}
    with RedisProcess() as server:
        for label, kw, returns in CONFIGS:
            times = []
            for _ in range(args.repeats):
                times.append(asyncio.run(run_once(server.url, args.jobs, kw, returns)))
                print(
                    f"  {label}: {args.jobs / times[-1]:,.0f} jobs/s", file=sys.stderr
                )
            medians[label] = args.jobs / statistics.median(times)

    off = medians["events off"]
    print(
        f"\nWorker throughput, {args.jobs:,} jobs, no-op handler, concurrency 100, "
        f"median of {args.repeats} (chasquimq {version()}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs)\n"
    )
    print("| configuration | jobs/s | vs events off |")
    print("|---|---:|---:|")
    for label, _, _ in CONFIGS:
        print(f"| {label} | {medians[label]:,.0f} | {medians[label] / off:.2f} |")


if __name__ == "__main__":
    main()
