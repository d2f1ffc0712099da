"""Crash recovery: a worker process killed with SIGKILL mid-job; another
worker claims its pending entries."""

from __future__ import annotations

import asyncio
import signal
import sys
import textwrap
from pathlib import Path

import msgpack
import redis.asyncio as aioredis
from helpers import (
    dlq_entries,
    fast_worker,
    key,
    pending,
    running,
    stream_len,
    wait_until,
)

from chasquimq import Job, Queue

CHILD = textwrap.dedent(
    """
    import asyncio, sys
    import redis.asyncio as aioredis
    from chasquimq import Worker

    async def handler(job):
        # A handler that talks to Redis in its first step, as users' do.
        await client.hincrby(sys.argv[2] + ":doomed-runs", job.id, 1)
        print("STARTED", job.id, job.attempt, flush=True)
        await asyncio.Event().wait()  # blocks until the process is killed

    async def main():
        global client
        client = aioredis.from_url(sys.argv[1])
        w = Worker(sys.argv[2], handler, redis_url=sys.argv[1], read_block_ms=200,
                   consumer_id="doomed", concurrency=int(sys.argv[3]))
        await w.run()

    asyncio.run(main())
    """
)


async def _start_and_kill(
    tmp_path: Path, redis_url: str, queue: str, expect: int
) -> list[tuple[str, int]]:
    """Runs the blocking worker in a child process until `expect` handlers
    started, then SIGKILLs it. Returns (job id, attempt) per start."""
    script = tmp_path / "doomed_worker.py"
    script.write_text(CHILD)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        redis_url,
        queue,
        "10",
        stdout=asyncio.subprocess.PIPE,
    )
    started: list[tuple[str, int]] = []
    try:
        assert proc.stdout is not None
        while len(started) < expect:
            line = await asyncio.wait_for(proc.stdout.readline(), 20)
            assert line, "the child worker exited before starting its jobs"
            tag, job_id, attempt = line.decode().split()
            assert tag == "STARTED"
            started.append((job_id, int(attempt)))
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(proc.wait(), 10)
    assert proc.returncode == -signal.SIGKILL
    return started


async def test_killed_worker_jobs_are_recovered(
    tmp_path: Path, redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    async with Queue(queue_name, redis_url=redis_url) as q:
        jobs = await q.add_bulk([{"name": "crash", "data": {"i": i}} for i in range(3)])
    started = await _start_and_kill(tmp_path, redis_url, queue_name, expect=3)
    assert sorted(j for j, _ in started) == sorted(j.id for j in jobs)
    assert all(a == 1 for _, a in started)
    # The dead worker's entries are still pending, on its consumer.
    assert await pending(r, queue_name) == 3
    consumers = await r.xinfo_consumers(key(queue_name, "stream"), "default")
    assert {c["name"]: c["pending"] for c in consumers} == {b"doomed": 3}

    async with Queue(queue_name, redis_url=redis_url) as q:
        after = await q.add("fresh", {"i": 99})
    seen: dict[str, Job] = {}

    async def handler(job: Job) -> None:
        await r.hincrby(f"{queue_name}:recovered-runs", job.id, 1)
        seen[job.id] = job

    async with running(
        fast_worker(queue_name, handler, redis_url, claim_min_idle_ms=500)
    ):
        await wait_until(lambda: len(seen) == 4, timeout=15, what="every job completed")
        await wait_until(lambda: _drained(r, queue_name), what="acked")
    assert set(seen) == {j.id for j in jobs} | {after.id}
    doomed = await r.hgetall(f"{queue_name}:doomed-runs")
    assert {k.decode(): int(v) for k, v in doomed.items()} == {j.id: 1 for j in jobs}
    recovered = await r.hgetall(f"{queue_name}:recovered-runs")
    assert {k.decode(): int(v) for k, v in recovered.items()} == {j: 1 for j in seen}
    # The lost delivery counts: recovered jobs run as attempt 2.
    for j in jobs:
        assert seen[j.id].attempt == 2
        assert seen[j.id].data == j.data and seen[j.id].name == "crash"
    assert seen[after.id].attempt == 1
    assert await r.xlen(key(queue_name, "dlq")) == 0


async def test_redelivery_beyond_max_attempts_is_stalled(
    tmp_path: Path, redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    async with Queue(queue_name, redis_url=redis_url) as q:
        job = await q.add("crash-once", {"k": 1})
    await _start_and_kill(tmp_path, redis_url, queue_name, expect=1)
    assert await pending(r, queue_name) == 1
    ran: list[Job] = []

    async def handler(job: Job) -> None:
        ran.append(job)

    w = fast_worker(
        queue_name, handler, redis_url, claim_min_idle_ms=500, max_attempts=1
    )
    async with running(w):
        await wait_until(
            lambda: r.xlen(key(queue_name, "dlq")), timeout=15, what="stalled DLQ entry"
        )
        await wait_until(lambda: _drained(r, queue_name), what="stream drained")
    assert ran == []
    ((_id, f),) = await dlq_entries(r, queue_name)
    assert f[b"reason"] == b"stalled"
    assert msgpack.unpackb(f[b"d"], raw=False)[0] == job.id
    assert f[b"n"] == b"crash-once"


async def _drained(r: aioredis.Redis, queue: str) -> bool:
    return await stream_len(r, queue) == 0 and await pending(r, queue) == 0
