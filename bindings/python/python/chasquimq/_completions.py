"""Per-event-loop completion channel for hot native calls (see the Rust
side, `bindings/python/src/completions.rs`).

The engine pushes each call's outcome into a native queue and writes a byte
to a socket the loop watches; the loop's reader callback drains the queue
and resolves the asyncio futures. No engine thread takes the GIL, and a
burst of completions costs one wake-up.
"""

from __future__ import annotations

import asyncio
import socket
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from chasquimq._native import Completions


class LoopCompletions:
    __slots__ = ("native", "next_id", "pending", "sock")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.native = Completions()
        self.sock = socket.socket(fileno=self.native.fileno())
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.next_id = 0
        loop.add_reader(self.sock.fileno(), self._ready)

    def _ready(self) -> None:
        try:
            self.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            pass
        pending = self.pending
        for rid, ok, value in self.native.drain():
            fut = pending.pop(rid, None)
            if fut is None or fut.done():
                continue  # the awaiting task was cancelled
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)

    def new(self, loop: asyncio.AbstractEventLoop) -> tuple[int, asyncio.Future[Any]]:
        rid = self.next_id = self.next_id + 1
        fut = self.pending[rid] = loop.create_future()
        return rid, fut

    def forget(self, rid: int) -> None:
        self.pending.pop(rid, None)


_BY_LOOP: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, LoopCompletions | None
] = weakref.WeakKeyDictionary()


def for_loop(loop: asyncio.AbstractEventLoop) -> LoopCompletions | None:
    """The loop's channel; None for loops that cannot watch sockets (the
    callers then use the plain awaitable native call)."""
    try:
        return _BY_LOOP[loop]
    except KeyError:
        pass
    try:
        c: LoopCompletions | None = LoopCompletions(loop)
    except NotImplementedError:
        c = None
    _BY_LOOP[loop] = c
    return c


async def call(
    submit: Callable[[Completions, int], None],
    fallback: Callable[[], Awaitable[Any]],
) -> Any:
    """Runs a native call through the running loop's channel: `submit(channel,
    request_id)` starts it; `fallback()` is the plain awaitable for loops
    without one. Cancelling the caller leaves nothing behind."""
    loop = asyncio.get_running_loop()
    channel = for_loop(loop)
    if channel is None:
        return await fallback()
    rid, fut = channel.new(loop)
    try:
        submit(channel.native, rid)
    except BaseException:
        channel.forget(rid)
        raise
    return await fut
