"""A key of the wrong type at any key a script touches: the script fails
before its first write, with an error that names the key, and the job stays
where it was. Worker-side scripts (settle, promoter, scheduler) keep the job
and retry; once the key is fixed, the job goes on."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import msgpack
import pytest
import redis.asyncio as aioredis
from helpers import (
    envelope,
    fast_worker,
    key,
    now_ms,
    pending,
    queue_keys,
    running,
    wait_until,
)

from chasquimq import (
    BackoffSpec,
    Job,
    Queue,
    RedisServerError,
    RepeatPattern,
    UnrecoverableError,
)


async def _spoil(r: aioredis.Redis, k: bytes) -> None:
    """Gives `k` a type no ChasquiMQ key has: a list."""
    await r.delete(k)
    await r.rpush(k, b"not ours")


async def _snapshot(r: aioredis.Redis, queue: str) -> dict[bytes, Any]:
    """Every key of the queue with its type and content."""
    out: dict[bytes, Any] = {}
    for k in await queue_keys(r, queue):
        t = (await r.type(k)).decode()
        if t == "stream":
            out[k] = ("stream", await r.xrange(k))
        elif t == "zset":
            out[k] = ("zset", await r.zrange(k, 0, -1, withscores=True))
        elif t == "hash":
            out[k] = ("hash", await r.hgetall(k))
        elif t == "list":
            out[k] = ("list", await r.lrange(k, 0, -1))
        else:
            out[k] = (t, await r.get(k))
    return out


Call = Callable[[Queue], Awaitable[Any]]
Setup = Callable[[Queue, aioredis.Redis, str], Awaitable[Any]]


async def _nothing(q: Queue, r: aioredis.Redis, queue: str) -> None:
    return None


async def _one_delayed(q: Queue, r: aioredis.Redis, queue: str) -> None:
    await q.add_unique("d", 1, job_id="jd", delay_ms=60_000)


async def _one_dead(q: Queue, r: aioredis.Redis, queue: str) -> None:
    """A DLQ entry as the settle script writes it."""
    env = envelope("dead-1", {"x": 1}, now_ms(), attempt=3)
    await r.xadd(
        key(queue, "dlq"),
        {b"d": env, b"source_id": b"1-1", b"reason": b"retries_exhausted"},
    )


# (label, setup, call, the key suffixes the call's script touches)
CASES: list[tuple[str, Setup, Call, list[str]]] = [
    ("add", _nothing, lambda q: q.add("a", 1), ["stream"]),
    (
        "add delayed",
        _nothing,
        lambda q: q.add("a", 1, delay_ms=60_000),
        ["delayed", "events"],
    ),
    (
        "add_unique",
        _nothing,
        lambda q: q.add_unique("a", 1, job_id="ju"),
        ["stream", "dlid:ju"],
    ),
    (
        "add_unique delayed",
        _nothing,
        lambda q: q.add_unique("a", 1, job_id="jv", delay_ms=60_000),
        ["delayed", "events", "dlid:jv", "didx:jv"],
    ),
    (
        "add_bulk",
        _nothing,
        lambda q: q.add_bulk([{"name": "a", "data": i} for i in range(3)]),
        ["stream"],
    ),
    (
        "cancel_delayed",
        _one_delayed,
        lambda q: q.cancel_delayed("jd"),
        ["didx:jd", "delayed", "dlid:jd"],
    ),
    ("replay_dlq", _one_dead, lambda q: q.replay_dlq(), ["dlq", "stream"]),
    (
        "upsert_repeatable_job",
        _nothing,
        lambda q: q.upsert_repeatable_job(
            "r", 1, repeat=RepeatPattern.every(60_000), job_id="rk"
        ),
        ["repeat", "repeat:spec:rk"],
    ),
]


@pytest.mark.parametrize(
    ("label", "setup", "call", "suffix"),
    [(c[0], c[1], c[2], s) for c in CASES for s in c[3]],
    ids=[f"{c[0]}-{s}" for c in CASES for s in c[3]],
)
async def test_a_producer_call_fails_whole_and_names_the_key(
    redis_url: str,
    queue_name: str,
    r: aioredis.Redis,
    label: str,
    setup: Setup,
    call: Call,
    suffix: str,
) -> None:
    async with Queue(queue_name, redis_url=redis_url) as q:
        await setup(q, r, queue_name)
        spoiled = key(queue_name, suffix)
        await _spoil(r, spoiled)
        before = await _snapshot(r, queue_name)
        with pytest.raises(RedisServerError) as info:
            await call(q)
        message = str(info.value)
        assert spoiled.decode() in message, message
        assert "WRONGTYPE" in message and "script:" not in message, message
        # Nothing was written, nothing removed.
        assert await _snapshot(r, queue_name) == before


async def test_a_dead_letter_is_never_lost_to_a_dlq_key_of_the_wrong_type(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    """The issue's case: an UnrecoverableError job used to be acked and
    deleted before the DLQ write failed, and vanished."""
    runs: list[int] = []

    async def handler(job: Job) -> None:
        runs.append(job.attempt)
        raise UnrecoverableError("no")

    dlq = key(queue_name, "dlq")
    await _spoil(r, dlq)
    async with Queue(queue_name, redis_url=redis_url) as q:
        job = await q.add("pay", 1)
    async with running(fast_worker(queue_name, handler, redis_url)):
        await wait_until(lambda: runs, what="the run")
        await asyncio.sleep(0.5)
        # Still pending in the stream: the settle script refused whole.
        assert await pending(r, queue_name) == 1
        assert await r.xlen(key(queue_name, "stream")) == 1
        await r.delete(dlq)
        await wait_until(lambda: r.xlen(dlq), timeout=10, what="the DLQ entry")
    ((_id, fields),) = await r.xrange(dlq)
    assert msgpack.unpackb(fields[b"d"], raw=False)[0] == job.id
    assert await r.xlen(key(queue_name, "stream")) == 0


@pytest.mark.parametrize("suffix", ["delayed", "events"])
async def test_a_retry_stays_pending_until_its_keys_are_fixed(
    redis_url: str, queue_name: str, r: aioredis.Redis, suffix: str
) -> None:
    runs: list[int] = []

    async def handler(job: Job) -> None:
        runs.append(job.attempt)
        if job.attempt == 1:
            raise RuntimeError("first run fails")

    async with Queue(queue_name, redis_url=redis_url) as q:
        await q.add("a", 1, attempts=3, backoff=BackoffSpec.fixed(10))
    spoiled = key(queue_name, suffix)
    await _spoil(r, spoiled)
    async with running(fast_worker(queue_name, handler, redis_url)):
        await wait_until(lambda: runs, what="the first run")
        await asyncio.sleep(0.5)
        assert runs == [1]
        assert await pending(r, queue_name) == 1
        assert await r.type(key(queue_name, "delayed")) in (b"none", b"list")
        await r.delete(spoiled)
        await wait_until(lambda: runs == [1, 2], timeout=10, what="the retry")

        async def acked() -> bool:
            return int(await r.xlen(key(queue_name, "stream"))) == 0

        await wait_until(acked, what="the ack")


@pytest.mark.parametrize("suffix", ["events", "promoter:lock"])
async def test_a_due_job_stays_delayed_while_the_promoter_cannot_write(
    redis_url: str, queue_name: str, r: aioredis.Redis, suffix: str
) -> None:
    ran: list[str] = []

    async def handler(job: Job) -> None:
        ran.append(job.id)

    async with Queue(queue_name, redis_url=redis_url) as q:
        job = await q.add("later", 1, delay_ms=50)
    spoiled = key(queue_name, suffix)
    await _spoil(r, spoiled)
    async with running(fast_worker(queue_name, handler, redis_url)):
        await asyncio.sleep(0.8)
        assert ran == []
        assert await r.zcard(key(queue_name, "delayed")) == 1
        assert await r.type(key(queue_name, "stream")) in (b"none", b"stream")
        assert await r.xlen(key(queue_name, "stream")) == 0
        await r.delete(spoiled)
        await wait_until(lambda: ran == [job.id], timeout=10, what="the job")


@pytest.mark.parametrize("suffix", ["repeat:spec:tick", "scheduler:tick"])
async def test_a_repeatable_spec_fires_nothing_twice_while_a_key_is_spoiled(
    redis_url: str, queue_name: str, r: aioredis.Redis, suffix: str
) -> None:
    ran: list[str] = []

    async def handler(job: Job) -> None:
        ran.append(job.name)

    async with Queue(queue_name, redis_url=redis_url) as q:
        await q.upsert_repeatable_job(
            "tick", 1, repeat=RepeatPattern.every(100), job_id="tick", limit=2
        )
    spoiled = key(queue_name, suffix)
    saved = await r.hgetall(spoiled) if suffix.startswith("repeat:") else {}
    await _spoil(r, spoiled)
    async with running(
        fast_worker(queue_name, handler, redis_url, scheduler_tick_ms=50)
    ):
        await asyncio.sleep(0.8)
        assert ran == []
        await r.delete(spoiled)
        if saved:
            await r.hset(spoiled, mapping=saved)
        await wait_until(lambda: len(ran) == 2, timeout=10, what="both fires")
        await asyncio.sleep(0.4)
    # The limit held: the spoiled ticks fired nothing that counted twice.
    assert ran == ["tick", "tick"]
