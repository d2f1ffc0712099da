"""The main job: enqueue and process jobs, printing progress and throughput.

Uses REDIS_URL when it points at a reachable Redis; otherwise starts a
throwaway redis-server on a free port and stops it at the end.

    nox -s demo                # 100,000 jobs
    nox -s demo -- --jobs 20000 --concurrency 200
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import urllib.parse
from contextlib import ExitStack

from chasquimq import Job, Queue, Worker

try:
    from redisproc import RedisProcess, ping
except ImportError:  # run from a checkout without nox
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
    from redisproc import RedisProcess, ping


def reachable(url: str) -> bool:
    u = urllib.parse.urlparse(url)
    return ping(u.hostname or "127.0.0.1", u.port or 6379)


def progress(label: str, done: int, total: int, started: float) -> None:
    rate = done / max(time.perf_counter() - started, 1e-9)
    print(
        f"\r{label}: {done:>9,}/{total:,} jobs  {rate:>10,.0f} jobs/s",
        end="",
        flush=True,
    )


async def run(url: str, jobs: int, batch: int, concurrency: int) -> None:
    queue_name = f"demo-{os.getpid()}"
    async with Queue(queue_name, redis_url=url) as queue:
        t0 = time.perf_counter()
        for start in range(0, jobs, batch):
            n = min(batch, jobs - start)
            await queue.add_bulk(
                [
                    {"name": "demo", "data": {"i": start + k, "s": "x" * 10}}
                    for k in range(n)
                ]
            )
            if (start // batch) % 20 == 0 or start + n == jobs:
                progress("enqueue", start + n, jobs, t0)
        enqueue_rate = jobs / (time.perf_counter() - t0)
        print()

        done = 0
        finished = asyncio.Event()

        async def handler(job: Job) -> None:
            nonlocal done
            done += 1
            if done == jobs:
                finished.set()

        async def report(started: float) -> None:
            while not finished.is_set():
                progress("process", done, jobs, started)
                await asyncio.sleep(0.25)

        worker = Worker(queue_name, handler, redis_url=url, concurrency=concurrency)
        t1 = time.perf_counter()
        runner = asyncio.create_task(worker.run())
        reporter = asyncio.create_task(report(t1))
        await finished.wait()
        process_rate = jobs / (time.perf_counter() - t1)
        await reporter
        progress("process", done, jobs, t1)
        print()
        await worker.close()
        await runner
    print(
        f"enqueued {jobs:,} jobs at {enqueue_rate:,.0f} jobs/s (add_bulk, batches of {batch})"
    )
    print(
        f"processed {jobs:,} jobs at {process_rate:,.0f} jobs/s (concurrency {concurrency}, events on)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--jobs", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--concurrency", type=int, default=100)
    args = ap.parse_args()
    with ExitStack() as stack:
        url = os.environ.get("REDIS_URL", "")
        if not url or not reachable(url):
            server = stack.enter_context(RedisProcess())
            url = server.url
            print(f"started a throwaway redis-server on port {server.port}")
        else:
            print(
                f"using Redis at {urllib.parse.urlparse(url).hostname}:{urllib.parse.urlparse(url).port}"
            )
        asyncio.run(run(url, args.jobs, args.batch, args.concurrency))


if __name__ == "__main__":
    main()
