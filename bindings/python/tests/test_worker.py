"""Worker: constructor surface, run/close lifecycle, concurrency, Job fields,
events switch, consumer groups, engine defaults."""

from __future__ import annotations

import asyncio
import time

import msgpack
import redis.asyncio as aioredis
from helpers import (
    envelope,
    events,
    fast_worker,
    key,
    now_ms,
    pending,
    queue_keys,
    running,
    stream_len,
    wait_until,
)

from chasquimq import BackoffSpec, Job, Queue, Worker


async def _noop(job: Job) -> None:
    return None


async def _groups(r: aioredis.Redis, queue: str) -> list[dict]:
    return await r.xinfo_groups(key(queue, "stream"))


async def _consumers(
    r: aioredis.Redis, queue: str, group: str = "default"
) -> list[dict]:
    return await r.xinfo_consumers(key(queue, "stream"), group)


async def test_every_constructor_parameter_accepted(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    seen: list[Job] = []
    done = asyncio.Event()

    async def handler(job: Job) -> str:
        seen.append(job)
        done.set()
        return "ok"

    w = Worker(
        queue_name,
        handler,
        redis_url=redis_url,
        concurrency=7,
        max_attempts=3,
        group="grp-all",
        consumer_id="consumer-all",
        read_block_ms=150,
        read_count=5,
        claim_min_idle_ms=2_000,
        max_payload_bytes=10_000,
        dlq_max_stream_len=500,
        events_enabled=True,
        delayed_enabled=True,
        run_scheduler=False,
        scheduler_tick_ms=500,
        store_results=False,
        result_ttl_ms=5_000,
        shutdown_timeout_ms=2_000,
    )
    assert w.name == queue_name
    async with Queue(queue_name, redis_url=redis_url) as q:
        job = await q.add("all", {"k": 1})
    async with running(w):
        await asyncio.wait_for(done.wait(), 10)
        consumers = await _consumers(r, queue_name, "grp-all")
        assert [c["name"] for c in consumers] == [b"consumer-all"]
        await wait_until(
            lambda: _is_zero(stream_len(r, queue_name)), what="entry deleted"
        )
    assert [j.id for j in seen] == [job.id]
    assert [g["name"] for g in await _groups(r, queue_name)] == [b"grp-all"]
    # store_results=False: nothing written for the returned value.
    assert not await r.exists(key(queue_name, f"result:{job.id}"))


async def _is_zero(aw) -> bool:  # type: ignore[no-untyped-def]
    return (await aw) == 0


async def test_optional_parameters_none_use_engine_defaults(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    """None for every optional parameter; the engine defaults show through
    behaviour: max_payload_bytes = 1 MiB, max_attempts = 25, backoff =
    exponential 100 ms x2 capped at 30 s with 100 ms jitter."""
    ran: list[Job] = []

    async def handler(job: Job) -> None:
        ran.append(job)
        if job.name == "fail":
            raise RuntimeError("nope")

    w = Worker(
        queue_name,
        handler,
        redis_url=redis_url,
        consumer_id=None,
        read_block_ms=None,
        read_count=None,
        claim_min_idle_ms=None,
        max_payload_bytes=None,
        dlq_max_stream_len=None,
        scheduler_tick_ms=None,
        result_ttl_ms=None,
    )
    stream = key(queue_name, "stream")
    fits = msgpack.packb(b"x" * (1_048_576 - 5), use_bin_type=True)
    too_big = msgpack.packb(b"x" * (1_048_576 - 4), use_bin_type=True)
    assert len(fits) == 1_048_576 and len(too_big) == 1_048_577
    t = now_ms()
    await r.xadd(stream, {"d": envelope("fits", None, t, raw_payload=fits)})
    await r.xadd(stream, {"d": envelope("too-big", None, t, raw_payload=too_big)})
    # Attempt counters just below and at the default max_attempts of 25.
    await r.xadd(stream, {"d": envelope("at-23", None, t, 23), "n": "fail"})
    await r.xadd(stream, {"d": envelope("at-24", None, t, 24), "n": "fail"})
    async with running(w):
        await wait_until(lambda: len(ran) == 3, what="three handler runs")
        await wait_until(
            lambda: _is_zero(stream_len(r, queue_name)), what="stream drained"
        )
    assert sorted(j.id for j in ran) == ["at-23", "at-24", "fits"]
    assert {j.id: j.attempt for j in ran}["at-24"] == 25
    dlq = {
        msgpack.unpackb(f[b"d"], raw=False)[0]: f
        for _, f in await r.xrange(key(queue_name, "dlq"))
    }
    assert set(dlq) == {"too-big", "at-24"}
    assert dlq["too-big"][b"reason"] == b"oversize_payload"
    assert dlq["at-24"][b"reason"] == b"retries_exhausted"
    # at-23 ran as attempt 24 and was scheduled for attempt 25 with the default
    # backoff: min(100 * 2^23, 30000) + [0, 100).
    retry = [e for e in await events(r, queue_name) if e["e"] == "retry-scheduled"]
    assert [(e["id"], e["attempt"]) for e in retry] == [("at-23", "25")]
    assert 30_000 <= int(retry[0]["backoff_ms"]) < 30_100
    assert await r.zcard(key(queue_name, "delayed")) == 1


async def test_run_is_idempotent(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    counts: dict[str, int] = {}

    async def handler(job: Job) -> None:
        counts[job.id] = counts.get(job.id, 0) + 1

    w = fast_worker(queue_name, handler, redis_url)
    assert not w.is_running and not w.is_closed
    t1 = asyncio.ensure_future(w.run())
    t2 = asyncio.ensure_future(w.run())
    await wait_until(lambda: w.is_running, what="is_running")
    async with Queue(queue_name, redis_url=redis_url) as q:
        jobs = await q.add_bulk([{"name": "x", "data": i} for i in range(20)])
    await wait_until(lambda: len(counts) == 20, what="20 jobs")
    # One engine loop: one consumer in the group.
    assert len(await _consumers(r, queue_name)) == 1
    t3 = asyncio.ensure_future(w.run())
    await asyncio.sleep(0)
    assert not t1.done() and not t2.done() and not t3.done()
    await w.close()
    await asyncio.wait_for(asyncio.gather(t1, t2, t3), 10)
    assert not w.is_running and w.is_closed
    assert counts == {j.id: 1 for j in jobs}


async def test_close_idempotent_and_safe_while_running(
    redis_url: str, queue_name: str
) -> None:
    w = fast_worker(queue_name, _noop, redis_url)
    task = asyncio.ensure_future(w.run())
    await wait_until(lambda: w.is_running, what="is_running")
    t0 = time.monotonic()
    # close() does not await the loop itself, so concurrent closes all return.
    await asyncio.wait_for(asyncio.gather(w.close(), w.close(), w.close()), 5)
    assert w.is_closed
    await asyncio.wait_for(task, 10)
    assert time.monotonic() - t0 < 5
    assert not w.is_running
    await w.close()
    assert w.is_closed
    # run() after close returns at once.
    await asyncio.wait_for(w.run(), 5)


async def test_close_before_run(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    w = fast_worker(queue_name, _noop, redis_url)
    await w.close()
    assert w.is_closed and not w.is_running
    await asyncio.wait_for(w.run(), 5)
    assert await queue_keys(r, queue_name) == []


async def test_async_with(redis_url: str, queue_name: str) -> None:
    done = asyncio.Event()

    async def handler(job: Job) -> None:
        done.set()

    async with Queue(queue_name, redis_url=redis_url) as q:
        await q.add("x", 1)
    async with fast_worker(queue_name, handler, redis_url) as w:
        assert isinstance(w, Worker)
        task = asyncio.ensure_future(w.run())
        await asyncio.wait_for(done.wait(), 10)
    # __aexit__ closed it and waited for the loop.
    assert w.is_closed and not w.is_running
    assert task.done()
    await task


async def test_concurrency_bounds_in_flight_handlers(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    in_flight = 0
    max_seen = 0
    done = 0

    async def handler(job: Job) -> None:
        nonlocal in_flight, max_seen, done
        in_flight += 1
        max_seen = max(max_seen, in_flight)
        await asyncio.sleep(0.15)
        in_flight -= 1
        done += 1

    async with Queue(queue_name, redis_url=redis_url) as q:
        await q.add_bulk([{"name": "slow", "data": i} for i in range(12)])
    w = fast_worker(queue_name, handler, redis_url, concurrency=3)
    async with running(w):
        await wait_until(lambda: done == 12, what="12 jobs")
    assert max_seen == 3
    assert await pending(r, queue_name) == 0


async def test_job_fields(redis_url: str, queue_name: str) -> None:
    seen: list[Job] = []

    async def handler(job: Job) -> None:
        seen.append(job)

    async with Queue(queue_name, redis_url=redis_url) as q:
        a = await q.add(
            "named", {"nested": [1, "two", None, 3.5, True], "b": b"\x00\xff"}
        )
        b = await q.add("", "text")
    w = fast_worker(queue_name, handler, redis_url)
    async with running(w):
        await wait_until(lambda: len(seen) == 2, what="two jobs")
    by_id = {j.id: j for j in seen}
    ja, jb = by_id[a.id], by_id[b.id]
    assert isinstance(ja, Job)
    assert ja.name == "named" and ja.data == {
        "nested": [1, "two", None, 3.5, True],
        "b": b"\x00\xff",
    }
    assert ja.attempt == 1 and ja.attempts_made == 1
    assert ja.created_at_ms == a.created_at_ms
    assert jb.name == "" and jb.data == "text" and jb.created_at_ms == b.created_at_ms
    assert ja == a.__class__(a.id, "named", ja.data, 1, a.created_at_ms)


async def test_events_enabled_false_writes_no_events(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    runs: list[int] = []

    async def handler(job: Job) -> None:
        runs.append(job.attempt)
        if job.name == "fail":
            raise ValueError("x")

    async with Queue(queue_name, redis_url=redis_url) as q:
        await q.add("ok", 1)
        await q.add("fail", 2, attempts=2, backoff=BackoffSpec.fixed(0, jitter_ms=0))
        await q.add("later", 3, delay_ms=50)
    await r.xadd(key(queue_name, "stream"), {"d": b"\xc1junk"})
    # The producer wrote the `delayed` event; the worker must write nothing.
    assert [e["e"] for e in await events(r, queue_name)] == ["delayed"]
    await r.delete(key(queue_name, "events"))
    w = fast_worker(queue_name, handler, redis_url, events_enabled=False)
    async with running(w):
        await wait_until(lambda: len(runs) == 4, what="four runs")
        await wait_until(lambda: r.xlen(key(queue_name, "dlq")), what="dlq entries")
        await wait_until(
            lambda: _is_zero(stream_len(r, queue_name)), what="stream drained"
        )
    assert await r.xlen(key(queue_name, "dlq")) == 2
    assert not await r.exists(key(queue_name, "events"))


async def test_events_written_by_default(
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
            lambda: _has_event(r, queue_name, "completed"), what="completed event"
        )
    evs = [e for e in await events(r, queue_name) if e.get("id") == job.id]
    assert [e["e"] for e in evs] == ["active", "completed"]
    assert evs[0]["attempt"] == "1" and evs[0]["n"] == "ev"
    assert evs[1]["attempt"] == "1" and int(evs[1]["duration_us"]) >= 0


async def _has_event(r: aioredis.Redis, queue: str, name: str) -> bool:
    return any(e["e"] == name for e in await events(r, queue))


async def test_default_group_created_at_zero_with_mkstream(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    assert await queue_keys(r, queue_name) == []
    w = fast_worker(queue_name, _noop, redis_url)
    async with running(w):
        await wait_until(
            lambda: r.exists(key(queue_name, "stream")), what="stream created"
        )
        groups = await _groups(r, queue_name)
    assert len(groups) == 1
    assert groups[0]["name"] == b"default"
    assert groups[0]["last-delivered-id"] == b"0-0"


async def test_group_at_zero_delivers_jobs_added_before_the_group(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    seen: list[str] = []

    async def handler(job: Job) -> None:
        seen.append(job.id)

    async with Queue(queue_name, redis_url=redis_url) as q:
        jobs = await q.add_bulk([{"name": "early", "data": i} for i in range(5)])
    assert await r.xinfo_groups(key(queue_name, "stream")) == []
    async with running(fast_worker(queue_name, handler, redis_url)):
        await wait_until(lambda: len(seen) == 5, what="five early jobs")
    assert sorted(seen) == sorted(j.id for j in jobs)


async def test_custom_group(redis_url: str, queue_name: str, r: aioredis.Redis) -> None:
    seen_a: list[str] = []

    async def ha(job: Job) -> None:
        seen_a.append(job.id)

    async with Queue(queue_name, redis_url=redis_url) as q:
        job = await q.add("x", 1)
    wa = fast_worker(queue_name, ha, redis_url, group="alpha")
    async with running(wa):
        await wait_until(lambda: seen_a, what="alpha run")
    names = sorted(g["name"] for g in await _groups(r, queue_name))
    assert names == [b"alpha"]
    assert seen_a == [job.id]
    assert await pending(r, queue_name, "alpha") == 0


async def _stream_job_ids(r: aioredis.Redis, queue: str) -> list[int]:
    """The `data` of every job still in the stream, in stream order."""
    out = []
    for _id, fields in await r.xrange(key(queue, "stream")):
        env = msgpack.unpackb(fields[b"d"])
        out.append(msgpack.unpackb(env[1]))
    return out


async def _hold_one_job(
    r: aioredis.Redis,
    redis_url: str,
    queue: str,
    *,
    jobs: int,
    held: int,
    concurrency: int,
    left: list[int],
) -> list[int]:
    """Runs jobs 0..jobs-1 with job `held` blocked until the stream holds
    exactly the jobs `left` (and still does 0.3 s later), then lets it
    finish; returns the jobs in the order their handlers ended."""
    release = asyncio.Event()
    done: list[int] = []

    async def handler(job: Job) -> None:
        if job.data == held:
            await release.wait()
        done.append(job.data)

    async def stream_holds_left() -> bool:
        return await _stream_job_ids(r, queue) == left

    async def empty() -> bool:
        return await stream_len(r, queue) == 0

    async with Queue(queue, redis_url=redis_url) as q:
        await q.add_bulk([{"name": "j", "data": i} for i in range(jobs)])
    w = fast_worker(queue, handler, redis_url, concurrency=concurrency)
    async with running(w):
        await wait_until(stream_holds_left, what=f"the stream to hold jobs {left}")
        await asyncio.sleep(0.3)
        assert await _stream_job_ids(r, queue) == left
        assert await pending(r, queue) == 1
        release.set()
        await wait_until(lambda: len(done) == jobs, what="every job")
        await wait_until(empty, what="an empty stream")
    assert await pending(r, queue) == 0
    return done


async def test_acked_entries_deleted_while_an_older_job_runs(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    # Entries newer than the oldest pending one cannot go by MINID trim:
    # they are deleted one by one, and the old one stays until it is acked.
    done = await _hold_one_job(
        r, redis_url, queue_name, jobs=30, held=0, concurrency=4, left=[0]
    )
    assert sorted(done) == list(range(30)) and done[-1] == 0


async def test_deletes_never_reach_entries_not_yet_read(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    # With nothing pending after an ack, the trim cuts just past the acked
    # ids: the entries after them, not read yet, stay.
    done = await _hold_one_job(
        r,
        redis_url,
        queue_name,
        jobs=10,
        held=3,
        concurrency=1,
        left=list(range(3, 10)),
    )
    assert done == list(range(10))
