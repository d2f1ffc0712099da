"""Behaviour of `Worker` (signatures and validation are generated).

The hot path: the engine hands over jobs one batch per wake-up of the
loop's own selector (`Consumer.poll_batch`); each job runs in its own
`asyncio.Task` from its first step, in a copy of the context current when
`run()` started; outcomes go back in one `Consumer.settle` call per loop
turn. No per-job thread hop, no per-job Redis round trip. Synchronous
(`def`) handlers run in a thread pool, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from inspect import isawaitable
from typing import Any

import msgpack

from chasquimq._generated.errors import InvalidArgumentError, UnrecoverableError
from chasquimq._generated.types import Job
from chasquimq._native import Consumer

# Outcome kinds understood by Consumer.settle.
_OK, _FAILED, _UNRECOVERABLE, _ABANDONED, _DECODE_FAILED, _TIMEOUT = range(6)

_MAX_REASON = 1024

#: Python 3.12 starts a task eagerly: its first step runs at once, and a
#: handler that never suspends is done before the loop schedules anything.
_EAGER = sys.version_info >= (3, 12)
#: `loop.create_task(context=)` is 3.11+.
_TASK_CONTEXT = sys.version_info >= (3, 11)

#: msgpack >= 1.0 defaults: str as str, bytes as bin (the wire's payload rule).
_packb = msgpack.packb
_unpackb = msgpack.unpackb
_now_ns = time.perf_counter_ns


def _reason(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}"
    return text if len(text) <= _MAX_REASON else text[:_MAX_REASON]


def _is_async(handler: Any) -> bool:
    """True for `async def` functions, methods, partials of them and objects
    whose `__call__` is one; everything else runs in the thread pool."""
    if inspect.iscoroutinefunction(handler):
        return True
    if inspect.isroutine(handler) or not callable(handler):
        return False
    return inspect.iscoroutinefunction(type(handler).__call__)


class WorkerBase:
    __slots__ = (
        "__weakref__",
        "_abandoning",
        "_buf",
        "_ctx",
        "_expired",
        "_flush_scheduled",
        "_handler",
        "_is_async",
        "_is_closed",
        "_loop",
        "_name",
        "_native",
        "_pool",
        "_pool_size",
        "_run_task",
        "_running",
        "_shutdown_timeout",
        "_store_results",
    )

    def _init(
        self,
        queue_name: str,
        handler: Any,
        *,
        redis_url: str,
        concurrency: int,
        max_attempts: int,
        group: str,
        consumer_id: str | None,
        read_block_ms: int | None,
        read_count: int | None,
        claim_min_idle_ms: int | None,
        max_payload_bytes: int | None,
        max_stream_len: int | None,
        dlq_max_stream_len: int | None,
        events_enabled: bool,
        delayed_enabled: bool,
        run_scheduler: bool,
        scheduler_tick_ms: int | None,
        store_results: bool,
        result_ttl_ms: int | None,
        shutdown_timeout_ms: int,
        start_timeout_ms: int | None,
        job_timeout_ms: int | None,
        thread_pool_size: int | None,
    ) -> None:
        optional = {
            "consumer_id": consumer_id,
            "read_block_ms": read_block_ms,
            "read_count": read_count,
            "claim_min_idle_ms": claim_min_idle_ms,
            "max_payload_bytes": max_payload_bytes,
            "max_stream_len": max_stream_len,
            "dlq_max_stream_len": dlq_max_stream_len,
            "scheduler_tick_ms": scheduler_tick_ms,
            "result_ttl_ms": result_ttl_ms,
            "job_timeout_ms": job_timeout_ms,
            "start_timeout_ms": start_timeout_ms,
        }
        kw: dict[str, Any] = {k: v for k, v in optional.items() if v is not None}
        # Ints the engine cannot hold are bad values, not an OverflowError from the binding.
        for field, value, limit in (
            ("concurrency", concurrency, 100_000),
            ("max_attempts", max_attempts, 2**32 - 1),
            ("thread_pool_size", thread_pool_size or 1, 100_000),
            *((k, v, 2**63 - 1) for k, v in kw.items() if isinstance(v, int)),
        ):
            if value > limit:
                raise InvalidArgumentError(
                    f"{field} must be at most {limit} (got {value}); pass a smaller int"
                )
        self._native = Consumer(
            redis_url,
            queue_name,
            concurrency=concurrency,
            max_attempts=max_attempts,
            group=group,
            events_enabled=events_enabled,
            delayed_enabled=delayed_enabled,
            run_scheduler=run_scheduler,
            store_results=store_results,
            **kw,
        )
        self._name = queue_name
        self._handler = handler
        self._is_async = _is_async(handler)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_size = thread_pool_size or concurrency
        # Running jobs by token (strong references: the loop keeps only weak
        # ones), the tokens cancelled by their time limit, and whether a
        # cancellation now means "shutdown deadline: leave it pending".
        self._running: dict[int, asyncio.Task[None]] = {}
        self._expired: set[int] = set()
        self._abandoning = False
        self._ctx = contextvars.copy_context()
        self._store_results = store_results
        self._shutdown_timeout = shutdown_timeout_ms / 1000.0
        self._run_task: asyncio.Task[None] | None = None
        self._is_closed = False
        self._buf: list[tuple[Any, ...]] = []
        self._flush_scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"Worker({self._name!r})"

    @property
    def _is_running(self) -> bool:
        return self._run_task is not None and not self._run_task.done()

    async def _run(self) -> None:
        task = self._run_task
        if task is None:
            if self._is_closed:
                return
            task = self._run_task = asyncio.ensure_future(self._main())
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            # The caller's task was cancelled (Ctrl-C, a timeout): shut down
            # gracefully, then let the cancellation through.
            if not task.done():
                await self._close()
                await asyncio.wait({task}, timeout=self._shutdown_timeout + 15)
            raise

    async def _close(self) -> None:
        if self._is_closed:
            return
        self._is_closed = True
        self._native.stop()

    async def __aenter__(self) -> Any:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._close()
        task = self._run_task
        if task is not None and not task.done():
            await asyncio.wait({task})

    # ---- engine loop -------------------------------------------------

    async def _main(self) -> None:
        native = self._native
        loop = self._loop = asyncio.get_running_loop()
        # Jobs run in copies of the context of the task that called run().
        self._ctx = contextvars.copy_context()
        try:
            await native.start()
        except BaseException:
            # Nothing started, so nothing is poisoned: the next run() tries
            # again (the engine keeps no state from a failed start).
            self._run_task = None
            if self._is_closed:
                return  # close() ended the wait for Redis: a normal end
            raise
        if self._is_closed:
            native.stop()
        running = self._running
        try:
            if not await self._pump_selector(loop):
                await self._pump_awaiting(loop)
        finally:
            native.stop()
            if running:
                _, pending = await asyncio.wait(
                    set(running.values()), timeout=self._shutdown_timeout
                )
                self._abandoning = True
                for t in pending:
                    t.cancel()
                if pending:
                    await asyncio.wait(pending)
            self._flush()
            if self._pool is not None:
                # Threads still running a handler finish on their own (a
                # Python thread cannot be stopped); queued calls are dropped.
                self._pool.shutdown(wait=False, cancel_futures=True)
            await native.close()

    async def _pump_selector(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Take jobs when the engine's wake-up socket becomes readable.

        The loop sleeps in its own selector; the engine writes one byte when
        jobs arrive, and the jobs are taken with a synchronous call. Returns
        False when the loop cannot watch file descriptors (a proactor loop).
        """
        native = self._native
        sock = socket.socket(fileno=native.wakeup_fd())
        done: asyncio.Future[None] = loop.create_future()
        start = self._start

        def pump() -> None:
            try:
                sock.recv(4096)
            except (BlockingIOError, InterruptedError):
                pass
            while True:
                batch = native.poll_batch()
                if batch is None:
                    if not done.done():
                        done.set_result(None)
                    return
                if not batch:
                    return
                for item in batch:
                    start(loop, item)

        try:
            loop.add_reader(sock.fileno(), pump)
        except NotImplementedError:
            sock.close()
            return False
        try:
            pump()
            await done
        finally:
            loop.remove_reader(sock.fileno())
            sock.close()
        return True

    async def _pump_awaiting(self, loop: asyncio.AbstractEventLoop) -> None:
        """Take jobs one awaited batch at a time (loops without add_reader)."""
        native = self._native
        while True:
            batch = await native.next_batch()
            if batch is None:
                return
            for item in batch:
                self._start(loop, item)

    def _start(
        self,
        loop: asyncio.AbstractEventLoop,
        item: tuple[int, str, str, bytes, int, int, int | None],
    ) -> None:
        """Starts one job in its own task, in a fresh copy of the run()
        context, so `current_task()`, timeouts, task groups and cancel scopes
        work from the handler's first step on."""
        coro = self._one(*item)
        if _EAGER:
            t = asyncio.Task(
                coro, loop=loop, context=self._ctx.copy(), eager_start=True
            )  # type: ignore[call-arg]
            if t.done():
                return
        elif _TASK_CONTEXT:
            t = loop.create_task(coro, context=self._ctx.copy())
        else:  # 3.10: a task copies the context it is created in
            t = self._ctx.copy().run(loop.create_task, coro)
        self._running[item[0]] = t

    def _expire(self, token: int) -> None:
        """A run reached its time limit: cancel its task."""
        t = self._running.get(token)
        if t is not None and not t.done():
            self._expired.add(token)
            t.cancel("chasquimq: the job's time limit passed")

    def _in_thread(self, job: Job) -> asyncio.Future[Any]:
        """Runs a synchronous handler in the pool, in the job's context."""
        pool = self._pool
        if pool is None:
            pool = self._pool = ThreadPoolExecutor(
                max_workers=self._pool_size,
                thread_name_prefix=f"chasquimq-{self._name}",
            )
        ctx = contextvars.copy_context()
        assert self._loop is not None
        return self._loop.run_in_executor(pool, ctx.run, self._handler, job)

    async def _one(
        self,
        token: int,
        job_id: str,
        name: str,
        payload: bytes,
        attempt: int,
        created_at_ms: int,
        timeout_ms: int | None,
    ) -> None:
        t0 = _now_ns()
        timer: asyncio.TimerHandle | None = None
        try:
            try:
                data = _unpackb(payload, raw=False, strict_map_key=False)
            except Exception as e:
                out: tuple[Any, ...] = (
                    token,
                    _DECODE_FAILED,
                    None,
                    f"payload is not valid msgpack: {e}",
                    0,
                )
            else:
                job = Job(job_id, name, data, attempt, created_at_ms)
                if timeout_ms is not None:
                    assert self._loop is not None
                    timer = self._loop.call_later(
                        timeout_ms / 1000, self._expire, token
                    )
                if self._is_async:
                    result = await self._handler(job)
                else:
                    result = await self._in_thread(job)
                    if isawaitable(result):  # a def that returned a coroutine
                        result = await result
                dur = (_now_ns() - t0) // 1000
                if token in self._expired:
                    # The handler swallowed its cancellation: still too late.
                    out = (token, _TIMEOUT, None, None, dur)
                elif self._store_results and result is not None:
                    try:
                        packed = _packb(result)
                    except Exception as e:
                        out = (
                            token,
                            _FAILED,
                            None,
                            f"the handler's return value cannot be encoded as msgpack: {_reason(e)}",
                            dur,
                        )
                    else:
                        out = (token, _OK, packed, None, dur)
                else:
                    out = (token, _OK, None, None, dur)
        except asyncio.CancelledError:
            dur = (_now_ns() - t0) // 1000
            if token in self._expired:
                out = (token, _TIMEOUT, None, None, dur)
            elif self._abandoning:
                # Shutdown deadline: leave the job pending for recovery.
                out = (token, _ABANDONED, None, None, 0)
            else:
                # The handler raised CancelledError of its own (a cancelled
                # inner task, an explicit raise): that job fails, nothing else.
                out = (
                    token,
                    _FAILED,
                    None,
                    "CancelledError: the handler raised CancelledError",
                    dur,
                )
        except UnrecoverableError as e:
            out = (
                token,
                _UNRECOVERABLE,
                None,
                _reason(e),
                (_now_ns() - t0) // 1000,
            )
        except Exception as e:
            out = (
                token,
                _FAILED,
                None,
                _reason(e),
                (_now_ns() - t0) // 1000,
            )
        except BaseException:
            # KeyboardInterrupt / SystemExit from a handler: free the slot,
            # leave the job pending for recovery, and let the exit proceed.
            self._settle_one((token, _ABANDONED, None, None, 0))
            raise
        finally:
            if timer is not None:
                timer.cancel()
            self._running.pop(token, None)
            self._expired.discard(token)
        self._settle_one(out)

    def _settle_one(self, out: tuple[Any, ...]) -> None:
        self._buf.append(out)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop = self._loop
            assert loop is not None
            loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._buf:
            buf, self._buf = self._buf, []
            self._native.settle(buf)
