"""Idempotent job ids: concurrent adds from two processes, the immediate and
the delayed path, re-adds after the job ran, and the marker's lifetime."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import msgpack
import pytest
import redis.asyncio as aioredis
from sched_proc import key, running, spawn, wait_until

from chasquimq import Job, Queue, Worker


def worker(queue: str, handler: Any, redis_url: str) -> Worker:
    return Worker(
        queue, handler, redis_url=redis_url, read_block_ms=200, run_scheduler=False
    )


async def concurrent_adds_from_two_processes(
    redis_url: str, queue: str, tmp_path: Path, cfg: dict[str, Any]
) -> list[str]:
    """Two subprocesses, each making cfg["n"] concurrent adds, released together."""
    barrier = tmp_path / "go"
    outs = [tmp_path / f"ids-{i}.json" for i in range(2)]
    procs = [spawn("adder", redis_url, queue, out, barrier, cfg) for out in outs]
    try:
        await wait_until(
            lambda: all(Path(f"{o}.ready").exists() for o in outs),
            timeout=20,
            what="adders connected",
        )
        barrier.write_text("go")
        for p in procs:
            rc = await asyncio.to_thread(p.wait, 30)
            assert rc == 0, p.stderr.read().decode() if p.stderr else rc
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    ids: list[str] = []
    for o in outs:
        ids += json.loads(o.read_text())
    return ids


@pytest.mark.parametrize("delayed", [False, True], ids=["immediate", "delayed"])
async def test_same_job_id_from_two_processes_is_one_job(
    redis_url: str, queue_name: str, r: aioredis.Redis, tmp_path: Path, delayed: bool
) -> None:
    cfg: dict[str, Any] = {"name": "dup", "job_id": "same", "n": 100}
    if delayed:
        cfg["delay_ms"] = 300
    ids = await concurrent_adds_from_two_processes(redis_url, queue_name, tmp_path, cfg)
    assert ids == ["same"] * 200

    if delayed:
        members = await r.zrange(key(queue_name, "delayed"), 0, -1)
        assert len(members) == 1
        assert await r.get(key(queue_name, "didx:same")) == members[0]
        assert await r.xlen(key(queue_name, "stream")) == 0
    else:
        assert await r.zcard(key(queue_name, "delayed")) == 0
        entries = await r.xrange(key(queue_name, "stream"))
        assert len(entries) == 1
        assert msgpack.unpackb(entries[0][1][b"d"], raw=False)[0] == "same"
    # One `delayed` event at most: the duplicates wrote nothing.
    kinds = [f[b"e"] for _, f in await r.xrange(key(queue_name, "events"))]
    assert kinds == ([b"delayed"] if delayed else [])

    runs: list[Job] = []

    async def handler(job: Job) -> None:
        runs.append(job)

    async with (
        Queue(queue_name, redis_url=redis_url) as q,
        running(worker(queue_name, handler, redis_url)),
    ):
        await wait_until(lambda: runs, timeout=10, what="the job")
        await asyncio.sleep(0.3)
        assert len(runs) == 1 and runs[0].id == "same" and runs[0].name == "dup"
        # Re-adding after the job ran is still deduped (the marker outlives the run).
        again = await q.add("dup", {"again": True}, job_id="same")
        again_delayed = await q.add_unique(
            "dup", {"again": True}, job_id="same", delay_ms=50
        )
        assert again.id == again_delayed.id == "same"
        await asyncio.sleep(0.4)
    assert len(runs) == 1
    assert await r.xlen(key(queue_name, "stream")) == 0
    assert await r.zcard(key(queue_name, "delayed")) == 0
    ttl = await r.ttl(key(queue_name, "dlid:same"))
    assert 3590 < ttl <= 3601


async def test_dedup_spans_immediate_delayed_and_bulk(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    async with Queue(queue_name, redis_url=redis_url) as q:
        await q.add("a", 1, job_id="x", delay_ms=60_000)
        await q.add(
            "a", 2, job_id="x"
        )  # the immediate path sees the delayed add's marker
        await q.add_unique("a", 3, job_id="x", delay_ms=10)
        jobs = await q.add_bulk(
            [{"name": "b", "data": i, "job_id": "y"} for i in range(5)]
            + [{"name": "b", "data": 9, "job_id": "x", "delay_ms": 5}]
        )
        assert [j.id for j in jobs] == ["y"] * 5 + ["x"]
        # Distinct ids are distinct jobs; ids differing only in case or spacing too.
        await q.add("c", 1, job_id="Y")
        await q.add("c", 1, job_id=" y")
        # Concurrent adds from one producer.
        got = await asyncio.gather(*(q.add("d", i, job_id="z") for i in range(50)))
        assert {j.id for j in got} == {"z"}
    assert await r.zcard(key(queue_name, "delayed")) == 1
    stream = [
        msgpack.unpackb(f[b"d"], raw=False)
        for _, f in await r.xrange(key(queue_name, "stream"))
    ]
    assert [e[0] for e in stream] == ["y", "Y", " y", "z"]
    assert msgpack.unpackb(stream[0][1]) == 0  # the first add won


async def test_cancel_frees_the_id(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    async with Queue(queue_name, redis_url=redis_url) as q:
        await q.add("a", 1, job_id="free", delay_ms=60_000)
        assert await q.cancel_delayed("free") is True
        assert not await r.exists(
            key(queue_name, "dlid:free"), key(queue_name, "didx:free")
        )
        await q.add("a", 2, job_id="free")
    ((_, f),) = await r.xrange(key(queue_name, "stream"))
    env = msgpack.unpackb(f[b"d"], raw=False)
    assert env[0] == "free" and msgpack.unpackb(env[1]) == 2
