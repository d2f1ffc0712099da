"""Fault 1: worker processes SIGKILLed mid-job, again and again, while others
keep running; some kills land right after a handler returned (ack flush),
raised with a retry to schedule, or raised into the DLQ."""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
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

SEED = int(os.environ.get("CHAOS_SEED", "20240611"))
BATCH = 10  # jobs per add_bulk, one every 50 ms while the kills go on
N_WORKERS = 3
N_KILLS = 12
CLAIM_MS = 400
MAX_ATTEMPTS = 3
TRIGGERS = ["random", "ack", "retry", "dlq"]


@pytest.fixture
async def procs() -> AsyncIterator[list[WorkerProc]]:
    ps: list[WorkerProc] = []
    yield ps
    for p in ps:
        p.kill()
    for p in ps:
        if p.proc is not None:
            await p.wait()


def plan(rng: random.Random, i: int) -> dict[str, object]:
    d: dict[str, object] = {"i": i, "ms": rng.randint(0, 30)}
    x = rng.random()
    if x < 0.15:
        d["fail"] = 1  # one retry, then completes
    elif x < 0.20:
        d["fail"] = 2
    elif x < 0.23:
        d["fail"] = 3  # retries exhausted -> DLQ
    elif x < 0.26:
        d["unrec"] = True  # unrecoverable -> DLQ
    return d


async def wait_for_line(w: WorkerProc, pred: object, timeout: float) -> bool:
    """Tails `w`'s log from its current end until a line matches."""
    offset = w.log.stat().st_size if w.log.exists() else 0
    deadline = time.monotonic() + timeout
    buf = b""
    while time.monotonic() < deadline and w.alive:
        if w.log.exists():
            with open(w.log, "rb") as f:
                f.seek(offset)
                chunk = f.read()
            offset += len(chunk)
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for ln in lines:
                if ln and pred(ln.decode().split()):  # type: ignore[operator]
                    return True
        await asyncio.sleep(0.001)
    return False


MATCH = {
    "ack": lambda p: p[0] == "C",
    "retry": lambda p: p[0] == "F" and p[4] == "R",
    "dlq": lambda p: p[0] == "F" and p[4] == "D",
}


async def test_sigkill_workers_repeatedly(
    tmp_path: Path,
    redis_url: str,
    queue_name: str,
    r: aioredis.Redis,
    procs: list[WorkerProc],
) -> None:
    rng = random.Random(SEED)
    rng_plan = random.Random(SEED + 1)
    cfg = {
        "concurrency": 16,
        "claim_min_idle_ms": CLAIM_MS,
        "max_attempts": MAX_ATTEMPTS,
        "read_block_ms": 500,
    }

    async def spawn() -> WorkerProc:
        w = WorkerProc(tmp_path, redis_url, queue_name, **cfg)
        procs.append(w)
        return await w.start()

    for _ in range(N_WORKERS):
        await spawn()

    acked: set[str] = set()
    stop = asyncio.Event()

    async def produce() -> None:
        async with Queue(queue_name, redis_url=redis_url) as q:
            i = 0
            while not stop.is_set():
                batch = [
                    {"name": "chaos", "data": plan(rng_plan, i + k)}
                    for k in range(BATCH)
                ]
                jobs = await q.add_bulk(batch)
                acked.update(j.id for j in jobs)
                i += len(batch)
                await asyncio.sleep(0.05)

    producer = asyncio.ensure_future(produce())
    kills: list[tuple[str, bool]] = []
    leader_kills = 0  # kills of the promoter leader: retries wait for its lock TTL
    await asyncio.sleep(0.5)
    for k in range(N_KILLS):
        victim = rng.choice([p for p in procs if p.alive])
        trigger = TRIGGERS[k % len(TRIGGERS)]
        hit = False
        if trigger == "random":
            await asyncio.sleep(rng.uniform(0.05, 0.5))
        else:
            hit = await wait_for_line(victim, MATCH[trigger], timeout=5.0)
            await asyncio.sleep(rng.uniform(0, 0.003))
        holder = await r.get(key(queue_name, "promoter:lock")) or b""
        leader_kills += holder.startswith(f"chasqui-{victim.pid}-".encode())
        victim.kill()
        kills.append((trigger, hit))
        await victim.wait()
        await spawn()
        await asyncio.sleep(rng.uniform(0.1, 0.4))
    stop.set()
    await producer
    drain_s = await wait_drained(r, queue_name, timeout=60)

    killed = {p.pid: p.killed_at for p in procs if p.killed_at is not None}
    runs = collect_runs(procs)
    dlq = await dlq_by_job(r, queue_name)
    v = judge(acked, runs, dlq, killed)  # type: ignore[arg-type]
    reasons = sorted({f[b"reason"].decode() for fs in dlq.values() for f in fs})
    report(
        "worker-sigkill",
        v,
        kills=len(kills),
        targeted_kills=sum(hit for _, hit in kills),
        promoter_leader_kills=leader_kills,
        dlq_reasons="/".join(reasons),
        drain_after_last_kill_s=round(drain_s, 2),
    )
    assert v.enqueued == len(acked) > 0
    assert v.lost == [], f"lost acknowledged jobs: {v.lost[:10]}"
    assert v.unexplained == [], f"ran twice without a kill: {v.unexplained[:10]}"
    assert set(reasons) <= {"retries_exhausted", "unrecoverable", "stalled"}
    # Every DLQ entry belongs to an acknowledged job; nothing else was routed.
    assert set(dlq) <= acked
    # A stalled job is one that was in flight in a killed process.
    for job_id, fs in dlq.items():
        if any(f[b"reason"] == b"stalled" for f in fs):
            assert any(run.pid in killed for run in runs.get(job_id, []))
    # At least one kill landed after each kind of trigger line.
    assert all(
        any(hit for t, hit in kills if t == trig) for trig in ("ack", "retry", "dlq")
    ), kills
