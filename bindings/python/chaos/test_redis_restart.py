"""Fault 2: Redis SIGKILLed under load (AOF, appendfsync always), down for
2.5 s, restarted on the same port with the same data dir. Producers either
get an acknowledgement or a typed ChasquiError; the same worker processes
carry on by themselves; no acknowledged job is lost."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from harness import WorkerProc, collect_runs, dlq_by_job, judge, report, wait_drained
from redisproc import RedisProcess

from chasquimq import ChasquiError, Queue

DOWN_S = 2.5
PRODUCERS = 4


@pytest.fixture
async def aof_server() -> AsyncIterator[RedisProcess]:
    server = RedisProcess(extra_args=["--appendonly", "yes", "--appendfsync", "always"])
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


def crash(server: RedisProcess) -> None:
    """SIGKILL: no shutdown, no final AOF rewrite; only fsynced writes survive."""
    assert server.proc is not None
    server.proc.kill()
    server.proc.wait()
    server.proc = None


async def test_redis_restart_under_load(
    tmp_path: Path, aof_server: RedisProcess, queue_name: str
) -> None:
    url = aof_server.url
    procs = [
        WorkerProc(
            tmp_path,
            url,
            queue_name,
            concurrency=16,
            claim_min_idle_ms=1000,
            read_block_ms=500,
        )
        for _ in range(2)
    ]
    r = aioredis.from_url(url, decode_responses=False)
    try:
        for p in procs:
            await p.start()
        acked: set[str] = set()
        errors: list[tuple[float, BaseException]] = []
        successes: list[float] = []
        stop = asyncio.Event()

        async def produce(k: int) -> None:
            async with Queue(queue_name, redis_url=url) as q:
                i = 0
                while not stop.is_set():
                    try:
                        job = await q.add("chaos", {"p": k, "i": i, "ms": 5})
                    except Exception as e:
                        errors.append((time.time(), e))
                        await asyncio.sleep(0.05)
                    else:
                        acked.add(job.id)
                        successes.append(time.time())
                    i += 1
                    await asyncio.sleep(0.01)

        producers = [asyncio.ensure_future(produce(k)) for k in range(PRODUCERS)]
        await asyncio.sleep(2.0)
        before = len(acked)
        t_down = time.time()
        crash(aof_server)
        await asyncio.sleep(DOWN_S)
        aof_server.start()
        t_up = time.time()
        await asyncio.sleep(3.0)
        stop.set()
        await asyncio.gather(*producers)
        drain_s = await wait_drained(r, queue_name, timeout=60)

        assert all(p.alive for p in procs), "a worker process died"
        runs = collect_runs(procs)
        dlq = await dlq_by_job(r, queue_name)
        v = judge(acked, runs, dlq, killed={})
        first_add = min((t for t in successes if t >= t_up), default=float("inf"))
        first_run = min(
            (run.start for jr in runs.values() for run in jr if run.start >= t_up),
            default=float("inf"),
        )
        untyped = [e for _, e in errors if not isinstance(e, ChasquiError)]
        kinds = Counter(type(e).__name__ for _, e in errors)
        # Jobs that ran but whose add was not acknowledged (the reply was lost).
        unacked_written = len(set(runs) - acked)
        report(
            "redis-restart",
            v,
            down_s=round(t_up - t_down, 2),
            acked_before_crash=before,
            producer_errors="/".join(f"{k}x{n}" for k, n in kinds.items()) or "none",
            add_resumed_after_s=round(first_add - t_up, 3),
            worker_resumed_after_s=round(first_run - t_up, 3),
            unacked_but_written=unacked_written,
            drain_s=round(drain_s, 2),
        )
        assert untyped == [], f"untyped producer errors: {untyped[:3]!r}"
        assert v.lost == [], f"lost acknowledged jobs: {v.lost[:10]}"
        # A job may run twice only if a run of it was in flight at the crash.
        in_flight = {
            j
            for j, jr in runs.items()
            if any(
                run.start <= t_up and (run.end_t is None or run.end_t >= t_down - 0.1)
                for run in jr
            )
        }
        assert set(v.duplicated) <= in_flight, v.duplicated
        assert v.completed == v.enqueued
        assert dlq == {}
        assert first_add - t_up < 10 and first_run - t_up < 10
        assert len(acked) > before
    finally:
        for p in procs:
            p.kill()
            if p.proc is not None:
                await p.wait()
        await r.aclose()
