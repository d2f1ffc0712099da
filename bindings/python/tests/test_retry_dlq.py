"""Retries, backoff and dead-letter routing."""

from __future__ import annotations

import asyncio
import time

import msgpack
import pytest
import redis.asyncio as aioredis
from helpers import (
    dlq_entries,
    envelope,
    events,
    fast_worker,
    key,
    now_ms,
    pending,
    running,
    split_member,
    stream_len,
    wait_until,
)

from chasquimq import BackoffSpec, Job, Queue, UnrecoverableError


async def _drained(r: aioredis.Redis, queue: str) -> bool:
    """Nothing left in the stream and nothing pending."""
    return await stream_len(r, queue) == 0 and await pending(r, queue) == 0


async def test_retried_until_max_attempts_then_dlq(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    attempts: list[int] = []

    async def handler(job: Job) -> None:
        attempts.append(job.attempt)
        assert job.attempts_made == job.attempt
        raise ValueError(f"boom on run {job.attempt}")

    async with Queue(queue_name, redis_url=redis_url) as q:
        job = await q.add(
            "flaky", {"x": 1}, attempts=3, backoff=BackoffSpec.fixed(20, jitter_ms=0)
        )
    w = fast_worker(queue_name, handler, redis_url)
    async with running(w):
        await wait_until(lambda: r.xlen(key(queue_name, "dlq")), what="DLQ entry")
        await wait_until(lambda: _drained(r, queue_name), what="stream drained")
    assert attempts == [1, 2, 3]
    ((dlq_id, fields),) = await dlq_entries(r, queue_name)
    assert fields[b"reason"] == b"retries_exhausted"
    assert b"ValueError" in fields[b"detail"] and b"boom on run 3" in fields[b"detail"]
    assert fields[b"n"] == b"flaky"
    env = msgpack.unpackb(fields[b"d"], raw=False)
    assert env[0] == job.id
    # The envelope as routed: the counter of the last run's envelope.
    assert env[3] == 2
    assert env[4] == [3, ["fixed", 20, None, None, 0]]
    assert await r.zcard(key(queue_name, "delayed")) == 0
    async with Queue(queue_name, redis_url=redis_url) as q:
        (peeked,) = await q.peek_dlq()
    assert peeked["reason"] == "retries_exhausted"
    assert "boom on run 3" in peeked["detail"]
    assert peeked["name"] == "flaky" and peeked["dlq_id"] == dlq_id.decode()


async def test_worker_max_attempts_applies_without_override(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    attempts: list[int] = []

    async def handler(job: Job) -> None:
        attempts.append(job.attempt)
        raise RuntimeError("always")

    async with Queue(queue_name, redis_url=redis_url) as q:
        await q.add("x", 1, backoff=BackoffSpec.fixed(10, jitter_ms=0))
    async with running(fast_worker(queue_name, handler, redis_url, max_attempts=2)):
        await wait_until(lambda: r.xlen(key(queue_name, "dlq")), what="DLQ entry")
    assert attempts == [1, 2]


async def test_succeeds_after_retries(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    attempts: list[int] = []
    done = asyncio.Event()

    async def handler(job: Job) -> None:
        attempts.append(job.attempt)
        if job.attempt < 3:
            raise ValueError("not yet")
        done.set()

    async with Queue(queue_name, redis_url=redis_url) as q:
        await q.add("x", 1, attempts=5, backoff=BackoffSpec.fixed(10, jitter_ms=0))
    async with running(fast_worker(queue_name, handler, redis_url)):
        await asyncio.wait_for(done.wait(), 10)
        await wait_until(lambda: _drained(r, queue_name), what="ack")
    assert attempts == [1, 2, 3]
    assert await r.xlen(key(queue_name, "dlq")) == 0


async def test_retry_waits_in_delayed_zset(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    runs: list[int] = []
    second = asyncio.Event()

    async def handler(job: Job) -> None:
        runs.append(job.attempt)
        if job.attempt == 1:
            raise ValueError("first run fails")
        second.set()

    backoff = BackoffSpec.exponential(1_500, multiplier=2.0, max_ms=60_000, jitter_ms=0)
    async with Queue(queue_name, redis_url=redis_url) as q:
        job = await q.add("retry-me", {"p": 1}, attempts=4, backoff=backoff)
    async with running(fast_worker(queue_name, handler, redis_url)):
        members = await wait_until(
            lambda: r.zrange(key(queue_name, "delayed"), 0, -1, withscores=True),
            what="retry in delayed zset",
        )
        t_seen = now_ms()
        # While it waits, the job is neither in the stream nor pending.
        assert await stream_len(r, queue_name) == 0
        assert await pending(r, queue_name) == 0
        assert runs == [1]
        ((member, score),) = members
        name, env_bytes = split_member(member)
        assert name == "retry-me"
        env = msgpack.unpackb(env_bytes, raw=False)
        assert env[0] == job.id and env[2] == job.created_at_ms
        assert env[3] == 1
        assert env[4] == [4, ["exponential", 1_500, 60_000, 2.0, 0]]
        assert msgpack.unpackb(env[1], raw=False) == {"p": 1}
        assert t_seen + 1_000 < score <= t_seen + 1_500
        await asyncio.wait_for(second.wait(), 10)
        await wait_until(lambda: _drained(r, queue_name), what="ack")
    assert runs == [1, 2]
    assert await r.zcard(key(queue_name, "delayed")) == 0


async def test_fixed_backoff_timing(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    started: list[float] = []
    failed_at: list[float] = []

    async def handler(job: Job) -> None:
        started.append(time.monotonic())
        if job.attempt < 3:
            failed_at.append(time.monotonic())
            raise ValueError("again")

    async with Queue(queue_name, redis_url=redis_url) as q:
        await q.add("timed", 1, attempts=3, backoff=BackoffSpec.fixed(300))
    async with running(fast_worker(queue_name, handler, redis_url)):
        await wait_until(lambda: len(started) == 3, what="three runs")
        await wait_until(lambda: _drained(r, queue_name), what="ack")
    for i in range(2):
        gap = started[i + 1] - failed_at[i]
        # The due time is taken on the server when the failure settles (after
        # the raise), with millisecond resolution.
        assert gap >= 0.300 - 0.001, gap
        # Backoff 300 ms + default jitter < 100 ms, promoter tick 100 ms.
        assert gap < 0.300 + 1.0, gap


async def test_exponential_backoff_follows_wire_rules(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    """delay = min(delay_ms * multiplier^(next-1), max_delay_ms) + jitter, read
    back exactly from the retry-scheduled events (jitter 0)."""
    runs: list[tuple[str, int]] = []

    async def handler(job: Job) -> None:
        runs.append((job.name, job.attempt))
        raise ValueError("fail")

    async with Queue(queue_name, redis_url=redis_url) as q:
        a = await q.add(
            "exp",
            1,
            attempts=4,
            backoff=BackoffSpec.exponential(40, multiplier=3, max_ms=200, jitter_ms=0),
        )
        b = await q.add(
            "exp2", 2, attempts=3, backoff=BackoffSpec.exponential(30, jitter_ms=0)
        )
        c = await q.add(
            "jit", 3, attempts=2, backoff=BackoffSpec.exponential(50, jitter_ms=40)
        )
        # max_delay_ms nil falls back to the queue default (30 s).
        d = await q.add(
            "big", 4, attempts=2, backoff=BackoffSpec.exponential(50_000, jitter_ms=0)
        )
    async with running(fast_worker(queue_name, handler, redis_url)):
        await wait_until(lambda: _dlq_len_is(r, queue_name, 3), what="3 in DLQ")
    sched: dict[str, list[tuple[int, int]]] = {}
    for e in await events(r, queue_name):
        if e["e"] == "retry-scheduled":
            sched.setdefault(e["id"], []).append(
                (int(e["attempt"]), int(e["backoff_ms"]))
            )
    # 40, 40*3=120, 40*9=360 capped at 200.
    assert sched[a.id] == [(2, 40), (3, 120), (4, 200)]
    # multiplier defaults to 2.
    assert sched[b.id] == [(2, 30), (3, 60)]
    ((att, ms),) = sched[c.id]
    assert att == 2 and 50 <= ms < 90
    ((att, ms),) = sched[d.id]
    assert att == 2 and ms == 30_000
    assert sorted(runs) == sorted(
        [
            ("exp", 1),
            ("exp", 2),
            ("exp", 3),
            ("exp", 4),
            ("exp2", 1),
            ("exp2", 2),
            ("exp2", 3),
            ("jit", 1),
            ("jit", 2),
            ("big", 1),
        ]
    )


async def _dlq_len_is(r: aioredis.Redis, queue: str, n: int) -> bool:
    return await r.xlen(key(queue, "dlq")) == n


class PaymentDeclined(UnrecoverableError):
    pass


@pytest.mark.parametrize(
    "exc", [UnrecoverableError("bad input"), PaymentDeclined("card declined")]
)
async def test_unrecoverable_goes_straight_to_dlq(
    redis_url: str, queue_name: str, r: aioredis.Redis, exc: Exception
) -> None:
    runs: list[int] = []

    async def handler(job: Job) -> None:
        runs.append(job.attempt)
        raise exc

    async with Queue(queue_name, redis_url=redis_url) as q:
        job = await q.add("pay", 1, attempts=10, backoff=BackoffSpec.fixed(10))
    async with running(fast_worker(queue_name, handler, redis_url)):
        await wait_until(lambda: r.xlen(key(queue_name, "dlq")), what="DLQ entry")
        await wait_until(lambda: _drained(r, queue_name), what="stream drained")
    assert runs == [1]
    ((_id, fields),) = await dlq_entries(r, queue_name)
    assert fields[b"reason"] == b"unrecoverable"
    assert str(exc).encode() in fields[b"detail"]
    assert msgpack.unpackb(fields[b"d"], raw=False)[0] == job.id
    assert await r.zcard(key(queue_name, "delayed")) == 0
    evs = [e["e"] for e in await events(r, queue_name) if e.get("id") == job.id]
    assert "retry-scheduled" not in evs and evs[-1] == "dlq"


async def _route_raw(
    redis_url: str,
    queue_name: str,
    r: aioredis.Redis,
    fields: dict,
    **worker_kw: object,
) -> tuple[bytes, dict[bytes, bytes], list[Job]]:
    """Writes one raw entry, runs a worker until it is routed to the DLQ, and
    checks the entry left nothing behind."""
    ran: list[Job] = []

    async def handler(job: Job) -> None:
        ran.append(job)

    sid = await r.xadd(key(queue_name, "stream"), fields)
    async with running(fast_worker(queue_name, handler, redis_url, **worker_kw)):
        await wait_until(lambda: r.xlen(key(queue_name, "dlq")), what="DLQ entry")
        await wait_until(lambda: _drained(r, queue_name), what="stream drained")
    assert await stream_len(r, queue_name) == 0
    assert await pending(r, queue_name) == 0
    ((_id, dlq_fields),) = await dlq_entries(r, queue_name)
    assert dlq_fields[b"source_id"] == sid
    return sid, dlq_fields, ran


async def test_d_not_msgpack_is_decode_failed(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    _sid, f, ran = await _route_raw(
        redis_url, queue_name, r, {"d": b"\xc1 not msgpack", "n": "junk"}
    )
    assert f[b"reason"] == b"decode_failed"
    assert f[b"d"] == b"\xc1 not msgpack"
    assert f[b"n"] == b"junk"
    assert f.get(b"detail")
    assert ran == []


async def test_wrong_envelope_shape_is_decode_failed(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    bad = msgpack.packb(["id", b"\x01"], use_bin_type=True)  # 2 elements
    _sid, f, ran = await _route_raw(redis_url, queue_name, r, {"d": bad})
    assert f[b"reason"] == b"decode_failed" and f[b"d"] == bad
    assert ran == []


async def test_missing_d_is_malformed(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    _sid, f, ran = await _route_raw(redis_url, queue_name, r, {"x": "y"})
    assert f[b"reason"] == b"malformed"
    assert f[b"detail"]
    assert f.get(b"d", b"") == b""
    assert ran == []


async def test_oversize_payload(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    ran: list[Job] = []

    async def handler(job: Job) -> None:
        ran.append(job)

    async with Queue(queue_name, redis_url=redis_url) as q:
        small = await q.add("s", b"x" * 10)
        big = await q.add("b", b"x" * 200)
    async with running(
        fast_worker(queue_name, handler, redis_url, max_payload_bytes=100)
    ):
        await wait_until(lambda: r.xlen(key(queue_name, "dlq")), what="DLQ entry")
        await wait_until(lambda: _drained(r, queue_name), what="stream drained")
        await wait_until(lambda: ran, what="small job")
    assert [j.id for j in ran] == [small.id]
    ((_id, f),) = await dlq_entries(r, queue_name)
    assert f[b"reason"] == b"oversize_payload"
    assert msgpack.unpackb(f[b"d"], raw=False)[0] == big.id
    assert b"100" in f[b"detail"]


async def test_payload_not_msgpack_in_valid_envelope(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    env = envelope("raw-job", None, now_ms(), raw_payload=b"\xc1\xc1")
    _sid, f, ran = await _route_raw(redis_url, queue_name, r, {"d": env, "n": "n1"})
    assert f[b"reason"] == b"decode_failed"
    assert f[b"d"] == env and f[b"n"] == b"n1"
    assert ran == []
    evs = [
        e
        for e in await events(r, queue_name)
        if e.get("id") == "raw-job" and e["e"] == "dlq"
    ]
    assert evs and evs[0]["reason"] == "decode_failed"


async def test_replayed_job_runs_again_with_its_override(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    """DLQ -> replay -> the worker runs it from attempt 1 again, and the
    per-job attempts override still applies."""
    runs: list[int] = []
    healthy = False
    done = asyncio.Event()

    async def handler(job: Job) -> None:
        runs.append(job.attempt)
        if not healthy:
            raise ValueError("downstream down")
        done.set()

    async with Queue(queue_name, redis_url=redis_url) as q:
        job = await q.add(
            "replay", {"r": 1}, attempts=2, backoff=BackoffSpec.fixed(10, jitter_ms=0)
        )
        async with running(fast_worker(queue_name, handler, redis_url)):
            await wait_until(
                lambda: r.xlen(key(queue_name, "dlq")), what="first DLQ entry"
            )
            assert runs == [1, 2]
            assert await q.replay_dlq() == 1
            await wait_until(
                lambda: _dlq_len_is(r, queue_name, 1), what="second DLQ entry"
            )
            assert runs == [1, 2, 1, 2]
            healthy = True
            assert await q.replay_dlq() == 1
            await asyncio.wait_for(done.wait(), 10)
            await wait_until(lambda: _drained(r, queue_name), what="ack")
    assert runs == [1, 2, 1, 2, 1]
    assert await r.xlen(key(queue_name, "dlq")) == 0
    evs = [e["e"] for e in await events(r, queue_name) if e.get("id") == job.id]
    assert evs.count("dlq") == 2 and evs[-1] == "completed"


@pytest.mark.parametrize(
    ("name", "detail"),
    [(b"\xff\xfe", b"UTF-8"), (b"n" * 257, b"256")],
    ids=["name-not-utf8", "name-too-long"],
)
async def test_bad_name_field_is_malformed(
    redis_url: str, queue_name: str, r: aioredis.Redis, name: bytes, detail: bytes
) -> None:
    env = envelope("bad-name", 1, now_ms())
    _sid, f, ran = await _route_raw(redis_url, queue_name, r, {"d": env, "n": name})
    assert f[b"reason"] == b"malformed"
    assert detail in f[b"detail"]
    assert f[b"d"] == env
    assert ran == []


async def test_replay_skips_undecodable_entries(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    dlq = key(queue_name, "dlq")
    await r.xadd(
        dlq,
        {
            "d": b"",
            "source_id": "1-0",
            "reason": "malformed",
            "detail": "stream entry has no d field",
        },
    )
    await r.xadd(
        dlq,
        {
            "d": envelope("good", 1, now_ms(), 3),
            "source_id": "2-0",
            "reason": "retries_exhausted",
        },
    )
    async with Queue(queue_name, redis_url=redis_url) as q:
        assert await q.replay_dlq(limit=1) == 1
        left = await q.peek_dlq()
        assert [e["reason"] for e in left] == ["malformed"]
        assert (
            left[0]["detail"] == "stream entry has no d field"
            and left[0]["payload"] == b""
        )
        assert await q.replay_dlq() == 0
    ((_, fields),) = await r.xrange(key(queue_name, "stream"))
    env = msgpack.unpackb(fields[b"d"], raw=False)
    assert env[0] == "good" and env[3] == 0
