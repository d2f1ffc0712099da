"""max_stream_len is a refusal, never a trim: no add, promotion, repeatable
fire or DLQ replay ever deletes a job that no worker has finished."""

from __future__ import annotations

import asyncio

import msgpack
import pytest
import redis.asyncio as aioredis
from helpers import fast_worker, key, running, stream_len, wait_until

from chasquimq import (
    ChasquiError,
    Job,
    Queue,
    QueueFullError,
    RepeatPattern,
    UnrecoverableError,
)


def _ids_in(entries: list[tuple[bytes, dict[bytes, bytes]]]) -> list[str]:
    return [msgpack.unpackb(f[b"d"], raw=False)[0] for _, f in entries]


async def test_adds_past_the_cap_are_refused_and_no_unread_job_is_lost(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    accepted: list[str] = []
    refused: list[QueueFullError] = []
    async with Queue(queue_name, redis_url=redis_url, max_stream_len=100) as q:
        for i in range(1_050):
            try:
                accepted.append((await q.add("job", {"i": i})).id)
            except QueueFullError as e:
                refused.append(e)
        assert len(accepted) == 100 and len(refused) == 950
        e = refused[0]
        assert isinstance(e, ChasquiError) and e.code == "queue_full"
        assert "max_stream_len (100)" in str(e) and "nothing was added" in str(e)
        # Every accepted job is still there, unread, in add order.
        assert _ids_in(await r.xrange(key(queue_name, "stream"))) == accepted

        ran: list[str] = []

        async def handler(job: Job) -> None:
            ran.append(job.id)

        async with running(fast_worker(queue_name, handler, redis_url)):
            await wait_until(lambda: len(ran) == 100, timeout=20, what="100 jobs")
            # The worker made room: adds go through again.
            late = await q.add("job", {"i": "late"})
            await wait_until(lambda: late.id in ran, timeout=10, what="the late job")
    assert sorted(ran) == sorted([*accepted, late.id])


async def test_idempotent_add_refused_at_the_cap_can_be_retried(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    async with Queue(queue_name, redis_url=redis_url, max_stream_len=1) as q:
        await q.add("filler", 0)
        with pytest.raises(QueueFullError):
            await q.add_unique("job", 1, job_id="order-7")
        # The refusal left no dedup marker: the retry is a real add.
        assert await r.exists(key(queue_name, "dlid:order-7")) == 0
        await r.delete(key(queue_name, "stream"))
        job = await q.add_unique("job", 1, job_id="order-7")
        assert job.id == "order-7"
        assert _ids_in(await r.xrange(key(queue_name, "stream"))) == ["order-7"]


@pytest.mark.parametrize("plain", [5, 2_500])
async def test_add_bulk_is_all_or_nothing_at_the_cap(
    redis_url: str, queue_name: str, r: aioredis.Redis, plain: int
) -> None:
    """One script call (5 jobs) and a multi-call pipeline (2,500 plain jobs
    in chunks, plus idempotent and delayed ones) both refuse as a whole."""
    cap = plain + 10
    stream = key(queue_name, "stream")
    async with Queue(queue_name, redis_url=redis_url, max_stream_len=cap) as q:
        await q.add_bulk([{"name": "f", "data": i} for i in range(11)])
        batch = [{"name": "p", "data": i} for i in range(plain)]
        if plain > 5:
            batch[3:3] = [
                {"name": "u", "data": 1, "job_id": "bulk-u"},
                {"name": "d", "data": 2, "delay_ms": 60_000, "job_id": "bulk-d"},
            ]
        before = await r.xlen(stream)
        with pytest.raises(QueueFullError) as info:
            await q.add_bulk(batch)
        assert f"max_stream_len ({cap})" in str(info.value)
        # Nothing of the bulk was written: no entry, marker or delayed member.
        assert await r.xlen(stream) == before == 11
        assert await r.zcard(key(queue_name, "delayed")) == 0
        assert await r.exists(key(queue_name, "dlid:bulk-u")) == 0
        assert await r.keys(b"{chasqui:" + queue_name.encode() + b"}:bulkgate:*") == []
        # With room, the same bulk goes in whole.
        await r.delete(stream)
        jobs = await q.add_bulk(batch)
    immediate = [j.id for j, b in zip(jobs, batch, strict=True) if "delay_ms" not in b]
    assert _ids_in(await r.xrange(stream)) == immediate
    if plain > 5:
        assert await r.zcard(key(queue_name, "delayed")) == 1


async def test_promoter_holds_due_jobs_back_until_workers_make_room(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    release = asyncio.Event()
    ran: list[int] = []

    async def handler(job: Job) -> None:
        await release.wait()
        ran.append(job.data)

    async with Queue(queue_name, redis_url=redis_url, max_stream_len=5) as q:
        await q.add_bulk([{"name": "now", "data": i} for i in range(5)])
        await q.add_bulk(
            [{"name": "later", "data": 10 + i, "delay_ms": 50} for i in range(3)]
        )
        worker = fast_worker(queue_name, handler, redis_url, max_stream_len=5)
        async with running(worker):
            await asyncio.sleep(1.0)
            # Due for almost a second, yet still delayed: the stream is full.
            assert await r.zcard(key(queue_name, "delayed")) == 3
            assert await stream_len(r, queue_name) == 5
            release.set()
            await wait_until(lambda: len(ran) == 8, timeout=20, what="all 8 jobs")
    assert sorted(ran) == [0, 1, 2, 3, 4, 10, 11, 12]


async def test_repeatable_fires_wait_while_the_stream_is_full(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    release = asyncio.Event()
    ran: list[str] = []

    async def handler(job: Job) -> None:
        await release.wait()
        ran.append(job.name)

    async with Queue(queue_name, redis_url=redis_url, max_stream_len=3) as q:
        await q.add_bulk([{"name": "filler", "data": i} for i in range(3)])
        spec = await q.upsert_repeatable_job(
            "tick", 1, repeat=RepeatPattern.every(100), limit=2
        )
        worker = fast_worker(
            queue_name, handler, redis_url, max_stream_len=3, scheduler_tick_ms=50
        )
        async with running(worker):
            await asyncio.sleep(1.0)
            assert await stream_len(r, queue_name) == 3
            fired = await r.hget(key(queue_name, f"repeat:spec:{spec.id}"), "fired")
            assert fired in (None, b"0")
            assert await r.zscore(key(queue_name, "repeat"), spec.id) is not None
            release.set()
            await wait_until(
                lambda: ran.count("tick") == 2, timeout=20, what="both fires"
            )
    assert ran.count("filler") == 3


async def test_replay_stops_at_the_cap_and_keeps_the_rest_in_the_dlq(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    async def handler(job: Job) -> None:
        raise UnrecoverableError("no")

    async with Queue(queue_name, redis_url=redis_url, max_stream_len=3) as q:
        async with running(fast_worker(queue_name, handler, redis_url)):
            await q.add_bulk([{"name": "bad", "data": i} for i in range(3)])

            async def dead_lettered() -> bool:
                return int(await r.xlen(key(queue_name, "dlq"))) == 3

            await wait_until(dead_lettered, timeout=20, what="3 DLQ entries")
        await q.add_bulk([{"name": "filler", "data": i} for i in range(2)])
        assert await q.replay_dlq() == 1
        assert await r.xlen(key(queue_name, "dlq")) == 2
        with pytest.raises(QueueFullError):
            await q.replay_dlq()
        assert await r.xlen(key(queue_name, "dlq")) == 2
        assert await stream_len(r, queue_name) == 3
