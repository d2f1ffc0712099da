"""Delayed jobs through the public API: delay accuracy and forms, argument
validation, per-job retry overrides (retry, crash recovery, DLQ replay),
cancel vs promote, and the delayed-member / dlid / didx wire bytes."""

from __future__ import annotations

import asyncio
import math
import random
import signal
import struct
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgpack
import pytest
import redis.asyncio as aioredis
from sched_proc import key, read_lines, running, spawn, wait_until

from chasquimq import (
    BackoffSpec,
    InvalidArgumentError,
    InvalidTypeError,
    Job,
    MissedFiresPolicy,
    Queue,
    RepeatPattern,
    Worker,
)

PROMOTER_TICK = 0.100
# Event-loop and Redis round trips between a due promotion and the handler start.
ALLOWANCE = 0.080


def worker(queue: str, handler: Any, redis_url: str, **kw: Any) -> Worker:
    kw.setdefault("read_block_ms", 200)
    kw.setdefault("run_scheduler", False)
    return Worker(queue, handler, redis_url=redis_url, **kw)


async def server_ms(r: aioredis.Redis) -> int:
    s, us = await r.time()
    return s * 1000 + us // 1000


def split_member(member: bytes) -> tuple[bytes, bytes]:
    (n,) = struct.unpack_from("<I", member, 0)
    assert 4 + n <= len(member)
    return member[4 : 4 + n], member[4 + n :]


async def delayed_members(
    r: aioredis.Redis, q: str
) -> dict[str, tuple[bytes, float, list[Any]]]:
    """job id -> (member bytes, score, decoded envelope)."""
    out = {}
    for member, score in await r.zrange(key(q, "delayed"), 0, -1, withscores=True):
        _, env = split_member(member)
        e = msgpack.unpackb(env, raw=False)
        out[e[0]] = (member, score, e)
    return out


async def event_list(r: aioredis.Redis, q: str) -> list[dict[str, str]]:
    return [
        {k.decode(): v.decode() for k, v in f.items()}
        for _, f in await r.xrange(key(q, "events"))
    ]


# ---------------------------------------------------------------------------
# Delay accuracy and forms
# ---------------------------------------------------------------------------


async def test_delay_accuracy_within_one_promoter_tick(
    redis_url: str, queue_name: str
) -> None:
    started: dict[str, float] = {}
    seen = asyncio.Event()

    async def handler(job: Job) -> None:
        started[job.id] = time.time()
        seen.set()

    async with (
        Queue(queue_name, redis_url=redis_url) as q,
        running(worker(queue_name, handler, redis_url)),
    ):
        # Warm up: the worker reads, the promoter leads.
        await q.add("warm", 0, delay_ms=20)
        await asyncio.wait_for(seen.wait(), 10)
        gaps = []
        for i in range(5):
            # Land the add anywhere in the promoter's sleep.
            await asyncio.sleep(random.uniform(0, PROMOTER_TICK))
            seen.clear()
            t0 = time.time()
            job = await q.add("acc", i, delay_ms=200)
            await asyncio.wait_for(seen.wait(), 10)
            gaps.append(started[job.id] - t0)
    for gap in gaps:
        assert 0.200 <= gap <= 0.200 + PROMOTER_TICK + ALLOWANCE, gaps


