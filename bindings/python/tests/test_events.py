"""Lifecycle events: the exact sequence and fields the engine writes to
`{chasqui:<q>}:events`, read through QueueEvents (replay, "$", close while
blocked, numeric coercion), and events_enabled=False."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from helpers import fast_worker, key, now_ms, running, wait_until
from redisproc import free_port

from chasquimq import (
    BackoffSpec,
    Queue,
    QueueEvent,
    QueueEvents,
    RedisConnectionError,
    UnrecoverableError,
)

# docs/wire-format.md's events table: extra fields per event, in stream order.
WIRE_EXTRA = {
    "waiting": [],
    "active": ["attempt"],
    "completed": ["attempt", "duration_us"],
    "failed": ["attempt", "reason", "duration_us"],
    "retry-scheduled": ["attempt", "backoff_ms"],
    "dlq": ["attempt", "reason"],
    "drained": [],
    "delayed": ["delay_ms"],
}


async def collect(
    redis_url: str,
    queue: str,
    until: Callable[[list[QueueEvent]], bool],
    timeout: float = 15.0,
) -> list[QueueEvent]:
    """Replays the events stream from "0" until `until(events)` holds."""
    out: list[QueueEvent] = []
    async with QueueEvents(
        queue, redis_url=redis_url, last_event_id="0", block_ms=100
    ) as evs:

        async def go() -> None:
            async for ev in evs:
                out.append(ev)
                if until(out):
                    return

        try:
            await asyncio.wait_for(go(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"events so far: {out}") from None
    return out


def of(job_id: str, evs: list[QueueEvent]) -> list[QueueEvent]:
    return [e for e in evs if e.job_id == job_id]


def has(job_id: str, name: str) -> Callable[[list[QueueEvent]], bool]:
    return lambda evs: any(e.job_id == job_id and e.name == name for e in evs)


def seq(evs: list[QueueEvent]) -> list[tuple[str, dict[str, Any]]]:
    """(name, fields without ts) per event, after checking ts."""
    out = []
    now = now_ms()
    for e in evs:
        f = dict(e.fields)
        ts = f.pop("ts")
        assert isinstance(ts, int) and now - 60_000 < ts <= now + 1_000, e
        out.append((e.name, f))
    return out


async def check_wire(r: aioredis.Redis, queue: str) -> list[dict[bytes, bytes]]:
    """Every raw entry of the events stream has exactly the reference's
    fields, in order: e, id, ts, [n], extras; all ASCII, numbers decimal."""
    raw = [f for _, f in await r.xrange(key(queue, "events"))]
    for f in raw:
        e = f[b"e"].decode()
        named = b"n" in f
        want = ["e", "id", "ts"] + (["n"] if named else []) + WIRE_EXTRA[e]
        assert [k.decode() for k in f] == want, f
        assert f[b"ts"].isdigit()
        for k in (b"attempt", b"duration_us", b"backoff_ms", b"delay_ms"):
            if k in f:
                assert f[k].isdigit(), f
        if named:
            assert f[b"n"] != b""
    return raw


async def test_success_sequence(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    async def handler(job: Any) -> None:
        await asyncio.sleep(0.02)

    async with Queue(queue_name, redis_url=redis_url) as q:
        job = await q.add("send-email", {"to": "a@x"})
        async with running(fast_worker(queue_name, handler, redis_url)):
            evs = await collect(redis_url, queue_name, has(job.id, "completed"))
    mine = of(job.id, evs)
    assert seq(mine) == [
        ("active", {"attempt": 1}),
        ("completed", {"attempt": 1, "duration_us": mine[1].fields["duration_us"]}),
    ]
    dur = mine[1].fields["duration_us"]
    assert isinstance(dur, int) and 20_000 <= dur < 5_000_000
    assert all(e.job_name == "send-email" for e in mine)
    # Events are in time order.
    assert mine[0].fields["ts"] <= mine[1].fields["ts"]
    await check_wire(r, queue_name)


async def test_fails_twice_then_succeeds(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    runs = 0

    async def handler(job: Any) -> str:
        nonlocal runs
        runs += 1
        if job.attempt < 3:
            raise RuntimeError(f"boom {job.attempt}")
        return "ok"

    async with Queue(queue_name, redis_url=redis_url) as q:
        job = await q.add("flaky", 1, attempts=5, backoff=BackoffSpec.fixed(50))
        async with running(fast_worker(queue_name, handler, redis_url)):
            evs = await collect(redis_url, queue_name, has(job.id, "completed"))
    assert runs == 3
    mine = of(job.id, evs)
    got = seq(mine)
    durs = [f.pop("duration_us") for name, f in got if name in ("failed", "completed")]
    assert all(isinstance(d, int) and d >= 0 for d in durs) and len(durs) == 3
    # fixed(50) with no jitter given: the queue-wide jitter (100 ms) applies.
    backoffs = [f.pop("backoff_ms") for name, f in got if name == "retry-scheduled"]
    assert all(isinstance(b, int) and 50 <= b < 150 for b in backoffs), backoffs
    assert got == [
        ("active", {"attempt": 1}),
        ("failed", {"attempt": 1, "reason": "RuntimeError: boom 1"}),
        ("retry-scheduled", {"attempt": 2}),
        ("waiting", {}),
        ("active", {"attempt": 2}),
        ("failed", {"attempt": 2, "reason": "RuntimeError: boom 2"}),
        ("retry-scheduled", {"attempt": 3}),
        ("waiting", {}),
        ("active", {"attempt": 3}),
        ("completed", {"attempt": 3}),
    ]
    # Each retry waited its backoff before being promoted.
    assert mine[3].fields["ts"] >= mine[2].fields["ts"] + backoffs[0]
    assert mine[7].fields["ts"] >= mine[6].fields["ts"] + backoffs[1]
    assert all(e.job_name == "flaky" for e in mine)
    await check_wire(r, queue_name)


async def test_dlq_sequences(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    async def handler(job: Any) -> None:
        if job.data == "fatal":
            raise UnrecoverableError("no user")
        raise ValueError("nope")

    async with Queue(queue_name, redis_url=redis_url) as q:
        exhausted = await q.add(
            "x", "retry", attempts=2, backoff=BackoffSpec.fixed(10, jitter_ms=0)
        )
        fatal = await q.add("", "fatal", attempts=5)
        async with running(fast_worker(queue_name, handler, redis_url)):
            evs = await collect(
                redis_url,
                queue_name,
                lambda e: has(exhausted.id, "dlq")(e) and has(fatal.id, "dlq")(e),
            )
    got = seq(of(exhausted.id, evs))
    for _, f in got:
        f.pop("duration_us", None)
    assert got == [
        ("active", {"attempt": 1}),
        ("failed", {"attempt": 1, "reason": "ValueError: nope"}),
        ("retry-scheduled", {"attempt": 2, "backoff_ms": 10}),
        ("waiting", {}),
        ("active", {"attempt": 2}),
        ("failed", {"attempt": 2, "reason": "ValueError: nope"}),
        ("dlq", {"attempt": 2, "reason": "retries_exhausted"}),
    ]
    mine = of(fatal.id, evs)
    got = seq(mine)
    assert isinstance(got[1][1].pop("duration_us"), int)
    assert got == [
        ("active", {"attempt": 1}),
        ("failed", {"attempt": 1, "reason": "UnrecoverableError: no user"}),
        ("dlq", {"attempt": 1, "reason": "unrecoverable"}),
    ]
    assert all(e.job_name == "" for e in mine)
    await check_wire(r, queue_name)


async def test_delayed_then_waiting(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    async def handler(job: Any) -> None:
        return None

    async with Queue(queue_name, redis_url=redis_url) as q:
        job = await q.add("later", {"k": 1}, delay_ms=300)
        evs = await collect(redis_url, queue_name, has(job.id, "delayed"))
        assert seq(of(job.id, evs)) == [("delayed", {"delay_ms": 300})]
        async with running(fast_worker(queue_name, handler, redis_url)):
            evs = await collect(redis_url, queue_name, has(job.id, "completed"))
    mine = of(job.id, evs)
    got = seq(mine)
    got[-1][1].pop("duration_us")
    assert got == [
        ("delayed", {"delay_ms": 300}),
        ("waiting", {}),
        ("active", {"attempt": 1}),
        ("completed", {"attempt": 1}),
    ]
    assert mine[1].fields["ts"] >= mine[0].fields["ts"] + 300
    assert all(e.job_name == "later" for e in mine)
    await check_wire(r, queue_name)


async def test_named_and_unnamed(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    async def handler(job: Any) -> None:
        return None

    async with Queue(queue_name, redis_url=redis_url) as q:
        named = await q.add("report.daily", 1)
        unnamed = await q.add("", 2)
        async with running(fast_worker(queue_name, handler, redis_url)):
            evs = await collect(
                redis_url,
                queue_name,
                lambda e: (
                    has(named.id, "completed")(e) and has(unnamed.id, "completed")(e)
                ),
            )
    assert {e.job_name for e in of(named.id, evs)} == {"report.daily"}
    assert {e.job_name for e in of(unnamed.id, evs)} == {""}
    raw = await check_wire(r, queue_name)
    for f in raw:
        if f[b"id"] == named.id.encode():
            assert f[b"n"] == b"report.daily"
        elif f[b"id"] == unnamed.id.encode():
            assert b"n" not in f


async def test_drained(redis_url: str, queue_name: str, r: aioredis.Redis) -> None:
    async def handler(job: Any) -> None:
        return None

    async with Queue(queue_name, redis_url=redis_url) as q:
        jobs = await q.add_bulk([{"name": "a", "data": i} for i in range(3)])
        async with running(fast_worker(queue_name, handler, redis_url)):
            evs = await collect(
                redis_url,
                queue_name,
                lambda e: (
                    all(has(j.id, "completed")(e) for j in jobs)
                    and any(x.name == "drained" for x in e)
                ),
            )
    drained = [e for e in evs if e.name == "drained"]
    assert drained
    for e in drained:
        assert e.job_id is None and e.job_name == ""
        assert set(e.fields) == {"ts"} and isinstance(e.fields["ts"], int)
    # Drained comes after work: never before the first job was active.
    first_active = min(i for i, e in enumerate(evs) if e.name == "active")
    assert evs.index(drained[0]) > first_active
    raw = await check_wire(r, queue_name)
    assert any(f[b"e"] == b"drained" and f[b"id"] == b"" for f in raw)


async def test_events_disabled_writes_nothing(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    seen: list[tuple[str, int]] = []

    async def handler(job: Any) -> str:
        seen.append((job.data, job.attempt))
        if job.data == "flaky" and job.attempt == 1:
            raise RuntimeError("once")
        if job.data == "fatal":
            raise UnrecoverableError("fatal")
        return "ok"

    async with Queue(queue_name, redis_url=redis_url) as q:
        await q.add("a", "ok")
        await q.add("b", "flaky", attempts=3, backoff=BackoffSpec.fixed(20))
        await q.add("c", "fatal")
        worker = fast_worker(queue_name, handler, redis_url, events_enabled=False)
        async with running(worker):
            await wait_until(lambda: len(seen) == 4, what="4 runs")
            await wait_until(
                lambda: r.xlen(key(queue_name, "dlq")), what="the DLQ entry"
            )
            await asyncio.sleep(0.2)
    assert sorted(seen) == [("fatal", 1), ("flaky", 1), ("flaky", 2), ("ok", 1)]
    assert await r.exists(key(queue_name, "events")) == 0


# ---- QueueEvents ------------------------------------------------------


async def xadd(r: aioredis.Redis, queue: str, fields: dict[str, str]) -> str:
    return (await r.xadd(key(queue, "events"), fields)).decode()


async def blocked_clients(r: aioredis.Redis) -> int:
    return int((await r.info("clients"))["blocked_clients"])


async def test_replay_from_zero_in_order_without_gaps(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    for i in range(7):
        await xadd(
            r, queue_name, {"e": "active", "id": f"J{i}", "ts": "1", "attempt": str(i)}
        )
    got: list[QueueEvent] = []
    # count=2: several reads, each resuming after the last id.
    async with QueueEvents(
        queue_name, redis_url=redis_url, last_event_id="0", block_ms=100, count=2
    ) as evs:
        it = evs.__aiter__()
        for _ in range(7):
            got.append(await asyncio.wait_for(it.__anext__(), 5))
        # Entries added later arrive once each, after the replayed ones.
        for i in range(7, 10):
            await xadd(
                r,
                queue_name,
                {"e": "active", "id": f"J{i}", "ts": "1", "attempt": str(i)},
            )
        for _ in range(3):
            got.append(await asyncio.wait_for(it.__anext__(), 5))
    assert [e.job_id for e in got] == [f"J{i}" for i in range(10)]
    assert [e.fields["attempt"] for e in got] == list(range(10))


async def test_replay_from_an_id(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    ids = [
        await xadd(r, queue_name, {"e": "waiting", "id": f"J{i}", "ts": "1"})
        for i in range(4)
    ]
    async with QueueEvents(
        queue_name, redis_url=redis_url, last_event_id=ids[1]
    ) as evs:
        it = evs.__aiter__()
        got = [await asyncio.wait_for(it.__anext__(), 5) for _ in range(2)]
    assert [e.job_id for e in got] == ["J2", "J3"]


async def test_dollar_reads_only_new_events(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    await xadd(r, queue_name, {"e": "waiting", "id": "OLD", "ts": "1"})
    base = await blocked_clients(r)
    async with QueueEvents(queue_name, redis_url=redis_url, block_ms=150) as evs:
        nxt = asyncio.ensure_future(evs.__anext__())
        await wait_until(lambda: _more_blocked(r, base), what="a blocked XREAD")
        # Several block timeouts pass; nothing added meanwhile is skipped.
        await asyncio.sleep(0.4)
        await xadd(r, queue_name, {"e": "waiting", "id": "NEW1", "ts": "1"})
        await xadd(r, queue_name, {"e": "waiting", "id": "NEW2", "ts": "1"})
        first = await asyncio.wait_for(nxt, 5)
        second = await asyncio.wait_for(evs.__anext__(), 5)
    assert (first.job_id, second.job_id) == ("NEW1", "NEW2")


async def _more_blocked(r: aioredis.Redis, base: int) -> bool:
    return await blocked_clients(r) > base


async def test_close_while_blocked_is_prompt(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    base = await blocked_clients(r)
    evs = QueueEvents(queue_name, redis_url=redis_url, block_ms=30_000)
    got: list[QueueEvent] = []

    async def consume() -> None:
        async for ev in evs:
            got.append(ev)

    task = asyncio.ensure_future(consume())
    await wait_until(lambda: _more_blocked(r, base), what="a blocked XREAD")
    t0 = time.monotonic()
    await evs.close()
    await asyncio.wait_for(task, 5)  # iteration ends without an error
    elapsed = time.monotonic() - t0
    assert elapsed < 1.0, elapsed
    assert got == []
    # The connection is released: the server no longer holds a blocked read.
    await wait_until(
        lambda: _not_more_blocked(r, base), timeout=2, what="the read to go away"
    )
    await evs.close()  # twice is fine
    with pytest.raises(StopAsyncIteration):
        await evs.__anext__()
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []


async def _not_more_blocked(r: aioredis.Redis, base: int) -> bool:
    return await blocked_clients(r) <= base


async def test_close_from_inside_the_loop_and_async_with(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    for i in range(5):
        await xadd(r, queue_name, {"e": "waiting", "id": f"J{i}", "ts": "1"})
    got = []
    async with QueueEvents(queue_name, redis_url=redis_url, last_event_id="0") as evs:
        assert isinstance(evs, QueueEvents)
        async for ev in evs:
            got.append(ev.job_id)
            if len(got) == 2:
                await evs.close()  # the rest of the buffered batch is dropped
    assert got == ["J0", "J1"]


async def test_close_before_iterating(redis_url: str, queue_name: str) -> None:
    evs = QueueEvents(queue_name, redis_url=redis_url)
    await evs.close()
    assert [e async for e in evs] == []


async def test_cancelled_reader_loses_nothing(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    """A caller that times out on __anext__ leaves the read running; the next
    __anext__ picks it up, so entries are neither lost nor repeated."""
    async with QueueEvents(
        queue_name, redis_url=redis_url, last_event_id="0", block_ms=200
    ) as evs:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(evs.__anext__(), 0.05)
        await xadd(r, queue_name, {"e": "waiting", "id": "A", "ts": "1"})
        a = await asyncio.wait_for(evs.__anext__(), 5)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(evs.__anext__(), 0.3)
        await xadd(r, queue_name, {"e": "waiting", "id": "B", "ts": "1"})
        b = await asyncio.wait_for(evs.__anext__(), 5)
    assert (a.job_id, b.job_id) == ("A", "B")


async def test_parsing_and_numeric_coercion(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    await xadd(
        r,
        queue_name,
        {
            "e": "retry-scheduled",
            "id": "J1",
            "ts": "1700000000123",
            "n": "nm",
            "attempt": "2",
            "backoff_ms": "12x",  # malformed: stays a str
            "delay_ms": "-5",
            "duration_us": "1.5",  # not an int: stays a str
            "reason": "7",  # not a numeric field: stays a str
            "extra": "v",
        },
    )
    await xadd(r, queue_name, {"e": "drained", "id": "", "ts": "5"})
    await xadd(r, queue_name, {"e": "waiting", "id": "J2", "ts": "oops"})
    async with QueueEvents(queue_name, redis_url=redis_url, last_event_id="0") as evs:
        it = evs.__aiter__()
        a, b, c = [await asyncio.wait_for(it.__anext__(), 5) for _ in range(3)]
    assert a == QueueEvent(
        name="retry-scheduled",
        job_id="J1",
        job_name="nm",
        fields={
            "ts": 1700000000123,
            "attempt": 2,
            "backoff_ms": "12x",
            "delay_ms": -5,
            "duration_us": "1.5",
            "reason": "7",
            "extra": "v",
        },
    )
    assert b == QueueEvent(name="drained", job_id=None, job_name="", fields={"ts": 5})
    assert c == QueueEvent(
        name="waiting", job_id="J2", job_name="", fields={"ts": "oops"}
    )


async def test_live_events_from_a_worker(redis_url: str, queue_name: str) -> None:
    """QueueEvents from "$" sees a job's whole life as it happens."""

    async def handler(job: Any) -> int:
        return 1

    async with (
        Queue(queue_name, redis_url=redis_url) as q,
        QueueEvents(queue_name, redis_url=redis_url) as evs,
    ):
        it = evs.__aiter__()
        first = asyncio.ensure_future(it.__anext__())
        await asyncio.sleep(0.1)  # let the reader pin "$"
        job = await q.add("live", 1, delay_ms=50)
        got = [await asyncio.wait_for(first, 5)]
        async with running(fast_worker(queue_name, handler, redis_url)):
            while not (got[-1].name == "completed" and got[-1].job_id == job.id):
                got.append(await asyncio.wait_for(it.__anext__(), 10))
    assert [e.name for e in got if e.job_id == job.id] == [
        "delayed",
        "waiting",
        "active",
        "completed",
    ]


async def test_unreachable_redis_raises_typed_error(queue_name: str) -> None:
    evs = QueueEvents(queue_name, redis_url=f"redis://127.0.0.1:{free_port()}")
    with pytest.raises(RedisConnectionError):
        await asyncio.wait_for(evs.__anext__(), 30)
    await evs.close()
