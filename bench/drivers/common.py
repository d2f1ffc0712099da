"""What every Python driver shares: the spec, the measuring window, the
producer modes and the worker-side bookkeeping.

Standard library only: each Python peer runs in its own virtualenv.

A driver is started by bench/run.py as `python <driver> '<json spec>'` in a
process of its own, once as the producer and once as the worker, so the
CPU of each is its own. It writes one JSON object to `spec["out"]` and
exits. Keys of the spec:

    role          "producer" | "worker"
    scenario      the scenario's name (for messages only)
    url, queue    the Redis URL and the queue name to use
    redis_pid     pid of redis-server, to read its CPU from /proc
    n             jobs to add (producer) or to see complete (worker)
    mode          producer: "single" (awaited adds one by one), "bulk"
                  (bulk API, batches of `batch`), "preload" (bulk API, or
                  `batch` concurrent adds where there is none), "paced"
                  (one by one at `rate` per second)
    batch, rate   see mode
    size          length of the "s" string in the payload (10 unless named)
    stamp         put the wall-clock time (ms) in the payload as "t"
    delay_ms      add the jobs with this delay
    retry         add the jobs so that a failed attempt is retried once, at
                  the library's shortest retry delay
    fail_once     worker: the handler raises the first time it sees a job
    results       worker: the handler returns a value and the library keeps it
    events        worker: chasquimq's events_enabled
    concurrency   worker: handlers in flight
    warmup_s      worker: start the library's loop, wait this long, then
                  open the window and create `ready` (end-to-end scenarios);
                  0: open the window just before starting the loop
    ready         path the worker creates when the window opens
    cap_s         stop measuring after this many seconds (the result then
                  says capped and how many jobs were done)
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

SPEC: dict[str, Any] = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
#: The handler suspends once (the worker-yield scenario).
YIELD = bool(SPEC.get("yield"))

# ---- CPU accounting -------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid: int) -> float:
    """utime + stime of one live process, in seconds (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return 0.0
    fields = data[data.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    out.extend(int(x) for x in f.read().split())
            except OSError:
                pass
    except OSError:
        pass
    return out


def tree_cpu() -> float:
    """CPU seconds of this process (all threads), its reaped children and its
    live descendants (rq forks its scheduler; nothing here may hide CPU)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = own.ru_utime + own.ru_stime + reaped.ru_utime + reaped.ru_stime
    stack = _children(os.getpid())
    while stack:
        pid = stack.pop()
        total += _proc_cpu(pid)
        stack.extend(_children(pid))
    return total


def redis_cpu() -> float:
    pid = SPEC.get("redis_pid")
    return _proc_cpu(int(pid)) if pid else 0.0


def snapshot() -> dict[str, float]:
    return {"wall": time.time(), "cpu": tree_cpu(), "redis_cpu": redis_cpu()}


def write_result(result: dict[str, Any]) -> None:
    tmp = SPEC["out"] + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f)
    os.replace(tmp, SPEC["out"])


# ---- payloads -------------------------------------------------------------

_S_CACHE: dict[int, str] = {}


def payload(i: int) -> dict[str, Any]:
    size = int(SPEC.get("size", 10))
    s = _S_CACHE.get(size)
    if s is None:
        s = _S_CACHE[size] = "x" * size
    d: dict[str, Any] = {"i": i, "s": s}
    if SPEC.get("stamp"):
        d["t"] = time.time() * 1000.0
    return d


# ---- producer ---------------------------------------------------------------


class Unsupported(Exception):
    """The library has no such feature; the message says which."""


AddOne = Callable[[dict[str, Any]], Awaitable[Any]]
AddMany = Callable[[list[dict[str, Any]]], Awaitable[Any]]


async def produce(add: AddOne, add_bulk: AddMany | None) -> dict[str, Any]:
    """Runs the producer mode of the spec with the library's add functions;
    returns the result (window, count, mode actually used)."""
    n = int(SPEC["n"])
    mode = SPEC["mode"]
    batch = int(SPEC.get("batch", 50))
    cap = float(SPEC.get("cap_s", 1e9))
    note = ""
    if mode == "bulk" and add_bulk is None:
        raise Unsupported("no bulk API")
    if mode == "preload" and add_bulk is None:
        note = f"added without a bulk API ({batch} adds in flight)"
    start = snapshot()
    deadline = start["wall"] + cap
    done = 0
    capped = False
    if mode == "single":
        for i in range(n):
            await add(payload(i))
            done += 1
            if (done & 63) == 0 and time.time() > deadline:
                capped = True
                break
    elif mode in ("bulk", "preload"):
        for lo in range(0, n, batch):
            items = [payload(i) for i in range(lo, min(n, lo + batch))]
            if add_bulk is not None:
                await add_bulk(items)
            else:
                await asyncio.gather(*(add(d) for d in items))
            done += len(items)
            if time.time() > deadline and done < n:
                capped = True
                break
    elif mode == "paced":
        rate = float(SPEC["rate"])
        t0 = time.perf_counter()
        for i in range(n):
            due = t0 + i / rate
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            await add(payload(i))
            done += 1
    else:
        raise ValueError(f"unknown producer mode {mode!r}")
    end = snapshot()
    return {"start": start, "end": end, "count": done, "capped": capped, "note": note}


def producer_main(
    setup: Callable[
        [], Awaitable[tuple[AddOne, AddMany | None, Callable[[], Awaitable[None]]]]
    ],
) -> None:
    """Entry point of a driver's producer role: `setup` connects and returns
    (add, add_bulk or None, close)."""

    async def main() -> dict[str, Any]:
        add, add_bulk, close = await setup()
        try:
            return await produce(add, add_bulk)
        finally:
            await close()

    try:
        result = asyncio.run(main())
    except Unsupported as e:
        result = {"unsupported": str(e)}
    write_result(result)


# ---- worker ---------------------------------------------------------------


class FirstAttemptFailure(Exception):
    """Raised by the handler on the first attempt of each job (retry scenario)."""


class Tracker:
    """Counts completed handler runs; closes the window at the n-th or at
    the cap, writes the result and ends the process at once (what the
    library does after the window is not measured)."""

    def __init__(self) -> None:
        self.n = int(SPEC["n"])
        self.cap = float(SPEC.get("cap_s", 1e9))
        self.fail_once = bool(SPEC.get("fail_once"))
        self.results = bool(SPEC.get("results"))
        self.seen: set[int] = set()
        self.count = 0
        self.failures = 0
        self.lat: list[float] = []
        self.start: dict[str, float] | None = None
        self.extra: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._finished = False

    # The handler calls begin() first and end() last.
    def begin(self, data: dict[str, Any]) -> None:
        t = data.get("t")
        if t is not None:
            self.lat.append(time.time() * 1000.0 - t)
        if self.fail_once:
            i = data["i"]
            if i not in self.seen:
                self.seen.add(i)
                self.failures += 1
                raise FirstAttemptFailure(f"first attempt of job {i}")

    def end(self, data: dict[str, Any]) -> Any:
        self.count += 1
        if self.count >= self.n:
            self.finish(capped=False)
        return {"i": data["i"], "ok": True} if self.results else None

    def open_window(self) -> None:
        self.start = snapshot()
        ready = SPEC.get("ready")
        if ready:
            with open(ready, "w") as f:
                f.write("ready")
        t = threading.Thread(target=self._watchdog, daemon=True)
        t.start()

    def _watchdog(self) -> None:
        time.sleep(self.cap)
        self.finish(capped=True)

    def finish(self, *, capped: bool, error: str | None = None) -> None:
        with self._lock:
            if self._finished:
                return
            self._finished = True
            end = snapshot()
            result: dict[str, Any] = {
                "start": self.start or end,
                "end": end,
                "count": self.count,
                "failures": self.failures,
                "capped": capped,
                **self.extra,
            }
            if self.lat:
                lat = sorted(self.lat)
                result["latency_ms"] = {
                    "n": len(lat),
                    "p50": _pct(lat, 50),
                    "p99": _pct(lat, 99),
                    "max": lat[-1],
                }
            if error:
                result["error"] = error
            write_result(result)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)


def _pct(sorted_values: list[float], p: float) -> float:
    k = max(
        0, min(len(sorted_values) - 1, round(p / 100 * len(sorted_values) + 0.5) - 1)
    )
    return sorted_values[k]


def worker_main(run: Callable[[Tracker], Awaitable[None]]) -> None:
    """Entry point of an asyncio driver's worker role. `run(tracker)` starts
    the library's worker; it calls tracker.open_window() right before the
    loop starts (warmup_s == 0) or use start_then_open() for warm-up."""
    tracker = Tracker()
    try:
        asyncio.run(run(tracker))
    except Unsupported as e:
        write_result({"unsupported": str(e)})
        return
    except BaseException as e:
        tracker.finish(capped=False, error=f"{type(e).__name__}: {e}")
    tracker.finish(
        capped=False, error="the worker loop returned before all jobs were done"
    )


async def start_then_open(tracker: Tracker, loop_coro: Awaitable[Any]) -> None:
    """Starts the library's loop, opens the window (after warmup_s when
    set), then waits for the loop (which normally never returns: the
    tracker ends the process)."""
    warm = float(SPEC.get("warmup_s", 0))
    if warm <= 0:
        tracker.open_window()
    task = asyncio.ensure_future(loop_coro)
    if warm > 0:
        done, _ = await asyncio.wait({task}, timeout=warm)
        if not done:
            tracker.open_window()
    await task
