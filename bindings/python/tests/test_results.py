"""The result backend: handler return values stored by the Worker
(store_results, result_ttl_ms), read by Queue.get_job_result(_bulk) and
Job.wait_for_result."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from typing import Any

import msgpack
import pytest
import redis.asyncio as aioredis
from helpers import fast_worker, key, running, wait_until

import chasquimq._events as events_mod
from chasquimq import (
    ClosedError,
    Job,
    OperationTimeoutError,
    Queue,
    QueueEvents,
)

VALUES: list[Any] = [
    0,
    -7,
    2**63 - 1,
    2.5,
    -0.1,
    "",
    "héllo ✓",
    True,
    False,
    {"a": 1, "b": "x"},
    {1: "int key"},
    [],
    [1, "two", 3.0, None],
    b"\x00\xffbin",
    {
        "user": {
            "id": 7,
            "tags": ["a", "b"],
            "raw": b"\x01",
            "score": 9.75,
            "ok": True,
            "none": None,
        }
    },
    [[[]], {"deep": [{"deeper": [1, 2, {"deepest": "z"}]}]}],
]


def result_key(queue: str, job_id: str) -> bytes:
    return key(queue, f"result:{job_id}")


async def echo(job: Job) -> Any:
    return VALUES[job.data]


async def test_round_trips(redis_url: str, queue_name: str, r: aioredis.Redis) -> None:
    async with Queue(queue_name, redis_url=redis_url) as q:
        jobs = await q.add_bulk(
            [{"name": "echo", "data": i} for i in range(len(VALUES))]
        )
        async with running(
            fast_worker(queue_name, echo, redis_url, store_results=True)
        ):
            got = await asyncio.gather(*(j.wait_for_result(timeout=10) for j in jobs))
        assert got == VALUES
        # Types survive exactly (bool stays bool, float stays float, bytes stay bytes).
        assert [type(v) for v in got] == [type(v) for v in VALUES]
        for j, v in zip(jobs, VALUES, strict=True):
            got_one = await q.get_job_result(j.id)
            assert got_one == v and type(got_one) is type(v)
            # The stored bytes are the plain msgpack of the value.
            assert await r.get(result_key(queue_name, j.id)) == msgpack.packb(
                v, use_bin_type=True
            )
        assert await q.get_job_result_bulk([j.id for j in jobs]) == VALUES


async def test_tuple_comes_back_as_list(redis_url: str, queue_name: str) -> None:
    async def handler(job: Job) -> Any:
        return (1, (2, 3))

    async with Queue(queue_name, redis_url=redis_url) as q:
        job = await q.add("t", None)
        async with running(
            fast_worker(queue_name, handler, redis_url, store_results=True)
        ):
            assert await job.wait_for_result(timeout=10) == [1, [2, 3]]


async def test_none_stores_nothing(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    async def handler(job: Job) -> None:
        return None

    async with Queue(queue_name, redis_url=redis_url) as q:
        job = await q.add("void", 1)
        waiter = asyncio.ensure_future(job.wait_for_result(timeout=20, poll_interval=5))
        await asyncio.sleep(0.1)
        t0 = time.monotonic()
        async with running(
            fast_worker(queue_name, handler, redis_url, store_results=True)
        ):
            # A `completed` event seen while waiting says the job finished
            # without a result: no need to wait for the timeout.
            assert await waiter is None
            assert time.monotonic() - t0 < 4
        assert await r.exists(result_key(queue_name, job.id)) == 0
        assert await q.get_job_result(job.id) is None


async def test_store_results_off_stores_nothing(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    done = asyncio.Event()

    async def handler(job: Job) -> dict[str, int]:
        done.set()
        return {"x": 1}

    async with Queue(queue_name, redis_url=redis_url) as q:
        job = await q.add("a", 1)
        async with running(fast_worker(queue_name, handler, redis_url)):
            await asyncio.wait_for(done.wait(), 10)
            await wait_until(
                lambda: _completed(r, queue_name, job.id), what="completed"
            )
        assert await q.get_job_result(job.id) is None
    assert await r.keys(key(queue_name, "result:*")) == []


async def _completed(r: aioredis.Redis, queue: str, job_id: str) -> bool:
    for _, f in await r.xrange(key(queue, "events")):
        if f[b"e"] == b"completed" and f[b"id"] == job_id.encode():
            return True
    return False


async def test_ttl_rounds_up_to_whole_seconds(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    async with Queue(queue_name, redis_url=redis_url) as q:
        job = await q.add("a", 3)
        worker = fast_worker(
            queue_name, echo, redis_url, store_results=True, result_ttl_ms=1500
        )
        async with running(worker):
            await job.wait_for_result(timeout=10)
            pttl = await r.pttl(result_key(queue_name, job.id))
            ttl = await r.ttl(result_key(queue_name, job.id))
        assert 1500 < pttl <= 2000, pttl  # EX 2, not 1.5 s and not 1 s
        assert ttl == 2
        # And it does expire.
        await wait_until(
            lambda: _gone(q, job.id),
            timeout=4,
            interval=0.1,
            what="the result to expire",
        )


async def _gone(q: Queue, job_id: str) -> bool:
    return await q.get_job_result(job_id) is None


async def test_default_ttl_is_one_hour(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    async with Queue(queue_name, redis_url=redis_url) as q:
        job = await q.add("a", 0)
        async with running(
            fast_worker(queue_name, echo, redis_url, store_results=True)
        ):
            await job.wait_for_result(timeout=10)
        assert 3_590_000 < await r.pttl(result_key(queue_name, job.id)) <= 3_600_000


async def test_bulk_alignment_with_missing_ids(redis_url: str, queue_name: str) -> None:
    async with Queue(queue_name, redis_url=redis_url) as q:
        a, b = await q.add("a", 9), await q.add("b", 6)
        async with running(
            fast_worker(queue_name, echo, redis_url, store_results=True)
        ):
            await a.wait_for_result(timeout=10)
            await b.wait_for_result(timeout=10)
        got = await q.get_job_result_bulk(
            ["missing-1", a.id, "missing-2", b.id, a.id, "missing-3"]
        )
        assert got == [None, VALUES[9], None, VALUES[6], VALUES[9], None]
        assert await q.get_job_result_bulk([]) == []
        assert await q.get_job_result_bulk(("missing",)) == [None]
        assert await q.get_job_result("never-existed") is None


async def test_unencodable_result_fails_the_job_and_worker_goes_on(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    async def handler(job: Job) -> Any:
        return object() if job.data == "bad" else {"fine": job.data}

    async with Queue(queue_name, redis_url=redis_url) as q:
        bad = await q.add("x", "bad", attempts=1)
        good = await q.add("x", "after")
        async with running(
            fast_worker(queue_name, handler, redis_url, store_results=True)
        ):
            assert await good.wait_for_result(timeout=10) == {"fine": "after"}
            dlq = await wait_until(lambda: q.peek_dlq(), what="the DLQ entry")
        assert await q.get_job_result(bad.id) is None
    assert len(dlq) == 1
    assert dlq[0]["job_id"] == bad.id and dlq[0]["reason"] == "retries_exhausted"
    assert "msgpack" in dlq[0]["detail"]
    failed = [
        f
        for _, f in await r.xrange(key(queue_name, "events"))
        if f[b"e"] == b"failed" and f[b"id"] == bad.id.encode()
    ]
    assert len(failed) == 1 and b"msgpack" in failed[0][b"reason"]


# ---- wait_for_result --------------------------------------------------


async def test_wait_for_result_wakes_on_the_completed_event(
    redis_url: str, queue_name: str
) -> None:
    async def handler(job: Job) -> str:
        await asyncio.sleep(0.3)
        return "done"

    async with Queue(queue_name, redis_url=redis_url) as q:
        job = await q.add("slow", 1)
        async with running(
            fast_worker(queue_name, handler, redis_url, store_results=True)
        ):
            t0 = time.monotonic()
            # A poll interval far above the handler time: only the event can
            # deliver the result this early.
            assert await job.wait_for_result(timeout=30, poll_interval=10) == "done"
            assert 0.25 < time.monotonic() - t0 < 3


async def test_wait_for_result_polls_when_events_are_off(
    redis_url: str, queue_name: str
) -> None:
    async def handler(job: Job) -> str:
        await asyncio.sleep(0.2)
        return "polled"

    async with Queue(queue_name, redis_url=redis_url) as q:
        job = await q.add("slow", 1)
        worker = fast_worker(
            queue_name, handler, redis_url, store_results=True, events_enabled=False
        )
        async with running(worker):
            assert await job.wait_for_result(timeout=10, poll_interval=0.05) == "polled"


async def test_wait_for_result_already_stored(redis_url: str, queue_name: str) -> None:
    async with Queue(queue_name, redis_url=redis_url) as q:
        job = await q.add("a", 4)
        async with running(
            fast_worker(queue_name, echo, redis_url, store_results=True)
        ):
            await wait_until(lambda: q.get_job_result(job.id), what="the result")
        t0 = time.monotonic()
        assert await job.wait_for_result(timeout=5, poll_interval=3) == VALUES[4]
        assert time.monotonic() - t0 < 1


async def test_many_waiters(redis_url: str, queue_name: str) -> None:
    async def handler(job: Job) -> int:
        await asyncio.sleep(0.01)
        return job.data * 2

    async with Queue(queue_name, redis_url=redis_url) as q:
        jobs = await q.add_bulk([{"name": "d", "data": i} for i in range(200)])
        waits = [j.wait_for_result(timeout=20, poll_interval=5) for j in jobs]
        # Two waiters on one job both get it.
        waits.append(jobs[0].wait_for_result(timeout=20, poll_interval=5))
        async with running(
            fast_worker(queue_name, handler, redis_url, store_results=True)
        ):
            t0 = time.monotonic()
            got = await asyncio.gather(*waits)
            # Every waiter was woken by its event, none by the 5 s poll.
            assert time.monotonic() - t0 < 4
    assert got == [i * 2 for i in range(200)] + [0]


async def test_wait_for_result_timeout(redis_url: str, queue_name: str) -> None:
    async with Queue(queue_name, redis_url=redis_url) as q:
        job = await q.add("nobody-runs-this", 1)
        t0 = time.monotonic()
        with pytest.raises(asyncio.TimeoutError) as ei:
            await job.wait_for_result(timeout=0.3, poll_interval=0.05)
        elapsed = time.monotonic() - t0
        assert 0.28 <= elapsed < 1.5, elapsed
        assert isinstance(ei.value, OperationTimeoutError)
        assert job.id in str(ei.value)
        # A poll interval longer than the timeout still ends at the deadline.
        t0 = time.monotonic()
        with pytest.raises(asyncio.TimeoutError):
            await job.wait_for_result(timeout=0.2, poll_interval=60)
        assert time.monotonic() - t0 < 1.0


async def test_wait_for_result_cancellation_leaves_nothing_running(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    clients_before = len(await r.client_list())
    blocked_before = int((await r.info("clients"))["blocked_clients"])
    q = Queue(queue_name, redis_url=redis_url)
    job = await q.add("never", 1)
    me = asyncio.current_task()
    waiter = asyncio.ensure_future(job.wait_for_result(timeout=30, poll_interval=0.05))
    await asyncio.sleep(0.3)
    assert not waiter.done()
    t0 = time.monotonic()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert time.monotonic() - t0 < 0.5
    assert waiter.cancelled()
    # Only the Queue's shared listener may still run; no waiter is left.
    others = [t for t in asyncio.all_tasks() if t is not me]
    assert len(others) <= 1
    assert q._results._waiters == {}
    await q.close()
    assert [t for t in asyncio.all_tasks() if t is not me] == []
    # Every connection the Queue opened (producer, listener) is closed.
    await wait_until(
        lambda: _clients_back(r, clients_before, blocked_before),
        timeout=3,
        what="connections to close",
    )


async def _clients_back(r: aioredis.Redis, clients: int, blocked: int) -> bool:
    info = await r.info("clients")
    return (
        len(await r.client_list()) <= clients
        and int(info["blocked_clients"]) <= blocked
    )


async def test_cancel_via_wait_for(redis_url: str, queue_name: str) -> None:
    async with Queue(queue_name, redis_url=redis_url) as q:
        job = await q.add("never", 1)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(job.wait_for_result(timeout=30), 0.2)
        assert q._results._waiters == {}


async def test_close_wakes_waiters_with_closed_error(
    redis_url: str, queue_name: str
) -> None:
    q = Queue(queue_name, redis_url=redis_url)
    job = await q.add("never", 1)
    waiter = asyncio.ensure_future(job.wait_for_result(timeout=30, poll_interval=10))
    await asyncio.sleep(0.2)
    t0 = time.monotonic()
    await q.close()
    with pytest.raises(ClosedError):
        await asyncio.wait_for(waiter, 5)
    assert time.monotonic() - t0 < 1
    with pytest.raises(ClosedError):
        await job.wait_for_result(timeout=1)


async def test_wait_for_result_on_a_handler_job_raises_runtime_error(
    redis_url: str, queue_name: str
) -> None:
    caught: list[BaseException] = []

    async def handler(job: Job) -> None:
        try:
            await job.wait_for_result(timeout=1)
        except BaseException as e:
            caught.append(e)

    async with Queue(queue_name, redis_url=redis_url) as q:
        await q.add("a", 1)
        async with running(fast_worker(queue_name, handler, redis_url)):
            await wait_until(lambda: caught, what="the handler to run")
    assert isinstance(caught[0], RuntimeError)
    assert "Queue.add" in str(caught[0])
    # A Job built by hand has no queue either.
    with pytest.raises(RuntimeError):
        await Job("id", "n", 1, 1, 0).wait_for_result()


@pytest.mark.parametrize(
    "kw",
    [
        {"timeout": 0},
        {"timeout": -1},
        {"timeout": math.nan},
        {"timeout": math.inf},
        {"poll_interval": 0},
        {"poll_interval": -0.5},
    ],
)
async def test_wait_for_result_rejects_non_positive_args(kw: dict[str, float]) -> None:
    # No Redis needed: the check comes first.
    q = Queue("unused", redis_url="redis://127.0.0.1:1")
    job = Job("id", "n", 1, 0, 0, _queue=q)
    with pytest.raises(ValueError):
        await job.wait_for_result(**kw)
    await q.close()


async def test_result_listener_shares_one_connection(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    """Concurrent waiters of one Queue share one blocked XREAD."""
    blocked_before = int((await r.info("clients"))["blocked_clients"])
    async with Queue(queue_name, redis_url=redis_url) as q:
        jobs = await q.add_bulk(
            [{"name": "n", "data": i % len(VALUES)} for i in range(20)]
        )
        waits = [
            asyncio.ensure_future(j.wait_for_result(timeout=30, poll_interval=10))
            for j in jobs
        ]
        await asyncio.sleep(0.3)
        assert int((await r.info("clients"))["blocked_clients"]) == blocked_before + 1
        async with running(
            fast_worker(queue_name, echo, redis_url, store_results=True)
        ):
            got = await asyncio.gather(*waits)
        assert got == [VALUES[i % len(VALUES)] for i in range(20)]
    assert int((await r.info("clients"))["blocked_clients"]) == blocked_before


async def test_events_and_results_together(redis_url: str, queue_name: str) -> None:
    """A QueueEvents subscriber sees `completed` for a job whose result is
    already readable at that moment (same atomic step)."""
    async with (
        Queue(queue_name, redis_url=redis_url) as q,
        QueueEvents(
            queue_name, redis_url=redis_url, last_event_id="0", block_ms=100
        ) as evs,
    ):
        jobs = await q.add_bulk([{"name": "e", "data": i} for i in range(len(VALUES))])
        want = {j.id: VALUES[j.data] for j in jobs}
        async with running(
            fast_worker(queue_name, echo, redis_url, store_results=True)
        ):
            async for ev in evs:
                if ev.name == "completed":
                    assert await q.get_job_result(ev.job_id) == want.pop(ev.job_id)
                    if not want:
                        break


async def test_listener_stops_when_idle_and_restarts(
    redis_url: str, queue_name: str, r: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events_mod, "_LISTENER_IDLE_S", 0.2)
    monkeypatch.setattr(events_mod, "_LISTENER_BLOCK_MS", 100)
    async with Queue(queue_name, redis_url=redis_url) as q:
        async with running(
            fast_worker(queue_name, echo, redis_url, store_results=True)
        ):
            for i in range(2):
                job = await q.add("a", i)
                t0 = time.monotonic()
                assert (
                    await job.wait_for_result(timeout=10, poll_interval=10) == VALUES[i]
                )
                assert time.monotonic() - t0 < 3  # woken by the (re)started listener
                # No waiters left: the listener ends on its own and lets go
                # of its connection.
                await wait_until(
                    lambda: not _listener_tasks(),
                    timeout=3,
                    what="the idle listener to stop",
                )


def _listener_tasks() -> list[asyncio.Task[Any]]:
    return [
        t
        for t in asyncio.all_tasks()
        if t.get_coro().__qualname__ == "ResultWaiters._run"  # type: ignore[union-attr]
    ]


async def test_queue_shared_with_another_thread(
    redis_url: str, queue_name: str
) -> None:
    """A waiter on another event loop than the listener's falls back to polling."""
    async with Queue(queue_name, redis_url=redis_url) as q:
        a, b = await q.add("a", 1), await q.add("b", 2)
        out: list[Any] = []

        def other_thread() -> None:
            out.append(asyncio.run(b.wait_for_result(timeout=10, poll_interval=0.05)))

        here = asyncio.ensure_future(a.wait_for_result(timeout=10, poll_interval=5))
        await asyncio.sleep(0.1)  # the listener now lives on this loop
        t = threading.Thread(target=other_thread)
        t.start()
        async with running(
            fast_worker(queue_name, echo, redis_url, store_results=True)
        ):
            assert await here == VALUES[1]
            await asyncio.to_thread(t.join, 10)
        assert out == [VALUES[2]]
