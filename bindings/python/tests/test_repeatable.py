"""Repeatable specs through the public API: limits and windows, listing and
removal, spec keys, re-upserts, per-fire retry options, missed-fire
policies after an outage, several schedulers at once, the native
Scheduler, and the StoredSpec wire bytes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import msgpack
import pytest
import redis.asyncio as aioredis
from sched_proc import key, read_lines, running, spawn, wait_until

from chasquimq import (
    BackoffSpec,
    Job,
    MissedFiresPolicy,
    Queue,
    RepeatableMeta,
    RepeatPattern,
    Scheduler,
    Worker,
)


def worker(queue: str, handler: Any, redis_url: str, **kw: Any) -> Worker:
    kw.setdefault("read_block_ms", 200)
    kw.setdefault("scheduler_tick_ms", 100)
    return Worker(queue, handler, redis_url=redis_url, **kw)


async def server_ms(r: aioredis.Redis) -> int:
    s, us = await r.time()
    return s * 1000 + us // 1000


async def score(r: aioredis.Redis, q: str, spec_key: str) -> int | None:
    s = await r.zscore(key(q, "repeat"), spec_key)
    return None if s is None else int(s)


async def quiet(r: aioredis.Redis, q: str) -> bool:
    """Nothing waiting, delayed or in flight."""
    if await r.xlen(key(q, "stream")) or await r.zcard(key(q, "delayed")):
        return False
    try:
        return int((await r.xpending(key(q, "stream"), "default"))["pending"]) == 0
    except aioredis.ResponseError:
        return True


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.jobs: list[tuple[Job, float]] = []
        self.fail = fail

    async def __call__(self, job: Job) -> None:
        self.jobs.append((job, time.time() * 1000))
        if self.fail:
            raise RuntimeError("fails every run")

    def created(self, name: str | None = None) -> list[int]:
        return sorted(
            j.created_at_ms for j, _ in self.jobs if name is None or j.name == name
        )


# ---------------------------------------------------------------------------
# limit / start_after_ms / end_before_ms
# ---------------------------------------------------------------------------


async def test_limit_start_after_and_end_before(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    rec = Recorder()
    async with Queue(queue_name, redis_url=redis_url) as q:
        now = await server_ms(r)
        limited = await q.upsert_repeatable_job(
            "limited", {"k": "l"}, repeat=RepeatPattern.every(100), limit=3
        )
        start_after = now + 700
        late = await q.upsert_repeatable_job(
            "late",
            1,
            repeat=RepeatPattern.every(100),
            start_after_ms=start_after,
            limit=2,
        )
        end_before = now + 450
        ending = await q.upsert_repeatable_job(
            "ending", 1, repeat=RepeatPattern.every(100), end_before_ms=end_before
        )
        first_limited = await score(r, queue_name, limited.id)
        assert first_limited is not None and now + 100 <= first_limited <= now + 150
        assert (await score(r, queue_name, late.id) or 0) >= start_after

        async with running(worker(queue_name, rec, redis_url)):
            await wait_until(
                lambda: len(rec.created("late")) == 2, timeout=10, what="late fires"
            )
            await wait_until(lambda: quiet(r, queue_name), what="queue drained")
            await asyncio.sleep(0.3)  # any extra fire would show up here
            metas = await q.get_repeatable_jobs()

    # limit: exactly N fires, on consecutive windows, then the spec is gone.
    assert rec.created("limited") == [first_limited + i * 100 for i in range(3)]
    # start_after_ms: nothing before it, neither the window nor the run.
    assert all(c >= start_after for c in rec.created("late"))
    assert all(t >= start_after for j, t in rec.jobs if j.name == "late")
    # end_before_ms: every window before it fired, none at or after it.
    ended = rec.created("ending")
    assert ended and ended[-1] < end_before and end_before - ended[-1] <= 100
    assert ended == list(range(ended[0], ended[-1] + 1, 100))
    assert metas == []
    for spec in (limited, late, ending):
        assert not await r.exists(key(queue_name, f"repeat:spec:{spec.id}"))
    assert await r.zcard(key(queue_name, "repeat")) == 0


# ---------------------------------------------------------------------------
# Listing, removal, keys, re-upsert
# ---------------------------------------------------------------------------


async def test_get_repeatable_jobs_order_and_fields(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    async with Queue(queue_name, redis_url=redis_url) as q:
        now = await server_ms(r)
        a = await q.upsert_repeatable_job("a", 1, repeat=RepeatPattern.every(60_000))
        b = await q.upsert_repeatable_job(
            "b",
            2,
            repeat=RepeatPattern.every(30_000),
            limit=5,
            start_after_ms=now + 1_000,
            end_before_ms=now + 10_000_000,
            missed_fires=MissedFiresPolicy.fire_all(2),
        )
        c = await q.add(
            "c",
            3,
            repeat=RepeatPattern.cron("0 0 1 1 *", tz="America/New_York"),
            missed_fires=MissedFiresPolicy.fire_once(),
        )
        metas = await q.get_repeatable_jobs()
        first_two = await q.get_repeatable_jobs(limit=2)
    assert [m.key for m in metas] == [b.id, a.id, c.id]
    assert [m.next_fire_ms for m in metas] == sorted(m.next_fire_ms for m in metas)
    assert first_two == metas[:2]
    mb, ma, mc = metas
    assert all(isinstance(m, RepeatableMeta) for m in metas)
    assert mb == RepeatableMeta(
        key="b::every:30000",
        job_name="b",
        pattern=RepeatPattern.every(30_000),
        next_fire_ms=mb.next_fire_ms,
        limit=5,
        start_after_ms=now + 1_000,
        end_before_ms=now + 10_000_000,
        missed_fires=MissedFiresPolicy.fire_all(2),
    )
    assert now + 30_000 <= mb.next_fire_ms <= now + 30_100
    assert ma.key == "a::every:60000" and ma.limit is None and ma.start_after_ms is None
    assert ma.end_before_ms is None and ma.missed_fires == MissedFiresPolicy.skip()
    assert now + 60_000 <= ma.next_fire_ms <= now + 60_100
    assert mc.key == "c::cron:0 0 1 1 *:America/New_York"
    assert mc.pattern == RepeatPattern.cron("0 0 1 1 *", tz="America/New_York")
    assert mc.missed_fires == MissedFiresPolicy.fire_once()
    # Next Jan 1, 00:00 in New York (05:00 UTC): a multiple of an hour, in the future.
    assert mc.next_fire_ms > now and mc.next_fire_ms % 86_400_000 == 5 * 3_600_000


async def test_remove_and_keys(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    async with Queue(queue_name, redis_url=redis_url) as q:
        every = await q.add("tick tock", 1, repeat=RepeatPattern.every(5_000))
        cron = await q.add("nightly", 1, repeat=RepeatPattern.cron("0 2 * * *"))
        cron_tz = await q.add(
            "nightly", 1, repeat=RepeatPattern.cron("0 2 * * *", tz="Europe/Berlin")
        )
        cron6 = await q.upsert_repeatable_job(
            "sec", 1, repeat=RepeatPattern.cron("*/10 * * * * *", tz="+05:30")
        )
        custom = await q.add(
            "custom", 1, repeat=RepeatPattern.every(5_000), job_id="my-key"
        )
        assert every.id == "tick tock::every:5000"
        assert cron.id == "nightly::cron:0 2 * * *:UTC"
        assert cron_tz.id == "nightly::cron:0 2 * * *:Europe/Berlin"
        assert cron6.id == "sec::cron:*/10 * * * * *:+05:30"
        assert custom.id == "my-key"
        assert every.name == "tick tock" and every.data == 1
        keys = {m.key for m in await q.get_repeatable_jobs()}
        assert keys == {every.id, cron.id, cron_tz.id, cron6.id, custom.id}
        for k in keys:
            assert await r.exists(key(queue_name, f"repeat:spec:{k}"))

        assert await q.remove_repeatable_by_key(every.id) is True
        assert await q.remove_repeatable_by_key(every.id) is False
        assert await q.remove_repeatable_by_key("no-such-key") is False
        assert not await r.exists(key(queue_name, f"repeat:spec:{every.id}"))
        assert {m.key for m in await q.get_repeatable_jobs()} == keys - {every.id}


async def test_spec_validation(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    every = RepeatPattern.every(1_000)
    async with Queue(queue_name, redis_url=redis_url) as q:
        now = await server_ms(r)
        for kw, field in (
            ({"limit": 0}, "limit"),
            (
                {"start_after_ms": now + 5_000, "end_before_ms": now + 5_000},
                "end_before_ms",
            ),
            ({"end_before_ms": now - 1}, "end_before_ms"),  # no window left
            ({"start_after_ms": -1}, "start_after_ms"),
            ({"missed_fires": {"kind": "fire-all", "max_catchup": 0}}, "max_catchup"),
            ({"job_id": "  "}, "job_id"),
        ):
            with pytest.raises(ValueError, match=field):
                await q.upsert_repeatable_job("v", 1, repeat=every, **kw)
        for bad in (
            RepeatPattern.cron("0 0 30 2 *"),
            RepeatPattern.cron("a b c d e"),
            {"kind": "hourly"},
        ):
            with pytest.raises(ValueError, match=r"expression|kind"):
                await q.add("v", 1, repeat=bad)
        with pytest.raises(ValueError, match="tz"):
            await q.add("v", 1, repeat=RepeatPattern.cron("0 5 * * *", tz="Berlin"))
        with pytest.raises(TypeError):
            await q.upsert_repeatable_job(
                "v", 1, repeat={"kind": "every", "interval_ms": 5}
            )  # typed only
        with pytest.raises(TypeError):
            await q.upsert_repeatable_job("v", 1)  # type: ignore[call-arg]
        assert await q.get_repeatable_jobs() == []
    assert await r.zcard(key(queue_name, "repeat")) == 0


async def test_reupsert_keeps_next_fire(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    async with Queue(queue_name, redis_url=redis_url) as q:
        spec = await q.upsert_repeatable_job(
            "keep", {"v": 1}, repeat=RepeatPattern.every(60_000)
        )
        first = await score(r, queue_name, spec.id)
        await r.hset(key(queue_name, f"repeat:spec:{spec.id}"), "fired", 7)
        await asyncio.sleep(0.05)
        again = await q.add(
            "keep", {"v": 2}, repeat=RepeatPattern.every(60_000), attempts=2
        )
        assert again.id == spec.id
        assert await score(r, queue_name, spec.id) == first
        assert await r.hget(key(queue_name, f"repeat:spec:{spec.id}"), "fired") == b"7"
        raw = await r.hget(key(queue_name, f"repeat:spec:{spec.id}"), "spec")
        assert msgpack.unpackb(msgpack.unpackb(msgpack.unpackb(raw)[3])) == {
            "v": 2
        }  # new data stored

        # A changed schedule (same key) starts over.
        await q.upsert_repeatable_job(
            "keep", 1, repeat=RepeatPattern.every(60_000), job_id="fixed-key"
        )
        before = await score(r, queue_name, "fixed-key")
        await asyncio.sleep(0.05)
        now = await server_ms(r)
        await q.upsert_repeatable_job(
            "keep", 1, repeat=RepeatPattern.every(30_000), job_id="fixed-key"
        )
        after = await score(r, queue_name, "fixed-key")
        assert before is not None and after is not None
        assert now + 30_000 <= after <= now + 30_100 and after < before


# ---------------------------------------------------------------------------
# Retry options of each fire
# ---------------------------------------------------------------------------


async def test_attempts_and_backoff_reach_every_fired_job(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    rec = Recorder(fail=True)
    async with Queue(queue_name, redis_url=redis_url) as q:
        await q.upsert_repeatable_job(
            "flaky",
            1,
            repeat=RepeatPattern.every(200),
            limit=2,
            attempts=3,
            backoff=BackoffSpec.fixed(10, jitter_ms=0),
        )
        via_add = await q.add(
            "flaky-add",
            2,
            repeat=RepeatPattern.every(200),
            attempts=2,
            backoff={"kind": "fixed", "delay_ms": 5, "jitter_ms": 0},
        )
        async with running(worker(queue_name, rec, redis_url, max_attempts=25)):
            await wait_until(
                lambda: len({j.id for j, _ in rec.jobs if j.name == "flaky-add"}) >= 2,
                timeout=10,
                what="two fires of the add() spec",
            )
            assert await q.remove_repeatable_by_key(via_add.id) is True
            await wait_until(
                lambda: quiet(r, queue_name), timeout=10, what="retries done"
            )
            await asyncio.sleep(0.2)
    runs: dict[str, list[int]] = {}
    names: dict[str, str] = {}
    for j, _ in rec.jobs:
        runs.setdefault(j.id, []).append(j.attempt)
        names[j.id] = j.name
    flaky = [i for i in runs if names[i] == "flaky"]
    added = [i for i in runs if names[i] == "flaky-add"]
    assert len(flaky) == 2 and len(added) >= 2
    for i in flaky:
        assert runs[i] == [1, 2, 3], runs
    for i in added:
        assert runs[i] == [1, 2], runs
    dlq = await r.xrange(key(queue_name, "dlq"))
    assert len(dlq) == len(runs)
    for _, f in dlq:
        env = msgpack.unpackb(f[b"d"], raw=False)
        assert f[b"reason"] == b"retries_exhausted"
        assert env[4] == (
            [3, ["fixed", 10, None, None, 0]]
            if f[b"n"] == b"flaky"
            else [2, ["fixed", 5, None, None, 0]]
        )


# ---------------------------------------------------------------------------
# Missed fires after an outage
# ---------------------------------------------------------------------------


async def test_missed_fire_policies_after_outage(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    interval = 6_000  # longer than the grace (5 s lock + 2 ticks of 100 ms)
    rec = Recorder()
    policies = {
        "skip": MissedFiresPolicy.skip(),
        "once": MissedFiresPolicy.fire_once(),
        "all3": MissedFiresPolicy.fire_all(3),
    }
    async with Queue(queue_name, redis_url=redis_url) as q:
        specs = {
            name: (
                await q.upsert_repeatable_job(
                    name, name, repeat=RepeatPattern.every(interval), missed_fires=p
                )
            ).id
            for name, p in policies.items()
        }
        # No scheduler ran for 20 windows: the spec's next fire is long past.
        # Its grid: ..., now - 5.7 s (missed, older than the grace), now + 0.3 s.
        now = await server_ms(r)
        anchor = now + 300 - 21 * interval
        for k in specs.values():
            await r.zadd(key(queue_name, "repeat"), {k: anchor})
        async with running(worker(queue_name, rec, redis_url)):
            await wait_until(
                lambda: all(now + 300 in rec.created(n) for n in specs),
                timeout=10,
                what="the first on-time fire",
            )
            await wait_until(lambda: quiet(r, queue_name), what="drained")
            await asyncio.sleep(0.3)
            scores = {n: await score(r, queue_name, k) for n, k in specs.items()}
            fired = {
                n: await r.hget(key(queue_name, f"repeat:spec:{k}"), "fired")
                for n, k in specs.items()
            }
    last_missed = now + 300 - interval
    catch_up = {n: [c for c in rec.created(n) if c < now] for n in specs}
    assert catch_up == {
        "skip": [],
        "once": [last_missed],
        "all3": [last_missed - 2 * interval, last_missed - interval, last_missed],
    }
    # Normal cadence resumes: one on-time fire each, next window one interval later.
    for n in specs:
        assert [c for c in rec.created(n) if c >= now] == [now + 300]
        assert scores[n] == now + 300 + interval
    assert fired == {"skip": b"1", "once": b"2", "all3": b"4"}


async def _tick_until(sched: Scheduler, r: aioredis.Redis, until_ms: int) -> None:
    """Ticks every 200 ms (a healthy cadence for a 500 ms tick) until the
    server clock passes `until_ms`."""
    while True:
        await sched.tick()
        if await server_ms(r) >= until_ms:
            return
        await asyncio.sleep(0.2)


async def test_missed_fires_after_a_real_outage_every_policy_and_kind(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    """A scheduler ticks healthily, stops for 4 s, and ticks again: the
    windows of the outage follow each spec's policy (skip none, fire_once
    one, fire_all(2) two), for `every` and a 6-field cron alike, and the
    on-time ones keep firing. The outage is read off the scheduler's own
    tick record, so the expectation is exact whatever the machine's load."""
    policies = {
        "skip": MissedFiresPolicy.skip(),
        "once": MissedFiresPolicy.fire_once(),
        "all2": MissedFiresPolicy.fire_all(2),
    }
    patterns = {
        "every": RepeatPattern.every(1000),
        "cron6": RepeatPattern.cron("* * * * * *"),
    }
    tick_ms = 500
    sched = Scheduler(redis_url, queue_name, tick_interval_ms=tick_ms, holder_id="s")
    try:
        async with Queue(queue_name, redis_url=redis_url) as q:
            specs = {
                f"{kind}-{pol}": (
                    await q.upsert_repeatable_job(
                        f"{kind}-{pol}",
                        None,
                        repeat=patterns[kind],
                        missed_fires=policies[pol],
                    )
                ).id
                for kind in patterns
                for pol in policies
            }
        # Every grid on whole seconds: `every` is anchored at its stored next.
        base = (await server_ms(r)) // 1000 * 1000 + 2000
        for name, k in specs.items():
            if name.startswith("every"):
                await r.zadd(key(queue_name, "repeat"), {k: base})
        await _tick_until(sched, r, base + 2500)
        prev = int(await r.get(key(queue_name, "scheduler:tick")))
        # The outage: no tick for about 4 s, ending mid-second.
        while await server_ms(r) < base + 6500:
            await asyncio.sleep(0.05)
        await sched.tick()
        restart = int(await r.get(key(queue_name, "scheduler:tick")))
        await _tick_until(sched, r, restart + 1200)
    finally:
        await sched.close()

    entries = await r.xrange(key(queue_name, "stream"))
    created: dict[str, list[int]] = {n: [] for n in specs}
    for _, f in entries:
        created[f[b"n"].decode()].append(msgpack.unpackb(f[b"d"])[2])
    assert restart - prev > 3 * tick_ms, "the outage was too short to test"
    second = lambda t: -(-t // 1000) * 1000  # noqa: E731 (first whole second >= t)
    missed = list(range(second(prev + 1), restart - tick_ms, 1000))
    on_time = list(range(second(restart - tick_ms), restart + 1, 1000))
    assert len(missed) >= 3
    catch_up = {"skip": [], "once": missed[-1:], "all2": missed[-2:]}
    for name, got in created.items():
        got.sort()
        pol = name.split("-")[1]
        before = [c for c in got if c <= prev]
        after = [c for c in got if c > prev]
        first = before[0]
        assert before == list(range(first, prev + 1, 1000)), (
            f"{name}: a healthy window was lost"
        )
        expect = catch_up[pol] + on_time
        assert after[: len(expect)] == expect, f"{name}: {after} vs {expect}"
        # After the restart the cadence is healthy again: every window fires.
        rest = after[len(catch_up[pol]) :]
        assert rest == list(range(rest[0], rest[0] + 1000 * len(rest), 1000)), name
        assert len(rest) >= 1


# ---------------------------------------------------------------------------
# Several schedulers
# ---------------------------------------------------------------------------


async def test_three_worker_processes_fire_each_window_once(
    redis_url: str, queue_name: str, r: aioredis.Redis, tmp_path: Path
) -> None:
    outs = [tmp_path / f"w{i}.jsonl" for i in range(3)]
    stops = [tmp_path / f"stop{i}" for i in range(3)]
    async with Queue(queue_name, redis_url=redis_url) as q:
        spec = await q.upsert_repeatable_job(
            "tick", {"n": 1}, repeat=RepeatPattern.every(200)
        )
        first = await score(r, queue_name, spec.id)
        t0 = time.monotonic()
        procs = [
            spawn(
                "worker",
                redis_url,
                queue_name,
                outs[i],
                stops[i],
                {"worker": {"consumer_id": f"w{i}", "read_block_ms": 200}},
            )
            for i in range(3)
        ]
        try:
            # Midway, stop whichever worker leads the scheduler: another takes over.
            await asyncio.sleep(2.5)
            leader = await r.get(key(queue_name, "scheduler:lock"))
            assert leader in (b"w0", b"w1", b"w2")
            stops[int(leader[1:])].write_text("stop")
            await asyncio.sleep(max(0.0, 5.0 - (time.monotonic() - t0)))
            assert await q.remove_repeatable_by_key(spec.id) is True
            await wait_until(lambda: quiet(r, queue_name), timeout=10, what="drained")
            new_leader = await r.get(key(queue_name, "scheduler:lock"))
        finally:
            for s in stops:
                s.write_text("stop")
            for p in procs:
                try:
                    await asyncio.to_thread(p.wait, 20)
                except Exception:
                    p.kill()
                    p.wait()
    assert new_leader not in (None, leader)
    recs = [x for o in outs for x in read_lines(o)]
    created = sorted(x["created_at_ms"] for x in recs)
    assert len({x["id"] for x in recs}) == len(recs)
    assert len(set(created)) == len(created), "a window fired twice"
    assert created == [first + 200 * i for i in range(len(created))], (
        "a window is missing"
    )
    assert len(created) >= 20
    assert all(
        x["name"] == "tick" and x["attempt"] == 1 and x["data"] == {"n": 1}
        for x in recs
    )


async def test_native_scheduler_alone(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    s1 = Scheduler(redis_url, queue_name, tick_interval_ms=100, holder_id="s1")
    s2 = Scheduler(redis_url, queue_name, tick_interval_ms=100, holder_id="s2")
    try:
        async with Queue(queue_name, redis_url=redis_url) as q:
            spec = await q.upsert_repeatable_job(
                "solo", [1], repeat=RepeatPattern.every(100)
            )
            first = await score(r, queue_name, spec.id)
        leader, fired = await s1.tick()
        assert leader is True and fired <= 1
        assert await s2.tick() == (False, 0)
        await asyncio.sleep(0.35)
        leader, fired2 = await s1.tick()
        assert leader is True and fired2 >= 2
        total = fired + fired2
        assert await s2.tick() == (False, 0)
        assert await r.get(key(queue_name, "scheduler:lock")) == b"s1"
        assert 0 < await r.ttl(key(queue_name, "scheduler:lock")) <= 5
        assert await r.xlen(key(queue_name, "stream")) == total
        assert (
            await r.hget(key(queue_name, f"repeat:spec:{spec.id}"), "fired")
            == str(total).encode()
        )

        # run() fires on its own; stop() ends it and releases the lock.
        task = asyncio.ensure_future(s1.run())
        await wait_until(
            lambda: _xlen_at_least(r, queue_name, total + 3),
            timeout=5,
            what="run() fires",
        )
        s1.stop()
        await asyncio.wait_for(task, 5)
        assert await r.get(key(queue_name, "scheduler:lock")) is None
        leader, _ = await s2.tick()
        assert leader is True
    finally:
        await s1.close()
        await s2.close()
    entries = await r.xrange(key(queue_name, "stream"))
    envs = [msgpack.unpackb(f[b"d"], raw=False) for _, f in entries]
    assert all(f[b"n"] == b"solo" for _, f in entries)
    assert [e[2] for e in envs] == [first + 100 * i for i in range(len(envs))]
    assert all(len(e) == 4 and e[3] == 0 and msgpack.unpackb(e[1]) == [1] for e in envs)
    assert len({e[0] for e in envs}) == len(envs)


async def _xlen_at_least(r: aioredis.Redis, q: str, n: int) -> bool:
    return await r.xlen(key(q, "stream")) >= n


# ---------------------------------------------------------------------------
# Wire bytes
# ---------------------------------------------------------------------------


async def test_stored_spec_wire_bytes(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    def h(k: str) -> bytes:
        return key(queue_name, f"repeat:spec:{k}")

    async with Queue(queue_name, redis_url=redis_url) as q:
        plain = await q.upsert_repeatable_job(
            "wire", {"c": 1}, repeat=RepeatPattern.every(60_000)
        )
        once = await q.upsert_repeatable_job(
            "cronned",
            "x",
            repeat=RepeatPattern.cron("0 5 * * *"),
            limit=5,
            start_after_ms=1_000,
            end_before_ms=4_000_000_000_000,
            missed_fires=MissedFiresPolicy.fire_once(),
        )
        fire_all = await q.add(
            "fa",
            None,
            repeat=RepeatPattern.cron("0 5 * * *", tz="Asia/Tokyo"),
            missed_fires=MissedFiresPolicy.fire_all(3),
        )
        skip = await q.add(
            "sk",
            b"\x00",
            repeat=RepeatPattern.every(1000),
            missed_fires=MissedFiresPolicy.skip(),
            job_id="explicit",
        )
        opts = await q.upsert_repeatable_job(
            "opts",
            1,
            repeat=RepeatPattern.every(100),
            attempts=3,
            backoff=BackoffSpec.exponential(
                250, multiplier=3, max_ms=10_000, jitter_ms=50
            ),
        )

        raw = await r.hgetall(h(plain.id))
        assert set(raw) == {b"spec", b"fired"} and raw[b"fired"] == b"0"
        assert (
            b"\xc4\x06\xc4\x04\x81\xa1\x63\x01" in raw[b"spec"]
        )  # payload double-wrapped
        spec = msgpack.unpackb(raw[b"spec"], raw=False)
        assert spec == [
            "wire::every:60000",
            "wire",
            {"Every": [60_000]},
            b"\xc4\x04\x81\xa1c\x01",
            None,
            None,
            None,
            0,
        ]
        assert msgpack.unpackb(msgpack.unpackb(spec[3]), raw=False) == {"c": 1}

        spec = msgpack.unpackb(await r.hget(h(once.id), "spec"), raw=False)
        assert spec[:3] == [
            "cronned::cron:0 5 * * *:UTC",
            "cronned",
            {"Cron": ["0 5 * * *", None]},
        ]
        assert spec[4:] == [5, 1_000, 4_000_000_000_000, 0, "FireOnce"]
        spec = msgpack.unpackb(await r.hget(h(fire_all.id), "spec"), raw=False)
        assert (
            len(spec) == 9
            and spec[2] == {"Cron": ["0 5 * * *", "Asia/Tokyo"]}
            and spec[8] == {"FireAll": [3]}
        )
        assert msgpack.unpackb(msgpack.unpackb(spec[3])) is None
        spec = msgpack.unpackb(await r.hget(h(skip.id), "spec"), raw=False)
        assert len(spec) == 8 and spec[0] == "explicit" and spec[1] == "sk"

        # Our `opts` field: [max_attempts, backoff], copied into every fired envelope.
        want_opts = [3, ["exponential", 250, 10_000, 3.0, 50]]
        assert msgpack.unpackb(await r.hget(h(opts.id), "opts"), raw=False) == want_opts
        sched = Scheduler(redis_url, queue_name, tick_interval_ms=100, holder_id="wire")
        try:
            # A first tick starts the scheduler's record; the next one, 250 ms
            # later, is a healthy cadence and fires every window due since.
            _, fired0 = await sched.tick()
            await asyncio.sleep(0.25)
            leader, fired = await sched.tick()
            fired += fired0
        finally:
            await sched.close()
        assert leader and fired >= 2
        assert await r.hget(h(opts.id), "fired") == str(fired).encode()
        spec = msgpack.unpackb(await r.hget(h(opts.id), "spec"), raw=False)
        assert spec[7] == 0  # the stored element stays 0; the hash field counts
        for _, f in await r.xrange(key(queue_name, "stream")):
            env = msgpack.unpackb(f[b"d"], raw=False)
            assert (
                f[b"n"] == b"opts"
                and len(env) == 5
                and env[3] == 0
                and env[4] == want_opts
            )
        # Re-upserting without options drops the field (the 1.x hash layout).
        await q.upsert_repeatable_job("opts", 1, repeat=RepeatPattern.every(100))
        assert set(await r.hkeys(h(opts.id))) == {b"spec", b"fired"}
