"""The chaos suite's bookkeeping: worker subprocesses, their logs, and the
ledger that decides, per job id, whether an acknowledged enqueue was lost or
run more often than a fault allows."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import redis.asyncio as aioredis

HERE = Path(__file__).parent
WORKER = HERE / "chaos_worker.py"

# One summary row per fault, printed at the end of the session (conftest).
SUMMARY: list[dict[str, Any]] = []


def key(queue: str, suffix: str) -> str:
    return f"{{chasqui:{queue}}}:{suffix}"


class WorkerProc:
    """One chaos_worker.py subprocess with its own log file."""

    _seq = 0

    def __init__(self, logdir: Path, url: str, queue: str, **cfg: Any) -> None:
        WorkerProc._seq += 1
        self.log = logdir / f"w{WorkerProc._seq}.log"
        self.cfg = {"url": url, "queue": queue, "log": str(self.log), **cfg}
        self.proc: asyncio.subprocess.Process | None = None
        self.killed_at: float | None = None
        self.exited_at: float | None = None

    async def start(self) -> WorkerProc:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(WORKER),
            json.dumps(self.cfg),
            stdout=asyncio.subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 30)
        assert line.strip() == b"READY", f"worker did not start: {line!r}"
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def kill(self) -> None:
        """SIGKILL now; records the moment."""
        if self.alive:
            self.killed_at = time.time()
            os.kill(self.pid, signal.SIGKILL)

    def signal(self, sig: int) -> None:
        if self.alive:
            os.kill(self.pid, sig)

    async def wait(self, timeout: float = 30) -> int:
        assert self.proc is not None
        rc = await asyncio.wait_for(self.proc.wait(), timeout)
        if self.exited_at is None:
            self.exited_at = time.time()
        return rc

    @property
    def died_by_sigkill(self) -> bool:
        return self.proc is not None and self.proc.returncode == -signal.SIGKILL

    def rss_kib(self) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def lines(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [ln.split() for ln in self.log.read_text().splitlines() if ln]


@dataclass
class Run:
    pid: int
    attempt: int
    start: float
    end: str | None = None  # "C", "F", "X" or None (killed mid-run)
    end_t: float | None = None
    final: bool = False  # F ... D


def collect_runs(workers: list[WorkerProc]) -> dict[str, list[Run]]:
    """Per job id, every handler run in start order, with its outcome."""
    out: dict[str, list[Run]] = defaultdict(list)
    for w in workers:
        open_runs: dict[str, Run] = {}
        for parts in w.lines():
            tag = parts[0]
            if tag not in ("S", "C", "F", "X"):
                continue
            job_id, attempt, t = parts[1], int(parts[2]), float(parts[3])
            if tag == "S":
                run = Run(w.pid, attempt, t)
                open_runs[job_id] = run
                out[job_id].append(run)
            else:
                run = open_runs.pop(job_id)
                run.end, run.end_t = tag, t
                run.final = tag == "F" and parts[4] == "D"
    for runs in out.values():
        runs.sort(key=lambda r: r.start)
    return out


async def dlq_by_job(
    r: aioredis.Redis, queue: str
) -> dict[str, list[dict[bytes, bytes]]]:
    """DLQ entries keyed by the job id inside their envelope."""
    out: dict[str, list[dict[bytes, bytes]]] = defaultdict(list)
    for _id, f in await r.xrange(key(queue, "dlq")):
        job_id = ""
        try:
            job_id = msgpack.unpackb(f[b"d"], raw=False)[0]
        except Exception:
            pass
        out[job_id].append(f)
    return out


async def drained(r: aioredis.Redis, queue: str) -> bool:
    """Nothing left: the stream is empty, nothing pending, no retry waiting."""
    if await r.xlen(key(queue, "stream")) != 0:
        return False
    if await r.zcard(key(queue, "delayed")) != 0:
        return False
    info = await r.xpending(key(queue, "stream"), "default")
    return int(info["pending"]) == 0


async def wait_drained(r: aioredis.Redis, queue: str, timeout: float) -> float:
    t0 = time.monotonic()
    while not await drained(r, queue):
        if time.monotonic() - t0 > timeout:
            s = await r.xlen(key(queue, "stream"))
            d = await r.zcard(key(queue, "delayed"))
            p = (await r.xpending(key(queue, "stream"), "default"))["pending"]
            rows = await r.xpending_range(key(queue, "stream"), "default", "-", "+", 5)
            raise AssertionError(
                f"not drained after {timeout} s: stream={s} delayed={d} pending={p}"
                f" (first pending: {rows})"
            )
        await asyncio.sleep(0.05)
    return time.monotonic() - t0


@dataclass
class Verdict:
    enqueued: int
    lost: list[str]
    duplicated: list[str]
    unexplained: list[str]
    completed: int
    dlq: int
    recovery_worst_s: float


def judge(
    acked: set[str],
    runs: dict[str, list[Run]],
    dlq: dict[str, list[dict[bytes, bytes]]],
    killed: dict[int, float],
) -> Verdict:
    """Checks every acknowledged job against the logs and the DLQ.

    - lost: acknowledged, and neither completed (a C line) nor in the DLQ;
    - duplicated: a run that neither failed (F) nor was the job's last run,
      i.e. the job ran again after a run that should have settled it;
    - unexplained: such a wasted run in a process that was not killed
      (`killed`: pid -> time of death, or of the signal that cut its runs).
    The recovery time of a kill is, over the jobs that were in flight in the
    killed process, the longest wait until another process started them.
    """
    lost, duplicated, unexplained = [], [], []
    completed = 0
    for job_id in sorted(acked):
        jr = runs.get(job_id, [])
        done = any(r.end == "C" for r in jr)
        completed += done
        if not done and not dlq.get(job_id):
            lost.append(job_id)
    for job_id, jr in runs.items():
        wasted = [r for r in jr[:-1] if r.end != "F"]
        if len([r for r in jr if r.end == "C"]) > 1 or wasted:
            duplicated.append(job_id)
        for r in wasted:
            if r.pid not in killed:
                unexplained.append(job_id)
    worst = 0.0
    for jr in runs.values():
        for i, r in enumerate(jr):
            t_kill = killed.get(r.pid)
            if t_kill is None or r.start > t_kill:
                continue
            if r.end == "F":
                continue  # it failed: a retry follows anyway
            later = [x for x in jr[i + 1 :] if x.pid != r.pid and x.start >= t_kill]
            if later:
                worst = max(worst, later[0].start - t_kill)
    n_dlq = sum(1 for j in acked if dlq.get(j))
    return Verdict(
        enqueued=len(acked),
        lost=lost,
        duplicated=sorted(set(duplicated)),
        unexplained=sorted(set(unexplained)),
        completed=completed,
        dlq=n_dlq,
        recovery_worst_s=worst,
    )


def report(fault: str, v: Verdict | None = None, **extra: Any) -> None:
    row: dict[str, Any] = {"fault": fault}
    if v is not None:
        row.update(
            enqueued=v.enqueued,
            lost=len(v.lost),
            duplicated=len(v.duplicated),
            completed=v.completed,
            dlq=v.dlq,
            recovery_worst_s=round(v.recovery_worst_s, 3),
        )
    row.update(extra)
    SUMMARY.append(row)


def summary_line(row: dict[str, Any]) -> str:
    rest = " ".join(f"{k}={v}" for k, v in row.items() if k != "fault")
    return f"CHAOS {row['fault']}: {rest}"
