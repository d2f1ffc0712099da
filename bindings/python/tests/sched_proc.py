"""Subprocess entry points (and a few shared helpers) of the scheduling tests:
test_scheduling.py, test_repeatable.py, test_idempotency.py.

    python sched_proc.py worker <redis_url> <queue> <out> <stop_file> <json>
        Runs a Worker until <stop_file> exists. Each handler run appends one
        JSON line {id, name, attempt, created_at_ms, data, pid} to <out>;
        json = {"behaviour": "ok" | "fail" | "hang", "worker": {Worker kwargs}}.

    python sched_proc.py adder <redis_url> <queue> <out> <barrier_file> <json>
        Waits for <barrier_file>, then makes json["n"] concurrent
        Queue.add(json["name"], ..., job_id=json["job_id"], delay_ms=json.get("delay_ms"))
        calls and writes the returned ids (one JSON list) to <out>.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def spawn(
    mode: str, redis_url: str, queue: str, out: Path, gate: Path, cfg: dict[str, Any]
) -> subprocess.Popen[bytes]:
    """Starts this script in a subprocess (same interpreter)."""
    return subprocess.Popen(
        [
            sys.executable,
            str(HERE / "sched_proc.py"),
            mode,
            redis_url,
            queue,
            str(out),
            str(gate),
            json.dumps(cfg),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def key(queue: str, suffix: str) -> bytes:
    """A key of `queue`, as the wire format names it."""
    return f"{{chasqui:{queue}}}:{suffix}".encode()


async def wait_until(
    pred: Any, timeout: float = 10.0, interval: float = 0.01, what: str = "condition"
) -> Any:
    """Polls `pred` (sync or async) until truthy; fails after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if asyncio.iscoroutine(v):
            v = await v
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def running(worker: Any) -> AsyncIterator[Any]:
    """Runs `worker` for the block, then closes it and awaits run()."""
    task = asyncio.ensure_future(worker.run())
    try:
        yield task
    finally:
        await worker.close()
        await asyncio.wait_for(task, 20)


def read_lines(path: Path) -> list[dict[str, Any]]:
    """The complete JSON lines of a worker's output file."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:  # a line being written
            pass
    return out


def _append(path: str, rec: dict[str, Any]) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(rec) + "\n")
        f.flush()


async def _worker(
    redis_url: str, queue: str, out: str, stop_file: str, cfg: dict[str, Any]
) -> None:
    from chasquimq import Job, Worker

    behaviour = cfg.get("behaviour", "ok")

    async def handler(job: Job) -> None:
        _append(
            out,
            {
                "id": job.id,
                "name": job.name,
                "attempt": job.attempt,
                "created_at_ms": job.created_at_ms,
                "data": job.data,
                "pid": os.getpid(),
                "t": time.time(),
            },
        )
        if behaviour == "hang":
            await asyncio.sleep(3600)
        if behaviour == "fail":
            raise RuntimeError("boom")

    worker = Worker(queue, handler, redis_url=redis_url, **cfg.get("worker", {}))
    task = asyncio.ensure_future(worker.run())
    while not os.path.exists(stop_file) and not task.done():
        await asyncio.sleep(0.02)
    await worker.close()
    await asyncio.wait_for(task, 20)


async def _adder(
    redis_url: str, queue: str, out: str, barrier: str, cfg: dict[str, Any]
) -> None:
    from chasquimq import Queue

    async with Queue(queue, redis_url=redis_url) as q:
        # Connect before the barrier, so the adds of both processes overlap.
        await q.get_job_result("warm-up")
        Path(out + ".ready").write_text("1")
        while not os.path.exists(barrier):
            await asyncio.sleep(0.001)
        jobs = await asyncio.gather(
            *(
                q.add(
                    cfg["name"],
                    {"i": i, "pid": os.getpid()},
                    job_id=cfg["job_id"],
                    delay_ms=cfg.get("delay_ms"),
                )
                for i in range(cfg["n"])
            )
        )
    Path(out).write_text(json.dumps([j.id for j in jobs]))


def main() -> None:
    mode, redis_url, queue, out, gate, cfg = sys.argv[1:7]
    fn = {"worker": _worker, "adder": _adder}[mode]
    asyncio.run(fn(redis_url, queue, out, gate, json.loads(cfg)))


if __name__ == "__main__":
    main()
