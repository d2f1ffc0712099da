"""Redis Cluster: a local 3-master cluster (started by the shared spawner,
tools/redisproc.py, with `redis-cli --cluster create`), queues whose hash
tags land on different masters, and every feature through
`redis-cluster://` URLs: the core lifecycle, delayed jobs, repeatables,
events, results, crash recovery, the standalone Scheduler, worker shutdown
(CLIENT UNBLOCK on the right node), seed-node lists and a restricted ACL
user. Skips only without `redis-cli`.

A script that touched a key it did not declare, or keys of two slots, fails
here with CROSSSLOT / "non local key" errors; a command routed by a
non-key argument fails with MOVED or reaches the wrong node.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from helpers import key, wait_until
from lifecycle import ENC, ROOT, SECRET, acl_setuser_line, no_secret, run_lifecycle
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redisproc import RedisClusterProcess, RedisProcess, free_port

from chasquimq import Job, Queue, QueueEvents, RepeatPattern, Scheduler, Worker

pytestmark = pytest.mark.skipif(
    shutil.which("redis-cli") is None,
    reason="redis-cli is not on PATH (it creates the test cluster: apt-get install redis-tools)",
)

MASTERS = 3


@pytest.fixture(scope="module")
def cluster() -> Iterator[list[RedisProcess]]:
    """MASTERS cluster-mode servers joined into one cluster by the shared
    spawner (tools/redisproc.py), which chooses every port and its bus port."""
    with RedisClusterProcess(MASTERS) as c:
        yield c.nodes


def cluster_url(nodes: list[RedisProcess], auth: str = "") -> str:
    """The first node as host, the others as `node=` seeds."""
    first, *rest = nodes
    seeds = "&".join(f"node=127.0.0.1:{n.port}" for n in rest)
    return f"redis-cluster://{auth}127.0.0.1:{first.port}?{seeds}"


@pytest.fixture
async def admin(cluster: list[RedisProcess]) -> AsyncIterator[RedisCluster]:
    client = RedisCluster(host="127.0.0.1", port=cluster[0].port)
    try:
        yield client
    finally:
        await client.aclose()


async def masters_by_slot(admin: RedisCluster) -> list[tuple[int, int, int]]:
    """(first slot, last slot, port) of every master."""
    slots = await admin.cluster_slots()
    return [(lo, hi, int(v["primary"][1])) for (lo, hi), v in slots.items()]


async def spread_queues(admin: RedisCluster, prefix: str) -> dict[int, str]:
    """One queue name per master: the port of the master that holds the
    queue's slot -> the name."""
    ranges = await masters_by_slot(admin)
    out: dict[int, str] = {}
    i = 0
    while len(out) < MASTERS:
        name = f"{prefix}:{i}"
        slot = key_slot(key(name, "stream"))
        port = next(p for lo, hi, p in ranges if lo <= slot <= hi)
        out.setdefault(port, name)
        i += 1
    return out


async def test_queues_on_every_master_run_the_whole_lifecycle(
    cluster: list[RedisProcess], admin: RedisCluster, queue_name: str
) -> None:
    """One queue per master, at the same time, through one seed-list URL."""
    queues = await spread_queues(admin, queue_name)
    assert len(set(queues)) == MASTERS
    url = cluster_url(cluster)
    await asyncio.gather(
        *(run_lifecycle(url, q, admin, timeout=30) for q in queues.values())
    )
    # Each queue's keys sit on its own master only.
    for port, q in queues.items():
        for n in cluster:
            async with aioredis.Redis(host="127.0.0.1", port=n.port) as node:
                here = await node.keys(f"{{chasqui:{q}}}:*")
            assert bool(here) == (n.port == port), (q, n.port, here)


