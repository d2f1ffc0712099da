"""Behaviour of `Worker` (signatures and validation are generated).

The hot path: the engine hands over jobs one batch per await
(`Consumer.next_batch`); each job runs as a task on this event loop;
outcomes go back in one `Consumer.settle` call per loop turn. No per-job
thread hop, no per-job Redis round trip.
"""

from __future__ import annotations

import asyncio
import contextvars
import socket
import time
from collections.abc import Coroutine, Generator
from inspect import isawaitable
from typing import Any

import msgpack

from chasquimq._generated.errors import InvalidArgumentError, UnrecoverableError
from chasquimq._generated.types import Job
from chasquimq._native import Consumer

# Outcome kinds understood by Consumer.settle.
_OK, _FAILED, _UNRECOVERABLE, _ABANDONED, _DECODE_FAILED = 0, 1, 2, 3, 4

_MAX_REASON = 1024

#: msgpack >= 1.0 defaults: str as str, bytes as bin (the wire's payload rule).
_packb = msgpack.packb


def _reason(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}"
    return text if len(text) <= _MAX_REASON else text[:_MAX_REASON]


class WorkerBase:
    __slots__ = (
        "__weakref__",
        "_buf",
        "_flush_scheduled",
        "_handler",
        "_is_closed",
        "_loop",
        "_name",
        "_native",
        "_run_task",
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
        dlq_max_stream_len: int | None,
        events_enabled: bool,
        delayed_enabled: bool,
        run_scheduler: bool,
        scheduler_tick_ms: int | None,
        store_results: bool,
        result_ttl_ms: int | None,
        shutdown_timeout_ms: int,
    ) -> None:
        optional = {
            "consumer_id": consumer_id,
            "read_block_ms": read_block_ms,
            "read_count": read_count,
            "claim_min_idle_ms": claim_min_idle_ms,
            "max_payload_bytes": max_payload_bytes,
            "dlq_max_stream_len": dlq_max_stream_len,
            "scheduler_tick_ms": scheduler_tick_ms,
            "result_ttl_ms": result_ttl_ms,
        }
        kw: dict[str, Any] = {k: v for k, v in optional.items() if v is not None}
        # Ints the engine cannot hold are bad values, not an OverflowError from the binding.
        for field, value, limit in (
            ("concurrency", concurrency, 100_000),
            ("max_attempts", max_attempts, 2**32 - 1),
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
        await native.start()
        if self._is_closed:
            native.stop()
        tasks: set[asyncio.Task[Any]] = set()
        try:
            if not await self._pump_selector(loop, tasks):
                await self._pump_awaiting(loop, tasks)
        finally:
            native.stop()
            if tasks:
                _, pending = await asyncio.wait(tasks, timeout=self._shutdown_timeout)
                for t in pending:
                    t.cancel()
                if pending:
                    await asyncio.wait(pending)
            self._flush()
            await native.close()

    async def _pump_selector(
        self, loop: asyncio.AbstractEventLoop, tasks: set[asyncio.Task[Any]]
    ) -> bool:
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
                    start(loop, tasks, item)

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

    async def _pump_awaiting(
        self, loop: asyncio.AbstractEventLoop, tasks: set[asyncio.Task[Any]]
    ) -> None:
        """Take jobs one awaited batch at a time (loops without add_reader)."""
        native = self._native
        while True:
            batch = await native.next_batch()
            if batch is None:
                return
            for item in batch:
                self._start(loop, tasks, item)

    def _start(
        self,
        loop: asyncio.AbstractEventLoop,
        tasks: set[asyncio.Task[Any]],
        item: tuple[int, str, str, bytes, int, int],
    ) -> None:
        """Runs a job's first step now, in its own context; only a job that
        suspends becomes a task (what Python 3.12's eager tasks do). A handler
        that finishes without suspending costs no task at all."""
        coro = self._one(*item)
        ctx = contextvars.copy_context()
        try:
            first = ctx.run(coro.send, None)
        except StopIteration:
            return
        t = ctx.run(loop.create_task, _resume(coro, first))
        tasks.add(t)
        t.add_done_callback(tasks.discard)

    async def _one(
        self,
        token: int,
        job_id: str,
        name: str,
        payload: bytes,
        attempt: int,
        created_at_ms: int,
    ) -> None:
        t0 = time.perf_counter_ns()
        try:
            try:
                data = msgpack.unpackb(payload, raw=False, strict_map_key=False)
            except Exception as e:
                out: tuple[Any, ...] = (
                    token,
                    _DECODE_FAILED,
                    None,
                    f"payload is not valid msgpack: {e}",
                    0,
                )
            else:
                result = self._handler(Job(job_id, name, data, attempt, created_at_ms))
                if isawaitable(result):
                    result = await result
                dur = (time.perf_counter_ns() - t0) // 1000
                if self._store_results and result is not None:
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
            # Shutdown deadline: leave the job pending for recovery.
            out = (token, _ABANDONED, None, None, 0)
        except UnrecoverableError as e:
            out = (
                token,
                _UNRECOVERABLE,
                None,
                _reason(e),
                (time.perf_counter_ns() - t0) // 1000,
            )
        except Exception as e:
            out = (
                token,
                _FAILED,
                None,
                _reason(e),
                (time.perf_counter_ns() - t0) // 1000,
            )
        except BaseException:
            # KeyboardInterrupt / SystemExit from a handler: free the slot,
            # leave the job pending for recovery, and let the exit proceed.
            self._settle_one((token, _ABANDONED, None, None, 0))
            raise
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


class _Continue:
    """Awaitable that continues a coroutine already started by `_start`,
    passing what it awaits through to the task that runs it."""

    __slots__ = ("coro", "first")

    def __init__(self, coro: Coroutine[Any, Any, Any], first: Any) -> None:
        self.coro = coro
        self.first = first

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, value = self.coro, self.first
        while True:
            try:
                sent = yield value
            except BaseException as e:
                try:
                    value = coro.throw(e)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    value = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


async def _resume(coro: Coroutine[Any, Any, Any], first: Any) -> Any:
    return await _Continue(coro, first)
