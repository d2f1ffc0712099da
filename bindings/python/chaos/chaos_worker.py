"""A worker process for the chaos suite: `python chaos_worker.py '<json config>'`.

Every handler run appends lines to this process's own log file (one
`os.write` per line on an O_APPEND descriptor, then `fsync`), so the test
can count, per job id, every start and every outcome even when the process
is SIGKILLed a microsecond later (a finished `write(2)` belongs to the
kernel, not to the process):

    S <job_id> <attempt> <unix time>        handler started
    C <job_id> <attempt> <unix time>        handler returned (completion)
    F <job_id> <attempt> <unix time> R|D    handler raised; R = a retry
                                            follows, D = the job goes to the DLQ
    X <job_id> <attempt> <unix time>        handler cancelled (shutdown deadline)
    V <hex id> <attempt> <created> <hex name> <hex msgpack(data)>
                                            record mode: what the handler saw

What a handler does is decided by the job's data (a dict), so the test
knows every job's fate in advance:

    ms      sleep this long first
    fail    raise on the first `fail` attempts
    unrec   raise UnrecoverableError
    poison  SIGKILL this very process

Handlers do what users' handlers do: every run talks to Redis through
`redis.asyncio` in its first step (before anything else is awaited) and
again after its sleep, which runs under `asyncio.wait_for`. The client
retries connection errors with backoff, as a production client would, so
a Redis restart delays these calls instead of failing the run.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from typing import Any

import msgpack
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from chasquimq import Job, UnrecoverableError, Worker


def main() -> None:
    cfg: dict[str, Any] = json.loads(sys.argv[1])
    fd = os.open(cfg["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    do_fsync = cfg.get("fsync", True)
    max_attempts = int(cfg.get("max_attempts", 25))
    record = cfg.get("mode") == "record"
    runs_key = f"chaos:{cfg['queue']}:handler-runs"
    client: aioredis.Redis | None = None

    def log(line: str) -> None:
        os.write(fd, (line + "\n").encode())
        if do_fsync:
            os.fsync(fd)

    async def handler(job: Job) -> None:
        if record:
            log(
                f"V {job.id.encode().hex()} {job.attempt} {job.created_at_ms} "
                f"{job.name.encode().hex()} "
                f"{msgpack.packb(job.data, use_bin_type=True).hex()}"
            )
            return
        spec = job.data if isinstance(job.data, dict) else {}
        log(f"S {job.id} {job.attempt} {time.time():.6f}")
        if spec.get("poison"):
            os.kill(os.getpid(), signal.SIGKILL)
        assert client is not None
        try:
            await client.hincrby(runs_key, job.id, 1)
            ms = spec.get("ms", 0)
            if ms:
                await asyncio.wait_for(asyncio.sleep(ms / 1000), ms / 1000 + 60)
            await client.hget(runs_key, job.id)
        except asyncio.CancelledError:
            log(f"X {job.id} {job.attempt} {time.time():.6f}")
            raise
        limit = int(spec.get("attempts", max_attempts))
        if spec.get("unrec"):
            log(f"F {job.id} {job.attempt} {time.time():.6f} D")
            raise UnrecoverableError("chaos: unrecoverable")
        if job.attempt <= int(spec.get("fail", 0)):
            final = "D" if job.attempt >= limit else "R"
            log(f"F {job.id} {job.attempt} {time.time():.6f} {final}")
            raise RuntimeError(f"chaos: planned failure on attempt {job.attempt}")
        log(f"C {job.id} {job.attempt} {time.time():.6f}")

    async def run() -> None:
        nonlocal client
        client = aioredis.from_url(
            cfg["url"],
            retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 120),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
        )
        worker = Worker(
            cfg["queue"],
            handler,
            redis_url=cfg["url"],
            concurrency=int(cfg.get("concurrency", 16)),
            max_attempts=max_attempts,
            read_block_ms=int(cfg.get("read_block_ms", 1000)),
            claim_min_idle_ms=int(cfg.get("claim_min_idle_ms", 500)),
            shutdown_timeout_ms=int(cfg.get("shutdown_timeout_ms", 5000)),
            run_scheduler=False,
        )
        if cfg.get("sigterm"):
            # The graceful-shutdown pattern of docs/reliability.md.
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(
                signal.SIGTERM, lambda: loop.create_task(worker.close())
            )
        print("READY", flush=True)
        await worker.run()

    asyncio.run(run())
    log(f"E {os.getpid()} {time.time():.6f}")


if __name__ == "__main__":
    main()
