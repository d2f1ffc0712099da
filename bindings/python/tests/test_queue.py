"""Queue: add, add_bulk, peek_dlq, replay_dlq, close, sharing across tasks
and threads."""

from __future__ import annotations

import asyncio
import threading

import msgpack
import pytest
import redis.asyncio as aioredis
from helpers import envelope, is_ulid, key, now_ms, split_member, stream_len

from chasquimq import BackoffSpec, ClosedError, Job, Queue


async def test_add_returns_job_and_writes_one_entry(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    before = now_ms()
    async with Queue(queue_name, redis_url=redis_url) as q:
        job = await q.add("send-email", {"to": "a@x", "n": 1})
    after = now_ms()
    assert isinstance(job, Job)
    assert is_ulid(job.id), job.id
    assert job.name == "send-email"
    assert job.data == {"to": "a@x", "n": 1}
    assert job.attempt == 0 and job.attempts_made == 0
    assert before - 5 <= job.created_at_ms <= after + 5
    entries = await r.xrange(key(queue_name, "stream"))
    assert len(entries) == 1
    env = msgpack.unpackb(entries[0][1][b"d"], raw=False)
    assert env[0] == job.id and env[2] == job.created_at_ms and env[3] == 0
    assert msgpack.unpackb(env[1], raw=False) == {"to": "a@x", "n": 1}


async def test_add_ids_are_unique_and_time_ordered(
    redis_url: str, queue_name: str
) -> None:
    async with Queue(queue_name, redis_url=redis_url) as q:
        jobs = [await q.add("x", i) for i in range(20)]
    ids = [j.id for j in jobs]
    assert len(set(ids)) == 20
    assert all(is_ulid(i) for i in ids)
    # The 10-character time prefix never goes backwards.
    assert [i[:10] for i in ids] == sorted(i[:10] for i in ids)


async def test_add_bulk_many_entries_with_and_without_names(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    specs = [
        {"name": ("" if i % 3 == 0 else f"job-{i}"), "data": {"i": i}}
        for i in range(50)
    ]
    before = now_ms()
    async with Queue(queue_name, redis_url=redis_url) as q:
        jobs = await q.add_bulk(specs)
    assert len(jobs) == 50
    assert len({j.id for j in jobs}) == 50
    for spec, job in zip(specs, jobs, strict=False):
        assert is_ulid(job.id)
        assert (
            job.name == spec["name"] and job.data == spec["data"] and job.attempt == 0
        )
        assert job.created_at_ms >= before - 5
    entries = await r.xrange(key(queue_name, "stream"))
    assert len(entries) == 50
    # Entries land in the order given, with `n` only for non-empty names.
    for spec, job, (_sid, fields) in zip(specs, jobs, entries, strict=False):
        env = msgpack.unpackb(fields[b"d"], raw=False)
        assert env[0] == job.id
        assert msgpack.unpackb(env[1], raw=False) == spec["data"]
        if spec["name"]:
            assert (
                list(fields) == [b"d", b"n"] and fields[b"n"] == spec["name"].encode()
            )
        else:
            assert list(fields) == [b"d"]


async def test_add_bulk_per_job_options(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    async with Queue(queue_name, redis_url=redis_url) as q:
        jobs = await q.add_bulk(
            [
                {"name": "plain", "data": 1},
                {"name": "tries", "data": 2, "attempts": 7},
                {
                    "name": "",
                    "data": 3,
                    "attempts": 2,
                    "backoff": BackoffSpec.fixed(150),
                },
                {"name": "later", "data": 4, "delay_ms": 60_000},
                {"name": "int-backoff", "data": 5, "backoff": 80},
            ]
        )
    entries = await r.xrange(key(queue_name, "stream"))
    by_id = {
        msgpack.unpackb(f[b"d"], raw=False)[0]: msgpack.unpackb(f[b"d"], raw=False)
        for _, f in entries
    }
    assert set(by_id) == {jobs[0].id, jobs[1].id, jobs[2].id, jobs[4].id}
    assert len(by_id[jobs[0].id]) == 4
    assert by_id[jobs[1].id][4] == [7, None]
    assert by_id[jobs[2].id][4] == [2, ["fixed", 150, None, None, None]]
    assert by_id[jobs[4].id][4] == [None, ["fixed", 80, None, None, None]]
    # The delayed one is in the zset, due about a minute from now.
    delayed = await r.zrange(key(queue_name, "delayed"), 0, -1, withscores=True)
    assert len(delayed) == 1
    member, score = delayed[0]
    name, env = split_member(member)
    assert name == "later"
    assert msgpack.unpackb(env, raw=False)[0] == jobs[3].id
    assert now_ms() + 50_000 < score <= now_ms() + 60_000


async def test_add_bulk_empty_list(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    async with Queue(queue_name, redis_url=redis_url) as q:
        assert await q.add_bulk([]) == []
    assert await stream_len(r, queue_name) == 0


def _dlq_fields(
    job_id: str, data: object, *, attempt: int, retry: object = None, name: str = ""
) -> dict:
    fields: dict = {"d": envelope(job_id, data, now_ms(), attempt, retry)}
    if name:
        fields["n"] = name
    fields["source_id"] = "1-0"
    fields["reason"] = "retries_exhausted"
    fields["detail"] = "ValueError: boom"
    return fields


async def test_peek_dlq_returns_documented_dicts(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    ids = []
    for i in range(3):
        ids.append(
            await r.xadd(
                key(queue_name, "dlq"),
                _dlq_fields(f"job-{i}", {"i": i}, attempt=2, name="mail" if i else ""),
            )
        )
    async with Queue(queue_name, redis_url=redis_url) as q:
        assert await q.peek_dlq() != []
        got = await q.peek_dlq(limit=2)
        assert len(got) == 2
        for i, e in enumerate(got):
            assert {
                "dlq_id",
                "source_id",
                "reason",
                "detail",
                "name",
                "payload",
            } <= set(e)
            assert e["dlq_id"] == ids[i].decode()
            assert e["source_id"] == "1-0"
            assert e["reason"] == "retries_exhausted"
            assert e["detail"] == "ValueError: boom"
            assert e["name"] == ("mail" if i else "")
            assert isinstance(e["payload"], bytes)
            assert msgpack.unpackb(e["payload"], raw=False)[0] == f"job-{i}"
        # Peek does not remove.
        assert len(await q.peek_dlq(limit=100)) == 3


async def test_peek_dlq_empty(redis_url: str, queue_name: str) -> None:
    async with Queue(queue_name, redis_url=redis_url) as q:
        assert await q.peek_dlq() == []
        assert await q.replay_dlq() == 0


async def test_replay_dlq_resets_attempt_keeps_override(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    retry = [4, ["fixed", 100, None, None, None]]
    await r.xadd(
        key(queue_name, "dlq"),
        _dlq_fields("a", {"v": 1}, attempt=3, retry=retry, name="nm"),
    )
    await r.xadd(key(queue_name, "dlq"), _dlq_fields("b", [1, 2], attempt=5))
    await r.xadd(key(queue_name, "dlq"), _dlq_fields("c", None, attempt=1))
    async with Queue(queue_name, redis_url=redis_url) as q:
        assert await q.replay_dlq(limit=2) == 2
        # Oldest first: a and b moved, c stays.
        left = await q.peek_dlq()
        assert [msgpack.unpackb(e["payload"], raw=False)[0] for e in left] == ["c"]
        entries = await r.xrange(key(queue_name, "stream"))
        assert len(entries) == 2
        env_a = msgpack.unpackb(entries[0][1][b"d"], raw=False)
        assert env_a[0] == "a" and env_a[3] == 0 and env_a[4] == retry
        assert msgpack.unpackb(env_a[1], raw=False) == {"v": 1}
        assert list(entries[0][1]) == [b"d", b"n"] and entries[0][1][b"n"] == b"nm"
        env_b = msgpack.unpackb(entries[1][1][b"d"], raw=False)
        assert env_b[0] == "b" and env_b[3] == 0 and len(env_b) == 4
        assert list(entries[1][1]) == [b"d"]
        assert await q.replay_dlq() == 1
        assert await q.peek_dlq() == []
    assert await r.xlen(key(queue_name, "dlq")) == 0
    assert await stream_len(r, queue_name) == 3


async def test_concurrent_replay_never_duplicates(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    n = 200
    pipe = r.pipeline(transaction=False)
    for i in range(n):
        pipe.xadd(key(queue_name, "dlq"), _dlq_fields(f"j{i}", i, attempt=2))
    await pipe.execute()
    # Separate queues: separate connections, truly concurrent.
    qs = [Queue(queue_name, redis_url=redis_url) for _ in range(4)]
    try:
        counts = await asyncio.gather(*(q.replay_dlq(limit=1000) for q in qs))
    finally:
        for q in qs:
            await q.close()
    assert sum(counts) == n, counts
    entries = await r.xrange(key(queue_name, "stream"))
    ids = [msgpack.unpackb(f[b"d"], raw=False)[0] for _, f in entries]
    assert len(ids) == n and len(set(ids)) == n
    assert await r.xlen(key(queue_name, "dlq")) == 0


async def test_close_idempotent_and_use_after_close(
    redis_url: str, queue_name: str
) -> None:
    q = Queue(queue_name, redis_url=redis_url)
    assert q.name == queue_name
    assert q.is_closed is False
    await q.add("x", 1)
    await q.close()
    assert q.is_closed is True
    await q.close()  # idempotent
    assert q.is_closed is True
    with pytest.raises(ClosedError):
        await q.add("x", 1)
    with pytest.raises(ClosedError):
        await q.add_bulk([{"name": "x", "data": 1}])
    with pytest.raises(ClosedError):
        await q.peek_dlq()
    with pytest.raises(ClosedError):
        await q.replay_dlq()
    assert issubclass(ClosedError, RuntimeError)


async def test_close_before_first_use(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    q = Queue(queue_name, redis_url=redis_url)
    await q.close()
    with pytest.raises(ClosedError):
        await q.add("x", 1)
    assert await stream_len(r, queue_name) == 0


async def test_async_with_closes(redis_url: str, queue_name: str) -> None:
    async with Queue(queue_name, redis_url=redis_url) as q:
        assert isinstance(q, Queue) and not q.is_closed
        await q.add("x", 1)
    assert q.is_closed
    with pytest.raises(ClosedError):
        await q.add("x", 1)


async def test_shared_by_many_tasks(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    async with Queue(queue_name, redis_url=redis_url) as q:
        jobs = await asyncio.gather(*(q.add("t", {"i": i}) for i in range(300)))
        bulks = await asyncio.gather(
            *(q.add_bulk([{"name": "b", "data": i}] * 5) for i in range(20))
        )
    ids = {j.id for j in jobs} | {j.id for b in bulks for j in b}
    assert len(ids) == 400
    assert await stream_len(r, queue_name) == 400


async def test_shared_by_threads_with_own_loops(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    q = Queue(queue_name, redis_url=redis_url)
    results: dict[int, list[str]] = {}
    errors: list[BaseException] = []

    def worker(t: int) -> None:
        async def main() -> list[str]:
            jobs = await asyncio.gather(
                *(q.add("th", {"t": t, "k": k}) for k in range(25))
            )
            return [j.id for j in jobs]

        try:
            results[t] = asyncio.run(main())
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    # The test's own loop uses the queue at the same time.
    mine = await asyncio.gather(*(q.add("main", k) for k in range(25)))
    for th in threads:
        await asyncio.to_thread(th.join, 20)
        assert not th.is_alive()
    await q.close()
    assert errors == []
    ids = {i for ids in results.values() for i in ids} | {j.id for j in mine}
    assert len(ids) == 125
    assert await stream_len(r, queue_name) == 125