async def test_zero_and_past_delays_go_straight_to_the_stream(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    past = datetime.now(timezone.utc) - timedelta(hours=1)
    async with Queue(queue_name, redis_url=redis_url) as q:
        jobs = [
            await q.add("zero", 1, delay_ms=0),
            await q.add("zero-float", 2, delay_ms=0.0),
            await q.add("sub-ms", 3, delay_ms=0.9),  # truncates to 0
            await q.add("past", 4, delay_ms=past),
            await q.add("past-naive", 5, delay_ms=past.replace(tzinfo=None)),
            await q.add("td-zero", 6, delay=timedelta(0)),
        ]
    assert await r.xlen(key(queue_name, "stream")) == len(jobs)
    assert await r.zcard(key(queue_name, "delayed")) == 0
    assert [
        e["e"] for e in await event_list(r, queue_name) if e["e"] == "delayed"
    ] == []
    ids = [
        msgpack.unpackb(f[b"d"], raw=False)[0]
        for _, f in await r.xrange(key(queue_name, "stream"))
    ]
    assert ids == [j.id for j in jobs]


async def test_delay_forms_timedelta_datetime_naive_and_float(
    redis_url: str, queue_name: str, r: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A local zone far from UTC: a naive datetime read as local time would be hours off.
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    try:
        when = datetime.now(timezone.utc) + timedelta(seconds=20)
        when_ms = math.ceil(when.timestamp() * 1000)
        async with Queue(queue_name, redis_url=redis_url) as q:
            t_before = await server_ms(r)
            td = await q.add("td", 1, delay=timedelta(seconds=1, microseconds=500_999))
            flt = await q.add("float", 2, delay_ms=1500.9)
            absolute = await q.add("abs", 3, delay_ms=when)
            naive = await q.add("naive", 4, delay_ms=when.replace(tzinfo=None))
            other_tz = await q.add(
                "tz", 5, delay_ms=when.astimezone(timezone(timedelta(hours=-7)))
            )
            t_after = await server_ms(r)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    m = await delayed_members(r, queue_name)
    assert set(m) == {td.id, flt.id, absolute.id, naive.id, other_tz.id}
    # Relative delays, truncated to whole ms: server time at add + 1500.
    for j in (td, flt):
        assert t_before + 1500 <= m[j.id][1] <= t_after + 1501
    # Absolute times: at the requested instant (ceil to ms; a few ms of client/server lag).
    for j in (absolute, naive, other_tz):
        assert when_ms <= m[j.id][1] <= when_ms + 50, (j.name, m[j.id][1] - when_ms)
    delay_fields = {
        e["id"]: e["delay_ms"]
        for e in await event_list(r, queue_name)
        if e["e"] == "delayed"
    }
    assert delay_fields[td.id] == "1500" and delay_fields[flt.id] == "1500"


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------

BAD_VALUES = [
    ({"delay_ms": 10, "delay": timedelta(seconds=1)}, "delay"),
    ({"delay_ms": -1}, "delay_ms"),
    ({"delay_ms": -0.5}, "delay_ms"),
    ({"delay_ms": float("nan")}, "delay_ms"),
    ({"delay_ms": float("inf")}, "delay_ms"),
    ({"delay_ms": float("-inf")}, "delay_ms"),
    ({"delay": timedelta(milliseconds=-1)}, "delay"),
    (
        {"delay": timedelta(days=31)},
        "delay_ms",
    ),  # above the default max_delay_secs (30 days)
    ({"delay_ms": 31 * 86_400_000}, "delay_ms"),
    ({"job_id": "   "}, "job_id"),
    ({"job_id": ""}, "job_id"),
    ({"job_id": "\t\n"}, "job_id"),
    ({"attempts": 0}, "attempts"),
    ({"backoff": -1}, "backoff"),
    ({"missed_fires": MissedFiresPolicy.fire_once()}, "missed_fires"),
    ({"missed_fires": {"kind": "skip"}}, "missed_fires"),
    ({"repeat": RepeatPattern.cron("61 * * * *")}, "expression"),
    ({"repeat": RepeatPattern.cron("0 * * *")}, "expression"),
    ({"repeat": RepeatPattern.cron("0 * * * *", tz="Mars/Olympus_Mons")}, "tz"),
    ({"repeat": {"kind": "every", "interval_ms": 0}}, "interval"),
    (
        {
            "repeat": RepeatPattern.every(1000),
            "missed_fires": {"kind": "fire-all", "max_catchup": 0},
        },
        "max_catchup",
    ),
    ({"repeat": RepeatPattern.every(1000), "missed_fires": {"kind": "later"}}, "kind"),
    ({"repeat": RepeatPattern.every(1000), "delay_ms": 10}, "delay"),
]


@pytest.mark.parametrize(
    ("kwargs", "field"), BAD_VALUES, ids=[str(i) for i in range(len(BAD_VALUES))]
)
async def test_bad_values_raise_value_error(
    redis_url: str,
    queue_name: str,
    r: aioredis.Redis,
    kwargs: dict[str, Any],
    field: str,
) -> None:
    async with Queue(queue_name, redis_url=redis_url) as q:
        with pytest.raises(ValueError, match=field) as ei:
            await q.add("j", 1, **kwargs)
    assert isinstance(ei.value, InvalidArgumentError)
    # Nothing was written.
    assert [k for k in await r.keys("*") if k.startswith(key(queue_name, ""))] == []


BAD_TYPES = [
    {"delay_ms": "100"},
    {"delay_ms": True},
    {"delay_ms": timedelta(seconds=1)},
    {"delay_ms": [100]},
    {"delay": 100},
    {"delay": datetime.now(timezone.utc)},
    {"job_id": 42},
    {"attempts": 2.0},
    {"backoff": "fixed"},
    {"backoff": True},
    {"repeat": "every 5s"},
    {"repeat": RepeatPattern.every(1000), "missed_fires": "skip"},
]


@pytest.mark.parametrize(
    "kwargs", BAD_TYPES, ids=[str(i) for i in range(len(BAD_TYPES))]
)
async def test_bad_types_raise_type_error(
    redis_url: str, queue_name: str, kwargs: dict[str, Any]
) -> None:
    async with Queue(queue_name, redis_url=redis_url) as q:
        with pytest.raises(TypeError) as ei:
            await q.add("j", 1, **kwargs)
    assert isinstance(ei.value, InvalidTypeError)


async def test_other_validation_errors(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    async with Queue(queue_name, redis_url=redis_url, max_delay_secs=1) as q:
        await q.add("ok", 1, delay_ms=1000)  # exactly the maximum
        for kw in (
            {"delay_ms": 1001},
            {"delay": timedelta(seconds=2)},
            {"delay_ms": datetime.now(timezone.utc) + timedelta(seconds=5)},
        ):
            with pytest.raises(ValueError, match="max_delay_secs"):
                await q.add("too-far", 1, **kw)
        # add_bulk: the whole call is rejected, nothing written.
        with pytest.raises(ValueError, match=r"jobs\[1\]"):
            await q.add_bulk(
                [{"name": "a", "data": 1}, {"name": "b", "data": 2, "delay_ms": 5000}]
            )
        with pytest.raises(TypeError):
            await q.add_unique("u", 1)  # type: ignore[call-arg]
        with pytest.raises(ValueError, match="job_id"):
            await q.add_unique("u", 1, job_id="  ")
        with pytest.raises(ValueError, match="job_id"):
            await q.cancel_delayed(" ")
        with pytest.raises(ValueError, match="job_id"):
            await q.add_bulk([{"name": "a", "data": 1, "job_id": " "}])
    assert await r.zcard(key(queue_name, "delayed")) == 1
    assert await r.xlen(key(queue_name, "stream")) == 0

    for bad in (0, -5):
        with pytest.raises(ValueError, match="interval_ms"):
            RepeatPattern.every(bad)
    with pytest.raises(TypeError):
        RepeatPattern.every(1.5)  # type: ignore[arg-type]
    for bad in (0, -1):
        with pytest.raises(ValueError, match="max_catchup"):
            MissedFiresPolicy.fire_all(bad)
    with pytest.raises(ValueError, match="expression"):
        RepeatPattern.cron("  ")
    with pytest.raises(ValueError, match="tz"):
        RepeatPattern.cron("* * * * *", tz=" ")
    with pytest.raises(ValueError):
        BackoffSpec.fixed(-1)


async def test_dict_forms_are_accepted(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    async with Queue(queue_name, redis_url=redis_url) as q:
        spec = await q.add(
            "dicts",
            {"x": 1},
            repeat={"kind": "every", "interval_ms": 60_000},
            missed_fires={"kind": "fire-all", "max_catchup": 2},
        )
        cron = await q.add(
            "dict-cron",
            1,
            repeat={"kind": "cron", "expression": "0 5 * * *", "tz": "Europe/Berlin"},
            missed_fires={"kind": "fire-once"},
        )
        job = await q.add(
            "bo",
            1,
            attempts=2,
            backoff={"kind": "exponential", "delay_ms": 7, "multiplier": 3.0},
        )
        metas = {m.key: m for m in await q.get_repeatable_jobs()}
    assert (
        spec.id == "dicts::every:60000"
        and cron.id == "dict-cron::cron:0 5 * * *:Europe/Berlin"
    )
    assert metas[spec.id].missed_fires == MissedFiresPolicy.fire_all(2)
    assert metas[spec.id].pattern == RepeatPattern.every(60_000)
    assert metas[cron.id].missed_fires == MissedFiresPolicy.fire_once()
    assert metas[cron.id].pattern == RepeatPattern.cron("0 5 * * *", tz="Europe/Berlin")
    ((_, fields),) = await r.xrange(key(queue_name, "stream"))
    env = msgpack.unpackb(fields[b"d"], raw=False)
    assert env[0] == job.id and env[4] == [2, ["exponential", 7, None, 3.0, None]]


# ---------------------------------------------------------------------------
# Per-job retry overrides
# ---------------------------------------------------------------------------


async def test_retry_overrides_bound_runs_and_survive_dlq_replay(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    runs: dict[str, list[int]] = {}

    async def handler(job: Job) -> None:
        runs.setdefault(job.id, []).append(job.attempt)
        raise RuntimeError("always")

    async with Queue(queue_name, redis_url=redis_url) as q:
        a = await q.add("int", 1, attempts=2, backoff=10)
        b = await q.add(
            "spec", 2, attempts=3, backoff=BackoffSpec.fixed(20, jitter_ms=0)
        )
        c = await q.add(
            "dict",
            3,
            attempts=4,
            backoff={
                "kind": "exponential",
                "delay_ms": 5,
                "multiplier": 3.0,
                "max_delay_ms": 100,
                "jitter_ms": 0,
            },
        )
        d = await q.add("attempts-only", 4, attempts=1)
        want = {a.id: 2, b.id: 3, c.id: 4, d.id: 1}

        async def dlq_len() -> int:
            return await r.xlen(key(queue_name, "dlq"))

        async with running(worker(queue_name, handler, redis_url, max_attempts=25)):
            await wait_until(lambda: _ge(dlq_len, 4), timeout=15, what="DLQ")
            assert {k: len(v) for k, v in runs.items()} == want
            assert all(v == list(range(1, len(v) + 1)) for v in runs.values())
            dlq = await q.peek_dlq(10)
            assert {e["job_id"] for e in dlq} == set(want)
            assert {e["reason"] for e in dlq} == {"retries_exhausted"}
            for e in dlq:  # the override is still in the envelope
                env = msgpack.unpackb(e["payload"], raw=False)
                assert len(env) == 5 and env[4][0] == want[env[0]]

            # Replay: each job again gets exactly its attempts.
            runs.clear()
            assert await q.replay_dlq(10) == 4
            await wait_until(
                lambda: _ge(dlq_len, 4), timeout=15, what="DLQ after replay"
            )
            await asyncio.sleep(0.2)
            assert {k: len(v) for k, v in runs.items()} == want
            assert all(v == list(range(1, len(v) + 1)) for v in runs.values())

    backoffs: dict[str, list[int]] = {}
    for e in await event_list(r, queue_name):
        if e["e"] == "retry-scheduled":
            backoffs.setdefault(e["id"], []).append(int(e["backoff_ms"]))
    # int backoff = fixed ms (jitter falls back to the queue-wide 100 ms).
    assert backoffs[a.id] and all(10 <= x < 110 for x in backoffs[a.id])
    assert backoffs[b.id] == [20, 20] * 2
    assert backoffs[c.id] == [5, 15, 45] * 2
    assert d.id not in backoffs


async def _ge(fn: Any, n: int) -> bool:
    return await fn() >= n


async def test_retry_override_survives_crash_recovery(
    redis_url: str, queue_name: str, r: aioredis.Redis, tmp_path: Path
) -> None:
    async with Queue(queue_name, redis_url=redis_url) as q:
        job = await q.add(
            "crash", {"k": 1}, attempts=3, backoff=BackoffSpec.fixed(10, jitter_ms=0)
        )
    out, stop = tmp_path / "runs.jsonl", tmp_path / "stop"
    proc = spawn(
        "worker",
        redis_url,
        queue_name,
        out,
        stop,
        {
            "behaviour": "hang",
            "worker": {
                "delayed_enabled": False,
                "run_scheduler": False,
                "read_block_ms": 200,
            },
        },
    )
    try:
        await wait_until(
            lambda: read_lines(out), timeout=15, what="the subprocess to start the job"
        )
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert [(x["id"], x["attempt"]) for x in read_lines(out)] == [(job.id, 1)]
    # Left pending, its envelope (with the override) unchanged.
    ((_, fields),) = await r.xrange(key(queue_name, "stream"))
    assert msgpack.unpackb(fields[b"d"], raw=False)[4] == [
        3,
        ["fixed", 10, None, None, 0],
    ]

    runs: list[int] = []

    async def handler(j: Job) -> None:
        runs.append(j.attempt)
        raise RuntimeError("still failing")

    async with running(worker(queue_name, handler, redis_url, claim_min_idle_ms=300)):
        await wait_until(lambda: r.xlen(key(queue_name, "dlq")), timeout=15, what="DLQ")
        await asyncio.sleep(0.3)
    # The killed run counted: 1 (killed) + 2 here = attempts, not the worker's 25.
    assert runs == [2, 3]
    ((_, fields),) = await r.xrange(key(queue_name, "dlq"))
    assert fields[b"reason"] == b"retries_exhausted"
    env = msgpack.unpackb(fields[b"d"], raw=False)
    assert env[0] == job.id and env[4] == [3, ["fixed", 10, None, None, 0]]


# ---------------------------------------------------------------------------
# Cancel vs promote
# ---------------------------------------------------------------------------


async def test_cancel_vs_promote_race(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    delivered: dict[str, int] = {}

    async def handler(job: Job) -> None:
        delivered[job.id] = delivered.get(job.id, 0) + 1

    cancelled: dict[str, bool] = {}

    async def one(q: Queue, jid: str) -> None:
        delay = random.randint(50, 100)
        await q.add("race", 0, delay_ms=delay, job_id=jid)
        await asyncio.sleep(max(0.0, (delay + random.uniform(-25, 25)) / 1000))
        cancelled[jid] = await q.cancel_delayed(jid)

    async with (
        Queue(queue_name, redis_url=redis_url) as q,
        running(worker(queue_name, handler, redis_url)),
    ):
        await q.add("warm", 0, delay_ms=10)
        await wait_until(lambda: delivered, what="warm-up")
        delivered.clear()
        ids = [f"race-{i}" for i in range(200)]
        for wave in range(4):
            await asyncio.gather(
                *(one(q, jid) for jid in ids[wave * 50 : (wave + 1) * 50])
            )
        expect = {jid for jid in ids if not cancelled[jid]}
        await wait_until(
            lambda: expect <= set(delivered), timeout=10, what="uncancelled jobs"
        )
        await asyncio.sleep(0.3)  # a cancelled job delivered late would show up here
    both = [jid for jid in ids if cancelled[jid] and jid in delivered]
    neither = [jid for jid in ids if not cancelled[jid] and jid not in delivered]
    assert both == [] and neither == []
    assert all(n == 1 for n in delivered.values())
    n_cancelled = sum(cancelled.values())
    assert 0 < n_cancelled < len(ids), n_cancelled  # both outcomes were exercised
    assert await r.zcard(key(queue_name, "delayed")) == 0
    # A successful cancel drops the cancel index and the dedup marker.
    for jid in ids:
        if cancelled[jid]:
            assert not await r.exists(
                key(queue_name, f"didx:{jid}"), key(queue_name, f"dlid:{jid}")
            )


async def test_cancel_results(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    ran: list[str] = []

    async def handler(job: Job) -> None:
        ran.append(job.id)

    async with Queue(queue_name, redis_url=redis_url) as q:
        assert await q.cancel_delayed("never-added") is False
        await q.add("c", 1, delay_ms=60_000, job_id="to-cancel")
        assert await q.cancel_delayed("to-cancel") is True
        assert await q.cancel_delayed("to-cancel") is False
        assert await r.zcard(key(queue_name, "delayed")) == 0
        # The id is free again after a cancel.
        await q.add("c", 2, delay_ms=30, job_id="to-cancel")
        await q.add("i", 3, job_id="immediate")
        async with running(worker(queue_name, handler, redis_url)):
            await wait_until(lambda: len(ran) == 2, what="both jobs")
            assert (
                await q.cancel_delayed("to-cancel") is False
            )  # already promoted and run
            assert await q.cancel_delayed("immediate") is False  # never delayed
    assert sorted(ran) == ["immediate", "to-cancel"]


# ---------------------------------------------------------------------------
# Wire bytes
# ---------------------------------------------------------------------------


async def test_delayed_member_and_index_wire_bytes(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    async with Queue(queue_name, redis_url=redis_url) as q:
        t0 = await server_ms(r)
        named = await q.add("send-email", {"to": "a@x"}, delay_ms=5_000, job_id="w-1")
        t1 = await server_ms(r)
        await q.add(
            "",
            [1, 2],
            delay_ms=500,
            job_id="w-2",
            attempts=5,
            backoff=BackoffSpec.exponential(
                250, multiplier=3, max_ms=10_000, jitter_ms=50
            ),
        )
        plain = await q.add("plain", None, delay_ms=2_000)
        imm = await q.add("imm", 1, job_id="w-3")
    m = await delayed_members(r, queue_name)
    assert set(m) == {"w-1", "w-2", plain.id}

    member, score, env = m["w-1"]
    assert member[:4] == struct.pack("<I", 10) and member[4:14] == b"send-email"
    assert member[14:15] == b"\x94"  # a 4-element envelope
    assert env[0] == named.id == "w-1" and msgpack.unpackb(env[1]) == {"to": "a@x"}
    assert env[2] == named.created_at_ms and env[3] == 0
    assert t0 + 5_000 <= score <= t1 + 5_001

    member2, _, env2 = m["w-2"]
    assert member2[:4] == b"\x00\x00\x00\x00" and member2[4:5] == b"\x95"
    assert env2[4] == [5, ["exponential", 250, 10_000, 3.0, 50]]
    assert member2[4:].endswith(
        b"\x92\x05\x95\xabexponential\xcc\xfa\xcd\x27\x10\xcb"
        + struct.pack(">d", 3.0)
        + b"\x32"
    )

    # dlid = "1" and didx = the member bytes, TTL max(1, delay div 1000) + 3600.
    for jid, ttl, mem in (("w-1", 3605, member), ("w-2", 3601, member2)):
        assert await r.get(key(queue_name, f"dlid:{jid}")) == b"1"
        assert await r.get(key(queue_name, f"didx:{jid}")) == mem
        for suffix in ("dlid", "didx"):
            t = await r.ttl(key(queue_name, f"{suffix}:{jid}"))
            assert ttl - 2 <= t <= ttl, (suffix, jid, t)
    # No index for a delayed job without an id; an immediate idempotent add has only dlid (1 h).
    assert not await r.exists(
        key(queue_name, f"dlid:{plain.id}"), key(queue_name, f"didx:{plain.id}")
    )
    assert imm.id == "w-3" and await r.get(key(queue_name, "dlid:w-3")) == b"1"
    assert 3598 <= await r.ttl(key(queue_name, "dlid:w-3")) <= 3600
    assert not await r.exists(key(queue_name, "didx:w-3"))


async def test_add_bulk_scheduling_options_in_one_pipeline(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    async with Queue(queue_name, redis_url=redis_url) as q:
        t0 = await server_ms(r)
        jobs = await q.add_bulk(
            [
                {"name": "a", "data": 1},
                {
                    "name": "b",
                    "data": 2,
                    "delay_ms": 3_000,
                    "job_id": "bulk-b",
                    "attempts": 2,
                    "backoff": 15,
                },
                {"name": "c", "data": 3, "delay": timedelta(seconds=4)},
                {"name": "d", "data": 4, "job_id": "bulk-d"},
                {"name": "d2", "data": 5, "job_id": "bulk-d"},  # duplicate: dropped
                {"name": "e", "data": 6, "delay_ms": 0.5},
            ]
        )
        t1 = await server_ms(r)
        m = await delayed_members(r, queue_name)
        assert set(m) == {"bulk-b", jobs[2].id}
        assert m["bulk-b"][2][4] == [2, ["fixed", 15, None, None, None]]
        assert await r.get(key(queue_name, "didx:bulk-b")) == m["bulk-b"][0]
        assert await q.cancel_delayed("bulk-b") is True
    assert [j.name for j in jobs] == ["a", "b", "c", "d", "d2", "e"]
    assert jobs[1].id == "bulk-b" and jobs[3].id == jobs[4].id == "bulk-d"
    stream = [
        (f.get(b"n"), msgpack.unpackb(f[b"d"], raw=False))
        for _, f in await r.xrange(key(queue_name, "stream"))
    ]
    assert [n for n, _ in stream] == [b"a", b"d", b"e"]
    ((member, score),) = await r.zrange(
        key(queue_name, "delayed"), 0, -1, withscores=True
    )
    name, _ = split_member(member)
    assert name == b"c" and t0 + 4_000 <= score <= t1 + 4_001
    assert not await r.exists(key(queue_name, "didx:bulk-b"))
