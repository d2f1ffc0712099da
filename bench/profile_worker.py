"""Profile chasquimq's worker-noop: preload jobs on a throwaway Redis, then
run the worker driver alone, optionally under a profiler.

Run it with the bench session's interpreter (release build):

    .nox/bench/bin/python bench/profile_worker.py                 # figures + per-thread CPU
    .nox/bench/bin/python bench/profile_worker.py --tool perf     # perf record -g -> perf.data
    .nox/bench/bin/python bench/profile_worker.py --tool py-spy   # py-spy record --native -> py-spy.txt

py-spy is a PyPI wheel (`pip install py-spy`); perf comes from the
distribution. Outputs go to --out-dir.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "tools"))

from redisproc import RedisProcess  # noqa: E402

DRIVER = BENCH / "drivers" / "chasquimq_py.py"


def thread_cpu(pid: int, into: dict[str, tuple[str, float]]) -> None:
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                st = f.read()
        except OSError:
            continue
        name = st[st.index("(") + 1 : st.rindex(")")]
        fields = st[st.rindex(")") + 2 :].split()
        into[tid] = (
            name,
            (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"),
        )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--jobs", type=int, default=100_000)
    ap.add_argument("--concurrency", type=int, default=100)
    ap.add_argument("--events-off", action="store_true")
    ap.add_argument("--tool", choices=("none", "perf", "py-spy"), default="none")
    ap.add_argument("--out-dir", default=".")
    args = ap.parse_args()
    out = Path(args.out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)

    with RedisProcess() as redis:
        assert redis.proc is not None
        base = {
            "url": redis.url,
            "queue": "bench",
            "redis_pid": redis.proc.pid,
            "scenario": "worker-noop",
            "cap_s": 600,
        }
        pre = dict(
            base,
            role="producer",
            mode="preload",
            batch=50,
            n=args.jobs,
            out=str(out / "preload.json"),
        )
        subprocess.run([sys.executable, str(DRIVER), json.dumps(pre)], check=True)
        spec = dict(
            base,
            role="worker",
            n=args.jobs,
            events=not args.events_off,
            concurrency=args.concurrency,
            out=str(out / "worker.json"),
        )
        cmd = [sys.executable, str(DRIVER), json.dumps(spec)]
        if args.tool == "perf":
            cmd = [
                "perf",
                "record",
                "-F",
                "1999",
                "-g",
                "-o",
                str(out / "perf.data"),
                "--",
                *cmd,
            ]
        elif args.tool == "py-spy":
            cmd = [
                "py-spy",
                "record",
                "--native",
                "-r",
                "400",
                "-f",
                "raw",
                "-o",
                str(out / "py-spy.txt"),
                "--",
                *cmd,
            ]
        threads: dict[str, tuple[str, float]] = {}
        p = subprocess.Popen(cmd)
        while p.poll() is None:
            if args.tool == "none":
                try:
                    thread_cpu(p.pid, threads)
                except OSError:
                    pass
            time.sleep(0.05)

    w = json.loads((out / "worker.json").read_text())
    wall = w["end"]["wall"] - w["start"]["wall"]
    cpu = w["end"]["cpu"] - w["start"]["cpu"]
    rcpu = w["end"]["redis_cpu"] - w["start"]["redis_cpu"]
    n = w["count"]
    print(f"{n:,} jobs in {wall:.2f} s = {n / wall:,.0f} jobs/s")
    print(
        f"worker process {cpu / n * 1e6:.1f} µs CPU per job, redis-server {rcpu / n * 1e6:.1f} µs per job"
    )
    if threads:
        per: dict[str, float] = {}
        for name, sec in threads.values():
            per[name] = per.get(name, 0.0) + sec
        print(
            "per thread (whole process life, s):",
            ", ".join(
                f"{k} {v:.2f}" for k, v in sorted(per.items(), key=lambda x: -x[1])
            ),
        )


if __name__ == "__main__":
    main()
