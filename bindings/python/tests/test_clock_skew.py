"""Due decisions use the Redis server clock: a producer or a worker whose own
clock is an hour off (libfaketime) neither delays nor advances delayed jobs
and repeatable fires."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chasquimq import Job, Worker

LIB = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")
PROC = Path(__file__).with_name("skew_proc.py")
pytestmark = pytest.mark.skipif(
    not LIB.exists(), reason="libfaketime is not installed (apt-get install faketime)"
)


def skewed_env(offset: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        LD_PRELOAD=str(LIB),
        FAKETIME=offset,
        # Only the wall clock moves; timers (monotonic) keep real time.
        FAKETIME_DONT_FAKE_MONOTONIC="1",
    )
    return env


@pytest.mark.parametrize("offset", ["-1h", "+1h"])
async def test_skewed_producer_does_not_move_due_times(
    redis_url: str, queue_name: str, offset: str
) -> None:
    out = subprocess.run(
        [sys.executable, str(PROC), "produce", redis_url, queue_name],
        env=skewed_env(offset),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    report = json.loads(out.stdout.strip().splitlines()[-1])
    skewed, added = report["skewed_now_ms"], report["added_mono"]
    assert abs(skewed - time.time() * 1000) > 3_000_000, (
        "libfaketime did not skew the producer's clock"
    )

    runs: dict[str, float] = {}
    done = asyncio.Event()

    async def handler(job: Job) -> None:
        runs.setdefault(job.name, time.monotonic())
        if len(runs) == 3:
            done.set()

    async with Worker(
        queue_name, handler, redis_url=redis_url, scheduler_tick_ms=100
    ) as w:
        task = asyncio.create_task(w.run())
        await asyncio.wait_for(done.wait(), 10)
        await w.close()
        await task
    # delay_ms=400 counted on the server clock: not early (a client clock an
    # hour behind would make it due at once), not an hour late.
    assert 0.4 <= runs["later"] - added < 3.0
    # every(500): the first fire one interval after the upsert, on server time.
    assert 0.5 <= runs["tick"] - added < 3.0


@pytest.mark.parametrize("offset", ["-1h", "+1h"])
async def test_skewed_worker_promotes_and_fires_on_server_time(
    redis_url: str, queue_name: str, offset: str
) -> None:
    from chasquimq import Queue, RepeatPattern

    worker = subprocess.Popen(
        [sys.executable, str(PROC), "work", redis_url, queue_name, "2"],
        env=skewed_env(offset),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        await asyncio.sleep(1.0)  # the worker is up and leads promoter and scheduler
        t0 = time.monotonic()
        async with Queue(queue_name, redis_url=redis_url) as q:
            await q.add("later", {"k": 1}, delay_ms=400)
            await q.upsert_repeatable_job(
                "tick", {"k": 2}, repeat=RepeatPattern.every(500), limit=1
            )
        out, _ = await asyncio.to_thread(worker.communicate, timeout=20)
        elapsed = time.monotonic() - t0
    finally:
        if worker.poll() is None:
            worker.kill()
    names = sorted(json.loads(line)["job"] for line in out.strip().splitlines())
    assert worker.returncode == 0
    assert names == ["later", "tick"]
    assert 0.4 <= elapsed < 5.0
