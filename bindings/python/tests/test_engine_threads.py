"""CHASQUIMQ_ENGINE_THREADS: the engine runtime's worker threads (default 1).

The runtime is process-wide and starts when the package is imported, so
each case runs in a fresh interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    try:
        from chasquimq import Job, Queue, Worker
    except Exception as e:  # the runtime starts at import
        print("error:", type(e).__name__, e)
        sys.exit(0)

    from chasquimq._native import _engine_worker_threads as engine_threads

    async def main(url):
        done = asyncio.Event()
        seen = []

        async def handler(job: Job) -> None:
            seen.append(job.data)
            if len(seen) == 20:
                done.set()

        async with Queue("threads", redis_url=url) as q:
            await q.add_bulk([{"name": "t", "data": i} for i in range(20)])
        async with Worker("threads", handler, redis_url=url, read_block_ms=100) as w:
            task = asyncio.ensure_future(w.run())
            await asyncio.wait_for(done.wait(), 10)
            print("threads:", engine_threads(), "jobs:", sorted(seen) == list(range(20)))
            await w.close()
            await task

    asyncio.run(main(sys.argv[1]))
    """
)


def _run(redis_url: str, value: str | None) -> str:
    env = dict(os.environ)
    env.pop("CHASQUIMQ_ENGINE_THREADS", None)
    if value is not None:
        env["CHASQUIMQ_ENGINE_THREADS"] = value
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, redis_url],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_one_engine_thread_by_default(redis_url: str) -> None:
    assert _run(redis_url, None) == "threads: 1 jobs: True"


def test_thread_count_from_the_environment(redis_url: str) -> None:
    assert _run(redis_url, "3") == "threads: 3 jobs: True"


def test_bad_thread_count_is_a_typed_error_naming_the_variable(
    redis_url: str,
) -> None:
    # The runtime starts when the package is imported: the import fails.
    out = _run(redis_url, "lots")
    assert out.startswith("error: InvalidArgumentError ")
    assert "CHASQUIMQ_ENGINE_THREADS" in out
    assert "'lots'" in out or '"lots"' in out
    assert "unset it for the default, 1" in out
