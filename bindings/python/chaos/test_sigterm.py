"""Fault 6: SIGTERM to a worker process with jobs in flight, the worker
handling it with `await worker.close()` (the pattern of docs/reliability.md).
In-flight jobs finish within the shutdown deadline, or stay pending and are
recovered; none is marked failed (no `failed` event, no DLQ entry)."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

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

CLAIM_MS = 400


async def _started(
    w: WorkerProc, ids: set[str], n: int, timeout: float = 15
) -> set[str]:
    t0 = time.monotonic()
    while True:
        got = {ln[1] for ln in w.lines() if ln[0] == "S" and ln[1] in ids}
        if len(got) >= n:
            return got
        assert time.monotonic() - t0 < timeout, f"only {len(got)} of {n} started"
        await asyncio.sleep(0.01)


async def _failed_events(r: aioredis.Redis, queue: str) -> list[dict[bytes, bytes]]:
    return [
        f for _id, f in await r.xrange(key(queue, "events")) if f[b"e"] == b"failed"
    ]


async def test_sigterm_lets_in_flight_jobs_finish(
    tmp_path: Path, redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    w = WorkerProc(
        tmp_path,
        redis_url,
        queue_name,
        sigterm=True,
        concurrency=8,
        claim_min_idle_ms=CLAIM_MS,
        shutdown_timeout_ms=5_000,
        read_block_ms=500,
    )
    w2: WorkerProc | None = None
    try:
        await w.start()
        async with Queue(queue_name, redis_url=redis_url) as q:
            jobs = await q.add_bulk(
                [{"name": "t", "data": {"i": i, "ms": 1_200}} for i in range(20)]
            )
        ids = {j.id for j in jobs}
        in_flight = await _started(w, ids, 8)
        # A second worker takes the rest and would claim anything whose lease
        # lapsed: the handlers outlive claim_min_idle_ms during the shutdown.
        w2 = WorkerProc(
            tmp_path, redis_url, queue_name, concurrency=16, claim_min_idle_ms=CLAIM_MS
        )
        await w2.start()
        t_term = time.time()
        w.signal(signal.SIGTERM)
        rc = await w.wait(timeout=15)
        stop_s = time.time() - t_term
        assert rc == 0, f"worker exited with {rc}"
        runs = collect_runs([w])
        # Everything in flight at SIGTERM completed before the process exited.
        assert set(runs) == in_flight
        assert all([run.end for run in runs[j]] == ["C"] for j in in_flight), runs
        await wait_drained(r, queue_name, timeout=30)
        assert await _failed_events(r, queue_name) == []
        assert await r.xlen(key(queue_name, "dlq")) == 0
        runs = collect_runs([w, w2])
        v = judge(ids, runs, await dlq_by_job(r, queue_name), killed={})
        report(
            "sigterm-within-deadline",
            v,
            in_flight_at_sigterm=len(in_flight),
            exit_after_s=round(stop_s, 2),
            failed_events=0,
        )
        assert v.lost == [] and v.duplicated == [] and v.completed == len(ids)
    finally:
        for p in (w, w2):
            if p is not None:
                p.kill()
                if p.proc is not None:
                    await p.wait()


async def test_sigterm_past_the_deadline_leaves_jobs_recoverable(
    tmp_path: Path, redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    w = WorkerProc(
        tmp_path,
        redis_url,
        queue_name,
        sigterm=True,
        concurrency=4,
        claim_min_idle_ms=CLAIM_MS,
        shutdown_timeout_ms=300,
        read_block_ms=500,
    )
    w2: WorkerProc | None = None
    try:
        await w.start()
        async with Queue(queue_name, redis_url=redis_url) as q:
            jobs = await q.add_bulk(
                [{"name": "t", "data": {"i": i, "ms": 2_500}} for i in range(4)]
            )
        ids = {j.id for j in jobs}
        await _started(w, ids, 4)
        t_term = time.time()
        w.signal(signal.SIGTERM)
        rc = await w.wait(timeout=15)
        stop_s = time.time() - t_term
        assert rc == 0
        assert stop_s < 3, f"shutdown took {stop_s:.2f} s with a 0.3 s deadline"
        runs = collect_runs([w])
        assert all([run.end for run in runs[j]] == ["X"] for j in ids), runs
        # Abandoned, not failed: still pending, no failed event, no DLQ entry.
        assert await _failed_events(r, queue_name) == []
        assert await r.xlen(key(queue_name, "dlq")) == 0
        info = await r.xpending(key(queue_name, "stream"), "default")
        assert info["pending"] == 4
        w2 = WorkerProc(
            tmp_path, redis_url, queue_name, concurrency=8, claim_min_idle_ms=CLAIM_MS
        )
        await w2.start()
        await wait_drained(r, queue_name, timeout=30)
        runs = collect_runs([w, w2])
        # The cancelled run counts as a run the shutdown cut short.
        v = judge(ids, runs, await dlq_by_job(r, queue_name), killed={w.pid: t_term})
        recovered = max(runs[j][1].start for j in ids) - t_term
        report(
            "sigterm-past-deadline",
            v,
            in_flight_at_sigterm=len(ids),
            exit_after_s=round(stop_s, 2),
            recovered_after_s=round(recovered, 2),
            failed_events=0,
        )
        assert v.lost == [] and v.unexplained == []
        for j in ids:
            assert [(run.pid, run.end) for run in runs[j]] == [
                (w.pid, "X"),
                (w2.pid, "C"),
            ]
            assert runs[j][1].attempt == 2
    finally:
        for p in (w, w2):
            if p is not None:
                p.kill()
                if p.proc is not None:
                    await p.wait()
