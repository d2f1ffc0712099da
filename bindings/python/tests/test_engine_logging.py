"""The engine's warnings reach Python's `logging`, under `chasquimq`: a
settle flush that Redis refuses is logged (naming the key) while the job
waits, pending, for the retry that then succeeds. Without any logging
set-up, the warning still reaches stderr."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import textwrap
import threading

import redis.asyncio as aioredis
from helpers import fast_worker, key, pending, running, wait_until

from chasquimq import Job, Queue, UnrecoverableError


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.threads: set[str] = set()
        self._mu = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._mu:
            self.records.append(record)
            self.threads.add(threading.current_thread().name)

    def matching(self, text: str) -> list[logging.LogRecord]:
        with self._mu:
            return [r for r in self.records if text in r.getMessage()]


async def test_a_refused_settle_flush_is_logged_under_chasquimq(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    collect = _Collect()
    root = logging.getLogger("chasquimq")
    root.addHandler(collect)
    old_level = root.level
    root.setLevel(logging.INFO)
    runs: list[int] = []

    async def handler(job: Job) -> None:
        runs.append(job.attempt)
        raise UnrecoverableError("no")

    dlq = key(queue_name, "dlq")
    await r.rpush(dlq, b"not a stream")
    try:
        async with Queue(queue_name, redis_url=redis_url) as q:
            await q.add("pay", 1)
        async with running(fast_worker(queue_name, handler, redis_url)):
            await wait_until(
                lambda: collect.matching("WRONGTYPE"), what="the settle warning"
            )
            rec = collect.matching("WRONGTYPE")[0]
            assert rec.name == "chasquimq.consumer"
            assert rec.levelno == logging.WARNING
            assert "settle flush failed; retrying" in rec.getMessage()
            assert dlq.decode() in rec.getMessage()
            # Delivered by the bridge's own thread, not on the event loop.
            assert threading.main_thread().name not in collect.threads
            assert await pending(r, queue_name) == 1
            await r.delete(dlq)
            await wait_until(lambda: r.xlen(dlq), timeout=10, what="the DLQ entry")
        assert len(runs) == 1  # run once: the refused flush kept its outcome
    finally:
        root.removeHandler(collect)
        root.setLevel(old_level)


async def test_an_unconfigured_program_still_prints_the_warning(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    """No logging set-up at all: Python's last-resort handler prints
    warnings to stderr, so a refused flush is never silent."""
    await r.rpush(key(queue_name, "dlq"), b"not a stream")
    script = textwrap.dedent(
        f"""
        import asyncio
        from chasquimq import Queue, Worker, UnrecoverableError

        async def handler(job):
            raise UnrecoverableError("no")

        async def main():
            async with Queue({queue_name!r}, redis_url={redis_url!r}) as q:
                await q.add("pay", 1)
            w = Worker({queue_name!r}, handler, redis_url={redis_url!r},
                       read_block_ms=200)
            task = asyncio.ensure_future(w.run())
            await asyncio.sleep(2.0)
            await w.close()
            await task

        asyncio.run(main())
        """
    )
    out = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert out.returncode == 0, out.stderr
    assert "settle flush failed; retrying" in out.stderr
    assert "WRONGTYPE" in out.stderr
