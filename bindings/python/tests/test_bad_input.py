"""Bad input is rejected with a typed error naming the field, before
anything reaches Redis; an unreachable Redis is a RedisConnectionError."""

from __future__ import annotations

import asyncio
import math
import socket
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis
from helpers import queue_keys

from chasquimq import (
    BackoffSpec,
    ChasquiError,
    InvalidArgumentError,
    InvalidTypeError,
    Job,
    MissedFiresPolicy,
    PayloadEncodeError,
    Queue,
    RedisConnectionError,
    RepeatPattern,
    Worker,
)

SECRET = "s3cr3tpw"


async def _h(job: Job) -> None:
    return None


@pytest.fixture
async def q(redis_url: str, queue_name: str, r: aioredis.Redis) -> AsyncIterator[Queue]:
    """A valid queue; after the test nothing of it may exist in Redis."""
    queue = Queue(queue_name, redis_url=redis_url)
    try:
        yield queue
    finally:
        await queue.close()
    assert await queue_keys(r, queue_name) == []


def _check(exc: BaseException, cls: type[BaseException], field: str) -> None:
    assert type(exc) is cls, (type(exc), exc)
    assert isinstance(exc, ChasquiError)
    assert field in str(exc), (field, str(exc))
    assert SECRET not in str(exc)


# ---- constructors ---------------------------------------------------------

QUEUE_CTOR: list[tuple[str, dict[str, Any], type[BaseException], str]] = [
    ("", {}, InvalidArgumentError, "name"),
    ("   ", {}, InvalidArgumentError, "name"),
    ("\t\n", {}, InvalidArgumentError, "name"),
    ("a{b", {}, InvalidArgumentError, "name"),
    ("a}b", {}, InvalidArgumentError, "name"),
    ("{q}", {}, InvalidArgumentError, "name"),
    ("q" * 257, {}, InvalidArgumentError, "name"),
    (
        "ok",
        {"redis_url": f"redis://user:{SECRET}@host:notaport"},
        InvalidArgumentError,
        "redis_url",
    ),
    (
        "ok",
        {"redis_url": f"http://user:{SECRET}@host:6379"},
        InvalidArgumentError,
        "redis_url",
    ),
    ("ok", {"redis_url": f"redis://:{SECRET}@"}, InvalidArgumentError, "redis_url"),
    (
        "ok",
        {"redis_url": f"redis://:{SECRET}@host:99999"},
        InvalidArgumentError,
        "redis_url",
    ),
    (
        "ok",
        {"redis_url": f"redis://u:{SECRET}@host/abc"},
        InvalidArgumentError,
        "redis_url",
    ),
    (
        "ok",
        {"redis_url": f"redis://u:{SECRET}#x@host/0"},
        InvalidArgumentError,
        "redis_url",
    ),
    ("ok", {"redis_url": ""}, InvalidArgumentError, "redis_url"),
    ("ok", {"redis_url": 6379}, InvalidTypeError, "redis_url"),
    ("ok", {"max_stream_len": 0}, InvalidArgumentError, "max_stream_len"),
    ("ok", {"max_stream_len": "10"}, InvalidTypeError, "max_stream_len"),
    ("ok", {"max_stream_len": 2**64}, InvalidArgumentError, "max_stream_len"),
    ("ok", {"max_delay_secs": -1}, InvalidArgumentError, "max_delay_secs"),
]


@pytest.mark.parametrize(("name", "kw", "cls", "field"), QUEUE_CTOR)
def test_queue_constructor_rejects(name: str, kw: dict, cls: type, field: str) -> None:
    with pytest.raises(cls) as info:
        Queue(name, **kw)
    _check(info.value, cls, field)


def test_queue_name_types() -> None:
    for bad in (None, 5, b"bytes"):
        with pytest.raises(InvalidTypeError) as info:
            Queue(bad)  # type: ignore[arg-type]
        _check(info.value, InvalidTypeError, "name")


