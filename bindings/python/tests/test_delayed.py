"""Delayed adds are promoted by the worker's embedded promoter, never early."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone

import msgpack
import redis.asyncio as aioredis
from helpers import (
    events,
    fast_worker,
    key,
    now_ms,
    running,
    split_member,
    stream_len,
    wait_until,
)

from chasquimq import Job, Queue


async def test_delayed_add_delivered_after_delay(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    delivered: dict[str, float] = {}

    async def handler(job: Job) -> None:
        delivered[job.id] = time.monotonic()

    # The worker runs first, so delivery time depends only on the promoter.
    async with running(fast_worker(queue_name, handler, redis_url)):
        async with Queue(queue_name, redis_url=redis_url) as q:
            t0 = time.monotonic()
            job = await q.add("later", {"d": 1}, delay_ms=200)
            # In the delayed zset, not in the stream.
            members = await r.zrange(key(queue_name, "delayed"), 0, -1, withscores=True)
            in_stream = await stream_len(r, queue_name)
        await wait_until(
            lambda: job.id in delivered, timeout=10, what="delayed delivery"
        )
    assert in_stream == 0
    assert len(members) == 1 and split_member(members[0][0])[0] == "later"
    gap = delivered[job.id] - t0
    assert gap >= 0.200 - 0.001, gap
    assert gap < 0.200 + 1.5, gap
    assert await r.zcard(key(queue_name, "delayed")) == 0
    kinds = [e["e"] for e in await events(r, queue_name) if e.get("id") == job.id]
    assert kinds[:2] == ["delayed", "waiting"] and kinds[-1] == "completed"


async def test_delay_forms(redis_url: str, queue_name: str, r: aioredis.Redis) -> None:
    async with Queue(queue_name, redis_url=redis_url) as q:
        a = await q.add("ms", 1, delay_ms=30_000)
        b = await q.add("float", 2, delay_ms=30_000.9)
        c = await q.add("td", 3, delay=timedelta(seconds=30))
        d = await q.add(
            "abs", 4, delay_ms=datetime.now(timezone.utc) + timedelta(seconds=30)
        )
        naive = datetime.now(timezone.utc).replace(tzinfo=None) + timedelta(seconds=30)
        e = await q.add("naive-utc", 5, delay_ms=naive)
        f = await q.add("zero", 6, delay_ms=0)
    scores = {}
    for member, score in await r.zrange(
        key(queue_name, "delayed"), 0, -1, withscores=True
    ):
        _name, env = split_member(member)
        scores[msgpack.unpackb(env, raw=False)[0]] = score
    assert set(scores) == {a.id, b.id, c.id, d.id, e.id}
    now = now_ms()
    for jid, score in scores.items():
        assert now + 28_000 < score <= now + 30_001, (jid, score - now)
    # delay 0 goes straight to the stream.
    assert await stream_len(r, queue_name) == 1
    ((_, fields),) = await r.xrange(key(queue_name, "stream"))
    assert msgpack.unpackb(fields[b"d"], raw=False)[0] == f.id


async def test_promoter_disabled_leaves_delayed_jobs(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    ran: list[str] = []
    seen_now = asyncio.Event()

    async def handler(job: Job) -> None:
        ran.append(job.name)
        if job.name == "now":
            seen_now.set()

    async with Queue(queue_name, redis_url=redis_url) as q:
        await q.add("later", 1, delay_ms=50)
    await asyncio.sleep(0.1)  # the job is due; only a promoter would move it
    async with running(
        fast_worker(queue_name, handler, redis_url, delayed_enabled=False)
    ):
        async with Queue(queue_name, redis_url=redis_url) as q:
            await q.add("now", 2)
        await asyncio.wait_for(seen_now.wait(), 10)
        await asyncio.sleep(0.3)
    assert ran == ["now"]
    assert await r.zcard(key(queue_name, "delayed")) == 1
    assert not await r.exists(key(queue_name, "promoter:lock"))
