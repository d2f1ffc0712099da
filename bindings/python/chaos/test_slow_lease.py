"""Fault 4: handlers slower than `claim_min_idle_ms`. While their worker
lives, the lease extension keeps every other worker off them (never two runs
at once); when that worker dies mid-run, another one runs them again, once."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

import redis.asyncio as aioredis
from harness import WorkerProc, collect_runs, dlq_by_job, judge, report, wait_drained

from chasquimq import Queue

CLAIM_MS = 300
SLOW_MS = 3 * CLAIM_MS


async def test_slow_handler_is_leased_and_recovered_once(
    tmp_path: Path, redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    cfg = {"concurrency": 4, "claim_min_idle_ms": CLAIM_MS, "read_block_ms": 500}
    procs = [WorkerProc(tmp_path, redis_url, queue_name, **cfg) for _ in range(2)]
    try:
        for p in procs:
            await p.start()
        async with Queue(queue_name, redis_url=redis_url) as q:
            # Phase A: both workers alive; 8 jobs of 3x claim_min_idle_ms.
            a = await q.add_bulk(
                [{"name": "slow", "data": {"i": i, "ms": SLOW_MS}} for i in range(8)]
            )
            await wait_drained(r, queue_name, timeout=30)
            runs = collect_runs(procs)
            for j in a:
                assert [run.end for run in runs[j.id]] == ["C"], runs[j.id]

            # Phase B: 4 jobs of 5x claim_min_idle_ms; kill the worker running
            # them well after their lease would have run out without extension.
            b = await q.add_bulk(
                [
                    {"name": "slow", "data": {"i": 100 + i, "ms": 5 * CLAIM_MS}}
                    for i in range(4)
                ]
            )
        ids = {j.id for j in b}

        def started_b() -> dict[int, set[str]]:
            out: dict[int, set[str]] = {}
            for p in procs:
                got = {ln[1] for ln in p.lines() if ln[0] == "S" and ln[1] in ids}
                out[p.pid] = got
            return out

        t0 = time.monotonic()
        while sum(len(s) for s in started_b().values()) < 4:
            assert time.monotonic() - t0 < 10, "phase B jobs did not start"
            await asyncio.sleep(0.01)
        await asyncio.sleep(2 * CLAIM_MS / 1000)
        by_pid = started_b()
        victim = max(procs, key=lambda p: len(by_pid[p.pid]))
        survivor = next(p for p in procs if p is not victim)
        victim.kill()
        await victim.wait()
        doomed = by_pid[victim.pid]
        await wait_drained(r, queue_name, timeout=30)

        runs = collect_runs(procs)
        assert victim.killed_at is not None
        killed = {victim.pid: victim.killed_at}
        dlq = await dlq_by_job(r, queue_name)
        v = judge({j.id for j in a} | ids, runs, dlq, killed)
        for j in ids:
            jr = runs[j]
            assert [run.end for run in jr].count("C") == 1, jr
            if j in doomed:
                # Killed mid-run, recovered once by the survivor, after the kill.
                assert [(run.pid, run.end) for run in jr] == [
                    (victim.pid, None),
                    (survivor.pid, "C"),
                ], jr
                assert jr[1].start >= victim.killed_at
            else:
                assert len(jr) == 1, jr
        # Never two runs of one job at once in live workers.
        for j, jr in runs.items():
            live = [run for run in jr if run.pid != victim.pid]
            for x, y in itertools.pairwise(live):
                assert x.end_t is not None and x.end_t <= y.start, (j, jr)
        report(
            "slow-handler-lease",
            v,
            handler_ms=f"{SLOW_MS}/{5 * CLAIM_MS}",
            claim_min_idle_ms=CLAIM_MS,
            concurrent_runs=0,
            recovered_after_kill=len(doomed),
        )
        assert v.lost == [] and v.unexplained == []
        assert set(v.duplicated) == doomed
    finally:
        for p in procs:
            p.kill()
            if p.proc is not None:
                await p.wait()
