"""Benchmarks against the peers, side by side: ONE harness.

Starts one throwaway redis-server (no persistence, tools/redisproc.py),
measures Redis's own ceiling with redis-benchmark, then runs every scenario
for every library in turn (FLUSHALL before each run), each library's
producer and worker in processes of their own so that their CPU is theirs.
Prints a markdown table (medians over the repeats) and writes
bench/results/<date>.json with every run.

Run it through nox, which installs the pinned peers and builds chasquimq in
release mode:

    nox -s bench                                  # scale 1, median of 3
    nox -s bench -- --scale 0.1 --repeats 1       # a quick look
    nox -s bench -- --no-build --libs chasquimq,bullmq --scenarios worker-noop

What each scenario measures: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT / "tools"))

from libs import BY_NAME, LIBS, Lib  # noqa: E402
from redisproc import RedisProcess  # noqa: E402

MIB = 1 << 20
TIMES = "\u00d7"  # the multiplication sign


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: str  # "produce": producer only; "work": preload, then the worker; "e2e": both at once
    n: int  # jobs at scale 1
    what: str  # one line for the table's legend and the docs
    producer: dict[str, Any] = field(default_factory=dict)
    worker: dict[str, Any] = field(default_factory=dict)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "add-single",
        "produce",
        10_000,
        "awaited adds one by one (one producer, one connection's worth of round trips)",
        producer={"mode": "single"},
    ),
    Scenario(
        "add-bulk",
        "produce",
        100_000,
        "the bulk API, batches of 50",
        producer={"mode": "bulk", "batch": 50},
    ),
    Scenario(
        "worker-noop",
        "work",
        100_000,
        "preloaded jobs, no-op handler, concurrency 100, events on as shipped",
        worker={"events": True},
    ),
    Scenario(
        "worker-yield",
        "work",
        100_000,
        "as worker-noop, the handler suspends once (Python `await asyncio.sleep(0)`, Node `await Promise.resolve()`)",
        worker={"events": True, "yield": True},
    ),
    Scenario(
        "worker-noop-events-off",
        "work",
        100_000,
        "as worker-noop with chasquimq's events_enabled=False",
        worker={"events": False},
    ),
    Scenario(
        "worker-results",
        "work",
        100_000,
        "as worker-noop, the handler returns a small dict and the library keeps it",
        worker={"results": True},
    ),
    Scenario(
        "retry",
        "work",
        50_000,
        "every job fails once then succeeds (shortest retry delay); jobs/s counts jobs done, each ran twice",
        producer={"retry": True},
        worker={"fail_once": True},
    ),
    Scenario(
        "delayed",
        "e2e",
        10_000,
        "jobs added (bulk where there is one) due now+1 ms to a running worker; first add to last job run",
        producer={"mode": "preload", "batch": 50, "delay_ms": 1},
    ),
    Scenario(
        "latency",
        "e2e",
        2_000,
        "one add every 2 ms (500/s) to a running worker; add to handler start, from a timestamp in the payload",
        producer={"mode": "paced", "rate": 500, "stamp": True},
    ),
    Scenario(
        "payload-1mib",
        "e2e",
        200,
        "1 MiB payloads, awaited adds one by one to a running worker; first add to last job run",
        producer={"mode": "single", "size": MIB},
        worker={"size": MIB},
    ),
)
SCEN_BY_NAME = {s.name: s for s in SCENARIOS}

NO_EVENTS_SWITCH = {
    "bullmq": "n/a: no switch (its Lua scripts always write the events stream)",
    "saq": "n/a: no switch (publishes every status change on pub/sub)",
    "arq": "n/a: no switch (it has no events stream; see worker-noop)",
    "taskiq": "n/a: no switch (it has no events stream; see worker-noop)",
    "rq": "n/a: no switch (it has no events stream; see worker-noop)",
}

# (library, scenario) -> why there is no figure. Printed as a row.
UNSUPPORTED: dict[tuple[str, str], str] = {
    ("arq", "add-bulk"): "n/a: no bulk API",
    (
        "saq",
        "add-bulk",
    ): "n/a: no bulk API (`map` enqueues one by one and waits for results)",
    ("taskiq", "add-bulk"): "n/a: no bulk API",
    ("rq", "worker-yield"): "n/a: synchronous handlers only",
    (
        "taskiq",
        "delayed",
    ): "n/a: no per-job delay (needs a schedule source and a separate `taskiq scheduler`)",
    **{(lib, "worker-noop-events-off"): why for lib, why in NO_EVENTS_SWITCH.items()},
}

# What "results" means for each library (the worker-results row's note).
RESULTS_NOTE = {
    "chasquimq": "store_results=True",
    "chasquimq-node": "storeResults",
    "bullmq": "return value kept in the job hash (always, as shipped)",
    "arq": "keep_result 3600 s (always, as shipped)",
    "saq": "job record + result kept 600 s (always, as shipped)",
    "taskiq": "RedisAsyncResultBackend",
    "rq": "result_ttl 500 s (always, as shipped)",
}

# Notes on a library's rows: (library, scenario or "*" for every scenario
# with a worker) -> note.
LIB_NOTES = {
    ("rq", "*"): "sync: one job at a time",
    ("arq", "retry"): "retried by raising Retry(defer=0): arq retries nothing else",
    ("saq", "retry"): "retries=2, retry_delay 0",
    ("bullmq", "retry"): "attempts 2, no backoff",
    ("taskiq", "retry"): "SimpleRetryMiddleware re-sends the message",
    ("chasquimq", "retry"): "attempts 2, backoff 0 ms",
    ("rq", "retry"): "Retry(max=1), interval 0",
    ("saq", "delayed"): "due times move every 1 s (schedule timer)",
    ("rq", "delayed"): "due times move by its forked scheduler (1 s interval)",
    ("arq", "latency"): "polls every 0.5 s (poll_delay) when idle",
}


# ---- processes ---------------------------------------------------------------


class Env:
    def __init__(
        self, args: argparse.Namespace, redis: RedisProcess, logdir: Path
    ) -> None:
        self.args = args
        self.redis = redis
        self.logdir = logdir
        self.peer_venvs = Path(args.peer_venvs) if args.peer_venvs else None
        self.seq = 0

    def command(self, lib: Lib, spec: dict[str, Any]) -> list[str]:
        driver = str(BENCH / lib.driver)
        payload = json.dumps(spec)
        if lib.kind == "py-self":
            return [sys.executable, driver, payload]
        if lib.kind == "py-peer":
            assert self.peer_venvs is not None
            return [str(self.peer_venvs / lib.name / "bin" / "python"), driver, payload]
        return ["node", driver, payload]

    def spawn(
        self, lib: Lib, spec: dict[str, Any]
    ) -> tuple[subprocess.Popen[bytes], Path]:
        self.seq += 1
        stem = f"{self.seq:04d}-{lib.name}-{spec['scenario']}-{spec['role']}"
        spec["out"] = str(self.logdir / f"{stem}.json")
        log = self.logdir / f"{stem}.log"
        f = open(log, "wb")
        env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")
        env["CHASQUIMQ_NODE_PKG"] = str(node_binding_dir(self.args))
        p = subprocess.Popen(
            self.command(lib, spec),
            stdout=f,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=str(BENCH),
            start_new_session=True,
        )
        f.close()
        p.log = log  # type: ignore[attr-defined]
        return p, Path(spec["out"])


def _tail(log: Path, n: int = 3) -> str:
    try:
        lines = [x for x in log.read_text(errors="replace").splitlines() if x.strip()]
    except OSError:
        return ""
    return " | ".join(lines[-n:])[-400:]


def _kill(p: subprocess.Popen[bytes]) -> None:
    if p.poll() is None:
        try:
            os.killpg(p.pid, 9)
        except ProcessLookupError:
            pass
        p.wait()


def _collect(p: subprocess.Popen[bytes], out: Path, timeout: float) -> dict[str, Any]:
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        _kill(p)
        return {"error": f"timed out after {timeout:.0f} s: {_tail(p.log)}"}  # type: ignore[attr-defined]
    # Whatever the driver forked (rq's scheduler) goes with it.
    try:
        os.killpg(p.pid, 9)
    except ProcessLookupError:
        pass
    if out.exists():
        return json.loads(out.read_text())
    return {"error": f"exit {p.returncode}: {_tail(p.log)}"}  # type: ignore[attr-defined]


# ---- one run ---------------------------------------------------------------


def _flush(env: Env) -> None:
    import redis as redis_py

    r = redis_py.Redis(host=env.redis.host, port=env.redis.port)
    r.flushall()
    r.close()


def _spec(
    env: Env, sc: Scenario, role: str, n: int, extra: dict[str, Any]
) -> dict[str, Any]:
    return {
        "role": role,
        "scenario": sc.name,
        "url": env.redis.url,
        "queue": "bench",
        "redis_pid": env.redis.proc.pid if env.redis.proc else None,
        "n": n,
        "cap_s": env.args.cap_seconds,
        "concurrency": env.args.concurrency,
        **extra,
    }


def _window(r: dict[str, Any]) -> tuple[float, float, float]:
    """(wall seconds, process CPU seconds, redis CPU seconds) of one result."""
    s, e = r["start"], r["end"]
    return e["wall"] - s["wall"], e["cpu"] - s["cpu"], e["redis_cpu"] - s["redis_cpu"]


# Run interleaved for chasquimq (see main).
PAIRED = ("worker-noop", "worker-noop-events-off", "worker-results")


def run_one(
    env: Env, lib: Lib, sc: Scenario, n: int, preload_n: int | None = None
) -> dict[str, Any]:
    """One measured run; returns the metrics or {"error"/"unsupported": ...}.

    preload_n: jobs to preload for a worker scenario (default n). Repeats
    after the first preload only what the library can work through within
    the cap (its rate so far x cap x 1.5): a slow peer's preload of 100,000
    jobs would cost more time than its measurement."""
    _flush(env)
    cap = env.args.cap_seconds
    pspec = {"mode": "preload", "batch": 50, **sc.producer}
    wspec = {**sc.producer, **sc.worker}  # the worker sees size/delay/retry too
    wspec.pop("mode", None)
    out: dict[str, Any] = {"n_requested": n}

    if sc.kind == "produce":
        p, pout = env.spawn(lib, _spec(env, sc, "producer", n, pspec))
        r = _collect(p, pout, cap + 120)
        if "error" in r or "unsupported" in r:
            return r
        wall, cpu, rcpu = _window(r)
        count = r["count"]
        out.update(
            count=count,
            capped=r["capped"],
            wall_s=wall,
            jobs_per_s=count / wall,
            producer_cpu_s_per_1k=cpu / count * 1000,
            redis_cpu_s_per_1k=rcpu / count * 1000,
        )
        return out

    if sc.kind == "work":
        pn = min(n, preload_n or n)
        p, pout = env.spawn(lib, _spec(env, sc, "producer", pn, pspec))
        pre = _collect(p, pout, cap + 120)
        if "error" in pre or "unsupported" in pre:
            return {
                k: f"preload: {v}"
                for k, v in pre.items()
                if k in ("error", "unsupported")
            }
        k = pre["count"]
        pwall, pcpu, _ = _window(pre)
        out["preload"] = {
            "requested": pn,
            "count": k,
            "capped": pre["capped"],
            "jobs_per_s": k / pwall,
            "producer_cpu_s_per_1k": pcpu / k * 1000,
            "note": pre.get("note", ""),
        }
        w, wout = env.spawn(lib, _spec(env, sc, "worker", k, wspec))
        r = _collect(w, wout, cap + 60)
        if "error" in r or "unsupported" in r:
            return r
        wall, cpu, rcpu = _window(r)
        count = r["count"]
        if count == 0:
            return {"error": f"no job completed in {wall:.1f} s: {_tail(w.log)}"}  # type: ignore[attr-defined]
        out.update(
            count=count,
            capped=r["capped"],
            wall_s=wall,
            jobs_per_s=count / wall,
            handler_runs=count + r.get("failures", 0),
            worker_cpu_s_per_1k=cpu / count * 1000,
            redis_cpu_s_per_1k=rcpu / count * 1000,
            config=r.get("config"),
        )
        return out

    # e2e: the worker first (warmed up), then the producer.
    ready = env.logdir / f"ready-{env.seq + 1}"
    w, wout = env.spawn(
        lib,
        _spec(env, sc, "worker", n, {**wspec, "warmup_s": 1.0, "ready": str(ready)}),
    )
    deadline = time.monotonic() + 60
    while not ready.exists():
        if w.poll() is not None or time.monotonic() > deadline:
            r = _collect(w, wout, 5)
            return (
                r
                if ("error" in r or "unsupported" in r)
                else {"error": "worker never became ready"}
            )
        time.sleep(0.02)
    p, pout = env.spawn(lib, _spec(env, sc, "producer", n, pspec))
    pr = _collect(p, pout, cap + 120)
    if "error" in pr or "unsupported" in pr:
        _kill(w)
        return pr
    r = _collect(w, wout, cap + 60)
    if "error" in r:
        return r
    count = r["count"]
    if count == 0:
        return {"error": f"no job completed: {_tail(w.log)}"}  # type: ignore[attr-defined]
    _, pcpu, _ = _window(pr)
    _, wcpu, _ = _window(r)
    e2e = r["end"]["wall"] - pr["start"]["wall"]
    out.update(
        count=count,
        added=pr["count"],
        capped=r["capped"],
        wall_s=e2e,
        jobs_per_s=count / e2e,
        add_per_s=pr["count"] / max(1e-9, pr["end"]["wall"] - pr["start"]["wall"]),
        producer_cpu_s_per_1k=pcpu / pr["count"] * 1000,
        worker_cpu_s_per_1k=wcpu / count * 1000,
        redis_cpu_s_per_1k=(r["end"]["redis_cpu"] - pr["start"]["redis_cpu"])
        / count
        * 1000,
        producer_note=pr.get("note", ""),
        config=r.get("config"),
    )
    if "latency_ms" in r:
        out["latency_ms"] = r["latency_ms"]
    return out


# ---- environment facts ---------------------------------------------------------


def node_binding_dir(args: argparse.Namespace) -> Path:
    if args.chasquimq_node:
        return Path(args.chasquimq_node)
    return ROOT / "bindings" / "node"


def node_binding_available(args: argparse.Namespace) -> tuple[bool, str]:
    pkg = node_binding_dir(args)
    if not (pkg / "package.json").exists():
        if args.chasquimq_node:
            return False, f"not available: no release build at {pkg}"
        return False, "not available: bindings/node does not exist or is not built"
    if shutil.which("node") is None:
        return False, "not available: node is not on PATH"
    r = subprocess.run(
        ["node", "-e", f"require({json.dumps(str(pkg))})"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if r.returncode != 0:
        lines = r.stderr.strip().splitlines() or ["?"]
        why = next((x for x in lines if "Error" in x), lines[-1]).strip()
        return False, f"not available: bindings/node does not load ({why[:120]})"
    return True, ""


def lib_available(env: Env, lib: Lib) -> tuple[bool, str]:
    if lib.name == "chasquimq-node":
        return node_binding_available(env.args)
    if lib.kind == "node":
        if shutil.which("node") is None:
            return False, "not available: node is not on PATH"
        if not (BENCH / "node" / "node_modules" / lib.version_of).exists():
            return (
                False,
                "not available: run `npm ci` in bench/node (nox -s bench does)",
            )
        return True, ""
    if lib.kind == "py-peer":
        if (
            env.peer_venvs is None
            or not (env.peer_venvs / lib.name / "bin" / "python").exists()
        ):
            return (
                False,
                "not available: no virtualenv for it (run through `nox -s bench`)",
            )
    return True, ""


def lib_version(env: Env, lib: Lib) -> str:
    try:
        if lib.name == "chasquimq":
            import importlib.metadata as md

            import chasquimq

            return f"{md.version('chasquimq')} (binding {chasquimq.version()}, git {_git_rev()})"
        if lib.name == "chasquimq-node":
            pkg = node_binding_dir(env.args)
            v = json.loads((pkg / "package.json").read_text())["version"]
            how = (
                "release build"
                if env.args.chasquimq_node
                else "bindings/node as built there, profile unknown"
            )
            return f"{v} ({how}, git {_git_rev()})"
        if lib.kind == "node":
            pkg = BENCH / "node" / "node_modules" / lib.version_of / "package.json"
            ioredis = BENCH / "node" / "node_modules" / "ioredis" / "package.json"
            v = json.loads(pkg.read_text())["version"]
            return f"{v} (ioredis {json.loads(ioredis.read_text())['version']})"
        py = env.peer_venvs / lib.name / "bin" / "python"  # type: ignore[operator]
        names = [pin.split("==")[0].split("[")[0] for pin in lib.pins]
        code = (
            "import importlib.metadata as m, sys;"
            "print(', '.join(f'{n} {m.version(n)}' for n in sys.argv[1:]))"
        )
        return subprocess.run(
            [str(py), "-c", code, *names], capture_output=True, text=True, timeout=60
        ).stdout.strip()
    except Exception as e:
        return f"? ({e})"


def _git_rev() -> str:
    try:
        rev = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except OSError:
        return "?"


def machine_facts(env: Env) -> dict[str, Any]:
    import redis as redis_py

    r = redis_py.Redis(host=env.redis.host, port=env.redis.port)
    info = r.info("server")
    r.close()
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    node = (
        subprocess.run(
            ["node", "--version"], capture_output=True, text=True
        ).stdout.strip()
        if shutil.which("node")
        else None
    )
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "memory_gib": round(
            os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1
        ),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "node": node,
        "redis": info.get("redis_version"),
        "redis_args": "--save '' --appendonly no",
        "loadavg_at_start": os.getloadavg(),
    }


def redis_benchmark(env: Env, scale: float) -> list[dict[str, Any]]:
    """Redis's own ceiling for XADD: one client without pipelining (the
    round-trip bound), 50 clients without and with pipelining (-P 50)."""
    exe = shutil.which("redis-benchmark")
    if exe is None:
        return [{"case": "redis-benchmark", "error": "not on PATH"}]
    cases = [
        ("XADD, 1 client, no pipelining", 1, 1, 20_000),
        ("XADD, 50 clients, no pipelining", 50, 1, 200_000),
        ("XADD, 50 clients, pipeline 50 (-P 50)", 50, 50, 1_000_000),
    ]
    out = []
    for label, c, pipe, n in cases:
        n = max(2_000, int(n * max(scale, 0.1)))
        _flush(env)
        args = [
            exe,
            "-h",
            env.redis.host,
            "-p",
            str(env.redis.port),
            "-n",
            str(n),
            "-c",
            str(c),
        ]
        args += [
            "-P",
            str(pipe),
            "--csv",
            "XADD",
            "bench:ceiling",
            "*",
            "i",
            "1",
            "s",
            "xxxxxxxxxx",
        ]
        r = subprocess.run(args, capture_output=True, text=True, timeout=600)
        rps = None
        for line in r.stdout.splitlines():
            cells = [x.strip('"') for x in line.split(",")]
            if len(cells) > 1 and cells[0] != "test":
                try:
                    rps = float(cells[1])
                except ValueError:
                    pass
        out.append(
            {"case": label, "clients": c, "pipeline": pipe, "requests": n, "per_s": rps}
        )
    _flush(env)
    return out


# ---- summary ---------------------------------------------------------------

METRICS = (
    "jobs_per_s",
    "producer_cpu_s_per_1k",
    "worker_cpu_s_per_1k",
    "redis_cpu_s_per_1k",
    "wall_s",
    "add_per_s",
    "count",
)


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in runs if "jobs_per_s" in r]
    if not ok:
        bad = runs[0] if runs else {}
        return {
            "status": bad.get("unsupported") or bad.get("error") or "?",
            "ok": False,
        }
    s: dict[str, Any] = {"ok": True, "repeats_ok": len(ok), "repeats": len(runs)}
    for m in METRICS:
        vals = [r[m] for r in ok if r.get(m) is not None]
        if vals:
            s[m] = statistics.median(vals)
    lat = [r["latency_ms"] for r in ok if "latency_ms" in r]
    if lat:
        s["latency_ms"] = {
            k: statistics.median(x[k] for x in lat) for k in ("p50", "p99", "max")
        }
    s["capped"] = any(r.get("capped") for r in ok)
    if ok[0].get("producer_note"):
        s["producer_note"] = ok[0]["producer_note"]
    s["n_requested"] = ok[0]["n_requested"]
    pre = [r["preload"] for r in ok if "preload" in r]
    if pre:
        s["preload"] = {
            "count": statistics.median(p["count"] for p in pre),
            "jobs_per_s": statistics.median(p["jobs_per_s"] for p in pre),
            "producer_cpu_s_per_1k": statistics.median(
                p["producer_cpu_s_per_1k"] for p in pre
            ),
            "note": pre[0]["note"],
        }
    errs = [r.get("error") for r in runs if "error" in r]
    if errs:
        s["failed_repeats"] = errs
    return s


def _fmt(x: float | None, digits: int = 0) -> str:
    if x is None:
        return "—"
    if digits == 0:
        return f"{x:,.0f}"
    return f"{x:,.{digits}f}"


def _cpu(x: float | None) -> str:
    return "—" if x is None else f"{x:.3f}"


def _notes(lib: str, sc: Scenario, s: dict[str, Any], cap: float) -> str:
    notes = []
    if sc.kind != "produce" and (lib, "*") in LIB_NOTES:
        notes.append(LIB_NOTES[(lib, "*")])
    if (lib, sc.name) in LIB_NOTES:
        notes.append(LIB_NOTES[(lib, sc.name)])
    if sc.name == "worker-results":
        notes.append(RESULTS_NOTE.get(lib, ""))
    if s.get("capped"):
        notes.append(
            f"capped at {cap:g} s: {s.get('count', 0):,.0f} of {s['n_requested']:,} jobs"
        )
    pre = s.get("preload")
    if pre:
        if pre["count"] < s["n_requested"]:
            notes.append(f"preloaded {pre['count']:,.0f} jobs (cap)")
        if pre.get("note"):
            notes.append("preload " + pre["note"])
    if sc.kind == "e2e" and s.get("add_per_s"):
        notes.append(f"adds {s['add_per_s']:,.0f}/s")
        if s.get("producer_note"):
            notes.append(s["producer_note"])
    if s.get("failed_repeats"):
        notes.append(
            f"{len(s['failed_repeats'])} repeat(s) failed: {s['failed_repeats'][0][:160]}"
        )
    if s.get("repeats_ok") and s["repeats_ok"] > 1:
        notes.append(f"median of {s['repeats_ok']}")
    return "; ".join(x for x in notes if x)


def render(result: dict[str, Any]) -> str:
    cap = result["options"]["cap_seconds"]
    ceiling = next(
        (
            c["per_s"]
            for c in result["redis_benchmark"]
            if c.get("pipeline") == 50 and c.get("per_s")
        ),
        None,
    )
    lines = []
    if result["redis_benchmark"]:
        lines.append("### Redis's own ceiling (redis-benchmark, same server)\n")
        lines.append("| case | per second |")
        lines.append("|---|---:|")
        for c in result["redis_benchmark"]:
            lines.append(f"| {c['case']} | {_fmt(c.get('per_s'))} |")
        lines.append("")
    lines.append("### Results\n")
    lines.append(
        "jobs/s: completed jobs per second (the add rate for add-*); `% ceil`: jobs/s as a share of "
        "XADD with pipeline 50; CPU: seconds of CPU per 1,000 jobs, by process "
        "(`*`: the producer's preload, bulk API or 50 adds in flight, not timed); "
        "p50 / p99: add to handler start.\n"
    )
    lines.append(
        "| scenario | library | jobs/s | % ceil | producer CPU s/1k | worker CPU s/1k | redis CPU s/1k | p50 / p99 ms | notes |"
    )
    lines.append("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for sc_name, per_lib in result["summary"].items():
        sc = SCEN_BY_NAME[sc_name]
        for lib_name, s in per_lib.items():
            label = BY_NAME[lib_name].label
            if not s["ok"]:
                lines.append(
                    f"| {sc_name} | {label} | — | — | — | — | — | — | {s['status']} |"
                )
                continue
            pct = f"{100 * s['jobs_per_s'] / ceiling:.1f}%" if ceiling else "—"
            lat = s.get("latency_ms")
            latc = f"{lat['p50']:.1f} / {lat['p99']:.1f}" if lat else "—"
            if sc.kind == "work":
                pre = s.get("preload") or {}
                prod = _cpu(pre.get("producer_cpu_s_per_1k")) + "*"
            else:
                prod = _cpu(s.get("producer_cpu_s_per_1k"))
            lines.append(
                f"| {sc_name} | {label} | {_fmt(s['jobs_per_s'])} | {pct} | {prod} | "
                f"{_cpu(s.get('worker_cpu_s_per_1k'))} | {_cpu(s.get('redis_cpu_s_per_1k'))} | {latc} | "
                f"{_notes(lib_name, sc, s, cap)} |"
            )
    lines.append("")
    lines.append("### chasquimq (Python) against each peer\n")
    lines.append(
        f"`{TIMES}` is chasquimq ÷ peer: above 1 for jobs/s means chasquimq is faster; below 1 for CPU "
        "(the measured process: producer for add-*, worker for worker scenarios, both for end-to-end) "
        "and latency means chasquimq spends less.\n"
    )
    lines.append(
        f"| scenario | peer | jobs/s {TIMES} | CPU per job {TIMES} | p99 latency {TIMES} |"
    )
    lines.append("|---|---|---:|---:|---:|")
    for row in result["ratios"]:
        lines.append(
            f"| {row['scenario']} | {BY_NAME[row['peer']].label} | {_ratio(row.get('jobs_per_s'))} | "
            f"{_ratio(row.get('cpu_per_job'))} | {_ratio(row.get('p99'))} |"
        )
    costs = feature_costs(result["summary"])
    if costs:
        lines.append("")
        lines.append("### chasquimq: what events and results cost\n")
        lines.append(
            "Worker throughput with the events stream on (the default) and with "
            "`store_results` as a share of the same worker with events off, from the "
            "worker-noop, worker-results and worker-noop-events-off rows above, which run "
            "interleaved (one repeat of each in turn) so that the machine's drift does not "
            "enter the ratios.\n"
        )
        lines.append(
            "| library | events off jobs/s | events on jobs/s | on ÷ off | results jobs/s | results ÷ off |"
        )
        lines.append("|---|---:|---:|---:|---:|---:|")
        for row in costs:
            lines.append(
                f"| {BY_NAME[row['lib']].label} | {_fmt(row['off'])} | {_fmt(row.get('on'))} | "
                f"{_share(row.get('on_vs_off'))} | {_fmt(row.get('results'))} | "
                f"{_share(row.get('results_vs_off'))} |"
            )
    return "\n".join(lines)


def _share(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}"


def feature_costs(summary: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Events on and results on against events off, per chasquimq binding."""

    def rate(scenario: str, lib: str) -> float | None:
        s = summary.get(scenario, {}).get(lib)
        return s["jobs_per_s"] if s and s["ok"] and s.get("jobs_per_s") else None

    out = []
    for lib in (lib.name for lib in LIBS if lib.name.startswith("chasquimq")):
        off = rate("worker-noop-events-off", lib)
        if off is None:
            continue
        row: dict[str, Any] = {"lib": lib, "off": off}
        for key, scenario in (("on", "worker-noop"), ("results", "worker-results")):
            v = rate(scenario, lib)
            if v is not None:
                row[key] = v
                row[f"{key}_vs_off"] = v / off
        out.append(row)
    return out


