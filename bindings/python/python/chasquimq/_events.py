"""Behaviour of `QueueEvents` (signatures and validation are generated), and
the per-Queue listener that wakes `Job.wait_for_result` on `completed`.

The events stream is a plain Redis stream of ASCII fields, read with
redis.asyncio: one connection per QueueEvents, one `XREAD BLOCK` at a time.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections import deque
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions as rexc

from chasquimq import _redisurl
from chasquimq._generated.errors import (
    AuthenticationError,
    ClosedError,
    OperationTimeoutError,
    RedisConnectionError,
    RedisServerError,
)
from chasquimq._generated.types import QueueEvent

# Fields the engine writes as decimal integers.
_NUMERIC = frozenset(("attempt", "backoff_ms", "delay_ms", "duration_us", "ts"))
_INT = re.compile(r"-?[0-9]+")


def _text(b: Any) -> str:
    if isinstance(b, bytes):
        return b.decode("utf-8", "replace")
    return str(b)


def parse_event(fields: dict[Any, Any]) -> QueueEvent:
    """A QueueEvent from the raw fields of one events-stream entry."""
    out: dict[str, Any] = {}
    for k, v in fields.items():
        key, val = _text(k), _text(v)
        out[key] = int(val) if key in _NUMERIC and _INT.fullmatch(val) else val
    name = out.pop("e", "")
    job_id = out.pop("id", "")
    job_name = out.pop("n", "")
    return QueueEvent(
        name=name if isinstance(name, str) else str(name),
        job_id=job_id or None,
        job_name=job_name,
        fields=out,
    )


def _typed(e: Exception) -> Exception:
    """The ChasquiMQ error for a redis-py error."""
    if isinstance(e, rexc.AuthenticationError):
        return AuthenticationError(f"the Redis server refused the credentials: {e}")
    if isinstance(e, rexc.TimeoutError):
        return OperationTimeoutError(f"reading the events stream timed out: {e}")
    if isinstance(e, rexc.ConnectionError):
        return RedisConnectionError(f"reading the events stream failed: {e}")
    if isinstance(e, rexc.ResponseError):
        return RedisServerError(f"the Redis server replied with an error: {e}")
    return e


class QueueEventsBase:
    __slots__ = (
        "__weakref__",
        "_block_ms",
        "_buffer",
        "_client",
        "_closed_fut",
        "_count",
        "_is_closed",
        "_key",
        "_last_id",
        "_name",
        "_read_task",
        "_redis_url",
    )

    def _init(
        self,
        queue_name: str,
        *,
        redis_url: str,
        last_event_id: str,
        block_ms: int,
        count: int,
    ) -> None:
        self._name = queue_name
        self._key = f"{{chasqui:{queue_name}}}:events"
        self._redis_url = redis_url
        self._last_id = last_event_id
        self._block_ms = block_ms
        self._count = count
        self._client: aioredis.Redis | None = None
        self._buffer: deque[QueueEvent] = deque()
        self._read_task: asyncio.Task[Any] | None = None
        self._closed_fut: asyncio.Future[None] | None = None
        self._is_closed = False

    def __repr__(self) -> str:
        return f"QueueEvents({self._name!r})"

    # ---- reading -----------------------------------------------------

    def _redis(self) -> aioredis.Redis:
        c = self._client
        if c is None:
            # The socket timeout must outlast a blocked XREAD (redis-py's
            # default of 5 s would cut the default 5 s block).
            c = self._client = _redisurl.client(
                self._redis_url,
                decode_responses=False,
                socket_timeout=self._block_ms / 1000 + 10,
                socket_keepalive=True,
            )
        return c

    async def _start_id(self) -> None:
        """Pins "$" to a concrete id (the newest entry, or 0-0), so that
        entries added between two reads are never skipped."""
        if self._last_id != "$":
            return
        try:
            last = await self._redis().xrevrange(self._key, "+", "-", count=1)
        except rexc.RedisError as e:
            raise _typed(e) from None
        if self._last_id == "$":
            self._last_id = _text(last[0][0]) if last else "0-0"

    async def _xread(self) -> list[tuple[str, QueueEvent]]:
        await self._start_id()
        try:
            reply: Any = await self._redis().xread(
                {self._key: self._last_id}, count=self._count, block=self._block_ms
            )
        except rexc.RedisError as e:
            raise _typed(e) from None
        out: list[tuple[str, QueueEvent]] = []
        if not reply:
            return out
        if isinstance(reply, dict):  # RESP3: {key: [[entries]]}
            streams = [
                v[0] if v and isinstance(v[0], list) else v for v in reply.values()
            ]
        else:  # RESP2: [[key, [entries]]]
            streams = [s[1] for s in reply]
        for entries in streams:
            for entry_id, fields in entries:
                out.append((_text(entry_id), parse_event(fields or {})))
        return out

    def _take(self, read: list[tuple[str, QueueEvent]]) -> list[QueueEvent]:
        if read:
            self._last_id = read[-1][0]
        return [ev for _, ev in read]

    async def _read_batch(self) -> list[QueueEvent]:
        """One XREAD: the events after the last one returned (possibly none,
        when the block timed out). Raises ClosedError after close()."""
        if self._is_closed:
            raise ClosedError(f"QueueEvents {self._name!r} is closed")
        return self._take(await self._xread())

    def __aiter__(self) -> Any:
        return self

    async def __anext__(self) -> QueueEvent:
        while True:
            if self._is_closed:
                raise StopAsyncIteration
            if self._buffer:
                return self._buffer.popleft()
            loop = asyncio.get_running_loop()
            closed = self._closed_fut
            if closed is None or closed.get_loop() is not loop:
                closed = self._closed_fut = loop.create_future()
            task = self._read_task
            if task is None:
                task = self._read_task = loop.create_task(self._xread())
                task.add_done_callback(_retrieve)
            # A cancelled caller leaves the read running; the next
            # __anext__ picks it up, so no entry is lost or read twice.
            await asyncio.wait({task, closed}, return_when=asyncio.FIRST_COMPLETED)
            if self._is_closed:
                raise StopAsyncIteration
            if self._read_task is task:  # not already taken by a concurrent __anext__
                self._read_task = None
                self._buffer.extend(self._take(task.result()))

    # ---- closing -----------------------------------------------------

    async def _close(self) -> None:
        if self._is_closed:
            return
        self._is_closed = True
        self._buffer.clear()
        closed = self._closed_fut
        if closed is not None and not closed.done():
            closed.set_result(None)
        task, self._read_task = self._read_task, None
        if task is not None and not task.done():
            # Cancelling a blocked XREAD drops its connection at once.
            task.cancel()
            try:
                if task.get_loop() is asyncio.get_running_loop():
                    await asyncio.wait({task})
            except RuntimeError:
                pass
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def __aenter__(self) -> Any:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._close()


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Marks a read's exception as retrieved (it is re-raised by __anext__
    when someone is still iterating)."""
    if not task.cancelled():
        task.exception()


