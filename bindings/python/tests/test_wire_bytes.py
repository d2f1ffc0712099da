"""Byte-exact checks of the Redis data layout (docs/wire-format.md)."""

from __future__ import annotations

import asyncio
import struct

import msgpack
import redis.asyncio as aioredis
from helpers import (
    dlq_entries,
    envelope,
    fast_worker,
    key,
    now_ms,
    pending,
    running,
    stream_len,
    wait_until,
)

from chasquimq import BackoffSpec, Job, Queue

EXP_OVERRIDE = (
    b"\x92\x05\x95\xab"
    + b"exponential"
    + b"\xcc\xfa"  # 250
    + b"\xcd\x27\x10"  # 10000
    + b"\xcb"
    + struct.pack(">d", 3.0)
    + b"\x32"  # 50
)


def _envelope_bytes(
    job_id: str, user: bytes, created: int, attempt: int, override: bytes = b""
) -> bytes:
    head = b"\x95" if override else b"\x94"
    assert len(job_id) == 26 and len(user) < 256 and attempt < 128
    return (
        head
        + b"\xba"
        + job_id.encode()
        + b"\xc4"
        + bytes([len(user)])
        + user
        + b"\xcf"
        + created.to_bytes(8, "big")
        + bytes([attempt])
        + override
    )