def test_unknown_keyword_arguments() -> None:
    # Python itself rejects these (a TypeError naming the argument).
    with pytest.raises(TypeError, match="bogus"):
        Queue("ok", bogus=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="bogus"):
        Worker("ok", _h, bogus=1)  # type: ignore[call-arg]


WORKER_CTOR: list[tuple[str, dict[str, Any], type[BaseException], str]] = [
    ("", {}, InvalidArgumentError, "queue_name"),
    ("  ", {}, InvalidArgumentError, "queue_name"),
    ("{x}", {}, InvalidArgumentError, "queue_name"),
    ("x}", {}, InvalidArgumentError, "queue_name"),
    ("ok", {"concurrency": "3"}, InvalidTypeError, "concurrency"),
    ("ok", {"concurrency": 0}, InvalidArgumentError, "concurrency"),
    ("ok", {"concurrency": -4}, InvalidArgumentError, "concurrency"),
    ("ok", {"concurrency": True}, InvalidTypeError, "concurrency"),
    ("ok", {"concurrency": 2.0}, InvalidTypeError, "concurrency"),
    ("ok", {"concurrency": 10**30}, InvalidArgumentError, "concurrency"),
    ("ok", {"max_attempts": 0}, InvalidArgumentError, "max_attempts"),
    ("ok", {"max_attempts": 2**32}, InvalidArgumentError, "max_attempts"),
    ("ok", {"group": ""}, InvalidArgumentError, "group"),
    ("ok", {"group": "  "}, InvalidArgumentError, "group"),
    ("ok", {"group": 1}, InvalidTypeError, "group"),
    ("ok", {"consumer_id": ""}, InvalidArgumentError, "consumer_id"),
    ("ok", {"read_block_ms": 0}, InvalidArgumentError, "read_block_ms"),
    ("ok", {"read_count": -1}, InvalidArgumentError, "read_count"),
    ("ok", {"claim_min_idle_ms": 0}, InvalidArgumentError, "claim_min_idle_ms"),
    ("ok", {"claim_min_idle_ms": 2**64}, InvalidArgumentError, "claim_min_idle_ms"),
    ("ok", {"max_payload_bytes": 0}, InvalidArgumentError, "max_payload_bytes"),
    ("ok", {"dlq_max_stream_len": "x"}, InvalidTypeError, "dlq_max_stream_len"),
    ("ok", {"events_enabled": "yes"}, InvalidTypeError, "events_enabled"),
    ("ok", {"delayed_enabled": 1}, InvalidTypeError, "delayed_enabled"),
    ("ok", {"run_scheduler": None}, InvalidTypeError, "run_scheduler"),
    ("ok", {"scheduler_tick_ms": 0}, InvalidArgumentError, "scheduler_tick_ms"),
    ("ok", {"store_results": "no"}, InvalidTypeError, "store_results"),
    ("ok", {"result_ttl_ms": 0}, InvalidArgumentError, "result_ttl_ms"),
    ("ok", {"result_ttl_ms": 2**70}, InvalidArgumentError, "result_ttl_ms"),
    ("ok", {"shutdown_timeout_ms": 0}, InvalidArgumentError, "shutdown_timeout_ms"),
    (
        "ok",
        {"redis_url": f"redis://user:{SECRET}@host:port"},
        InvalidArgumentError,
        "redis_url",
    ),
    (
        "ok",
        {"redis_url": f"tcp://user:{SECRET}@host:6379"},
        InvalidArgumentError,
        "redis_url",
    ),
]


@pytest.mark.parametrize(("name", "kw", "cls", "field"), WORKER_CTOR)
def test_worker_constructor_rejects(name: str, kw: dict, cls: type, field: str) -> None:
    with pytest.raises(cls) as info:
        Worker(name, _h, **kw)
    _check(info.value, cls, field)


def test_worker_handler_must_be_callable() -> None:
    with pytest.raises(InvalidTypeError) as info:
        Worker("ok", "not callable")  # type: ignore[arg-type]
    _check(info.value, InvalidTypeError, "handler")