def _ratio(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}{TIMES}"


def _proc_cpu(s: dict[str, Any], sc: Scenario) -> float | None:
    p, w = s.get("producer_cpu_s_per_1k"), s.get("worker_cpu_s_per_1k")
    if sc.kind == "produce":
        return p
    if sc.kind == "work":
        return w
    return (p or 0) + (w or 0) if (p is not None or w is not None) else None


def ratios(summary: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for sc_name, per_lib in summary.items():
        sc = SCEN_BY_NAME[sc_name]
        me = per_lib.get("chasquimq")
        if not me or not me["ok"]:
            continue
        for peer, s in per_lib.items():
            if peer.startswith("chasquimq") or not s["ok"]:
                continue
            row: dict[str, Any] = {"scenario": sc_name, "peer": peer}
            if sc_name != "latency":
                row["jobs_per_s"] = me["jobs_per_s"] / s["jobs_per_s"]
            a, b = _proc_cpu(me, sc), _proc_cpu(s, sc)
            if a is not None and b:
                row["cpu_per_job"] = a / b
            if "latency_ms" in me and "latency_ms" in s and s["latency_ms"]["p99"] > 0:
                row["p99"] = me["latency_ms"]["p99"] / s["latency_ms"]["p99"]
            out.append(row)
    return out


# ---- main ---------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="multiply every job count by this (default 1)",
    )
    ap.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="runs per library and scenario; the table shows the median (default 3)",
    )
    ap.add_argument(
        "--libs",
        default=",".join(lib.name for lib in LIBS),
        help="comma-separated, default all: " + ",".join(lib.name for lib in LIBS),
    )
    ap.add_argument(
        "--scenarios",
        default=",".join(s.name for s in SCENARIOS),
        help="comma-separated, default all: " + ",".join(s.name for s in SCENARIOS),
    )
    ap.add_argument(
        "--cap-seconds",
        type=float,
        default=10.0,
        help="stop a measured phase (and a preload) after this long and report the rate so far (default 10)",
    )
    ap.add_argument(
        "--concurrency",
        type=int,
        default=100,
        help="handlers in flight per worker (default 100; rq is always 1)",
    )
    ap.add_argument(
        "--out", default=None, help="JSON file (default bench/results/<date>.json)"
    )
    ap.add_argument(
        "--peer-venvs",
        default=None,
        help="folder with one virtualenv per Python peer (nox -s bench passes it)",
    )
    ap.add_argument(
        "--chasquimq-node",
        default=None,
        help="the chasquimq Node package to load (nox -s bench passes its release"
        " copy; default bindings/node as built there)",
    )
    ap.add_argument(
        "--no-redis-benchmark",
        action="store_true",
        help="skip the redis-benchmark ceiling",
    )
    args = ap.parse_args()

    libs = [BY_NAME[x] for x in args.libs.split(",") if x]
    scenarios = [SCEN_BY_NAME[x] for x in args.scenarios.split(",") if x]
    stamp = dt.datetime.now().strftime("%Y-%m-%dT%H-%M-%S")
    out_path = Path(args.out) if args.out else BENCH / "results" / f"{stamp}.json"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    logdir = Path(tempfile.mkdtemp(prefix="chasqui-bench-"))
    t_start = time.monotonic()

    with RedisProcess() as redis:
        env = Env(args, redis, logdir)
        facts = machine_facts(env)
        print(
            f"redis-server {facts['redis']} on port {redis.port}; logs in {logdir}",
            flush=True,
        )
        available = {lib.name: lib_available(env, lib) for lib in libs}
        versions = {
            lib.name: (
                lib_version(env, lib)
                if available[lib.name][0]
                else available[lib.name][1]
            )
            for lib in libs
        }
        for lib in libs:
            print(f"  {lib.label}: {versions[lib.name]}", flush=True)
        rb = [] if args.no_redis_benchmark else redis_benchmark(env, args.scale)
        for c in rb:
            print(f"  ceiling: {c['case']}: {_fmt(c.get('per_s'))}/s", flush=True)

        runs: list[dict[str, Any]] = []
        summary: dict[str, dict[str, Any]] = {sc.name: {} for sc in scenarios}
        lib_runs: dict[tuple[str, str], list[dict[str, Any]]] = {}

        def one(sc: Scenario, lib: Lib, rep: int) -> None:
            """Runs `lib` once in `sc`; records and prints the run."""
            n = max(1, round(sc.n * args.scale))
            mine = lib_runs.setdefault((sc.name, lib.name), [])
            t0 = time.monotonic()
            rates = [x["jobs_per_s"] for x in mine if "jobs_per_s" in x]
            preload_n = None
            if rates:
                rate = statistics.median(rates)
                preload_n = max(1000, int(rate * args.cap_seconds * 1.5))
            try:
                r = run_one(env, lib, sc, n, preload_n)
            except Exception as e:
                r = {"error": f"harness: {type(e).__name__}: {e}"}
            r.update(
                scenario=sc.name,
                lib=lib.name,
                repeat=rep,
                seconds=time.monotonic() - t0,
                loadavg=os.getloadavg()[0],
            )
            runs.append(r)
            mine.append(r)
            if "jobs_per_s" in r:
                msg = f"{r['jobs_per_s']:>10,.0f} jobs/s  ({r['count']:,} jobs, {r['wall_s']:.2f} s{', capped' if r.get('capped') else ''})"
                if "latency_ms" in r:
                    msg += f"  p50 {r['latency_ms']['p50']:.1f} ms p99 {r['latency_ms']['p99']:.1f} ms"
            else:
                msg = r.get("unsupported") or f"FAILED: {r.get('error')}"
            print(f"{sc.name:24} {lib.name:15} #{rep + 1} {msg}", flush=True)

        def unsupported(sc: Scenario, lib: Lib) -> str | None:
            ok, why = available[lib.name]
            reason = why if not ok else UNSUPPORTED.get((lib.name, sc.name))
            if reason:
                summary[sc.name][lib.name] = {"ok": False, "status": reason}
                runs.append(
                    {"scenario": sc.name, "lib": lib.name, "unsupported": reason}
                )
                print(f"{sc.name:24} {lib.name:15} {reason}", flush=True)
            return reason

        # chasquimq's worker scenarios that differ only in its switches run
        # interleaved, repeat by repeat, so that their ratios (what events
        # and results cost) do not take in the machine's drift over the
        # minutes between scenarios.
        paired = [sc for sc in scenarios if sc.name in PAIRED]
        for sc in scenarios:
            for lib in libs:
                if lib.name.startswith("chasquimq") and sc in paired:
                    if sc is not paired[0]:
                        continue  # ran with the first of the group
                    group = [p for p in paired if not unsupported(p, lib)]
                    for rep in range(args.repeats):
                        for p in group:
                            one(p, lib, rep)
                    for p in group:
                        summary[p.name][lib.name] = summarize(
                            lib_runs[(p.name, lib.name)]
                        )
                    continue
                if unsupported(sc, lib):
                    continue
                for rep in range(args.repeats):
                    one(sc, lib, rep)
                    if "unsupported" in runs[-1]:
                        break
                summary[sc.name][lib.name] = summarize(lib_runs[(sc.name, lib.name)])

    facts["loadavg_at_end"] = os.getloadavg()
    result = {
        "date": stamp,
        "command": " ".join(sys.argv),
        "note": "figures on a shared 2-core machine drift; compare ratios measured in one run",
        "machine": facts,
        "versions": versions,
        "options": {
            "scale": args.scale,
            "repeats": args.repeats,
            "cap_seconds": args.cap_seconds,
            "concurrency": args.concurrency,
            "scenarios": {
                s.name: {
                    "kind": s.kind,
                    "n": max(1, round(s.n * args.scale)),
                    "what": s.what,
                }
                for s in scenarios
            },
        },
        "redis_benchmark": rb,
        "summary": summary,
        "runs": runs,
        "seconds": time.monotonic() - t_start,
        "logs": str(logdir),
    }
    result["ratios"] = ratios(summary)
    result["feature_costs"] = feature_costs(summary)
    out_path.write_text(json.dumps(result, indent=1))
    print()
    print(render(result))
    print()
    print(
        f"wrote {out_path} ({result['seconds']:.0f} s in all; per-process logs in {logdir})"
    )


if __name__ == "__main__":
    main()