# ---- result waiters ---------------------------------------------------

_LISTENER_BLOCK_MS = 1000
_LISTENER_IDLE_S = 5.0


class ResultWaiters:
    """Wakes `wait_for_result` callers when their job's `completed` event
    arrives. One lazily started listener task per Queue (XREAD from "$",
    one connection); it stops after a few idle seconds without waiters, and
    on close(). Waiters on another event loop than the listener's get
    None from subscribe() and fall back to polling."""

    __slots__ = (
        "_closed",
        "_events",
        "_lock",
        "_loop",
        "_name",
        "_ready",
        "_redis_url",
        "_task",
        "_waiters",
    )

    def __init__(self, queue_name: str, redis_url: str) -> None:
        self._name = queue_name
        self._redis_url = redis_url
        self._waiters: dict[str, set[asyncio.Future[bool]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None
        self._events: Any = None
        self._closed = False
        self._lock = threading.Lock()

    async def subscribe(self, job_id: str) -> asyncio.Future[bool] | None:
        """A future set to True once `completed` is seen for `job_id` (False
        on close); None when events cannot be used (then poll). Returns
        after the listener has pinned its start id, so a completion after
        this call is never missed."""
        if self._closed:
            return None
        loop = asyncio.get_running_loop()
        with self._lock:  # a Queue may be shared across threads (event loops)
            if self._task is not None and self._loop is not loop:
                if self._loop is not None and not self._loop.is_closed():
                    return None  # the listener lives on another loop: poll
                self._task = None  # left behind by a closed loop
            if self._task is None:
                self._start(loop)
            ready = self._ready
        assert ready is not None
        fut: asyncio.Future[bool] = loop.create_future()
        self._waiters.setdefault(job_id, set()).add(fut)
        try:
            await asyncio.shield(ready)
        except asyncio.CancelledError:
            self.unsubscribe(job_id, fut)
            raise
        except Exception:
            self.unsubscribe(job_id, fut)
            return None
        return fut

    def unsubscribe(self, job_id: str, fut: asyncio.Future[bool]) -> None:
        s = self._waiters.get(job_id)
        if s is not None:
            s.discard(fut)
            if not s:
                del self._waiters[job_id]
        if not fut.done():
            fut.cancel()

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        from chasquimq._generated.api import QueueEvents

        self._loop = loop
        self._events = QueueEvents(
            self._name,
            redis_url=self._redis_url,
            last_event_id="$",
            block_ms=_LISTENER_BLOCK_MS,
            count=1000,
        )
        self._ready = loop.create_future()
        self._task = loop.create_task(self._run(self._events, self._ready))

    async def _run(self, events: Any, ready: asyncio.Future[None]) -> None:
        loop = asyncio.get_running_loop()
        me = asyncio.current_task()
        try:
            await events._start_id()
            ready.set_result(None)
            idle_since: float | None = None
            while not self._closed:
                for ev in await events._read_batch():
                    if ev.name == "completed" and ev.job_id is not None:
                        for fut in self._waiters.pop(ev.job_id, ()):
                            if not fut.done():
                                fut.set_result(True)
                if self._waiters:
                    idle_since = None
                elif idle_since is None:
                    idle_since = loop.time()
                elif loop.time() - idle_since >= _LISTENER_IDLE_S:
                    break
        except asyncio.CancelledError:
            pass
        except Exception as e:
            # Waiters keep polling; the next subscribe starts a new listener.
            if not ready.done():
                ready.set_exception(e)
                ready.exception()
        finally:
            if self._task is me:
                self._task = None
                self._events = None
            if not ready.done():
                ready.set_exception(ClosedError("the result listener stopped"))
                ready.exception()
            await events._close()

    async def close(self) -> None:
        """Stops the listener and wakes every waiter (idempotent)."""
        self._closed = True
        for futs in self._waiters.values():
            for fut in futs:
                if not fut.done():
                    fut.set_result(False)
        self._waiters.clear()
        task, loop = self._task, self._loop
        if task is None or task.done():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is running:
            task.cancel()
            await asyncio.wait({task})
        elif loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(task.cancel)