def test_value_type_factories_reject() -> None:
    cases: list[tuple[Callable[[], Any], type, str]] = [
        (lambda: BackoffSpec.fixed(-1), InvalidArgumentError, "delay_ms"),
        (lambda: BackoffSpec.fixed("5"), InvalidTypeError, "delay_ms"),
        (lambda: BackoffSpec.fixed(5, jitter_ms=-1), InvalidArgumentError, "jitter_ms"),
        (
            lambda: BackoffSpec.exponential(5, multiplier=0),
            InvalidArgumentError,
            "multiplier",
        ),
        (
            lambda: BackoffSpec.exponential(5, multiplier=math.nan),
            InvalidArgumentError,
            "multiplier",
        ),
        (lambda: BackoffSpec.exponential(5, max_ms=-1), InvalidArgumentError, "max_ms"),
        (lambda: MissedFiresPolicy.fire_all(0), InvalidArgumentError, "max_catchup"),
        (lambda: RepeatPattern.every(0), InvalidArgumentError, "interval_ms"),
    ]
    for make, cls, field in cases:
        with pytest.raises(cls) as info:
            make()
        _check(info.value, cls, field)


# ---- Queue.add / add_bulk ---------------------------------------------------

ADD: list[tuple[tuple[Any, ...], dict[str, Any], type[BaseException], str]] = [
    (("a" * 257, 1), {}, InvalidArgumentError, "name"),
    (("é" * 129, 1), {}, InvalidArgumentError, "name"),  # 129 characters, 258 bytes
    (("\ud800", 1), {}, InvalidArgumentError, "name"),
    ((5, 1), {}, InvalidTypeError, "name"),
    ((None, 1), {}, InvalidTypeError, "name"),
    (("n", object()), {}, PayloadEncodeError, "data"),
    (("n", {1, 2}), {}, PayloadEncodeError, "data"),
    (("n", {"deep": [{"x": {3}}]}), {}, PayloadEncodeError, "data"),
    (("n", 2**64), {}, PayloadEncodeError, "data"),
    # msgpack encodes these, but no reader can decode them back (a tuple or
    # dict key): rejected at add, not dead-lettered later as decode_failed.
    (("n", {(1, 2): 3}), {}, PayloadEncodeError, "data"),
    (("n", {"outer": [{(1,): "x"}]}), {}, PayloadEncodeError, "data"),
    (("n", 1), {"attempts": 0}, InvalidArgumentError, "attempts"),
    (("n", 1), {"attempts": "2"}, InvalidTypeError, "attempts"),
    (("n", 1), {"attempts": 2**40}, InvalidArgumentError, "attempts"),
    (("n", 1), {"delay_ms": -1}, InvalidArgumentError, "delay_ms"),
    (("n", 1), {"delay_ms": -0.5}, InvalidArgumentError, "delay_ms"),
    (("n", 1), {"delay_ms": float("nan")}, InvalidArgumentError, "delay_ms"),
    (("n", 1), {"delay_ms": float("inf")}, InvalidArgumentError, "delay_ms"),
    (("n", 1), {"delay_ms": "5"}, InvalidTypeError, "delay_ms"),
    (("n", 1), {"delay_ms": True}, InvalidTypeError, "delay_ms"),
    (("n", 1), {"delay_ms": 10**30}, InvalidArgumentError, "delay_ms"),
    (("n", 1), {"delay_ms": 31 * 24 * 3600 * 1000}, InvalidArgumentError, "delay_ms"),
    (("n", 1), {"delay": timedelta(seconds=-1)}, InvalidArgumentError, "delay"),
    (("n", 1), {"delay": 5}, InvalidTypeError, "delay"),
    (
        ("n", 1),
        {"delay_ms": 5, "delay": timedelta(seconds=1)},
        InvalidArgumentError,
        "delay_ms and delay",
    ),
    (
        ("n", 1),
        {"missed_fires": MissedFiresPolicy.skip()},
        InvalidArgumentError,
        "missed_fires",
    ),
    (
        ("n", 1),
        {"missed_fires": {"kind": "fire-once"}},
        InvalidArgumentError,
        "missed_fires",
    ),
    (("n", 1), {"backoff": "x"}, InvalidTypeError, "backoff"),
    (("n", 1), {"backoff": -5}, InvalidArgumentError, "backoff"),
    (
        ("n", 1),
        {"backoff": {"kind": "linear", "delay_ms": 5}},
        InvalidArgumentError,
        "backoff",
    ),
    (
        ("n", 1),
        {"backoff": BackoffSpec.exponential(5, multiplier=0.5)},
        InvalidArgumentError,
        "multiplier",
    ),
    (("n", 1), {"job_id": "   "}, InvalidArgumentError, "job_id"),
]