async def test_delayed_repeatable_and_events_on_another_master(
    cluster: list[RedisProcess], admin: RedisCluster, queue_name: str
) -> None:
    """A seed URL naming only a node that does not hold the queue's slot; a
    standalone Scheduler drives the repeatable; QueueEvents from "$"."""
    queues = await spread_queues(admin, queue_name)
    q = next(n for p, n in queues.items() if p != cluster[0].port)
    url = f"redis-cluster://127.0.0.1:{cluster[0].port}"
    ran: list[tuple[str, float]] = []

    async def handler(job: Job) -> Any:
        ran.append((job.name, time.monotonic()))
        return job.name

    events: list[str] = []
    async with QueueEvents(q, redis_url=url, block_ms=100) as evs:

        async def listen() -> None:
            async for ev in evs:
                events.append(ev.name)

        listener = asyncio.ensure_future(listen())
        await asyncio.sleep(0.2)  # the reader pinned "$"
        sched = Scheduler(url, q, tick_interval_ms=50)
        async with Queue(q, redis_url=url) as queue:
            t0 = time.monotonic()
            await queue.add("delayed", 1, delay_ms=300)
            await queue.upsert_repeatable_job(
                "every", 1, repeat=RepeatPattern.every(100), limit=3
            )
            w = Worker(
                q,
                handler,
                redis_url=url,
                read_block_ms=200,
                run_scheduler=False,
                store_results=True,
            )
            task = asyncio.ensure_future(w.run())

            def fires() -> int:
                return sum(n == "every" for n, _ in ran)

            try:
                await asyncio.gather(
                    _tick(sched, lambda: fires() >= 3),
                    wait_until(lambda: fires() == 3, what="three fires"),
                )
                await wait_until(
                    lambda: any(n == "delayed" for n, _ in ran), what="the delayed job"
                )
                await wait_until(
                    lambda: {"delayed", "waiting", "completed"} <= set(events),
                    what="events",
                )
            finally:
                await w.close()
                await asyncio.wait_for(task, 20)
                await sched.close()
            delayed_at = next(t for n, t in ran if n == "delayed")
            assert delayed_at - t0 >= 0.29
            # The limit was reached: the spec is gone.
            assert await queue.get_repeatable_jobs() == []
        listener.cancel()


async def _tick(sched: Any, done: Any) -> None:
    deadline = time.monotonic() + 15
    while not done() and time.monotonic() < deadline:
        await sched.tick()
        await asyncio.sleep(0.05)


async def test_worker_close_unblocks_its_read_on_the_right_node(
    cluster: list[RedisProcess], admin: RedisCluster, queue_name: str
) -> None:
    """A worker blocked in a 30 s XREADGROUP on a master other than the seed
    closes at once: CLIENT UNBLOCK reaches the node it is blocked on."""
    queues = await spread_queues(admin, queue_name)
    for port, q in queues.items():
        w = Worker(
            q, lambda job: None, redis_url=cluster_url(cluster), read_block_ms=30_000
        )
        task = asyncio.ensure_future(w.run())
        await wait_until(
            lambda p=port: _blocked_on(p), what=f"a blocked XREADGROUP on {port}"
        )
        t0 = time.monotonic()
        await w.close()
        await asyncio.wait_for(task, 10)
        assert time.monotonic() - t0 < 3, (
            f"close took {time.monotonic() - t0:.1f} s on {port}"
        )
        # It left the group: nothing was pending.
        assert await admin.xinfo_consumers(key(q, "stream"), "default") == []


def _blocked_on(port: int) -> bool:
    out = subprocess.run(
        ["redis-cli", "-p", str(port), "client", "list"],
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout
    return "cmd=xreadgroup" in out


async def test_seed_list_with_a_dead_node(
    cluster: list[RedisProcess], admin: RedisCluster, queue_name: str
) -> None:
    dead = free_port()
    url = f"redis-cluster://127.0.0.1:{dead}?node=127.0.0.1:{cluster[1].port}"
    async with Queue(queue_name, redis_url=url) as q:
        await asyncio.wait_for(q.add("x", 1), 15)
    assert await admin.xlen(key(queue_name, "stream")) == 1


async def test_restricted_acl_user_on_every_node(
    cluster: list[RedisProcess], admin: RedisCluster, queue_name: str
) -> None:
    """docs/security.md's line plus its cluster addition, set on every node."""
    doc = (ROOT / "docs" / "security.md").read_text()
    addition = re.search(r"Redis Cluster: add `([^`]+)`", doc)
    assert addition, "docs/security.md names the cluster addition"
    line = [*acl_setuser_line(), *addition.group(1).split()]
    for n in cluster:
        async with aioredis.Redis(host="127.0.0.1", port=n.port) as node:
            await node.execute_command(*line)
            await node.execute_command("ACL", "LOG", "RESET")
    queues = await spread_queues(admin, queue_name)
    url = cluster_url(cluster, auth=f"chasqui:{ENC}@")
    await asyncio.gather(
        *(run_lifecycle(url, q, admin, timeout=30) for q in queues.values())
    )
    for n in cluster:
        async with aioredis.Redis(host="127.0.0.1", port=n.port) as node:
            assert await node.execute_command("ACL", "LOG") == [], n.port
    # Wrong password: an auth error, without the password in it.
    from chasquimq import AuthenticationError

    with pytest.raises(AuthenticationError) as info:
        async with Queue(
            queue_name, redis_url=cluster_url(cluster, auth=f"chasqui:x{ENC}@")
        ) as q:
            await asyncio.wait_for(q.add("x", 1), 15)
    no_secret(info.value)
    assert SECRET not in str(info.value)
