"""Fault 3: a poison job whose handler SIGKILLs its own process on every
delivery. It must reach the DLQ as `stalled` after `max_attempts` runs while
the other jobs keep flowing through the surviving (and restarted) workers."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import msgpack
import redis.asyncio as aioredis
from harness import (
    WorkerProc,
    collect_runs,
    dlq_by_job,
    judge,
    key,
    report,
    wait_drained,
)

from chasquimq import Queue

N_WORKERS = 3
N_JOBS = 300
POISON_ATTEMPTS = 3
CLAIM_MS = 400


async def test_poison_job_reaches_dlq_as_stalled(
    tmp_path: Path, redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    cfg = {"concurrency": 8, "claim_min_idle_ms": CLAIM_MS, "read_block_ms": 500}
    procs: list[WorkerProc] = []
    stop = asyncio.Event()

    async def spawn() -> WorkerProc:
        w = WorkerProc(tmp_path, redis_url, queue_name, **cfg)
        procs.append(w)
        return await w.start()

    async def supervise() -> None:
        """Restarts every worker that died, like a process manager would."""
        while not stop.is_set():
            for w in list(procs):
                if w.proc is not None and w.proc.returncode is not None:
                    if w.exited_at is None:
                        w.exited_at = time.time()
                        await spawn()
            await asyncio.sleep(0.02)

    try:
        for _ in range(N_WORKERS):
            await spawn()
        supervisor = asyncio.ensure_future(supervise())
        acked: set[str] = set()
        async with Queue(queue_name, redis_url=redis_url) as q:
            first = await q.add_bulk(
                [{"name": "ok", "data": {"i": i, "ms": 10}} for i in range(50)]
            )
            acked.update(j.id for j in first)
            poison = await q.add("poison", {"poison": True}, attempts=POISON_ATTEMPTS)
            acked.add(poison.id)
            i = 50
            while i < N_JOBS:
                jobs = await q.add_bulk(
                    [{"name": "ok", "data": {"i": i + k, "ms": 10}} for k in range(25)]
                )
                acked.update(j.id for j in jobs)
                i += 25
                await asyncio.sleep(0.25)

        async def poison_in_dlq() -> bool:
            for _id, f in await r.xrange(key(queue_name, "dlq")):
                if msgpack.unpackb(f[b"d"], raw=False)[0] == poison.id:
                    return True
            return False

        t0 = time.monotonic()
        while not await poison_in_dlq():
            assert time.monotonic() - t0 < 60, "the poison job never reached the DLQ"
            await asyncio.sleep(0.05)
        await wait_drained(r, queue_name, timeout=60)
        stop.set()
        await supervisor

        runs = collect_runs(procs)
        poison_runs = runs[poison.id]
        # The process of each poison run died at that run's start.
        killed = {run.pid: run.start for run in poison_runs}
        for w in procs:
            if w.died_by_sigkill and w.pid not in killed:
                killed[w.pid] = w.exited_at or time.time()
        dlq = await dlq_by_job(r, queue_name)
        v = judge(acked, runs, dlq, killed)
        ((entry,),) = [dlq[poison.id]]
        deaths = sum(w.died_by_sigkill for w in procs)
        # Other jobs completed while the poison job was killing workers.
        t_first, t_last = poison_runs[0].start, poison_runs[-1].start
        flowing = sum(
            1
            for j, jr in runs.items()
            if j != poison.id
            for run in jr
            if run.end == "C" and t_first < run.end_t < t_last  # type: ignore[operator]
        )
        report(
            "poison-self-kill",
            v,
            poison_runs=len(poison_runs),
            poison_reason=entry[b"reason"].decode(),
            worker_deaths=deaths,
            completed_meanwhile=flowing,
        )
        assert entry[b"reason"] == b"stalled"
        assert len(poison_runs) == POISON_ATTEMPTS
        assert [run.attempt for run in poison_runs] == [1, 2, 3]
        assert all(run.end is None for run in poison_runs)
        assert deaths == POISON_ATTEMPTS
        assert v.lost == [], v.lost[:10]
        assert v.unexplained == [], v.unexplained[:10]
        assert v.completed == N_JOBS
        assert set(dlq) == {poison.id}
        assert flowing > 0
    finally:
        stop.set()
        for w in procs:
            w.kill()
            if w.proc is not None:
                await w.wait()
