"""Helpers of the deployment tests (ACL user, TLS, Redis Cluster): the
password they connect with, the documented ACL line, a check that errors
never show the password, and `run_lifecycle`.

One pass over every feature that talks to Redis, for the deployment tests
(ACL user, TLS, Redis Cluster): immediate, bulk, delayed, idempotent and
cancelled adds; retries into the DLQ, peek and replay; repeatable specs;
stored results and wait_for_result; QueueEvents; crash recovery of an
entry left pending by a dead consumer; and a clean worker shutdown.

`run_lifecycle` drives the public API through `url` (the deployment under
test) and uses `admin` (a redis-py client with full rights on the same
deployment) only to stage the dead consumer and to check Redis contents.
"""

from __future__ import annotations

import asyncio
import shlex
import traceback
from pathlib import Path
from typing import Any
from urllib.parse import quote

from helpers import key, wait_until

from chasquimq import BackoffSpec, Job, Queue, QueueEvents, RepeatPattern, Worker

ROOT = Path(__file__).resolve().parents[3]
SECRET = "Zq8-s3cr3t:p@ss/w#rd%"  # reserved characters on purpose
ENC = quote(SECRET, safe="")


def acl_setuser_line() -> list[str]:
    """The ACL SETUSER line of docs/security.md, with the test's password."""
    doc = (ROOT / "docs" / "security.md").read_text()
    lines = [ln for ln in doc.splitlines() if ln.startswith("ACL SETUSER chasqui ")]
    assert len(lines) == 1, "docs/security.md must hold exactly one ACL SETUSER line"
    words = shlex.split(lines[0])
    assert ">CHANGE-ME" in words
    return [f">{SECRET}" if w == ">CHANGE-ME" else w for w in words]


def no_secret(exc: BaseException) -> None:
    """Neither the message nor the rendered traceback (causes included)
    shows the password, raw or percent-encoded."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    for s in (SECRET, ENC, "s3cr3t"):
        assert s not in str(exc), str(exc)
        assert s not in repr(exc)
        assert s not in text


# Every lifecycle event the pass must produce.
EXPECTED_EVENTS = {
    "delayed",
    "waiting",
    "active",
    "completed",
    "failed",
    "retry-scheduled",
    "dlq",
    "drained",
}


async def run_lifecycle(
    url: str, queue: str, admin: Any, timeout: float = 20.0
) -> dict[str, Any]:
    """Runs the pass on `queue`; returns what it observed (for extra checks)."""
    return await asyncio.wait_for(_run(url, queue, admin), timeout)


async def _run(url: str, queue: str, admin: Any) -> dict[str, Any]:
    stream = key(queue, "stream")
    ran: dict[str, list[int]] = {}
    healthy = asyncio.Event()

    async def handler(job: Job) -> Any:
        ran.setdefault(job.name, []).append(job.attempt)
        if job.name == "flaky" and not healthy.is_set():
            raise RuntimeError("downstream down")
        return {"done": job.name}

    seen: list[str] = []
    async with Queue(queue, redis_url=url) as q:
        # A job read by a consumer that then died: pending, never acked.
        crashed = await q.add("crashed", {"c": 1})
        await admin.xgroup_create(stream, "default", id="0", mkstream=True)
        got = await admin.xreadgroup("default", "dead", {stream: ">"}, count=1)
        assert got and got[0][1][0][1][b"n"] == b"crashed", got

        plain = await q.add("plain", {"i": 1})
        bulk = await q.add_bulk(
            [
                {"name": "bulk", "data": 1},
                {"name": "bulk", "data": 2, "delay_ms": 150},
                {"name": "bulk", "data": 3, "job_id": f"{queue}-bulk-id"},
            ]
        )
        first = await q.add_unique("unique", {"u": 1}, job_id=f"{queue}-uniq")
        again = await q.add_unique("unique", {"u": 2}, job_id=f"{queue}-uniq")
        assert first.id == again.id
        await q.add("later", 1, delay_ms=60_000, job_id=f"{queue}-cancel")
        assert await q.cancel_delayed(f"{queue}-cancel") is True
        assert await q.cancel_delayed(f"{queue}-cancel") is False
        await q.add(
            "flaky", {"f": 1}, attempts=2, backoff=BackoffSpec.fixed(10, jitter_ms=0)
        )
        await q.upsert_repeatable_job(
            "tick", {"t": 1}, repeat=RepeatPattern.every(100), limit=2
        )
        gone = await q.upsert_repeatable_job(
            "gone", 0, repeat=RepeatPattern.every(3_600_000)
        )
        assert {m.job_name for m in await q.get_repeatable_jobs()} == {"tick", "gone"}
        assert await q.remove_repeatable_by_key(gone.id) is True

        events = QueueEvents(queue, redis_url=url, last_event_id="0", block_ms=100)

        async def listen() -> None:
            async for ev in events:
                seen.append(ev.name)

        listener = asyncio.ensure_future(listen())
        worker = Worker(
            queue,
            handler,
            redis_url=url,
            read_block_ms=200,
            scheduler_tick_ms=100,
            claim_min_idle_ms=300,
            store_results=True,
        )
        task = asyncio.ensure_future(worker.run())
        try:
            assert await plain.wait_for_result(timeout=10) == {"done": "plain"}
            await wait_until(lambda: len(ran.get("bulk", [])) == 3, what="bulk jobs")
            await wait_until(
                lambda: len(ran.get("tick", [])) == 2, what="two repeatable fires"
            )
            await wait_until(lambda: "crashed" in ran, what="crash recovery")
            await wait_until(lambda: ran.get("flaky") == [1, 2], what="retries")
            dlq = await wait_until(q.peek_dlq, what="the DLQ entry")
            assert [(e["name"], e["reason"]) for e in dlq] == [
                ("flaky", "retries_exhausted")
            ]
            healthy.set()
            assert await q.replay_dlq() == 1
            await wait_until(
                lambda: ran.get("flaky") == [1, 2, 1], what="the replayed job"
            )
            results = await q.get_job_result_bulk([b.id for b in bulk] + [crashed.id])
            assert results == [{"done": "bulk"}] * 3 + [{"done": "crashed"}]
            assert await q.get_job_result(first.id) == {"done": "unique"}
            await wait_until(
                lambda: EXPECTED_EVENTS <= set(seen),
                what=f"events (seen {sorted(set(seen))})",
            )
        finally:
            await worker.close()
            await asyncio.wait_for(task, 20)
            await events.close()
            await asyncio.wait_for(listener, 10)
        assert ran.get("later") is None, "a cancelled job ran"
        assert ran["unique"] == [1]
        # Everything was acknowledged and deleted; the worker left the group.
        assert await admin.xlen(stream) == 0
        consumers = {c["name"] for c in await admin.xinfo_consumers(stream, "default")}
        assert consumers <= {b"dead", "dead"}, consumers
    return {"ran": ran, "events": seen}
