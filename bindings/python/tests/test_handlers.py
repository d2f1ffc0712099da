"""Handlers written the way users write them: web clients, Redis clients,
structured concurrency, timeouts and context variables, each used in the
handler's first step (before anything is awaited) and after an await.

Every job must run in its own asyncio Task from its first step on; these
libraries all look up `asyncio.current_task()` (or cancel it) and fail
without one.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import anyio
import httpx
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from helpers import dlq_entries, events, fast_worker, running, wait_until

from chasquimq import Job, Queue

WHERE = ["first_step", "after_await"]

needs_311 = pytest.mark.skipif(
    sys.version_info < (3, 11), reason="asyncio.TaskGroup / asyncio.timeout are 3.11+"
)


async def _maybe_yield(where: str) -> None:
    if where == "after_await":
        await asyncio.sleep(0)


@pytest.fixture
async def web_url() -> AsyncIterator[str]:
    """A real HTTP server on a free port: GET /echo?n=<n>[&delay=<s>] -> {"n": n}."""

    async def echo(request: web.Request) -> web.Response:
        delay = float(request.query.get("delay", "0"))
        if delay:
            await asyncio.sleep(delay)
        return web.json_response({"n": int(request.query["n"])})

    app = web.Application()
    app.router.add_get("/echo", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def drive(
    redis_url: str,
    queue_name: str,
    handler: Callable[[Job], Any],
    n: int = 20,
    **worker_kw: Any,
) -> list[Any]:
    """Adds `n` jobs with data {"i": i}, runs a Worker until every job has a
    stored result, and returns the results in order. Fails if any job failed
    (a `failed` event or a DLQ entry)."""
    worker_kw.setdefault("concurrency", 10)
    r = aioredis.from_url(redis_url)
    try:
        async with Queue(queue_name, redis_url=redis_url) as q:
            jobs = await q.add_bulk([{"name": "j", "data": {"i": i}} for i in range(n)])
            w = fast_worker(
                queue_name, handler, redis_url, store_results=True, **worker_kw
            )
            ids = [j.id for j in jobs]

            async def settled() -> bool:
                failed = [e for e in await events(r, queue_name) if e["e"] == "failed"]
                assert not failed, f"jobs failed: {failed[:3]}"
                got = await q.get_job_result_bulk(ids)
                return all(v is not None for v in got)

            async with running(w):
                await wait_until(settled, timeout=30, what="every job's result")
            assert await dlq_entries(r, queue_name) == []
            return await q.get_job_result_bulk(ids)
    finally:
        await r.aclose()


# --------------------------------------------------------------------------
# The task a handler runs in
# --------------------------------------------------------------------------


async def test_each_job_runs_in_its_own_task_from_its_first_step(
    redis_url: str, queue_name: str
) -> None:
    seen: dict[int, asyncio.Task[Any]] = {}

    async def handler(job: Job) -> int:
        first = asyncio.current_task()
        assert first is not None, "no task in the handler's first step"
        await asyncio.sleep(0.01)
        assert asyncio.current_task() is first
        seen[job.data["i"]] = first  # kept alive, so ids cannot be reused
        return job.data["i"]

    assert await drive(redis_url, queue_name, handler) == list(range(20))
    assert len({id(t) for t in seen.values()}) == 20, "two jobs shared a task"


async def test_context_variables_are_per_job_copies_of_the_run_context(
    redis_url: str, queue_name: str
) -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var")
    var.set("from-run")
    seen: list[str] = []

    async def handler(job: Job) -> str:
        # The value current when run() started is visible ...
        seen.append(var.get("unset"))
        # ... and what one job sets is never seen by another.
        mine = f"job-{job.data['i']}"
        var.set(mine)
        await asyncio.sleep(0.01)
        assert var.get() == mine
        return mine

    got = await drive(redis_url, queue_name, handler)
    assert got == [f"job-{i}" for i in range(20)]
    assert seen == ["from-run"] * 20
    assert var.get() == "from-run"


# --------------------------------------------------------------------------
# asyncio's own tools
# --------------------------------------------------------------------------


@needs_311
@pytest.mark.parametrize("where", WHERE)
async def test_asyncio_timeout_and_taskgroup(
    redis_url: str, queue_name: str, where: str
) -> None:
    async def handler(job: Job) -> int:
        await _maybe_yield(where)
        async with asyncio.timeout(5):  # type: ignore[attr-defined]
            async with asyncio.TaskGroup() as tg:  # type: ignore[attr-defined]
                a = tg.create_task(asyncio.sleep(0.01, result=job.data["i"]))
                b = tg.create_task(asyncio.sleep(0.01, result=1))
        return a.result() + b.result()

    assert await drive(redis_url, queue_name, handler) == [i + 1 for i in range(20)]


@pytest.mark.parametrize("where", WHERE)
async def test_wait_for_shield_and_gather(
    redis_url: str, queue_name: str, where: str
) -> None:
    async def handler(job: Job) -> int:
        await _maybe_yield(where)
        a = await asyncio.wait_for(asyncio.sleep(0.01, result=job.data["i"]), 5)
        b = await asyncio.shield(asyncio.sleep(0.01, result=10))
        c, d = await asyncio.gather(
            asyncio.sleep(0.01, result=100), asyncio.sleep(0, result=1000)
        )
        return a + b + c + d

    got = await drive(redis_url, queue_name, handler)
    assert got == [i + 1110 for i in range(20)]


@needs_311
async def test_an_asyncio_timeout_inside_a_handler_fails_only_its_job(
    redis_url: str, queue_name: str
) -> None:
    async def handler(job: Job) -> int:
        if job.data["i"] == 3:
            async with asyncio.timeout(0.05):  # type: ignore[attr-defined]
                await asyncio.sleep(10)
        await asyncio.sleep(0.01)
        return job.data["i"]

    r = aioredis.from_url(redis_url)
    try:
        async with Queue(queue_name, redis_url=redis_url) as q:
            jobs = await q.add_bulk([{"name": "j", "data": {"i": i}} for i in range(8)])
            w = fast_worker(
                queue_name, handler, redis_url, store_results=True, max_attempts=1
            )
            async with running(w):
                await wait_until(
                    lambda: dlq_entries(r, queue_name), what="job 3 dead-lettered"
                )
                others = [j.id for j in jobs if j.data["i"] != 3]
                await wait_until(
                    lambda: q.get_job_result_bulk(others),
                    what="the other jobs' results",
                )
                got = await q.get_job_result_bulk(others)
                assert got == [i for i in range(8) if i != 3]
            (dead,) = await dlq_entries(r, queue_name)
            assert dead[1][b"reason"] == b"retries_exhausted"
            assert b"TimeoutError" in dead[1][b"detail"]
    finally:
        await r.aclose()


async def test_a_handler_raising_cancelled_error_fails_only_that_job(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    runs: list[int] = []

    async def handler(job: Job) -> int:
        runs.append(job.data["i"])
        if job.data["i"] == 0 and job.attempt == 1:
            inner = asyncio.ensure_future(asyncio.sleep(10))
            inner.cancel()
            await inner  # raises CancelledError into the handler
        return job.data["i"]

    async with Queue(queue_name, redis_url=redis_url) as q:
        jobs = await q.add_bulk([{"name": "j", "data": {"i": i}} for i in range(4)])
        w = fast_worker(queue_name, handler, redis_url, store_results=True)
        async with running(w):
            await wait_until(
                lambda: _all_results(q, [j.id for j in jobs]), what="all results"
            )
    # Job 0 failed once (a retry, not an abandoned job left for recovery)
    # and then completed; the others ran once each.
    assert sorted(runs) == [0, 0, 1, 2, 3]
    failed = [e for e in await events(r, queue_name) if e["e"] == "failed"]
    assert [e["id"] for e in failed] == [jobs[0].id]
    assert "CancelledError" in failed[0]["reason"]


async def _all_results(q: Queue, ids: list[str]) -> bool:
    return all(v is not None for v in await q.get_job_result_bulk(ids))


# --------------------------------------------------------------------------
# Libraries
# --------------------------------------------------------------------------


@pytest.mark.parametrize("where", WHERE)
async def test_redis_asyncio_in_handlers(
    redis_url: str, queue_name: str, where: str
) -> None:
    client = aioredis.from_url(redis_url)
    counter = f"{queue_name}:counter"
    try:

        async def handler(job: Job) -> int:
            await _maybe_yield(where)
            n = await client.incr(counter)
            async with client.pipeline(transaction=True) as pipe:
                pipe.set(f"{queue_name}:seen:{job.data['i']}", n)
                pipe.get(f"{queue_name}:seen:{job.data['i']}")
                _, stored = await pipe.execute()
            return int(stored)

        got = await drive(redis_url, queue_name, handler, n=30)
        assert sorted(got) == list(range(1, 31))
        assert int(await client.get(counter)) == 30
    finally:
        await client.aclose()


@pytest.mark.parametrize("where", WHERE)
async def test_httpx_in_handlers(
    redis_url: str, queue_name: str, web_url: str, where: str
) -> None:
    async with httpx.AsyncClient(base_url=web_url, timeout=5.0) as http:

        async def handler(job: Job) -> int:
            await _maybe_yield(where)
            resp = await http.get("/echo", params={"n": job.data["i"]})
            resp.raise_for_status()
            return int(resp.json()["n"])

        assert await drive(redis_url, queue_name, handler) == list(range(20))


@pytest.mark.parametrize("where", WHERE)
async def test_aiohttp_with_a_timeout_in_handlers(
    redis_url: str, queue_name: str, web_url: str, where: str
) -> None:
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def handler(job: Job) -> int:
            await _maybe_yield(where)
            async with session.get(f"{web_url}/echo?n={job.data['i']}") as resp:
                body = await resp.json()
            return int(body["n"])

        assert await drive(redis_url, queue_name, handler) == list(range(20))


@pytest.mark.parametrize("where", WHERE)
async def test_anyio_task_groups_and_cancel_scopes_in_handlers(
    redis_url: str, queue_name: str, where: str
) -> None:
    async def handler(job: Job) -> int:
        await _maybe_yield(where)
        out: list[int] = []
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:

                async def child(v: int) -> None:
                    await anyio.sleep(0.01)
                    out.append(v)

                tg.start_soon(child, job.data["i"])
                tg.start_soon(child, 1)
        with anyio.move_on_after(0.01) as scope:
            await anyio.sleep(5)
        assert scope.cancelled_caught
        return sum(out)

    assert await drive(redis_url, queue_name, handler) == [i + 1 for i in range(20)]


# --------------------------------------------------------------------------
# Synchronous handlers
# --------------------------------------------------------------------------


async def test_a_sync_handler_runs_in_a_thread_with_the_job_context(
    redis_url: str, queue_name: str
) -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("sync_var")
    var.set("outer")
    loop_thread = threading.get_ident()
    threads: set[int] = set()

    def handler(job: Job) -> str:
        threads.add(threading.get_ident())
        seen = var.get()
        var.set(f"job-{job.data['i']}")  # stays in this job's copy
        return f"{seen}:{job.data['i']}"

    got = await drive(redis_url, queue_name, handler, n=10)
    assert got == [f"outer:{i}" for i in range(10)]
    assert loop_thread not in threads
    assert var.get() == "outer"


async def test_a_blocking_sync_handler_leaves_the_loop_responsive(
    redis_url: str, queue_name: str
) -> None:
    """One handler blocks its thread for 1.5 s: the loop keeps ticking, the
    other jobs complete meanwhile, and the blocked job's lease is extended
    (a second worker with a short claim_min_idle_ms never steals it)."""
    release = threading.Event()
    runs: dict[int, int] = {}
    lock = threading.Lock()

    def handler(job: Job) -> int:
        with lock:
            runs[job.data["i"]] = runs.get(job.data["i"], 0) + 1
        if job.data["i"] == 0:
            assert release.wait(10), "never released"
        return job.data["i"]

    gaps: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        last = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.02)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    async with Queue(queue_name, redis_url=redis_url) as q:
        jobs = await q.add_bulk([{"name": "j", "data": {"i": i}} for i in range(10)])
        ids = [j.id for j in jobs]
        w1 = fast_worker(
            queue_name,
            handler,
            redis_url,
            store_results=True,
            concurrency=4,
            claim_min_idle_ms=600,
        )
        w2 = fast_worker(
            queue_name,
            handler,
            redis_url,
            store_results=True,
            concurrency=4,
            claim_min_idle_ms=600,
        )
        tick = asyncio.ensure_future(ticker())
        async with running(w1), running(w2):
            # Every other job completes while job 0 blocks its thread.
            await wait_until(
                lambda: _all_results(q, ids[1:]), what="the other jobs' results"
            )
            # Long enough for a claimer to take job 0 if its lease lapsed.
            await asyncio.sleep(1.5)
            assert (await q.get_job_result_bulk(ids[:1])) == [None]
            release.set()
            await wait_until(lambda: _all_results(q, ids), what="job 0's result")
        stop.set()
        await tick
    assert runs == {i: 1 for i in range(10)}, runs
    assert max(gaps) < 0.5, f"the event loop stalled for {max(gaps):.2f} s"


async def test_a_def_returning_a_coroutine_is_awaited_on_the_loop(
    redis_url: str, queue_name: str
) -> None:
    async def real(job: Job) -> int:
        assert asyncio.current_task() is not None
        await asyncio.sleep(0)
        return job.data["i"] * 2

    def wrapper(job: Job) -> Awaitable[int]:  # e.g. a decorator without wraps
        return real(job)

    assert await drive(redis_url, queue_name, wrapper, n=5) == [0, 2, 4, 6, 8]


async def test_a_callable_object_with_async_call_is_async(
    redis_url: str, queue_name: str
) -> None:
    class Handler:
        async def __call__(self, job: Job) -> int:
            assert threading.current_thread() is threading.main_thread()
            await asyncio.sleep(0)
            return job.data["i"]

    assert await drive(redis_url, queue_name, Handler(), n=5) == list(range(5))


# --------------------------------------------------------------------------
# Time limits
# --------------------------------------------------------------------------


async def _failed_events(r: aioredis.Redis, queue_name: str) -> list[dict[str, str]]:
    return [e for e in await events(r, queue_name) if e["e"] == "failed"]


async def test_an_async_handler_past_its_limit_is_cancelled_and_retried(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    cancelled: list[int] = []

    async def handler(job: Job) -> str:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(job.attempt)
            raise
        return "never"

    async with Queue(queue_name, redis_url=redis_url) as q:
        job = await q.add("slow", {}, attempts=2, backoff=0)
        w = fast_worker(queue_name, handler, redis_url, job_timeout_ms=200)
        async with running(w):
            await wait_until(
                lambda: dlq_entries(r, queue_name), what="the job dead-lettered"
            )
    assert cancelled == [1, 2]
    failed = await _failed_events(r, queue_name)
    assert [e["attempt"] for e in failed] == ["1", "2"]
    for e in failed:
        assert e["id"] == job.id
        assert e["reason"].startswith("timeout:"), e["reason"]
        assert "200 ms" in e["reason"]
    (dead,) = await dlq_entries(r, queue_name)
    assert dead[1][b"reason"] == b"retries_exhausted"
    assert dead[1][b"detail"].startswith(b"timeout:")


async def test_the_job_limit_overrides_the_worker_limit(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    async def handler(job: Job) -> str:
        await asyncio.sleep(job.data["sleep"])
        return "done"

    async with Queue(queue_name, redis_url=redis_url) as q:
        # The worker allows 5 s; this job allows 100 ms.
        short = await q.add("a", {"sleep": 1.0}, timeout_ms=100, attempts=1)
        # No limit of its own: the worker's 5 s applies, and 0.3 s is fine.
        fine = await q.add("b", {"sleep": 0.3})
        # A job may also allow more than the worker.
        longer = await q.add("c", {"sleep": 0.5}, timeout_ms=10_000)
        w = fast_worker(
            queue_name,
            handler,
            redis_url,
            job_timeout_ms=5_000,
            store_results=True,
        )
        async with running(w):
            await wait_until(
                lambda: _all_results(q, [fine.id, longer.id]), what="results"
            )
            await wait_until(lambda: dlq_entries(r, queue_name), what="the DLQ entry")
    failed = await _failed_events(r, queue_name)
    assert [e["id"] for e in failed] == [short.id]
    assert "100 ms" in failed[0]["reason"]


async def test_a_handler_that_swallows_its_cancellation_still_times_out(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    async def handler(job: Job) -> str:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            pass  # a handler that ignores the cancellation
        return "too late"

    async with Queue(queue_name, redis_url=redis_url) as q:
        await q.add("stubborn", {}, attempts=1)
        w = fast_worker(
            queue_name, handler, redis_url, job_timeout_ms=150, store_results=True
        )
        async with running(w):
            await wait_until(lambda: dlq_entries(r, queue_name), what="the DLQ entry")
    (failed,) = await _failed_events(r, queue_name)
    assert failed["reason"].startswith("timeout:")


async def test_a_sync_handler_fails_at_its_limit_while_its_thread_runs_on(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    release = threading.Event()
    finished = threading.Event()

    def handler(job: Job) -> str:
        release.wait(10)
        finished.set()
        return "late"

    async with Queue(queue_name, redis_url=redis_url) as q:
        job = await q.add("blocking", {}, attempts=1, timeout_ms=200)
        w = fast_worker(queue_name, handler, redis_url, store_results=True)
        async with running(w):
            await wait_until(lambda: dlq_entries(r, queue_name), what="the DLQ entry")
            # The job failed at its limit while the thread was still blocked.
            assert not finished.is_set()
            release.set()
            await asyncio.to_thread(finished.wait, 10)
            await asyncio.sleep(0.2)
        # What the stray thread returned later is not stored.
        assert await q.get_job_result(job.id) is None
    (failed,) = await _failed_events(r, queue_name)
    assert failed["reason"].startswith("timeout:")