async def test_stream_entry_bytes(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    async with Queue(queue_name, redis_url=redis_url) as q:
        job = await q.add("send-email", {"to": "a@x", "n": 1})
        unnamed = await q.add("", [1, 2])
    (_sid1, f1), (_sid2, f2) = await r.xrange(key(queue_name, "stream"))
    assert list(f1) == [b"d", b"n"]
    assert f1[b"n"] == b"send-email"
    user = bytes.fromhex("82 a2 74 6f a3 61 40 78 a1 6e 01")
    assert f1[b"d"] == _envelope_bytes(job.id, user, job.created_at_ms, 0)
    assert f1[b"d"][:2] == b"\x94\xba" and f1[b"d"][28:30] == b"\xc4\x0b"
    # Empty name: no `n` field at all.
    assert list(f2) == [b"d"]
    assert f2[b"d"] == _envelope_bytes(
        unnamed.id, b"\x92\x01\x02", unnamed.created_at_ms, 0
    )


async def test_retry_override_bytes(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    backoff = BackoffSpec.exponential(250, multiplier=3, max_ms=10_000, jitter_ms=50)
    async with Queue(queue_name, redis_url=redis_url) as q:
        job = await q.add(
            "send-email", {"to": "a@x", "n": 1}, attempts=5, backoff=backoff
        )
        fixed = await q.add("f", None, attempts=2)
        only_backoff = await q.add("g", None, backoff=BackoffSpec.fixed(7))
    (_, f1), (_, f2), (_, f3) = await r.xrange(key(queue_name, "stream"))
    user = bytes.fromhex("82 a2 74 6f a3 61 40 78 a1 6e 01")
    assert f1[b"d"] == _envelope_bytes(job.id, user, job.created_at_ms, 0, EXP_OVERRIDE)
    assert f1[b"d"].endswith(EXP_OVERRIDE)
    # [2, nil]
    assert f2[b"d"] == _envelope_bytes(
        fixed.id, b"\xc0", fixed.created_at_ms, 0, b"\x92\x02\xc0"
    )
    # [nil, ["fixed", 7, nil, nil, nil]]
    assert f3[b"d"] == _envelope_bytes(
        only_backoff.id,
        b"\xc0",
        only_backoff.created_at_ms,
        0,
        b"\x92\xc0\x95\xa5fixed\x07\xc0\xc0\xc0",
    )


async def test_delayed_add_member_bytes(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    async with Queue(queue_name, redis_url=redis_url) as q:
        named = await q.add("later", 5, delay_ms=60_000)
        unnamed = await q.add("", 6, delay_ms=60_000)
    members = {
        m: s
        for m, s in await r.zrange(key(queue_name, "delayed"), 0, -1, withscores=True)
    }
    want_named = (
        struct.pack("<I", 5)
        + b"later"
        + _envelope_bytes(named.id, b"\x05", named.created_at_ms, 0)
    )
    want_unnamed = b"\x00\x00\x00\x00" + _envelope_bytes(
        unnamed.id, b"\x06", unnamed.created_at_ms, 0
    )
    assert set(members) == {want_named, want_unnamed}
    for m in members:
        assert named.created_at_ms + 59_000 < members[m] < now_ms() + 60_001
    assert await stream_len(r, queue_name) == 0


async def test_retry_member_bytes(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    backoff = BackoffSpec.exponential(250, multiplier=3, max_ms=10_000, jitter_ms=50)

    async def handler(job: Job) -> None:
        raise ValueError("retry me")

    async with Queue(queue_name, redis_url=redis_url) as q:
        # The first retry waits 250-300 ms; the test reads the member before.
        job = await q.add(
            "send-email", {"to": "a@x", "n": 1}, attempts=5, backoff=backoff
        )
        unnamed = await q.add(
            "", 1, attempts=2, backoff=BackoffSpec.fixed(60_000, jitter_ms=0)
        )
    want = (
        struct.pack("<I", len(b"send-email"))
        + b"send-email"
        + _envelope_bytes(
            job.id,
            bytes.fromhex("82 a2 74 6f a3 61 40 78 a1 6e 01"),
            job.created_at_ms,
            1,
            EXP_OVERRIDE,
        )
    )
    want_unnamed = b"\x00\x00\x00\x00" + _envelope_bytes(
        unnamed.id,
        b"\x01",
        unnamed.created_at_ms,
        1,
        b"\x92\x02\x95\xa5fixed\xcd\xea\x60\xc0\xc0\x00",
    )
    seen: set[bytes] = set()

    async def both_delayed() -> bool:
        seen.update(await r.zrange(key(queue_name, "delayed"), 0, -1))
        return want in seen and want_unnamed in seen

    async with running(fast_worker(queue_name, handler, redis_url)):
        await wait_until(
            both_delayed, interval=0.005, what="both retries in the delayed zset"
        )


async def test_dlq_entry_field_order(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    async def handler(job: Job) -> None:
        raise ValueError(f"fail {job.name or 'anon'}")

    async with Queue(queue_name, redis_url=redis_url) as q:
        named = await q.add("nm", 1, attempts=1)
        unnamed = await q.add("", 2, attempts=1)
    src = {
        msgpack.unpackb(f[b"d"], raw=False)[0]: sid
        for sid, f in await r.xrange(key(queue_name, "stream"))
    }
    async with running(fast_worker(queue_name, handler, redis_url)):
        await wait_until(
            lambda: _xlen_is(r, key(queue_name, "dlq"), 2), what="two DLQ entries"
        )
    entries = {
        msgpack.unpackb(f[b"d"], raw=False)[0]: f
        for _, f in await dlq_entries(r, queue_name)
    }
    fn, fu = entries[named.id], entries[unnamed.id]
    assert list(fn) == [b"d", b"n", b"source_id", b"reason", b"detail"]
    assert list(fu) == [b"d", b"source_id", b"reason", b"detail"]
    # d is the envelope as routed (attempt not incremented).
    assert fn[b"d"] == _envelope_bytes(
        named.id, b"\x01", named.created_at_ms, 0, b"\x92\x01\xc0"
    )
    assert fn[b"n"] == b"nm"
    assert fn[b"source_id"] == src[named.id] and fu[b"source_id"] == src[unnamed.id]
    assert fn[b"reason"] == b"retries_exhausted"
    assert fn[b"detail"] == b"ValueError: fail nm"
    assert fu[b"detail"] == b"ValueError: fail anon"


async def _xlen_is(r: aioredis.Redis, k: bytes, n: int) -> bool:
    return await r.xlen(k) == n


async def test_hand_written_short_envelopes(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    """Readers accept 3-5 element envelopes; a missing attempt is 0."""
    seen: dict[str, Job] = {}

    async def handler(job: Job) -> None:
        seen[job.id] = job

    created = now_ms() - 1_000
    stream = key(queue_name, "stream")
    await r.xadd(
        stream, {"d": envelope("three", {"a": 1}, created, attempt=None), "n": "h3"}
    )
    await r.xadd(stream, {"d": envelope("four", "x", created, attempt=2)})
    await r.xadd(
        stream, {"d": envelope("five", "y", created, attempt=0, retry=[None, None])}
    )
    # A small created_at_ms encoded as a positive fixint instead of cf.
    await r.xadd(
        stream,
        {"d": msgpack.packb(["tiny", msgpack.packb(7), 5, 0], use_bin_type=True)},
    )
    async with running(fast_worker(queue_name, handler, redis_url)):
        await wait_until(lambda: len(seen) == 4, what="four jobs")
        await wait_until(lambda: _xlen_is(r, stream, 0), what="acked")
    assert seen["three"].attempt == 1
    assert seen["three"].data == {"a": 1} and seen["three"].name == "h3"
    assert seen["three"].created_at_ms == created
    assert seen["four"].attempt == 3 and seen["four"].name == ""
    assert seen["five"].attempt == 1 and seen["five"].data == "y"
    assert seen["tiny"].data == 7 and seen["tiny"].created_at_ms == 5
    assert await pending(r, queue_name) == 0
    assert await r.xlen(key(queue_name, "dlq")) == 0


async def test_events_layout(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    done = asyncio.Event()

    async def handler(job: Job) -> None:
        done.set()

    async with Queue(queue_name, redis_url=redis_url) as q:
        job = await q.add("ev", 1)
    async with running(fast_worker(queue_name, handler, redis_url)):
        await asyncio.wait_for(done.wait(), 10)
        await wait_until(
            lambda: _xlen_is(r, key(queue_name, "stream"), 0), what="acked"
        )
    raw = [f for _, f in await r.xrange(key(queue_name, "events"))]
    mine = [f for f in raw if f.get(b"id") == job.id.encode()]
    assert [list(f) for f in mine] == [
        [b"e", b"id", b"ts", b"n", b"attempt"],
        [b"e", b"id", b"ts", b"n", b"attempt", b"duration_us"],
    ]
    assert [f[b"e"] for f in mine] == [b"active", b"completed"]
    assert all(
        f[b"ts"].isdigit() and abs(int(f[b"ts"]) - now_ms()) < 60_000 for f in mine
    )