@pytest.mark.parametrize(("args", "kw", "cls", "field"), ADD)
async def test_add_rejects(
    q: Queue, args: tuple, kw: dict, cls: type, field: str
) -> None:
    with pytest.raises(cls) as info:
        await q.add(*args, **kw)
    _check(info.value, cls, field)


async def test_add_unknown_keyword(q: Queue) -> None:
    with pytest.raises(TypeError, match="bogus"):
        await q.add("n", 1, bogus=True)  # type: ignore[call-arg]


async def test_name_of_exactly_256_bytes_is_accepted(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    async with Queue(queue_name, redis_url=redis_url) as queue:
        job = await queue.add("é" * 128, 1)
    assert job.name == "é" * 128
    ((_, fields),) = await r.xrange(f"{{chasqui:{queue_name}}}:stream")
    assert fields[b"n"] == ("é" * 128).encode()


BULK: list[tuple[Any, type[BaseException], str]] = [
    ({"name": "a", "data": 1}, InvalidTypeError, "jobs"),
    ("not a list", InvalidTypeError, "jobs"),
    (
        [{"name": "a", "data": 1}, {"name": "b", "data": 2, "bogus": 1}],
        InvalidTypeError,
        "jobs[1].bogus",
    ),
    ([{"name": "a", "data": 1}, {"name": "b"}], InvalidTypeError, "jobs[1]"),
    ([{"name": "a", "data": 1}, {"data": 1}], InvalidTypeError, "jobs[1]"),
    ([{"name": "a", "data": 1}, ("b", 2)], InvalidTypeError, "jobs[1]"),
    (
        [{"name": "a", "data": 1}, {"name": "b", "data": 2, "attempts": 0}],
        InvalidArgumentError,
        "jobs[1].attempts",
    ),
    (
        [{"name": "a", "data": 1}, {"name": "x" * 300, "data": 2}],
        InvalidArgumentError,
        "jobs[1].name",
    ),
    (
        [
            {"name": "a", "data": 1},
            {"name": "b", "data": 2, "delay_ms": 1, "delay": timedelta(1)},
        ],
        InvalidArgumentError,
        "jobs[1].delay_ms",
    ),
    (
        [{"name": "a", "data": 1}, {"name": "b", "data": 2, "delay_ms": math.nan}],
        InvalidArgumentError,
        "jobs[1].delay_ms",
    ),
    (
        [{"name": "a", "data": 1}, {"name": "b", "data": object()}],
        PayloadEncodeError,
        "jobs[1].data",
    ),
    (
        [{"name": "a", "data": 1}, {"name": "b", "data": {(1, 2): 3}}],
        PayloadEncodeError,
        "jobs[1].data",
    ),
    (
        [{"name": "a", "data": 1}, {"name": "b", "data": 2, "attempts": 2**40}],
        InvalidArgumentError,
        "attempts",
    ),
]


@pytest.mark.parametrize(("jobs", "cls", "field"), BULK)
async def test_add_bulk_rejects_whole_batch(
    q: Queue, jobs: Any, cls: type, field: str
) -> None:
    """A bad entry anywhere rejects the batch: the good entries before it are
    not written either (the fixture checks Redis)."""
    with pytest.raises(cls) as info:
        await q.add_bulk(jobs)
    _check(info.value, cls, field)


async def test_dlq_limits(q: Queue) -> None:
    for call, cls in (
        (lambda: q.peek_dlq(0), InvalidArgumentError),
        (lambda: q.peek_dlq(-1), InvalidArgumentError),
        (lambda: q.replay_dlq("5"), InvalidTypeError),
        (lambda: q.replay_dlq(0), InvalidArgumentError),
    ):
        with pytest.raises(cls) as info:
            await call()
        _check(info.value, cls, "limit")


async def test_worker_concurrency_above_engine_cap(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    """The engine allows at most 100000 in-flight handlers."""
    with pytest.raises(InvalidArgumentError) as info:
        Worker(queue_name, _h, redis_url=redis_url, concurrency=100_001)
    _check(info.value, InvalidArgumentError, "concurrency")
    Worker(queue_name, _h, redis_url=redis_url, concurrency=100_000)
    assert await queue_keys(r, queue_name) == []


# ---- unreachable Redis --------------------------------------------------------


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_unreachable_redis_from_queue_add() -> None:
    url = f"redis://user:{SECRET}@127.0.0.1:{_closed_port()}/0"
    q = Queue("unreachable", redis_url=url)
    t0 = time.monotonic()
    with pytest.raises(RedisConnectionError) as info:
        await asyncio.wait_for(q.add("x", 1), 15)
    assert time.monotonic() - t0 < 10
    assert isinstance(info.value, ConnectionError)
    assert SECRET not in str(info.value)
    # Not cached: a second call fails the same way instead of hanging or crashing.
    with pytest.raises(RedisConnectionError):
        await asyncio.wait_for(q.add_bulk([{"name": "x", "data": 1}]), 15)
    with pytest.raises(RedisConnectionError):
        await asyncio.wait_for(q.peek_dlq(), 15)
    await q.close()


async def test_unreachable_redis_from_worker_run() -> None:
    url = f"redis://user:{SECRET}@127.0.0.1:{_closed_port()}"
    w = Worker("unreachable", _h, redis_url=url, start_timeout_ms=0)
    t0 = time.monotonic()
    with pytest.raises(RedisConnectionError) as info:
        await asyncio.wait_for(w.run(), 15)
    assert time.monotonic() - t0 < 10
    assert isinstance(info.value, ConnectionError)
    assert SECRET not in str(info.value)
    assert not w.is_running
    await w.close()
    assert w.is_closed


async def test_data_that_would_not_read_back_is_refused_everywhere(
    q: Queue, redis_url: str, queue_name: str
) -> None:
    """A tuple key encodes but cannot be decoded by any worker: add, add_bulk
    and repeatable specs refuse it with a message that says what to do, and
    tuples as values (read back as lists, like JSON) stay accepted."""
    with pytest.raises(PayloadEncodeError) as info:
        await q.add("n", {(1, 2): 3})
    msg = str(info.value)
    assert "data" in msg and "tuple" in msg and "str, int" in msg, msg
    with pytest.raises(PayloadEncodeError, match=r"data"):
        await q.upsert_repeatable_job(
            "tick", {(1,): 1}, repeat=RepeatPattern.every(1000)
        )
    other = f"{queue_name}-tuples"
    async with Queue(other, redis_url=redis_url) as q2:
        job = await q2.add("n", {"pair": (1, 2)})
    got: list[Any] = []

    async def handler(j: Job) -> None:
        got.append(j.data)

    worker = Worker(other, handler, redis_url=redis_url, events_enabled=False)
    task = asyncio.create_task(worker.run())
    try:
        for _ in range(200):
            if got:
                break
            await asyncio.sleep(0.02)
    finally:
        await worker.close()
        await task
    assert got == [{"pair": [1, 2]}], (job.id, got)
