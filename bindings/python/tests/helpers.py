"""Shared helpers of the test suite: Redis key names, polling with a
deadline, and running a Worker for the duration of a block."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import struct
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgpack
import redis.asyncio as aioredis

from chasquimq import Worker

# Crockford base32, upper case (no I, L, O, U).
ULID_ALPHABET = set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")


def key(queue: str, suffix: str) -> bytes:
    """A key of `queue`, exactly as the wire format names it."""
    return f"{{chasqui:{queue}}}:{suffix}".encode()


def is_ulid(s: str) -> bool:
    return (
        isinstance(s, str)
        and len(s) == 26
        and set(s) <= ULID_ALPHABET
        and s[0] in "01234567"
    )


def now_ms() -> int:
    return int(time.time() * 1000)


async def wait_until(
    pred: Callable[[], Any],
    timeout: float = 10.0,
    interval: float = 0.02,
    what: str = "condition",
) -> Any:
    """Polls `pred` (sync or async) until it returns a truthy value; fails the
    test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if inspect.isawaitable(v):
            v = await v
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def running(
    worker: Worker, stop_timeout: float = 20.0
) -> AsyncIterator[asyncio.Task[None]]:
    """Runs `worker` in a task for the block, then closes it and awaits run()."""
    task = asyncio.ensure_future(worker.run())
    try:
        yield task
    finally:
        await worker.close()
        await asyncio.wait_for(task, stop_timeout)


def fast_worker(queue_name: str, handler: Any, redis_url: str, **kw: Any) -> Worker:
    """A Worker with test-friendly timings (overridable)."""
    kw.setdefault("read_block_ms", 200)
    return Worker(queue_name, handler, redis_url=redis_url, **kw)


async def pending(r: aioredis.Redis, queue: str, group: str = "default") -> int:
    """How many stream entries of `group` are delivered and not acked."""
    info = await r.xpending(key(queue, "stream"), group)
    return int(info["pending"])


async def stream_len(r: aioredis.Redis, queue: str) -> int:
    return int(await r.xlen(key(queue, "stream")))


async def dlq_entries(
    r: aioredis.Redis, queue: str
) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """Raw DLQ entries; the field dicts keep the stored field order."""
    return await r.xrange(key(queue, "dlq"))


async def events(r: aioredis.Redis, queue: str) -> list[dict[str, str]]:
    """The events stream, decoded to str dicts."""
    out = []
    for _id, fields in await r.xrange(key(queue, "events")):
        out.append({k.decode(): v.decode() for k, v in fields.items()})
    return out


def envelope(
    job_id: str,
    data: Any,
    created_at_ms: int,
    attempt: int | None = 0,
    retry: Any = None,
    *,
    raw_payload: bytes | None = None,
) -> bytes:
    """A hand-built envelope: [id, bin(msgpack(data)), created, attempt?, retry?]."""
    payload = (
        raw_payload
        if raw_payload is not None
        else msgpack.packb(data, use_bin_type=True)
    )
    parts: list[Any] = [job_id, payload, created_at_ms]
    if attempt is not None:
        parts.append(attempt)
    if retry is not None:
        parts.append(retry)
    return msgpack.packb(parts, use_bin_type=True)


def split_member(member: bytes) -> tuple[str, bytes]:
    """A delayed-set member: (name, envelope bytes)."""
    (n,) = struct.unpack_from("<I", member, 0)
    return member[4 : 4 + n].decode(), member[4 + n :]


async def queue_keys(r: aioredis.Redis, queue: str) -> list[bytes]:
    """Every key of `queue` in Redis."""
    prefix = f"{{chasqui:{queue}}}:".encode()
    return [k for k in await r.keys("*") if k.startswith(prefix)]
